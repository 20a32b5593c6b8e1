// Dynamic activation quantizers. Those of the emulated formats write the *decoded* activations
// the FP32 product then uses, so the result is the FP32 product of exactly the values a W8A8/W4A4
// engine would multiply; those of the integer NVFP4 path write codes and scales (fp4-int.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "../base/cpu.h"
#include "../base/error.h"
#include "../base/thread-pool.h"
#include "../quant/element.h"
#include "fp4-int.h"
#include "plan.h"

namespace slip::gemm {

float activation_row_amax(const float *row, int64_t k, int64_t r, bool vec) {
    float amax = 0.0f;
    if (vec) {
        amax = row_amax_avx512(row, k);  // keeps a NaN
    } else {
        // std::max(amax, NaN) is amax, so a NaN would pass unseen: it is looked for on its own.
        bool nan = false;
        for (int64_t i = 0; i < k; ++i) {
            const float a = std::fabs(row[i]);
            amax = std::max(amax, a);
            nan |= std::isnan(a);
        }
        if (nan) amax = NAN;
    }
    if (!std::isfinite(amax))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected finite values for x, got a non-finite value in row %lld",
                    static_cast<long long>(r)));
    return amax;
}

// NVFP4 activations' global scale: the given one, or 448*6/amax(X). The row amaxes run in
// parallel and reject NaN/Inf even when the global scale was given.
static float nvfp4_global(const float *x, int64_t m, int64_t k, float global) {
    const bool vec = isa_active() >= SLIP_ISA_AVX512 && k % 16 == 0;
    std::vector<float> amax(static_cast<size_t>(m));
    parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) amax[r] = activation_row_amax(x + r * k, k, r, vec);
    });
    if (global > 0.0f) return global;
    const float a = m ? *std::max_element(amax.begin(), amax.end()) : 0.0f;
    return a > 0.0f ? 448.0f * 6.0f / a : 1.0f;
}

// FP8 per token: s = amax / max_finite, element = RNE_sat(x / s). out holds the element values
// (exact small floats); scale[r] = s multiplies them back in the epilogue, so sum(a_code * w_code)
// is formed from exact products and only the summation rounds.
void quantize_fp8_rows(const float *x, int64_t m, int64_t k, bool e5m2, float *out, float *scale) {
    const element::Spec &spec = e5m2 ? element::kE5M2 : element::kE4M3;
    parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *row = x + r * k;
            const float s = activation_row_amax(row, k, r) / spec.max;
            scale[r] = s;
            for (int64_t i = 0; i < k; ++i) {
                const float v = s == 0.0f ? 0.0f : element::round_magnitude(std::fabs(row[i] / s), spec, -1.0f);
                out[r * k + i] = std::signbit(row[i]) ? -v : v;
            }
        }
    });
}

// INT8 per token (int8.cpp's W8A8 recipe): s = amax / 127, q = RNE(x / s) clamped to [-127, 127];
// out holds q, exact small floats, and scale[r] = s multiplies them back in the epilogue.
void quantize_i8_rows(const float *x, int64_t m, int64_t k, float *out, float *scale) {
    parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *row = x + r * k;
            const float s = activation_row_amax(row, k, r) / 127.0f;
            scale[r] = s;
            for (int64_t i = 0; i < k; ++i)
                out[r * k + i] = s == 0.0f ? 0.0f : std::min(127.0f, std::max(-127.0f, std::nearbyint(row[i] / s)));
        }
    });
}

void quantize_i8_codes(const float *x, int64_t m, int64_t k, int8_t *q, int32_t *meta, float *scale) {
    parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float s = activation_row_amax(x + r * k, k, r, true) / 127.0f;
            scale[r] = s;
            quantize_i8_codes_row_avx512(x + r * k, k, s, q + r * k, meta + fp4_meta_row(r, k / 16, false));
        }
    });
}

float quantize_nvfp4_codes(const float *x, int64_t m, int64_t k, float global, int8_t *q, int32_t *meta) {
    const float g = nvfp4_global(x, m, k, global);
    parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            quantize_nvfp4_codes_row_avx512(x + r * k, k, g, q + r * k, meta + fp4_meta_row(r, k / 16, true));
    });
    return g;
}

// E2M1 round-to-nearest-even of a magnitude, saturating at 6: the midpoints between the grid
// values {0, .5, 1, 1.5, 2, 3, 4, 6}, each tie going to the even code (0.25 -> 0, 0.75 -> 1,
// 1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4). Equal to element::round_magnitude(a, kE2M1)
// for every finite a >= 0, and much cheaper than its generic frexp/ldexp path (act-avx512.cpp
// is the vector form).
static inline float round_e2m1(float a) {
    float r = a <= 0.25f ? 0.0f : 0.5f;
    r = a >= 0.75f ? 1.0f : r;
    r = a > 1.25f ? 1.5f : r;
    r = a >= 1.75f ? 2.0f : r;
    r = a > 2.5f ? 3.0f : r;
    r = a >= 3.5f ? 4.0f : r;
    r = a > 5.0f ? 6.0f : r;
    return r;
}

// NVFP4 activations (the weight's recipe): global g = given or 448*6/amax(X); per 16 columns
// s = RN_E4M3(amax_16 / 6 * g), element = RNE_sat_E2M1(x * g / s), decoded x' = element * s / g.
void quantize_nvfp4_rows(const float *x, int64_t m, int64_t k, float global, float *out) {
    const float g = nvfp4_global(x, m, k, global);
    const bool vec = isa_active() >= SLIP_ISA_AVX512;
    parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *row = x + r * k;
            if (vec) {
                quantize_nvfp4_row_avx512(row, k, g, out + r * k);
                continue;
            }
            for (int64_t b = 0; b < k; b += 16) {
                float bmax = 0.0f;
                for (int i = 0; i < 16; ++i) bmax = std::max(bmax, std::fabs(row[b + i]));
                const float s = element::round_magnitude(bmax / 6.0f * g, element::kE4M3, -1.0f);
                float *o = out + r * k + b;
                if (s == 0.0f) {
                    for (int i = 0; i < 16; ++i) o[i] = 0.0f;
                    continue;
                }
                for (int i = 0; i < 16; ++i)
                    o[i] = std::copysign(round_e2m1(std::fabs(row[b + i] * g / s)), row[b + i]) * s / g;
            }
        }
    });
}

}  // namespace slip::gemm
