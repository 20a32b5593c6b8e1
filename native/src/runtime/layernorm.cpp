#include "layernorm.h"

#include <cmath>

#include "../base/thread-pool.h"
#include "lanes.h"

namespace slip::runtime {

void layer_norm(const float *x, float *y, int64_t rows, int64_t dim, float eps,
                const float *weight, const float *bias) {
    parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *xr = x + r * dim;
            float *yr = y + r * dim;
            const float m = static_cast<float>(lane_sum(dim, [&](int64_t i) { return xr[i]; }) / static_cast<double>(dim));
            const double sq = lane_sum(dim, [&](int64_t i) { return (xr[i] - m) * (xr[i] - m); });
            const float s = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(dim) + eps));
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
