// Dividing many values by one scale (a row's, a channel's) on the device, rounded as x / s is.
#pragma once

namespace slip::cuda {

// The quotient comes out rounded to nearest as x / s does, in four instructions instead of a
// division's ten with its range check: q = x * r from r = 1/s rounded to nearest is within an ulp
// of the quotient, and one residual (exact by FMA) and one correction give the rounded quotient
// (Markstein's theorem). So quantized codes are those of a division (the CPU reference's). A
// subnormal s has no finite reciprocal: x and s are then both scaled by 2^64 first (exact).
struct Divisor {
    float k, s, r;  // prescale, s * k, 1 / (s * k) (0 when s is 0: every x it divides is 0 then)
};

__device__ inline Divisor divisor(float s) {
    const float k = s < 1.17549435e-38f ? 18446744073709551616.0f : 1.0f;
    const float sk = s * k;
    return {k, sk, sk > 0.0f ? 1.0f / sk : 0.0f};
}

__device__ inline float quotient(float x, const Divisor &d) {
    const float xk = x * d.k, q = xk * d.r;
    return fmaf(fmaf(-q, d.s, xk), d.r, q);
}

}  // namespace slip::cuda
