// AVX2 FP32 microkernel. 16 ymm registers hold a 6 x 16 tile (12 accumulators, 2 B vectors, 1
// broadcast), so the shared 14 x 32 panel tile is covered as row groups {6, 6, 2} times two
// 16-column halves, each reading its half of the 32-wide B panel.
#include <immintrin.h>

#include <cstring>

#include "gemm.h"

namespace slip::gemm {

namespace {

template <int R>
void half(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, bool acc) {
    __m256 c0[R], c1[R];
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_load_ps(b + k * NR);
        const __m256 b1 = _mm256_load_ps(b + k * NR + 8);
#pragma GCC unroll 6
        for (int r = 0; r < R; ++r) {
            const __m256 av = _mm256_broadcast_ss(a + k * MR + r);
            c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
        float *row = c + r * ldc;
        if (acc) {
            c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(row));
            c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(row + 8));
        }
        _mm256_storeu_ps(row, c0[r]);
        _mm256_storeu_ps(row + 8, c1[r]);
    }
}

using Half = void (*)(int64_t, const float *, const float *, float *, int64_t, bool);
constexpr Half kHalves[7] = {nullptr, half<1>, half<2>, half<3>, half<4>, half<5>, half<6>};

// Full-width tile: every row group, both halves, written straight into c.
void full(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr, bool acc) {
    for (int r0 = 0; r0 < mr; r0 += 6) {
        const int rows = mr - r0 < 6 ? mr - r0 : 6;
        for (int h = 0; h < 2; ++h) kHalves[rows](kc, a + r0, b + h * 16, c + r0 * ldc + h * 16, ldc, acc);
    }
}

}  // namespace

void kernel_f32_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr,
                     int nr, bool accumulate) {
    if (nr == NR) return full(kc, a, b, c, ldc, mr, accumulate);
    // Ragged right edge: compute the whole tile into a scratch tile, copy the valid columns.
    alignas(64) float t[MR * NR];
    full(kc, a, b, t, NR, mr, false);
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < nr; ++j) c[r * ldc + j] = accumulate ? c[r * ldc + j] + t[r * NR + j] : t[r * NR + j];
}

void gemv_f32_avx2(int64_t kc, const float *x, const float *b, float *y, int nr) {
    __m256 s[8];
    for (auto &v : s) v = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2) {
#pragma GCC unroll 2
        for (int u = 0; u < 2; ++u) {
            const __m256 xv = _mm256_broadcast_ss(x + k + u);
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v)
                s[4 * u + v] = _mm256_fmadd_ps(xv, _mm256_load_ps(b + (k + u) * NR + 8 * v), s[4 * u + v]);
        }
    }
    for (; k < kc; ++k) {
        const __m256 xv = _mm256_broadcast_ss(x + k);
        for (int v = 0; v < 4; ++v) s[v] = _mm256_fmadd_ps(xv, _mm256_load_ps(b + k * NR + 8 * v), s[v]);
    }
    alignas(32) float t[NR];
    for (int v = 0; v < 4; ++v) _mm256_store_ps(t + 8 * v, _mm256_add_ps(s[v], s[4 + v]));
    std::memcpy(y, t, sizeof(float) * nr);
}

// Raw-row GEMV: 4 rows x 2 vectors of 8 k per step of 16 k; the k tail is scalar.
void dot_rows_f32_avx2(int64_t k, const float *x, const float *w, int64_t ldw, int rows, float *y) {
    __m256 s[4][2];
    for (auto &r : s) r[0] = r[1] = _mm256_setzero_ps();
    const float *wr[4];
    for (int r = 0; r < 4; ++r) wr[r] = w + (r < rows ? r : 0) * ldw;
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
            s[r][0] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(wr[r] + i), s[r][0]);
            s[r][1] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(wr[r] + i + 8), s[r][1]);
        }
    }
    for (int r = 0; r < rows; ++r) {
        alignas(32) float t[8];
        _mm256_store_ps(t, _mm256_add_ps(s[r][0], s[r][1]));
        float sum = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
        for (int64_t j = i; j < k; ++j) sum += x[j] * wr[r][j];
        y[r] = sum;
    }
}

}  // namespace slip::gemm
