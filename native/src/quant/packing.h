// Sub-byte layouts shared by the packing ABI and the quantizers that write packed codes.
#pragma once

#include <cstdint>

namespace slip::quant {

// Two 4-bit codes per byte, element 2i in the low nibble (compressed-tensors' and ModelOpt's
// NVFP4 order, vllm.md 1.3).
inline uint8_t pack_pair(uint8_t even, uint8_t odd) {
    return static_cast<uint8_t>((even & 0x0F) | (odd << 4));
}

// compressed-tensors' pack-quantized words: ceil(cols * bits / 32) int32 per row.
inline int64_t ct_words(int64_t cols, int bits) { return (cols * bits + 31) / 32; }

// Packs one row of signed `bits`-bit values (already in range) into CT words: each value is
// offset by 2^(bits-1) to unsigned and placed little-end-first (element j at bit bits*j of
// the row's bit stream). Padding bits past the last element are zero.
inline void ct_pack_row(const int8_t *v, int32_t *words, int64_t cols, int bits) {
    const int per = 32 / bits;
    const uint32_t mask = (1u << bits) - 1u;
    const int offset = 1 << (bits - 1);
    const int64_t nw = ct_words(cols, bits);
    for (int64_t w = 0; w < nw; ++w) {
        uint32_t word = 0;
        for (int j = 0; j < per; ++j) {
            const int64_t c = w * per + j;
            if (c >= cols) break;
            word |= (static_cast<uint32_t>(v[c] + offset) & mask) << (bits * j);
        }
        words[w] = static_cast<int32_t>(word);
    }
}

inline void ct_unpack_row(const int32_t *words, int8_t *v, int64_t cols, int bits) {
    const int per = 32 / bits;
    const uint32_t mask = (1u << bits) - 1u;
    const int offset = 1 << (bits - 1);
    for (int64_t c = 0; c < cols; ++c) {
        const uint32_t word = static_cast<uint32_t>(words[c / per]);
        v[c] = static_cast<int8_t>(static_cast<int>((word >> (bits * (c % per))) & mask) - offset);
    }
}

}  // namespace slip::quant
