// A 16-bit float's bits (bf16 or fp16) to double by integer operations. The mask predictor pools in
// float64, and on sm_90 the conversion unit that F2F.F64.F32 runs on does 16 a cycle an SM, a
// quarter of the FP64 adds and FMAs the pooling spends on each element; for normal values the
// double's bits are the 16-bit value's rebiased, two integer instructions. Zero, subnormals, Inf
// and NaN take a branch of their own. Host-compilable too: native/test/test-half-to-double.cpp
// checks every bit pattern of both formats.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SLIP_HALF_TO_DOUBLE_FN __host__ __device__ inline
#else
#define SLIP_HALF_TO_DOUBLE_FN inline
#endif

namespace slip::cuda {

// The double whose upper 32 bits are hi and lower 32 zero.
SLIP_HALF_TO_DOUBLE_FN double double_from_high_word(uint32_t hi) {
#if defined(__CUDA_ARCH__)
    return __hiloint2double(static_cast<int>(hi), 0);
#else
    const uint64_t b = static_cast<uint64_t>(hi) << 32;
    double d;
    std::memcpy(&d, &b, sizeof d);
    return d;
#endif
}

// Whether bits h of a bf16 / fp16 value are a normal number (what the *_normal functions take).
SLIP_HALF_TO_DOUBLE_FN bool bf16_bits_normal(uint32_t h) { return (h & 0x7FFFu) - 0x80u < 0x7F00u; }
SLIP_HALF_TO_DOUBLE_FN bool f16_bits_normal(uint32_t h) { return (h & 0x7FFFu) - 0x400u < 0x7800u; }

// Normal values only: the exponent rebiased by 1023 - 127 (bf16) or 1023 - 15 (fp16), added to the
// exponent and mantissa shifted into the double's upper word (the carry cannot reach the sign).
SLIP_HALF_TO_DOUBLE_FN double bf16_normal_bits_to_double(uint32_t h) {
    return double_from_high_word(((h & 0x8000u) << 16) | (((h & 0x7FFFu) << 13) + (896u << 20)));
}
SLIP_HALF_TO_DOUBLE_FN double f16_normal_bits_to_double(uint32_t h) {
    return double_from_high_word(((h & 0x8000u) << 16) | (((h & 0x7FFFu) << 10) + (1008u << 20)));
}

// Any value: normal values as above; zero, subnormals, Inf and NaN by their own rules.
SLIP_HALF_TO_DOUBLE_FN double bf16_bits_to_double(uint32_t h) {
    const uint32_t mag = h & 0x7FFFu, sign = (h & 0x8000u) << 16;
    if (bf16_bits_normal(h)) return bf16_normal_bits_to_double(h);
    if (mag < 0x80u) {  // zero and subnormals: mantissa x 2^-133, exact
        const double v = static_cast<double>(mag) * 0x1p-133;
        return sign ? -v : v;
    }
    return double_from_high_word(sign | 0x7FF00000u | (mag & 0x7Fu) << 13);  // Inf, NaN
}

SLIP_HALF_TO_DOUBLE_FN double f16_bits_to_double(uint32_t h) {
    const uint32_t mag = h & 0x7FFFu, sign = (h & 0x8000u) << 16;
    if (f16_bits_normal(h)) return f16_normal_bits_to_double(h);
    if (mag < 0x400u) {  // zero and subnormals: mantissa x 2^-24, exact
        const double v = static_cast<double>(mag) * 0x1p-24;
        return sign ? -v : v;
    }
    return double_from_high_word(sign | 0x7FF00000u | (mag & 0x3FFu) << 10);  // Inf, NaN
}

}  // namespace slip::cuda
