// Dynamic activation quantizers of the emulated formats. Each writes the *decoded* activations
// the product then uses, so the result is the FP32 product of exactly the values a W8A8/W4A4
// engine would multiply.
#include <algorithm>
#include <cmath>

#include "../base/error.h"
#include "../base/thread-pool.h"
#include "../quant/element.h"
#include "plan.h"

namespace slip::gemm {

static float row_amax(const float *row, int64_t k, int64_t r) {
    float amax = 0.0f;
    for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(row[i]));
    if (!std::isfinite(amax))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected finite values for x, got a non-finite value in row %lld",
                    static_cast<long long>(r)));
    return amax;
}

// FP8 per token: s = amax / max_finite, element = RNE_sat(x / s). out holds the element values
// (exact small floats); scale[r] = s multiplies them back in the epilogue, so sum(a_code * w_code)
// is formed from exact products and only the summation rounds.
void quantize_fp8_rows(const float *x, int64_t m, int64_t k, bool e5m2, float *out, float *scale) {
    const element::Spec &spec = e5m2 ? element::kE5M2 : element::kE4M3;
    parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *row = x + r * k;
            const float s = row_amax(row, k, r) / spec.max;
            scale[r] = s;
            for (int64_t i = 0; i < k; ++i) {
                const float v = s == 0.0f ? 0.0f : element::round_magnitude(std::fabs(row[i] / s), spec, -1.0f);
                out[r * k + i] = std::signbit(row[i]) ? -v : v;
            }
        }
    });
}

// NVFP4 activations (the weight's recipe): global g = given or 448*6/amax(X); per 16 columns
// s = RN_E4M3(amax_16 / 6 * g), element = RNE_sat_E2M1(x * g / s), decoded x' = element * s / g.
void quantize_nvfp4_rows(const float *x, int64_t m, int64_t k, float global, float *out) {
    if (!(global > 0.0f)) {
        float amax = 0.0f;
        for (int64_t r = 0; r < m; ++r) amax = std::max(amax, row_amax(x + r * k, k, r));
        global = amax > 0.0f ? 448.0f * 6.0f / amax : 1.0f;
    }
    const float g = global;
    parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *row = x + r * k;
            row_amax(row, k, r);  // rejects NaN/Inf even when the global scale was given
            for (int64_t b = 0; b < k; b += 16) {
                float amax = 0.0f;
                for (int i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(row[b + i]));
                const float s = element::round_magnitude(amax / 6.0f * g, element::kE4M3, -1.0f);
                for (int i = 0; i < 16; ++i) {
                    const float e = s == 0.0f ? 0.0f
                                              : element::round_magnitude(std::fabs(row[b + i] * g / s),
                                                                         element::kE2M1, -1.0f);
                    out[r * k + b + i] = (std::signbit(row[b + i]) ? -e : e) * s / g;
                }
            }
        }
    });
}

}  // namespace slip::gemm
