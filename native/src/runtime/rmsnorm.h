// RMSNorm over the last dimension, as torch.nn.RMSNorm with an affine weight:
// y = x / sqrt(mean(x^2) + eps) * weight. Wan applies it to q and k over the full projected
// width (all heads together), not per head. The mean square is accumulated in float64.
#pragma once

#include <cstdint>

namespace slip::runtime {

// x, y: [rows, dim] (y may alias x); weight: [dim]. Threaded.
void rms_norm(const float *x, float *y, int64_t rows, int64_t dim, float eps, const float *weight);

}  // namespace slip::runtime
