// AVX-512 instantiation of the attention tile kernel. Called only when slip::isa_active() is
// AVX512 or higher (dense.cpp).
#include <immintrin.h>

#include "dense-kernel.h"
#include "exp2-avx512.h"

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
    static reg exp2(reg x) { return exp2_avx512(x); }
};

}  // namespace

void tile_avx512(const Tile &t, float *scratch) { TileKernel<Avx512>::run(t, scratch); }

}  // namespace slip::attn
