// INT4 weights as compressed-tensors' W4A16 stores them (vllm.md 1.3, "pack-quantized"):
// symmetric, one float32 scale per `group_size` columns of a row, scale = amax / 7 (or amax / 7.5
// with SLIP_QUANT_FULL_INT_RANGE, compressed-tensors' own observer), code = round(x / scale)
// clamped to the int4 range [-8, 7], packed with the CT int32 layout. With amax / 7 the code -8 is
// never produced; it stays legal on decode.
#include <algorithm>
#include <cmath>
#include <vector>

#include "base/thread-pool.h"
#include "common.h"
#include "packing.h"

namespace slip::quant {

void quantize_int4(const Problem &pr, const float *x, const QuantOut &out) {
    const int64_t k = pr.cols, gs = pr.p.group_size, ng = k / gs, nw = ct_words(k, 4);
    float *scales = static_cast<float *>(out.scales);
    int32_t *words = static_cast<int32_t *>(out.codes);
    const float divisor = (pr.p.flags & SLIP_QUANT_FULL_INT_RANGE) ? 7.5f : 7.0f;
    parallel_for(pr.rows, row_grain(k), [&](int64_t b, int64_t e) {
        std::vector<int8_t> codes(static_cast<size_t>(k));
        for (int64_t r = b; r < e; ++r) {
            const float *xr = x + r * k;
            for (int64_t j = 0; j < ng; ++j) {
                const float amax = amax_finite(xr + j * gs, gs);
                const float s = amax > 0.0f ? amax / divisor : kZeroScaleF32;
                scales[r * ng + j] = s;
                for (int64_t c = j * gs; c < (j + 1) * gs; ++c) {
                    const float t = xr[c] / s;  // one float32 division, as CT computes it
                    const float u = draw(pr, r * k + c);
                    double q = std::isnan(t) ? 0.0
                               : u < 0.0f   ? std::rint(static_cast<double>(t))
                                            : std::floor(static_cast<double>(t) + u);
                    codes[c] = static_cast<int8_t>(std::min(7.0, std::max(-8.0, q)));
                }
            }
            ct_pack_row(codes.data(), words + r * nw, k, 4);
        }
    });
}

void dequantize_int4(const Problem &pr, const DequantIn &in, float *out) {
    const int64_t k = pr.cols, gs = pr.p.group_size, ng = k / gs, nw = ct_words(k, 4);
    const float *scales = static_cast<const float *>(in.scales);
    const int32_t *words = static_cast<const int32_t *>(in.codes);
    parallel_for(pr.rows, row_grain(k), [&](int64_t b, int64_t e) {
        std::vector<int8_t> codes(static_cast<size_t>(k));
        for (int64_t r = b; r < e; ++r) {
            ct_unpack_row(words + r * nw, codes.data(), k, 4);
            for (int64_t c = 0; c < k; ++c)
                out[r * k + c] = static_cast<float>(codes[c]) * scales[r * ng + c / gs];
        }
    });
}

}  // namespace slip::quant
