#include "rope.h"

#include <cmath>

#include "../base/thread-pool.h"

namespace slip::runtime {

RopeTable rope_table(const int64_t grid[3], int64_t head_dim, double theta) {
    RopeTable t;
    t.tokens = grid[0] * grid[1] * grid[2];
    t.pairs = head_dim / 2;
    t.cos.resize(static_cast<size_t>(t.tokens * t.pairs));
    t.sin.resize(t.cos.size());
    const int64_t d6 = head_dim / 6;
    const int64_t axis_dim[3] = {head_dim - 4 * d6, 2 * d6, 2 * d6};
    std::vector<double> omega;
    std::vector<int> axis_of;
    for (int a = 0; a < 3; ++a)
        for (int64_t j = 0; j < axis_dim[a] / 2; ++j) {
            omega.push_back(1.0 / std::pow(theta, static_cast<double>(2 * j) / axis_dim[a]));
            axis_of.push_back(a);
        }
    for (int64_t l = 0; l < t.tokens; ++l) {
        const int64_t pos[3] = {l / (grid[1] * grid[2]), (l / grid[2]) % grid[1], l % grid[2]};
        for (int64_t j = 0; j < t.pairs; ++j) {
            const double ang = static_cast<double>(pos[axis_of[j]]) * omega[j];
            t.cos[l * t.pairs + j] = static_cast<float>(std::cos(ang));
            t.sin[l * t.pairs + j] = static_cast<float>(std::sin(ang));
        }
    }
    return t;
}

void rope_apply(float *x, int64_t batch, int64_t heads, const RopeTable &t) {
    const int64_t hd = 2 * t.pairs;
    parallel_for(batch * t.tokens, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t l = r % t.tokens;
            const float *c = t.cos.data() + l * t.pairs, *s = t.sin.data() + l * t.pairs;
            for (int64_t h = 0; h < heads; ++h) {
                float *v = x + (r * heads + h) * hd;
                for (int64_t j = 0; j < t.pairs; ++j) {
                    const float x0 = v[2 * j], x1 = v[2 * j + 1];
                    v[2 * j] = x0 * c[j] - x1 * s[j];
                    v[2 * j + 1] = x0 * s[j] + x1 * c[j];
                }
            }
        }
    });
}

}  // namespace slip::runtime
