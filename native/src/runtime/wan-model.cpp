// slip_wan_model_t from named weights: the table of expected names and shapes, widening of
// F16/BF16 to FP32, and one FP32 linear plan per Linear.
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "../base/error.h"
#include "../base/tensor.h"
#include "named-weights.h"
#include "wan.h"

namespace slip::runtime {

namespace {

// The model's named weights, plus the linears, which options.weights may store in NVFP4.
class Weights : public NamedWeights {
  public:
    Weights(const char *const *names, const slip_tensor *tensors, int64_t count, const slip_wan_model_options &o)
        : NamedWeights(names, tensors, count, "Wan2.1"), options_(o) {}

    // weight [n, k] (given as `shape`, flattened to [n, rest]) and bias [n] -> a Linear; lowbit:
    // one of the blocks' linears, which options.weights may store in NVFP4. An NVFP4 model may be
    // given such a linear already quantized, as compressed-tensors names it (<prefix>.weight_packed
    // U8 [n, k/2], .weight_scale F8_E4M3 [n, k/16], .weight_global_scale F32 [1]; e.g. GPTQ's,
    // models/wan-mini/quantize_nvfp4.py), rotated by options.hadamard_block as the runtime would.
    Linear linear(const std::string &prefix, std::initializer_list<int64_t> shape, bool lowbit = false) {
        if (lowbit && options_.weights == SLIP_WAN_WEIGHTS_NVFP4 && has(prefix + ".weight_packed")) {
            const int64_t n = *shape.begin(), k = *(shape.begin() + 1);
            std::vector<float> bias = take(prefix + ".bias", {n});
            return make_nvfp4_linear(take_raw(prefix + ".weight_packed", SLIP_DTYPE_U8, {n, k / 2}),
                                     take_raw(prefix + ".weight_scale", SLIP_DTYPE_F8_E4M3, {n, k / 16}),
                                     take_raw(prefix + ".weight_global_scale", SLIP_DTYPE_F32, {1}), n, k, std::move(bias),
                                     options_, prefix);
        }
        std::vector<float> w = take(prefix + ".weight", shape);
        const int64_t n = *shape.begin(), k = n ? static_cast<int64_t>(w.size()) / n : 0;
        std::vector<float> bias = take(prefix + ".bias", {n});
        return make_linear(std::move(w), n, k, std::move(bias), lowbit, options_, prefix + ".weight");
    }

  private:
    slip_wan_model_options options_;
};

void check_options(const slip_wan_model_options &o) {
    if (o.weights != SLIP_WAN_WEIGHTS_F32 && o.weights != SLIP_WAN_WEIGHTS_NVFP4)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected options.weights SLIP_WAN_WEIGHTS_F32 (0) or SLIP_WAN_WEIGHTS_NVFP4 (1), got %d", o.weights));
    const int32_t h = o.hadamard_block;
    if (h != 0 && h != 16 && h != 32 && h != 64 && h != 128 && h != 256)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected options.hadamard_block 0 (none) or one of 16, 32, 64, 128, 256, got %d", h));
}

void check_config(const slip_wan_config &c) {
    auto positive = [](int64_t v, const char *name) {
        if (v <= 0) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a positive %s, got %lld", name, static_cast<long long>(v)));
    };
    positive(c.dim, "config.dim");
    positive(c.ffn_dim, "config.ffn_dim");
    positive(c.heads, "config.heads");
    positive(c.layers, "config.layers");
    positive(c.in_channels, "config.in_channels");
    positive(c.out_channels, "config.out_channels");
    positive(c.text_dim, "config.text_dim");
    positive(c.freq_dim, "config.freq_dim");
    for (int i = 0; i < 3; ++i) positive(c.patch[i], "config.patch");
    if (c.dim % c.heads != 0)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected config.dim (%lld) to be a multiple of config.heads, got %lld",
                                                  static_cast<long long>(c.dim), static_cast<long long>(c.heads)));
    const int64_t hd = c.dim / c.heads;
    if (hd % 2 != 0 || hd > 256)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected an even head dim <= 256 (config.dim / config.heads), got %lld",
                                                  static_cast<long long>(hd)));
    if (c.freq_dim % 2 != 0)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected an even config.freq_dim, got %lld", static_cast<long long>(c.freq_dim)));
    if (!(c.eps > 0.0f) || !std::isfinite(c.eps))
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a positive finite config.eps, got %g", static_cast<double>(c.eps)));
}

Attention attention(Weights &w, const std::string &p, int64_t dim) {
    Attention a;
    a.q = w.linear(p + ".q", {dim, dim}, true);
    a.k = w.linear(p + ".k", {dim, dim}, true);
    a.v = w.linear(p + ".v", {dim, dim}, true);
    a.o = w.linear(p + ".o", {dim, dim}, true);
    a.norm_q = w.take(p + ".norm_q.weight", {dim});
    a.norm_k = w.take(p + ".norm_k.weight", {dim});
    return a;
}

}  // namespace

Model *create_model(const char *const *names, const slip_tensor *tensors, int64_t count,
                    const slip_wan_config &cfg, const slip_wan_model_options &options) {
    check_config(cfg);
    check_options(options);
    if (count < 0) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a non-negative count, got %lld", static_cast<long long>(count)));
    Weights w(names, tensors, count, options);
    auto m = std::make_unique<Model>();
    m->cfg = cfg;
    m->options = options;
    m->head_dim = cfg.dim / cfg.heads;
    const int64_t d = cfg.dim, pt = cfg.patch[0], ph = cfg.patch[1], pw = cfg.patch[2];
    m->patch = w.linear("patch_embedding", {d, cfg.in_channels, pt, ph, pw});
    m->text0 = w.linear("text_embedding.0", {d, cfg.text_dim});
    m->text2 = w.linear("text_embedding.2", {d, d});
    m->time0 = w.linear("time_embedding.0", {d, cfg.freq_dim});
    m->time2 = w.linear("time_embedding.2", {d, d});
    m->time_proj = w.linear("time_projection.1", {6 * d, d});
    m->blocks.resize(static_cast<size_t>(cfg.layers));
    for (int64_t i = 0; i < cfg.layers; ++i) {
        const std::string p = "blocks." + std::to_string(i);
        Block &b = m->blocks[static_cast<size_t>(i)];
        b.self_attn = attention(w, p + ".self_attn", d);
        b.cross_attn = attention(w, p + ".cross_attn", d);
        b.norm3_w = w.take(p + ".norm3.weight", {d});
        b.norm3_b = w.take(p + ".norm3.bias", {d});
        b.ffn0 = w.linear(p + ".ffn.0", {cfg.ffn_dim, d}, true);
        b.ffn2 = w.linear(p + ".ffn.2", {d, cfg.ffn_dim}, true);
        b.modulation = w.take(p + ".modulation", {1, 6, d});
    }
    m->head = w.linear("head.head", {cfg.out_channels * pt * ph * pw, d});
    m->head_modulation = w.take("head.modulation", {1, 2, d});
    w.require_all_taken();
    return m.release();
}

int64_t weight_bytes(const Model &m) {
    auto vec = [](const std::vector<float> &v) { return static_cast<int64_t>(v.size()) * 4; };
    auto attn = [&](const Attention &a) {
        return a.q.weight_bytes + a.k.weight_bytes + a.v.weight_bytes + a.o.weight_bytes + vec(a.norm_q) + vec(a.norm_k);
    };
    int64_t bytes = m.patch.weight_bytes + m.text0.weight_bytes + m.text2.weight_bytes + m.time0.weight_bytes +
                    m.time2.weight_bytes + m.time_proj.weight_bytes + m.head.weight_bytes + vec(m.head_modulation);
    for (const Block &b : m.blocks)
        bytes += attn(b.self_attn) + attn(b.cross_attn) + vec(b.norm3_w) + vec(b.norm3_b) + b.ffn0.weight_bytes +
                 b.ffn2.weight_bytes + vec(b.modulation);
    return bytes;
}

}  // namespace slip::runtime
