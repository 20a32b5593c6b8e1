// The Qwen3 runtime's ABI on a tiny random model: bad input gives a status and a sentence naming
// the tensor or argument (never a crash, and a failed forward leaves the session as it was); and
// the KV cache is consistent: one prefill of n tokens gives the logits of n decode steps.
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "check.h"

namespace {

constexpr int64_t V = 40, D = 16, L = 2, H = 4, G = 2, HD = 8, I = 24, CTX = 12;

slip_qwen3_config config() {
    slip_qwen3_config c{};
    c.vocab_size = V;
    c.hidden_size = D;
    c.layers = L;
    c.heads = H;
    c.kv_heads = G;
    c.head_dim = HD;
    c.intermediate_size = I;
    c.max_context = CTX;
    c.rope_theta = 10000.0;
    c.rms_norm_eps = 1e-6f;
    c.tie_word_embeddings = 1;
    return c;
}

// Named random weights (norm weights near 1) and the descriptors over them.
struct Weights {
    std::map<std::string, std::vector<float>> data;
    std::map<std::string, std::vector<int64_t>> shape;
    std::vector<std::string> names;
    std::vector<const char *> ptrs;
    std::vector<slip_tensor> tensors;

    Weights() {
        std::mt19937 rng(7);
        std::normal_distribution<float> n(0.0f, 0.3f);
        auto add = [&](const std::string &name, std::vector<int64_t> s, float base) {
            int64_t count = 1;
            for (int64_t x : s) count *= x;
            std::vector<float> v(static_cast<size_t>(count));
            for (float &x : v) x = base + n(rng);
            data[name] = v;
            shape[name] = s;
        };
        add("model.embed_tokens.weight", {V, D}, 0.0f);
        add("model.norm.weight", {D}, 1.0f);
        for (int64_t i = 0; i < L; ++i) {
            const std::string p = "model.layers." + std::to_string(i) + ".";
            add(p + "input_layernorm.weight", {D}, 1.0f);
            add(p + "post_attention_layernorm.weight", {D}, 1.0f);
            add(p + "self_attn.q_proj.weight", {H * HD, D}, 0.0f);
            add(p + "self_attn.k_proj.weight", {G * HD, D}, 0.0f);
            add(p + "self_attn.v_proj.weight", {G * HD, D}, 0.0f);
            add(p + "self_attn.o_proj.weight", {D, H * HD}, 0.0f);
            add(p + "self_attn.q_norm.weight", {HD}, 1.0f);
            add(p + "self_attn.k_norm.weight", {HD}, 1.0f);
            add(p + "mlp.gate_proj.weight", {I, D}, 0.0f);
            add(p + "mlp.up_proj.weight", {I, D}, 0.0f);
            add(p + "mlp.down_proj.weight", {D, I}, 0.0f);
        }
    }

    // Descriptors of every weight (optionally without one); call again after editing.
    void describe(const std::string &without = "") {
        names.clear();
        ptrs.clear();
        tensors.clear();
        for (auto &kv : data) {
            if (kv.first == without) continue;
            names.push_back(kv.first);
            slip_tensor t;
            const std::vector<int64_t> &s = shape[kv.first];
            slip_tensor_init(&t, kv.second.data(), SLIP_DTYPE_F32, static_cast<int32_t>(s.size()), s.data());
            tensors.push_back(t);
        }
        for (const std::string &n : names) ptrs.push_back(n.c_str());
    }

    slip_status create(slip_qwen3_model_t *m, const slip_qwen3_config &c = config()) {
        return slip_qwen3_model_create(ptrs.data(), tensors.data(), static_cast<int64_t>(tensors.size()), &c, nullptr, m);
    }
};

void model_errors() {
    Weights w;
    slip_qwen3_model_t m = nullptr;

    w.describe("model.layers.1.self_attn.v_proj.weight");
    CHECK_FAILS(w.create(&m), SLIP_STATUS_INVALID_ARGUMENT, "\"model.layers.1.self_attn.v_proj.weight\"");
    CHECK(m == nullptr);

    w.shape["model.layers.0.mlp.down_proj.weight"] = {D, I - 1};
    w.describe();
    CHECK_FAILS(w.create(&m), SLIP_STATUS_SHAPE_MISMATCH, "\"model.layers.0.mlp.down_proj.weight\"");
    w.shape["model.layers.0.mlp.down_proj.weight"] = {D, I};

    w.describe();
    w.tensors[0].dtype = SLIP_DTYPE_I8;
    CHECK_FAILS(w.create(&m), SLIP_STATUS_DTYPE_MISMATCH, "expected dtype F32, F16 or BF16");

    w.data["model.layers.0.self_attn.rotary_emb.inv_freq"] = std::vector<float>(HD / 2, 1.0f);
    w.shape["model.layers.0.self_attn.rotary_emb.inv_freq"] = {HD / 2};
    w.describe();
    CHECK_FAILS(w.create(&m), SLIP_STATUS_INVALID_ARGUMENT, "unexpected \"model.layers.0.self_attn.rotary_emb.inv_freq\"");
    w.data.erase("model.layers.0.self_attn.rotary_emb.inv_freq");
    w.shape.erase("model.layers.0.self_attn.rotary_emb.inv_freq");

    w.describe();
    w.ptrs[1] = w.ptrs[0];
    CHECK_FAILS(w.create(&m), SLIP_STATUS_INVALID_ARGUMENT, "twice");

    w.describe();
    slip_qwen3_config c = config();
    c.tie_word_embeddings = 0;
    CHECK_FAILS(w.create(&m, c), SLIP_STATUS_INVALID_ARGUMENT, "\"lm_head.weight\"");
    c = config();
    c.head_dim = 7;
    CHECK_FAILS(w.create(&m, c), SLIP_STATUS_INVALID_ARGUMENT, "config.head_dim");
    c = config();
    c.kv_heads = 3;
    CHECK_FAILS(w.create(&m, c), SLIP_STATUS_INVALID_ARGUMENT, "multiple of its KV heads");
    c = config();
    c.max_context = 0;
    CHECK_FAILS(w.create(&m, c), SLIP_STATUS_INVALID_ARGUMENT, "config.max_context");
    c = config();
    const int64_t zero_inter[L] = {I, 0};
    c.layer_intermediate = zero_inter;
    CHECK_FAILS(w.create(&m, c), SLIP_STATUS_INVALID_ARGUMENT, "layer 1");
    c = config();
    c.rope_theta = NAN;
    CHECK_FAILS(w.create(&m, c), SLIP_STATUS_INVALID_ARGUMENT, "config.rope_theta");
    c = config();
    CHECK_FAILS(slip_qwen3_model_create(nullptr, nullptr, 3, &c, nullptr, &m), SLIP_STATUS_INVALID_ARGUMENT, "names");
    CHECK_FAILS(w.create(nullptr), SLIP_STATUS_INVALID_ARGUMENT, "out");
    CHECK(m == nullptr);
}

void session_errors_and_cache() {
    Weights w;
    w.describe();
    slip_qwen3_model_t m = nullptr;
    CHECK_OK(w.create(&m));
    if (!m) return;
    slip_qwen3_session_t s = nullptr;
    CHECK_OK(slip_qwen3_session_create(m, &s));

    const int32_t toks[8] = {3, 17, 0, 39, 5, 5, 22, 9};
    std::vector<float> all(8 * V), one(V), two(2 * V);
    const int64_t all_shape[2] = {8, V}, one_shape[1] = {V}, two_shape[2] = {2, V};
    slip_tensor ta, t1, t2;
    slip_tensor_init(&ta, all.data(), SLIP_DTYPE_F32, 2, all_shape);
    slip_tensor_init(&t1, one.data(), SLIP_DTYPE_F32, 1, one_shape);
    slip_tensor_init(&t2, two.data(), SLIP_DTYPE_F32, 2, two_shape);

    // Prefill of 8 tokens vs 8 decode steps: the same logits up to FP32 summation order.
    CHECK_OK(slip_qwen3_session_forward(s, toks, 8, &ta));
    CHECK_OK(slip_qwen3_session_reset(s));
    double err = 0, scale = 0;
    for (int i = 0; i < 8; ++i) {
        CHECK_OK(slip_qwen3_session_forward(s, toks + i, 1, &t1));
        for (int64_t j = 0; j < V; ++j) {
            err = std::fmax(err, std::fabs(one[j] - all[i * V + j]));
            scale = std::fmax(scale, std::fabs(all[i * V + j]));
        }
    }
    CHECK_MSG(err <= 1e-5 * scale, "decode vs prefill: max error %g of max |logit| %g", err, scale);
    int64_t pos = -1;
    CHECK_OK(slip_qwen3_session_position(s, &pos));
    CHECK(pos == 8);

    // A context past max_context (12): refused, nothing changed; then exactly 12 is fine.
    const int32_t five[5] = {1, 2, 3, 4, 5};
    CHECK_FAILS(slip_qwen3_session_forward(s, five, 5, &t1), SLIP_STATUS_INVALID_ARGUMENT, "at most 12 tokens");
    CHECK_OK(slip_qwen3_session_position(s, &pos));
    CHECK(pos == 8);
    CHECK_OK(slip_qwen3_session_forward(s, five, 4, nullptr));
    CHECK_FAILS(slip_qwen3_session_forward(s, five, 1, &t1), SLIP_STATUS_INVALID_ARGUMENT, "config.max_context");

    CHECK_OK(slip_qwen3_session_truncate(s, 2));
    CHECK_FAILS(slip_qwen3_session_truncate(s, 3), SLIP_STATUS_INVALID_ARGUMENT, "[0, 2]");
    const int32_t bad[2] = {1, static_cast<int32_t>(V)};
    CHECK_FAILS(slip_qwen3_session_forward(s, bad, 2, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "tokens[1]");
    const int32_t neg[1] = {-1};
    CHECK_FAILS(slip_qwen3_session_forward(s, neg, 1, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "tokens[0]");
    CHECK_FAILS(slip_qwen3_session_forward(s, five, 0, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "n >= 1");
    CHECK_FAILS(slip_qwen3_session_forward(s, nullptr, 1, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "tokens");
    CHECK_FAILS(slip_qwen3_session_forward(s, five, 3, &t2), SLIP_STATUS_SHAPE_MISMATCH, "for logits");
    slip_tensor tbad = t1;
    tbad.dtype = SLIP_DTYPE_F16;
    CHECK_FAILS(slip_qwen3_session_forward(s, five, 1, &tbad), SLIP_STATUS_DTYPE_MISMATCH, "logits");
    CHECK_FAILS(slip_qwen3_session_forward(nullptr, five, 1, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "session");
    CHECK_OK(slip_qwen3_session_position(s, &pos));
    CHECK(pos == 2);
    CHECK_FAILS(slip_qwen3_model_layer_widths(m, 2, nullptr, nullptr, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "[0, 2)");

    // Sampling: parameters and logits checked; greedy picks the first largest.
    slip_qwen3_sample_params p;
    CHECK_OK(slip_qwen3_sample_params_init(&p));
    uint64_t rng = 42;
    int32_t tok = -1;
    one.assign(V, 0.0f);
    one[7] = 3.0f;
    one[9] = 3.0f;
    p.temperature = 0.0f;
    CHECK_OK(slip_qwen3_sample(&t1, &p, &rng, &tok));
    CHECK(tok == 7);
    CHECK(rng == 42);
    p.temperature = -1.0f;
    CHECK_FAILS(slip_qwen3_sample(&t1, &p, &rng, &tok), SLIP_STATUS_INVALID_ARGUMENT, "params.temperature");
    p.temperature = 1.0f;
    p.top_p = 0.0f;
    CHECK_FAILS(slip_qwen3_sample(&t1, &p, &rng, &tok), SLIP_STATUS_INVALID_ARGUMENT, "params.top_p");
    p.top_p = 1.0f;
    one[3] = NAN;
    CHECK_FAILS(slip_qwen3_sample(&t1, &p, &rng, &tok), SLIP_STATUS_NON_FINITE, "logits");
    one[3] = 0.0f;
    CHECK_FAILS(slip_qwen3_sample(&t2, &p, &rng, &tok), SLIP_STATUS_SHAPE_MISMATCH, "logits");
    CHECK_FAILS(slip_qwen3_sample(&t1, &p, nullptr, &tok), SLIP_STATUS_INVALID_ARGUMENT, "rng_state");
    CHECK_OK(slip_qwen3_sample(&t1, &p, &rng, &tok));
    CHECK(tok >= 0 && tok < V && rng != 42);

    slip_qwen3_session_free(s);
    slip_qwen3_model_free(m);
    slip_qwen3_session_free(nullptr);
    slip_qwen3_model_free(nullptr);
}

}  // namespace

int main() {
    model_errors();
    session_errors_and_cache();
    return slip_test::report("test-qwen3-runtime");
}
