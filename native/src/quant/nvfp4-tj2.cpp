// NVFP4_TJ2: TetraJet-v2's double-block NVFP4 (papers.md 2.1). The per-tensor global scale is
// replaced by an FP32 "outer" scale per 128 contiguous columns, so one outlier only coarsens
// its own 128-block. Order of float32 operations (the reference kernel's, written out):
//   S_o  = amax_128 / 2688.0f                       outer scale, stored in the global tensor
//   S_i  = RN_E4M3(amax_16 / (S_o * 6.0f))           inner scale, E4M3 (saturating)
//   S_i  = S_i == 0 ? 2^-9 : S_i                     guard: the smallest E4M3 subnormal
//   q    = S_o * S_i                                 float32
//   code = RNE_sat_E2M1(x / q)                       x / q; q == 0 (an all-zero 128-block,
//                                                    S_o = 0) gives code 0
//   x'   = code * q
#include <cmath>

#include "base/thread-pool.h"
#include "common.h"
#include "packing.h"

namespace slip::quant {
namespace {

constexpr int64_t kInner = 16;
constexpr int64_t kOuter = 128;
constexpr float kInnerGuard = 0x1p-9f;

}  // namespace

void quantize_nvfp4_tj2(const Problem &pr, const float *x, const QuantOut &out) {
    const int64_t k = pr.cols, no = k / kOuter, ni = k / kInner;
    uint8_t *packed = static_cast<uint8_t *>(out.codes);
    uint8_t *scales = static_cast<uint8_t *>(out.scales);
    parallel_for(pr.rows, row_grain(k), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t o = 0; o < no; ++o) {
                const float *xo = x + r * k + o * kOuter;
                const float so = amax_finite(xo, kOuter) / 2688.0f;
                out.global[r * no + o] = so;
                for (int64_t j = o * (kOuter / kInner); j < (o + 1) * (kOuter / kInner); ++j) {
                    const int64_t c0 = j * kInner;
                    const float *xb = x + r * k + c0;
                    float si = so > 0.0f ? round_e4m3(amax_finite(xb, kInner) / (so * 6.0f)) : 0.0f;
                    if (si == 0.0f) si = kInnerGuard;
                    scales[r * ni + j] = element::encode(si, element::kE4M3);
                    const float q = so * si;
                    uint8_t codes[kInner];
                    for (int64_t i = 0; i < kInner; ++i)
                        codes[i] = q == 0.0f ? 0 : encode_e2m1(xb[i] / q, draw(pr, r * k + c0 + i));
                    for (int64_t i = 0; i < kInner; i += 2)
                        packed[(r * k + c0 + i) / 2] = pack_pair(codes[i], codes[i + 1]);
                }
            }
    });
}

void dequantize_nvfp4_tj2(const Problem &pr, const DequantIn &in, float *out) {
    const int64_t k = pr.cols, no = k / kOuter, ni = k / kInner;
    const uint8_t *packed = static_cast<const uint8_t *>(in.codes);
    const uint8_t *scales = static_cast<const uint8_t *>(in.scales);
    parallel_for(pr.rows, row_grain(k), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t c = 0; c < k; ++c) {
                const float so = in.global[r * no + c / kOuter];
                const float q = so * element::decode(scales[r * ni + c / kInner], element::kE4M3);
                const uint8_t byte = packed[(r * k + c) / 2];
                const uint8_t code = (c & 1) ? byte >> 4 : byte & 0x0F;
                out[r * k + c] = element::decode(code, element::kE2M1) * q;
            }
    });
}

}  // namespace slip::quant
