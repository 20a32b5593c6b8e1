// NVFP4 weights against BF16 activations (SLIP_ACT_BF16): the 16-bit "high precision" path of a
// mixed-precision model. The weight is the same PackedFp4 the integer paths use, still 4.5 bits
// per element in memory; per call each panel is expanded to BF16, which holds e2m1 · E4M3 exactly
// (at most 6 significant bits), with the global scale moved to the epilogue.
#pragma once

#include <cstdint>

#include "../base/bf16.h"
#include "fp4-int.h"

namespace slip::gemm {

// Rows [r0, r1) of x [m, k] rounded into dst [m, k]. The AVX-512 twin is the same loop compiled
// for it (the compiler vectorizes the integer rounding).
void round_rows_bf16(const float *x, int64_t k, int64_t r0, int64_t r1, uint16_t *dst);
void round_rows_bf16_amx(const float *x, int64_t k, int64_t r0, int64_t r1, uint16_t *dst);

// y = x · Wᵀ (+ bias) with x rounded to BF16. AMX tiles at SLIP_ISA_AMX (k a multiple of 32);
// otherwise the rounded activations times the decoded weight on the FP32 kernels.
void run_fp4_bf16(const float *x, int64_t m, const PackedFp4 &w, const float *bias, float *y);

// The AMX driver's job: panels [p0, p1) of w for all m rows of xb (BF16 bits [mpad, k], mpad a
// multiple of 32, rows past m zero). y = acc · out_scale + bias.
void run_fp4_bf16_amx(const uint16_t *xb, int64_t m, const PackedFp4 &w, float out_scale, const float *bias,
                      float *y, int64_t p0, int64_t p1);

}  // namespace slip::gemm
