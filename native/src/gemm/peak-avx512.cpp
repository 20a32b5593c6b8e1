// The FP32 peak loop: 24 independent FMA chains on zmm registers, no memory traffic.
#include <immintrin.h>

#include "peak.h"

namespace slip::gemm {

float peak_fma_avx512(int64_t iters) {
    // x <- x * b + c with b < 1 converges to c / (1 - b) = 1: values stay normal (no denormal
    // or overflow slow paths), whatever the iteration count.
    const __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a[kPeakChains];
#pragma GCC unroll 24
    for (int i = 0; i < kPeakChains; ++i) a[i] = _mm512_set1_ps(static_cast<float>(i));
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
        for (int i = 0; i < kPeakChains; ++i) a[i] = _mm512_fmadd_ps(a[i], b, c);
    }
    __m512 s = a[0];
    for (int i = 1; i < kPeakChains; ++i) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

}  // namespace slip::gemm
