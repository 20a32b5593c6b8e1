// BF16 as the library rounds it: nearest even, NaN kept a (quiet) NaN, as bits.
#pragma once

#include <cstdint>

namespace slip {

inline uint16_t bf16_bits(float f) {
    uint32_t b;
    __builtin_memcpy(&b, &f, 4);
    if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x40);
    return static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

inline float bf16_value(uint16_t bits) {
    const uint32_t b = static_cast<uint32_t>(bits) << 16;
    float f;
    __builtin_memcpy(&f, &b, 4);
    return f;
}

}  // namespace slip
