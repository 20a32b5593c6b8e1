// The linear plan: the weight in the form the dispatched driver wants, built once.
#pragma once

#include <memory>
#include <vector>

#include "fp4-int.h"
#include "gemm.h"

namespace slip::gemm {

// 4-bit codes two per byte (even column in the low nibble: NVFP4, MXFP4, and compressed-tensors'
// int32 INT4 words, which are the same bytes on a little-endian host), one float factor per group
// of columns and a 16-entry code table. Expanded to FP32 panels one L2 block at a time, so the
// weight stays at 4 bits (+ scales) in memory.
struct NibbleSource : BSource {
    std::vector<uint8_t> bytes;  // [n, k/2]
    std::vector<float> factor;   // [n, k/group]
    int64_t group = 0;
    float lut[16] = {};
    void decode(int64_t n0, int64_t nc, int64_t k0, int64_t kc, float *dst) const override;
};

// The AVX-512 decode of the same block (nibble-avx512.cpp), bit-identical; NibbleSource::decode
// dispatches to it.
void decode_nibbles_avx512(const NibbleSource &s, int64_t n0, int64_t nc, int64_t k0, int64_t kc, float *dst);

// Packed FP32 panels (F32 weights, and INT8/FP8 weights decoded at plan time).
struct PackedSource : BSource {
    Aligned<float> panels;
};

// NVFP4_A8 / NVFP4_A4: an NVFP4 weight (a PackedFp4 in b) against per-token INT8 / NVFP4
// activations, as integer products (fp4-int.h); NVFP4_BF16 against BF16 ones (fp4-bf16.h), only
// through slip_linear_plan_run_as.
enum class Path { F32, I8, FP8, NVFP4_A8, NVFP4_A4, NVFP4_BF16 };

struct Plan {
    int32_t format = 0;
    Path path = Path::F32;
    int64_t n = 0, k = 0;
    bool e5m2 = false;              // FP8 activations' element format
    float act_global = 0.0f;        // NVFP4 activations (NVFP4_A4)
    int32_t act_quant = SLIP_ACT_NONE;  // the slip_act_quant it was made with
    std::unique_ptr<BSource> b;     // FP32 paths; the PackedFp4 of NVFP4_A8/A4
    std::vector<float> col_scale;   // FP8 dynamic: per-row weight scale, applied in the epilogue
    PackedI8 i8;                    // W8A8
    // A weight on a CUDA device: its plan there (native/cuda/gemm/, opaque; freeing it frees the
    // device copy). The members above then stay empty.
    std::shared_ptr<void> cuda;
};

// Validates w and p and builds the plan (weights.cpp).
std::unique_ptr<Plan> build_plan(const slip_qweight *w, const slip_linear_params *p);

void quantize_fp8_rows(const float *x, int64_t m, int64_t k, bool e5m2, float *out, float *scale);
void quantize_i8_rows(const float *x, int64_t m, int64_t k, float *out, float *scale);
void quantize_nvfp4_rows(const float *x, int64_t m, int64_t k, float global, float *out);
// One row of it with AVX-512 (act-avx512.cpp), bit-identical; k a multiple of 16.
void quantize_nvfp4_row_avx512(const float *row, int64_t k, float g, float *out);

}  // namespace slip::gemm

struct slip_linear_plan_s {
    std::unique_ptr<slip::gemm::Plan> plan;
};
