#include "layernorm.h"

#include <cmath>

#include "../base/thread-pool.h"

namespace slip::runtime {

void layer_norm(const float *x, float *y, int64_t rows, int64_t dim, float eps,
                const float *weight, const float *bias) {
    parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *xr = x + r * dim;
            float *yr = y + r * dim;
            double sum = 0.0;
            for (int64_t i = 0; i < dim; ++i) sum += xr[i];
            const double mean = sum / static_cast<double>(dim);
            double sq = 0.0;
            for (int64_t i = 0; i < dim; ++i) {
                const double d = xr[i] - mean;
                sq += d * d;
            }
            const double inv = 1.0 / std::sqrt(sq / static_cast<double>(dim) + eps);
            const float m = static_cast<float>(mean), s = static_cast<float>(inv);
            for (int64_t i = 0; i < dim; ++i) {
                float v = (xr[i] - m) * s;
                if (weight) v *= weight[i];
                if (bias) v += bias[i];
                yr[i] = v;
            }
        }
    });
}

}  // namespace slip::runtime
