// INT8 and FP8 (E4M3, E5M2) with one float32 scale per tensor, row, group or block:
// symmetric, scale = amax / qmax, code = round(x / scale), decode = code * scale.
// qmax: INT8 127 (codes clamped to [-127, 127], the symmetric range vLLM's per-token int8
// kernels use; with SLIP_QUANT_FULL_INT_RANGE 127.5 and [-128, 127], compressed-tensors' weight
// convention), E4M3 448, E5M2 57344 (the formats' largest finite values).
#include <algorithm>
#include <cmath>
#include <vector>

#include "base/thread-pool.h"
#include "common.h"

namespace slip::quant {
namespace {

float qmax_of(int format, bool full_range) {
    switch (format) {
        case SLIP_FORMAT_INT8: return full_range ? 127.5f : 127.0f;
        case SLIP_FORMAT_FP8_E4M3: return 448.0f;
        default: return 57344.0f;  // FP8_E5M2
    }
}

const element::Spec &fp8_spec(int format) {
    return format == SLIP_FORMAT_FP8_E4M3 ? element::kE4M3 : element::kE5M2;
}

// Round-to-nearest-even (rint under the default FE mode) or floor(t + u), then clamp. NaN
// (only with ALLOW_NONFINITE) becomes 0: an integer code has no NaN.
int8_t int8_code(float t, float u, bool full_range) {
    if (std::isnan(t)) return 0;
    // Double keeps all 24 bits of u next to |t| <= 127 (float32 would drop ~7 of them).
    double r = u < 0.0f ? std::rint(static_cast<double>(t)) : std::floor(static_cast<double>(t) + u);
    r = std::min(127.0, std::max(full_range ? -128.0 : -127.0, r));
    return static_cast<int8_t>(r);
}

}  // namespace

ScaleGrid scale_grid(const Problem &pr) {
    const int64_t rows = pr.rows, k = pr.cols;
    switch (pr.p.granularity) {
        case SLIP_GRANULARITY_TENSOR: return {std::max<int64_t>(k, 1), std::max<int64_t>(rows, 1), 1, 1};
        case SLIP_GRANULARITY_ROW: return {std::max<int64_t>(k, 1), 1, 1, rows};
        case SLIP_GRANULARITY_GROUP: return {pr.p.group_size, 1, k / pr.p.group_size, rows};
        default: {  // BLOCK
            const int64_t br = pr.p.block_rows, bc = pr.p.block_cols;
            return {bc, br, (k + bc - 1) / bc, (rows + br - 1) / br};
        }
    }
}

void quantize_scaled(const Problem &pr, const float *x, const QuantOut &out) {
    const int64_t rows = pr.rows, k = pr.cols;
    const ScaleGrid g = scale_grid(pr);
    const bool full_range = (pr.p.flags & SLIP_QUANT_FULL_INT_RANGE) != 0;
    const float qmax = qmax_of(pr.p.format, full_range);
    float *scales = static_cast<float *>(out.scales);

    // Pass 1: amax of each (row, column part), then the max over each scale's rows.
    std::vector<float> part(static_cast<size_t>(rows * g.per_row), 0.0f);
    parallel_for(rows, row_grain(k), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t j = 0; j < g.per_row; ++j) {
                const int64_t c0 = j * g.width, c1 = std::min(k, c0 + g.width);
                part[r * g.per_row + j] = amax_finite(x + r * k + c0, c1 - c0);
            }
    });
    const int64_t nscales = g.row_groups * g.per_row;
    std::fill(scales, scales + nscales, 0.0f);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < g.per_row; ++j) {
            float &s = scales[(r / g.height) * g.per_row + j];
            s = std::max(s, part[r * g.per_row + j]);
        }
    for (int64_t i = 0; i < nscales; ++i)
        scales[i] = scales[i] > 0.0f ? scales[i] / qmax : kZeroScaleF32;

    // Pass 2: codes. t = x / scale is one float32 division, as compressed-tensors computes it.
    parallel_for(rows, row_grain(k), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const float *xr = x + r * k;
            for (int64_t c = 0; c < k; ++c) {
                const float t = xr[c] / scales[g.index(r, c)];
                const float u = draw(pr, r * k + c);
                if (pr.p.format == SLIP_FORMAT_INT8)
                    static_cast<int8_t *>(out.codes)[r * k + c] = int8_code(t, u, full_range);
                else
                    static_cast<uint8_t *>(out.codes)[r * k + c] =
                        element::encode(t, fp8_spec(pr.p.format), u);
            }
        }
    });
}

void dequantize_scaled(const Problem &pr, const DequantIn &in, float *out) {
    const int64_t k = pr.cols;
    const ScaleGrid g = scale_grid(pr);
    const float *scales = static_cast<const float *>(in.scales);
    parallel_for(pr.rows, row_grain(k), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t c = 0; c < k; ++c) {
                const int64_t i = r * k + c;
                const float v = pr.p.format == SLIP_FORMAT_INT8
                                    ? static_cast<float>(static_cast<const int8_t *>(in.codes)[i])
                                    : element::decode(static_cast<const uint8_t *>(in.codes)[i],
                                                      fp8_spec(pr.p.format));
                out[i] = v * scales[g.index(r, c)];
            }
    });
}

}  // namespace slip::quant
