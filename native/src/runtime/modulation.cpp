#include "modulation.h"

#include "../base/thread-pool.h"

namespace slip::runtime {

void modulate(const float *x, float *y, int64_t batch, int64_t tokens, int64_t dim,
              const float *shift, const float *scale, int64_t vec_stride) {
    parallel_for(batch * tokens, 32, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t b = r / tokens;
            const float *sh = shift + b * vec_stride, *sc = scale + b * vec_stride;
            const float *xr = x + r * dim;
            float *yr = y + r * dim;
            for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * (1.0f + sc[i]) + sh[i];
        }
    });
}

void gated_residual(float *x, const float *y, int64_t batch, int64_t tokens, int64_t dim,
                    const float *gate, int64_t vec_stride) {
    parallel_for(batch * tokens, 32, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            float *xr = x + r * dim;
            const float *yr = y + r * dim;
            if (!gate) {
                for (int64_t i = 0; i < dim; ++i) xr[i] += yr[i];
                continue;
            }
            const float *g = gate + (r / tokens) * vec_stride;
            for (int64_t i = 0; i < dim; ++i) xr[i] += g[i] * yr[i];
        }
    });
}

}  // namespace slip::runtime
