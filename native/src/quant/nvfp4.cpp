// NVFP4 as compressed-tensors writes it and vLLM reads it (vllm.md 1.3; papers.md 6.3):
// 16-element blocks along K with an E4M3 scale, plus one float32 global scale g stored "as a
// divisor" (g = 448*6 / amax(x), large).
//
// Bit-exactness with CT depends on the order of the float32 operations, so here they are, as
// CT's calculate_qparams / generate_gparam / _quantize / _dequantize perform them on float32:
//   g    = 2688.0f / max(amax(x), FLT_MIN)        (or params.global_scale when > 0)
//   s    = RN_E4M3(g * (amax_16 / 6.0f))          two float32 roundings, then E4M3 (saturating)
//   s    = s == 0 ? 0.125f : s                     CT's zero-scale placeholder (common.h)
//   eff  = s / g                                   float32 division
//   code = RNE_sat_E2M1(x / eff)                   float32 division, then E2M1
//   x'   = code * eff                              decode multiplies by the same eff
// One documented departure: CT's CPU/Triton cast_to_fp4 first rounds the quotient to bfloat16,
// which moves values within 2^-9 (relative) of an E2M1 midpoint onto the midpoint. We round the
// float32 quotient directly, as the hardware does (cvt.rn.satfinite.e2m1x2.f32) and as vLLM's
// kernels do.
// When 2688/amax is not finite (an all-zero tensor, or amax below ~8e-36) g = 1: every block
// scale then rounds to zero and every code is 0.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "base/thread-pool.h"
#include "common.h"
#include "packing.h"

namespace slip::quant {
namespace {

constexpr int64_t kBlock = 16;

float global_scale(const Problem &pr, const float *x) {
    if (pr.p.global_scale > 0.0f) return pr.p.global_scale;
    std::vector<float> row_amax(static_cast<size_t>(pr.rows), 0.0f);
    parallel_for(pr.rows, row_grain(pr.cols), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) row_amax[r] = amax_finite(x + r * pr.cols, pr.cols);
    });
    float amax = 0.0f;
    for (float a : row_amax) amax = std::max(amax, a);
    const float g = 2688.0f / std::max(amax, FLT_MIN);
    return std::isfinite(g) ? g : 1.0f;
}

// The scale of one block under SLIP_QUANT_MSE_SCALES: the amax/6 scale s0 and the next 6 E4M3
// values below it (down to about s0 / 2, where the largest value would clip at ~3 steps), each
// tried with round-to-nearest codes; the least squared error wins, ties to the larger scale.
float mse_scale(const float *xb, float g, float s0) {
    float best = s0, best_err = INFINITY;
    uint8_t code = element::encode(s0, element::kE4M3);
    for (int c = 0; c <= 6 && code > 0; ++c, --code) {
        const float s = element::decode(code, element::kE4M3);
        if (!(s > 0.0f)) break;
        const float eff = s / g;
        float err = 0.0f;
        for (int64_t i = 0; i < kBlock; ++i) {
            const float q = element::decode(encode_e2m1(xb[i] / eff, -1.0f), element::kE2M1) * eff;
            err += (q - xb[i]) * (q - xb[i]);
        }
        if (err < best_err) {
            best_err = err;
            best = s;
        }
    }
    return best;
}

}  // namespace

void quantize_nvfp4(const Problem &pr, const float *x, const QuantOut &out) {
    const int64_t k = pr.cols, nb = k / kBlock;
    const float g = global_scale(pr, x);
    const bool mse = (pr.p.flags & SLIP_QUANT_MSE_SCALES) != 0;
    out.global[0] = g;
    uint8_t *packed = static_cast<uint8_t *>(out.codes);
    uint8_t *scales = static_cast<uint8_t *>(out.scales);
    parallel_for(pr.rows, row_grain(k), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t j = 0; j < nb; ++j) {
                const int64_t c0 = j * kBlock;
                const float *xb = x + r * k + c0;
                float s = round_e4m3(g * (amax_finite(xb, kBlock) / 6.0f));
                if (s == 0.0f) s = kZeroScaleE4M3;
                else if (mse) s = mse_scale(xb, g, s);
                scales[r * nb + j] = element::encode(s, element::kE4M3);
                const float eff = s / g;
                uint8_t codes[kBlock];
                for (int64_t i = 0; i < kBlock; ++i)
                    codes[i] = encode_e2m1(xb[i] / eff, draw(pr, r * k + c0 + i));
                for (int64_t i = 0; i < kBlock; i += 2)
                    packed[(r * k + c0 + i) / 2] = pack_pair(codes[i], codes[i + 1]);
            }
    });
}

void dequantize_nvfp4(const Problem &pr, const DequantIn &in, float *out) {
    const int64_t k = pr.cols, nb = k / kBlock;
    const float g = in.global[0];
    const uint8_t *packed = static_cast<const uint8_t *>(in.codes);
    const uint8_t *scales = static_cast<const uint8_t *>(in.scales);
    parallel_for(pr.rows, row_grain(k), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t j = 0; j < nb; ++j) {
                const float eff = element::decode(scales[r * nb + j], element::kE4M3) / g;
                for (int64_t i = 0; i < kBlock; ++i) {
                    const int64_t c = j * kBlock + i;
                    const uint8_t byte = packed[(r * k + c) / 2];
                    const uint8_t code = (c & 1) ? byte >> 4 : byte & 0x0F;
                    out[r * k + c] = element::decode(code, element::kE2M1) * eff;
                }
            }
    });
}

}  // namespace slip::quant
