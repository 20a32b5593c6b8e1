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
#include <string>
#include <vector>

#include "rope.h"
#include "slipstream.h"

namespace slip::runtime {

// y[M, n] = x[M, k] W^T + bias through a slip_linear_plan. Owns its plan.
struct Linear {
    slip_linear_plan_t plan = nullptr;
    std::vector<float> bias;  // [n]
    int64_t n = 0, k = 0;
    Linear() = default;
    Linear(Linear &&o) noexcept : plan(o.plan), bias(std::move(o.bias)), n(o.n), k(o.k) { o.plan = nullptr; }
    Linear &operator=(Linear &&o) noexcept;
    Linear(const Linear &) = delete;
    ~Linear();
    void run(const float *x, int64_t m, float *y) const;
};

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
                    const slip_wan_config &cfg);

// Validates x, t, context against the model and fills a Step; writes hidden[0] into tokens
// ([B, L, dim]).
Step embed(const Model &m, const slip_tensor &x, const slip_tensor &t, const slip_tensor &context,
           std::vector<float> &tokens);
// tokens [B, L, dim] in place: block i's input in, its output out.
void run_block(const Model &m, int64_t i, const Step &s, float *tokens, Scratch &scratch);
// tokens [B, L, dim] -> out [B, out_channels, F, H, W].
void run_head(const Model &m, const Step &s, const float *tokens, float *out);

}  // namespace slip::runtime
