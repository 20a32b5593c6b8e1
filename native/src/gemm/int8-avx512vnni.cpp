// AVX-512 VNNI INT8 microkernel: vpdpbusd multiplies 4 u8 activations by 4 s8 weights per 32-bit
// lane and adds the sum into an int32 accumulator: 64 MACs per instruction. Same 14 x 32 tile
// as FP32; each step consumes 4 k, broadcasting 4 activation bytes of a row as one int32.
#include <immintrin.h>

#include <cstring>

#include "gemm.h"

namespace slip::gemm {

namespace {

inline __mmask16 lo_mask(int nr) { return nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1); }
inline __mmask16 hi_mask(int nr) {
    return nr >= 32 ? 0xFFFF : nr > 16 ? static_cast<__mmask16>((1u << (nr - 16)) - 1) : 0;
}

template <int R>
void tile(int64_t kc4, const uint8_t *a, const int8_t *b, int32_t *c, int64_t ldc, int nr, bool acc) {
    __m512i c0[R], c1[R];
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_si512();
    for (int64_t k = 0; k < kc4; ++k) {
        const __m512i b0 = _mm512_load_si512(b + k * NR * 4);
        const __m512i b1 = _mm512_load_si512(b + k * NR * 4 + 64);
        _mm_prefetch(reinterpret_cast<const char *>(b + (k + 8) * NR * 4), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char *>(b + (k + 8) * NR * 4 + 64), _MM_HINT_T0);
#pragma GCC unroll 14
        for (int r = 0; r < R; ++r) {
            int32_t q;
            std::memcpy(&q, a + (k * MR + r) * 4, 4);
            const __m512i av = _mm512_set1_epi32(q);
            c0[r] = _mm512_dpbusd_epi32(c0[r], av, b0);
            c1[r] = _mm512_dpbusd_epi32(c1[r], av, b1);
        }
    }
    const __mmask16 m0 = lo_mask(nr), m1 = hi_mask(nr);
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) {
        int32_t *row = c + r * ldc;
        if (acc) {
            c0[r] = _mm512_add_epi32(c0[r], _mm512_maskz_loadu_epi32(m0, row));
            c1[r] = _mm512_add_epi32(c1[r], _mm512_maskz_loadu_epi32(m1, row + 16));
        }
        _mm512_mask_storeu_epi32(row, m0, c0[r]);
        _mm512_mask_storeu_epi32(row + 16, m1, c1[r]);
    }
}

using Tile = void (*)(int64_t, const uint8_t *, const int8_t *, int32_t *, int64_t, int, bool);
constexpr Tile kTiles[MR + 1] = {nullptr,  tile<1>,  tile<2>,  tile<3>, tile<4>,
                                 tile<5>,  tile<6>,  tile<7>,  tile<8>, tile<9>,
                                 tile<10>, tile<11>, tile<12>, tile<13>, tile<14>};

}  // namespace

void kernel_i8_avx512vnni(int64_t kc4, const uint8_t *a, const int8_t *b, int32_t *c, int64_t ldc,
                          int mr, int nr, bool accumulate) {
    kTiles[mr](kc4, a, b, c, ldc, nr, accumulate);
}

}  // namespace slip::gemm
