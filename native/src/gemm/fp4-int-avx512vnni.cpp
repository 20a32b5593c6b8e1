// AVX-512 VNNI kernel of the integer NVFP4 path (fp4-int.h) and its panel unpack.
//
// Per group of 16 k, each of the tile's 2·R int32 accumulators starts at its row's init (magic
// bits minus the shift term), takes 4 vpdpbusd, and is folded into its float accumulator by two
// instructions: the exact integer back (a subtract; W4A4: an FMA that also scales it by the
// activation's block scale), and an FMA with the weight's group scales. vpdpbusd issues once per
// cycle (half the FMA rate: one port) and the float work can go to the other; measured, the loop
// keeps about two thirds of W8A8's pure-vpdpbusd rate at large K.
#include <immintrin.h>

#include <cstring>

#include "fp4-int.h"

// GCC 12 flags the _mm512_undefined_* inside these intrinsics' own definitions (a known false
// positive of its headers at -O3); nothing in this file reads an uninitialized value.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace slip::gemm {

namespace {

inline __mmask16 lo_mask(int nr) { return nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1); }
inline __mmask16 hi_mask(int nr) {
    return nr >= 32 ? 0xFFFF : nr > 16 ? static_cast<__mmask16>((1u << (nr - 16)) - 1) : 0;
}

template <int R, bool A4>
void tile(const Fp4Tile &t) {
    __m512 y0[R], y1[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) y0[r] = y1[r] = _mm512_setzero_ps();
    const __m512 magic = _mm512_set1_ps(kFp4Magic);
    const uint8_t *b = t.b;
    const int32_t *meta = t.meta;
    for (int64_t g = 0; g < t.groups; ++g, b += kFp4GroupBytes, meta += fp4_meta_stride(A4)) {
        __m512i c0[R], c1[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_set1_epi32(meta[A4 ? 4 * r : r]);
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) {
            const __m512i b0 = _mm512_load_si512(b + s * 128);
            const __m512i b1 = _mm512_load_si512(b + s * 128 + 64);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                int32_t q;
                std::memcpy(&q, t.a + r * t.lda + g * kFp4Group + s * 4, 4);
                const __m512i av = _mm512_set1_epi32(q);
                c0[r] = _mm512_dpbusd_epi32(c0[r], b0, av);
                c1[r] = _mm512_dpbusd_epi32(c1[r], b1, av);
            }
        }
        const __m512 w0 = _mm512_load_ps(reinterpret_cast<const float *>(b + 512));
        const __m512 w1 = _mm512_load_ps(reinterpret_cast<const float *>(b + 512) + 16);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            __m512 d0, d1;
            if (A4) {
                const __m512 as = _mm512_castsi512_ps(_mm512_set1_epi32(meta[4 * r + 1]));
                const __m512 ao = _mm512_castsi512_ps(_mm512_set1_epi32(meta[4 * r + 2]));
                d0 = _mm512_fmsub_ps(_mm512_castsi512_ps(c0[r]), as, ao);
                d1 = _mm512_fmsub_ps(_mm512_castsi512_ps(c1[r]), as, ao);
            } else {
                d0 = _mm512_sub_ps(_mm512_castsi512_ps(c0[r]), magic);
                d1 = _mm512_sub_ps(_mm512_castsi512_ps(c1[r]), magic);
            }
            y0[r] = _mm512_fmadd_ps(d0, w0, y0[r]);
            y1[r] = _mm512_fmadd_ps(d1, w1, y1[r]);
        }
    }
    const __mmask16 m0 = lo_mask(t.nr), m1 = hi_mask(t.nr);
    const bool bias = t.last && t.bias;
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, t.bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, t.bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        float *row = t.c + r * t.ldc;
        if (t.accumulate) {
            y0[r] = _mm512_add_ps(y0[r], _mm512_maskz_loadu_ps(m0, row));
            y1[r] = _mm512_add_ps(y1[r], _mm512_maskz_loadu_ps(m1, row + 16));
        }
        if (t.last && (t.row_scale || t.out_scale != 1.0f)) {
            const __m512 rs = _mm512_set1_ps(t.row_scale ? t.row_scale[r] * t.out_scale : t.out_scale);
            y0[r] = _mm512_mul_ps(y0[r], rs);
            y1[r] = _mm512_mul_ps(y1[r], rs);
        }
        if (bias) {
            y0[r] = _mm512_add_ps(y0[r], b0);
            y1[r] = _mm512_add_ps(y1[r], b1);
        }
        _mm512_mask_storeu_ps(row, m0, y0[r]);
        _mm512_mask_storeu_ps(row + 16, m1, y1[r]);
    }
}

// E2M1 code -> 2·value + 12, the u8 operand (codes 8..15 are the negatives of 0..7); once per
// 128-bit lane, as vpshufb looks up within lanes.
alignas(64) constexpr uint8_t kCodeLut[64] = {
    12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0,  //
    12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0,  //
    12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0,  //
    12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0};

using Tile = void (*)(const Fp4Tile &);
constexpr Tile kTiles[2][kFp4Rows + 1] = {
    {nullptr, tile<1, false>, tile<2, false>, tile<3, false>, tile<4, false>, tile<5, false>, tile<6, false>},
    {nullptr, tile<1, true>, tile<2, true>, tile<3, true>, tile<4, true>, tile<5, true>, tile<6, true>}};
static_assert(kFp4Rows == 6, "kTiles lists one instance per row count");

}  // namespace

void kernel_fp4_avx512vnni(const Fp4Tile &t) { kTiles[t.a4][t.mr](t); }

void unpack_fp4_avx512vnni(const PackedFp4 &w, int64_t p, int64_t g0, int64_t gc, uint8_t *dst) {
    const __m512i lut = _mm512_load_si512(kCodeLut);
    const __m512i low = _mm512_set1_epi8(0x0F);
    const uint8_t *src = w.codes.data() + (p * w.groups + g0) * 4 * 64;
    const uint8_t *sc = w.scales.data() + (p * w.groups + g0) * NR;
    for (int64_t g = 0; g < gc; ++g, dst += kFp4GroupBytes, src += 4 * 64, sc += NR) {
        for (int s = 0; s < 4; ++s) {
            const __m512i v = _mm512_load_si512(src + s * 64);
            _mm512_store_si512(dst + s * 128, _mm512_shuffle_epi8(lut, _mm512_and_si512(v, low)));
            _mm512_store_si512(dst + s * 128 + 64,
                               _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v, 4), low)));
        }
        float *ws = reinterpret_cast<float *>(dst + 512);
        for (int h = 0; h < 2; ++h) {
            const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(sc + h * 16)));
            _mm512_store_ps(ws + h * 16, _mm512_i32gather_ps(idx, w.scale_lut, 4));
        }
    }
}

}  // namespace slip::gemm
