// Scalar small-float codecs (E4M3FN, E5M2, E2M1, E8M0): the exact numerics every other kernel
// (vectorized, CUDA) must reproduce. Rounding is done in float arithmetic on a power-of-two
// quantum, so x/q is exact and rint() under the default FE mode is round-half-to-even.
#pragma once

#include <cmath>
#include <cstdint>

namespace slip::element {

struct Spec {
    int mbits;       // explicit mantissa bits
    int emin;        // exponent of the smallest normal (1 - bias)
    int bias;
    float max;       // largest finite magnitude
    uint8_t nan;     // the NaN code (positive); 0 when the format has none
};

constexpr Spec kE4M3{3, -6, 7, 448.0f, 0x7F};
constexpr Spec kE5M2{2, -14, 15, 57344.0f, 0x7E};
constexpr Spec kE2M1{1, 0, 1, 6.0f, 0};

// Rounds |a| (finite, >= 0) onto the format's grid. `u` in [0, 1) is the stochastic-rounding
// draw; u < 0 selects round-to-nearest-even. Saturates to spec.max.
inline float round_magnitude(float a, const Spec &s, float u) {
    if (a == 0.0f) return 0.0f;
    int ex;
    std::frexp(a, &ex);  // a = m * 2^ex, m in [0.5, 1)
    int e = ex - 1;
    if (e < s.emin) e = s.emin;
    const float q = std::ldexp(1.0f, e - s.mbits);  // spacing of the grid in a's binade
    const float t = a / q;                          // exact: q is a power of two
    const float r = (u < 0.0f ? std::rint(t) : std::floor(t + u)) * q;
    return r > s.max ? s.max : r;
}

// Code of an exactly representable magnitude r (0 <= r <= max), without the sign bit.
inline uint8_t magnitude_code(float r, const Spec &s) {
    if (r == 0.0f) return 0;
    int ex;
    std::frexp(r, &ex);
    const int e = ex - 1;
    if (e < s.emin) {  // subnormal: exponent field 0
        return static_cast<uint8_t>(std::ldexp(r, s.mbits - s.emin));
    }
    const int mant = static_cast<int>(std::ldexp(r, s.mbits - e)) - (1 << s.mbits);
    return static_cast<uint8_t>(((e + s.bias) << s.mbits) | mant);
}

inline int sign_shift(const Spec &s) { return s.mbits + (s.bias == 1 ? 2 : s.bias == 7 ? 4 : 5); }

// Encode one value. NaN gives the NaN code (0 for E2M1, which has none: callers reject NaN
// first). +-Inf saturates to +-max (the "satfinite" conversion).
inline uint8_t encode(float x, const Spec &s, float u = -1.0f) {
    const uint8_t sign = std::signbit(x) ? static_cast<uint8_t>(1u << sign_shift(s)) : 0;
    if (std::isnan(x)) return s.nan ? static_cast<uint8_t>(sign | s.nan) : 0;
    const float a = std::isinf(x) ? s.max : std::fabs(x);
    return static_cast<uint8_t>(sign | magnitude_code(round_magnitude(a, s, u), s));
}

inline float decode(uint8_t code, const Spec &s) {
    const int sbit = sign_shift(s);
    const int ebits = sbit - s.mbits;
    const bool neg = (code >> sbit) & 1;
    const int efield = (code >> s.mbits) & ((1 << ebits) - 1);
    const int mant = code & ((1 << s.mbits) - 1);
    const uint8_t mag = code & static_cast<uint8_t>((1u << sbit) - 1);
    float v;
    if (s.nan && (mag == s.nan || (s.bias == 15 && efield == 31 && mant != 0))) {
        v = NAN;
    } else if (s.bias == 15 && efield == 31) {
        v = INFINITY;  // E5M2 keeps IEEE infinities
    } else if (efield == 0) {
        v = std::ldexp(static_cast<float>(mant), s.emin - s.mbits);
    } else {
        v = std::ldexp(static_cast<float>((1 << s.mbits) | mant), efield - s.bias - s.mbits);
    }
    return neg ? -v : v;
}

// E8M0 (MX scales): value 2^(code - 127); 0xFF is NaN.
inline float decode_e8m0(uint8_t code) {
    return code == 0xFF ? NAN : std::ldexp(1.0f, static_cast<int>(code) - 127);
}
// Largest power of two <= x (x > 0, finite), clamped to the code range [2^-127, 2^127].
inline uint8_t encode_e8m0_floor(float x) {
    if (std::isnan(x)) return 0xFF;
    if (!(x > 0.0f)) return 0;
    if (std::isinf(x)) return 254;  // frexp(inf) leaves the exponent unspecified: saturate
    int ex;
    std::frexp(x, &ex);
    int e = ex - 1;
    if (e < -127) e = -127;
    if (e > 127) e = 127;
    return static_cast<uint8_t>(e + 127);
}

}  // namespace slip::element
