// 2^x on 16 float lanes, for the AVX-512 attention kernels (include only from files compiled for
// AVX-512). 2^x = 2^n · 2^f with n = round(x), |f| <= 1/2; 2^f by its degree-7 Taylor series in
// f·ln2 (|f·ln2| <= 0.347: truncation 0.347^8/8! < 5.3e-9 < 2^-27). scalef applies 2^n and
// returns exactly 0 for n <= -150; x is clamped at -200 first so -inf (a masked score) gives 0,
// never NaN. NaN propagates: max(c, NaN) returns the NaN operand.
#pragma once

#include <immintrin.h>

namespace slip::attn {

inline __m512 exp2_avx512(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-200.0f), x);
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.5252733804059841e-05f);                   // ln2^7/7!
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));  // ln2^6/6!
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));  // ln2^5/5!
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-03f));  // ln2^4/4!
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-02f));  // ln2^3/3!
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-01f));  // ln2^2/2!
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-01f));  // ln2
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

}  // namespace slip::attn
