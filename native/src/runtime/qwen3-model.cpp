// slip_qwen3_model_t from named weights: the config checks, the table of expected names and
// shapes (per-layer widths), widening to FP32, the fused linear plans and the RoPE table.
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "../base/bf16.h"
#include "../base/error.h"
#include "../base/tensor.h"
#include "named-weights.h"
#include "qwen3.h"

namespace slip::runtime::qwen3 {

namespace {

long long ll(int64_t v) { return static_cast<long long>(v); }

using Weights = NamedWeights;

void positive(int64_t v, const char *name) {
    if (v <= 0) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a positive %s, got %lld", name, ll(v)));
}

void check_config(const slip_qwen3_config &c) {
    positive(c.vocab_size, "config.vocab_size");
    positive(c.hidden_size, "config.hidden_size");
    positive(c.layers, "config.layers");
    positive(c.head_dim, "config.head_dim");
    positive(c.max_context, "config.max_context");
    if (c.vocab_size > INT32_MAX)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected config.vocab_size <= 2^31 - 1 (tokens are int32), got %lld", ll(c.vocab_size)));
    if (c.head_dim % 2 != 0 || c.head_dim > 256)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected an even config.head_dim <= 256, got %lld", ll(c.head_dim)));
    if (!(c.rope_theta > 0.0) || !std::isfinite(c.rope_theta))
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a positive finite config.rope_theta, got %g", c.rope_theta));
    if (!(c.rms_norm_eps > 0.0f) || !std::isfinite(c.rms_norm_eps))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a positive finite config.rms_norm_eps, got %g", static_cast<double>(c.rms_norm_eps)));
    if (c.tie_word_embeddings != 0 && c.tie_word_embeddings != 1)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected config.tie_word_embeddings 0 or 1, got %d", c.tie_word_embeddings));
    if (c.attention_bias != 0 && c.attention_bias != 1)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected config.attention_bias 0 or 1, got %d", c.attention_bias));
    // The RoPE table is [max_context, d/2] twice: refuse sizes that cannot be meant.
    if (c.max_context > (int64_t{1} << 24))
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected config.max_context <= 2^24, got %lld", ll(c.max_context)));
}

// Layer i's widths: the per-layer lists where given, else the uniform fields.
void layer_widths(const slip_qwen3_config &c, int64_t i, Layer &l) {
    l.heads = c.layer_heads ? c.layer_heads[i] : c.heads;
    l.kv_heads = c.layer_kv_heads ? c.layer_kv_heads[i] : c.kv_heads;
    l.inter = c.layer_intermediate ? c.layer_intermediate[i] : c.intermediate_size;
    const char *src_h = c.layer_heads ? "config.layer_heads" : "config.heads";
    const char *src_g = c.layer_kv_heads ? "config.layer_kv_heads" : "config.kv_heads";
    const char *src_i = c.layer_intermediate ? "config.layer_intermediate" : "config.intermediate_size";
    if (l.heads <= 0 || l.kv_heads <= 0 || l.inter <= 0)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected positive widths for layer %lld, got %lld query heads (%s), %lld KV heads (%s), %lld MLP "
                    "channels (%s)",
                    ll(i), ll(l.heads), src_h, ll(l.kv_heads), src_g, ll(l.inter), src_i));
    if (l.heads % l.kv_heads != 0)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected layer %lld's query heads (%lld, %s) to be a multiple of its KV heads (%lld, %s)", ll(i),
                    ll(l.heads), src_h, ll(l.kv_heads), src_g));
}

Linear fp32_linear(std::vector<float> w, int64_t n, int64_t k, std::vector<float> bias, const std::string &what) {
    slip_wan_model_options o;
    slip_wan_model_options_init(&o);
    return make_linear(std::move(w), n, k, std::move(bias), false, o, what);
}

// HF's default RoPE in FP32: inv_freq = 1 / theta^(2j/d) rounded to float, the angle p * inv_freq
// as one float product (its matmul of [d/2, 1] by [1, L]), then cos/sin of that float angle.
void rope_table(Model &m) {
    const int64_t half = m.cfg.head_dim / 2, L = m.cfg.max_context;
    std::vector<float> inv(static_cast<size_t>(half));
    for (int64_t j = 0; j < half; ++j)
        inv[j] = static_cast<float>(1.0 / std::pow(m.cfg.rope_theta, static_cast<double>(2 * j) / static_cast<double>(m.cfg.head_dim)));
    m.rope_cos.resize(static_cast<size_t>(L * half));
    m.rope_sin.resize(m.rope_cos.size());
    for (int64_t p = 0; p < L; ++p)
        for (int64_t j = 0; j < half; ++j) {
            const float ang = static_cast<float>(p) * inv[j];
            m.rope_cos[p * half + j] = static_cast<float>(std::cos(static_cast<double>(ang)));
            m.rope_sin[p * half + j] = static_cast<float>(std::sin(static_cast<double>(ang)));
        }
}

}  // namespace

Model *create_model(const char *const *names, const slip_tensor *tensors, int64_t count, const slip_qwen3_config &cfg) {
    check_config(cfg);
    Weights w(names, tensors, count, "Qwen3");
    auto m = std::make_unique<Model>();
    m->cfg = cfg;
    m->cfg.layer_heads = m->cfg.layer_kv_heads = m->cfg.layer_intermediate = nullptr;
    const int64_t D = cfg.hidden_size, d = cfg.head_dim, V = cfg.vocab_size;
    const bool bias = cfg.attention_bias != 0;
    m->embed = w.take("model.embed_tokens.weight", {V, D});
    m->layers.resize(static_cast<size_t>(cfg.layers));
    for (int64_t i = 0; i < cfg.layers; ++i) {
        Layer &l = m->layers[static_cast<size_t>(i)];
        layer_widths(cfg, i, l);
        const std::string p = "model.layers." + std::to_string(i);
        const std::string a = p + ".self_attn.";
        const int64_t H = l.heads, G = l.kv_heads, I = l.inter;
        l.input_norm = w.take(p + ".input_layernorm.weight", {D});
        l.post_norm = w.take(p + ".post_attention_layernorm.weight", {D});
        l.q_norm = w.take(a + "q_norm.weight", {d});
        l.k_norm = w.take(a + "k_norm.weight", {d});
        std::vector<float> qkv, qkv_bias, o_bias;
        qkv.reserve(static_cast<size_t>((H + 2 * G) * d * D));
        w.take_into(a + "q_proj.weight", {H * d, D}, qkv);
        w.take_into(a + "k_proj.weight", {G * d, D}, qkv);
        w.take_into(a + "v_proj.weight", {G * d, D}, qkv);
        if (bias) {
            w.take_into(a + "q_proj.bias", {H * d}, qkv_bias);
            w.take_into(a + "k_proj.bias", {G * d}, qkv_bias);
            w.take_into(a + "v_proj.bias", {G * d}, qkv_bias);
            o_bias = w.take(a + "o_proj.bias", {D});
        }
        l.qkv = fp32_linear(std::move(qkv), (H + 2 * G) * d, D, std::move(qkv_bias), a + "{q,k,v}_proj.weight");
        l.o = fp32_linear(w.take(a + "o_proj.weight", {D, H * d}), D, H * d, std::move(o_bias), a + "o_proj.weight");
        std::vector<float> gate_up;
        gate_up.reserve(static_cast<size_t>(2 * I * D));
        w.take_into(p + ".mlp.gate_proj.weight", {I, D}, gate_up);
        w.take_into(p + ".mlp.up_proj.weight", {I, D}, gate_up);
        l.gate_up = fp32_linear(std::move(gate_up), 2 * I, D, {}, p + ".mlp.{gate,up}_proj.weight");
        l.down = fp32_linear(w.take(p + ".mlp.down_proj.weight", {D, I}), D, I, {}, p + ".mlp.down_proj.weight");
    }
    m->norm = w.take("model.norm.weight", {D});
    if (w.has("lm_head.weight") || !cfg.tie_word_embeddings)
        m->lm_head = fp32_linear(w.take("lm_head.weight", {V, D}), V, D, {}, "lm_head.weight");
    else
        m->lm_head = fp32_linear(m->embed, V, D, {}, "model.embed_tokens.weight (tied lm_head)");
    w.require_all_taken();
    rope_table(*m);
    return m.release();
}

int64_t weight_bytes(const Model &m) {
    auto vec = [](const std::vector<float> &v) { return static_cast<int64_t>(v.size()) * 4; };
    int64_t bytes = vec(m.embed) + vec(m.norm) + m.lm_head.weight_bytes;
    for (const Layer &l : m.layers)
        bytes += vec(l.input_norm) + vec(l.post_norm) + vec(l.q_norm) + vec(l.k_norm) + l.qkv.weight_bytes +
                 l.o.weight_bytes + l.gate_up.weight_bytes + l.down.weight_bytes;
    return bytes;
}

}  // namespace slip::runtime::qwen3
