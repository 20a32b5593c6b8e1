// slip_wan_session_*: the forward's stages exposed one block at a time, with each block's last
// residual delta kept across forwards so a caller can skip the block by re-adding it.
#include <cmath>
#include <cstring>
#include <memory>

#include "../base/error.h"
#include "../base/tensor.h"
#include "wan.h"

struct slip_wan_session_s {
    slip_wan_model_t model = nullptr;
    std::unique_ptr<slip::runtime::Step> step;  // of the current forward; null before begin()
    std::unique_ptr<slip::runtime::Scratch> scratch;
    int64_t scratch_dims[3] = {0, 0, 0};         // (B, L, Lc) the scratch was sized for
    std::vector<float> tokens;                   // [B, L, dim]
    std::vector<float> block_in;                 // a copy of a block's input while it runs
    std::vector<std::vector<float>> delta;       // per block: its last output - input, or empty
    int64_t batch = 0, seq = 0;                  // the shape the cached deltas have (0: none yet)
};

namespace {

using namespace slip;

slip_wan_session_s &live(slip_wan_session_t s) {
    require_not_null(s, "session");
    return *s;
}

slip_wan_session_s &begun(slip_wan_session_t s) {
    slip_wan_session_s &ss = live(s);
    if (!ss.step) fail(SLIP_STATUS_INVALID_ARGUMENT, "expected slip_wan_session_begin before this call, got none");
    return ss;
}

int64_t checked_block(const slip_wan_session_s &s, int64_t block) {
    if (block < 0 || block >= s.model->cfg.layers)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a block index in [0, %lld), got %lld",
                                                  static_cast<long long>(s.model->cfg.layers), static_cast<long long>(block)));
    return block;
}

void fill_stats(const float *in, const float *out, std::vector<float> &delta, slip_wan_block_stats *st) {
    const size_t n = delta.size();
    double in_l1 = 0, d_l1 = 0, prev_l1 = 0, change = 0;
    // One pass: the new delta replaces the old one in place, after both were measured.
    std::vector<float> &d = delta;
    for (size_t j = 0; j < n; ++j) {
        const float nd = out[j] - in[j];
        in_l1 += std::fabs(in[j]);
        d_l1 += std::fabs(nd);
        prev_l1 += std::fabs(d[j]);
        change += std::fabs(nd - d[j]);
        d[j] = nd;
    }
    if (st) {
        const double cnt = n ? static_cast<double>(n) : 1.0;
        st->input_l1 = in_l1 / cnt;
        st->delta_l1 = d_l1 / cnt;
        st->delta_change = prev_l1 > 0 ? change / prev_l1 : -1.0;
    }
}

}  // namespace

extern "C" {

SLIP_API slip_status slip_wan_block_options_init(slip_wan_block_options *o) {
    return guard([&] {
        require_not_null(o, "o");
        *o = slip_wan_block_options{};
        o->precision = SLIP_WAN_PRECISION_FULL;
    });
}

SLIP_API slip_status slip_wan_session_create(slip_wan_model_t model, slip_wan_session_t *out) {
    return guard([&] {
        require_not_null(model, "model");
        require_not_null(out, "out");
        *out = nullptr;
        auto s = std::make_unique<slip_wan_session_s>();
        s->model = model;
        s->delta.resize(static_cast<size_t>(model->cfg.layers));
        *out = s.release();
    });
}

SLIP_API slip_status slip_wan_session_reset(slip_wan_session_t session) {
    return guard([&] {
        slip_wan_session_s &s = live(session);
        for (auto &d : s.delta) std::vector<float>().swap(d);
        s.batch = s.seq = 0;
    });
}

SLIP_API slip_status slip_wan_session_begin(slip_wan_session_t session, const slip_tensor *x,
                                            const slip_tensor *t, const slip_tensor *context) {
    return guard([&] {
        slip_wan_session_s &s = live(session);
        require_not_null(x, "x");
        require_not_null(t, "t");
        require_not_null(context, "context");
        s.step.reset();
        auto step = std::make_unique<runtime::Step>(runtime::embed(*s.model, *x, *t, *context, s.tokens));
        if (s.batch && (s.batch != step->batch || s.seq != step->tokens))
            fail(SLIP_STATUS_SHAPE_MISMATCH,
                 format("expected the batch and token count of the cached deltas (%lld, %lld), got (%lld, %lld): "
                        "call slip_wan_session_reset to start a new shape",
                        static_cast<long long>(s.batch), static_cast<long long>(s.seq),
                        static_cast<long long>(step->batch), static_cast<long long>(step->tokens)));
        if (!s.scratch || s.scratch_dims[0] != step->batch || s.scratch_dims[1] != step->tokens ||
            s.scratch_dims[2] != step->ctx_len) {
            s.scratch = std::make_unique<runtime::Scratch>(*s.model, *step);
            s.scratch_dims[0] = step->batch;
            s.scratch_dims[1] = step->tokens;
            s.scratch_dims[2] = step->ctx_len;
        }
        s.batch = step->batch;
        s.seq = step->tokens;
        s.step = std::move(step);
    });
}

SLIP_API slip_status slip_wan_session_run_block(slip_wan_session_t session, int64_t block,
                                                const slip_wan_block_options *options,
                                                slip_wan_block_stats *stats) {
    return guard([&] {
        slip_wan_session_s &s = begun(session);
        checked_block(s, block);
        if (options && (options->precision < SLIP_WAN_PRECISION_FULL || options->precision > SLIP_WAN_PRECISION_BF16))
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected options.precision FULL (0), INT8 (1), NVFP4 (2) or BF16 (3), got %d", options->precision));
        if (options && options->attention != SLIP_WAN_ATTENTION_FP32 && options->attention != SLIP_WAN_ATTENTION_LOWBIT)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected options.attention FP32 (0) or LOWBIT (1), got %d", options->attention));
        if (options && options->guard_precision != SLIP_WAN_PRECISION_FULL && options->guard_precision != SLIP_WAN_PRECISION_BF16)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected options.guard_precision FULL (0) or BF16 (3), got %d", options->guard_precision));
        if (options && !(options->sparse_topk >= 0.0f && options->sparse_topk <= 1.0f && options->sparse_topp >= 0.0f &&
                         options->sparse_topp <= 1.0f))
            fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected options.sparse_topk and sparse_topp in [0, 1], got %g and %g",
                                                      static_cast<double>(options->sparse_topk),
                                                      static_cast<double>(options->sparse_topp)));
        if (options && !(options->outlier_guard >= 0.0f))
            fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected options.outlier_guard >= 0, got %g",
                                                      static_cast<double>(options->outlier_guard)));
        s.block_in = s.tokens;
        runtime::LinearProbe probe;
        runtime::run_block(*s.model, block, *s.step, s.tokens.data(), *s.scratch, options, stats ? &probe : nullptr);
        std::vector<float> &d = s.delta[static_cast<size_t>(block)];
        const bool had = !d.empty();
        if (!had) d.assign(s.tokens.size(), 0.0f);
        fill_stats(s.block_in.data(), s.tokens.data(), d, stats);
        if (stats) {
            if (!had) stats->delta_change = -1.0;
            stats->max_outlier = probe.max_outlier;
            stats->full_linears = probe.full;
            stats->lowbit_linears = probe.lowbit;
            stats->attention_sparsity = probe.attention_sparsity;
        }
    });
}

SLIP_API slip_status slip_wan_session_skip_block(slip_wan_session_t session, int64_t block) {
    return guard([&] {
        slip_wan_session_s &s = begun(session);
        const std::vector<float> &d = s.delta[static_cast<size_t>(checked_block(s, block))];
        if (d.empty())
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected block %lld to have run before it is skipped, got no cached delta", static_cast<long long>(block)));
        for (size_t j = 0; j < d.size(); ++j) s.tokens[j] += d[j];
    });
}

SLIP_API slip_status slip_wan_session_finish(slip_wan_session_t session, slip_tensor *out) {
    return guard([&] {
        slip_wan_session_s &s = begun(session);
        const runtime::Step &st = *s.step;
        require_shape(out, "out", SLIP_DTYPE_F32, {st.batch, s.model->cfg.out_channels, st.frames, st.height, st.width});
        runtime::run_head(*s.model, st, s.tokens.data(), data_as<float>(*out));
    });
}

SLIP_API slip_status slip_wan_session_read_tokens(slip_wan_session_t session, slip_tensor *out) {
    return guard([&] {
        slip_wan_session_s &s = begun(session);
        require_shape(out, "out", SLIP_DTYPE_F32, {s.step->batch, s.step->tokens, s.model->cfg.dim});
        std::memcpy(data_as<float>(*out), s.tokens.data(), s.tokens.size() * sizeof(float));
    });
}

SLIP_API slip_status slip_wan_session_write_tokens(slip_wan_session_t session, const slip_tensor *in) {
    return guard([&] {
        slip_wan_session_s &s = begun(session);
        require_shape(in, "in", SLIP_DTYPE_F32, {s.step->batch, s.step->tokens, s.model->cfg.dim});
        const float *p = data_as<const float>(*in);
        for (size_t j = 0; j < s.tokens.size(); ++j)
            if (!std::isfinite(p[j]))
                fail(SLIP_STATUS_NON_FINITE, format("expected finite values for in, got %g at element %zu", static_cast<double>(p[j]), j));
        std::memcpy(s.tokens.data(), p, s.tokens.size() * sizeof(float));
    });
}

SLIP_API slip_status slip_wan_session_time_embedding(slip_wan_session_t session, slip_tensor *out) {
    return guard([&] {
        slip_wan_session_s &s = begun(session);
        require_shape(out, "out", SLIP_DTYPE_F32, {s.step->batch, 6, s.model->cfg.dim});
        std::memcpy(data_as<float>(*out), s.step->e0.data(), s.step->e0.size() * sizeof(float));
    });
}

SLIP_API void slip_wan_session_free(slip_wan_session_t session) { delete session; }

}  // extern "C"
