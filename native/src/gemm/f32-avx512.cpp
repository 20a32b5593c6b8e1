// AVX-512 FP32 microkernel: a 14 x 32 register tile (28 zmm accumulators, 2 B vectors, 1
// broadcast). Per k: 2 aligned B loads, 14 broadcasts (folded into the FMA as {1to16} memory
// operands), 28 FMAs: the two FMA ports stay busy and the loads fit the two load ports.
#include <immintrin.h>

#include "gemm.h"

namespace slip::gemm {

namespace {

inline __mmask16 lo_mask(int nr) { return nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1); }
inline __mmask16 hi_mask(int nr) {
    return nr >= 32 ? 0xFFFF : nr > 16 ? static_cast<__mmask16>((1u << (nr - 16)) - 1) : 0;
}

// R rows (1..MR) as a template so every accumulator is a named register after unrolling.
template <int R>
void tile(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int nr, bool acc) {
    __m512 c0[R], c1[R];
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_load_ps(b + k * NR);
        const __m512 b1 = _mm512_load_ps(b + k * NR + 16);
        _mm_prefetch(reinterpret_cast<const char *>(b + (k + 8) * NR), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char *>(b + (k + 8) * NR + 16), _MM_HINT_T0);
#pragma GCC unroll 14
        for (int r = 0; r < R; ++r) {
            const __m512 av = _mm512_set1_ps(a[k * MR + r]);
            c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        }
    }
    const __mmask16 m0 = lo_mask(nr), m1 = hi_mask(nr);
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) {
        float *row = c + r * ldc;
        if (acc) {
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, row));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, row + 16));
        }
        _mm512_mask_storeu_ps(row, m0, c0[r]);
        _mm512_mask_storeu_ps(row + 16, m1, c1[r]);
    }
}

using Tile = void (*)(int64_t, const float *, const float *, float *, int64_t, int, bool);
constexpr Tile kTiles[MR + 1] = {nullptr,  tile<1>,  tile<2>,  tile<3>, tile<4>,
                                 tile<5>,  tile<6>,  tile<7>,  tile<8>, tile<9>,
                                 tile<10>, tile<11>, tile<12>, tile<13>, tile<14>};

}  // namespace

void kernel_f32_avx512(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr,
                       int nr, bool accumulate) {
    kTiles[mr](kc, a, b, c, ldc, nr, accumulate);
}

// M = 1: memory bound on the weight, so the point is streaming it with enough independent
// accumulators (4 k steps x 2 vectors) that FMA latency never stalls the loads.
void gemv_f32_avx512(int64_t kc, const float *x, const float *b, float *y, int nr) {
    __m512 s[8];
    for (auto &v : s) v = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) {
            const __m512 xv = _mm512_set1_ps(x[k + u]);
            s[2 * u] = _mm512_fmadd_ps(xv, _mm512_load_ps(b + (k + u) * NR), s[2 * u]);
            s[2 * u + 1] = _mm512_fmadd_ps(xv, _mm512_load_ps(b + (k + u) * NR + 16), s[2 * u + 1]);
        }
    }
    for (; k < kc; ++k) {
        const __m512 xv = _mm512_set1_ps(x[k]);
        s[0] = _mm512_fmadd_ps(xv, _mm512_load_ps(b + k * NR), s[0]);
        s[1] = _mm512_fmadd_ps(xv, _mm512_load_ps(b + k * NR + 16), s[1]);
    }
    const __m512 lo = _mm512_add_ps(_mm512_add_ps(s[0], s[2]), _mm512_add_ps(s[4], s[6]));
    const __m512 hi = _mm512_add_ps(_mm512_add_ps(s[1], s[3]), _mm512_add_ps(s[5], s[7]));
    _mm512_mask_storeu_ps(y, lo_mask(nr), lo);
    _mm512_mask_storeu_ps(y + 16, hi_mask(nr), hi);
}

// Raw-row GEMV: 4 rows x 2 vectors of 16 k = 8 accumulators per step of 32 k; each x vector is
// loaded once for the 4 rows. The k tail is masked.
void dot_rows_f32_avx512(int64_t k, const float *x, const float *w, int64_t ldw, int rows, float *y) {
    __m512 s[4][2];
    for (auto &r : s) r[0] = r[1] = _mm512_setzero_ps();
    const float *wr[4];
    for (int r = 0; r < 4; ++r) wr[r] = w + (r < rows ? r : 0) * ldw;  // unused rows re-read row 0
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
            s[r][0] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(wr[r] + i), s[r][0]);
            s[r][1] = _mm512_fmadd_ps(x1, _mm512_loadu_ps(wr[r] + i + 16), s[r][1]);
        }
    }
    for (; i < k; i += 16) {
        const __mmask16 m = k - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (k - i)) - 1);
        const __m512 x0 = _mm512_maskz_loadu_ps(m, x + i);
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) s[r][0] = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(m, wr[r] + i), s[r][0]);
    }
    for (int r = 0; r < rows; ++r) {  // through memory: GCC 12 warns on _mm512_reduce_add_ps
        alignas(64) float t[16];
        _mm512_store_ps(t, _mm512_add_ps(s[r][0], s[r][1]));
        float sum = 0.0f;
        for (int j = 0; j < 16; ++j) sum += t[j];
        y[r] = sum;
    }
}

}  // namespace slip::gemm
