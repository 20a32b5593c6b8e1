// Low-bit attention for the CPU: SageAttention's recipe with the units this CPU has. K loses its
// token mean (exact for softmax), Q and K go to INT8 per token (amax/127, half away from zero),
// S = int32(Qc · Kcᵀ) · sq · sk · scale in FP32, softmax in FP32, then P and V rounded to BF16
// and O = P̃ V̂ / l with FP32 accumulation (l sums the unrounded p). AMX tiles (tdpbssd for S,
// tdpbf16ps for P̃ V̂) at SLIP_ISA_AMX; the same numbers in scalar code below it (equal up to
// FP32 summation order and the exp2 polynomial). The embedded runtime's self-attention when a
// block asks for low-bit attention; an optional block mask makes it block-sparse.
#pragma once

#include <cstdint>
#include <vector>

#include "attention-common.h"

namespace slip::attn::lowbit {

// Block-mask tiles (slip_attn_sparse_predict's defaults).
constexpr int64_t kMaskQ = 128, kMaskK = 64;

// One (batch, head), quantized: what both kernels read.
struct Head {
    int64_t lq = 0, lk = 0, hd = 0;
    const int8_t *qc = nullptr;      // [lq][hd]
    const float *qs = nullptr;       // [lq] Q scale times the softmax scale
    const int8_t *kc = nullptr;      // [lk][hd] codes of K - mean
    const float *ks = nullptr;       // [lk]
    const uint16_t *vb = nullptr;    // [lk][hd] BF16 bits of V
    const uint8_t *keep = nullptr;   // [ceil(lq/128)][ceil(lk/64)] or null (dense)
    float *out = nullptr;            // row r at out + r * out_stride
    int64_t out_stride = 0;
};

// A validated, non-varlen, non-causal problem (any layout, GQA); keep: U8 [B, Hq, ceil(Nq/128),
// ceil(Nk/64)] (1 = compute the pair) or null. The AMX kernel needs D a multiple of 64.
void attend(const Problem &pr, const uint8_t *keep);

void head_portable(const Head &h);
void head_amx(const Head &h);
// One row to INT8 with its own scale amax/127 (returned), x - shift when shift is given; the AVX-512
// twin of the scalar one in lowbit.cpp, bit for bit.
float quantize_row_amx(const float *x, const float *shift, int64_t n, int8_t *codes);

}  // namespace slip::attn::lowbit
