// The driver of fp4-bf16.h: activations rounded to BF16 once per call, then AMX tiles over
// column panels, or the FP32 emulation.
#include <cstring>

#include "../base/cpu.h"
#include "../base/thread-pool.h"
#include "fp4-bf16.h"

namespace slip::gemm {

void round_rows_bf16(const float *x, int64_t k, int64_t r0, int64_t r1, uint16_t *dst) {
    for (int64_t i = r0 * k; i < r1 * k; ++i) dst[i] = bf16_bits(x[i]);
}

void run_fp4_bf16(const float *x, int64_t m, const PackedFp4 &w, const float *bias, float *y) {
    const int64_t n = w.n, k = w.k;
    if (m == 0 || n == 0) return;
    const bool amx = isa_active() >= SLIP_ISA_AMX && k % 32 == 0 && k > 0;
    const int64_t rows = amx ? (m + 31) / 32 * 32 : m;
    // Kept by the calling thread across calls, as run_fp4 keeps its codes (no heap trim and
    // page faults per call). The pool's workers see their own thread_local: they get the pointer.
    thread_local Aligned<uint16_t> buf;
    if (buf.n < rows * k) buf = Aligned<uint16_t>(rows * k);
    uint16_t *xb = buf.data();
    const bool avx512 = isa_active() >= SLIP_ISA_AMX;
    parallel_for(m, 64, [&](int64_t r0, int64_t r1) {
        (avx512 ? round_rows_bf16_amx : round_rows_bf16)(x, k, r0, r1, xb);
    });
    if (amx) {
        std::memset(xb + m * k, 0, static_cast<size_t>((rows - m) * k) * 2);
        parallel_for(ceil_div(n, NR), 1, [&](int64_t p0, int64_t p1) {
            run_fp4_bf16_amx(xb, m, w, 1.0f / w.global, bias, y, p0, p1);
        });
        return;
    }
    Aligned<float> xr(m * k);
    for (int64_t i = 0; i < m * k; ++i) xr.data()[i] = bf16_value(xb[i]);
    Epilogue ep;
    ep.bias = bias;
    run_f32(xr.data(), m, w, ep, y);
}

}  // namespace slip::gemm
