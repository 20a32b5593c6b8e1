#include "rmsnorm.h"

#include <cmath>

#include "../base/thread-pool.h"
#include "lanes.h"

namespace slip::runtime {

void rms_norm(const float *x, float *y, int64_t rows, int64_t dim, float eps, const float *weight) {
    parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *xr = x + r * dim;
            float *yr = y + r * dim;
            const double sq = lane_sum(dim, [&](int64_t i) { return xr[i] * xr[i]; });
            const float s = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(dim) + eps));
            for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * s * weight[i];
        }
    });
}

}  // namespace slip::runtime
