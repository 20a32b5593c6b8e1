// slip_quantize / slip_dequantize of every format against a float64 reference of its spec,
// written here from the spec's formulas: codes and scales must match bit for bit, and the
// decode must equal code * scale exactly. The float32 steps the specs fix (see the comments
// in native/src/quant/*.cpp) are emulated as ref::f32(double expression): one correct
// rounding, the same as the float32 operation.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "quant-ref.h"

namespace {

struct Result {
    std::vector<uint8_t> codes, scales;  // raw bytes
    std::vector<float> global, decoded;
};

Result run(slip_quant_params p, const std::vector<float> &x, std::vector<int64_t> shape) {
    int32_t nd[3];
    int64_t sh[3][SLIP_MAX_DIMS];
    CHECK_OK(slip_quant_shapes(&p, static_cast<int32_t>(shape.size()), shape.data(), &nd[0], sh[0], &nd[1], sh[1], &nd[2], sh[2]));
    const slip_dtype cd = p.format == SLIP_FORMAT_INT8 ? SLIP_DTYPE_I8
                          : p.format == SLIP_FORMAT_INT4 ? SLIP_DTYPE_I32
                          : p.format == SLIP_FORMAT_FP8_E4M3 ? SLIP_DTYPE_F8_E4M3
                          : p.format == SLIP_FORMAT_FP8_E5M2 ? SLIP_DTYPE_F8_E5M2 : SLIP_DTYPE_U8;
    const slip_dtype sd = p.format == SLIP_FORMAT_NVFP4 || p.format == SLIP_FORMAT_NVFP4_TJ2 ? SLIP_DTYPE_F8_E4M3
                          : p.format == SLIP_FORMAT_MXFP4 ? SLIP_DTYPE_U8 : SLIP_DTYPE_F32;
    auto count = [&](int i) { int64_t n = 1; for (int j = 0; j < nd[i]; ++j) n *= sh[i][j]; return n; };
    Result r;
    r.codes.resize(count(0) * slip_dtype_size(cd));
    r.scales.resize(count(1) * slip_dtype_size(sd));
    r.global.resize(nd[2] ? count(2) : 0);
    r.decoded.resize(x.size());
    slip_tensor xt = ref::tensor(const_cast<float *>(x.data()), SLIP_DTYPE_F32, shape);
    slip_tensor ct = ref::tensor(r.codes.data(), cd, {sh[0], sh[0] + nd[0]});
    slip_tensor st = ref::tensor(r.scales.data(), sd, {sh[1], sh[1] + nd[1]});
    slip_tensor gt = ref::tensor(r.global.data(), SLIP_DTYPE_F32, {sh[2], sh[2] + nd[2]});
    slip_tensor ot = ref::tensor(r.decoded.data(), SLIP_DTYPE_F32, shape);
    CHECK_OK(slip_quantize(&xt, &p, &ct, &st, nd[2] ? &gt : nullptr));
    CHECK_OK(slip_dequantize(&ct, &st, nd[2] ? &gt : nullptr, &p, &ot));
    return r;
}

float amax(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(x[i])));
    return static_cast<float>(m);
}

uint8_t nibble(const std::vector<uint8_t> &packed, int64_t i) {
    return i % 2 ? packed[i / 2] >> 4 : packed[i / 2] & 0x0F;
}

// Reports the first few element mismatches and the total.
struct Tally {
    const char *name;
    int bad = 0;
    void expect(bool ok, int64_t i, double got, double want) {
        if (!ok && ++bad <= 5) CHECK_MSG(false, "%s at %lld: got %.9g, reference %.9g", name, static_cast<long long>(i), got, want);
    }
    ~Tally() { CHECK_MSG(bad == 0, "%s: %d mismatches", name, bad); }
};

// NVFP4 (compressed-tensors convention, nvfp4.cpp).
void test_nvfp4(int64_t rows, int64_t k, float given_global) {
    const std::vector<float> x = ref::outlier_data(rows * k, 11 + k);
    slip_quant_params p;
    slip_quant_params_init(&p, SLIP_FORMAT_NVFP4);
    p.global_scale = given_global;
    const Result r = run(p, x, {rows, k});
    const float g = given_global > 0 ? given_global : ref::f32(2688.0 / amax(x.data(), rows * k));
    CHECK_MSG(r.global[0] == g, "NVFP4 global %.9g vs %.9g", r.global[0], g);
    Tally codes{"NVFP4 codes"}, scales{"NVFP4 scales"}, dec{"NVFP4 decode"};
    for (int64_t b = 0; b < rows * k / 16; ++b) {
        const float *xb = x.data() + b * 16;
        const int sc = ref::encode(ref::f32(double(g) * ref::f32(amax(xb, 16) / 6.0)), ref::kE4M3);
        double s = ref::decode(sc, ref::kE4M3);
        if (s == 0) s = 0.125;  // compressed-tensors' placeholder for a zero E4M3 scale
        scales.expect(r.scales[b] == ref::encode(s, ref::kE4M3), b, r.scales[b], ref::encode(s, ref::kE4M3));
        const float eff = ref::f32(s / g);
        for (int64_t i = 0; i < 16; ++i) {
            const int code = ref::encode(ref::f32(xb[i] / double(eff)), ref::kE2M1);
            codes.expect(nibble(r.codes, b * 16 + i) == code, b * 16 + i, nibble(r.codes, b * 16 + i), code);
            const float want = ref::f32(ref::decode(code, ref::kE2M1) * eff);
            dec.expect(r.decoded[b * 16 + i] == want, b * 16 + i, r.decoded[b * 16 + i], want);
        }
    }
}

// NVFP4 with SLIP_QUANT_MSE_SCALES: the reference tries the same 7 candidate scales (the amax/6
// E4M3 code and the 6 codes below it) in float64 and keeps the least squared error (ties to the
// larger scale). The codes are then those of the chosen scale, the block's error never exceeds the
// plain amax/6 error, and the whole tensor's error is smaller than without the flag.
void test_nvfp4_mse(int64_t rows, int64_t k) {
    const std::vector<float> x = ref::outlier_data(rows * k, 5 + k);
    slip_quant_params p;
    slip_quant_params_init(&p, SLIP_FORMAT_NVFP4);
    const Result plain = run(p, x, {rows, k});
    p.flags = SLIP_QUANT_MSE_SCALES;
    const Result r = run(p, x, {rows, k});
    const float g = plain.global[0];
    CHECK(r.global[0] == g);
    Tally scales{"NVFP4 MSE scales"}, codes{"NVFP4 MSE codes"};
    double err_plain = 0, err_mse = 0;
    for (int64_t b = 0; b < rows * k / 16; ++b) {
        const float *xb = x.data() + b * 16;
        const int sc0 = ref::encode(ref::f32(double(g) * ref::f32(amax(xb, 16) / 6.0)), ref::kE4M3);
        int best = sc0 == 0 ? ref::encode(0.125, ref::kE4M3) : sc0;
        if (sc0 != 0) {
            double best_err = INFINITY;
            for (int c = sc0; c > 0 && c > sc0 - 7; --c) {
                const float eff = ref::f32(ref::decode(c, ref::kE4M3) / g);
                double e = 0;
                for (int64_t i = 0; i < 16; ++i) {
                    const double q = ref::f32(ref::decode(ref::encode(ref::f32(xb[i] / double(eff)), ref::kE2M1), ref::kE2M1) * eff);
                    e += (q - xb[i]) * (q - xb[i]);
                }
                if (e < best_err) best_err = e, best = c;
            }
        }
        scales.expect(r.scales[b] == best, b, r.scales[b], best);
        const float eff = ref::f32(ref::decode(best, ref::kE4M3) / g);
        for (int64_t i = 0; i < 16; ++i) {
            const int code = ref::encode(ref::f32(xb[i] / double(eff)), ref::kE2M1);
            codes.expect(nibble(r.codes, b * 16 + i) == code, b * 16 + i, nibble(r.codes, b * 16 + i), code);
            err_mse += (double(r.decoded[b * 16 + i]) - xb[i]) * (double(r.decoded[b * 16 + i]) - xb[i]);
            err_plain += (double(plain.decoded[b * 16 + i]) - xb[i]) * (double(plain.decoded[b * 16 + i]) - xb[i]);
        }
    }
    CHECK_MSG(err_mse < err_plain, "MSE scales: squared error %.6g, plain %.6g", err_mse, err_plain);
    // Only for NVFP4, and only with deterministic rounding.
    slip_quant_params bad;
    slip_quant_params_init(&bad, SLIP_FORMAT_MXFP4);
    bad.flags = SLIP_QUANT_MSE_SCALES;
    std::vector<uint8_t> c(static_cast<size_t>(rows * k / 2)), sc(static_cast<size_t>(rows * k / 32));
    slip_tensor xt, ct, st;
    const int64_t xs[2] = {rows, k}, cs[2] = {rows, k / 2}, ss[2] = {rows, k / 32};
    slip_tensor_init(&xt, const_cast<float *>(x.data()), SLIP_DTYPE_F32, 2, xs);
    slip_tensor_init(&ct, c.data(), SLIP_DTYPE_U8, 2, cs);
    slip_tensor_init(&st, sc.data(), SLIP_DTYPE_U8, 2, ss);
    CHECK(slip_quantize(&xt, &bad, &ct, &st, nullptr) == SLIP_STATUS_INVALID_ARGUMENT);
    CHECK(std::strstr(slip_last_error(), "SLIP_QUANT_MSE_SCALES only with the NVFP4 format") != nullptr);
}

// TetraJet-v2 double-block NVFP4 (nvfp4-tj2.cpp).
void test_tj2(int64_t rows, int64_t k) {
    const std::vector<float> x = ref::outlier_data(rows * k, 21 + k);
    slip_quant_params p;
    slip_quant_params_init(&p, SLIP_FORMAT_NVFP4_TJ2);
    const Result r = run(p, x, {rows, k});
    Tally outer{"TJ2 outer"}, codes{"TJ2 codes"}, scales{"TJ2 scales"}, dec{"TJ2 decode"};
    for (int64_t o = 0; o < rows * k / 128; ++o) {
        const float so = ref::f32(amax(x.data() + o * 128, 128) / 2688.0);
        outer.expect(r.global[o] == so, o, r.global[o], so);
        for (int64_t j = 0; j < 8; ++j) {
            const int64_t b = o * 8 + j;
            const float *xb = x.data() + b * 16;
            double si = so > 0 ? ref::decode(ref::encode(ref::f32(amax(xb, 16) / double(ref::f32(so * 6.0))), ref::kE4M3), ref::kE4M3) : 0;
            if (si == 0) si = std::ldexp(1.0, -9);
            scales.expect(r.scales[b] == ref::encode(si, ref::kE4M3), b, r.scales[b], si);
            const float q = ref::f32(so * si);
            for (int64_t i = 0; i < 16; ++i) {
                const int code = q == 0 ? 0 : ref::encode(ref::f32(xb[i] / double(q)), ref::kE2M1);
                codes.expect(nibble(r.codes, b * 16 + i) == code, b * 16 + i, nibble(r.codes, b * 16 + i), code);
                const float want = ref::f32(ref::decode(code, ref::kE2M1) * q);
                dec.expect(r.decoded[b * 16 + i] == want, b * 16 + i, r.decoded[b * 16 + i], want);
            }
        }
    }
}

// MXFP4, OCP MX v1.0 (mxfp4.cpp).
void test_mxfp4(int64_t rows, int64_t k) {
    std::vector<float> x = ref::outlier_data(rows * k, 31 + k);
    x[70] = 0x1p-140f;  // a subnormal block maximum: the exponent clamps at -127
    for (int64_t i = 64; i < 96; ++i) if (i != 70) x[i] = 0.0f;
    slip_quant_params p;
    slip_quant_params_init(&p, SLIP_FORMAT_MXFP4);
    const Result r = run(p, x, {rows, k});
    Tally codes{"MXFP4 codes"}, scales{"MXFP4 scales"}, dec{"MXFP4 decode"};
    for (int64_t b = 0; b < rows * k / 32; ++b) {
        const float *xb = x.data() + b * 32;
        const double a = amax(xb, 32);
        const int e = a > 0 ? std::max(-127, static_cast<int>(std::floor(std::log2(a))) - 2) : -127;
        scales.expect(r.scales[b] == e + 127, b, r.scales[b], e + 127);
        for (int64_t i = 0; i < 32; ++i) {
            const int code = ref::encode(std::ldexp(double(xb[i]), -e), ref::kE2M1);
            codes.expect(nibble(r.codes, b * 32 + i) == code, b * 32 + i, nibble(r.codes, b * 32 + i), code);
            const double want = ref::decode(code, ref::kE2M1) * std::ldexp(1.0, e);
            dec.expect(r.decoded[b * 32 + i] == ref::f32(want), b * 32 + i, r.decoded[b * 32 + i], want);
        }
    }
}

// Round half to even, written out (not rint): the INT references' rounding.
double round_half_even(double t) {
    const double f = std::floor(t), d = t - f;
    if (d != 0.5) return d < 0.5 ? f : f + 1;
    return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

// INT8 / FP8 at one granularity: scale index of (row, col) by the header's table.
void test_scaled(int format, int granularity, int64_t rows, int64_t k) {
    const std::vector<float> x = ref::outlier_data(rows * k, 41 + format * 7 + granularity);
    slip_quant_params p;
    slip_quant_params_init(&p, static_cast<slip_quant_format>(format));
    p.granularity = granularity;
    p.group_size = 32;
    p.block_rows = 16;
    p.block_cols = 40;  // does not divide K: the last tile column is narrower
    const Result r = run(p, x, {rows, k});
    auto sidx = [&](int64_t row, int64_t col) -> int64_t {
        switch (granularity) {
            case SLIP_GRANULARITY_TENSOR: return 0;
            case SLIP_GRANULARITY_ROW: return row;
            case SLIP_GRANULARITY_GROUP: return row * (k / 32) + col / 32;
            default: return (row / 16) * ((k + 39) / 40) + col / 40;
        }
    };
    const double qmax = format == SLIP_FORMAT_INT8 ? 127 : format == SLIP_FORMAT_FP8_E4M3 ? 448 : 57344;
    std::vector<double> am(r.scales.size() / 4, 0.0);
    for (int64_t i = 0; i < rows * k; ++i) {
        double &m = am[sidx(i / k, i % k)];
        m = std::max(m, std::fabs(double(x[i])));
    }
    const float *scales = reinterpret_cast<const float *>(r.scales.data());
    Tally ts{"scaled scales"}, tc{"scaled codes"}, td{"scaled decode"};
    for (size_t s = 0; s < am.size(); ++s) {
        const float want = am[s] > 0 ? ref::f32(am[s] / qmax) : FLT_EPSILON;  // CT's zero placeholder
        ts.expect(scales[s] == want, s, scales[s], want);
    }
    const ref::Format &f8 = format == SLIP_FORMAT_FP8_E4M3 ? ref::kE4M3 : ref::kE5M2;
    for (int64_t i = 0; i < rows * k; ++i) {
        const float sc = scales[sidx(i / k, i % k)];
        const float t = ref::f32(x[i] / double(sc));
        double want_dec;
        if (format == SLIP_FORMAT_INT8) {
            const int code = static_cast<int>(std::min(127.0, std::max(-127.0, round_half_even(t))));
            const int got = static_cast<int8_t>(r.codes[i]);
            tc.expect(got == code, i, got, code);
            want_dec = ref::f32(double(code) * sc);
        } else {
            const int code = ref::encode(t, f8);
            tc.expect(r.codes[i] == code, i, r.codes[i], code);
            want_dec = ref::f32(ref::decode(code, f8) * sc);
        }
        td.expect(r.decoded[i] == want_dec, i, r.decoded[i], want_dec);
    }
}

// INT4, group 128, compressed-tensors' int32 packing written as a bit stream.
void test_int4(int64_t rows, int64_t k, int64_t group) {
    const std::vector<float> x = ref::outlier_data(rows * k, 51 + k);
    slip_quant_params p;
    slip_quant_params_init(&p, SLIP_FORMAT_INT4);
    p.group_size = group;
    const Result r = run(p, x, {rows, k});
    const int64_t words = (k * 4 + 31) / 32;
    const float *scales = reinterpret_cast<const float *>(r.scales.data());
    Tally tc{"INT4 codes"}, ts{"INT4 scales"}, td{"INT4 decode"};
    for (int64_t row = 0; row < rows; ++row) {
        std::vector<uint32_t> stream(words, 0);
        for (int64_t g = 0; g < k / group; ++g) {
            const double a = amax(x.data() + row * k + g * group, group);
            const float sc = a > 0 ? ref::f32(a / 7.0) : FLT_EPSILON;
            ts.expect(scales[row * (k / group) + g] == sc, g, scales[row * (k / group) + g], sc);
            for (int64_t c = g * group; c < (g + 1) * group; ++c) {
                const int code = static_cast<int>(std::min(7.0, std::max(-8.0, round_half_even(ref::f32(x[row * k + c] / double(sc))))));
                const uint64_t bit = static_cast<uint64_t>(c) * 4;
                stream[bit / 32] |= static_cast<uint32_t>(code + 8) << (bit % 32);
                const float want = ref::f32(double(code) * sc);
                td.expect(r.decoded[row * k + c] == want, row * k + c, r.decoded[row * k + c], want);
            }
        }
        const uint32_t *got = reinterpret_cast<const uint32_t *>(r.codes.data()) + row * words;
        for (int64_t w = 0; w < words; ++w) tc.expect(got[w] == stream[w], row * words + w, got[w], stream[w]);
    }
}

// Stochastic rounding through slip_quantize: thread-count independent, and unbiased.
void test_stochastic(int format) {
    const int64_t rows = 64, k = 4096;
    std::vector<float> x(rows * k, 0.3f);
    // 1.0 leads every 16 columns, so every row, group and block has amax 1 and an exact
    // (unclipped) scale: 0.3 then sits strictly between two levels in every format.
    for (int64_t i = 0; i < rows * k; i += 16) x[i] = 1.0f;
    slip_quant_params p;
    slip_quant_params_init(&p, static_cast<slip_quant_format>(format));
    p.rounding = SLIP_ROUND_STOCHASTIC;
    p.seed = 99;
    slip_set_num_threads(1);
    const Result a = run(p, x, {rows, k});
    slip_set_num_threads(5);
    const Result b = run(p, x, {rows, k});
    CHECK_MSG(a.codes == b.codes, "format %d: stochastic codes depend on the thread count", format);
    // Mean of the decoded non-amax entries: within 4 standard errors of 0.3. The decoded values
    // take two levels lo < hi around 0.3, so the per-draw deviation is (hi-lo) sqrt(p(1-p)).
    double sum = 0, lo = 1e9, hi = -1e9;
    int64_t n = 0;
    for (int64_t i = 0; i < rows * k; ++i)
        if (i % 16) {
            sum += a.decoded[i];
            lo = std::min(lo, double(a.decoded[i]));
            hi = std::max(hi, double(a.decoded[i]));
            ++n;
        }
    const double pe = (0.3 - lo) / (hi - lo), se = (hi - lo) * std::sqrt(pe * (1 - pe) / n);
    CHECK_MSG(lo < 0.3 && hi > 0.3, "format %d: levels %.9g %.9g", format, lo, hi);
    CHECK_MSG(std::fabs(sum / n - 0.3f) < 4 * se, "format %d: stochastic mean %.9g vs 0.3 (se %.3g)", format, sum / n, se);
}

// ALLOW_NONFINITE: NaN/Inf are left out of amax; E2M1 NaN -> 0, +-Inf saturate.
void test_nonfinite_allowed() {
    std::vector<float> x(32, 1.0f);
    x[3] = NAN;
    x[4] = INFINITY;
    x[5] = -INFINITY;
    slip_quant_params p;
    slip_quant_params_init(&p, SLIP_FORMAT_NVFP4);
    p.flags = SLIP_QUANT_ALLOW_NONFINITE;
    const Result r = run(p, x, {1, 32});
    CHECK(r.global[0] == 2688.0f);
    CHECK(nibble(r.codes, 3) == 0 && nibble(r.codes, 4) == 0x7 && nibble(r.codes, 5) == 0xF);
    CHECK(nibble(r.codes, 0) == 0x7);  // 1.0 is the block max: 6 after scaling
}

}  // namespace

int main() {
    for (int64_t k : {16, 48, 256}) test_nvfp4(37, k, 0.0f);
    test_nvfp4(5, 64, 1000.0f);  // a caller's (shared) global scale
    for (int64_t k : {16, 256}) test_nvfp4_mse(29, k);
    for (int64_t k : {128, 384}) test_tj2(19, k);
    for (int64_t k : {32, 96, 320}) test_mxfp4(23, k);
    for (int f : {SLIP_FORMAT_INT8, SLIP_FORMAT_FP8_E4M3, SLIP_FORMAT_FP8_E5M2})
        for (int g = SLIP_GRANULARITY_TENSOR; g <= SLIP_GRANULARITY_BLOCK; ++g) test_scaled(f, g, 37, 96);
    test_int4(13, 256, 128);
    test_int4(7, 36, 12);  // K not a multiple of 8: the last CT word is padded with zero bits
    for (int f : {SLIP_FORMAT_INT8, SLIP_FORMAT_INT4, SLIP_FORMAT_FP8_E4M3, SLIP_FORMAT_FP8_E5M2, SLIP_FORMAT_NVFP4,
                  SLIP_FORMAT_NVFP4_TJ2, SLIP_FORMAT_MXFP4})
        test_stochastic(f);
    test_nonfinite_allowed();
    return slip_test::report("test-quant-formats");
}
