// Float64 references for the quantization tests. The element formats are rebuilt here by
// enumerating every representable value from its bit fields and searching for the nearest one
// (ties to the even code): a different method from the library's arithmetic rounding.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "slipstream.h"

namespace ref {

// One small-float format: exponent bits, mantissa bits, bias; finite codes are the positive
// codes below `first_special` (E4M3: 0x7F is NaN; E5M2: 0x7C.. are Inf/NaN; E2M1: none).
struct Format {
    int ebits, mbits, bias, first_special;
    int sign_bit() const { return ebits + mbits; }
    double value(int code) const {  // positive code -> magnitude, from the bit fields
        const int e = code >> mbits, m = code & ((1 << mbits) - 1);
        const double frac = static_cast<double>(m) / (1 << mbits);
        return e == 0 ? std::ldexp(frac, 1 - bias) : std::ldexp(1.0 + frac, e - bias);
    }
    double max() const { return value(first_special - 1); }
};

constexpr Format kE4M3{4, 3, 7, 0x7F};
constexpr Format kE5M2{5, 2, 15, 0x7C};
constexpr Format kE2M1{2, 1, 1, 8};

// Round to nearest, ties to the even code, saturating: search the sorted magnitudes.
inline int encode(double x, const Format &f) {
    const int sign = std::signbit(x) ? 1 << f.sign_bit() : 0;
    const double a = std::fmin(std::fabs(x), f.max());  // satfinite: beyond the max is the max
    int best = 0;
    for (int c = 1; c < f.first_special; ++c) {
        const double dc = std::fabs(f.value(c) - a), db = std::fabs(f.value(best) - a);
        if (dc < db || (dc == db && (c & 1) == 0)) best = c;
    }
    return sign | best;
}

inline double decode(int code, const Format &f) {
    const double v = f.value(code & ((1 << f.sign_bit()) - 1));
    return (code >> f.sign_bit()) & 1 ? -v : v;
}

// Correctly rounded float32 result of a double computed exactly or from float operands: the
// library's float32 divisions and products are emulated as f32(a / b), f32(a * b).
inline float f32(double v) { return static_cast<float>(v); }

// Gaussian data with heavy outliers (1% scaled by 2^6..2^10), some exact zeros and one
// all-zero 32-column stretch, so that blocks with tiny and zero amax occur.
inline std::vector<float> outlier_data(int64_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uni(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n));
    for (auto &v : x) {
        v = normal(rng);
        const float r = uni(rng);
        if (r < 0.01f) v *= std::ldexp(1.0f, 6 + static_cast<int>(uni(rng) * 5));
        else if (r < 0.02f) v = 0.0f;
    }
    for (int64_t i = 32; i < 64 && i < n; ++i) x[i] = 0.0f;
    return x;
}

inline slip_tensor tensor(void *data, slip_dtype dtype, std::vector<int64_t> shape) {
    slip_tensor t;
    slip_tensor_init(&t, data, dtype, static_cast<int32_t>(shape.size()), shape.data());
    return t;
}

}  // namespace ref
