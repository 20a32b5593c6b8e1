// The stages of the Wan2.1 forward (see wan.h): embeddings, one block, the head.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../base/error.h"
#include "../base/tensor.h"
#include "../base/thread-pool.h"
#include "activation.h"
#include "layernorm.h"
#include "modulation.h"
#include "rmsnorm.h"
#include "wan.h"

namespace slip::runtime {

namespace {

void require_finite(const slip_tensor &t, const char *name) {
    const float *p = data_as<const float>(t);
    const int64_t n = numel(t);
    for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(p[i]))
            fail(SLIP_STATUS_NON_FINITE, format("expected finite values for %s, got %g at element %lld", name,
                                                static_cast<double>(p[i]), static_cast<long long>(i)));
}

// softmax(q k^T / sqrt(hd)) v with q [B, Lq, H, hd], k and v [B, Lk, H, hd] (NHD, no transposes);
// block-sparse on a predicted SpargeAttention2 mask when topk or topp > 0; low-bit (INT8 QK, BF16
// PV: slip_attn_lowbit) when asked. Returns the sparsity.
double attend(const float *q, const float *k, const float *v, float *out, int64_t batch, int64_t lq,
              int64_t lk, int64_t heads, int64_t hd, float topk = 0.0f, float topp = 0.0f, bool low_bit = false) {
    slip_tensor qt, kt, vt, ot;
    const int64_t qs[4] = {batch, lq, heads, hd}, ks[4] = {batch, lk, heads, hd};
    slip_tensor_init(&qt, const_cast<float *>(q), SLIP_DTYPE_F32, 4, qs);
    slip_tensor_init(&kt, const_cast<float *>(k), SLIP_DTYPE_F32, 4, ks);
    slip_tensor_init(&vt, const_cast<float *>(v), SLIP_DTYPE_F32, 4, ks);
    slip_tensor_init(&ot, out, SLIP_DTYPE_F32, 4, qs);
    slip_attn_params p;
    slip_attn_params_init(&p);
    p.layout = SLIP_ATTN_NHD;
    slip_sparse_params sp;
    slip_sparse_params_init(&sp);
    sp.topk = topk;
    sp.topp = topp;
    const bool sparse = topk > 0.0f || topp > 0.0f;
    double sparsity = 0.0;
    slip_status st;
    if (low_bit) {
        // The SpargeAttention2 mask first, then the low-bit kernel on the pairs it keeps.
        std::vector<uint8_t> keep;
        slip_tensor mt;
        if (sparse) {
            const int64_t ms[4] = {batch, heads, (lq + sp.block_q - 1) / sp.block_q, (lk + sp.block_k - 1) / sp.block_k};
            keep.resize(static_cast<size_t>(ms[0] * ms[1] * ms[2] * ms[3]));
            slip_tensor_init(&mt, keep.data(), SLIP_DTYPE_U8, 4, ms);
            st = slip_attn_sparse_predict(&qt, &kt, &p, &sp, &mt, &sparsity);
            if (st != SLIP_STATUS_OK) fail(st, slip_last_error());
        }
        st = slip_attn_lowbit(&qt, &kt, &vt, sparse ? &mt : nullptr, &p, &ot);
    } else if (sparse) {
        st = slip_attn_sparse(&qt, &kt, &vt, nullptr, &p, &sp, &ot, nullptr, nullptr, &sparsity);
    } else {
        st = slip_attn_dense(&qt, &kt, &vt, nullptr, nullptr, nullptr, &p, &ot, nullptr);
    }
    if (st != SLIP_STATUS_OK) fail(st, slip_last_error());
    return sparsity;
}

}  // namespace

Scratch::Scratch(const Model &m, const Step &s) {
    const int64_t d = m.cfg.dim, rows = s.batch * s.tokens;
    const size_t tok = static_cast<size_t>(rows * d);
    const size_t kv = static_cast<size_t>(s.batch * std::max(s.tokens, s.ctx_len) * d);
    mod.resize(static_cast<size_t>(s.batch * 6 * d));
    h.resize(tok);
    q.resize(tok);
    att.resize(tok);
    k.resize(kv);
    v.resize(kv);
    ffn.resize(static_cast<size_t>(rows * m.cfg.ffn_dim));
}

Step embed(const Model &m, const slip_tensor &x, const slip_tensor &t, const slip_tensor &context,
           std::vector<float> &tokens) {
    const slip_wan_config &c = m.cfg;
    const int64_t d = c.dim, pt = c.patch[0], ph = c.patch[1], pw = c.patch[2];
    require_cpu_dense(&x, "x", SLIP_DTYPE_F32);
    // x: [B, in, F, H, W], F/H/W multiples of the patch
    if (x.ndim != 5 || x.shape[0] < 1 || x.shape[1] != c.in_channels || x.shape[2] < 1 || x.shape[2] % pt ||
        x.shape[3] < 1 || x.shape[3] % ph || x.shape[4] < 1 || x.shape[4] % pw)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected shape [B, %lld, F, H, W] with F, H, W positive multiples of (%lld, %lld, %lld) for x, got %s",
                    static_cast<long long>(c.in_channels), static_cast<long long>(pt), static_cast<long long>(ph),
                    static_cast<long long>(pw), shape_string(x).c_str()));
    Step s;
    s.batch = x.shape[0];
    s.frames = x.shape[2];
    s.height = x.shape[3];
    s.width = x.shape[4];
    s.grid[0] = s.frames / pt;
    s.grid[1] = s.height / ph;
    s.grid[2] = s.width / pw;
    s.tokens = s.grid[0] * s.grid[1] * s.grid[2];
    const int64_t B = s.batch, L = s.tokens;
    require_shape(&t, "t", SLIP_DTYPE_F32, {B});
    require_cpu_dense(&context, "context", SLIP_DTYPE_F32);
    // context: [B, Lc, text_dim]
    if (context.ndim != 3 || context.shape[0] != B || context.shape[1] < 1 || context.shape[2] != c.text_dim)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected shape [%lld, Lc, %lld] with Lc >= 1 for context, got %s",
                                                static_cast<long long>(B), static_cast<long long>(c.text_dim),
                                                shape_string(context).c_str()));
    s.ctx_len = context.shape[1];
    require_finite(x, "x");
    require_finite(t, "t");
    require_finite(context, "context");

    // Patch embedding: Conv3d with stride = kernel is a Linear on each patch, whose features are
    // ordered (channel, pt, ph, pw) as the conv weight [dim, in, pt, ph, pw] flattens.
    const int64_t pk = c.in_channels * pt * ph * pw;
    std::vector<float> patches(static_cast<size_t>(B * L * pk));
    const float *xs = data_as<const float>(x);
    const int64_t F = s.frames, H = s.height, W = s.width;
    parallel_for(B * L, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t b = r / L, l = r % L;
            const int64_t gf = l / (s.grid[1] * s.grid[2]), gh = (l / s.grid[2]) % s.grid[1], gw = l % s.grid[2];
            float *dst = patches.data() + r * pk;
            for (int64_t ch = 0; ch < c.in_channels; ++ch)
                for (int64_t a = 0; a < pt; ++a)
                    for (int64_t i = 0; i < ph; ++i)
                        for (int64_t j = 0; j < pw; ++j)
                            *dst++ = xs[(((b * c.in_channels + ch) * F + gf * pt + a) * H + gh * ph + i) * W + gw * pw + j];
        }
    });
    tokens.assign(static_cast<size_t>(B * L * d), 0.0f);
    m.patch.run(patches.data(), B * L, tokens.data());

    // Time: sinusoidal [cos, sin] of t * 10000^(-i/half), angles in float64 as Wan computes them.
    const int64_t half = c.freq_dim / 2;
    std::vector<float> sinus(static_cast<size_t>(B * c.freq_dim)), hid(static_cast<size_t>(B * d));
    const float *tv = data_as<const float>(t);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < half; ++i) {
            const double ang = static_cast<double>(tv[b]) * std::pow(10000.0, -static_cast<double>(i) / half);
            sinus[b * c.freq_dim + i] = static_cast<float>(std::cos(ang));
            sinus[b * c.freq_dim + half + i] = static_cast<float>(std::sin(ang));
        }
    m.time0.run(sinus.data(), B, hid.data());
    silu(hid.data(), B * d);
    s.e.resize(static_cast<size_t>(B * d));
    m.time2.run(hid.data(), B, s.e.data());
    hid = s.e;
    silu(hid.data(), B * d);
    s.e0.resize(static_cast<size_t>(B * 6 * d));
    m.time_proj.run(hid.data(), B, s.e0.data());

    // Text: Linear, GELU(tanh), Linear over every context token.
    const int64_t rows = B * s.ctx_len;
    std::vector<float> th(static_cast<size_t>(rows * d));
    m.text0.run(data_as<const float>(context), rows, th.data());
    gelu_tanh(th.data(), rows * d);
    s.ctx.resize(static_cast<size_t>(rows * d));
    m.text2.run(th.data(), rows, s.ctx.data());

    s.rope = rope_table(s.grid, m.head_dim);
    return s;
}

namespace {

// Picks the precision of one linear from its input: the block's precision unless the outlier
// guard promotes it to the guard's (high) precision. The ratio is measured on the raw input (before any Hadamard
// rotation), as Purified Delta Refresh defines it.
class PrecisionChooser {
  public:
    PrecisionChooser(const slip_wan_block_options *o, LinearProbe *probe) : o_(o), probe_(probe) {}

    slip_wan_precision operator()(const float *x, int64_t count, int n_linears) {
        slip_wan_precision p = o_ ? static_cast<slip_wan_precision>(o_->precision) : SLIP_WAN_PRECISION_FULL;
        const bool guard = o_ && o_->outlier_guard > 0.0f && p != SLIP_WAN_PRECISION_FULL && p != o_->guard_precision;
        if (guard || probe_) {
            const float ratio = outlier_ratio(x, count);
            if (probe_) probe_->max_outlier = std::max(probe_->max_outlier, ratio);
            if (guard && ratio > o_->outlier_guard) p = static_cast<slip_wan_precision>(o_->guard_precision);
        }
        const bool high = p == SLIP_WAN_PRECISION_FULL || p == SLIP_WAN_PRECISION_BF16;
        if (probe_) (high ? probe_->full : probe_->lowbit) += n_linears;
        return p;
    }

  private:
    // 16 independent lanes per chunk so the compiler vectorizes without reassociating a single
    // sum; chunks of 4096 keep the float partial sums exact enough for a ratio.
    static float outlier_ratio(const float *x, int64_t count) {
        double sum = 0.0;
        float mx = 0.0f;
        for (int64_t c0 = 0; c0 < count; c0 += 4096) {
            const int64_t c1 = std::min(count, c0 + 4096);
            float lane_sum[16] = {}, lane_max[16] = {};
            int64_t j = c0;
            for (; j + 16 <= c1; j += 16)
                for (int l = 0; l < 16; ++l) {
                    const float a = std::fabs(x[j + l]);
                    lane_sum[l] += a;
                    lane_max[l] = std::max(lane_max[l], a);
                }
            for (; j < c1; ++j) {
                lane_sum[0] += std::fabs(x[j]);
                lane_max[0] = std::max(lane_max[0], std::fabs(x[j]));
            }
            for (int l = 0; l < 16; ++l) {
                sum += lane_sum[l];
                mx = std::max(mx, lane_max[l]);
            }
        }
        return sum > 0.0 ? static_cast<float>(mx / (sum / static_cast<double>(count))) : 0.0f;
    }

    const slip_wan_block_options *o_;
    LinearProbe *probe_;
};

}  // namespace

void run_block(const Model &m, int64_t i, const Step &s, float *x, Scratch &w,
               const slip_wan_block_options *options, LinearProbe *probe) {
    PrecisionChooser choose(options, probe);
    const Block &blk = m.blocks[static_cast<size_t>(i)];
    const int64_t d = m.cfg.dim, B = s.batch, L = s.tokens, Lc = s.ctx_len, rows = B * L;
    const int64_t H = m.cfg.heads, hd = m.head_dim, stride = 6 * d;
    const float eps = m.cfg.eps;
    // (shift, scale, gate) for self-attention, then for the FFN: modulation + e0, [B, 6, dim].
    for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < stride; ++j) w.mod[b * stride + j] = blk.modulation[j] + s.e0[b * stride + j];
    const float *mod = w.mod.data();

    // x += g0 * self_attn(LN(x) (1 + c0) + s0)
    const Attention &sa = blk.self_attn;
    layer_norm(x, w.h.data(), rows, d, eps, nullptr, nullptr);
    modulate(w.h.data(), w.h.data(), B, L, d, mod, mod + d, stride);
    const slip_wan_precision p_qkv = choose(w.h.data(), rows * d, 3);
    sa.q.run(w.h.data(), rows, w.q.data(), p_qkv);
    sa.k.run(w.h.data(), rows, w.k.data(), p_qkv);
    sa.v.run(w.h.data(), rows, w.v.data(), p_qkv);
    rms_norm(w.q.data(), w.q.data(), rows, d, eps, sa.norm_q.data());
    rms_norm(w.k.data(), w.k.data(), rows, d, eps, sa.norm_k.data());
    rope_apply(w.q.data(), B, H, s.rope);
    rope_apply(w.k.data(), B, H, s.rope);
    const double sparsity = attend(w.q.data(), w.k.data(), w.v.data(), w.att.data(), B, L, L, H, hd,
                                   options ? options->sparse_topk : 0.0f, options ? options->sparse_topp : 0.0f,
                                   options && options->attention == SLIP_WAN_ATTENTION_LOWBIT);
    if (probe) probe->attention_sparsity = static_cast<float>(sparsity);
    sa.o.run(w.att.data(), rows, w.h.data(), choose(w.att.data(), rows * d, 1));
    gated_residual(x, w.h.data(), B, L, d, mod + 2 * d, stride);

    // x += cross_attn(norm3(x), ctx): no RoPE, no gate.
    const Attention &ca = blk.cross_attn;
    layer_norm(x, w.h.data(), rows, d, eps, blk.norm3_w.data(), blk.norm3_b.data());
    ca.q.run(w.h.data(), rows, w.q.data(), choose(w.h.data(), rows * d, 1));
    // The context's keys and values: a few rows, the same at every step, and the zero-padded
    // prompt rows make their outlier ratio meaningless. Always full precision, not counted.
    ca.k.run(s.ctx.data(), B * Lc, w.k.data());
    ca.v.run(s.ctx.data(), B * Lc, w.v.data());
    rms_norm(w.q.data(), w.q.data(), rows, d, eps, ca.norm_q.data());
    rms_norm(w.k.data(), w.k.data(), B * Lc, d, eps, ca.norm_k.data());
    attend(w.q.data(), w.k.data(), w.v.data(), w.att.data(), B, L, Lc, H, hd);
    ca.o.run(w.att.data(), rows, w.h.data(), choose(w.att.data(), rows * d, 1));
    gated_residual(x, w.h.data(), B, L, d, nullptr, 0);

    // x += g1 * ffn(LN(x) (1 + c1) + s1)
    layer_norm(x, w.h.data(), rows, d, eps, nullptr, nullptr);
    modulate(w.h.data(), w.h.data(), B, L, d, mod + 3 * d, mod + 4 * d, stride);
    blk.ffn0.run(w.h.data(), rows, w.ffn.data(), choose(w.h.data(), rows * d, 1));
    gelu_tanh(w.ffn.data(), rows * m.cfg.ffn_dim);
    blk.ffn2.run(w.ffn.data(), rows, w.h.data(), choose(w.ffn.data(), rows * m.cfg.ffn_dim, 1));
    gated_residual(x, w.h.data(), B, L, d, mod + 5 * d, stride);
}

void run_head(const Model &m, const Step &s, const float *x, float *out) {
    const slip_wan_config &c = m.cfg;
    const int64_t d = c.dim, B = s.batch, L = s.tokens, rows = B * L;
    const int64_t pt = c.patch[0], ph = c.patch[1], pw = c.patch[2], C = c.out_channels;
    // (shift, scale) = head.modulation + e: the embedding before time_projection.
    std::vector<float> mod(static_cast<size_t>(B * 2 * d));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < 2 * d; ++j) mod[b * 2 * d + j] = m.head_modulation[j] + s.e[b * d + j % d];
    std::vector<float> h(static_cast<size_t>(rows * d)), y(static_cast<size_t>(rows * m.head.n));
    layer_norm(x, h.data(), rows, d, c.eps, nullptr, nullptr);
    modulate(h.data(), h.data(), B, L, d, mod.data(), mod.data() + d, 2 * d);
    m.head.run(h.data(), rows, y.data());
    // Unpatchify: head features are ordered (pt, ph, pw, channel).
    const int64_t F = s.frames, H = s.height, W = s.width, n = m.head.n;
    parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t b = r / L, l = r % L;
            const int64_t gf = l / (s.grid[1] * s.grid[2]), gh = (l / s.grid[2]) % s.grid[1], gw = l % s.grid[2];
            const float *src = y.data() + r * n;
            for (int64_t a = 0; a < pt; ++a)
                for (int64_t i = 0; i < ph; ++i)
                    for (int64_t j = 0; j < pw; ++j)
                        for (int64_t ch = 0; ch < C; ++ch)
                            out[(((b * C + ch) * F + gf * pt + a) * H + gh * ph + i) * W + gw * pw + j] = *src++;
        }
    });
}

}  // namespace slip::runtime
