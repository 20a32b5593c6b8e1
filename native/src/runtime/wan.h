// The Wan2.1 DiT held by slip_wan_model_t: FP32 weights, one linear plan per Linear, and the
// forward split into stages so that block-level policies can sit between them:
//
//     Step s = embed(model, x, t, context, tokens);      // tokens = hidden[0]
//     for i: run_block(model, i, s, tokens, scratch);    // tokens: block i's input -> output
//     run_head(model, s, tokens, out);
//
// A cache that skips block i leaves `tokens` as they are plus its cached delta; a mixed-precision
// policy replaces a Linear's plan (Linear::plan) with an INT8/NVFP4 one. Both only touch this
// header's types; the ABI entry points (wan-api.cpp) compose the stages.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rope.h"
#include "slipstream.h"

namespace slip::runtime {

struct PlanFree {
    void operator()(slip_linear_plan_s *p) const { slip_linear_plan_free(p); }
};
using PlanPtr = std::unique_ptr<slip_linear_plan_s, PlanFree>;

// y[M, n] = x[M, k] W^T + bias through one slip_linear_plan: an FP32 weight (FULL precision only),
// or an NVFP4 weight that serves FULL (decoded), INT8 and NVFP4 activations through
// slip_linear_plan_run_as, stored rotated by a blocked Hadamard when `hadamard` > 0 (the
// activations are rotated the same way before every product, so the rotations cancel).
struct Linear {
    PlanPtr plan;
    bool lowbit = false;  // the NVFP4 kind
    std::vector<float> bias;  // [n]
    int64_t n = 0, k = 0;
    int64_t hadamard = 0;
    int64_t weight_bytes = 0;  // resident bytes of the plans' weight (+ bias)
    // Refused (SLIP_STATUS_UNSUPPORTED) when this weight has no plan for `p`.
    void run(const float *x, int64_t m, float *y, slip_wan_precision p = SLIP_WAN_PRECISION_FULL) const;
};

// w [n, k] FP32 -> a Linear: FP32 plans, or (lowbit and options.weights NVFP4) the NVFP4 plans
// over the rotated weight. `what` names it in errors.
Linear make_linear(std::vector<float> w, int64_t n, int64_t k, std::vector<float> bias, bool lowbit,
                   const slip_wan_model_options &options, const std::string &what);

// An NVFP4 weight already quantized (compressed-tensors tensors, rotated by
// options.hadamard_block when that is > 0) -> the same Linear make_linear builds.
Linear make_nvfp4_linear(const slip_tensor &packed, const slip_tensor &scale, const slip_tensor &global, int64_t n,
                         int64_t k, std::vector<float> bias, const slip_wan_model_options &options,
                         const std::string &what);

struct Attention {
    Linear q, k, v, o;
    std::vector<float> norm_q, norm_k;  // RMSNorm weights [dim]
};

struct Block {
    Attention self_attn, cross_attn;
    std::vector<float> norm3_w, norm3_b;  // [dim]
    Linear ffn0, ffn2;
    std::vector<float> modulation;        // [6, dim]
};

}  // namespace slip::runtime

struct slip_wan_model_s {
    slip_wan_config cfg{};
    slip_wan_model_options options{};
    int64_t head_dim = 0;
    slip::runtime::Linear patch, text0, text2, time0, time2, time_proj, head;
    std::vector<slip::runtime::Block> blocks;
    std::vector<float> head_modulation;  // [2, dim]
};

namespace slip::runtime {

using Model = slip_wan_model_s;

// The per-forward state every block reads: shapes, embeddings and the RoPE table.
struct Step {
    int64_t batch = 0;
    int64_t frames = 0, height = 0, width = 0;  // latent extents
    int64_t grid[3] = {0, 0, 0};                // patches per axis
    int64_t tokens = 0;                         // L = grid product
    int64_t ctx_len = 0;                        // Lc
    std::vector<float> e;    // [B, dim]       time embedding (the head's modulation input)
    std::vector<float> e0;   // [B, 6, dim]    time projection (the blocks' modulation input)
    std::vector<float> ctx;  // [B, Lc, dim]   embedded text
    RopeTable rope;
};

// Working buffers of run_block, sized once per Step and reused by every block.
struct Scratch {
    std::vector<float> mod;              // [B, 6, dim] modulation + e0 of the current block
    std::vector<float> h, q, k, v, att;  // [B, L, dim] (k, v also hold [B, Lc, dim])
    std::vector<float> ffn;              // [B, L, ffn_dim]
    explicit Scratch(const Model &m, const Step &s);
};

// Weights by name -> model (wan-model.cpp); refuses missing/unexpected/mis-shaped tensors.
Model *create_model(const char *const *names, const slip_tensor *tensors, int64_t count,
                    const slip_wan_config &cfg, const slip_wan_model_options &options);
int64_t weight_bytes(const Model &m);

// Validates x, t, context against the model and fills a Step; writes hidden[0] into tokens
// ([B, L, dim]).
Step embed(const Model &m, const slip_tensor &x, const slip_tensor &t, const slip_tensor &context,
           std::vector<float> &tokens);
// What run_block saw of its linears' inputs (only gathered when asked for).
struct LinearProbe {
    float max_outlier = 0.0f;  // largest max|X| / mean|X| over the inputs
    int32_t full = 0, lowbit = 0;
    float attention_sparsity = 0.0f;
};

// tokens [B, L, dim] in place: block i's input in, its output out. options: the precision of the
// block's linears and the outlier guard (nullptr: FULL, no guard); probe may be nullptr.
void run_block(const Model &m, int64_t i, const Step &s, float *tokens, Scratch &scratch,
               const slip_wan_block_options *options = nullptr, LinearProbe *probe = nullptr);
// tokens [B, L, dim] -> out [B, out_channels, F, H, W].
void run_head(const Model &m, const Step &s, const float *tokens, float *out);

}  // namespace slip::runtime
