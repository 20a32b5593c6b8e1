// Pointwise activations of the DiT, in place over n floats, threaded.
#pragma once

#include <cstdint>

namespace slip::runtime {

// GELU, tanh approximation (torch's approximate="tanh"):
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Wan's FFN and text embedding use it.
void gelu_tanh(float *x, int64_t n);
// SiLU: x / (1 + exp(-x)). Wan's time embedding and time projection.
void silu(float *x, int64_t n);

}  // namespace slip::runtime
