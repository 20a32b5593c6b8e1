// slip_attn_lowbit against a float64 model of its own numerics and against exact attention.
//   The model: the same smooth-K mean, per-token INT8 codes and scales (sage::int8_code's rule, in
//   float as the kernel computes them), exact INT32 scores, float scores in the kernel's operation
//   order, p = 2^(s - m) and l = Σ p in float64, P~ = bf16(p), V~ = bf16(v). The kernel may differ
//   from it by one BF16 step of some P~ (its exp2 is a polynomial: a p within 2^-22 of a rounding
//   tie can round the other way; a step is at most 2^-7 of p) and by FP32 sums over Nk terms, so
//   every element must lie within (2^-7 + 3 Nk 2^-24 + 2^-20) Σ_j p_j |V~_j| / l of the model —
//   at the AMX level and at the scalar level below it (SLIP_ISA_AVX512VNNI).
//   Against exact float64 attention: cosine >= 0.999 on inputs with a large key mean and channel
//   outliers (the case smooth-K and per-token scales exist for).
//   Then the block mask (dropped pairs skipped, empty query tiles 0) and the refusals.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "check.h"
#include "test-attention-sage-ref.h"

namespace {

using sref::Dims;

float bf16(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    b = ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) << 16;
    float r;
    std::memcpy(&r, &b, 4);
    return r;
}

int8_t code(float x, float s) {
    if (s == 0.0f) return 0;
    float t = x / s;
    t += t >= 0.0f ? 0.5f : -0.5f;
    t = std::fmin(std::fmax(t, -127.0f), 127.0f);
    return static_cast<int8_t>(static_cast<int>(t));
}

struct Model {
    std::vector<double> out, bound, exact;
};

Model model(const Dims &d, const std::vector<float> &q, const std::vector<float> &k, const std::vector<float> &v,
            const std::vector<uint8_t> &keep) {
    Model m;
    m.out.assign(q.size(), 0.0);
    m.bound.assign(q.size(), 0.0);
    const int64_t D = d.D, nqb = (d.Nq + 127) / 128, nkb = (d.Nk + 63) / 64;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    for (int64_t h = 0; h < d.Hq; ++h) {
        const int64_t hk = h / (d.Hq / d.Hk);
        std::vector<float> mean(D);
        for (int64_t c = 0; c < D; ++c) {
            double s = 0.0;
            for (int64_t j = 0; j < d.Nk; ++j) s += k[d.ki(0, hk, j) + c];
            mean[c] = static_cast<float>(s / d.Nk);
        }
        std::vector<int8_t> kc(d.Nk * D);
        std::vector<float> ks(d.Nk);
        for (int64_t j = 0; j < d.Nk; ++j) {
            float a = 0.0f;
            for (int64_t c = 0; c < D; ++c) a = std::fmax(a, std::fabs(k[d.ki(0, hk, j) + c] - mean[c]));
            ks[j] = a / 127.0f;
            for (int64_t c = 0; c < D; ++c) kc[j * D + c] = code(k[d.ki(0, hk, j) + c] - mean[c], ks[j]);
        }
        for (int64_t i = 0; i < d.Nq; ++i) {
            const float *qi = &q[d.qi(0, h, i)];
            float a = 0.0f;
            for (int64_t c = 0; c < D; ++c) a = std::fmax(a, std::fabs(qi[c]));
            const float qs = a / 127.0f * scale;
            std::vector<int8_t> qc(D);
            for (int64_t c = 0; c < D; ++c) qc[c] = code(qi[c], a / 127.0f);
            std::vector<float> s(d.Nk, -INFINITY);
            float mx = -INFINITY;
            for (int64_t j = 0; j < d.Nk; ++j) {
                if (!keep.empty() && !keep[(h * nqb + i / 128) * nkb + j / 64]) continue;
                int32_t acc = 0;
                for (int64_t c = 0; c < D; ++c) acc += qc[c] * kc[j * D + c];
                s[j] = static_cast<float>(acc) * qs * ks[j] * 1.4426950408889634f;
                mx = std::fmax(mx, s[j]);
            }
            if (mx == -INFINITY) continue;  // nothing kept: 0, bound 0
            double l = 0.0;
            std::vector<double> p(d.Nk, 0.0);
            for (int64_t j = 0; j < d.Nk; ++j)
                if (s[j] > -INFINITY) l += p[j] = std::exp2(static_cast<double>(s[j]) - mx);
            const double tol = std::ldexp(1.0, -7) + 3.0 * d.Nk * std::ldexp(1.0, -24) + std::ldexp(1.0, -20);
            for (int64_t c = 0; c < D; ++c) {
                double o = 0.0, mag = 0.0;
                for (int64_t j = 0; j < d.Nk; ++j) {
                    if (p[j] == 0.0) continue;
                    const double vv = bf16(v[d.ki(0, hk, j) + c]);
                    o += bf16(static_cast<float>(p[j])) * vv;
                    mag += p[j] * std::fabs(vv);
                }
                m.out[d.qi(0, h, i) + c] = o / l;
                m.bound[d.qi(0, h, i) + c] = tol * mag / l + 1e-30;
            }
        }
    }
    return m;
}

std::vector<float> run(const Dims &d, std::vector<float> &q, std::vector<float> &k, std::vector<float> &v,
                       std::vector<uint8_t> *keep, slip_status *st) {
    std::vector<float> out(q.size(), NAN);
    slip_tensor tq = sref::tensor(d.qshape(), q.data(), SLIP_DTYPE_F32);
    slip_tensor tk = sref::tensor(d.kshape(), k.data(), SLIP_DTYPE_F32);
    slip_tensor tv = sref::tensor(d.kshape(), v.data(), SLIP_DTYPE_F32);
    slip_tensor to = sref::tensor(d.qshape(), out.data(), SLIP_DTYPE_F32);
    slip_tensor tm;
    if (keep) tm = sref::tensor({d.B, d.Hq, (d.Nq + 127) / 128, (d.Nk + 63) / 64}, keep->data(), SLIP_DTYPE_U8);
    slip_attn_params p;
    slip_attn_params_init(&p);
    p.layout = d.layout;
    p.causal = d.causal;
    *st = slip_attn_lowbit(&tq, &tk, &tv, keep ? &tm : nullptr, &p, &to);
    return out;
}

void test_case(const char *what, Dims d, bool masked, uint64_t seed) {
    std::vector<float> q = sref::gaussian(d.Hq * d.Nq * d.D, seed), k = sref::gaussian(d.Hk * d.Nk * d.D, seed + 1);
    std::vector<float> v = sref::gaussian(d.Hk * d.Nk * d.D, seed + 2);
    for (size_t i = 0; i < k.size(); ++i) k[i] = k[i] * (i % 16 == 3 ? 4.0f : 1.0f) + 6.0f;  // key mean, outliers
    for (size_t i = 0; i < q.size(); ++i) q[i] *= (i % 16 == 3 ? 4.0f : 1.0f);
    std::vector<uint8_t> keep;
    if (masked) {
        const int64_t nqb = (d.Nq + 127) / 128, nkb = (d.Nk + 63) / 64;
        keep.assign(d.Hq * nqb * nkb, 1);
        for (size_t i = 0; i < keep.size(); ++i) keep[i] = (i * 7) % 3 != 0;
        for (int64_t j = 0; j < nkb; ++j) keep[(0 * nqb + 1) * nkb + j] = 0;  // head 0, query tile 1: nothing
    }
    const Model m = model(d, q, k, v, keep);
    slip_capabilities caps;
    slip_get_capabilities(&caps);
    std::vector<float> first;
    for (int isa : {static_cast<int>(caps.isa_detected), static_cast<int>(SLIP_ISA_AVX512VNNI)}) {
        if (isa > caps.isa_detected) continue;
        CHECK(slip_set_isa(static_cast<slip_isa>(isa)) == SLIP_STATUS_OK);
        slip_status st;
        const std::vector<float> out = run(d, q, k, v, masked ? &keep : nullptr, &st);
        CHECK_OK(st);
        int64_t bad = 0;
        for (size_t i = 0; i < out.size(); ++i)
            if (!(std::fabs(out[i] - m.out[i]) <= m.bound[i]) && bad++ < 3)
                std::fprintf(stderr, "%s isa %d: out[%zu] = %.9g, model %.9g, bound %.3g\n", what, isa, i, out[i], m.out[i], m.bound[i]);
        CHECK_MSG(bad == 0, "%s isa %d: %lld outside the bound", what, isa, static_cast<long long>(bad));
        if (!masked) {
            const sref::Exact e = sref::exact(d, q, k, v);
            const sref::Err err = sref::compare(out, e.out);
            std::printf("%s isa %d: cos %.6f relL1 %.4f\n", what, isa, err.cos, err.rel_l1);
            CHECK_MSG(err.cos >= 0.999, "%s: cosine %.6f", what, err.cos);
        } else {
            CHECK(out[d.qi(0, 0, 200)] == 0.0f);
        }
    }
    slip_set_isa(static_cast<slip_isa>(caps.isa_detected));
}

void test_refusals() {
    Dims d;
    d.Nq = d.Nk = 32, d.D = 64;
    std::vector<float> q = sref::gaussian(d.Nq * d.D, 1), k = sref::gaussian(d.Nk * d.D, 2), v = sref::gaussian(d.Nk * d.D, 3);
    slip_status st;
    d.causal = true;
    run(d, q, k, v, nullptr, &st);
    CHECK(st == SLIP_STATUS_UNSUPPORTED && std::strstr(slip_last_error(), "causal"));
    d.causal = false;
    k[5] = NAN;
    run(d, q, k, v, nullptr, &st);
    CHECK(st == SLIP_STATUS_NON_FINITE && std::strstr(slip_last_error(), "k"));
    k[5] = 0.0f;
    std::vector<uint8_t> keep(3, 1);  // wants [1, 1, 1, 1]
    slip_tensor tq = sref::tensor(d.qshape(), q.data(), SLIP_DTYPE_F32), tk = sref::tensor(d.kshape(), k.data(), SLIP_DTYPE_F32);
    slip_tensor tv = sref::tensor(d.kshape(), v.data(), SLIP_DTYPE_F32);
    std::vector<float> out(q.size());
    slip_tensor to = sref::tensor(d.qshape(), out.data(), SLIP_DTYPE_F32), tm = sref::tensor({1, 1, 1, 3}, keep.data(), SLIP_DTYPE_U8);
    slip_attn_params p;
    slip_attn_params_init(&p);
    CHECK_FAILS(slip_attn_lowbit(&tq, &tk, &tv, &tm, &p, &to), SLIP_STATUS_SHAPE_MISMATCH, "block_mask");
}

}  // namespace

int main() {
    Dims a;
    a.Hq = 2, a.Hk = 1, a.Nq = 300, a.Nk = 150, a.D = 128;
    test_case("GQA D128 HND", a, false, 11);
    test_case("GQA D128 HND block mask", a, true, 12);
    Dims b = a;
    b.layout = SLIP_ATTN_NHD, b.D = 64, b.Hk = 2, b.Nk = 301;
    test_case("D64 NHD", b, false, 13);
    Dims c = a;
    c.D = 48;  // not a multiple of 64: the scalar kernel at every level
    test_case("D48", c, false, 14);
    test_refusals();
    return slip_test::report("test-attention-lowbit");
}
