// slip_gemm_f32 and slip_linear for every weight format, at every ISA level this CPU has,
// against a float64 product of the decoded operands.
//
// Bound: an FP32 dot product of K terms satisfies |fl(s) - s| <= gamma_K * sum |a_i b_i| with
// gamma_K = K u / (1 - K u), u = 2^-24 (Higham, Accuracy and Stability, 3.1). The operands'
// decode (one rounding each), the scale multiplies and the bias add of the epilogue add a few
// more roundings, so we check |y - ref| <= gamma_{K+6} * (sum |a_i b_i| + |bias|).
// W8A8 accumulates in int32, so it must be bit-identical across ISA levels. NVFP4 against INT8 or
// NVFP4 activations forms exact int32 sums per 16-column group where VNNI is, so the same bound
// holds there, and between levels twice it.
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
// NVFP4: global g given (> 0) or 448*6/amax(x) (0), as slip_linear_params.act_global_scale.
std::vector<double> decoded_acts(const std::vector<float> &x, int64_t m, int64_t k, int32_t format, bool dyn,
                                 float nvfp4_global = 0.0f) {
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
            const float g = nvfp4_global > 0.0f ? nvfp4_global : 448.0f * 6.0f / gamax;
            for (int64_t b = 0; b < k; b += 16) {
                float bm = 0.0f;
                for (int i = 0; i < 16; ++i) bm = std::max(bm, std::fabs(row[b + i]));
                const float s = el::round_magnitude(bm / 6.0f * g, el::kE4M3, -1.0f);
                for (int i = 0; i < 16; ++i)  // x * g may overflow (a static g): E2M1 saturates
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

// ---- NVFP4 weights against integer activations (W4A8: SLIP_ACT_INT8; W4A4: SLIP_ACT_DYNAMIC):
// exact integer products per 16-column group where AVX-512 VNNI is, the FP32 emulation below it.

// y at every ISA level against the reference, and the levels against each other, within the bound.
void check_nvfp4_integer(int64_t m, int64_t k, int64_t n, bool int8_acts, bool with_bias, int isa_max) {
    Weight w = make_weight(SLIP_FORMAT_NVFP4, n, k);
    std::vector<float> x(m * k), bias(n, 0.0f);
    for (auto &v : x) v = uni() * 3.0f;
    if (with_bias)
        for (auto &v : bias) v = uni();
    const std::vector<double> a = decoded_acts(x, m, k, int8_acts ? SLIP_FORMAT_INT8 : SLIP_FORMAT_NVFP4, true);
    std::vector<double> ref(m * n), mag(m * n);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double r = bias[j], g = std::fabs(bias[j]);
            for (int64_t c = 0; c < k; ++c) {
                r += a[i * k + c] * w.dec[j * k + c];
                g += std::fabs(a[i * k + c] * w.dec[j * k + c]);
            }
            ref[i * n + j] = r;
            mag[i * n + j] = g;
        }
    const double gamma = (k + 6) * std::ldexp(1.0, -24) / (1 - (k + 6) * std::ldexp(1.0, -24));
    int64_t xs[2] = {m, k}, ys[2] = {m, n}, bs[1] = {n};
    slip_tensor X, Y, B;
    slip_tensor_init(&X, x.data(), SLIP_DTYPE_F32, 2, xs);
    slip_tensor_init(&B, bias.data(), SLIP_DTYPE_F32, 1, bs);
    slip_linear_params p;
    slip_linear_params_init(&p);
    p.act_quant = int8_acts ? SLIP_ACT_INT8 : SLIP_ACT_DYNAMIC;
    slip_linear_plan_t plan = nullptr;
    CHECK_OK(slip_linear_plan_create(&w.q, &p, &plan));
    std::vector<float> first;
    for (int isa = 0; isa <= isa_max; ++isa) {
        CHECK(slip_set_isa(static_cast<slip_isa>(isa)) == SLIP_STATUS_OK);
        std::vector<float> y(m * n, NAN);
        slip_tensor_init(&Y, y.data(), SLIP_DTYPE_F32, 2, ys);
        CHECK_OK(slip_linear_plan_run(plan, &X, with_bias ? &B : nullptr, &Y));
        const std::string what = std::string(int8_acts ? "NVFP4 W4A8" : "NVFP4 W4A4") + " isa " +
                                 std::to_string(isa) + " m,k,n " + std::to_string(m) + "," + std::to_string(k) +
                                 "," + std::to_string(n) + (with_bias ? " bias" : "");
        int64_t bad = 0;
        for (int64_t i = 0; i < m * n && bad < 3; ++i) {
            const double bound = gamma * mag[i] + 1e-30;
            const bool ok = std::fabs(y[i] - ref[i]) <= bound &&
                            (first.empty() || std::fabs(double(y[i]) - first[i]) <= 2 * bound);
            if (!ok && bad++ == 0)
                std::fprintf(stderr, "%s: y[%lld] = %.9g, ref %.9g, isa 0 %.9g, bound %.3g\n", what.c_str(),
                             (long long)i, y[i], ref[i], first.empty() ? NAN : first[i], bound);
        }
        CHECK_MSG(bad == 0, "%s", what.c_str());
        if (isa == 0) first = y;
    }
    slip_linear_plan_free(plan);
}

// ---- NVFP4 weights against BF16 activations (SLIP_ACT_BF16): AMX tiles at SLIP_ISA_AMX, the FP32
// product of the rounded activations and the decoded weight below it. Reference: the activations
// rounded to BF16 (nearest even, done here bit by bit) times the decoded weight in float64; the
// weight is exact in BF16, so only FP32 accumulation (and the epilogue) separates the levels.

double bf16_round(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    const uint32_t lsb = (b >> 16) & 1u;
    b = ((b + 0x7fffu + lsb) >> 16) << 16;
    float r;
    std::memcpy(&r, &b, 4);
    return r;
}

void check_nvfp4_bf16(int64_t m, int64_t k, int64_t n, bool with_bias, bool from_int8_plan, int isa_max) {
    Weight w = make_weight(SLIP_FORMAT_NVFP4, n, k);
    std::vector<float> x(m * k), bias(n, 0.0f);
    for (auto &v : x) v = uni() * 3.0f;
    if (m * k > 3) x[3] = 300.0f;  // an outlier: BF16 keeps it, with its neighbours, to 8 bits
    if (with_bias)
        for (auto &v : bias) v = uni();
    const double gamma = (k + 6) * std::ldexp(1.0, -24) / (1 - (k + 6) * std::ldexp(1.0, -24));
    int64_t xs[2] = {m, k}, ys[2] = {m, n}, bs[1] = {n};
    slip_tensor X, Y, B;
    slip_tensor_init(&X, x.data(), SLIP_DTYPE_F32, 2, xs);
    slip_tensor_init(&B, bias.data(), SLIP_DTYPE_F32, 1, bs);
    slip_linear_params p;
    slip_linear_params_init(&p);
    p.act_quant = from_int8_plan ? SLIP_ACT_INT8 : SLIP_ACT_BF16;
    slip_linear_plan_t plan = nullptr;
    CHECK_OK(slip_linear_plan_create(&w.q, &p, &plan));
    p.act_quant = SLIP_ACT_BF16;
    std::vector<float> first;
    for (int isa = 0; isa <= isa_max; ++isa) {
        CHECK(slip_set_isa(static_cast<slip_isa>(isa)) == SLIP_STATUS_OK);
        std::vector<float> y(m * n, NAN);
        slip_tensor_init(&Y, y.data(), SLIP_DTYPE_F32, 2, ys);
        CHECK_OK(slip_linear_plan_run_as(plan, &p, &X, with_bias ? &B : nullptr, &Y));
        const std::string what = "NVFP4 x BF16 isa " + std::to_string(isa) + " m,k,n " + std::to_string(m) + "," +
                                 std::to_string(k) + "," + std::to_string(n) + (with_bias ? " bias" : "") +
                                 (from_int8_plan ? " (W4A8 plan)" : "");
        int64_t bad = 0;
        for (int64_t i = 0; i < m && bad < 3; ++i)
            for (int64_t j = 0; j < n && bad < 3; ++j) {
                double r = bias[j], g = std::fabs(bias[j]);
                for (int64_t c = 0; c < k; ++c) {
                    const double t = bf16_round(x[i * k + c]) * w.dec[j * k + c];
                    r += t;
                    g += std::fabs(t);
                }
                const double got = y[i * n + j], bound = gamma * g + 1e-30;
                const bool ok = std::fabs(got - r) <= bound && (first.empty() || std::fabs(got - first[i * n + j]) <= 2 * bound);
                if (!ok && bad++ == 0)
                    std::fprintf(stderr, "%s: y[%lld,%lld] = %.9g, ref %.9g, isa 0 %.9g, bound %.3g\n", what.c_str(),
                                 (long long)i, (long long)j, got, r, first.empty() ? NAN : first[i * n + j], bound);
            }
        CHECK_MSG(bad == 0, "%s", what.c_str());
        if (isa == 0) first = y;
    }
    slip_linear_plan_free(plan);
}

// The quantizers themselves: with an identity weight, y is the decoded activations (times 1), so
// the levels must agree on every code. The rows probe the rounding boundaries: INT8 ties
// (j + 1/2) * s and their neighbours, E2M1 thresholds (0.25, 0.75, ... times s/g), blocks whose
// scale underflows to 0, an all-zero row, subnormals; and a static NVFP4 global scale so large
// that x * g overflows.
void check_nvfp4_quantizers(int isa_max) {
    const int64_t k = 64, n = 64, m = 96;
    Weight w;
    slip_quant_params_init(&w.q.params, SLIP_FORMAT_NVFP4);
    w.codes.assign(n * k / 2, 0);
    w.scales.assign(n * k / 16, 0x38);  // 1.0
    w.global = 1.0f;
    for (int64_t j = 0; j < n; ++j) w.codes[(j * k + j) / 2] |= static_cast<uint8_t>(2 << (4 * (j & 1)));  // E2M1 1.0
    int64_t cs[2] = {n, k / 2}, ss[2] = {n, k / 16}, gs[1] = {1};
    slip_tensor_init(&w.q.codes, w.codes.data(), SLIP_DTYPE_U8, 2, cs);
    slip_tensor_init(&w.q.scales, w.scales.data(), SLIP_DTYPE_F8_E4M3, 2, ss);
    slip_tensor_init(&w.q.global, &w.global, SLIP_DTYPE_F32, 1, gs);

    std::vector<float> x(m * k, 0.0f);
    const float gmax = 5.0f, g = 448.0f * 6.0f / gmax;  // the W4A4 global, set by x[0]
    auto nudge = [](float v, int ulps) {
        uint32_t b;
        std::memcpy(&b, &v, 4);
        b += ulps;
        std::memcpy(&v, &b, 4);
        return v;
    };
    const float thresholds[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f};
    for (int64_t r = 0; r < m; ++r) {
        float *row = x.data() + r * k;
        const int kind = r % 4;
        const float amax = r == 0 ? gmax : 0.1f + 4.0f * std::fabs(uni());
        row[0] = r % 2 ? -amax : amax;
        if (kind == 0) {  // INT8 ties and neighbours
            const float s = amax / 127.0f;
            for (int64_t c = 1; c < k; ++c)
                row[c] = nudge((static_cast<int>(rng() % 254) - 126 + 0.5f) * s, static_cast<int>(c % 5) - 2);
        } else if (kind == 1) {  // E2M1 thresholds of each block's scale
            for (int64_t b = 0; b < k; b += 16) {
                const float bm = b == 0 ? amax : 0.05f + 4.0f * std::fabs(uni());
                row[b] = b == 0 ? row[0] : bm;
                const float sb = el::round_magnitude(bm / 6.0f * g, el::kE4M3, -1.0f);
                for (int i = 1; i < 16; ++i) {
                    const float t = thresholds[rng() % 8] * sb / g;
                    row[b + i] = nudge(rng() % 2 ? t : -t, static_cast<int>(rng() % 5) - 2);
                }
            }
        } else if (kind == 2) {  // a tiny block (its NVFP4 scale rounds to 0), subnormals, zeros
            for (int64_t c = 16; c < 32; ++c) row[c] = 1e-6f * uni();
            for (int64_t c = 32; c < 48; ++c) row[c] = 1e-40f * (c % 3);
        } else if (r != 3) {
            for (int64_t c = 1; c < k; ++c) row[c] = uni() * amax;
        } else {
            std::fill(row, row + k, 0.0f);  // an all-zero row: scale 0
        }
    }
    int64_t xs[2] = {m, k}, ys[2] = {m, n};
    slip_tensor X, Y;
    slip_tensor_init(&X, x.data(), SLIP_DTYPE_F32, 2, xs);
    const char *names[] = {"INT8", "NVFP4", "NVFP4 (static global 1e38)"};
    for (int mode = 0; mode < 3; ++mode) {
        const bool int8_acts = mode == 0;
        slip_linear_params p;
        slip_linear_params_init(&p);
        p.act_quant = int8_acts ? SLIP_ACT_INT8 : SLIP_ACT_DYNAMIC;
        p.act_global_scale = mode == 2 ? 1e38f : 0.0f;  // x * g overflows for |x| > 3.4
        slip_linear_plan_t plan = nullptr;
        CHECK_OK(slip_linear_plan_create(&w.q, &p, &plan));
        const std::vector<double> ref =
            decoded_acts(x, m, k, int8_acts ? SLIP_FORMAT_INT8 : SLIP_FORMAT_NVFP4, true, p.act_global_scale);
        std::vector<float> first;
        for (int isa = 0; isa <= isa_max; ++isa) {
            CHECK(slip_set_isa(static_cast<slip_isa>(isa)) == SLIP_STATUS_OK);
            std::vector<float> y(m * n, NAN);
            slip_tensor_init(&Y, y.data(), SLIP_DTYPE_F32, 2, ys);
            CHECK_OK(slip_linear_plan_run(plan, &X, nullptr, &Y));
            if (isa == 0) first = y;
            // The emulation multiplies the decoded activations by 1 exactly: bit-identical at every
            // level below VNNI (the AVX-512 quantizer against the scalar one). The integer path
            // forms q * (s / g / 2) instead of (q/2 * s) / g: two roundings apart at most. W4A8's
            // q * s is the same product both ways.
            const bool exact = int8_acts || isa < SLIP_ISA_AVX512VNNI;
            int64_t bad = 0;
            for (int64_t i = 0; i < m * n && bad < 3; ++i) {
                const double r = ref[(i / n) * k + i % n];
                const bool ok = exact ? std::memcmp(&y[i], &first[i], 4) == 0
                                      : std::fabs(y[i] - first[i]) <= 3 * std::ldexp(std::fabs(first[i]), -24);
                // and, through the reference's own decode, the codes are right
                const bool codes_ok = std::fabs(y[i] - r) <= 3 * std::ldexp(std::fabs(r), -24) + 1e-45;
                if (!(ok && codes_ok) && bad++ == 0)
                    std::fprintf(stderr, "%s quantizer isa %d: y[%lld,%lld] = %a, isa 0 %a, ref %a (x %a)\n",
                                 names[mode], isa, (long long)(i / n), (long long)(i % n), y[i], first[i], r,
                                 x[(i / n) * k + i % n]);
            }
            CHECK_MSG(bad == 0, "%s quantizer isa %d", names[mode], isa);
        }
        slip_linear_plan_free(plan);
    }
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
                if (f.format == SLIP_FORMAT_NVFP4 && !f.dyn) {
                    // One 4-bit plan made for INT8 activations, run with FP32 activations through
                    // slip_linear_plan_run_as: its packed weight decodes to the same values as the
                    // W4A16 plan's and feeds the same FP32 kernel, so the result is bit-identical.
                    slip_linear_params pi;
                    slip_linear_params_init(&pi);
                    pi.act_quant = SLIP_ACT_INT8;
                    slip_linear_plan_t plan = nullptr;
                    CHECK(slip_linear_plan_create(&w.q, &pi, &plan) == SLIP_STATUS_OK);
                    std::vector<float> y2(m * n, NAN);
                    slip_tensor Y2;
                    slip_tensor_init(&Y2, y2.data(), SLIP_DTYPE_F32, 2, ys);
                    CHECK(slip_linear_plan_run_as(plan, &p, &X, &B, &Y2) == SLIP_STATUS_OK);
                    CHECK_MSG(std::memcmp(y.data(), y2.data(), y.size() * 4) == 0, "run_as NONE, %s", what.c_str());
                    // And with INT8 activations it is the plan's own W4A8 product.
                    std::vector<float> y3(m * n, NAN), y4(m * n, NAN);
                    slip_tensor Y3, Y4;
                    slip_tensor_init(&Y3, y3.data(), SLIP_DTYPE_F32, 2, ys);
                    slip_tensor_init(&Y4, y4.data(), SLIP_DTYPE_F32, 2, ys);
                    CHECK(slip_linear_plan_run_as(plan, &pi, &X, &B, &Y3) == SLIP_STATUS_OK);
                    CHECK(slip_linear_plan_run(plan, &X, &B, &Y4) == SLIP_STATUS_OK);
                    CHECK(std::memcmp(y3.data(), y4.data(), y3.size() * 4) == 0);
                    slip_linear_plan_free(plan);
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

    // NVFP4 x integer activations: every M, K, N of interest appears, with and without bias; K =
    // 528 and 1024 run several K blocks of the integer kernel (the last one partial at 528).
    {
        struct Shape { int64_t m, k, n; };
        const Shape shapes[] = {{1, 16, 1},    {3, 48, 17},    {64, 256, 256},  {1024, 1024, 256}, {1024, 16, 17},
                                {3, 1024, 1},  {64, 48, 1},    {1, 1024, 256},  {1024, 256, 17},   {64, 528, 17},
                                {3, 256, 256}, {1, 528, 17}};
        int i = 0;
        for (const Shape &sh : shapes)
            for (bool int8_acts : {true, false}) check_nvfp4_integer(sh.m, sh.k, sh.n, int8_acts, ++i % 2, caps.isa_detected);
        check_nvfp4_quantizers(caps.isa_detected);
        // BF16: K a multiple of 32 takes the AMX tiles (M and N tails inside a 32 x 32 block); K =
        // 48 and 528 fall back to the FP32 product at every level.
        const Shape bf16_shapes[] = {{1, 32, 1}, {33, 64, 47}, {1024, 1024, 256}, {64, 256, 1024}, {3, 48, 17}, {5, 528, 33}};
        for (const Shape &sh : bf16_shapes)
            for (bool from_int8_plan : {false, true}) check_nvfp4_bf16(sh.m, sh.k, sh.n, ++i % 2, from_int8_plan, caps.isa_detected);
        slip_set_isa(static_cast<slip_isa>(caps.isa_detected));
    }

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
        // SLIP_ACT_INT8 needs weight codes that are exact small integers: INT8 and NVFP4 only.
        p.act_quant = SLIP_ACT_INT8;
        for (int32_t f : {SLIP_FORMAT_INT4, SLIP_FORMAT_FP8_E4M3, SLIP_FORMAT_FP8_E5M2, SLIP_FORMAT_MXFP4, SLIP_FORMAT_F32}) {
            Weight wf = make_weight(f, 8, 256);
            const char *names[] = {"INT8", "INT4", "FP8_E4M3", "FP8_E5M2", "NVFP4", "NVFP4_TJ2", "MXFP4", "F32"};
            const std::string text = std::string("got format ") + names[f];
            CHECK_FAILS(slip_linear_plan_create(&wf.q, &p, &plan), SLIP_STATUS_UNSUPPORTED, text.c_str());
            CHECK(plan == nullptr);
        }
        p.act_quant = 5;
        Weight nv = make_weight(SLIP_FORMAT_NVFP4, 8, 256);
        CHECK_FAILS(slip_linear_plan_create(&nv.q, &p, &plan), SLIP_STATUS_INVALID_ARGUMENT, "SLIP_ACT_BF16 (3)");
        // FP8 activations (W4A8) are a CUDA plan's; the CPU refuses them, at create and at run_as.
        p.act_quant = SLIP_ACT_FP8;
        CHECK_FAILS(slip_linear_plan_create(&nv.q, &p, &plan), SLIP_STATUS_UNSUPPORTED, "CUDA");
        CHECK(plan == nullptr);
        p.act_quant = SLIP_ACT_INT8;
        CHECK_OK(slip_linear_plan_create(&nv.q, &p, &plan));
        {
            std::vector<float> xn(2 * 256, 0.25f), yn(2 * 8);
            int64_t xns[2] = {2, 256}, yns[2] = {2, 8};
            slip_tensor XN, YN;
            slip_tensor_init(&XN, xn.data(), SLIP_DTYPE_F32, 2, xns);
            slip_tensor_init(&YN, yn.data(), SLIP_DTYPE_F32, 2, yns);
            slip_linear_params pf;
            slip_linear_params_init(&pf);
            pf.act_quant = SLIP_ACT_FP8;
            CHECK_FAILS(slip_linear_plan_run_as(plan, &pf, &XN, nullptr, &YN), SLIP_STATUS_UNSUPPORTED, "CUDA");
        }
        slip_linear_plan_free(plan);
        plan = nullptr;
        // A weight on a CUDA device goes to the CUDA backend, which plans NVFP4 with NONE or FP8
        // activations; where no GPU is (CI) it refuses with a sentence naming CUDA, never a crash.
        {
            Weight cw = make_weight(SLIP_FORMAT_NVFP4, 8, 256);
            cw.q.codes.device = cw.q.scales.device = cw.q.global.device = SLIP_DEVICE_CUDA;
            slip_linear_params pc;
            slip_linear_params_init(&pc);
            const slip_status st = slip_linear_plan_create(&cw.q, &pc, &plan);
            CHECK(st == SLIP_STATUS_UNSUPPORTED || st == SLIP_STATUS_CUDA_ERROR);
            CHECK_MSG(std::strstr(slip_last_error(), "CUDA") != nullptr, "got: %s", slip_last_error());
            CHECK(plan == nullptr);
            pc.act_quant = SLIP_ACT_INT8;
            CHECK_FAILS(slip_linear_plan_create(&cw.q, &pc, &plan), SLIP_STATUS_UNSUPPORTED, "CUDA");
            Weight c8 = make_weight(SLIP_FORMAT_INT8, 8, 256);
            c8.q.codes.device = c8.q.scales.device = SLIP_DEVICE_CUDA;
            pc.act_quant = SLIP_ACT_NONE;
            CHECK_FAILS(slip_linear_plan_create(&c8.q, &pc, &plan), SLIP_STATUS_UNSUPPORTED, "CUDA");
            CHECK(plan == nullptr);
        }
        // BF16 activations need a weight BF16 holds exactly: NVFP4 only.
        p.act_quant = SLIP_ACT_BF16;
        for (int32_t f : {SLIP_FORMAT_INT8, SLIP_FORMAT_F32, SLIP_FORMAT_MXFP4}) {
            Weight wf = make_weight(f, 8, 256);
            CHECK_FAILS(slip_linear_plan_create(&wf.q, &p, &plan), SLIP_STATUS_UNSUPPORTED, "SLIP_ACT_BF16");
            CHECK(plan == nullptr);
        }
        // ... and for INT8 weights it is W8A8, bit for bit.
        Weight w8 = make_weight(SLIP_FORMAT_INT8, 40, 96);
        std::vector<float> x8(5 * 96), y8a(5 * 40), y8b(5 * 40);
        for (auto &v : x8) v = uni();
        int64_t x8s[2] = {5, 96}, y8s[2] = {5, 40};
        slip_tensor X8, Y8a, Y8b;
        slip_tensor_init(&X8, x8.data(), SLIP_DTYPE_F32, 2, x8s);
        slip_tensor_init(&Y8a, y8a.data(), SLIP_DTYPE_F32, 2, y8s);
        slip_tensor_init(&Y8b, y8b.data(), SLIP_DTYPE_F32, 2, y8s);
        p.act_quant = SLIP_ACT_INT8;
        CHECK_OK(slip_linear(&X8, &w8.q, nullptr, &p, &Y8a));
        p.act_quant = SLIP_ACT_DYNAMIC;
        CHECK_OK(slip_linear(&X8, &w8.q, nullptr, &p, &Y8b));
        CHECK(std::memcmp(y8a.data(), y8b.data(), y8a.size() * 4) == 0);
        // The NVFP4 integer plan keeps the weight at 4.5 bits: codes, one E4M3 byte per 16, a
        // 1 KiB scale table.
        Weight big = make_weight(SLIP_FORMAT_NVFP4, 256, 512);
        for (int32_t act : {SLIP_ACT_INT8, SLIP_ACT_DYNAMIC}) {
            p.act_quant = act;
            CHECK_OK(slip_linear_plan_create(&big.q, &p, &plan));
            int64_t bytes = 0;
            CHECK_OK(slip_linear_plan_weight_bytes(plan, &bytes));
            CHECK_MSG(bytes == 256 * 512 / 2 + 256 * 512 / 16 + 1024, "weight bytes %lld", (long long)bytes);
            slip_linear_plan_free(plan);
        }
        // Non-finite activations are refused, naming the row, on the integer path too.
        slip_set_isa(static_cast<slip_isa>(caps.isa_detected));
        for (int32_t act : {SLIP_ACT_INT8, SLIP_ACT_DYNAMIC}) {
            std::vector<float> xb(4 * 512, 0.5f), yb(4 * 256);
            xb[2 * 512 + 7] = NAN;
            int64_t xbs[2] = {4, 512}, ybs[2] = {4, 256};
            slip_tensor XB, YB;
            slip_tensor_init(&XB, xb.data(), SLIP_DTYPE_F32, 2, xbs);
            slip_tensor_init(&YB, yb.data(), SLIP_DTYPE_F32, 2, ybs);
            p.act_quant = act;
            CHECK_FAILS(slip_linear(&XB, &big.q, nullptr, &p, &YB), SLIP_STATUS_INVALID_ARGUMENT,
                        "non-finite value in row 2");
        }
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
