// SLA2 forward (arXiv 2602.12675; attention.md §4.1, §4.3): exact softmax over the critical
// blocks, linear attention over the marginal ones, mixed by the per-head ratio α.
#include <algorithm>
#include <cmath>

#include "base/thread-pool.h"
#include "sla.h"

namespace slip::attn::sla {

// SLA's three feature maps (attention.md §4.2: softmax over d is the default, elu+1, relu).
void feature(int32_t fmap, const double *x, int64_t D, double *y) {
    if (fmap == SLIP_SLA_FEATURE_SOFTMAX) {
        double mx = -INFINITY, sum = 0.0;
        for (int64_t d = 0; d < D; ++d) mx = std::max(mx, x[d]);
        for (int64_t d = 0; d < D; ++d) sum += y[d] = std::exp(x[d] - mx);
        for (int64_t d = 0; d < D; ++d) y[d] /= sum;
    } else if (fmap == SLIP_SLA_FEATURE_ELU) {
        for (int64_t d = 0; d < D; ++d) y[d] = x[d] > 0.0 ? x[d] + 1.0 : std::exp(x[d]);
    } else {
        for (int64_t d = 0; d < D; ++d) y[d] = x[d] > 0.0 ? x[d] : 0.0;
    }
}

void feature_vjp(int32_t fmap, const double *x, const double *y, const double *g, int64_t D,
                 double *dx) {
    if (fmap == SLIP_SLA_FEATURE_SOFTMAX) {
        // J = diag(y) − y yᵀ, symmetric: dx = y ⊙ (g − y·g).
        double yg = 0.0;
        for (int64_t d = 0; d < D; ++d) yg += y[d] * g[d];
        for (int64_t d = 0; d < D; ++d) dx[d] = y[d] * (g[d] - yg);
    } else if (fmap == SLIP_SLA_FEATURE_ELU) {
        for (int64_t d = 0; d < D; ++d) dx[d] = x[d] > 0.0 ? g[d] : y[d] * g[d];  // (e^x)' = e^x
    } else {
        for (int64_t d = 0; d < D; ++d) dx[d] = x[d] > 0.0 ? g[d] : 0.0;
    }
}

void build_kv(const Sla &a, const Seq &s, int64_t hk, KvState &kv) {
    const int64_t D = a.pr.dim;
    kv.phik.assign(static_cast<size_t>(s.nk * D), 0.0);
    kv.h.assign(static_cast<size_t>(a.nkb * D * D), 0.0);
    kv.z.assign(static_cast<size_t>(a.nkb * D), 0.0);
    // Per-block sums once per kv head, so a query block's marginal sums cost nkb·D², not
    // (marginal tokens)·D² (SLA's kernel precomputes them the same way, attention.md §4.1).
    parallel_for(a.nkb, 1, [&](int64_t k0, int64_t k1) {
        std::vector<double> x(static_cast<size_t>(D));
        for (int64_t kb = k0; kb < k1; ++kb) {
            double *h = &kv.h[static_cast<size_t>(kb * D * D)];
            double *z = &kv.z[static_cast<size_t>(kb * D)];
            for (int64_t t = kb * a.bk; t < std::min(s.nk, (kb + 1) * a.bk); ++t) {
                const float *kr = a.pr.k_row(s, hk, t), *vr = a.pr.v_row(s, hk, t);
                double *phi = &kv.phik[static_cast<size_t>(t * D)];
                for (int64_t d = 0; d < D; ++d) x[d] = kr[d];
                feature(a.fmap, x.data(), D, phi);
                for (int64_t r = 0; r < D; ++r) {
                    z[r] += phi[r];
                    for (int64_t c = 0; c < D; ++c) h[r * D + c] += phi[r] * vr[c];
                }
            }
        }
    });
}

void build_row(const Sla &a, const KvState &kv, int64_t b, int64_t h, int64_t qb, RowState &row) {
    const int64_t D = a.pr.dim;
    const uint8_t *r = a.route_row(b, h, qb);
    row.critical.clear();
    row.H.assign(static_cast<size_t>(D * D), 0.0);
    row.z.assign(static_cast<size_t>(D), 0.0);
    row.marginal = false;
    for (int64_t kb = 0; kb < a.nkb; ++kb) {
        if (r[kb] == SLIP_SLA_CRITICAL) {
            row.critical.push_back(kb);
        } else if (r[kb] == SLIP_SLA_MARGINAL) {
            row.marginal = true;
            const double *hk = &kv.h[static_cast<size_t>(kb * D * D)];
            const double *zk = &kv.z[static_cast<size_t>(kb * D)];
            for (int64_t e = 0; e < D * D; ++e) row.H[e] += hk[e];
            for (int64_t d = 0; d < D; ++d) row.z[d] += zk[d];
        }
    }
}

void query_forward(const Sla &a, const Seq &s, int64_t h, int64_t i, const RowState &row,
                   QueryFwd &f) {
    const int64_t D = a.pr.dim, hk = a.pr.kv_head(h);
    f.q.resize(static_cast<size_t>(D));
    f.os.assign(static_cast<size_t>(D), 0.0);
    f.ol.assign(static_cast<size_t>(D), 0.0);
    f.phiq.resize(static_cast<size_t>(D));
    const float *qr = a.pr.q_row(s, h, i);
    for (int64_t d = 0; d < D; ++d) f.q[d] = qr[d];
    // Sparse branch: online softmax over the critical keys (one pass, rescaling on a new max).
    double m = -INFINITY, l = 0.0;
    for (int64_t kb : row.critical) {
        for (int64_t j = kb * a.bk; j < std::min(s.nk, (kb + 1) * a.bk); ++j) {
            const float *kr = a.pr.k_row(s, hk, j), *vr = a.pr.v_row(s, hk, j);
            double dot = 0.0;
            for (int64_t d = 0; d < D; ++d) dot += f.q[d] * kr[d];
            const double sc = a.pr.scale * dot;
            if (sc > m) {
                const double r = std::exp(m - sc);  // 0 on the first key (m = -inf)
                l *= r;
                for (int64_t d = 0; d < D; ++d) f.os[d] *= r;
                m = sc;
            }
            const double p = std::exp(sc - m);
            l += p;
            for (int64_t d = 0; d < D; ++d) f.os[d] += p * vr[d];
        }
    }
    if (l > 0.0) {
        for (int64_t d = 0; d < D; ++d) f.os[d] /= l;
        f.lse = m + std::log(l);
    } else {
        f.lse = -INFINITY;
    }
    // Linear branch: φ(q)ᵀH / φ(q)·z over the marginal blocks.
    feature(a.fmap, f.q.data(), D, f.phiq.data());
    f.den = 0.0;
    if (!row.marginal) return;
    for (int64_t d = 0; d < D; ++d) f.den += f.phiq[d] * row.z[d];
    if (!(f.den > 0.0)) return;
    for (int64_t r = 0; r < D; ++r) {
        const double w = f.phiq[r] / f.den;
        if (w == 0.0) continue;
        const double *hr = &row.H[static_cast<size_t>(r * D)];
        for (int64_t c = 0; c < D; ++c) f.ol[c] += w * hr[c];
    }
}

void combine(const Sla &a, int64_t h, const QueryFwd &f, double *pj, float *out) {
    const int64_t D = a.pr.dim;
    const double al = a.alpha[h];
    for (int64_t o = 0; o < D; ++o) {
        double acc = a.proj_b ? a.proj_b[o] : 0.0;
        const float *w = a.proj_w + o * D;
        for (int64_t c = 0; c < D; ++c) acc += w[c] * f.ol[c];
        pj[o] = acc;
        if (out) out[o] = static_cast<float>(al * f.os[o] + (1.0 - al) * acc);
    }
}

void forward(const Sla &a, float *out) {
    const Problem &pr = a.pr;
    KvState kv;
    for (int64_t b = 0; b < pr.batch; ++b) {
        const Seq s = pr.seq(b);
        for (int64_t hk = 0; hk < pr.heads_k; ++hk) {
            build_kv(a, s, hk, kv);
            // Tasks: (query head of the group, query block).
            parallel_for(pr.group * a.nqb, 1, [&](int64_t t0, int64_t t1) {
                RowState row;
                QueryFwd f;
                std::vector<double> pjt(static_cast<size_t>(pr.dim));
                for (int64_t t = t0; t < t1; ++t) {
                    const int64_t h = hk * pr.group + t / a.nqb, qb = t % a.nqb;
                    build_row(a, kv, b, h, qb, row);
                    for (int64_t i = qb * a.bq; i < std::min(s.nq, (qb + 1) * a.bq); ++i) {
                        query_forward(a, s, h, i, row, f);
                        combine(a, h, f, pjt.data(), out + (pr.q_row(s, h, i) - pr.q));
                    }
                }
            });
        }
    }
}

}  // namespace slip::attn::sla
