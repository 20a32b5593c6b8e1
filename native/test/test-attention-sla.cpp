// SLA2 against a float64 re-implementation written from the definition (token sums, no block
// precomputation): the router, the forward, gradients by central finite differences in float64,
// analytic vs numeric gradients on the native FP32 path, and every refused argument.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "check.h"
#include "slipstream.h"

namespace {

constexpr double kU32 = 5.960464477539063e-08;  // 2^-24, the FP32 unit roundoff

// HND throughout (layouts are make_problem's, tested with the dense kernel and the predictor).
struct Case {
    int64_t Hq, Hk, Nq, Nk, D, bq, bk;
    int32_t fmap;
    float critical, negligible;
};

// All operands of one SLA2 call, in float32 as the ABI takes them.
struct Args {
    Case c;
    std::vector<float> q, k, v, alpha, w, bias;
    std::vector<uint8_t> route;
    int64_t nqb() const { return (c.Nq + c.bq - 1) / c.bq; }
    int64_t nkb() const { return (c.Nk + c.bk - 1) / c.bk; }
};

slip_tensor t4(std::vector<float> &x, int64_t H, int64_t N, int64_t D) {
    slip_tensor t;
    const int64_t s[4] = {1, H, N, D};
    slip_tensor_init(&t, x.data(), SLIP_DTYPE_F32, 4, s);
    return t;
}
slip_tensor t1(std::vector<float> &x) {
    slip_tensor t;
    const int64_t s[1] = {static_cast<int64_t>(x.size())};
    slip_tensor_init(&t, x.data(), SLIP_DTYPE_F32, 1, s);
    return t;
}
slip_tensor t2(std::vector<float> &x, int64_t D) {
    slip_tensor t;
    const int64_t s[2] = {D, D};
    slip_tensor_init(&t, x.data(), SLIP_DTYPE_F32, 2, s);
    return t;
}
slip_tensor troute(Args &a) {
    slip_tensor t;
    const int64_t s[4] = {1, a.c.Hq, a.nqb(), a.nkb()};
    slip_tensor_init(&t, a.route.data(), SLIP_DTYPE_U8, 4, s);
    return t;
}
slip_sla_params sla_params(const Case &c) {
    slip_sla_params p;
    slip_sla_params_init(&p);
    p.block_q = c.bq;
    p.block_k = c.bk;
    p.critical = c.critical;
    p.negligible = c.negligible;
    p.feature_map = c.fmap;
    return p;
}
slip_attn_params attn() {
    slip_attn_params p;
    slip_attn_params_init(&p);
    return p;
}

Args make(const Case &c, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> g;
    Args a{c, {}, {}, {}, {}, {}, {}, {}};
    a.q.resize(c.Hq * c.Nq * c.D);
    a.k.resize(c.Hk * c.Nk * c.D);
    a.v.resize(a.k.size());
    for (auto *x : {&a.q, &a.k, &a.v})
        for (auto &e : *x) e = g(rng);
    a.alpha.resize(c.Hq);
    for (auto &e : a.alpha) e = std::uniform_real_distribution<float>(0.2f, 0.8f)(rng);
    a.w.resize(c.D * c.D);  // non-zero so the linear branch shows (SLA zero-initialises it)
    for (auto &e : a.w) e = 0.5f * g(rng);
    a.bias.resize(c.D);
    for (auto &e : a.bias) e = 0.1f * g(rng);
    a.route.assign(c.Hq * a.nqb() * a.nkb(), 9);
    slip_tensor tq = t4(a.q, c.Hq, c.Nq, c.D), tk = t4(a.k, c.Hk, c.Nk, c.D), tr = troute(a);
    const slip_attn_params ap = attn();
    const slip_sla_params sp = sla_params(c);
    CHECK_OK(slip_sla_route_predict(&tq, &tk, nullptr, nullptr, &ap, &sp, &tr, nullptr));
    return a;
}

// ---- float64 reference, from the definition
void phi(int32_t f, const double *x, int64_t D, double *y) {
    if (f == SLIP_SLA_FEATURE_SOFTMAX) {
        double m = *std::max_element(x, x + D), s = 0;
        for (int64_t d = 0; d < D; ++d) s += y[d] = std::exp(x[d] - m);
        for (int64_t d = 0; d < D; ++d) y[d] /= s;
    } else {
        for (int64_t d = 0; d < D; ++d)
            y[d] = f == SLIP_SLA_FEATURE_ELU ? (x[d] > 0 ? x[d] + 1 : std::exp(x[d])) : std::max(x[d], 0.0);
    }
}

// Inputs as doubles (so finite differences can perturb them), output [Hq, Nq, D].
struct P64 {
    std::vector<double> q, k, v, alpha, w, bias;
};
P64 widen(const Args &a) {
    auto f = [](const std::vector<float> &x) { return std::vector<double>(x.begin(), x.end()); };
    return {f(a.q), f(a.k), f(a.v), f(a.alpha), f(a.w), f(a.bias)};
}

std::vector<double> ref_forward(const Args &a, const P64 &p) {
    const Case &c = a.c;
    const int64_t D = c.D, G = c.Hq / c.Hk;
    // The ABI's scale is an FP32 number (slip_attn_params.scale): 1/sqrt(D) rounded to float.
    const double scale = static_cast<float>(1 / std::sqrt(static_cast<double>(D)));
    std::vector<double> out(c.Hq * c.Nq * D), pk(D), pq(D);
    for (int64_t h = 0; h < c.Hq; ++h)
        for (int64_t i = 0; i < c.Nq; ++i) {
            const uint8_t *r = &a.route[(h * a.nqb() + i / c.bq) * a.nkb()];
            const double *qi = &p.q[(h * c.Nq + i) * D];
            std::vector<double> os(D, 0), num(D, 0);
            double m = -INFINITY, l = 0, den = 0;
            for (int64_t j = 0; j < c.Nk; ++j)
                if (r[j / c.bk] == SLIP_SLA_CRITICAL) {
                    double s = 0;
                    for (int64_t d = 0; d < D; ++d) s += qi[d] * p.k[((h / G) * c.Nk + j) * D + d];
                    m = std::max(m, scale * s);
                }
            phi(c.fmap, qi, D, pq.data());
            for (int64_t j = 0; j < c.Nk; ++j) {
                const double *kj = &p.k[((h / G) * c.Nk + j) * D], *vj = &p.v[((h / G) * c.Nk + j) * D];
                if (r[j / c.bk] == SLIP_SLA_CRITICAL) {
                    double s = 0;
                    for (int64_t d = 0; d < D; ++d) s += qi[d] * kj[d];
                    const double e = std::exp(scale * s - m);
                    l += e;
                    for (int64_t d = 0; d < D; ++d) os[d] += e * vj[d];
                } else if (r[j / c.bk] == SLIP_SLA_MARGINAL) {
                    phi(c.fmap, kj, D, pk.data());
                    const double qk = std::inner_product(pq.begin(), pq.end(), pk.begin(), 0.0);
                    den += qk;
                    for (int64_t d = 0; d < D; ++d) num[d] += qk * vj[d];
                }
            }
            for (int64_t o = 0; o < D; ++o) {
                double pj = p.bias[o];
                for (int64_t e = 0; e < D; ++e) pj += p.w[o * D + e] * (den > 0 ? num[e] / den : 0.0);
                out[(h * c.Nq + i) * D + o] = p.alpha[h] * (l > 0 ? os[o] / l : 0.0) + (1 - p.alpha[h]) * pj;
            }
        }
    return out;
}

std::vector<float> native_forward(Args &a) {
    std::vector<float> out(a.q.size());
    slip_tensor tq = t4(a.q, a.c.Hq, a.c.Nq, a.c.D), tk = t4(a.k, a.c.Hk, a.c.Nk, a.c.D),
                tv = t4(a.v, a.c.Hk, a.c.Nk, a.c.D), to = t4(out, a.c.Hq, a.c.Nq, a.c.D),
                tr = troute(a), ta = t1(a.alpha), tw = t2(a.w, a.c.D), tb = t1(a.bias);
    const slip_attn_params ap = attn();
    const slip_sla_params sp = sla_params(a.c);
    CHECK_OK(slip_sla_forward(&tq, &tk, &tv, &tr, &ta, &tw, &tb, &ap, &sp, &to));
    return out;
}

// Router: counts per row and Top-k order of the pooled (identity-projected) scores.
void test_route() {
    const Case c{4, 2, 50, 77, 40, 8, 8, SLIP_SLA_FEATURE_SOFTMAX, 0.3f, 0.2f};
    Args a = make(c, 1);
    const int64_t nkb = a.nkb(), crit = std::max<int64_t>(1, std::floor(0.3 * nkb)),
                  negl = std::floor(0.2 * nkb);
    for (int64_t row = 0; row < c.Hq * a.nqb(); ++row) {
        int64_t n[3] = {0, 0, 0};
        for (int64_t kb = 0; kb < nkb; ++kb) ++n[a.route[row * nkb + kb]];
        CHECK(n[2] == crit && n[0] == negl && n[1] == nkb - crit - negl);
    }
    // A projection that negates K reverses the ranking: critical and negligible swap places
    // wherever both exist (a check that the projection is applied, and on which side).
    std::vector<float> wk(c.D * c.D, 0.0f), wq(c.D * c.D, 0.0f);
    for (int64_t d = 0; d < c.D; ++d) wk[d * c.D + d] = -1.0f, wq[d * c.D + d] = 1.0f;
    Args b = a;
    b.c.critical = b.c.negligible = 0.2f;
    slip_tensor tq = t4(b.q, c.Hq, c.Nq, c.D), tk = t4(b.k, c.Hk, c.Nk, c.D), tr = troute(b),
                twq = t2(wq, c.D), twk = t2(wk, c.D);
    const slip_attn_params ap = attn();
    slip_sla_params sp = sla_params(b.c);
    std::vector<uint8_t> plain;
    CHECK_OK(slip_sla_route_predict(&tq, &tk, nullptr, nullptr, &ap, &sp, &tr, nullptr));
    plain = b.route;
    double sparsity = -1;
    CHECK_OK(slip_sla_route_predict(&tq, &tk, &twq, &twk, &ap, &sp, &tr, &sparsity));
    bool swapped = true;
    for (size_t i = 0; i < plain.size(); ++i)
        if (plain[i] != SLIP_SLA_MARGINAL) swapped &= b.route[i] == 2 - plain[i];
    CHECK(swapped);
    CHECK(std::fabs(sparsity - (1.0 - 2.0 / nkb)) < 1e-12);  // floor(0.2·10) = 2 of 10 critical
}

// FP32 output of a float64-internal computation: |out − ref| <= u·|ref| (one rounding), plus
// 1e-10·max|ref| for the float64 sums' own reassociation.
void test_forward() {
    const Case cases[] = {
        {2, 2, 37, 45, 40, 8, 8, SLIP_SLA_FEATURE_SOFTMAX, 0.25f, 0.25f},
        {4, 2, 64, 100, 80, 16, 16, SLIP_SLA_FEATURE_ELU, 0.2f, 0.3f},
        {2, 1, 33, 29, 128, 16, 8, SLIP_SLA_FEATURE_RELU, 0.25f, 0.0f},
        {1, 1, 20, 24, 256, 8, 8, SLIP_SLA_FEATURE_SOFTMAX, 0.34f, 0.33f},
    };
    for (const Case &c : cases) {
        Args a = make(c, 2);
        const std::vector<double> r = ref_forward(a, widen(a));
        const std::vector<float> o = native_forward(a);
        double omax = 0, worst = 0;
        for (double x : r) omax = std::max(omax, std::fabs(x));
        for (size_t i = 0; i < r.size(); ++i)
            worst = std::max(worst, std::fabs(o[i] - r[i]) / (kU32 * std::fabs(r[i]) + 1e-10 * omax));
        CHECK_MSG(worst <= 1.0, "D=%lld fmap=%d: error %g x the bound", (long long)c.D, c.fmap, worst);
    }
    // α = 1: exactly sparse attention over the critical blocks (slip_attn_block_sparse).
    const Case c{2, 1, 40, 50, 40, 8, 8, SLIP_SLA_FEATURE_SOFTMAX, 0.4f, 0.2f};
    Args a = make(c, 3);
    std::fill(a.alpha.begin(), a.alpha.end(), 1.0f);
    const std::vector<float> o = native_forward(a);
    std::vector<uint8_t> bm(a.route.size());
    for (size_t i = 0; i < bm.size(); ++i) bm[i] = a.route[i] == SLIP_SLA_CRITICAL;
    std::vector<float> ob(o.size());
    slip_tensor tq = t4(a.q, 2, 40, 40), tk = t4(a.k, 1, 50, 40), tv = t4(a.v, 1, 50, 40),
                to = t4(ob, 2, 40, 40), tm;
    const int64_t ms[4] = {1, 2, a.nqb(), a.nkb()};
    slip_tensor_init(&tm, bm.data(), SLIP_DTYPE_U8, 4, ms);
    const slip_attn_params ap = attn();
    CHECK_OK(slip_attn_block_sparse(&tq, &tk, &tv, nullptr, &tm, 8, 8, &ap, &to, nullptr, nullptr));
    // The block-sparse kernel is FP32 throughout: (4·D·u·smax + (N + 2)·u)·max|v| with
    // smax <= scale·Σ|q_d k_d| < 40 for these unit Gaussians (see test-attention-sparse).
    double err = 0, vmax = 0;
    for (float x : a.v) vmax = std::max(vmax, static_cast<double>(std::fabs(x)));
    for (size_t i = 0; i < o.size(); ++i) err = std::max(err, static_cast<double>(std::fabs(o[i] - ob[i])));
    CHECK_MSG(err <= (4.0 * 40 * kU32 * 40 + 52 * kU32) * vmax, "alpha=1 vs block-sparse: %g", err);
}

// Analytic gradients (native) vs numeric ones, for every input entry of a tiny case.
void test_gradients(int32_t fmap) {
    const Case c{2, 1, 10, 13, 6, 4, 3, fmap, 0.4f, 0.2f};  // 5 key blocks: 2 / 2 / 1
    Args a = make(c, 4 + fmap);
    std::mt19937_64 rng(5);
    std::normal_distribution<float> g;
    std::vector<float> dout(a.q.size());
    for (auto &x : dout) x = g(rng);
    std::vector<float> dq(a.q.size()), dk(a.k.size()), dv(a.v.size()), da(c.Hq), dw(c.D * c.D), db(c.D);
    {
        slip_tensor tq = t4(a.q, 2, 10, 6), tk = t4(a.k, 1, 13, 6), tv = t4(a.v, 1, 13, 6),
                    tr = troute(a), ta = t1(a.alpha), tw = t2(a.w, 6), tb = t1(a.bias),
                    tgo = t4(dout, 2, 10, 6), tdq = t4(dq, 2, 10, 6), tdk = t4(dk, 1, 13, 6),
                    tdv = t4(dv, 1, 13, 6), tda = t1(da), tdw = t2(dw, 6), tdb = t1(db);
        const slip_attn_params ap = attn();
        const slip_sla_params sp = sla_params(c);
        CHECK_OK(slip_sla_backward(&tq, &tk, &tv, &tr, &ta, &tw, &tb, &tgo, &ap, &sp, &tdq, &tdk,
                                   &tdv, &tda, &tdw, &tdb));
    }
    const P64 base = widen(a);
    auto loss64 = [&](const P64 &p) {
        const std::vector<double> o = ref_forward(a, p);
        double s = 0;
        for (size_t i = 0; i < o.size(); ++i) s += dout[i] * o[i];
        return s;
    };
    struct Slot { std::vector<double> P64::*f; std::vector<float> Args::*x; const std::vector<float> *grad; };
    const Slot slots[] = {{&P64::q, &Args::q, &dq}, {&P64::k, &Args::k, &dk}, {&P64::v, &Args::v, &dv},
                          {&P64::alpha, &Args::alpha, &da}, {&P64::w, &Args::w, &dw}, {&P64::bias, &Args::bias, &db}};
    double worst64 = 0, worst32 = 0;
    for (const Slot &s : slots)
        for (size_t i = 0; i < (base.*s.f).size(); ++i) {
            // (1) float64 central differences through the reference, h = 1e-6: truncation
            // h²·f'''/6 ~ 1e-12 and cancellation 1e-16·|L|/h ~ 1e-9 for |L| ~ 10, so the
            // native gradient (float64 inside, rounded once to FP32) must be within
            // u·|g| + 1e-7 (the 1e-7 covers the differences' own error).
            const double h = 1e-6;
            P64 p = base;
            (p.*s.f)[i] += h;
            const double lp = loss64(p);
            (p.*s.f)[i] -= 2 * h;
            const double fd64 = (lp - loss64(p)) / (2 * h);
            const double gn = (*s.grad)[i];
            worst64 = std::max(worst64, std::fabs(gn - fd64) / (kU32 * std::fabs(fd64) + 1e-7));
            if (fmap != SLIP_SLA_FEATURE_SOFTMAX) continue;  // (2) needs a smooth map
            // (2) FP32 central differences through the native forward, step H = 2^-7 (exact in
            // FP32 for these magnitudes): each loss carries the FP32 rounding of every output,
            // |δL| <= u·Σ|dout·O|, so the quotient's roundoff is <= u·Σ|dout·O| / H; its
            // truncation T is measured on the float64 reference at the same step; bound:
            // u·|g| + roundoff + 2·T.
            const double H = 1.0 / 128;
            Args ap = a;
            const float x0 = (a.*s.x)[i];
            (ap.*s.x)[i] = x0 + static_cast<float>(H);
            const std::vector<float> op = native_forward(ap);
            (ap.*s.x)[i] = x0 - static_cast<float>(H);
            const std::vector<float> om = native_forward(ap);
            double lp32 = 0, lm32 = 0, mag = 0;
            for (size_t e = 0; e < op.size(); ++e) {
                lp32 += dout[e] * static_cast<double>(op[e]);
                lm32 += dout[e] * static_cast<double>(om[e]);
                mag += std::fabs(dout[e] * op[e]) + std::fabs(dout[e] * om[e]);
            }
            const double fd32 = (lp32 - lm32) / (2 * H);
            P64 p2 = base;
            (p2.*s.f)[i] += H;
            const double l2 = loss64(p2);
            (p2.*s.f)[i] -= 2 * H;
            const double trunc = std::fabs((l2 - loss64(p2)) / (2 * H) - fd64);
            const double bound = kU32 * std::fabs(gn) + kU32 * mag / (2 * H) + 2 * trunc + 1e-7;
            worst32 = std::max(worst32, std::fabs(gn - fd32) / bound);
        }
    CHECK_MSG(worst64 <= 1.0, "fmap %d: float64 finite differences: %g x the bound", fmap, worst64);
    CHECK_MSG(worst32 <= 1.0, "fmap %d: FP32 finite differences: %g x the bound", fmap, worst32);
    std::printf("gradients fmap %d: worst |g - fd64| %.3g of bound, |g - fd32| %.3g of bound\n", fmap,
                worst64, worst32);
}

void test_errors() {
    const Case c{2, 2, 8, 8, 4, 4, 4, SLIP_SLA_FEATURE_SOFTMAX, 0.5f, 0.0f};
    Args a = make(c, 6);
    std::vector<float> out(a.q.size());
    slip_tensor tq = t4(a.q, 2, 8, 4), tk = t4(a.k, 2, 8, 4), tv = t4(a.v, 2, 8, 4),
                to = t4(out, 2, 8, 4), tr = troute(a), ta = t1(a.alpha), tw = t2(a.w, 4),
                tb = t1(a.bias);
    slip_attn_params ap = attn();
    slip_sla_params sp = sla_params(c);
    CHECK_OK(slip_sla_forward(&tq, &tk, &tv, &tr, &ta, &tw, nullptr, &ap, &sp, &to));
    ap.causal = 1;
    CHECK_FAILS(slip_sla_forward(&tq, &tk, &tv, &tr, &ta, &tw, &tb, &ap, &sp, &to),
                SLIP_STATUS_UNSUPPORTED, "causal");
    ap.causal = 0;
    a.route[3] = 7;
    CHECK_FAILS(slip_sla_forward(&tq, &tk, &tv, &tr, &ta, &tw, &tb, &ap, &sp, &to),
                SLIP_STATUS_INVALID_ARGUMENT, "expected slip_sla_route values (0, 1 or 2) in route, got 7 at flat index 3");
    a.route[3] = 1;
    std::vector<float> bad(3);
    slip_tensor tbad = t1(bad);
    CHECK_FAILS(slip_sla_forward(&tq, &tk, &tv, &tr, &tbad, &tw, &tb, &ap, &sp, &to),
                SLIP_STATUS_SHAPE_MISMATCH, "alpha");
    CHECK_FAILS(slip_sla_forward(&tq, &tk, &tv, &tr, &ta, &tbad, &tb, &ap, &sp, &to),
                SLIP_STATUS_SHAPE_MISMATCH, "proj_w");
    CHECK_FAILS(slip_sla_forward(&tq, &tk, &tv, &tr, &ta, &tw, &tb, &ap, nullptr, &to),
                SLIP_STATUS_INVALID_ARGUMENT, "sla");
    slip_sla_params s2 = sp;
    s2.critical = 0;
    CHECK_FAILS(slip_sla_forward(&tq, &tk, &tv, &tr, &ta, &tw, &tb, &ap, &s2, &to),
                SLIP_STATUS_INVALID_ARGUMENT, "expected a value in (0, 1] for sla.critical, got 0");
    s2 = sp;
    s2.negligible = 0.7f;
    CHECK_FAILS(slip_sla_forward(&tq, &tk, &tv, &tr, &ta, &tw, &tb, &ap, &s2, &to),
                SLIP_STATUS_INVALID_ARGUMENT, "sla.negligible, got 0.7");
    s2 = sp;
    s2.feature_map = 5;
    CHECK_FAILS(slip_sla_route_predict(&tq, &tk, nullptr, nullptr, &ap, &s2, &tr, nullptr),
                SLIP_STATUS_INVALID_ARGUMENT, "sla.feature_map, got 5");
    CHECK_FAILS(slip_sla_route_predict(&tq, &tk, &tbad, nullptr, &ap, &sp, &tr, nullptr),
                SLIP_STATUS_SHAPE_MISMATCH, "router_wq");
    std::vector<float> g(a.q.size());
    slip_tensor tg = t4(g, 2, 8, 4), tgs = t4(g, 2, 4, 8);
    CHECK_FAILS(slip_sla_backward(&tq, &tk, &tv, &tr, &ta, &tw, &tb, &tgs, &ap, &sp, &tg, &tg, &tg,
                                  &ta, &tw, &tb),
                SLIP_STATUS_SHAPE_MISMATCH, "dout");
    CHECK_FAILS(slip_sla_backward(&tq, &tk, &tv, &tr, &ta, &tw, &tb, &tg, &ap, &sp, &tgs, &tg, &tg,
                                  &ta, &tw, &tb),
                SLIP_STATUS_SHAPE_MISMATCH, "dq");
}

}  // namespace

int main() {
    test_route();
    test_forward();
    test_gradients(SLIP_SLA_FEATURE_SOFTMAX);
    test_gradients(SLIP_SLA_FEATURE_ELU);
    test_gradients(SLIP_SLA_FEATURE_RELU);
    test_errors();
    return slip_test::report("test-attention-sla");
}
