// AVX-512 instantiation of the attention tile kernel. Called only when slip::isa_active() is
// AVX512 or higher (dense.cpp).
#include <immintrin.h>

#include "dense-kernel.h"

namespace slip::attn {
namespace {

struct Avx512 {
    using reg = __m512;
    static constexpr int W = 16;
    // 6 rows x 4 vectors = 24 accumulators + 4 K vectors + 1 broadcast of the 32 zmm registers.
    static constexpr int MR = 6;
    static constexpr int NVMAX = 4;
    static reg zero() { return _mm512_setzero_ps(); }
    static reg set1(float x) { return _mm512_set1_ps(x); }
    static reg loadu(const float *p) { return _mm512_loadu_ps(p); }
    static void storeu(float *p, reg x) { _mm512_storeu_ps(p, x); }
    static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
    static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
    static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
    static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
    static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
    static float hmax(reg x) { return _mm512_reduce_max_ps(x); }
    static float hsum(reg x) { return _mm512_reduce_add_ps(x); }
    // 2^x = 2^n · 2^f with n = round(x), |f| <= 1/2; 2^f by its degree-7 Taylor series in
    // f·ln2 (|f·ln2| <= 0.347: truncation 0.347^8/8! < 5.3e-9 < 2^-27). scalef applies 2^n
    // and returns exactly 0 for n <= -150; x is clamped at -200 first so -inf (a masked
    // score) gives 0, never NaN. NaN propagates: max(c, NaN) returns the NaN operand.
    static reg exp2(reg x) {
        x = _mm512_max_ps(_mm512_set1_ps(-200.0f), x);
        const reg n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const reg f = _mm512_sub_ps(x, n);
        reg p = _mm512_set1_ps(1.5252733804059841e-05f);             // ln2^7/7!
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));  // ln2^6/6!
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));  // ln2^5/5!
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-03f));  // ln2^4/4!
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-02f));  // ln2^3/3!
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-01f));  // ln2^2/2!
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-01f));  // ln2
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
        return _mm512_scalef_ps(p, n);
    }
};

}  // namespace

void tile_avx512(const Tile &t, float *scratch) { TileKernel<Avx512>::run(t, scratch); }

}  // namespace slip::attn
