// AVX-512 twin of fwht_block (hadamard.cpp) for blocks of 16 to 256, bit-identical to it: the
// same butterflies in the same order, so each output is the same sum of the same terms.
// Stages with h < 16 pair lanes inside one register (a permute brings the partner over, a masked
// blend picks a + b or b − a per lane); stages with h >= 16 pair whole registers.
#include <immintrin.h>

#include <cstdint>

#include "hadamard.h"

namespace slip::quant {

void fwht_block_avx512(float *v, int64_t n, float scale) {
    __m512 r[16];
    const int64_t regs = n / 16;
    for (int64_t i = 0; i < regs; ++i) r[i] = _mm512_loadu_ps(v + 16 * i);
    for (int64_t i = 0; i < regs; ++i) {
        __m512 x = r[i], s;
        // h = 1, 2: swap neighbours, then pairs, inside each 128-bit lane.
        s = _mm512_permute_ps(x, 0xB1);
        x = _mm512_mask_blend_ps(0xAAAA, _mm512_add_ps(x, s), _mm512_sub_ps(s, x));
        s = _mm512_permute_ps(x, 0x4E);
        x = _mm512_mask_blend_ps(0xCCCC, _mm512_add_ps(x, s), _mm512_sub_ps(s, x));
        // h = 4, 8: swap 128-bit lanes, then 256-bit halves.
        s = _mm512_shuffle_f32x4(x, x, 0xB1);
        x = _mm512_mask_blend_ps(0xF0F0, _mm512_add_ps(x, s), _mm512_sub_ps(s, x));
        s = _mm512_shuffle_f32x4(x, x, 0x4E);
        r[i] = _mm512_mask_blend_ps(0xFF00, _mm512_add_ps(x, s), _mm512_sub_ps(s, x));
    }
    for (int64_t h = 1; h < regs; h *= 2)
        for (int64_t i = 0; i < regs; i += 2 * h)
            for (int64_t j = i; j < i + h; ++j) {
                const __m512 a = r[j], b = r[j + h];
                r[j] = _mm512_add_ps(a, b);
                r[j + h] = _mm512_sub_ps(a, b);
            }
    const __m512 sc = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < regs; ++i) _mm512_storeu_ps(v + 16 * i, _mm512_mul_ps(r[i], sc));
}

}  // namespace slip::quant
