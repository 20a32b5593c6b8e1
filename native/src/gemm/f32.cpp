// The FP32 driver: packing, blocking, threading, ISA dispatch, and the portable kernels that
// define the layouts for the vector ones.
//
// Loop nest of one job (a block of rows x a block of NR-panels of columns):
//   for each K block (KC):          the job's B block (KC x nc) is taken (packed) or decoded
//     for each row block (MC):      MC x KC of packed A stays in L2
//       for each B panel (NR):      KC x NR of B stays in L1 ...
//         for each A panel (MR):    ... while the 14 x 32 tile runs over it
// Jobs are split so that both the row and column dimension feed every thread; the K loop is
// inside a job, so no two threads ever write the same element of Y.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../base/cpu.h"
#include "../base/thread-pool.h"
#include "gemm.h"

namespace slip::gemm {

template <class T>
Aligned<T>::Aligned(int64_t count) : n(count) {
    const size_t bytes = (static_cast<size_t>(count) * sizeof(T) + 63) / 64 * 64;
    p = static_cast<T *>(std::aligned_alloc(64, bytes ? bytes : 64));
    if (!p) throw std::bad_alloc();
}
template <class T>
Aligned<T>::~Aligned() { std::free(p); }
template <class T>
Aligned<T> &Aligned<T>::operator=(Aligned &&o) noexcept {
    std::swap(p, o.p);
    std::swap(n, o.n);
    return *this;
}
template struct Aligned<float>;
template struct Aligned<int8_t>;
template struct Aligned<uint8_t>;
template struct Aligned<uint16_t>;

// ---- portable kernels (plain C++; the compiler vectorizes the column loop with SSE2)

void kernel_f32_portable(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                         int mr, int nr, bool accumulate) {
    float t[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k)
        for (int r = 0; r < mr; ++r) {
            const float av = a[k * MR + r];
            for (int j = 0; j < NR; ++j) t[r][j] += av * b[k * NR + j];
        }
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < nr; ++j) c[r * ldc + j] = accumulate ? c[r * ldc + j] + t[r][j] : t[r][j];
}

void gemv_f32_portable(int64_t kc, const float *x, const float *b, float *y, int nr) {
    float t[NR] = {};
    for (int64_t k = 0; k < kc; ++k)
        for (int j = 0; j < NR; ++j) t[j] += x[k] * b[k * NR + j];
    std::memcpy(y, t, sizeof(float) * nr);
}

void dot_rows_f32_portable(int64_t k, const float *x, const float *w, int64_t ldw, int rows, float *y) {
    for (int r = 0; r < rows; ++r) {
        float t[8] = {};  // 8 partial sums: the compiler vectorizes, the order is fixed
        int64_t i = 0;
        for (; i + 8 <= k; i += 8)
            for (int j = 0; j < 8; ++j) t[j] += x[i + j] * w[r * ldw + i + j];
        for (; i < k; ++i) t[i % 8] += x[i] * w[r * ldw + i];
        y[r] = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    }
}

DotRowsF32 pick_dot_rows_f32() {
    const slip_isa isa = isa_active();
    if (isa >= SLIP_ISA_AVX512) return dot_rows_f32_avx512;
    if (isa >= SLIP_ISA_AVX2) return dot_rows_f32_avx2;
    return dot_rows_f32_portable;
}

KernelF32 pick_kernel_f32() {
    const slip_isa isa = isa_active();
    if (isa >= SLIP_ISA_AVX512) return kernel_f32_avx512;
    if (isa >= SLIP_ISA_AVX2) return kernel_f32_avx2;
    return kernel_f32_portable;
}

GemvF32 pick_gemv_f32() {
    const slip_isa isa = isa_active();
    if (isa >= SLIP_ISA_AVX512) return gemv_f32_avx512;
    if (isa >= SLIP_ISA_AVX2) return gemv_f32_avx2;
    return gemv_f32_portable;
}

// ---- packing

void pack_a_f32(const float *x, int64_t m, int64_t k, float *dst) {
    const int64_t panels = ceil_div(m, MR);
    parallel_for(panels, 4, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            float *d = dst + p * k * MR;
            const int rows = static_cast<int>(std::min<int64_t>(MR, m - p * MR));
            for (int64_t kk = 0; kk < k; ++kk)
                for (int r = 0; r < MR; ++r) d[kk * MR + r] = r < rows ? x[(p * MR + r) * k + kk] : 0.0f;
        }
    });
}

// Columns [n0, n0+nc) and k in [k0, k0+kc) of W [n, k] into panels of kc x NR (stride kc*NR).
static void pack_b_block(const float *w, int64_t n, int64_t k, int64_t n0, int64_t nc, int64_t k0,
                         int64_t kc, float *dst) {
    for (int64_t p = 0; p < ceil_div(nc, NR); ++p) {
        float *d = dst + p * kc * NR;
        for (int j = 0; j < NR; ++j) {
            const int64_t col = n0 + p * NR + j;
            if (col >= n0 + nc || col >= n) {
                for (int64_t kk = 0; kk < kc; ++kk) d[kk * NR + j] = 0.0f;
                continue;
            }
            const float *src = w + col * k + k0;
            for (int64_t kk = 0; kk < kc; ++kk) d[kk * NR + j] = src[kk];
        }
    }
}

void pack_b_f32(const float *w, int64_t n, int64_t k, float *dst) {
    const int64_t panels = ceil_div(n, NR);
    parallel_for(panels, 4, [&](int64_t p0, int64_t p1) {
        for (int64_t pc = 0; pc < k; pc += KC) {
            const int64_t kc = std::min(KC, k - pc);
            pack_b_block(w, n, k, p0 * NR, std::min(p1 * NR, n) - p0 * NR, pc, kc,
                         dst + pc * panels * NR + p0 * kc * NR);
        }
    });
}

void BSource::decode(int64_t, int64_t, int64_t, int64_t, float *) const {}

// ---- epilogue (baseline-compiled: identical rounding at every ISA level)

void apply_epilogue(float *y, int64_t ldy, int64_t rows, int64_t n0, int64_t cols,
                    const float *row_scale, const float *col_scale, const float *bias) {
    if (!row_scale && !col_scale && !bias) return;
    for (int64_t i = 0; i < rows; ++i) {
        float *yr = y + i * ldy + n0;
        const float rs = row_scale ? row_scale[i] : 1.0f;
        for (int64_t j = 0; j < cols; ++j) {
            float t = yr[j];
            if (row_scale) t *= rs;
            if (col_scale) t *= col_scale[n0 + j];
            if (bias) t += bias[n0 + j];
            yr[j] = t;
        }
    }
}

// ---- driver

namespace {

// M = 1: every thread streams its own panels of the weight once.
void run_gemv(const float *x, const BSource &b, const Epilogue &ep, float *y) {
    const GemvF32 gemv = pick_gemv_f32();
    const int64_t n = b.n, k = b.k, panels = ceil_div(n, NR);
    parallel_for(panels, 4, [&](int64_t p0, int64_t p1) {
        Aligned<float> scratch(b.packed ? 0 : (p1 - p0) * NR * std::min(KC, k));
        alignas(64) float t[NR];
        for (int64_t pc = 0; pc < k; pc += KC) {
            const int64_t kc = std::min(KC, k - pc);
            const float *bb = b.packed ? b.packed + pc * panels * NR + p0 * kc * NR : scratch.data();
            if (!b.packed) b.decode(p0 * NR, std::min(p1 * NR, n) - p0 * NR, pc, kc, scratch.data());
            for (int64_t p = p0; p < p1; ++p) {
                const int nr = static_cast<int>(std::min<int64_t>(NR, n - p * NR));
                gemv(kc, x + pc, bb + (p - p0) * kc * NR, t, nr);
                for (int j = 0; j < nr; ++j) y[p * NR + j] = pc ? y[p * NR + j] + t[j] : t[j];
            }
        }
        const int64_t c0 = p0 * NR, c1 = std::min(p1 * NR, n);
        apply_epilogue(y, n, 1, c0, c1 - c0, ep.row_scale, ep.col_scale, ep.bias);
    });
}

}  // namespace

void run_f32(const float *x, int64_t m, const BSource &b, const Epilogue &ep, float *y) {
    const int64_t n = b.n, k = b.k;
    if (m == 0 || n == 0) return;
    if (k == 0) {
        std::fill(y, y + m * n, 0.0f);
        apply_epilogue(y, n, m, 0, n, ep.row_scale, ep.col_scale, ep.bias);
        return;
    }
    if (m == 1) return run_gemv(x, b, ep, y);

    const KernelF32 kernel = pick_kernel_f32();
    Aligned<float> ap(ceil_div(m, MR) * MR * k);
    pack_a_f32(x, m, k, ap.data());

    // Job grid: column blocks of up to 32 panels (1024 columns: a 1 MiB B block in L2), row
    // blocks of whole MC multiples, enough jobs for every thread to get about two.
    const int64_t threads = num_threads(), panels = ceil_div(n, NR);
    const int64_t nc_panels = std::clamp<int64_t>(ceil_div(panels, 2 * threads), 1, 32);
    const int64_t col_jobs = ceil_div(panels, nc_panels);
    const int64_t mc_blocks = ceil_div(m, MC);
    const int64_t row_jobs = std::min(mc_blocks, ceil_div(2 * threads, col_jobs));
    const int64_t rows_per_job = ceil_div(mc_blocks, row_jobs) * MC;

    parallel_for(row_jobs * col_jobs, 1, [&](int64_t j0, int64_t j1) {
        Aligned<float> scratch(b.packed ? 0 : nc_panels * NR * KC);
        for (int64_t job = j0; job < j1; ++job) {
            const int64_t i0 = (job / col_jobs) * rows_per_job, i1 = std::min(m, i0 + rows_per_job);
            const int64_t p0 = (job % col_jobs) * nc_panels, p1 = std::min(panels, p0 + nc_panels);
            if (i0 >= i1) continue;
            for (int64_t pc = 0; pc < k; pc += KC) {
                const int64_t kc = std::min(KC, k - pc);
                const float *bb = b.packed ? b.packed + pc * panels * NR + p0 * kc * NR : scratch.data();
                const int64_t bstride = kc * NR;
                if (!b.packed) b.decode(p0 * NR, std::min(p1 * NR, n) - p0 * NR, pc, kc, scratch.data());
                for (int64_t ic = i0; ic < i1; ic += MC) {
                    const int64_t ie = std::min(i1, ic + MC);
                    for (int64_t p = p0; p < p1; ++p) {
                        const int nr = static_cast<int>(std::min<int64_t>(NR, n - p * NR));
                        for (int64_t ir = ic; ir < ie; ir += MR) {
                            const int mr = static_cast<int>(std::min<int64_t>(MR, ie - ir));
                            kernel(kc, ap.data() + (ir / MR) * k * MR + pc * MR, bb + (p - p0) * bstride,
                                   y + ir * n + p * NR, n, mr, nr, pc > 0);
                        }
                    }
                }
            }
            const int64_t c0 = p0 * NR, c1 = std::min(p1 * NR, n);
            apply_epilogue(y + i0 * n, n, i1 - i0, c0, c1 - c0, ep.row_scale ? ep.row_scale + i0 : nullptr,
                           ep.col_scale, ep.bias);
        }
    });
}

// A raw row-major F32 weight, packed block by block as the driver reaches it.
struct RawF32Source : BSource {
    const float *w;
    RawF32Source(const float *w_, int64_t n_, int64_t k_) : w(w_) { n = n_; k = k_; }
    void decode(int64_t n0, int64_t nc, int64_t k0, int64_t kc, float *dst) const override {
        pack_b_block(w, n, k, n0, nc, k0, kc, dst);
    }
};

void gemm_f32_raw(const float *x, int64_t m, const float *w, int64_t n, int64_t k,
                  const float *bias, float *y) {
    if (m == 1 && n > 0 && k > 0) {
        // GEMV: packing would read and write W once more than the product reads it; dot the
        // rows in place instead, 4 rows per call (x is reused from L1 across them).
        const DotRowsF32 dot = pick_dot_rows_f32();
        parallel_for(ceil_div(n, 4), 16, [&](int64_t q0, int64_t q1) {
            for (int64_t q = q0; q < q1; ++q) {
                const int rows = static_cast<int>(std::min<int64_t>(4, n - q * 4));
                dot(k, x, w + q * 4 * k, k, rows, y + q * 4);
            }
            const int64_t c0 = q0 * 4, c1 = std::min(q1 * 4, n);
            apply_epilogue(y, n, 1, c0, c1 - c0, nullptr, nullptr, bias);
        });
        return;
    }
    RawF32Source src(w, n, k);
    Epilogue ep;
    ep.bias = bias;
    run_f32(x, m, src, ep, y);
}

}  // namespace slip::gemm
