// SpargeAttention2 prediction and slip_attn_sparse against float64 references: the mask matches
// an independent re-implementation (explicit b×b Gram matrices for the similarity), the hybrid
// rule's and Top-p's properties, the guard and the sink, exactness with nothing dropped, the
// error bound at high sparsity on inputs with locality, and every refused argument.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "slipstream.h"

namespace {

constexpr double kEps32 = 5.960464477539063e-08;  // 2^-24, the FP32 unit roundoff

struct Case {
    int64_t B, Hq, Hk, Nq, Nk, D;
    int32_t layout, causal;
    int64_t bq, bk;
};

int64_t at(const Case &c, int64_t H, int64_t N, int64_t b, int64_t h, int64_t n, int64_t d) {
    return c.layout == SLIP_ATTN_HND ? ((b * H + h) * N + n) * c.D + d
                                     : ((b * N + n) * H + h) * c.D + d;
}

// Tokens in runs of `run` that share a direction with a random coherence, so block
// self-similarities spread over [0, 1] and the guard has something to decide.
std::vector<float> blocky(const Case &c, int64_t H, int64_t N, int64_t run, std::mt19937_64 &rng) {
    std::normal_distribution<double> g;
    std::uniform_real_distribution<double> u(0.0, 3.0);
    std::vector<float> x(static_cast<size_t>(c.B * H * N * c.D));
    std::vector<double> dir(static_cast<size_t>(c.D));
    double coh = 0.0;
    for (int64_t b = 0; b < c.B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t n = 0; n < N; ++n) {
                if (n % run == 0) {
                    for (auto &d : dir) d = g(rng);
                    coh = u(rng);
                }
                for (int64_t d = 0; d < c.D; ++d)
                    x[at(c, H, N, b, h, n, d)] = static_cast<float>(coh * dir[d] + g(rng));
            }
    return x;
}

slip_tensor tensor(std::vector<float> &x, const Case &c, int64_t H, int64_t N) {
    slip_tensor t;
    const int64_t hnd[4] = {c.B, H, N, c.D}, nhd[4] = {c.B, N, H, c.D};
    slip_tensor_init(&t, x.data(), SLIP_DTYPE_F32, 4, c.layout == SLIP_ATTN_HND ? hnd : nhd);
    return t;
}

slip_attn_params attn_params(const Case &c) {
    slip_attn_params p;
    slip_attn_params_init(&p);
    p.layout = c.layout;
    p.causal = c.causal;
    return p;
}

bool allowed(const Case &c, int64_t i, int64_t j) { return !c.causal || j <= i + c.Nk - c.Nq; }

// The float64 reference of the prediction, written from the definition: explicit Gram matrices,
// brute-force causal block check, a plain sort. probs receives P̂ (0 for untrusted/forbidden).
struct Ref {
    std::vector<uint8_t> mask;
    std::vector<double> probs;
    int64_t kept = 0, allowed = 0;
};

void pool(const std::vector<double> &x, int64_t n, int64_t D, int64_t blk, std::vector<double> &mean,
          std::vector<double> &sim) {
    const int64_t nb = (n + blk - 1) / blk;
    mean.assign(nb * D, 0.0);
    sim.assign(nb, 0.0);
    for (int64_t b = 0; b < nb; ++b) {
        const int64_t t0 = b * blk, t1 = std::min(n, t0 + blk), m = t1 - t0;
        for (int64_t t = t0; t < t1; ++t)
            for (int64_t d = 0; d < D; ++d) mean[b * D + d] += x[t * D + d] / m;
        double s = 0.0;
        for (int64_t a = t0; a < t1; ++a)
            for (int64_t e = t0; e < t1; ++e) {
                double dot = 0, na = 0, ne = 0;
                for (int64_t d = 0; d < D; ++d) {
                    dot += x[a * D + d] * x[e * D + d];
                    na += x[a * D + d] * x[a * D + d];
                    ne += x[e * D + d] * x[e * D + d];
                }
                if (na > 0 && ne > 0) s += dot / std::sqrt(na * ne);
            }
        sim[b] = s / static_cast<double>(m * m);
    }
}

Ref ref_predict(const Case &c, const std::vector<float> &q, const std::vector<float> &k,
                const slip_sparse_params &sp) {
    const int64_t nqb = (c.Nq + c.bq - 1) / c.bq, nkb = (c.Nk + c.bk - 1) / c.bk, D = c.D;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    Ref r;
    r.mask.assign(c.B * c.Hq * nqb * nkb, 0);
    r.probs.assign(r.mask.size(), 0.0);
    for (int64_t b = 0; b < c.B; ++b)
        for (int64_t h = 0; h < c.Hq; ++h) {
            const int64_t hk = h / (c.Hq / c.Hk);
            std::vector<double> xq(c.Nq * D), xk(c.Nk * D), mu(D, 0.0);
            for (int64_t n = 0; n < c.Nq; ++n)
                for (int64_t d = 0; d < D; ++d) xq[n * D + d] = q[at(c, c.Hq, c.Nq, b, h, n, d)];
            for (int64_t n = 0; n < c.Nk; ++n)
                for (int64_t d = 0; d < D; ++d) {
                    xk[n * D + d] = k[at(c, c.Hk, c.Nk, b, hk, n, d)];
                    mu[d] += xk[n * D + d] / c.Nk;
                }
            if (sp.smooth_k)
                for (int64_t n = 0; n < c.Nk; ++n)
                    for (int64_t d = 0; d < D; ++d) xk[n * D + d] -= mu[d];
            std::vector<double> qm, qs, km, ks;
            pool(xq, c.Nq, D, c.bq, qm, qs);
            pool(xk, c.Nk, D, c.bk, km, ks);
            for (int64_t qb = 0; qb < nqb; ++qb) {
                const int64_t base = ((b * c.Hq + h) * nqb + qb) * nkb;
                std::vector<int64_t> ok;
                for (int64_t kb = 0; kb < nkb; ++kb) {
                    bool any = false;
                    for (int64_t i = qb * c.bq; i < std::min(c.Nq, (qb + 1) * c.bq) && !any; ++i)
                        any = allowed(c, i, kb * c.bk);
                    if (any) ok.push_back(kb);
                }
                r.allowed += static_cast<int64_t>(ok.size());
                if (ok.empty()) continue;
                const int64_t n = static_cast<int64_t>(ok.size());
                std::vector<int64_t> cand;
                for (int64_t kb : ok) {
                    if (ks[kb] > sp.sim_threshold) cand.push_back(kb);
                    else r.mask[base + kb] = 1;
                }
                if (!(qs[qb] > sp.sim_threshold)) {
                    for (int64_t kb : ok) r.mask[base + kb] = 1;
                } else if (!cand.empty()) {
                    std::vector<double> s(nkb, 0.0);
                    double mx = -INFINITY, sum = 0;
                    for (int64_t kb : cand) {
                        double dot = 0;
                        for (int64_t d = 0; d < D; ++d) dot += qm[qb * D + d] * km[kb * D + d];
                        s[kb] = scale * dot;
                        mx = std::max(mx, s[kb]);
                    }
                    for (int64_t kb : cand) sum += std::exp(s[kb] - mx);
                    for (int64_t kb : cand) r.probs[base + kb] = std::exp(s[kb] - mx) / sum;
                    std::stable_sort(cand.begin(), cand.end(), [&](int64_t x, int64_t y) {
                        return r.probs[base + x] > r.probs[base + y];
                    });
                    if (sp.topk > 0) {
                        const int64_t kk = std::min<int64_t>(
                            cand.size(), std::max<int64_t>(1, std::floor(sp.topk * n)));
                        for (int64_t t = 0; t < kk; ++t) r.mask[base + cand[t]] = 1;
                    }
                    if (sp.topp > 0) {
                        double cum = 0;
                        for (int64_t kb : cand) {
                            r.mask[base + kb] = 1;
                            if ((cum += r.probs[base + kb]) >= sp.topp) break;
                        }
                    }
                    if (sp.attention_sink) r.mask[base] = 1;
                }
                for (int64_t kb : ok) r.kept += r.mask[base + kb];
            }
        }
    return r;
}

struct Native {
    std::vector<uint8_t> mask;
    double sparsity = -1;
};

Native predict(const Case &c, std::vector<float> &q, std::vector<float> &k,
               const slip_sparse_params &sp) {
    const int64_t shape[4] = {c.B, c.Hq, (c.Nq + c.bq - 1) / c.bq, (c.Nk + c.bk - 1) / c.bk};
    Native n;
    n.mask.assign(shape[0] * shape[1] * shape[2] * shape[3], 7);
    slip_tensor tq = tensor(q, c, c.Hq, c.Nq), tk = tensor(k, c, c.Hk, c.Nk), tm;
    slip_tensor_init(&tm, n.mask.data(), SLIP_DTYPE_U8, 4, shape);
    const slip_attn_params ap = attn_params(c);
    CHECK_OK(slip_attn_sparse_predict(&tq, &tk, &ap, &sp, &tm, &n.sparsity));
    return n;
}

slip_sparse_params params(const Case &c, float topk, float topp, float theta, int sink) {
    slip_sparse_params sp;
    slip_sparse_params_init(&sp);
    sp.block_q = c.bq;
    sp.block_k = c.bk;
    sp.topk = topk;
    sp.topp = topp;
    sp.sim_threshold = theta;
    sp.attention_sink = sink;
    return sp;
}

const Case kCases[] = {
    {1, 2, 2, 100, 100, 40, SLIP_ATTN_HND, 0, 16, 8},    // N not a multiple of either block
    {2, 4, 2, 70, 150, 80, SLIP_ATTN_NHD, 1, 16, 16},    // GQA, causal with Nq < Nk
    {1, 2, 1, 150, 70, 128, SLIP_ATTN_HND, 1, 32, 16},   // MQA, causal with Nq > Nk
    {1, 1, 1, 96, 96, 256, SLIP_ATTN_NHD, 1, 32, 32},
};

void test_matches_reference() {
    std::mt19937_64 rng(11);
    for (const Case &c : kCases) {
        std::vector<float> q = blocky(c, c.Hq, c.Nq, 8, rng), k = blocky(c, c.Hk, c.Nk, 8, rng);
        const slip_sparse_params variants[] = {
            params(c, 0.3f, 0, -0.1f, 0), params(c, 0, 0.7f, -0.1f, 0),
            params(c, 0.2f, 0.5f, -0.1f, 0), params(c, 0.2f, 0.5f, 0.35f, 0),
            params(c, 0.1f, 0, 0.2f, 1)};
        for (const slip_sparse_params &sp : variants) {
            const Ref r = ref_predict(c, q, k, sp);
            const Native n = predict(c, q, k, sp);
            int64_t diff = 0;
            for (size_t i = 0; i < r.mask.size(); ++i) diff += r.mask[i] != n.mask[i];
            CHECK_MSG(diff == 0, "D=%lld topk=%g topp=%g theta=%g: %lld mask entries differ",
                      (long long)c.D, sp.topk, sp.topp, sp.sim_threshold, (long long)diff);
            const double want = 1.0 - static_cast<double>(r.kept) / r.allowed;
            CHECK_MSG(std::fabs(n.sparsity - want) < 1e-12, "sparsity %g vs %g", n.sparsity, want);
        }
    }
}

// Hybrid = union: never sparser than Top-k or Top-p alone; Top-p keeps a minimal prefix of mass.
void test_rule_properties() {
    std::mt19937_64 rng(12);
    std::uniform_real_distribution<float> u(0.05f, 0.95f);
    for (int it = 0; it < 24; ++it) {
        const Case c = kCases[it % 4];
        std::vector<float> q = blocky(c, c.Hq, c.Nq, 8, rng), k = blocky(c, c.Hk, c.Nk, 8, rng);
        const float tk = u(rng), tp = u(rng), th = it % 2 ? 0.3f : -1.0f;
        const Native a = predict(c, q, k, params(c, tk, 0, th, 0));
        const Native p = predict(c, q, k, params(c, 0, tp, th, 0));
        const Native h = predict(c, q, k, params(c, tk, tp, th, 0));
        bool superset = true, is_union = true;
        for (size_t i = 0; i < h.mask.size(); ++i) {
            superset &= h.mask[i] >= a.mask[i] && h.mask[i] >= p.mask[i];
            is_union &= h.mask[i] == (a.mask[i] | p.mask[i]);
        }
        CHECK(superset && is_union);
        CHECK(h.sparsity <= a.sparsity + 1e-15 && h.sparsity <= p.sparsity + 1e-15);
        if (th < 0) {  // guard off: every allowed block takes part in P̂
            const Ref r = ref_predict(c, q, k, params(c, 0, tp, th, 0));
            const int64_t nkb = (c.Nk + c.bk - 1) / c.bk;
            for (size_t row = 0; row < r.mask.size() / nkb; ++row) {
                double mass = 0, least = 1, best_dropped = 0, total = 0;
                for (int64_t kb = 0; kb < nkb; ++kb) {
                    const double pr = r.probs[row * nkb + kb];
                    total += pr;
                    if (p.mask[row * nkb + kb]) mass += pr, least = std::min(least, pr);
                    else best_dropped = std::max(best_dropped, pr);
                }
                if (total == 0) continue;  // a row causality empties
                CHECK_MSG(mass >= tp - 1e-12, "top-p mass %g < %g", mass, tp);
                CHECK_MSG(mass - least < tp + 1e-12, "top-p prefix not minimal: %g", mass - least);
                CHECK(best_dropped <= least + 1e-15);  // the kept set is a prefix by P̂
            }
        }
    }
}

// Guard: a key block of opposite pairs (mean cosine 0) is kept in every row; a query block of
// opposite pairs keeps its row; the sink keeps key block 0.
void test_guard_and_sink() {
    const Case c{1, 1, 1, 64, 64, 40, SLIP_ATTN_HND, 0, 16, 16};
    std::mt19937_64 rng(13);
    std::normal_distribution<float> g;
    std::vector<float> q(64 * 40), k(64 * 40);
    std::vector<float> dir(40);
    for (auto &d : dir) d = g(rng);
    for (int64_t n = 0; n < 64; ++n)
        for (int64_t d = 0; d < 40; ++d) {
            q[n * 40 + d] = dir[d] + 0.05f * g(rng);
            k[n * 40 + d] = (n < 48 ? 1.0f : -1.0f) * dir[d] + 0.05f * g(rng);
        }
    for (int64_t n = 16; n < 32; ++n)  // key block 1 and query block 1: alternating signs
        for (int64_t d = 0; d < 40; ++d) {
            k[n * 40 + d] = (n % 2 ? 3.0f : -3.0f) * dir[d];
            q[n * 40 + d] = (n % 2 ? 1.0f : -1.0f) * dir[d];
        }
    slip_sparse_params sp = params(c, 0.25f, 0, 0.5f, 0);
    sp.smooth_k = 0;  // keep the constructed directions as they are
    const Native n = predict(c, q, k, sp);
    for (int qb = 0; qb < 4; ++qb) CHECK(n.mask[qb * 4 + 1] == 1);   // untrusted key block 1
    for (int kb = 0; kb < 4; ++kb) CHECK(n.mask[1 * 4 + kb] == 1);   // untrusted query block 1
    CHECK(n.mask[0 * 4 + 3] == 0 && n.mask[0 * 4 + 0] == 1);         // top-1 + key block 1
    sp.sim_threshold = -1.0f;
    const Native off = predict(c, q, k, sp);
    CHECK(off.mask[0 * 4 + 1] == 0);  // without the guard, block 1 is ranked like any other
    sp.topk = 0.25f;
    for (int64_t n2 = 0; n2 < 16; ++n2)
        for (int64_t d = 0; d < 40; ++d) k[n2 * 40 + d] = -dir[d];  // key block 0 scores lowest
    const Native nosink = predict(c, q, k, sp);
    sp.attention_sink = 1;
    const Native sink = predict(c, q, k, sp);
    CHECK(nosink.mask[0] == 0 && sink.mask[0] == 1 && sink.mask[2 * 4] == 1);
}

// Float64 dense attention with its LSE, and the largest pooled |score| for the bound.
void ref_dense(const Case &c, const std::vector<float> &q, const std::vector<float> &k,
               const std::vector<float> &v, const std::vector<uint8_t> *bm,
               std::vector<double> &o, std::vector<double> &dropped, double &smax) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
    const int64_t nqb = (c.Nq + c.bq - 1) / c.bq, nkb = (c.Nk + c.bk - 1) / c.bk;
    o.assign(c.B * c.Hq * c.Nq * c.D, 0.0);
    dropped.assign(c.B * c.Hq * c.Nq, 0.0);
    smax = 0;
    for (int64_t b = 0; b < c.B; ++b)
        for (int64_t h = 0; h < c.Hq; ++h)
            for (int64_t i = 0; i < c.Nq; ++i) {
                const int64_t hk = h / (c.Hq / c.Hk);
                std::vector<double> s(c.Nk, -INFINITY);
                double mx = -INFINITY;
                for (int64_t j = 0; j < c.Nk; ++j) {
                    if (!allowed(c, i, j)) continue;
                    double dot = 0, ab = 0;
                    for (int64_t d = 0; d < c.D; ++d) {
                        const double x = q[at(c, c.Hq, c.Nq, b, h, i, d)], y = k[at(c, c.Hk, c.Nk, b, hk, j, d)];
                        dot += x * y;
                        ab += std::fabs(x * y);
                    }
                    s[j] = scale * dot;
                    smax = std::max(smax, scale * ab);
                    mx = std::max(mx, s[j]);
                }
                if (mx == -INFINITY) continue;
                double sum = 0, drop = 0;
                for (int64_t j = 0; j < c.Nk; ++j) sum += std::exp(s[j] - mx);
                for (int64_t j = 0; j < c.Nk; ++j) {
                    const double p = std::exp(s[j] - mx) / sum;
                    if (bm && !(*bm)[((b * c.Hq + h) * nqb + i / c.bq) * nkb + j / c.bk]) { drop += p; continue; }
                    for (int64_t d = 0; d < c.D; ++d)
                        o[at(c, c.Hq, c.Nq, b, h, i, d)] += p * v[at(c, c.Hk, c.Nk, b, hk, j, d)];
                }
                dropped[(b * c.Hq + h) * c.Nq + i] = drop;
                if (bm && drop < 1)  // the kernel renormalises over the kept keys
                    for (int64_t d = 0; d < c.D; ++d) o[at(c, c.Hq, c.Nq, b, h, i, d)] /= 1 - drop;
            }
}

double max_abs(const std::vector<float> &x) {
    double m = 0;
    for (float f : x) m = std::max(m, static_cast<double>(std::fabs(f)));
    return m;
}

std::vector<float> run_sparse(const Case &c, std::vector<float> &q, std::vector<float> &k,
                              std::vector<float> &v, const slip_sparse_params &sp,
                              std::vector<uint8_t> &bm, double &sparsity) {
    std::vector<float> out(q.size());
    slip_tensor tq = tensor(q, c, c.Hq, c.Nq), tk = tensor(k, c, c.Hk, c.Nk),
                tv = tensor(v, c, c.Hk, c.Nk), to = tensor(out, c, c.Hq, c.Nq), tm;
    const int64_t shape[4] = {c.B, c.Hq, (c.Nq + c.bq - 1) / c.bq, (c.Nk + c.bk - 1) / c.bk};
    bm.assign(shape[0] * shape[1] * shape[2] * shape[3], 0);
    slip_tensor_init(&tm, bm.data(), SLIP_DTYPE_U8, 4, shape);
    const slip_attn_params ap = attn_params(c);
    CHECK_OK(slip_attn_sparse(&tq, &tk, &tv, nullptr, &ap, &sp, &to, nullptr, &tm, &sparsity));
    return out;
}

// FP32 attention vs float64: a score's error is at most D·u·scale·Σ|q_d k_d| (a dot product
// in FP32), which moves each probability by a relative 2·that; the P·V sum over N keys adds
// N·u·max|v|. So |Δo| <= (4·D·u·smax + (N + 2)·u)·max|v|, smax = max scale·Σ|q_d k_d|.
double fp32_bound(const Case &c, double smax, double vmax) {
    return (4.0 * c.D * kEps32 * smax + (c.Nk + 2) * kEps32) * vmax;
}

void test_nothing_dropped_is_dense() {
    std::mt19937_64 rng(14);
    for (const Case &c : kCases) {
        if (!c.causal) continue;
        std::vector<float> q = blocky(c, c.Hq, c.Nq, 8, rng), k = blocky(c, c.Hk, c.Nk, 8, rng),
                           v = blocky(c, c.Hk, c.Nk, 8, rng);
        std::vector<uint8_t> bm;
        double sparsity = -1, smax;
        const std::vector<float> out = run_sparse(c, q, k, v, params(c, 1.0f, 0, -0.1f, 0), bm, sparsity);
        CHECK(sparsity == 0.0);
        std::vector<double> o, dropped;
        ref_dense(c, q, k, v, nullptr, o, dropped, smax);
        const double bound = fp32_bound(c, smax, max_abs(v));
        double err = 0;
        for (size_t i = 0; i < o.size(); ++i) err = std::max(err, std::fabs(out[i] - o[i]));
        CHECK_MSG(err <= bound, "D=%lld: max error %g > bound %g", (long long)c.D, err, bound);
    }
}

// Locality: q_i = k_i = A·[cos(ω_m i), sin(ω_m i)]_m, so q_i·k_j = A² Σ_m cos(ω_m (i − j)) peaks
// on the diagonal and attention is local: with A = 3, D = 64 the logit falls by about
// 0.026·(i − j)², a Gaussian of ~4 tokens. Top-k 1/8 of 32 key blocks keeps 4 per 64-query
// row: the two it covers and both neighbours (32 keys, ~7σ, each side). The renormalised sparse output differs from dense by
// at most 2·(dropped mass)·max|v| per row (kept mass rescaled by 1/(1−m), dropped mass lost).
void test_locality() {
    const Case c{1, 2, 2, 1000, 1000, 64, SLIP_ATTN_HND, 0, 64, 32};
    std::vector<float> q(c.B * c.Hq * c.Nq * c.D), k(q.size()), v(q.size());
    std::mt19937_64 rng(15);
    std::normal_distribution<float> g;
    for (int64_t h = 0; h < 2; ++h)
        for (int64_t n = 0; n < c.Nq; ++n)
            for (int64_t m = 0; m < c.D / 2; ++m) {
                const double w = 0.002 * (m + 1), a = 3.0;
                q[at(c, 2, c.Nq, 0, h, n, 2 * m)] = k[at(c, 2, c.Nk, 0, h, n, 2 * m)] = a * std::cos(w * n);
                q[at(c, 2, c.Nq, 0, h, n, 2 * m + 1)] = k[at(c, 2, c.Nk, 0, h, n, 2 * m + 1)] = a * std::sin(w * n);
            }
    for (auto &x : v) x = g(rng);
    std::vector<uint8_t> bm;
    double sparsity = -1, smax;
    const std::vector<float> out = run_sparse(c, q, k, v, params(c, 0.125f, 0, -0.1f, 0), bm, sparsity);
    std::vector<double> o, dropped, od, unused;
    ref_dense(c, q, k, v, &bm, o, dropped, smax);
    ref_dense(c, q, k, v, nullptr, od, unused, smax);
    const double vmax = max_abs(v), fp = fp32_bound(c, smax, vmax);
    double worst = 0, l1 = 0, l1d = 0, mdrop = 0;
    for (int64_t r = 0; r < c.Hq * c.Nq; ++r) {
        double err = 0;
        for (int64_t d = 0; d < c.D; ++d) {
            const double e = std::fabs(out[r * c.D + d] - od[r * c.D + d]);
            err = std::max(err, e);
            l1 += e;
            l1d += std::fabs(od[r * c.D + d]);
        }
        worst = std::max(worst, err / (2 * dropped[r] * vmax + fp));
        mdrop = std::max(mdrop, dropped[r]);
    }
    CHECK_MSG(worst <= 1.0, "error exceeds 2·m·max|v| + fp32 bound by %g", worst);
    CHECK(sparsity >= 0.85);
    std::printf("locality: sparsity %.3f, max dropped mass %.2e, relative L1 vs dense %.2e\n",
                sparsity, mdrop, l1 / l1d);
    CHECK(l1 / l1d < 0.01);  // what the 2·m·max|v| bound implies with m < 1e-3 (checked next)
    CHECK(mdrop < 1e-3);
}

void test_errors() {
    const Case c{1, 2, 2, 10, 10, 8, SLIP_ATTN_HND, 0, 4, 4};
    std::vector<float> q(160), k(160), v(160), out(160);
    std::vector<uint8_t> m(2 * 3 * 3);
    slip_tensor tq = tensor(q, c, 2, 10), tk = tensor(k, c, 2, 10), tv = tensor(v, c, 2, 10),
                to = tensor(out, c, 2, 10), tm;
    const int64_t ms[4] = {1, 2, 3, 3}, bad[4] = {1, 2, 3, 4};
    slip_tensor_init(&tm, m.data(), SLIP_DTYPE_U8, 4, ms);
    slip_attn_params ap = attn_params(c);
    slip_sparse_params sp = params(c, 0.5f, 0, -0.1f, 0);
    CHECK_OK(slip_attn_sparse_predict(&tq, &tk, &ap, &sp, &tm, nullptr));
    CHECK_OK(slip_attn_sparse(&tq, &tk, &tv, nullptr, &ap, &sp, &to, nullptr, nullptr, nullptr));
    CHECK_FAILS(slip_attn_sparse_predict(&tq, &tk, &ap, nullptr, &tm, nullptr),
                SLIP_STATUS_INVALID_ARGUMENT, "sparse");
    CHECK_FAILS(slip_attn_sparse_predict(nullptr, &tk, &ap, &sp, &tm, nullptr),
                SLIP_STATUS_INVALID_ARGUMENT, "q");
    slip_sparse_params s2 = sp;
    s2.topk = 1.5f;
    CHECK_FAILS(slip_attn_sparse_predict(&tq, &tk, &ap, &s2, &tm, nullptr), SLIP_STATUS_INVALID_ARGUMENT,
                "expected a value in [0, 1] for sparse.topk, got 1.5");
    s2 = sp;
    s2.topk = 0;
    CHECK_FAILS(slip_attn_sparse_predict(&tq, &tk, &ap, &s2, &tm, nullptr), SLIP_STATUS_INVALID_ARGUMENT,
                "expected sparse.topk > 0 or sparse.topp > 0");
    s2 = sp;
    s2.block_k = 0;
    CHECK_FAILS(slip_attn_sparse_predict(&tq, &tk, &ap, &s2, &tm, nullptr), SLIP_STATUS_INVALID_ARGUMENT,
                "expected positive sparse.block_q and sparse.block_k, got 4 and 0");
    s2 = sp;
    s2.sim_threshold = NAN;
    CHECK_FAILS(slip_attn_sparse_predict(&tq, &tk, &ap, &s2, &tm, nullptr), SLIP_STATUS_INVALID_ARGUMENT,
                "sparse.sim_threshold");
    s2 = sp;
    s2.attention_sink = 2;
    CHECK_FAILS(slip_attn_sparse_predict(&tq, &tk, &ap, &s2, &tm, nullptr), SLIP_STATUS_INVALID_ARGUMENT,
                "expected 0 or 1 for sparse.attention_sink, got 2");
    slip_tensor_init(&tm, m.data(), SLIP_DTYPE_U8, 4, bad);
    CHECK_FAILS(slip_attn_sparse_predict(&tq, &tk, &ap, &sp, &tm, nullptr), SLIP_STATUS_SHAPE_MISMATCH,
                "block_mask_out");
    CHECK_FAILS(slip_attn_sparse(&tq, &tk, &tv, nullptr, &ap, &sp, &to, nullptr, &tm, nullptr),
                SLIP_STATUS_SHAPE_MISMATCH, "block_mask_out");
    slip_tensor_init(&tm, m.data(), SLIP_DTYPE_I8, 4, ms);
    CHECK_FAILS(slip_attn_sparse_predict(&tq, &tk, &ap, &sp, &tm, nullptr), SLIP_STATUS_DTYPE_MISMATCH,
                "block_mask_out");
    ap.causal = 3;
    CHECK_FAILS(slip_attn_sparse_predict(&tq, &tk, &ap, &sp, &tm, nullptr), SLIP_STATUS_INVALID_ARGUMENT,
                "params.causal");
}

}  // namespace

int main() {
    test_matches_reference();
    test_rule_properties();
    test_guard_and_sink();
    test_nothing_dropped_is_dense();
    test_locality();
    test_errors();
    return slip_test::report("test-attention-sparse");
}
