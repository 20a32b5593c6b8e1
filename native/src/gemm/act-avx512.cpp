// AVX-512 NVFP4 activation quantizer: one 16-column block per zmm, bit-identical to the scalar
// loop of act.cpp (the same float multiply and divides, RNE_sat_E2M1 as compares + selects).
// The scalar version does not vectorize (GCC keeps the compare chain as branches), and at
// M = 2048 it cost about a fifth of the W4A4 run.
#include <immintrin.h>

#include "../quant/element.h"
#include "plan.h"

// GCC 12 flags the _mm512_undefined_* inside these intrinsics' own definitions (a known false
// positive of its headers at -O3); nothing in this file reads an uninitialized value.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace slip::gemm {

void quantize_nvfp4_row_avx512(const float *row, int64_t k, float g, float *out) {
    const __m512 vg = _mm512_set1_ps(g);
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
    for (int64_t b = 0; b < k; b += 16) {
        const __m512 x = _mm512_loadu_ps(row + b);
        const __m512 ax = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), abs_mask));
        const float bmax = _mm512_reduce_max_ps(ax);
        const float s = element::round_magnitude(bmax / 6.0f * g, element::kE4M3, -1.0f);
        if (s == 0.0f) {
            _mm512_storeu_ps(out + b, _mm512_setzero_ps());
            continue;
        }
        const __m512 vs = _mm512_set1_ps(s);
        const __m512 a = _mm512_castsi512_ps(
            _mm512_and_si512(_mm512_castps_si512(_mm512_div_ps(_mm512_mul_ps(x, vg), vs)), abs_mask));
        // Midpoints of the E2M1 grid, ties to the even code (see round_e2m1 in act.cpp).
        __m512 r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.25f), _CMP_LE_OQ),
                                        _mm512_set1_ps(0.5f), _mm512_setzero_ps());
        r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.75f), _CMP_GE_OQ), r, _mm512_set1_ps(1.0f));
        r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(1.25f), _CMP_GT_OQ), r, _mm512_set1_ps(1.5f));
        r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(1.75f), _CMP_GE_OQ), r, _mm512_set1_ps(2.0f));
        r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(2.5f), _CMP_GT_OQ), r, _mm512_set1_ps(3.0f));
        r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(3.5f), _CMP_GE_OQ), r, _mm512_set1_ps(4.0f));
        r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(5.0f), _CMP_GT_OQ), r, _mm512_set1_ps(6.0f));
        // copysign(r, x), then * s / g in that order.
        const __m512 sign = _mm512_castsi512_ps(_mm512_andnot_si512(abs_mask, _mm512_castps_si512(x)));
        r = _mm512_or_ps(r, sign);
        _mm512_storeu_ps(out + b, _mm512_div_ps(_mm512_mul_ps(r, vs), vg));
    }
}

}  // namespace slip::gemm
