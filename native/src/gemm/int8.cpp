// W8A8: dynamic per-token INT8 activations against a per-row INT8 weight, int32 accumulation.
//
// vpdpbusd is u8 x s8, so activations are stored shifted, u = q + 128, and the product is
//   sum_k u_k w_k = sum_k q_k w_k + 128 * colsum(w),
// corrected once per output with the column sum the plan precomputed: exact in int32 for
// K < 2^31 / (255 * 127), about 66,000. The portable kernel consumes the same packing, so the
// int32 results, and through the shared epilogue the floats, are identical at every ISA level.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../base/cpu.h"
#include "../base/error.h"
#include "../base/thread-pool.h"
#include "gemm.h"

namespace slip::gemm {

void kernel_i8_portable(int64_t kc4, const uint8_t *a, const int8_t *b, int32_t *c, int64_t ldc,
                        int mr, int nr, bool accumulate) {
    int32_t t[MR][NR] = {};
    for (int64_t k = 0; k < kc4; ++k)
        for (int r = 0; r < mr; ++r)
            for (int j = 0; j < NR; ++j)
                for (int u = 0; u < 4; ++u)
                    t[r][j] += int32_t(a[(k * MR + r) * 4 + u]) * int32_t(b[(k * NR + j) * 4 + u]);
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < nr; ++j) c[r * ldc + j] = accumulate ? c[r * ldc + j] + t[r][j] : t[r][j];
}

KernelI8 pick_kernel_i8() {
    return isa_active() >= SLIP_ISA_AVX512VNNI ? kernel_i8_avx512vnni : kernel_i8_portable;
}

void pack_b_i8(const int8_t *w, int64_t n, int64_t k, int8_t *dst, int32_t *colsum) {
    const int64_t k4 = ceil_div(k, 4);
    parallel_for(ceil_div(n, NR), 4, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            int8_t *d = dst + p * k4 * NR * 4;
            for (int j = 0; j < NR; ++j) {
                const int64_t col = p * NR + j;
                int32_t sum = 0;
                for (int64_t kk = 0; kk < k4 * 4; ++kk) {
                    const int8_t v = (col < n && kk < k) ? w[col * k + kk] : 0;
                    d[((kk / 4) * NR + j) * 4 + kk % 4] = v;
                    sum += v;
                }
                if (col < n) colsum[col] = sum;
            }
        }
    });
}

// Per-token quantization, q = RNE(x / s) with s = amax / 127, straight into the shifted u8
// panels. Padding (rows past M, k past K) is 128, i.e. q = 0.
static void quantize_pack_a(const float *x, int64_t m, int64_t k, uint8_t *dst, float *scale) {
    const int64_t k4 = ceil_div(k, 4);
    parallel_for(ceil_div(m, MR), 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            uint8_t *d = dst + p * k4 * MR * 4;
            std::memset(d, 128, static_cast<size_t>(k4 * MR * 4));
            for (int r = 0; r < MR && p * MR + r < m; ++r) {
                const float *row = x + (p * MR + r) * k;
                const float s = activation_row_amax(row, k, p * MR + r) / 127.0f;
                scale[p * MR + r] = s;
                if (s == 0.0f) continue;
                for (int64_t kk = 0; kk < k; ++kk) {
                    const float q = std::min(127.0f, std::max(-127.0f, std::nearbyint(row[kk] / s)));
                    d[((kk / 4) * MR + r) * 4 + kk % 4] = static_cast<uint8_t>(static_cast<int>(q) + 128);
                }
            }
        }
    });
}

void run_i8(const float *x, int64_t m, const PackedI8 &w, const float *bias, float *y) {
    const int64_t n = w.n, k = w.k, k4 = ceil_div(k, 4);
    if (m == 0 || n == 0) return;
    const KernelI8 kernel = pick_kernel_i8();
    Aligned<uint8_t> ap(ceil_div(m, MR) * MR * k4 * 4);
    std::vector<float> xs(static_cast<size_t>(m));
    quantize_pack_a(x, m, k, ap.data(), xs.data());

    // Same job grid as FP32. Y doubles as the int32 accumulator (same size) until the epilogue.
    int32_t *acc = reinterpret_cast<int32_t *>(y);
    const int64_t threads = num_threads(), panels = ceil_div(n, NR);
    const int64_t nc_panels = std::clamp<int64_t>(ceil_div(panels, 2 * threads), 1, 32);
    const int64_t col_jobs = ceil_div(panels, nc_panels);
    const int64_t mc_blocks = ceil_div(m, MC);
    const int64_t row_jobs = std::min(mc_blocks, ceil_div(2 * threads, col_jobs));
    const int64_t rows_per_job = ceil_div(mc_blocks, row_jobs) * MC;

    parallel_for(row_jobs * col_jobs, 1, [&](int64_t j0, int64_t j1) {
        for (int64_t job = j0; job < j1; ++job) {
            const int64_t i0 = (job / col_jobs) * rows_per_job, i1 = std::min(m, i0 + rows_per_job);
            const int64_t p0 = (job % col_jobs) * nc_panels, p1 = std::min(panels, p0 + nc_panels);
            if (i0 >= i1) continue;
            if (k4 == 0)
                for (int64_t i = i0; i < i1; ++i)
                    std::fill(acc + i * n + p0 * NR, acc + i * n + std::min(p1 * NR, n), 0);
            for (int64_t pc = 0; pc < k4; pc += KC4) {
                const int64_t kc = std::min(KC4, k4 - pc);
                for (int64_t ic = i0; ic < i1; ic += MC) {
                    const int64_t ie = std::min(i1, ic + MC);
                    for (int64_t p = p0; p < p1; ++p) {
                        const int nr = static_cast<int>(std::min<int64_t>(NR, n - p * NR));
                        const int8_t *bp = w.panels.data() + (p * k4 + pc) * NR * 4;
                        for (int64_t ir = ic; ir < ie; ir += MR) {
                            const int mr = static_cast<int>(std::min<int64_t>(MR, ie - ir));
                            kernel(kc, ap.data() + ((ir / MR) * k4 + pc) * MR * 4, bp,
                                   acc + ir * n + p * NR, n, mr, nr, pc > 0);
                        }
                    }
                }
            }
            // int32 -> float in place: subtract the shift's column term, then the shared epilogue.
            const int64_t c0 = p0 * NR, c1 = std::min(p1 * NR, n);
            for (int64_t i = i0; i < i1; ++i)
                for (int64_t j = c0; j < c1; ++j) {
                    int32_t v;  // memcpy: the same bytes seen as int32, then as float
                    std::memcpy(&v, y + i * n + j, sizeof v);
                    y[i * n + j] = static_cast<float>(v - 128 * w.colsum[j]);
                }
            apply_epilogue(y + i0 * n, n, i1 - i0, c0, c1 - c0, xs.data() + i0, w.scale.data(), bias);
        }
    });
}

}  // namespace slip::gemm
