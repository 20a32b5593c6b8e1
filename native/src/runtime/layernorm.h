// LayerNorm over the last dimension, as torch.nn.LayerNorm: y = (x - mean) / sqrt(var + eps)
// (biased variance) times weight plus bias when given. Mean and variance are accumulated in
// float64, two passes, so the result is the correctly rounded FP32 normalisation for any width.
#pragma once

#include <cstdint>

namespace slip::runtime {

// x, y: [rows, dim] (y may alias x); weight, bias: [dim] or nullptr (no affine). Threaded.
void layer_norm(const float *x, float *y, int64_t rows, int64_t dim, float eps,
                const float *weight, const float *bias);

}  // namespace slip::runtime
