// Portable instantiation of the attention tile kernel: 8-float arrays the compiler vectorizes
// with the baseline ISA (SSE2 on x86-64); exp2 from the C library.
#include <cmath>

#include "dense-kernel.h"

namespace slip::attn {
namespace {

struct Portable {
    struct reg {
        float x[8];
    };
    static constexpr int W = 8;
    static constexpr int MR = 4;
    static constexpr int NVMAX = 2;
    template <class F>
    static reg map(F f) {
        reg r;
        for (int i = 0; i < W; ++i) r.x[i] = f(i);
        return r;
    }
    static reg zero() { return map([](int) { return 0.0f; }); }
    static reg set1(float v) { return map([&](int) { return v; }); }
    static reg loadu(const float *p) { return map([&](int i) { return p[i]; }); }
    static void storeu(float *p, reg a) {
        for (int i = 0; i < W; ++i) p[i] = a.x[i];
    }
    static reg fma(reg a, reg b, reg c) { return map([&](int i) { return a.x[i] * b.x[i] + c.x[i]; }); }
    static reg mul(reg a, reg b) { return map([&](int i) { return a.x[i] * b.x[i]; }); }
    static reg add(reg a, reg b) { return map([&](int i) { return a.x[i] + b.x[i]; }); }
    static reg sub(reg a, reg b) { return map([&](int i) { return a.x[i] - b.x[i]; }); }
    // NaN-propagating, as the vector max(c, x) forms are used.
    static reg max(reg a, reg b) {
        return map([&](int i) { return a.x[i] > b.x[i] ? a.x[i] : b.x[i]; });
    }
    static float hmax(reg a) {
        float m = a.x[0];
        for (int i = 1; i < W; ++i) m = a.x[i] > m ? a.x[i] : m;
        return m;
    }
    static float hsum(reg a) {
        float s = 0.0f;
        for (int i = 0; i < W; ++i) s += a.x[i];
        return s;
    }
    static reg exp2(reg a) { return map([&](int i) { return std::exp2(a.x[i]); }); }
};

}  // namespace

void tile_portable(const Tile &t, float *scratch) { TileKernel<Portable>::run(t, scratch); }

}  // namespace slip::attn
