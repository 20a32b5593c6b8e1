// slip_gemm_f32 and slip_linear for every weight format, at every ISA level this CPU has,
// against a float64 product of the decoded operands.
//
// Bound: an FP32 dot product of K terms satisfies |fl(s) - s| <= gamma_K * sum |a_i b_i| with
// gamma_K = K u / (1 - K u), u = 2^-24 (Higham, Accuracy and Stability, 3.1). The operands'
// decode (one rounding each), the scale multiplies and the bias add of the epilogue add a few
// more roundings, so we check |y - ref| <= gamma_{K+6} * (sum |a_i b_i| + |bias|).
// W8A8 accumulates in int32, so it must be bit-identical across ISA levels.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../src/quant/element.h"
#include "check.h"
#include "slipstream.h"

namespace el = slip::element;

struct Case { int64_t m, k, n; };
std::mt19937 rng(7);
float uni() { return std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng); }

struct Weight {
    slip_qweight q{};
    std::vector<uint8_t> codes, scales;  // raw bytes of the codes / scales containers
    float global = 0.0f;
    std::vector<double> dec;             // decoded weight [n, k]
    std::vector<double> col_scale;       // dynamic INT8/FP8: per-row weight scale (else 1)
};

// Builds a weight of `format` with its codes written directly (no slip_quantize needed).
Weight make_weight(int32_t format, int64_t n, int64_t k) {
    Weight w;
    slip_quant_params_init(&w.q.params, static_cast<slip_quant_format>(format));
    w.dec.resize(n * k);
    w.col_scale.assign(n, 1.0);
    int64_t cs[2] = {n, k}, ss[2] = {n, 1}, gs[1] = {1};
    if (format == SLIP_FORMAT_F32) {
        w.codes.resize(n * k * 4);
        float *f = reinterpret_cast<float *>(w.codes.data());
        for (int64_t i = 0; i < n * k; ++i) w.dec[i] = f[i] = uni();
        slip_tensor_init(&w.q.codes, f, SLIP_DTYPE_F32, 2, cs);
    } else if (format == SLIP_FORMAT_INT8 || format == SLIP_FORMAT_FP8_E4M3 || format == SLIP_FORMAT_FP8_E5M2) {
        w.codes.resize(n * k);
        w.scales.resize(n * 4);
        float *s = reinterpret_cast<float *>(w.scales.data());
        const el::Spec &sp = format == SLIP_FORMAT_FP8_E5M2 ? el::kE5M2 : el::kE4M3;
        for (int64_t r = 0; r < n; ++r) {
            s[r] = 0.01f * (1 + r % 5);
            w.col_scale[r] = s[r];
            for (int64_t c = 0; c < k; ++c) {
                uint8_t code;
                double v;
                if (format == SLIP_FORMAT_INT8) {
                    code = static_cast<uint8_t>(static_cast<int8_t>(rng() % 255 - 127));
                    v = static_cast<int8_t>(code);
                } else {
                    code = el::encode(uni() * 100.0f, sp);
                    v = el::decode(code, sp);
                }
                w.codes[r * k + c] = code;
                w.dec[r * k + c] = v * s[r];
            }
        }
        const slip_dtype dt = format == SLIP_FORMAT_INT8 ? SLIP_DTYPE_I8
                              : format == SLIP_FORMAT_FP8_E4M3 ? SLIP_DTYPE_F8_E4M3 : SLIP_DTYPE_F8_E5M2;
        slip_tensor_init(&w.q.codes, w.codes.data(), dt, 2, cs);
        slip_tensor_init(&w.q.scales, s, SLIP_DTYPE_F32, 2, ss);
    } else {  // INT4 (CT int32), NVFP4 and MXFP4: nibbles, even column in the low nibble
        const int64_t g = format == SLIP_FORMAT_INT4 ? 128 : format == SLIP_FORMAT_MXFP4 ? 32 : 16;
        w.codes.resize(n * k / 2);
        std::vector<uint8_t> nib(n * k);
        for (auto &c : nib) c = rng() % 16;
        for (int64_t i = 0; i < n * k; i += 2) w.codes[i / 2] = nib[i] | (nib[i + 1] << 4);
        const int64_t groups = k / g;
        int64_t qs[2] = {n, format == SLIP_FORMAT_INT4 ? k / 8 : k / 2}, gsh[2] = {n, groups};
        if (format == SLIP_FORMAT_INT4) {
            w.scales.resize(n * groups * 4);
            float *s = reinterpret_cast<float *>(w.scales.data());
            for (int64_t i = 0; i < n * groups; ++i) s[i] = 0.001f * (1 + i % 7);
            for (int64_t i = 0; i < n * k; ++i) w.dec[i] = (nib[i] - 8.0) * s[(i / k) * groups + (i % k) / g];
            slip_tensor_init(&w.q.codes, w.codes.data(), SLIP_DTYPE_I32, 2, qs);
            slip_tensor_init(&w.q.scales, s, SLIP_DTYPE_F32, 2, gsh);
        } else {
            w.scales.resize(n * groups);
            w.global = 37.0f;
            for (auto &s : w.scales) s = format == SLIP_FORMAT_MXFP4 ? 120 + rng() % 8 : 0x20 + rng() % 40;
            for (int64_t i = 0; i < n * k; ++i) {
                const uint8_t sc = w.scales[(i / k) * groups + (i % k) / g];
                const double e = el::decode(nib[i], el::kE2M1);
                w.dec[i] = format == SLIP_FORMAT_MXFP4 ? e * el::decode_e8m0(sc)
                                                       : e * el::decode(sc, el::kE4M3) / w.global;
            }
            slip_tensor_init(&w.q.codes, w.codes.data(), SLIP_DTYPE_U8, 2, qs);
            slip_tensor_init(&w.q.scales, w.scales.data(),
                             format == SLIP_FORMAT_MXFP4 ? SLIP_DTYPE_U8 : SLIP_DTYPE_F8_E4M3, 2, gsh);
            if (format == SLIP_FORMAT_NVFP4) slip_tensor_init(&w.q.global, &w.global, SLIP_DTYPE_F32, 1, gs);
        }
    }
    return w;
}

// The activations each scheme multiplies, in float64 (the spec's formulas, via element.h).
std::vector<double> decoded_acts(const std::vector<float> &x, int64_t m, int64_t k, int32_t format, bool dyn) {
    std::vector<double> a(x.begin(), x.end());
    if (!dyn) return a;
    float gamax = 0.0f;
    for (float v : x) gamax = std::max(gamax, std::fabs(v));
    for (int64_t r = 0; r < m; ++r) {
        const float *row = x.data() + r * k;
        float amax = 0.0f;
        for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(row[i]));
        if (format == SLIP_FORMAT_INT8) {
            const float s = amax / 127.0f;
            for (int64_t i = 0; i < k; ++i)
                a[r * k + i] = s == 0 ? 0.0 : std::fmax(-127.0, std::fmin(127.0, std::nearbyint(row[i] / s))) * (double)s;
        } else if (format == SLIP_FORMAT_FP8_E4M3 || format == SLIP_FORMAT_FP8_E5M2) {
            const el::Spec &sp = format == SLIP_FORMAT_FP8_E5M2 ? el::kE5M2 : el::kE4M3;
            const float s = amax / sp.max;
            for (int64_t i = 0; i < k; ++i) a[r * k + i] = s == 0 ? 0.0 : el::decode(el::encode(row[i] / s, sp), sp) * (double)s;
        } else {  // NVFP4
            const float g = 448.0f * 6.0f / gamax;
            for (int64_t b = 0; b < k; b += 16) {
                float bm = 0.0f;
                for (int i = 0; i < 16; ++i) bm = std::max(bm, std::fabs(row[b + i]));
                const float s = el::round_magnitude(bm / 6.0f * g, el::kE4M3, -1.0f);
                for (int i = 0; i < 16; ++i)
                    a[r * k + b + i] = s == 0 ? 0.0 : el::decode(el::encode(row[b + i] * g / s, el::kE2M1), el::kE2M1) * (double)s / g;
            }
        }
    }
    return a;
}

// y against sum_k a*w (+bias) within gamma_{K+6}.
bool close(const std::vector<float> &y, const std::vector<double> &a, const std::vector<double> &w,
           const std::vector<float> &bias, int64_t m, int64_t k, int64_t n, const char *what) {
    const double gamma = (k + 6) * std::ldexp(1.0, -24) / (1 - (k + 6) * std::ldexp(1.0, -24));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double ref = bias[j], mag = std::fabs(bias[j]);
            for (int64_t c = 0; c < k; ++c) {
                ref += a[i * k + c] * w[j * k + c];
                mag += std::fabs(a[i * k + c] * w[j * k + c]);
            }
            if (!(std::fabs(y[i * n + j] - ref) <= gamma * mag + 1e-30)) {
                std::fprintf(stderr, "%s: y[%lld,%lld] = %.9g, ref %.9g, bound %.3g\n", what, (long long)i,
                             (long long)j, y[i * n + j], ref, gamma * mag);
                return false;
            }
        }
    return true;
}

int main() {
    slip_capabilities caps;
    slip_get_capabilities(&caps);
    const Case cases[] = {{1, 128, 33}, {7, 256, 129}, {33, 384, 7}, {129, 128, 65}, {2, 640, 1}};
    struct Fmt { int32_t format; bool dyn; const char *name; };
    const Fmt fmts[] = {{SLIP_FORMAT_F32, false, "F32"},       {SLIP_FORMAT_INT8, true, "W8A8"},
                        {SLIP_FORMAT_INT8, false, "W8A16"},    {SLIP_FORMAT_FP8_E4M3, true, "FP8 E4M3"},
                        {SLIP_FORMAT_FP8_E5M2, true, "FP8 E5M2"}, {SLIP_FORMAT_FP8_E4M3, false, "FP8 E4M3 A16"},
                        {SLIP_FORMAT_INT4, false, "W4A16"},    {SLIP_FORMAT_NVFP4, true, "NVFP4 W4A4"},
                        {SLIP_FORMAT_NVFP4, false, "NVFP4A16"}, {SLIP_FORMAT_MXFP4, false, "MXFP4"}};
    for (const Case &cs : cases) {
        const int64_t m = cs.m, k = cs.k, n = cs.n;
        std::vector<float> x(m * k), bias(n);
        for (auto &v : x) v = uni();
        for (auto &v : bias) v = uni();
        int64_t xs[2] = {m, k}, ys[2] = {m, n}, bs[1] = {n};
        slip_tensor X, Y, B;
        slip_tensor_init(&X, x.data(), SLIP_DTYPE_F32, 2, xs);
        slip_tensor_init(&B, bias.data(), SLIP_DTYPE_F32, 1, bs);
        for (const Fmt &f : fmts) {
            Weight w = make_weight(f.format, n, k);
            const std::vector<double> a = decoded_acts(x, m, k, f.format, f.dyn);
            std::vector<float> first;
            for (int isa = 0; isa <= caps.isa_detected; ++isa) {
                CHECK(slip_set_isa(static_cast<slip_isa>(isa)) == SLIP_STATUS_OK);
                std::vector<float> y(m * n, NAN);
                slip_tensor_init(&Y, y.data(), SLIP_DTYPE_F32, 2, ys);
                slip_linear_params p;
                slip_linear_params_init(&p);
                p.act_quant = f.dyn ? SLIP_ACT_DYNAMIC : SLIP_ACT_NONE;
                const slip_status st = slip_linear(&X, &w.q, &B, &p, &Y);
                CHECK_MSG(st == SLIP_STATUS_OK, "%s: %s", f.name, slip_last_error());
                std::string what = std::string(f.name) + " isa " + std::to_string(isa) + " m,k,n " +
                                   std::to_string(m) + "," + std::to_string(k) + "," + std::to_string(n);
                CHECK_MSG(close(y, a, w.dec, bias, m, k, n, what.c_str()), "%s", what.c_str());
                if (f.format == SLIP_FORMAT_INT8 && f.dyn) {  // integer accumulation: bit-exact
                    if (isa == 0) first = y;
                    else CHECK_MSG(std::memcmp(first.data(), y.data(), y.size() * 4) == 0, "%s", what.c_str());
                }
                if (f.format == SLIP_FORMAT_F32) {  // slip_gemm_f32 too
                    std::vector<float> y2(m * n);
                    slip_tensor Y2;
                    slip_tensor_init(&Y2, y2.data(), SLIP_DTYPE_F32, 2, ys);
                    CHECK(slip_gemm_f32(&X, &w.q.codes, &B, &Y2) == SLIP_STATUS_OK);
                    CHECK(close(y2, a, w.dec, bias, m, k, n, "gemm_f32"));
                }
            }
        }
    }
    slip_set_isa(static_cast<slip_isa>(caps.isa_detected));

    // slip_gemm_f32 at M = 1 dots raw rows (no packing): odd K exercises the vector tails, odd N
    // the last group of fewer than 4 rows.
    for (int64_t k : {1, 7, 100, 129})
        for (int64_t n : {1, 5, 37})
            for (int isa = 0; isa <= caps.isa_detected; ++isa) {
                CHECK(slip_set_isa(static_cast<slip_isa>(isa)) == SLIP_STATUS_OK);
                std::vector<float> x(k), bias(n), y(n, NAN);
                for (auto &v : x) v = uni();
                for (auto &v : bias) v = uni();
                Weight f = make_weight(SLIP_FORMAT_F32, n, k);
                int64_t xs[2] = {1, k}, ys[2] = {1, n}, bs[1] = {n};
                slip_tensor X, Y, B;
                slip_tensor_init(&X, x.data(), SLIP_DTYPE_F32, 2, xs);
                slip_tensor_init(&Y, y.data(), SLIP_DTYPE_F32, 2, ys);
                slip_tensor_init(&B, bias.data(), SLIP_DTYPE_F32, 1, bs);
                CHECK(slip_gemm_f32(&X, &f.q.codes, &B, &Y) == SLIP_STATUS_OK);
                const std::string what = "gemv isa " + std::to_string(isa) + " k,n " + std::to_string(k) + "," + std::to_string(n);
                CHECK_MSG(close(y, std::vector<double>(x.begin(), x.end()), f.dec, bias, 1, k, n, what.c_str()), "%s", what.c_str());
            }
    slip_set_isa(static_cast<slip_isa>(caps.isa_detected));

    // Error paths: a sentence naming the argument, never a crash.
    {
        Weight w = make_weight(SLIP_FORMAT_INT4, 8, 256);
        std::vector<float> x(3 * 100), y(3 * 8);
        int64_t xs[2] = {3, 100}, ys[2] = {3, 8};
        slip_tensor X, Y;
        slip_tensor_init(&X, x.data(), SLIP_DTYPE_F32, 2, xs);
        slip_tensor_init(&Y, y.data(), SLIP_DTYPE_F32, 2, ys);
        CHECK(slip_linear(&X, &w.q, nullptr, nullptr, &Y) == SLIP_STATUS_SHAPE_MISMATCH);
        CHECK(std::strstr(slip_last_error(), "expected shape [M, 256] for x") != nullptr);
        slip_linear_params p;
        slip_linear_params_init(&p);
        p.act_quant = SLIP_ACT_DYNAMIC;
        slip_linear_plan_t plan = nullptr;
        CHECK(slip_linear_plan_create(&w.q, &p, &plan) == SLIP_STATUS_UNSUPPORTED && plan == nullptr);
        CHECK(std::strstr(slip_last_error(), "INT4") != nullptr);
        w.q.params.group_size = 96;
        p.act_quant = SLIP_ACT_NONE;
        CHECK(slip_linear_plan_create(&w.q, &p, &plan) == SLIP_STATUS_SHAPE_MISMATCH);
        w.q.params.format = 42;
        CHECK(slip_linear_plan_create(&w.q, &p, &plan) == SLIP_STATUS_INVALID_ARGUMENT);
        CHECK(slip_linear_plan_create(nullptr, &p, &plan) == SLIP_STATUS_INVALID_ARGUMENT);
        CHECK(slip_linear_plan_run(nullptr, &X, nullptr, &Y) == SLIP_STATUS_INVALID_ARGUMENT);
        Weight f = make_weight(SLIP_FORMAT_F32, 8, 100);
        X.dtype = SLIP_DTYPE_F16;
        CHECK(slip_gemm_f32(&X, &f.q.codes, nullptr, &Y) == SLIP_STATUS_DTYPE_MISMATCH);
        CHECK(std::strstr(slip_last_error(), "expected dtype F32 for x, got F16") != nullptr);
        X.dtype = SLIP_DTYPE_F32;
        ys[1] = 9;
        slip_tensor_init(&Y, y.data(), SLIP_DTYPE_F32, 2, ys);
        CHECK(slip_gemm_f32(&X, &f.q.codes, nullptr, &Y) == SLIP_STATUS_SHAPE_MISMATCH);
        Weight q8 = make_weight(SLIP_FORMAT_INT8, 8, 100);
        q8.q.params.granularity = SLIP_GRANULARITY_GROUP;
        CHECK(slip_linear_plan_create(&q8.q, &p, &plan) != SLIP_STATUS_OK);
    }
    // slip_bench_peak: a positive rate where the ISA allows, UNSUPPORTED where not; bad arguments
    // are refused with a sentence.
    {
        double ops = -1.0;
        const slip_status st = slip_bench_peak(0, 0.02, &ops);
        CHECK(st == (caps.isa_detected >= SLIP_ISA_AVX512 ? SLIP_STATUS_OK : SLIP_STATUS_UNSUPPORTED));
        CHECK(st != SLIP_STATUS_OK || ops > 0.0);
        CHECK(slip_set_isa(SLIP_ISA_AVX2) == SLIP_STATUS_OK || caps.isa_detected < SLIP_ISA_AVX2);
        CHECK(slip_bench_peak(1, 0.02, &ops) == SLIP_STATUS_UNSUPPORTED);
        slip_set_isa(static_cast<slip_isa>(caps.isa_detected));
        CHECK(slip_bench_peak(2, 0.02, &ops) == SLIP_STATUS_INVALID_ARGUMENT);
        CHECK(std::strstr(slip_last_error(), "for kind") != nullptr);
        CHECK(slip_bench_peak(0, 0.0, &ops) == SLIP_STATUS_INVALID_ARGUMENT);
        CHECK(slip_bench_peak(0, 1.0, nullptr) == SLIP_STATUS_INVALID_ARGUMENT);
    }
    return slip_test::report("test-gemm");
}
