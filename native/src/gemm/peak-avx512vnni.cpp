// The INT8 peak loop: 24 independent vpdpbusd chains on zmm registers, no memory traffic.
#include <immintrin.h>

#include "peak.h"

namespace slip::gemm {

int32_t peak_vnni_avx512(int64_t iters) {
    const __m512i b = _mm512_set1_epi8(1), c = _mm512_set1_epi8(2);  // int32 wrap-around is harmless
    __m512i a[kPeakChains];
#pragma GCC unroll 24
    for (int i = 0; i < kPeakChains; ++i) a[i] = _mm512_set1_epi32(i);
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
        for (int i = 0; i < kPeakChains; ++i) a[i] = _mm512_dpbusd_epi32(a[i], b, c);
    }
    __m512i s = a[0];
    for (int i = 1; i < kPeakChains; ++i) s = _mm512_add_epi32(s, a[i]);
    return _mm512_reduce_add_epi32(s);
}

}  // namespace slip::gemm
