// AVX-512 twin of PackedFp4::decode (fp4-int.cpp), bit-identical to it (the same e2m1 · scale
// product per element): the W4A16 use of a 4-bit plan (full-precision activations against the
// NVFP4 weight, e.g. Purified Delta Refresh's outlier layers) decodes whole panels per call.
//
// One 64-byte step holds 4 k × 16 columns × 2 nibbles, byte 4c + r for column c (low nibble) and
// 16 + c (high nibble) at k = 4·step + r. For each r: a shuffle gathers bytes r, r+4, r+8, r+12
// of every 128-bit lane, a dword permute packs the four lanes' results into 16 bytes, and two
// table permutes turn low and high nibbles into the 32 columns' E2M1 values.
#include <immintrin.h>

#include "../quant/element.h"
#include "fp4-int.h"

namespace slip::gemm {

void decode_fp4_avx512(const PackedFp4 &w, int64_t n0, int64_t nc, int64_t k0, int64_t kc, float *dst) {
    alignas(64) float e2m1[16];
    for (int c = 0; c < 16; ++c) e2m1[c] = 2.0f * element::decode(static_cast<uint8_t>(c), element::kE2M1);
    const __m512 lut = _mm512_load_ps(e2m1);
    const __m512i pack = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128i nib = _mm_set1_epi8(15);
    __m512i pick[4];
    for (int r = 0; r < 4; ++r) {
        alignas(64) int8_t idx[64];
        for (int i = 0; i < 64; ++i) idx[i] = static_cast<int8_t>(i % 16 < 4 ? r + 4 * (i % 16) : 0x80);
        pick[r] = _mm512_load_si512(idx);
    }
    alignas(64) float sc[NR];
    for (int64_t p = 0; p < (nc + NR - 1) / NR; ++p) {
        const int64_t panel = n0 / NR + p;
        float *d = dst + p * kc * NR;
        int64_t group = -1;
        for (int64_t kk = 0; kk < kc; ++kk) {
            const int64_t kg = k0 + kk, g = kg / 16;
            if (g != group) {
                group = g;
                const uint8_t *s = w.scales.data() + (panel * w.groups + g) * NR;
                for (int j = 0; j < NR; ++j) sc[j] = w.scale_lut[s[j]];
            }
            const __m512i step = _mm512_loadu_si512(w.codes.data() + ((panel * w.groups + g) * 4 + (kg % 16) / 4) * 64);
            const __m512i lanes = _mm512_shuffle_epi8(step, pick[kg % 4]);
            const __m128i bytes = _mm512_castsi512_si128(_mm512_permutexvar_epi32(pack, lanes));
            const __m512i lo = _mm512_cvtepu8_epi32(_mm_and_si128(bytes, nib));
            const __m512i hi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(bytes, 4), nib));
            _mm512_storeu_ps(d + kk * NR, _mm512_mul_ps(_mm512_permutexvar_ps(lo, lut), _mm512_load_ps(sc)));
            _mm512_storeu_ps(d + kk * NR + 16, _mm512_mul_ps(_mm512_permutexvar_ps(hi, lut), _mm512_load_ps(sc + 16)));
        }
    }
}

}  // namespace slip::gemm
