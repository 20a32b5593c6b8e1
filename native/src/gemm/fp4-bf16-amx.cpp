// The AMX side of fp4-bf16.h: BF16 tile products of an NVFP4 weight expanded per call.
//
// Tiles: C0..C3 (tmm0-3) a 32 x 32 FP32 block as 2 x 2 tiles of 16 x 16; A0, A1 (tmm4-5) 16 rows x
// 32 BF16 of activations each; B0, B1 (tmm6-7) the weight's 32 k x 16 columns each, stored the way
// tdpbf16ps reads them: row r holds the pairs (k = 2r, 2r + 1) of every column. Each step of 32 k
// is 4 tile loads and 4 tdpbf16ps (32 K MACs).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "fp4-bf16.h"

namespace slip::gemm {

namespace {

struct alignas(64) TileConfig {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

// One panel of NR = 32 columns, all of k, as BF16 B tiles: [k / 32][2 tiles][16 rows][32].
// decode() writes the weight as e2m1 · fp8 / global in FP32 (a few roundings); times global that
// is within a few FP32 ulps of a BF16 number, so rounding to nearest lands on it exactly.
void expand_panel(const PackedFp4 &w, int64_t p, float *f, uint16_t *dst) {
    const int64_t k = w.k;
    w.decode(p * NR, NR, 0, k, f);
    const __m512 g = _mm512_set1_ps(w.global);
    alignas(64) static const uint16_t interleave_idx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                           8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i interleave = _mm512_load_si512(interleave_idx);
    for (int64_t r = 0; r < k / 2; ++r)
        for (int t = 0; t < 2; ++t) {
            const __m512 even = _mm512_mul_ps(_mm512_loadu_ps(f + (2 * r) * NR + 16 * t), g);
            const __m512 odd = _mm512_mul_ps(_mm512_loadu_ps(f + (2 * r + 1) * NR + 16 * t), g);
            const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(odd, even);  // [even 0..15, odd 0..15]
            _mm512_store_si512(dst + ((r / 16) * 2 + t) * 512 + (r % 16) * 32, _mm512_permutexvar_epi16(interleave, both));
        }
}

}  // namespace

void round_rows_bf16_amx(const float *x, int64_t k, int64_t r0, int64_t r1, uint16_t *dst) {
    for (int64_t i = r0 * k; i < r1 * k; ++i) dst[i] = bf16_bits(x[i]);
}

void run_fp4_bf16_amx(const uint16_t *xb, int64_t m, const PackedFp4 &w, float out_scale, const float *bias,
                      float *y, int64_t p0, int64_t p1) {
    const int64_t k = w.k, n = w.n, steps = k / 32, mpad = (m + 31) / 32 * 32;
    thread_local Aligned<float> f;
    thread_local Aligned<uint16_t> b;
    if (f.n < k * NR) f = Aligned<float>(k * NR);
    if (b.n < k * NR) b = Aligned<uint16_t>(k * NR);
    TileConfig cfg;
    for (int t = 0; t < 8; ++t) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    alignas(64) float c[32 * 32];
    const int64_t lda = k * 2;  // bytes per activation row
    for (int64_t p = p0; p < p1; ++p) {
        expand_panel(w, p, f.data(), b.data());
        const int64_t cols = std::min<int64_t>(NR, n - p * NR);
        for (int64_t i = 0; i < mpad; i += 32) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            const uint16_t *a = xb + i * k;
            for (int64_t s = 0; s < steps; ++s) {
                _tile_loadd(4, a + s * 32, lda);
                _tile_loadd(5, a + 16 * k + s * 32, lda);
                _tile_loadd(6, b.data() + (2 * s) * 512, 64);
                _tile_loadd(7, b.data() + (2 * s + 1) * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, c, 128);
            _tile_stored(1, c + 16, 128);
            _tile_stored(2, c + 16 * 32, 128);
            _tile_stored(3, c + 16 * 32 + 16, 128);
            const int64_t rows = std::min<int64_t>(32, m - i);
            const __mmask16 lo = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
            const __mmask16 hi = static_cast<__mmask16>(cols >= 32 ? 0xffff : cols <= 16 ? 0 : (1u << (cols - 16)) - 1);
            const __m512 sc = _mm512_set1_ps(out_scale);
            const __m512 b0 = bias ? _mm512_maskz_loadu_ps(lo, bias + p * NR) : _mm512_setzero_ps();
            const __m512 b1 = bias ? _mm512_maskz_loadu_ps(hi, bias + p * NR + 16) : _mm512_setzero_ps();
            for (int64_t r = 0; r < rows; ++r) {
                float *yr = y + (i + r) * n + p * NR;
                _mm512_mask_storeu_ps(yr, lo, _mm512_fmadd_ps(_mm512_load_ps(c + r * 32), sc, b0));
                if (hi) _mm512_mask_storeu_ps(yr + 16, hi, _mm512_fmadd_ps(_mm512_load_ps(c + r * 32 + 16), sc, b1));
            }
        }
    }
    _tile_release();
}

}  // namespace slip::gemm
