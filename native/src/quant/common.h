// Internals shared by the per-format quantizers. The ABI layer (api.cpp) validates every
// pointer, dtype and shape before any of these run, so kernels trust their arguments.
#pragma once

#include <cmath>
#include <cstdint>

#include "element.h"
#include "rng.h"
#include "slipstream.h"

namespace slip::quant {

// A validated request: x viewed as [rows, cols], cols = K.
struct Problem {
    slip_quant_params p;
    int64_t rows;
    int64_t cols;
    bool stochastic() const { return p.rounding == SLIP_ROUND_STOCHASTIC; }
    bool allow_nonfinite() const { return (p.flags & SLIP_QUANT_ALLOW_NONFINITE) != 0; }
};

struct QuantOut {
    void *codes;
    void *scales;
    float *global;  // NVFP4 formats only; null otherwise
};

struct DequantIn {
    const void *codes;
    const void *scales;
    const float *global;
};

// Where the scales of INT8/FP8 sit: element (r, c) uses scale
// (r / height) * per_row + c / width. One rule covers all four granularities:
//   TENSOR {K, rows, 1}, ROW {K, 1, 1}, GROUP {g, 1, K/g}, BLOCK {bc, br, ceil(K/bc)}.
struct ScaleGrid {
    int64_t width;   // columns per scale
    int64_t height;  // rows per scale
    int64_t per_row; // scales along K
    int64_t row_groups;
    int64_t index(int64_t r, int64_t c) const { return (r / height) * per_row + c / width; }
};
ScaleGrid scale_grid(const Problem &pr);  // defined in scaled.cpp

// compressed-tensors replaces a zero scale (an all-zero group) by a small placeholder so that
// x / scale stays finite (quantization/utils/helpers.py, calculate_qparams step 5: float32
// eps for float scales, 0.125 for E4M3 scales). We store the same placeholders: the codes of
// such a group are 0 either way, and checkpoints then match CT byte for byte.
constexpr float kZeroScaleF32 = 1.1920928955078125e-07f;  // FLT_EPSILON
constexpr float kZeroScaleE4M3 = 0.125f;

// Rows per parallel_for chunk: about 16K elements, enough to amortize a task hand-off.
inline int64_t row_grain(int64_t cols) { return cols >= 16384 ? 1 : 16384 / (cols > 0 ? cols : 1); }

// Largest finite |x| over n values. Non-finite values are skipped: the ABI layer has already
// refused them unless SLIP_QUANT_ALLOW_NONFINITE asks for exactly this exclusion.
inline float amax_finite(const float *x, int64_t n) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
        const float a = std::fabs(x[i]);
        if (a > m && a <= 3.4028234663852886e38f) m = a;
    }
    return m;
}

// The stochastic-rounding draw of element `index` (its flat position in x), or -1 for
// round-to-nearest-even, matching element::round_magnitude's convention.
inline float draw(const Problem &pr, int64_t index) {
    return pr.stochastic() ? uniform01(pr.p.seed, static_cast<uint64_t>(index)) : -1.0f;
}

// E2M1 code of an already scaled value: NaN (only reachable with ALLOW_NONFINITE) becomes 0,
// since E2M1 has no NaN; everything else rounds and saturates at +-6.
inline uint8_t encode_e2m1(float v, float u) {
    return std::isnan(v) ? 0 : element::encode(v, element::kE2M1, u);
}

// E4M3 value of a positive scale, rounded to nearest even and saturated at 448 (scales are
// never rounded stochastically: only elements are).
inline float round_e4m3(float s) { return element::decode(element::encode(s, element::kE4M3), element::kE4M3); }

// The per-format kernels. Each is called once per request, threads over rows itself.
void quantize_scaled(const Problem &pr, const float *x, const QuantOut &out);    // INT8, FP8
void dequantize_scaled(const Problem &pr, const DequantIn &in, float *out);
void quantize_int4(const Problem &pr, const float *x, const QuantOut &out);
void dequantize_int4(const Problem &pr, const DequantIn &in, float *out);
void quantize_nvfp4(const Problem &pr, const float *x, const QuantOut &out);
void dequantize_nvfp4(const Problem &pr, const DequantIn &in, float *out);
void quantize_nvfp4_tj2(const Problem &pr, const float *x, const QuantOut &out);
void dequantize_nvfp4_tj2(const Problem &pr, const DequantIn &in, float *out);
void quantize_mxfp4(const Problem &pr, const float *x, const QuantOut &out);
void dequantize_mxfp4(const Problem &pr, const DequantIn &in, float *out);

}  // namespace slip::quant
