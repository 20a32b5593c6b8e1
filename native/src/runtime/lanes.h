// Row reductions the compiler can vectorize: 16 independent float partial sums (one per SIMD lane,
// so no reassociation is needed), combined in double at the end. For the rows the runtime
// normalizes (dim <= a few thousand) each lane sums at most a few hundred terms.
#pragma once

#include <cstdint>

namespace slip::runtime {

template <class F>
inline double lane_sum(int64_t n, F term) {
    float lane[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; ++l) lane[l] += term(i + l);
    double s = 0.0;
    for (; i < n; ++i) s += term(i);
    for (float v : lane) s += v;
    return s;
}

}  // namespace slip::runtime
