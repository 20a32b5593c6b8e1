// SLA2 backward: gradients of sum(dout ⊙ O) for q, k, v, α, Wp, bp with the route held fixed.
// Two passes per (batch, kv head), as FlashAttention-2's backward: a query pass (parallel over
// query blocks: dq, dα, dWp, dbp, and the per-row linear-branch cotangents dH, dz) and a key
// pass (parallel over key blocks: dk, dv), so no two threads write the same row.
#include <algorithm>
#include <cmath>
#include <mutex>

#include "base/thread-pool.h"
#include "sla.h"

namespace slip::attn::sla {
namespace {

// Per (query head of the group, query block): what the key pass needs from the query pass.
struct RowGrad {
    std::vector<double> dH, dz;  // cotangents of H_I [D, D] and z_I [D]
};

}  // namespace

void backward(const Sla &a, const float *dout, const Grads &g) {
    const Problem &pr = a.pr;
    const int64_t D = pr.dim, G = pr.group;
    // Parameter gradients accumulate in float64 across every task, then are written once.
    std::vector<double> dalpha(static_cast<size_t>(pr.heads_q), 0.0);
    std::vector<double> dW(static_cast<size_t>(D * D), 0.0), db(static_cast<size_t>(D), 0.0);
    std::mutex merge;
    KvState kv;
    std::vector<RowGrad> rg(static_cast<size_t>(G * a.nqb));
    std::vector<double> lse, delta;  // per query token of the group: [G, Nq]
    for (int64_t b = 0; b < pr.batch; ++b) {
        const Seq s = pr.seq(b);
        lse.assign(static_cast<size_t>(G * s.nq), 0.0);
        delta.assign(static_cast<size_t>(G * s.nq), 0.0);
        for (int64_t hk = 0; hk < pr.heads_k; ++hk) {
            build_kv(a, s, hk, kv);
            // Query pass.
            parallel_for(G * a.nqb, 1, [&](int64_t t0, int64_t t1) {
                RowState row;
                QueryFwd f;
                std::vector<double> pj(D), dS(D), dL(D), dnum(D), da(D), dphi(D);
                std::vector<double> lW(static_cast<size_t>(D * D), 0.0), lb(D, 0.0), la(G, 0.0);
                for (int64_t t = t0; t < t1; ++t) {
                    const int64_t gh = t / a.nqb, qb = t % a.nqb, h = hk * G + gh;
                    const double al = a.alpha[h];
                    build_row(a, kv, b, h, qb, row);
                    RowGrad &r = rg[static_cast<size_t>(t)];
                    r.dH.assign(static_cast<size_t>(D * D), 0.0);
                    r.dz.assign(static_cast<size_t>(D), 0.0);
                    for (int64_t i = qb * a.bq; i < std::min(s.nq, (qb + 1) * a.bq); ++i) {
                        query_forward(a, s, h, i, row, f);
                        combine(a, h, f, pj.data(), nullptr);
                        const int64_t off = pr.q_row(s, h, i) - pr.q;
                        const float *go = dout + off;
                        float *dq = g.dq + off;
                        // O = α Oˢ + (1 − α) Pj, Pj = Oˡ Wpᵀ + bp.
                        double dsum = 0.0, delt = 0.0;
                        for (int64_t o = 0; o < D; ++o) {
                            dsum += (f.os[o] - pj[o]) * go[o];
                            dS[o] = al * go[o];
                            delt += dS[o] * f.os[o];  // Δ_i = dOˢ_i · Oˢ_i
                        }
                        la[gh] += dsum;
                        for (int64_t c = 0; c < D; ++c) dL[c] = 0.0;
                        for (int64_t o = 0; o < D; ++o) {
                            const double dp = (1.0 - al) * go[o];
                            lb[o] += dp;
                            const float *w = a.proj_w + o * D;
                            for (int64_t c = 0; c < D; ++c) {
                                lW[o * D + c] += dp * f.ol[c];
                                dL[c] += dp * w[c];
                            }
                        }
                        lse[gh * s.nq + i] = f.lse;
                        delta[gh * s.nq + i] = delt;
                        std::vector<double> gq(static_cast<size_t>(D), 0.0);
                        // Sparse branch: ds_j = p_j (dOˢ·v_j − Δ), dq += scale Σ ds_j k_j.
                        for (int64_t kb : row.critical)
                            for (int64_t j = kb * a.bk; j < std::min(s.nk, (kb + 1) * a.bk); ++j) {
                                const float *kr = pr.k_row(s, hk, j), *vr = pr.v_row(s, hk, j);
                                double dot = 0.0, dpv = 0.0;
                                for (int64_t d = 0; d < D; ++d) {
                                    dot += f.q[d] * kr[d];
                                    dpv += dS[d] * vr[d];
                                }
                                const double p = std::exp(pr.scale * dot - f.lse);
                                const double ds = p * (dpv - delt) * pr.scale;
                                for (int64_t d = 0; d < D; ++d) gq[d] += ds * kr[d];
                            }
                        // Linear branch: Oˡ = num/den, num = φ(q)ᵀH, den = φ(q)·z.
                        if (f.den > 0.0) {
                            double dden = 0.0;
                            for (int64_t c = 0; c < D; ++c) {
                                dnum[c] = dL[c] / f.den;
                                dden -= dL[c] * f.ol[c];
                            }
                            dden /= f.den;
                            for (int64_t r2 = 0; r2 < D; ++r2) {
                                const double *hr = &row.H[static_cast<size_t>(r2 * D)];
                                double acc = row.z[r2] * dden;
                                for (int64_t c = 0; c < D; ++c) {
                                    acc += hr[c] * dnum[c];
                                    r.dH[r2 * D + c] += f.phiq[r2] * dnum[c];
                                }
                                r.dz[r2] += f.phiq[r2] * dden;
                                da[r2] = acc;
                            }
                            feature_vjp(a.fmap, f.q.data(), f.phiq.data(), da.data(), D, dphi.data());
                            for (int64_t d = 0; d < D; ++d) gq[d] += dphi[d];
                        }
                        for (int64_t d = 0; d < D; ++d) dq[d] = static_cast<float>(gq[d]);
                    }
                }
                std::lock_guard<std::mutex> lock(merge);
                for (int64_t e = 0; e < D * D; ++e) dW[e] += lW[e];
                for (int64_t o = 0; o < D; ++o) db[o] += lb[o];
                for (int64_t gh = 0; gh < G; ++gh) dalpha[hk * G + gh] += la[gh];
            });
            // Key pass.
            parallel_for(a.nkb, 1, [&](int64_t k0, int64_t k1) {
                std::vector<double> Gm(static_cast<size_t>(D * D)), gz(D), gk(D), gv(D), dphi(D),
                    kx(D), qv(D), dS(D);
                for (int64_t kb = k0; kb < k1; ++kb) {
                    std::fill(Gm.begin(), Gm.end(), 0.0);
                    std::fill(gz.begin(), gz.end(), 0.0);
                    bool marginal = false;
                    for (int64_t gh = 0; gh < G; ++gh)
                        for (int64_t qb = 0; qb < a.nqb; ++qb)
                            if (a.route_row(b, hk * G + gh, qb)[kb] == SLIP_SLA_MARGINAL) {
                                const RowGrad &r = rg[static_cast<size_t>(gh * a.nqb + qb)];
                                for (int64_t e = 0; e < D * D; ++e) Gm[e] += r.dH[e];
                                for (int64_t d = 0; d < D; ++d) gz[d] += r.dz[d];
                                marginal = true;
                            }
                    for (int64_t j = kb * a.bk; j < std::min(s.nk, (kb + 1) * a.bk); ++j) {
                        const float *kr = pr.k_row(s, hk, j), *vr = pr.v_row(s, hk, j);
                        std::fill(gk.begin(), gk.end(), 0.0);
                        std::fill(gv.begin(), gv.end(), 0.0);
                        // Sparse branch: every (query head, query block) routing kb as critical.
                        for (int64_t gh = 0; gh < G; ++gh) {
                            const int64_t h = hk * G + gh;
                            const double al = a.alpha[h];
                            for (int64_t qb = 0; qb < a.nqb; ++qb) {
                                if (a.route_row(b, h, qb)[kb] != SLIP_SLA_CRITICAL) continue;
                                for (int64_t i = qb * a.bq; i < std::min(s.nq, (qb + 1) * a.bq); ++i) {
                                    const int64_t off = pr.q_row(s, h, i) - pr.q;
                                    const float *qr = pr.q + off, *go = dout + off;
                                    double dot = 0.0, dpv = 0.0;
                                    for (int64_t d = 0; d < D; ++d) {
                                        dot += static_cast<double>(qr[d]) * kr[d];
                                        dS[d] = al * go[d];
                                        dpv += dS[d] * vr[d];
                                    }
                                    const double p = std::exp(pr.scale * dot - lse[gh * s.nq + i]);
                                    const double ds = p * (dpv - delta[gh * s.nq + i]) * pr.scale;
                                    for (int64_t d = 0; d < D; ++d) {
                                        gv[d] += p * dS[d];
                                        gk[d] += ds * qr[d];
                                    }
                                }
                            }
                        }
                        // Linear branch: H = Σ φ(k) vᵀ, z = Σ φ(k) summed into every marginal row.
                        if (marginal) {
                            const double *phi = &kv.phik[static_cast<size_t>(j * D)];
                            std::vector<double> &gphi = qv;  // reuse: cotangent of φ(k_j)
                            for (int64_t r2 = 0; r2 < D; ++r2) {
                                double acc = gz[r2];
                                for (int64_t c = 0; c < D; ++c) {
                                    acc += Gm[r2 * D + c] * vr[c];
                                    gv[c] += Gm[r2 * D + c] * phi[r2];
                                }
                                gphi[r2] = acc;
                            }
                            for (int64_t d = 0; d < D; ++d) kx[d] = kr[d];
                            feature_vjp(a.fmap, kx.data(), phi, gphi.data(), D, dphi.data());
                            for (int64_t d = 0; d < D; ++d) gk[d] += dphi[d];
                        }
                        const int64_t koff = kr - pr.k, voff = vr - pr.v;
                        for (int64_t d = 0; d < D; ++d) {
                            g.dk[koff + d] = static_cast<float>(gk[d]);
                            g.dv[voff + d] = static_cast<float>(gv[d]);
                        }
                    }
                }
            });
        }
    }
    for (int64_t h = 0; h < pr.heads_q; ++h) g.dalpha[h] = static_cast<float>(dalpha[h]);
    for (int64_t e = 0; e < D * D; ++e) g.dproj_w[e] = static_cast<float>(dW[e]);
    if (g.dproj_b)
        for (int64_t o = 0; o < D; ++o) g.dproj_b[o] = static_cast<float>(db[o]);
}

}  // namespace slip::attn::sla
