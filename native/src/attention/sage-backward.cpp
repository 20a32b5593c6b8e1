// SageBwd (arXiv 2603.02170), emulated: attention gradients with INT8 matmuls for the score
// recompute S = Q K'^T, dV = P^T dO, dQ = dS K' and dK = dS^T Q, and dP = dO V^T in FP32.
// Operands are INT8 per block (amax/127, half away from zero): Q and dO per Q tile, K' per K
// tile, P and dS per (Q tile, K tile); each tile's INT32 product is dequantized and added into
// FP32, as a FlashAttention-2 style backward kernel accumulates its tiles.
//
// Two passes keep the result deterministic without atomics: pass 1 runs one task per (batch,
// kv head, K tile) and sums dK, dV over the group's query heads and every Q tile; pass 2 runs
// one task per (batch, query head, Q tile) for dQ. Both recompute the same tiles bit for bit.
#include <algorithm>
#include <cmath>
#include <vector>

#include "base/thread-pool.h"
#include "sage.h"

namespace slip::sage {
namespace {

// Per (batch, query head): Q and dO codes by Q tile, D = rowsum(dO * O), and the LSE of the
// smoothed scores (lse - scale * q.kmean), so P = exp(S' - lse') needs no correction per key.
struct QPrep {
    std::vector<int8_t> qc, doc;
    std::vector<float> qs, dos, delta, lse;
};

// One (Q tile, K tile) pair's P and dS in FP32, and their per-tile INT8 codes.
struct TileGrad {
    int64_t nr = 0, nk = 0;
    std::vector<float> p, ds;
    std::vector<int8_t> pc, dsc;
    float ps = 0.0f, dss = 0.0f;
    std::vector<int64_t> zero_group;
};

float dot_f32(const float *a, const float *b, int64_t n) {
    float acc = 0.0f;
    for (int64_t c = 0; c < n; ++c) acc += a[c] * b[c];
    return acc;
}

class Backward {
  public:
    Backward(const attn::Problem &pr, const slip_sage_params &sp, const Grads &g)
        : pr_(pr), sp_(sp), g_(g), D_(pr.dim),
          kv_(prepare_kv(pr, sp, SLIP_SAGE_GRANULARITY_BLOCK, false, 0.0f)),
          qp_(static_cast<size_t>(pr.batch * pr.heads_q)) {
        parallel_for(pr.batch * pr.heads_q, 1, [&](int64_t b0, int64_t b1) {
            for (int64_t t = b0; t < b1; ++t) prepare_q(t);
        });
    }

    const float *grad_row(const float *base, const attn::Seq &s, int64_t h, int64_t i) const {
        return base + s.b * pr_.so.batch + h * pr_.so.head + i * pr_.so.token;
    }

    void prepare_q(int64_t t) {
        const int64_t b = t / pr_.heads_q, h = t % pr_.heads_q;
        const attn::Seq s = pr_.seq(b);
        const KvPrep &kp = kv(b, h);
        QPrep &q = qp_[static_cast<size_t>(t)];
        q.delta.resize(s.nq);
        q.lse.resize(s.nq);
        std::vector<float> rows(s.nq * D_), drows(s.nq * D_);
        for (int64_t i = 0; i < s.nq; ++i) {
            const float *qi = pr_.q_row(s, h, i), *oi = grad_row(g_.out, s, h, i);
            const float *di = grad_row(g_.d_out, s, h, i);
            std::copy(qi, qi + D_, rows.begin() + i * D_);
            std::copy(di, di + D_, drows.begin() + i * D_);
            q.delta[i] = dot_f32(di, oi, D_);
            const float l = g_.lse[s.b * pr_.slse.batch + h * pr_.slse.head + i];
            q.lse[i] = l == -INFINITY ? l : l - pr_.scale * dot_f32(qi, kp.kmean.data(), D_);
        }
        if (!sp_.quantize) return;
        std::vector<int64_t> group(s.nq);
        for (int64_t i = 0; i < s.nq; ++i) group[i] = i / sp_.block_q;
        const int64_t ng = (s.nq + sp_.block_q - 1) / sp_.block_q;
        q.qc.resize(s.nq * D_);
        q.qs.resize(s.nq);
        q.doc.resize(s.nq * D_);
        q.dos.resize(s.nq);
        quantize_rows(rows.data(), D_, s.nq, D_, group, ng, q.qc.data(), q.qs.data());
        quantize_rows(drows.data(), D_, s.nq, D_, group, ng, q.doc.data(), q.dos.data());
    }

    const KvPrep &kv(int64_t b, int64_t h) const {
        return kv_[static_cast<size_t>(b * pr_.heads_k + pr_.kv_head(h))];
    }
    const QPrep &qp(int64_t b, int64_t h) const {
        return qp_[static_cast<size_t>(b * pr_.heads_q + h)];
    }

    // P = exp(S' - lse') and dS = P (dP - D) of rows [i0, i0+nr) x keys [j0, j0+nk).
    void tile(const attn::Seq &s, int64_t h, int64_t i0, int64_t nr, int64_t j0, int64_t nk,
              TileGrad &t) const {
        const KvPrep &kp = kv(s.b, h);
        const QPrep &q = qp(s.b, h);
        const int64_t hk = pr_.kv_head(h);
        t.nr = nr;
        t.nk = nk;
        t.p.resize(nr * nk);
        t.ds.resize(nr * nk);
        for (int64_t r = 0; r < nr; ++r) {
            const int64_t i = i0 + r;
            const MaskRow mr = mask_row(pr_, s, h, i);
            const float *di = grad_row(g_.d_out, s, h, i);
            for (int64_t jj = 0; jj < nk; ++jj) {
                const int64_t j = j0 + jj;
                float sv;
                if (sp_.quantize) {
                    int32_t acc = 0;
                    const int8_t *a = &q.qc[i * D_], *bb = &kp.kcodes[j * D_];
                    for (int64_t c = 0; c < D_; ++c) acc += static_cast<int32_t>(a[c]) * bb[c];
                    sv = static_cast<float>(acc) * (q.qs[i] * pr_.scale * kp.kscale[j]);
                } else {
                    sv = pr_.scale * dot_f32(pr_.q_row(s, h, i), &kp.ks[j * D_], D_);
                }
                sv += mr.term(j);
                const float p = sv == -INFINITY || q.lse[i] == -INFINITY
                                    ? 0.0f : std::exp(sv - q.lse[i]);
                // dP = dO . V^T in FP32: the one matmul SageBwd keeps in higher precision.
                const float dp = p == 0.0f ? 0.0f : dot_f32(di, pr_.v_row(s, hk, j), D_);
                t.p[r * nk + jj] = p;
                t.ds[r * nk + jj] = p * (dp - q.delta[i]);
            }
        }
        if (!sp_.quantize) return;
        t.zero_group.assign(nr, 0);
        t.pc.resize(nr * nk);
        t.dsc.resize(nr * nk);
        std::vector<float> rs(nr);
        quantize_rows(t.p.data(), nk, nr, nk, t.zero_group, 1, t.pc.data(), rs.data());
        t.ps = nr ? rs[0] : 0.0f;
        quantize_rows(t.ds.data(), nk, nr, nk, t.zero_group, 1, t.dsc.data(), rs.data());
        t.dss = nr ? rs[0] : 0.0f;
    }

    // Pass 1: dK and dV rows [j0, j1) of kv head hk, over the group's heads and all Q tiles.
    void key_tile(int64_t task) const {
        const int64_t nkt = (pr_.nk + sp_.block_k - 1) / sp_.block_k;
        const int64_t b = task / (pr_.heads_k * nkt), hk = task / nkt % pr_.heads_k;
        const attn::Seq s = pr_.seq(b);
        const int64_t j0 = task % nkt * sp_.block_k, j1 = std::min(j0 + sp_.block_k, s.nk);
        if (j0 >= j1) return;
        const int64_t nk = j1 - j0;
        std::vector<float> dk(nk * D_, 0.0f), dv(nk * D_, 0.0f);
        std::vector<int32_t> ik(nk * D_), iv(nk * D_);
        TileGrad t;
        for (int64_t h = hk * pr_.group; h < (hk + 1) * pr_.group; ++h) {
            const QPrep &q = qp(b, h);
            for (int64_t i0 = 0; i0 < s.nq; i0 += sp_.block_q) {
                const int64_t nr = std::min<int64_t>(sp_.block_q, s.nq - i0);
                if (pr_.causal && j0 > i0 + nr - 1 + s.causal_offset()) continue;
                tile(s, h, i0, nr, j0, nk, t);
                if (sp_.quantize) {
                    std::fill(ik.begin(), ik.end(), 0);
                    std::fill(iv.begin(), iv.end(), 0);
                    for (int64_t r = 0; r < nr; ++r) {
                        const int8_t *qc = &q.qc[(i0 + r) * D_], *dc = &q.doc[(i0 + r) * D_];
                        for (int64_t jj = 0; jj < nk; ++jj) {
                            const int32_t pc = t.pc[r * nk + jj], sc = t.dsc[r * nk + jj];
                            int32_t *kr = &ik[jj * D_], *vr = &iv[jj * D_];
                            for (int64_t c = 0; c < D_; ++c) {
                                vr[c] += pc * dc[c];
                                kr[c] += sc * qc[c];
                            }
                        }
                    }
                    // Scales are constant over the tile's rows: Q and dO per Q tile.
                    const float sv = t.ps * q.dos[i0], sk = t.dss * q.qs[i0] * pr_.scale;
                    for (int64_t e = 0; e < nk * D_; ++e) {
                        dv[e] += static_cast<float>(iv[e]) * sv;
                        dk[e] += static_cast<float>(ik[e]) * sk;
                    }
                } else {
                    for (int64_t r = 0; r < nr; ++r) {
                        const float *qi = pr_.q_row(s, h, i0 + r);
                        const float *di = grad_row(g_.d_out, s, h, i0 + r);
                        for (int64_t jj = 0; jj < nk; ++jj) {
                            const float p = t.p[r * nk + jj], d = pr_.scale * t.ds[r * nk + jj];
                            for (int64_t c = 0; c < D_; ++c) {
                                dv[jj * D_ + c] += p * di[c];
                                dk[jj * D_ + c] += d * qi[c];
                            }
                        }
                    }
                }
            }
        }
        for (int64_t jj = 0; jj < nk; ++jj) {
            const int64_t off = s.b * pr_.sk.batch + hk * pr_.sk.head + (j0 + jj) * pr_.sk.token;
            std::copy(&dk[jj * D_], &dk[jj * D_] + D_, g_.dk + off);
            std::copy(&dv[jj * D_], &dv[jj * D_] + D_, g_.dv + off);
        }
    }

    // Pass 2: dQ rows [i0, i1) of query head h = scale * sum over K tiles of dS K'. K' for K is
    // exact: every row of dS sums to zero, so dS (K' + kmean) = dS K'.
    void query_tile(int64_t task) const {
        const int64_t nqt = (pr_.nq + sp_.block_q - 1) / sp_.block_q;
        const int64_t b = task / (pr_.heads_q * nqt), h = task / nqt % pr_.heads_q;
        const attn::Seq s = pr_.seq(b);
        const int64_t i0 = task % nqt * sp_.block_q, i1 = std::min(i0 + sp_.block_q, s.nq);
        if (i0 >= i1) return;
        const int64_t nr = i1 - i0;
        const KvPrep &kp = kv(b, h);
        std::vector<float> dq(nr * D_, 0.0f);
        std::vector<int32_t> iq(nr * D_);
        TileGrad t;
        for (int64_t j0 = 0; j0 < s.nk; j0 += sp_.block_k) {
            if (pr_.causal && j0 > i1 - 1 + s.causal_offset()) break;
            const int64_t nk = std::min<int64_t>(sp_.block_k, s.nk - j0);
            tile(s, h, i0, nr, j0, nk, t);
            for (int64_t r = 0; r < nr; ++r) {
                float *dr = &dq[r * D_];
                if (sp_.quantize) {
                    int32_t *ir = &iq[r * D_];
                    std::fill(ir, ir + D_, 0);
                    for (int64_t jj = 0; jj < nk; ++jj) {
                        const int32_t sc = t.dsc[r * nk + jj];
                        if (sc == 0) continue;
                        const int8_t *kc = &kp.kcodes[(j0 + jj) * D_];
                        for (int64_t c = 0; c < D_; ++c) ir[c] += sc * kc[c];
                    }
                    const float sq = t.dss * kp.kscale[j0] * pr_.scale;  // K' per K tile
                    for (int64_t c = 0; c < D_; ++c) dr[c] += static_cast<float>(ir[c]) * sq;
                } else {
                    for (int64_t jj = 0; jj < nk; ++jj) {
                        const float d = pr_.scale * t.ds[r * nk + jj];
                        const float *kj = &kp.ks[(j0 + jj) * D_];
                        for (int64_t c = 0; c < D_; ++c) dr[c] += d * kj[c];
                    }
                }
            }
        }
        for (int64_t r = 0; r < nr; ++r) {
            float *o = g_.dq + s.b * pr_.sq.batch + h * pr_.sq.head + (i0 + r) * pr_.sq.token;
            std::copy(&dq[r * D_], &dq[r * D_] + D_, o);
        }
    }

  private:
    const attn::Problem &pr_;
    const slip_sage_params &sp_;
    const Grads &g_;
    const int64_t D_;
    const std::vector<KvPrep> kv_;
    std::vector<QPrep> qp_;
};

}  // namespace

void run_backward(const attn::Problem &pr, const slip_sage_params &sp, const Grads &g) {
    const Backward bw(pr, sp, g);
    const int64_t nkt = (pr.nk + sp.block_k - 1) / sp.block_k;
    const int64_t nqt = (pr.nq + sp.block_q - 1) / sp.block_q;
    parallel_for(pr.batch * pr.heads_k * nkt, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) bw.key_tile(t);
    });
    parallel_for(pr.batch * pr.heads_q * nqt, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) bw.query_tile(t);
    });
}

}  // namespace slip::sage
