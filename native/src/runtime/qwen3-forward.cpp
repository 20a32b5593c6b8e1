// The Qwen3 forward over a session's KV cache: n new tokens in, the cache extended, logits out.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../base/error.h"
#include "../base/thread-pool.h"
#include "qwen3.h"
#include "rmsnorm.h"

namespace slip::runtime::qwen3 {

namespace {

// Room for `tokens` tokens in every layer's cache. Doubling keeps a token-by-token decode from
// copying the cache at every step; the cap keeps a short session of a long-context model small.
void reserve(Session &s, int64_t tokens) {
    if (tokens <= s.capacity) return;
    const Model &m = *s.model;
    const int64_t cap = std::min(m.cfg.max_context, std::max({tokens, 2 * s.capacity, int64_t{64}}));
    const int64_t d = m.cfg.head_dim;
    for (size_t i = 0; i < m.layers.size(); ++i) {
        const size_t n = static_cast<size_t>(cap * m.layers[i].kv_heads * d);
        s.k_cache[i].resize(n);
        s.v_cache[i].resize(n);
    }
    s.capacity = cap;
}

// Rotate-half RoPE on rows of `heads` heads of width d at positions pos0, pos0 + 1, ...:
// (x_j, x_{j+d/2}) -> (x_j c - x_{j+d/2} s, x_{j+d/2} c + x_j s), as HF's apply_rotary_pos_emb.
void rope(const Model &m, float *x, int64_t rows, int64_t heads, int64_t pos0) {
    const int64_t d = m.cfg.head_dim, half = d / 2;
    parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *c = m.rope_cos.data() + (pos0 + r) * half, *sn = m.rope_sin.data() + (pos0 + r) * half;
            for (int64_t h = 0; h < heads; ++h) {
                float *v = x + (r * heads + h) * d;
                for (int64_t j = 0; j < half; ++j) {
                    const float x0 = v[j], x1 = v[j + half];
                    v[j] = x0 * c[j] - x1 * sn[j];
                    v[j + half] = x1 * c[j] + x0 * sn[j];
                }
            }
        }
    });
}

void attend(const float *q, const float *k, const float *v, float *out, int64_t nq, int64_t nk, int64_t heads,
            int64_t kv_heads, int64_t d) {
    slip_tensor qt, kt, vt, ot;
    const int64_t qs[4] = {1, nq, heads, d}, ks[4] = {1, nk, kv_heads, d};
    slip_tensor_init(&qt, const_cast<float *>(q), SLIP_DTYPE_F32, 4, qs);
    slip_tensor_init(&kt, const_cast<float *>(k), SLIP_DTYPE_F32, 4, ks);
    slip_tensor_init(&vt, const_cast<float *>(v), SLIP_DTYPE_F32, 4, ks);
    slip_tensor_init(&ot, out, SLIP_DTYPE_F32, 4, qs);
    slip_attn_params p;
    slip_attn_params_init(&p);
    p.layout = SLIP_ATTN_NHD;
    p.causal = 1;  // bottom-right aligned: new token i sees the cache and new tokens <= i
    const slip_status st = slip_attn_dense(&qt, &kt, &vt, nullptr, nullptr, nullptr, &p, &ot, nullptr);
    if (st != SLIP_STATUS_OK) fail(st, slip_last_error());
}

void add(float *x, const float *y, int64_t n) {
    parallel_for(n, 4096, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) x[i] += y[i];
    });
}

}  // namespace

void forward(Session &s, const int32_t *tokens, int64_t n, float *logits, bool all) {
    const Model &m = *s.model;
    const int64_t D = m.cfg.hidden_size, d = m.cfg.head_dim, P = s.position;
    const float eps = m.cfg.rms_norm_eps;
    reserve(s, P + n);

    std::vector<float> x(static_cast<size_t>(n * D)), h(x.size());
    for (int64_t r = 0; r < n; ++r)
        std::memcpy(x.data() + r * D, m.embed.data() + static_cast<int64_t>(tokens[r]) * D, static_cast<size_t>(D) * 4);

    std::vector<float> qkv, q, att, gu, act;
    for (size_t li = 0; li < m.layers.size(); ++li) {
        const Layer &l = m.layers[li];
        const int64_t H = l.heads, G = l.kv_heads, I = l.inter, width = (H + 2 * G) * d;
        float *kc = s.k_cache[li].data(), *vc = s.v_cache[li].data();

        // Attention: q to its own buffer, k and v straight into the cache rows P .. P + n.
        rms_norm(x.data(), h.data(), n, D, eps, l.input_norm.data());
        qkv.resize(static_cast<size_t>(n * width));
        l.qkv.run(h.data(), n, qkv.data());
        q.resize(static_cast<size_t>(n * H * d));
        float *knew = kc + P * G * d, *vnew = vc + P * G * d;
        parallel_for(n, 16, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const float *row = qkv.data() + r * width;
                std::memcpy(q.data() + r * H * d, row, static_cast<size_t>(H * d) * 4);
                std::memcpy(knew + r * G * d, row + H * d, static_cast<size_t>(G * d) * 4);
                std::memcpy(vnew + r * G * d, row + (H + G) * d, static_cast<size_t>(G * d) * 4);
            }
        });
        rms_norm(q.data(), q.data(), n * H, d, eps, l.q_norm.data());
        rms_norm(knew, knew, n * G, d, eps, l.k_norm.data());
        rope(m, q.data(), n, H, P);
        rope(m, knew, n, G, P);
        att.resize(q.size());
        attend(q.data(), kc, vc, att.data(), n, P + n, H, G, d);
        l.o.run(att.data(), n, h.data());
        add(x.data(), h.data(), n * D);

        // MLP: down(silu(gate) * up).
        rms_norm(x.data(), h.data(), n, D, eps, l.post_norm.data());
        gu.resize(static_cast<size_t>(n * 2 * I));
        l.gate_up.run(h.data(), n, gu.data());
        act.resize(static_cast<size_t>(n * I));
        parallel_for(n * I, 4096, [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i) {
                const int64_t r = i / I, c = i % I;
                const float g = gu[r * 2 * I + c], u = gu[r * 2 * I + I + c];
                act[i] = g / (1.0f + std::exp(-g)) * u;
            }
        });
        l.down.run(act.data(), n, h.data());
        add(x.data(), h.data(), n * D);
    }

    if (logits) {
        const int64_t rows = all ? n : 1;
        const float *last = x.data() + (n - rows) * D;
        rms_norm(last, h.data(), rows, D, eps, m.norm.data());
        m.lm_head.run(h.data(), rows, logits);
    }
    s.position = P + n;
}

}  // namespace slip::runtime::qwen3
