// MXFP4 per OCP Microscaling Formats v1.0 (papers.md 6.3): 32 elements along K share an E8M0
// scale 2^X with X = floor(log2(amax_32)) - 2 (2 = emax of E2M1), clamped to the E8M0 range
// [-127, 127]; elements are x / 2^X rounded to nearest even and saturated at +-6, so the top
// binade of a block may clip (the spec's choice; kernels that use ceil(log2(amax/6)) avoid it
// at the price of a coarser grid). An all-zero block gets X = -127 (code 0) and codes 0.
// Note: compressed-tensors' own MXFP4 observer rounds amax up when its bfloat16 mantissa is
// >= 0.75 before taking the exponent (mxfp4_utils.round_to_power_2); we follow the OCP rule.
#include <algorithm>
#include <cmath>

#include "base/thread-pool.h"
#include "common.h"
#include "packing.h"

namespace slip::quant {
namespace {

constexpr int64_t kBlock = 32;

int shared_exponent(float amax) {
    if (!(amax > 0.0f)) return -127;
    int ex;
    std::frexp(amax, &ex);  // amax = m * 2^ex, m in [0.5, 1): floor(log2(amax)) = ex - 1, exact
    return std::min(127, std::max(-127, ex - 1 - 2));
}

}  // namespace

void quantize_mxfp4(const Problem &pr, const float *x, const QuantOut &out) {
    const int64_t k = pr.cols, nb = k / kBlock;
    uint8_t *packed = static_cast<uint8_t *>(out.codes);
    uint8_t *scales = static_cast<uint8_t *>(out.scales);
    parallel_for(pr.rows, row_grain(k), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t j = 0; j < nb; ++j) {
                const int64_t c0 = j * kBlock;
                const float *xb = x + r * k + c0;
                const int xp = shared_exponent(amax_finite(xb, kBlock));
                scales[r * nb + j] = static_cast<uint8_t>(xp + 127);
                uint8_t codes[kBlock];
                for (int64_t i = 0; i < kBlock; ++i)  // ldexp by a power of two: exact
                    codes[i] = encode_e2m1(std::ldexp(xb[i], -xp), draw(pr, r * k + c0 + i));
                for (int64_t i = 0; i < kBlock; i += 2)
                    packed[(r * k + c0 + i) / 2] = pack_pair(codes[i], codes[i + 1]);
            }
    });
}

void dequantize_mxfp4(const Problem &pr, const DequantIn &in, float *out) {
    const int64_t k = pr.cols, nb = k / kBlock;
    const uint8_t *packed = static_cast<const uint8_t *>(in.codes);
    const uint8_t *scales = static_cast<const uint8_t *>(in.scales);
    parallel_for(pr.rows, row_grain(k), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t c = 0; c < k; ++c) {
                const float s = element::decode_e8m0(scales[r * nb + c / kBlock]);
                const uint8_t byte = packed[(r * k + c) / 2];
                const uint8_t code = (c & 1) ? byte >> 4 : byte & 0x0F;
                out[r * k + c] = element::decode(code, element::kE2M1) * s;
            }
    });
}

}  // namespace slip::quant
