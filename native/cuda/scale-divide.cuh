// Dividing many values by one scale (a row's, a channel's) on the device, rounded as x / s is.
// Host-compilable too, so that native/test/test-scale-divide.cpp checks the claim against x / s.
#pragma once

#if defined(__CUDACC__)
#define SLIP_SCALE_DIVIDE_FN __host__ __device__ inline
#else
#include <cmath>
#define SLIP_SCALE_DIVIDE_FN inline
#endif

namespace slip::cuda {

// The quotient comes out as x / s does, bit for bit, in four instructions instead of a division's
// ten with its range check: q = x * r from r = 1/s rounded to nearest is within an ulp of the
// quotient, and one residual (exact by FMA while it stays a normal float) and one correction give
// the rounded quotient (Markstein). For the residual to stay normal, a scale below 2^-40 scales x
// and s by 2^80 first (exact). Checked for every bf16 and fp16 x with |x| <= amax, s = amax/127 or
// amax/448 (native/test/test-scale-divide.cpp): equal to x / s wherever |x / s| >= 2^-24, and below
// 2^-23 elsewhere, so INT8 and E4M3 codes are those of a division.
struct Divisor {
    float k, s, r;  // prescale, s * k, 1 / (s * k) (0 when s is 0: every x it divides is 0 then)
};

SLIP_SCALE_DIVIDE_FN Divisor divisor(float s) {
    const float k = s < 0x1p-40f ? 0x1p80f : 1.0f;
    const float sk = s * k;
    return {k, sk, sk > 0.0f ? 1.0f / sk : 0.0f};
}

SLIP_SCALE_DIVIDE_FN float quotient(float x, const Divisor &d) {
    const float xk = x * d.k, q = xk * d.r;
    return fmaf(fmaf(-q, d.s, xk), d.r, q);
}

}  // namespace slip::cuda
