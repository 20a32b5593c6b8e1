// AVX2 + FMA instantiation of the attention tile kernel. Called only when slip::isa_active() is
// AVX2 (dense.cpp).
#include <immintrin.h>

#include "dense-kernel.h"

namespace slip::attn {
namespace {

struct Avx2 {
    using reg = __m256;
    static constexpr int W = 8;
    // 4 rows x 2 vectors = 8 accumulators + 2 K vectors + 1 broadcast of the 16 ymm registers.
    static constexpr int MR = 4;
    static constexpr int NVMAX = 2;
    static reg zero() { return _mm256_setzero_ps(); }
    static reg set1(float x) { return _mm256_set1_ps(x); }
    static reg loadu(const float *p) { return _mm256_loadu_ps(p); }
    static void storeu(float *p, reg x) { _mm256_storeu_ps(p, x); }
    static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
    static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
    static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
    static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
    static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
    static float hmax(reg x) {
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
        return _mm_cvtss_f32(h);
    }
    static float hsum(reg x) {
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        return _mm_cvtss_f32(h);
    }
    // As Avx512::exp2 (same Taylor coefficients and bound), with 2^n built in the exponent
    // field: x is clamped to [-127, 127], and n = -127 gives exponent bits 0, i.e. exactly 0
    // (results below 2^-126 flush to 0, far under the FP32 accumulation error).
    static reg exp2(reg x) {
        x = _mm256_min_ps(_mm256_set1_ps(127.0f), _mm256_max_ps(_mm256_set1_ps(-127.0f), x));
        const reg n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const reg f = _mm256_sub_ps(x, n);
        reg p = _mm256_set1_ps(1.5252733804059841e-05f);
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.5403530393381606e-04f));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428443e-03f));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291076284772e-03f));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504108664821580e-02f));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650695910071e-01f));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718055994531e-01f));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
        const __m256i e = _mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    }
};

}  // namespace

void tile_avx2(const Tile &t, float *scratch) { TileKernel<Avx2>::run(t, scratch); }

}  // namespace slip::attn
