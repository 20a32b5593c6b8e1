// Internal interface of the SageAttention2 / 2++ emulation and SageBwd (slipstream.h, section
// "attention: SageAttention2"). sage-api.cpp validates; everything here trusts its arguments.
// The kernels emulate the GPU numerics exactly (INT8 QK, FP8 E4M3 PV, FP22/FP16 inner
// accumulators); they are the reference, not the fast path.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "attention-common.h"
#include "slipstream.h"

namespace slip::sage {

// E4M3's largest finite value: P~ = exp(S - m) is scaled into [0, 448] so the whole FP8 range is
// used with a static scale (SA2, "exp2(x + 8.807)" with 2^8.807 = 448).
constexpr float kPScale = 448.0f;
// FP8 MMA k-step on Ada (mma.m16n8k32) and Hopper (wgmma k=32 for 8-bit inputs): the products of
// one step are added to the accumulator together, so inner rounding happens once per 32 keys.
constexpr int64_t kMmaK = 32;
// SA2++'s bound on |V| codes: 448 (P~) * 2.25 * 64 keys = 64512 < 65504 (FP16 max), so an FP16
// partial over a 64-key tile never overflows (SageAttention2++, arXiv 2505.21136).
constexpr float kVBound2pp = 2.25f;
constexpr int64_t kMaxBlockK2pp = 64;

// INT8 code of x under scale s, rounded half away from zero as SageAttention's quantizers do
// (x/s + 0.5*sign(x), then truncation); s == 0 only when the whole group is 0.
inline int8_t int8_code(float x, float s) {
    if (s == 0.0f) return 0;
    float t = x / s;
    t += t >= 0.0f ? 0.5f : -0.5f;
    if (t > 127.0f) t = 127.0f;
    if (t < -127.0f) t = -127.0f;
    return static_cast<int8_t>(static_cast<int>(t));
}

// Inner-accumulator roundings (sage-quant.cpp). x is an exact double partial sum.
// FP22 = 1 sign, 8 exponent, 13 mantissa bits, truncated toward zero (the FP8 MMA accumulator).
double round_fp22(double x);
// FP16, round to nearest even with subnormals (the SA2++ f16 accumulator of mma.f16.e4m3.e4m3).
double round_fp16(double x);
// The E4M3 value nearest to x (ties to even, saturating at +-448).
float e4m3(float x);

// Group index of row r (counted from its tile's first row) under a granularity
// (slipstream.h, slip_sage_granularity): which rows share one INT8 scale.
int64_t q_group(int32_t granularity, int64_t r, int64_t warp_q);
int64_t q_groups_per_tile(int32_t granularity, int64_t block_q, int64_t warp_q);
int64_t k_group(int32_t granularity, int64_t r);
int64_t k_groups_per_tile(int32_t granularity);

// Quantizes `rows` rows of D floats (row r at x + r*stride) to INT8: rows with equal group(r)
// share scale amax/127. codes [rows, D]; scale[r] receives the scale of row r's group.
void quantize_rows(const float *x, int64_t stride, int64_t rows, int64_t dim,
                   const std::vector<int64_t> &group, int64_t ngroups, int8_t *codes,
                   float *scale);

// K and V of one (batch, kv head), prepared once and shared by every query head and Q tile.
struct KvPrep {
    std::vector<float> kmean;    // [D] (zeros without smooth_k)
    std::vector<float> ks;       // [Nk, D] K - kmean in FP32
    std::vector<int8_t> kcodes;  // [Nk, D] INT8 codes of ks (quantize only)
    std::vector<float> kscale;   // [Nk] scale of each key row's group
    std::vector<float> vq;       // [Nk, D] E4M3 values of V / vscale (forward, quantize only)
    std::vector<float> vscale;   // [D] per-channel V scale
};

// Builds the KvPrep of every (batch, kv head), in parallel; K scales follow `granularity`.
// with_v: also quantize V to per-channel E4M3 with codes bounded by v_bound (448 or 2.25).
std::vector<KvPrep> prepare_kv(const attn::Problem &pr, const slip_sage_params &sp,
                               int32_t granularity, bool with_v, float v_bound);

// The mask of one query row: term(j) is the additive score term of key j (0 without a mask),
// -inf for a blocked or causally hidden key. Applied to S before the row max, as in the kernel.
struct MaskRow {
    const uint8_t *u8 = nullptr;
    const float *f32 = nullptr;
    int64_t limit = INT64_MAX;  // keys j > limit are hidden by causality
    float term(int64_t j) const {
        if (j > limit) return -INFINITY;
        if (u8) return u8[j] ? 0.0f : -INFINITY;
        return f32 ? f32[j] : 0.0f;
    }
};
inline MaskRow mask_row(const attn::Problem &pr, const attn::Seq &s, int64_t h, int64_t i) {
    MaskRow m;
    m.u8 = pr.mask_u8_row(s, h, i);
    m.f32 = pr.mask_f32_row(s, h, i);
    if (pr.causal) m.limit = i + s.causal_offset();
    return m;
}

// Forward (sage-forward.cpp): writes pr.out and, when given, pr.lse.
// block_mask: U8 [B, Hq, ceil(Nq/block_q), ceil(Nk/block_k)] (1 = compute the tile pair), or null.
void run_forward(const attn::Problem &pr, const slip_sage_params &sp, const uint8_t *block_mask = nullptr);

// Gradients (sage-backward.cpp). out and d_out share q's layout and strides (pr.so for out);
// lse [B, Hq, Nq] as pr.slse; dq like q, dk/dv like k/v.
struct Grads {
    const float *out, *d_out, *lse;
    float *dq, *dk, *dv;
};
void run_backward(const attn::Problem &pr, const slip_sage_params &sp, const Grads &g);

}  // namespace slip::sage
