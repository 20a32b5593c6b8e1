// AVX-512 decoder of 4-bit weights (INT4, NVFP4, MXFP4) into FP32 panels: the vector twin of
// NibbleSource::decode (weights.cpp), bit-identical to it (the same lut[code] * factor product).
//
// Per 16 columns x 16 k: each column's 8 bytes become 16 code indices (low nibble first), a
// vpermps against the 16-entry table turns them into floats, one multiply applies the group's
// factor (groups are multiples of 16 and K blocks start on group boundaries, so 16 k never
// straddle two groups); then a 16 x 16 register transpose turns 16 column vectors into the 16
// k-rows of the panel. About 12 instructions per 16 weights instead of ~6 per weight.
#include <immintrin.h>

#include <algorithm>

#include "plan.h"

// GCC 12 flags the _mm512_undefined_* inside these intrinsics' own definitions (a known false
// positive of its headers at -O3); nothing in this file reads an uninitialized value.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace slip::gemm {

namespace {

// In-register transpose of 16 rows of 16 floats (r[i] lane j -> r[j] lane i).
inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        for (int h = 0; h < 2; ++h) {
            const __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + 2 + h]);
            r[i + h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            r[i + 2 + h] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
    }
    // Now 128-bit lane L of r[4q + s] holds rows 4q..4q+3 of column 4L + c(s), where c swaps 1
    // and 2 (c = 0, 2, 1, 3); the last stage gathers lane L of r[s], r[4+s], r[8+s], r[12+s].
    for (int s = 0; s < 4; ++s) {
        const int c = s == 1 ? 2 : s == 2 ? 1 : s;
        const __m512 a0 = _mm512_shuffle_f32x4(r[s], r[4 + s], 0x88);       // lanes 0,2 | 0,2
        const __m512 a1 = _mm512_shuffle_f32x4(r[s], r[4 + s], 0xDD);       // lanes 1,3 | 1,3
        const __m512 b0 = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0x88);
        const __m512 b1 = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0xDD);
        t[c] = _mm512_shuffle_f32x4(a0, b0, 0x88);       // lane 0 of all four row groups
        t[8 + c] = _mm512_shuffle_f32x4(a0, b0, 0xDD);   // lane 2
        t[4 + c] = _mm512_shuffle_f32x4(a1, b1, 0x88);   // lane 1
        t[12 + c] = _mm512_shuffle_f32x4(a1, b1, 0xDD);  // lane 3
    }
    for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// 16 consecutive codes (8 bytes, low nibble first) as int32 table indices.
inline __m512i indices(const uint8_t *p) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(p));
    const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0x0F));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F));
    return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
}

}  // namespace

void decode_nibbles_avx512(const NibbleSource &s, int64_t n0, int64_t nc, int64_t k0, int64_t kc, float *dst) {
    const int64_t row_bytes = s.k / 2, groups = s.k / s.group;
    const __m512 lut = _mm512_loadu_ps(s.lut);
    for (int64_t p = 0; p < ceil_div(nc, NR); ++p) {
        float *d = dst + p * kc * NR;
        for (int half = 0; half < 2; ++half) {
            const int64_t c0 = n0 + p * NR + half * 16;
            const int valid = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(16, n0 + nc - c0)));
            for (int64_t kk = 0; kk < kc; kk += 16) {
                const int64_t kg = k0 + kk;
                __m512 r[16];
                for (int j = 0; j < 16; ++j) {
                    if (j >= valid) {
                        r[j] = _mm512_setzero_ps();
                        continue;
                    }
                    const int64_t col = c0 + j;
                    const __m512 v = _mm512_permutexvar_ps(indices(s.bytes.data() + col * row_bytes + kg / 2), lut);
                    r[j] = _mm512_mul_ps(v, _mm512_set1_ps(s.factor[col * groups + kg / s.group]));
                }
                transpose16(r);
                for (int i = 0; i < 16; ++i) _mm512_store_ps(d + (kk + i) * NR + half * 16, r[i]);
            }
        }
    }
}

}  // namespace slip::gemm
