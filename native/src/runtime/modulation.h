// adaLN modulation of the DiT (DiT, Peebles & Xie 2023; Wan2.1): per-sample shift, scale and
// gate vectors applied to token rows. Samples hold `tokens` consecutive rows of width dim; the
// vectors of sample b start at b * vec_stride (so the (shift, scale, gate) chunks of one
// [B, 6, dim] table are read in place).
#pragma once

#include <cstdint>

namespace slip::runtime {

// y = x * (1 + scale) + shift, rows of [batch * tokens, dim]; y may alias x.
void modulate(const float *x, float *y, int64_t batch, int64_t tokens, int64_t dim,
              const float *shift, const float *scale, int64_t vec_stride);
// x += gate * y (gate nullptr: x += y), the gated residual.
void gated_residual(float *x, const float *y, int64_t batch, int64_t tokens, int64_t dim,
                    const float *gate, int64_t vec_stride);

}  // namespace slip::runtime
