#include "activation.h"

#include <cmath>
#include <cstring>

#include "../base/cpu.h"
#include "../base/thread-pool.h"

namespace slip::runtime {

namespace {

// e^x to ~1 ulp on [-87.3, 88.3] (clamped outside), in plain arithmetic so the compiler
// vectorizes the loops that call it: libm's tanhf/expm1f are scalar calls and took a third of
// a full-size forward. Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, and Cephes' expf
// minimax polynomial; n is rounded by the 1.5 * 2^23 trick (no rounding-mode calls).
__attribute__((always_inline)) inline float exp_poly(float x) {
    x = x < -87.3f ? -87.3f : x;  // ternaries, not fminf: they compile to minps/maxps
    x = x > 88.3f ? 88.3f : x;
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, 4);
    return p * scale;
}

}  // namespace

// 0.5 x (1 + tanh(u)) = x / (1 + e^(-2u)): the same function, one exp and no tanh; the limits
// hold (e^(-2u) -> inf gives -0, -> 0 gives x). The loop is compiled twice: for the baseline ISA
// and for AVX-512 (picked at run time). no-trapping-math lets GCC turn exp_poly's clamps into
// min/max and vectorize; it changes no value, only whether FP exception flags are raised.
#define SLIP_GELU_LOOP(x, i0, i1)                                                      \
    for (int64_t i = i0; i < i1; ++i) {                                                \
        const float v = x[i];                                                          \
        x[i] = v / (1.0f + exp_poly(-2.0f * 0.7978845608028654f * (v + 0.044715f * v * v * v))); \
    }

__attribute__((optimize("no-trapping-math"))) static void gelu_span(float *x, int64_t i0, int64_t i1) {
    SLIP_GELU_LOOP(x, i0, i1)
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,avx512f"), optimize("no-trapping-math"))) static void gelu_span_avx512(
    float *x, int64_t i0, int64_t i1) {
    SLIP_GELU_LOOP(x, i0, i1)
}
#endif

void gelu_tanh(float *x, int64_t n) {
#if defined(__x86_64__)
    const bool wide = isa_active() >= SLIP_ISA_AVX512;
#else
    const bool wide = false;
#endif
    parallel_for(n, 4096, [&](int64_t i0, int64_t i1) {
#if defined(__x86_64__)
        if (wide) return gelu_span_avx512(x, i0, i1);
#endif
        gelu_span(x, i0, i1);
    });
}

void silu(float *x, int64_t n) {
    parallel_for(n, 4096, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
    });
}

}  // namespace slip::runtime
