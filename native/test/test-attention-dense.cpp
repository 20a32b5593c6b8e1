// slip_attn_dense and slip_attn_block_sparse at every ISA level this CPU has, against a float64
// naive softmax(scale·QKᵀ + mask)·V.
//
// Bound (u = 2^-24; Higham, Accuracy and Stability, 3.1). A score s_ij is an FP32 dot product of
// D terms after Q was pre-scaled (one rounding) and before the max is subtracted (one rounding
// of |s - m| <= 2 max|s|): its error is E_i <= (D + 6)·u·scale·max_j Σ_d |q_id k_jd| (+ 2u·|mask|),
// and p_ij = exp(s_ij - m) then carries a relative error <= E_i + 4u (exp2 polynomial,
// dense-avx512.cpp). Numerator Σ p v and denominator l = Σ p are FP32 sums of Nk non-negative
// weights, each off by <= γ_Nk relative to Σ p|v| (resp. l), plus one rescale rounding per
// 64-key panel, plus the final 1/l and multiply. So, per output element,
//     |o - ref| <= (2 E_i + (2 Nk + 2 Nk/64 + 12) u) · Σ_j π_ij |v_jd|
// with π the float64 softmax, and |lse - ref| <= E_i + (Nk + Nk/64 + 8) u + 2u |ref|.
// Rows that attend nothing must give exactly 0 and LSE -inf.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "slipstream.h"

namespace {

constexpr double kU = 1.0 / 16777216.0;
const double kInf = std::numeric_limits<double>::infinity();
std::mt19937 rng(11);

std::vector<float> rand_vec(size_t n, float lo = -1.5f, float hi = 1.5f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> x(n);
    for (auto &v : x) v = d(rng);
    return x;
}

slip_tensor tensor(void *data, slip_dtype dt, std::vector<int64_t> shape) {
    slip_tensor t;
    slip_tensor_init(&t, data, dt, static_cast<int32_t>(shape.size()), shape.data());
    return t;
}

// A problem in HND; mask is F32 additive here ([B or 1][Hq or 1][Nq][Nk], empty = none),
// allowed(b, h, i, j) also applies block-sparse drops.
struct Case {
    int64_t B, Hq, Hk, Nq, Nk, D;
    bool causal;
    std::vector<float> q, k, v, mask;
    int64_t mb = 1, mh = 1;
    std::vector<uint8_t> keep;  // block-sparse: [B][Hq][nqb][nkb]; empty = dense
    int64_t bq = 0, bk = 0;
    double scale() const { return 1.0 / std::sqrt(static_cast<double>(D)); }
};

Case make(int64_t B, int64_t Hq, int64_t Hk, int64_t Nq, int64_t Nk, int64_t D, bool causal) {
    Case c{B, Hq, Hk, Nq, Nk, D, causal, {}, {}, {}, {}};
    c.q = rand_vec(B * Hq * Nq * D);
    c.k = rand_vec(B * Hk * Nk * D);
    c.v = rand_vec(B * Hk * Nk * D);
    return c;
}

// Checks out/lse (HND) against the float64 reference with the bound in the header comment.
void check_ref(const Case &c, const std::vector<float> &out, const std::vector<float> &lse,
               const char *what) {
    int bad = 0;
    const int64_t D = c.D, Nk = c.Nk;
    std::vector<double> s(Nk);
    for (int64_t b = 0; b < c.B; ++b)
        for (int64_t h = 0; h < c.Hq; ++h) {
            const int64_t hk = h / (c.Hq / c.Hk);
            for (int64_t i = 0; i < c.Nq; ++i) {
                const float *qi = &c.q[((b * c.Hq + h) * c.Nq + i) * D];
                double m = -kInf, E = 0.0, maxmask = 0.0;
                for (int64_t j = 0; j < Nk; ++j) {
                    const float *kj = &c.k[((b * c.Hk + hk) * Nk + j) * D];
                    double dot = 0.0, absdot = 0.0;
                    for (int64_t d = 0; d < D; ++d) dot += double(qi[d]) * kj[d], absdot += std::fabs(double(qi[d]) * kj[d]);
                    s[j] = dot * c.scale();
                    E = std::max(E, (D + 6) * kU * c.scale() * absdot);
                    bool ok = !c.causal || j <= i + (Nk - c.Nq);
                    if (!c.keep.empty()) {
                        const int64_t nqb = (c.Nq + c.bq - 1) / c.bq, nkb = (Nk + c.bk - 1) / c.bk;
                        ok = ok && c.keep[((b * c.Hq + h) * nqb + i / c.bq) * nkb + j / c.bk];
                    }
                    if (!c.mask.empty()) {
                        const double mv = c.mask[(((c.mb == 1 ? 0 : b) * c.mh + (c.mh == 1 ? 0 : h)) * c.Nq + i) * Nk + j];
                        s[j] += mv;
                        if (std::isfinite(mv)) maxmask = std::max(maxmask, std::fabs(mv));
                    }
                    if (!ok) s[j] = -kInf;
                    m = std::max(m, s[j]);
                }
                E += 2 * kU * maxmask;
                const float *o = &out[((b * c.Hq + h) * c.Nq + i) * D];
                const float l_got = lse.empty() ? 0.0f : lse[(b * c.Hq + h) * c.Nq + i];
                if (m == -kInf) {
                    for (int64_t d = 0; d < D; ++d) bad += o[d] != 0.0f;
                    if (!lse.empty()) bad += !(std::isinf(l_got) && l_got < 0);
                    continue;
                }
                double l = 0.0;
                for (int64_t j = 0; j < Nk; ++j) l += std::exp(s[j] - m);
                const double rel = 2 * E + (2.0 * Nk + 2.0 * Nk / 64 + 12) * kU;
                for (int64_t d = 0; d < D; ++d) {
                    double ref = 0.0, mag = 0.0;
                    for (int64_t j = 0; j < Nk; ++j) {
                        const double pi = std::exp(s[j] - m) / l;
                        const double vj = c.v[((b * c.Hk + hk) * Nk + j) * D + d];
                        ref += pi * vj, mag += pi * std::fabs(vj);
                    }
                    if (!(std::fabs(o[d] - ref) <= rel * mag)) {
                        if (bad++ < 3)
                            std::fprintf(stderr, "%s: b%lld h%lld i%lld d%lld got %.9g ref %.9g bound %.3g\n", what,
                                         (long long)b, (long long)h, (long long)i, (long long)d, o[d], ref, rel * mag);
                    }
                }
                if (!lse.empty()) {
                    const double ref = m + std::log(l);
                    const double bound = E + (Nk + Nk / 64.0 + 8) * kU + 2 * kU * std::fabs(ref);
                    if (!(std::fabs(l_got - ref) <= bound) && bad++ < 3)
                        std::fprintf(stderr, "%s: lse b%lld h%lld i%lld got %.9g ref %.9g\n", what,
                                     (long long)b, (long long)h, (long long)i, l_got, ref);
                }
            }
        }
    CHECK_MSG(bad == 0, "%s: %d elements outside the bound", what, bad);
}

slip_attn_params params(bool causal, int32_t layout = SLIP_ATTN_HND) {
    slip_attn_params p;
    slip_attn_params_init(&p);
    p.causal = causal;
    p.layout = layout;
    return p;
}

// Runs dense (or block-sparse when c.keep is set) in HND; returns out and fills lse.
std::vector<float> run(Case &c, std::vector<float> &lse, double *density = nullptr) {
    std::vector<float> out(c.q.size(), -7.0f);
    lse.assign(c.B * c.Hq * c.Nq, -7.0f);
    slip_tensor q = tensor(c.q.data(), SLIP_DTYPE_F32, {c.B, c.Hq, c.Nq, c.D});
    slip_tensor k = tensor(c.k.data(), SLIP_DTYPE_F32, {c.B, c.Hk, c.Nk, c.D});
    slip_tensor v = tensor(c.v.data(), SLIP_DTYPE_F32, {c.B, c.Hk, c.Nk, c.D});
    slip_tensor o = tensor(out.data(), SLIP_DTYPE_F32, {c.B, c.Hq, c.Nq, c.D});
    slip_tensor l = tensor(lse.data(), SLIP_DTYPE_F32, {c.B, c.Hq, c.Nq});
    slip_tensor m = tensor(c.mask.data(), SLIP_DTYPE_F32, {c.mb, c.mh, c.Nq, c.Nk});
    const slip_attn_params p = params(c.causal);
    slip_status st;
    if (c.keep.empty()) {
        st = slip_attn_dense(&q, &k, &v, c.mask.empty() ? nullptr : &m, nullptr, nullptr, &p, &o, &l);
    } else {
        const int64_t nqb = (c.Nq + c.bq - 1) / c.bq, nkb = (c.Nk + c.bk - 1) / c.bk;
        slip_tensor bm = tensor(c.keep.data(), SLIP_DTYPE_U8, {c.B, c.Hq, nqb, nkb});
        st = slip_attn_block_sparse(&q, &k, &v, c.mask.empty() ? nullptr : &m, &bm, c.bq, c.bk, &p, &o, &l, density);
    }
    CHECK_MSG(st == SLIP_STATUS_OK, "run: %s", slip_last_error());
    return out;
}

// HND -> NHD copy of a [B, H, N, D] buffer.
std::vector<float> to_nhd(const std::vector<float> &x, int64_t B, int64_t H, int64_t N, int64_t D) {
    std::vector<float> y(x.size());
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t n = 0; n < N; ++n)
                std::memcpy(&y[((b * N + n) * H + h) * D], &x[((b * H + h) * N + n) * D], D * sizeof(float));
    return y;
}

void test_shapes(const char *isa) {
    struct S { int64_t B, Hq, Hk, Nq, Nk, D; };
    const S shapes[] = {{1, 1, 1, 1, 1, 1}, {2, 4, 2, 70, 130, 40}, {1, 3, 1, 65, 65, 80},
                        {1, 2, 2, 33, 200, 160}, {1, 2, 1, 129, 77, 256}, {2, 2, 2, 64, 128, 64},
                        {1, 2, 1, 100, 37, 17}};
    for (const S &s : shapes)
        for (bool causal : {false, true}) {
            Case c = make(s.B, s.Hq, s.Hk, s.Nq, s.Nk, s.D, causal);
            std::vector<float> lse;
            std::vector<float> out = run(c, lse);
            const std::string what = std::string(isa) + " D" + std::to_string(s.D) + " Nq" +
                                     std::to_string(s.Nq) + " Nk" + std::to_string(s.Nk) + (causal ? " causal" : "");
            check_ref(c, out, lse, what.c_str());

            // NHD must give the very same numbers: only the strides differ.
            std::vector<float> qn = to_nhd(c.q, s.B, s.Hq, s.Nq, s.D), kn = to_nhd(c.k, s.B, s.Hk, s.Nk, s.D),
                               vn = to_nhd(c.v, s.B, s.Hk, s.Nk, s.D), on(qn.size());
            slip_tensor q = tensor(qn.data(), SLIP_DTYPE_F32, {s.B, s.Nq, s.Hq, s.D});
            slip_tensor k = tensor(kn.data(), SLIP_DTYPE_F32, {s.B, s.Nk, s.Hk, s.D});
            slip_tensor v = tensor(vn.data(), SLIP_DTYPE_F32, {s.B, s.Nk, s.Hk, s.D});
            slip_tensor o = tensor(on.data(), SLIP_DTYPE_F32, {s.B, s.Nq, s.Hq, s.D});
            const slip_attn_params p = params(causal, SLIP_ATTN_NHD);
            CHECK(slip_attn_dense(&q, &k, &v, nullptr, nullptr, nullptr, &p, &o, nullptr) == SLIP_STATUS_OK);
            CHECK_MSG(on == to_nhd(out, s.B, s.Hq, s.Nq, s.D), "%s: NHD differs from HND", what.c_str());
        }
}

void test_masks(const char *isa) {
    // U8 broadcast over batch, F32 broadcast over heads with -inf and a fully masked row.
    Case c = make(2, 4, 2, 50, 90, 40, false);
    std::vector<uint8_t> mu(1 * 4 * 50 * 90);
    for (auto &x : mu) x = (rng() % 4) != 0;
    for (int64_t j = 0; j < 90; ++j) mu[(2 * 50 + 7) * 90 + j] = 0;  // head 2, row 7: nothing
    c.mask.resize(mu.size());
    for (size_t i = 0; i < mu.size(); ++i) c.mask[i] = mu[i] ? 0.0f : -INFINITY;
    c.mb = 1, c.mh = 4;
    std::vector<float> lse_f, lse_u;
    std::vector<float> out_f = run(c, lse_f);
    check_ref(c, out_f, lse_f, (std::string(isa) + " mask").c_str());
    // The same mask as U8 must give the same result bit for bit (-inf then exp2 -> 0 either way).
    std::vector<float> out_u(c.q.size());
    lse_u.resize(lse_f.size());
    slip_tensor q = tensor(c.q.data(), SLIP_DTYPE_F32, {2, 4, 50, 40});
    slip_tensor k = tensor(c.k.data(), SLIP_DTYPE_F32, {2, 2, 90, 40});
    slip_tensor v = tensor(c.v.data(), SLIP_DTYPE_F32, {2, 2, 90, 40});
    slip_tensor o = tensor(out_u.data(), SLIP_DTYPE_F32, {2, 4, 50, 40});
    slip_tensor l = tensor(lse_u.data(), SLIP_DTYPE_F32, {2, 4, 50});
    slip_tensor m = tensor(mu.data(), SLIP_DTYPE_U8, {1, 4, 50, 90});
    const slip_attn_params p = params(false);
    CHECK(slip_attn_dense(&q, &k, &v, &m, nullptr, nullptr, &p, &o, &l) == SLIP_STATUS_OK);
    CHECK(out_u == out_f);
    // Additive finite F32 values, broadcast over heads, with causality.
    Case a = make(2, 2, 2, 40, 60, 80, true);
    a.mask = rand_vec(2 * 40 * 60, -3.0f, 3.0f);
    a.mb = 2, a.mh = 1;
    std::vector<float> lse;
    std::vector<float> out = run(a, lse);
    check_ref(a, out, lse, (std::string(isa) + " additive mask causal").c_str());
}

void test_varlen(const char *isa) {
    const int64_t H = 4, Hk = 2, D = 80;
    const int32_t cq[] = {0, 5, 75, 108}, ck[] = {0, 9, 73, 173};
    std::vector<float> q = rand_vec(108 * H * D), k = rand_vec(173 * Hk * D), v = rand_vec(173 * Hk * D);
    std::vector<float> out(q.size()), lse(H * 108);
    slip_tensor tq = tensor(q.data(), SLIP_DTYPE_F32, {108, H, D}), tk = tensor(k.data(), SLIP_DTYPE_F32, {173, Hk, D}),
                tv = tensor(v.data(), SLIP_DTYPE_F32, {173, Hk, D}), to = tensor(out.data(), SLIP_DTYPE_F32, {108, H, D}),
                tl = tensor(lse.data(), SLIP_DTYPE_F32, {H, 108});
    slip_tensor cuq = tensor(const_cast<int32_t *>(cq), SLIP_DTYPE_I32, {4}), cuk = tensor(const_cast<int32_t *>(ck), SLIP_DTYPE_I32, {4});
    const slip_attn_params p = params(true);
    CHECK_MSG(slip_attn_dense(&tq, &tk, &tv, nullptr, &cuq, &cuk, &p, &to, &tl) == SLIP_STATUS_OK, "%s", slip_last_error());
    // Each sequence alone, as a B = 1 NHD problem, must give the same bits.
    for (int b = 0; b < 3; ++b) {
        const int64_t nq = cq[b + 1] - cq[b], nk = ck[b + 1] - ck[b];
        std::vector<float> o1(nq * H * D), l1(H * nq);
        slip_tensor q1 = tensor(&q[cq[b] * H * D], SLIP_DTYPE_F32, {1, nq, H, D});
        slip_tensor k1 = tensor(&k[ck[b] * Hk * D], SLIP_DTYPE_F32, {1, nk, Hk, D});
        slip_tensor v1 = tensor(&v[ck[b] * Hk * D], SLIP_DTYPE_F32, {1, nk, Hk, D});
        slip_tensor ot = tensor(o1.data(), SLIP_DTYPE_F32, {1, nq, H, D}), lt = tensor(l1.data(), SLIP_DTYPE_F32, {1, H, nq});
        const slip_attn_params pn = params(true, SLIP_ATTN_NHD);
        CHECK(slip_attn_dense(&q1, &k1, &v1, nullptr, nullptr, nullptr, &pn, &ot, &lt) == SLIP_STATUS_OK);
        CHECK_MSG(std::memcmp(o1.data(), &out[cq[b] * H * D], o1.size() * 4) == 0, "%s varlen seq %d out", isa, b);
        for (int64_t h = 0; h < H; ++h)
            CHECK_MSG(std::memcmp(&l1[h * nq], &lse[h * 108 + cq[b]], nq * 4) == 0, "%s varlen seq %d lse", isa, b);
        if (b == 1) {  // and the reference, through the HND checker
            Case c = make(1, H, Hk, nq, nk, D, true);
            std::vector<float> oh(nq * H * D);
            for (int64_t h = 0; h < H; ++h)
                for (int64_t i = 0; i < nq; ++i) {
                    std::memcpy(&c.q[(h * nq + i) * D], &q[((cq[b] + i) * H + h) * D], D * 4);
                    std::memcpy(&oh[(h * nq + i) * D], &o1[(i * H + h) * D], D * 4);
                }
            for (int64_t h = 0; h < Hk; ++h)
                for (int64_t j = 0; j < nk; ++j) {
                    std::memcpy(&c.k[(h * nk + j) * D], &k[((ck[b] + j) * Hk + h) * D], D * 4);
                    std::memcpy(&c.v[(h * nk + j) * D], &v[((ck[b] + j) * Hk + h) * D], D * 4);
                }
            check_ref(c, oh, l1, (std::string(isa) + " varlen").c_str());
        }
    }
}

void test_block_sparse(const char *isa) {
    // All blocks kept at 64 x 64: the dense tiles and segments exactly, so the same bits.
    Case c = make(1, 2, 1, 150, 200, 64, true);
    std::vector<float> lse_d, lse_s;
    std::vector<float> dense = run(c, lse_d);
    c.bq = 64, c.bk = 64;
    c.keep.assign(1 * 2 * 3 * 4, 1);
    double density = -1;
    std::vector<float> sparse = run(c, lse_s, &density);
    CHECK_MSG(dense == sparse && lse_d == lse_s, "%s: causal block-sparse (all kept) != causal dense", isa);
    CHECK_MSG(density == 1.0, "density %g", density);
    // Odd blocks, random drops, a token mask and causality, against the reference.
    for (int64_t bq : {48, 100})
        for (int64_t bk : {32, 80}) {
            Case s = make(2, 2, 1, 130, 170, 40, true);
            s.bq = bq, s.bk = bk;
            const int64_t nqb = (130 + bq - 1) / bq, nkb = (170 + bk - 1) / bk;
            s.keep.resize(2 * 2 * nqb * nkb);
            for (auto &x : s.keep) x = rng() % 3 == 0;
            s.mask = rand_vec(130 * 170, -2.0f, 2.0f);
            std::vector<float> lse;
            double dens = -1;
            std::vector<float> out = run(s, lse, &dens);
            check_ref(s, out, lse, (std::string(isa) + " block-sparse " + std::to_string(bq) + "x" + std::to_string(bk)).c_str());
            int64_t kept = 0, allowed = 0;  // density over causally allowed pairs
            for (int64_t bh = 0; bh < 4; ++bh)
                for (int64_t qb = 0; qb < nqb; ++qb)
                    for (int64_t kb = 0; kb < nkb; ++kb)
                        if (kb * bk <= std::min<int64_t>(130, (qb + 1) * bq) - 1 + 40)
                            ++allowed, kept += s.keep[(bh * nqb + qb) * nkb + kb];
            CHECK_MSG(std::fabs(dens - double(kept) / allowed) < 1e-12, "density %g want %g", dens, double(kept) / allowed);
        }
}

// Every refusal returns its status and names the argument.
void test_errors() {
    std::vector<float> q(2 * 4 * 8 * 16), k(2 * 2 * 8 * 16), v(k.size()), o(q.size()), mf(8 * 8);
    slip_tensor tq = tensor(q.data(), SLIP_DTYPE_F32, {2, 4, 8, 16}), tk = tensor(k.data(), SLIP_DTYPE_F32, {2, 2, 8, 16}),
                tv = tensor(v.data(), SLIP_DTYPE_F32, {2, 2, 8, 16}), to = tensor(o.data(), SLIP_DTYPE_F32, {2, 4, 8, 16});
    slip_attn_params p = params(false);
    auto expect = [&](slip_status st, slip_status want, const char *needle) {
        CHECK_MSG(st == want && std::strstr(slip_last_error(), needle) && std::strstr(slip_last_error(), "expected"),
                  "got %s: '%s', wanted '%s'", slip_status_string(st), slip_last_error(), needle);
    };
    slip_tensor bad = tk;
    bad.shape[0] = 3;
    expect(slip_attn_dense(&tq, &bad, &tv, nullptr, nullptr, nullptr, &p, &to, nullptr), SLIP_STATUS_SHAPE_MISMATCH, "for k");
    expect(slip_attn_dense(&tq, &tk, &tq, nullptr, nullptr, nullptr, &p, &to, nullptr), SLIP_STATUS_SHAPE_MISMATCH, "for v");
    bad = tq;
    bad.dtype = SLIP_DTYPE_F64;
    expect(slip_attn_dense(&bad, &tk, &tv, nullptr, nullptr, nullptr, &p, &to, nullptr), SLIP_STATUS_DTYPE_MISMATCH, "for q");
    std::vector<float> big(300 * 2);
    slip_tensor bq = tensor(big.data(), SLIP_DTYPE_F32, {1, 1, 2, 300});
    expect(slip_attn_dense(&bq, &bq, &bq, nullptr, nullptr, nullptr, &p, &bq, nullptr), SLIP_STATUS_SHAPE_MISMATCH, "head dim");
    slip_tensor k3 = tensor(k.data(), SLIP_DTYPE_F32, {2, 3, 4, 16});
    expect(slip_attn_dense(&tq, &k3, &k3, nullptr, nullptr, nullptr, &p, &to, nullptr), SLIP_STATUS_SHAPE_MISMATCH, "kv heads");
    slip_tensor m = tensor(mf.data(), SLIP_DTYPE_F32, {1, 1, 8, 7});
    expect(slip_attn_dense(&tq, &tk, &tv, &m, nullptr, nullptr, &p, &to, nullptr), SLIP_STATUS_SHAPE_MISMATCH, "for mask");
    m = tensor(mf.data(), SLIP_DTYPE_F32, {1, 1, 8, 8});
    mf[5] = NAN;
    expect(slip_attn_dense(&tq, &tk, &tv, &m, nullptr, nullptr, &p, &to, nullptr), SLIP_STATUS_NON_FINITE, "in mask");
    m.dtype = SLIP_DTYPE_I32;
    expect(slip_attn_dense(&tq, &tk, &tv, &m, nullptr, nullptr, &p, &to, nullptr), SLIP_STATUS_DTYPE_MISMATCH, "for mask");
    std::vector<float> lse(7);
    slip_tensor tl = tensor(lse.data(), SLIP_DTYPE_F32, {7});
    expect(slip_attn_dense(&tq, &tk, &tv, nullptr, nullptr, nullptr, &p, &to, &tl), SLIP_STATUS_SHAPE_MISMATCH, "for lse");
    p.scale = NAN;
    expect(slip_attn_dense(&tq, &tk, &tv, nullptr, nullptr, nullptr, &p, &to, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "params.scale");
    p = params(false);
    p.layout = 5;
    expect(slip_attn_dense(&tq, &tk, &tv, nullptr, nullptr, nullptr, &p, &to, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "params.layout");
    p = params(false);
    expect(slip_attn_dense(nullptr, &tk, &tv, nullptr, nullptr, nullptr, &p, &to, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "for q");
    // varlen: offsets that do not end at the token count, and only one of the two.
    slip_tensor vq = tensor(q.data(), SLIP_DTYPE_F32, {16, 4, 16}), vk = tensor(k.data(), SLIP_DTYPE_F32, {16, 2, 16}),
                vo = tensor(o.data(), SLIP_DTYPE_F32, {16, 4, 16});
    int32_t cu[3] = {0, 5, 15};
    slip_tensor tc = tensor(cu, SLIP_DTYPE_I32, {3});
    expect(slip_attn_dense(&vq, &vk, &vk, nullptr, &tc, &tc, &p, &vo, nullptr), SLIP_STATUS_SHAPE_MISMATCH, "cu_seqlens_q");
    expect(slip_attn_dense(&vq, &vk, &vk, nullptr, &tc, nullptr, &p, &vo, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "cu_seqlens");
    cu[1] = 20, cu[2] = 16;
    expect(slip_attn_dense(&vq, &vk, &vk, nullptr, &tc, &tc, &p, &vo, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "non-decreasing");
    // block-sparse: block mask shape and block sizes.
    std::vector<uint8_t> keep(2 * 4 * 2 * 2, 1);
    slip_tensor tb = tensor(keep.data(), SLIP_DTYPE_U8, {2, 4, 2, 3});
    expect(slip_attn_block_sparse(&tq, &tk, &tv, nullptr, &tb, 4, 4, &p, &to, nullptr, nullptr), SLIP_STATUS_SHAPE_MISMATCH, "for block_mask");
    expect(slip_attn_block_sparse(&tq, &tk, &tv, nullptr, &tb, 0, 4, &p, &to, nullptr, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "block_q");
}

}  // namespace

int main() {
    slip_capabilities caps;
    slip_get_capabilities(&caps);
    const char *names[] = {"portable", "avx2", "avx512", "avx512vnni"};
    // VNNI adds nothing to FP32 attention: it runs the AVX-512 kernel, so test up to AVX512.
    for (int isa = 0; isa <= std::min<int>(caps.isa_detected, SLIP_ISA_AVX512); ++isa) {
        slip_set_isa(static_cast<slip_isa>(isa));
        test_shapes(names[isa]);
        test_masks(names[isa]);
        test_varlen(names[isa]);
        test_block_sparse(names[isa]);
    }
    slip_set_isa(static_cast<slip_isa>(caps.isa_detected));
    test_errors();
    return slip_test::report("test-attention-dense");
}
