// ABI entry points of the Qwen3 runtime: argument checks, then qwen3.h.
#include <cmath>
#include <memory>

#include "../base/error.h"
#include "../base/kernels.h"
#include "../base/tensor.h"
#include "qwen3.h"

namespace {

using namespace slip;

slip::KernelName k_qwen3("qwen3_forward");

long long ll(int64_t v) { return static_cast<long long>(v); }

slip_qwen3_session_s &live(slip_qwen3_session_t s) {
    require_not_null(s, "session");
    return *s;
}

// The logits row of a sample call: F32 [vocab] or [1, vocab], finite.
const float *logits_row(const slip_tensor *logits, int64_t &vocab) {
    const slip_tensor &t = require_cpu_dense(logits, "logits", SLIP_DTYPE_F32);
    if (!(t.ndim == 1 || (t.ndim == 2 && t.shape[0] == 1)) || t.shape[t.ndim - 1] < 1)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected shape [vocab] or [1, vocab] with vocab >= 1 for logits, got %s",
                                                shape_string(t).c_str()));
    vocab = t.shape[t.ndim - 1];
    if (vocab > INT32_MAX) fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected at most 2^31 - 1 logits, got %lld", ll(vocab)));
    const float *x = data_as<const float>(t);
    for (int64_t i = 0; i < vocab; ++i)
        if (!std::isfinite(x[i]))
            fail(SLIP_STATUS_NON_FINITE, format("expected finite values for logits, got %g at element %lld", static_cast<double>(x[i]), ll(i)));
    return x;
}

void check_sample_params(const slip_qwen3_sample_params &p) {
    if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a finite params.temperature >= 0, got %g", static_cast<double>(p.temperature)));
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected params.top_p in (0, 1], got %g", static_cast<double>(p.top_p)));
    if (p.top_k < 0) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected params.top_k >= 0 (0 = off), got %d", p.top_k));
}

}  // namespace

extern "C" {

SLIP_API slip_status slip_qwen3_model_options_init(slip_qwen3_model_options *o) {
    return guard([&] {
        require_not_null(o, "o");
        *o = slip_qwen3_model_options{};
    });
}

SLIP_API slip_status slip_qwen3_model_create(const char *const *names, const slip_tensor *tensors, int64_t count,
                                             const slip_qwen3_config *config, const slip_qwen3_model_options *options,
                                             slip_qwen3_model_t *out) {
    return guard([&] {
        require_not_null(config, "config");
        require_not_null(out, "out");
        *out = nullptr;
        (void)options;  // nothing to choose yet: reserved for low-bit weights
        *out = runtime::qwen3::create_model(names, tensors, count, *config);
    });
}

SLIP_API slip_status slip_qwen3_model_weight_bytes(slip_qwen3_model_t model, int64_t *bytes) {
    return guard([&] {
        require_not_null(model, "model");
        require_not_null(bytes, "bytes");
        *bytes = runtime::qwen3::weight_bytes(*model);
    });
}

SLIP_API slip_status slip_qwen3_model_config(slip_qwen3_model_t model, slip_qwen3_config *out) {
    return guard([&] {
        require_not_null(model, "model");
        require_not_null(out, "out");
        *out = model->cfg;
    });
}

SLIP_API slip_status slip_qwen3_model_layer_widths(slip_qwen3_model_t model, int64_t layer, int64_t *heads,
                                                   int64_t *kv_heads, int64_t *intermediate) {
    return guard([&] {
        require_not_null(model, "model");
        if (layer < 0 || layer >= model->cfg.layers)
            fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a layer index in [0, %lld), got %lld", ll(model->cfg.layers), ll(layer)));
        const runtime::qwen3::Layer &l = model->layers[static_cast<size_t>(layer)];
        if (heads) *heads = l.heads;
        if (kv_heads) *kv_heads = l.kv_heads;
        if (intermediate) *intermediate = l.inter;
    });
}

SLIP_API void slip_qwen3_model_free(slip_qwen3_model_t model) { delete model; }

SLIP_API slip_status slip_qwen3_session_create(slip_qwen3_model_t model, slip_qwen3_session_t *out) {
    return guard([&] {
        require_not_null(model, "model");
        require_not_null(out, "out");
        *out = nullptr;
        auto s = std::make_unique<slip_qwen3_session_s>();
        s->model = model;
        s->k_cache.resize(model->layers.size());
        s->v_cache.resize(model->layers.size());
        *out = s.release();
    });
}

SLIP_API slip_status slip_qwen3_session_reset(slip_qwen3_session_t session) {
    return guard([&] { live(session).position = 0; });
}

SLIP_API slip_status slip_qwen3_session_position(slip_qwen3_session_t session, int64_t *position) {
    return guard([&] {
        slip_qwen3_session_s &s = live(session);
        require_not_null(position, "position");
        *position = s.position;
    });
}

SLIP_API slip_status slip_qwen3_session_truncate(slip_qwen3_session_t session, int64_t position) {
    return guard([&] {
        slip_qwen3_session_s &s = live(session);
        if (position < 0 || position > s.position)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected a position in [0, %lld] (the tokens the session holds), got %lld", ll(s.position), ll(position)));
        s.position = position;
    });
}

SLIP_API slip_status slip_qwen3_session_forward(slip_qwen3_session_t session, const int32_t *tokens, int64_t n,
                                                slip_tensor *logits) {
    return guard([&] {
        slip_qwen3_session_s &s = live(session);
        const slip_qwen3_config &c = s.model->cfg;
        if (n < 1) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected at least one token (n >= 1), got n = %lld", ll(n)));
        require_not_null(tokens, "tokens");
        if (n > c.max_context - s.position)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected at most %lld tokens in the context (config.max_context), got %lld held + %lld new = %lld",
                        ll(c.max_context), ll(s.position), ll(n), ll(s.position + n)));
        for (int64_t i = 0; i < n; ++i)
            if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
                fail(SLIP_STATUS_INVALID_ARGUMENT,
                     format("expected token ids in [0, %lld) (config.vocab_size), got %d at tokens[%lld]", ll(c.vocab_size),
                            tokens[i], ll(i)));
        bool all = false;
        float *out = nullptr;
        if (logits) {
            const slip_tensor &t = require_cpu_dense(logits, "logits", SLIP_DTYPE_F32);
            const bool last = (t.ndim == 1 && t.shape[0] == c.vocab_size) ||
                              (t.ndim == 2 && t.shape[0] == 1 && t.shape[1] == c.vocab_size);
            all = t.ndim == 2 && t.shape[0] == n && t.shape[1] == c.vocab_size;
            if (!last && !all)
                fail(SLIP_STATUS_SHAPE_MISMATCH,
                     format("expected shape [%lld] or [1, %lld] (the last token) or [%lld, %lld] (every token) for logits, got %s",
                            ll(c.vocab_size), ll(c.vocab_size), ll(n), ll(c.vocab_size), shape_string(t).c_str()));
            if (n == 1) all = false;
            out = data_as<float>(t);
        }
        runtime::qwen3::forward(s, tokens, n, out, all);
    });
}

SLIP_API void slip_qwen3_session_free(slip_qwen3_session_t session) { delete session; }

SLIP_API slip_status slip_qwen3_sample_params_init(slip_qwen3_sample_params *p) {
    return guard([&] {
        require_not_null(p, "p");
        *p = slip_qwen3_sample_params{};
        p->temperature = 1.0f;
        p->top_p = 1.0f;
        p->top_k = 0;
    });
}

SLIP_API slip_status slip_qwen3_sample(const slip_tensor *logits, const slip_qwen3_sample_params *p, uint64_t *rng_state,
                                       int32_t *token) {
    return guard([&] {
        require_not_null(p, "params");
        require_not_null(rng_state, "rng_state");
        require_not_null(token, "token");
        check_sample_params(*p);
        int64_t vocab = 0;
        const float *x = logits_row(logits, vocab);
        *token = runtime::qwen3::sample(x, vocab, *p, *rng_state);
    });
}

}  // extern "C"
