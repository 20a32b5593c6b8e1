// The Qwen3 LLM held by slip_qwen3_model_t: FP32 weights in linear plans (q/k/v fused, gate/up
// fused), per-layer widths, and a RoPE table; and the session, which owns a KV cache per layer.
//
//     forward(model, session, tokens, n, logits, all)   // appends n tokens, writes logits
//
// The ABI entry points (qwen3-api.cpp) check arguments and call these.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slipstream.h"
#include "wan.h"  // Linear: an FP32 slip_linear_plan with an optional bias

namespace slip::runtime::qwen3 {

struct Layer {
    int64_t heads = 0, kv_heads = 0, inter = 0;
    std::vector<float> input_norm, post_norm;  // [D]
    std::vector<float> q_norm, k_norm;         // [d]
    Linear qkv;      // [(H + 2G) d, D]: rows of q, then k, then v
    Linear o;        // [D, H d]
    Linear gate_up;  // [2 I, D]: rows of gate, then up
    Linear down;     // [D, I]
};

}  // namespace slip::runtime::qwen3

struct slip_qwen3_model_s {
    slip_qwen3_config cfg{};  // per-layer pointers NULL: the widths live in layers
    std::vector<slip::runtime::qwen3::Layer> layers;
    std::vector<float> embed;  // [vocab, D]
    std::vector<float> norm;   // [D]
    slip::runtime::Linear lm_head;
    // cos/sin of p * inv_freq[j] for p < max_context, j < d/2: [max_context, d/2] each.
    std::vector<float> rope_cos, rope_sin;
};

struct slip_qwen3_session_s {
    slip_qwen3_model_t model = nullptr;
    int64_t position = 0;   // tokens in the cache
    int64_t capacity = 0;   // tokens the cache has room for (grown on demand)
    // Per layer, [capacity, G, d] each: the NHD layout slip_attn_dense reads as [1, Nk, G, d].
    std::vector<std::vector<float>> k_cache, v_cache;
};

namespace slip::runtime::qwen3 {

using Model = slip_qwen3_model_s;
using Session = slip_qwen3_session_s;

// Weights by name -> model (qwen3-model.cpp); refuses missing/unexpected/mis-shaped tensors and a
// bad config.
Model *create_model(const char *const *names, const slip_tensor *tensors, int64_t count,
                    const slip_qwen3_config &cfg);
int64_t weight_bytes(const Model &m);

// Appends tokens [0, n) to the session's cache (qwen3-forward.cpp). logits: nullptr, or [vocab]
// for the last token (all = false), or [n, vocab] (all = true). The caller has checked tokens and
// the context length; the position only advances when everything succeeded.
void forward(Session &s, const int32_t *tokens, int64_t n, float *logits, bool all);

// One token from a logits row (qwen3-sample.cpp); see slip_qwen3_sample.
int32_t sample(const float *logits, int64_t vocab, const slip_qwen3_sample_params &p, uint64_t &rng);

}  // namespace slip::runtime::qwen3
