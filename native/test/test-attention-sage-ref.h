// Float64 references and inputs shared by the SageAttention tests: exact attention (forward and
// analytic gradients) on HND or NHD tensors, DiT-like synthetic inputs, error metrics.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "slipstream.h"

namespace sref {

// Extents of one attention call; tensors are dense in `layout` (HND or NHD).
struct Dims {
    int64_t B = 1, Hq = 1, Hk = 1, Nq = 1, Nk = 1, D = 1;
    int32_t layout = SLIP_ATTN_HND;
    bool causal = false;
    // Optional mask [B or 1, Hq or 1, Nq, Nk]: U8 when u8 is non-empty, F32 when f32 is.
    std::vector<uint8_t> u8;
    std::vector<float> f32;
    int64_t mb = 1, mh = 1;
    double scale() const { return 1.0 / std::sqrt(static_cast<double>(D)); }
    int64_t idx(int64_t b, int64_t h, int64_t n, int64_t H, int64_t N) const {
        return layout == SLIP_ATTN_HND ? ((b * H + h) * N + n) * D : ((b * N + n) * H + h) * D;
    }
    int64_t qi(int64_t b, int64_t h, int64_t i) const { return idx(b, h, i, Hq, Nq); }
    int64_t ki(int64_t b, int64_t h, int64_t j) const { return idx(b, h, j, Hk, Nk); }
    std::vector<int64_t> qshape() const {
        return layout == SLIP_ATTN_HND ? std::vector<int64_t>{B, Hq, Nq, D}
                                       : std::vector<int64_t>{B, Nq, Hq, D};
    }
    std::vector<int64_t> kshape() const {
        return layout == SLIP_ATTN_HND ? std::vector<int64_t>{B, Hk, Nk, D}
                                       : std::vector<int64_t>{B, Nk, Hk, D};
    }
    // Additive score term of (b, h, i, j): 0, a float, or -inf.
    double term(int64_t b, int64_t h, int64_t i, int64_t j) const {
        if (causal && j > i + Nk - Nq) return -INFINITY;
        const int64_t m = (((mb == 1 ? 0 : b) * mh + (mh == 1 ? 0 : h)) * Nq + i) * Nk + j;
        if (!u8.empty()) return u8[m] ? 0.0 : -INFINITY;
        if (!f32.empty()) return f32[m];
        return 0.0;
    }
};

inline slip_tensor tensor(const std::vector<int64_t> &shape, void *data, slip_dtype dt) {
    slip_tensor t;
    slip_tensor_init(&t, data, dt, static_cast<int32_t>(shape.size()), shape.data());
    return t;
}

struct Exact {
    std::vector<double> out, lse;          // out like q, lse [B, Hq, Nq]
    std::vector<double> absout;            // sum_j P_ij |V_jc|, like out: scale of error bounds
    std::vector<double> dq, dk, dv;        // filled by grads()
};

// Row i of (b, h): probabilities P (0 where hidden) and the LSE, in float64.
inline double probs(const Dims &d, const std::vector<float> &q, const std::vector<float> &k,
                    int64_t b, int64_t h, int64_t i, std::vector<double> &p) {
    const int64_t hk = h / (d.Hq / d.Hk);
    p.assign(d.Nk, 0.0);
    double m = -INFINITY;
    for (int64_t j = 0; j < d.Nk; ++j) {
        double s = 0.0;
        for (int64_t c = 0; c < d.D; ++c) s += double(q[d.qi(b, h, i) + c]) * k[d.ki(b, hk, j) + c];
        p[j] = s * d.scale() + d.term(b, h, i, j);
        m = std::fmax(m, p[j]);
    }
    if (m == -INFINITY) {
        p.assign(d.Nk, 0.0);
        return -INFINITY;
    }
    double l = 0.0;
    for (int64_t j = 0; j < d.Nk; ++j) l += (p[j] = std::exp(p[j] - m));
    for (int64_t j = 0; j < d.Nk; ++j) p[j] /= l;
    return m + std::log(l);
}

// Exact attention; with d_out also its gradients (GQA: dk, dv summed over each group).
inline Exact exact(const Dims &d, const std::vector<float> &q, const std::vector<float> &k,
                   const std::vector<float> &v, const std::vector<float> *d_out = nullptr) {
    Exact e;
    e.out.assign(q.size(), 0.0);
    e.absout.assign(q.size(), 0.0);
    e.lse.assign(d.B * d.Hq * d.Nq, 0.0);
    if (d_out) {
        e.dq.assign(q.size(), 0.0);
        e.dk.assign(k.size(), 0.0);
        e.dv.assign(v.size(), 0.0);
    }
    std::vector<double> p, dp(d.Nk);
    for (int64_t b = 0; b < d.B; ++b)
        for (int64_t h = 0; h < d.Hq; ++h)
            for (int64_t i = 0; i < d.Nq; ++i) {
                const int64_t hk = h / (d.Hq / d.Hk), oi = d.qi(b, h, i);
                e.lse[(b * d.Hq + h) * d.Nq + i] = probs(d, q, k, b, h, i, p);
                for (int64_t j = 0; j < d.Nk; ++j)
                    for (int64_t c = 0; c < d.D; ++c) {
                        e.out[oi + c] += p[j] * v[d.ki(b, hk, j) + c];
                        e.absout[oi + c] += p[j] * std::fabs(v[d.ki(b, hk, j) + c]);
                    }
                if (!d_out) continue;
                double delta = 0.0;  // D_i = sum_j P dP = rowsum(dO * O)
                for (int64_t j = 0; j < d.Nk; ++j) {
                    dp[j] = 0.0;
                    for (int64_t c = 0; c < d.D; ++c)
                        dp[j] += double((*d_out)[oi + c]) * v[d.ki(b, hk, j) + c];
                    delta += p[j] * dp[j];
                }
                for (int64_t j = 0; j < d.Nk; ++j) {
                    const double ds = p[j] * (dp[j] - delta) * d.scale();
                    const int64_t kj = d.ki(b, hk, j);
                    for (int64_t c = 0; c < d.D; ++c) {
                        e.dq[oi + c] += ds * k[kj + c];
                        e.dk[kj + c] += ds * q[oi + c];
                        e.dv[kj + c] += p[j] * (*d_out)[oi + c];
                    }
                }
            }
    return e;
}

struct Err {
    double cos, rel_l1, max_abs;
};

template <class A, class B>
Err compare(const std::vector<A> &got, const std::vector<B> &ref) {
    double dot = 0, ng = 0, nr = 0, l1 = 0, l1r = 0, mx = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double g = got[i], r = ref[i];
        dot += g * r;
        ng += g * g;
        nr += r * r;
        l1 += std::fabs(g - r);
        l1r += std::fabs(r);
        mx = std::fmax(mx, std::fabs(g - r));
    }
    return {ng > 0 && nr > 0 ? dot / std::sqrt(ng * nr) : (ng == nr ? 1.0 : 0.0),
            l1r > 0 ? l1 / l1r : l1, mx};
}

// Gaussian data.
inline std::vector<float> gaussian(size_t n, uint64_t seed, double sd = 1.0) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> nd(0.0, sd);
    std::vector<float> x(n);
    for (auto &v : x) v = static_cast<float>(nd(g));
    return x;
}

// DiT-like activations (what SA2 was designed for): one channel in 16 of Q and of K four times
// larger than the rest (different channels, so scores stay O(1) after the 1/sqrt(D) scale), a
// large mean shared by all keys (+20 in every channel), and V with per-channel means (the bias
// SA's smooth_v exists for; N(0, 1) per channel) plus heavy-tailed noise (Student t, 3 dof).
struct DitInputs {
    std::vector<float> q, k, v;
};
inline DitInputs dit_inputs(const Dims &d, uint64_t seed) {
    DitInputs x;
    x.q = gaussian(d.B * d.Hq * d.Nq * d.D, seed);
    x.k = gaussian(d.B * d.Hk * d.Nk * d.D, seed + 1);
    std::mt19937_64 g(seed + 2);
    std::student_t_distribution<double> t3(3.0);
    std::normal_distribution<double> nd(0.0, 1.0);
    std::vector<double> vmean(d.D);
    for (auto &m : vmean) m = nd(g);
    x.v.resize(x.k.size());
    for (size_t e = 0; e < x.v.size(); ++e) x.v[e] = static_cast<float>(vmean[e % d.D] + t3(g));
    for (size_t e = 0; e < x.q.size(); ++e)
        if (e % d.D % 16 == 3) x.q[e] *= 4.0f;  // outlier channels 3, 19, 35, ...
    for (size_t e = 0; e < x.k.size(); ++e) {
        if (e % d.D % 16 == 7) x.k[e] *= 4.0f;  // 7, 23, 39, ...
        x.k[e] += 20.0f;
    }
    return x;
}

}  // namespace sref
