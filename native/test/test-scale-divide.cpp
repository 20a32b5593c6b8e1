// native/cuda/scale-divide.cuh against the division it stands in for: for every finite bf16 and
// fp16 value x with |x| <= amax (what the CUDA quantizers divide: values of the group whose amax
// made the scale) and scales s = amax/127 and amax/448 over amax from 1e-45 to 3e38 (subnormal s
// included), quotient(x, divisor(s)) must be x / s bit for bit wherever |x / s| >= 2^-24, and below
// that stay below 2^-23: every INT8 and E4M3 code is then 0 either way.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "../cuda/scale-divide.cuh"
#include "check.h"

namespace {

float from_bits(uint32_t b) {
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
}

uint32_t bits(float f) {
    uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return b;
}

// Every finite value of a 16-bit format as a float.
std::vector<float> all_bf16() {
    std::vector<float> v;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = from_bits(h << 16);
        if (std::isfinite(f)) v.push_back(f);
    }
    return v;
}

std::vector<float> all_fp16() {
    std::vector<float> v;
    for (uint32_t h = 0; h < 65536; ++h) {
        const uint32_t sign = (h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) continue;  // inf, NaN
        float f = e == 0 ? std::ldexp(static_cast<float>(m), -24) : std::ldexp(static_cast<float>(1024 + m), static_cast<int>(e) - 25);
        v.push_back(sign ? -f : f);
    }
    return v;
}

std::vector<float> amaxes() {
    std::vector<float> a = {1e-45f, 1e-42f, 1e-40f, 1.1754942e-38f, 1.17549435e-38f, 1.5e-36f, 1e-30f, 1e-8f,
                            0.03125f, 1.0f, 1.5f, 127.0f, 448.0f, 65504.0f, 1e20f, 3e38f};
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> exponent(-45.0f, 38.0f), mantissa(1.0f, 10.0f);
    for (int i = 0; i < 120; ++i) a.push_back(mantissa(rng) * std::pow(10.0f, exponent(rng)));
    return a;
}

}  // namespace

int main() {
    using slip::cuda::divisor;
    using slip::cuda::quotient;
    // Below 2^-24 every INT8 and E4M3 code is 0 (their smallest rounding boundary is 2^-10).
    const float kExactFrom = std::ldexp(1.0f, -24);
    const std::vector<float> xs16[2] = {all_bf16(), all_fp16()};
    long exact = 0, tiny = 0;
    for (float amax : amaxes()) {
        if (!(amax > 0.0f) || !std::isfinite(amax)) continue;
        for (float bound : {127.0f, 448.0f}) {
            const float s = amax / bound;
            if (s == 0.0f) continue;
            const auto dv = divisor(s);
            long wrong = 0;
            for (const auto &xs : xs16)
                for (float x : xs) {
                    if (!(std::fabs(x) <= amax)) continue;  // the quantizers divide values of the group
                    const float want = x / s, got = quotient(x, dv);
                    if (std::fabs(want) >= kExactFrom) {
                        ++exact;
                        if (bits(got) != bits(want)) ++wrong;
                    } else {
                        ++tiny;
                        if (!(std::fabs(got) < 2.0f * kExactFrom)) ++wrong;
                    }
                }
            CHECK_MSG(wrong == 0, "s = %a (amax %a / %g): %ld quotients differ from x / s", s, amax, bound, wrong);
        }
    }
    // A zero scale divides only zeros (every x of its group is 0): the codes are 0.
    CHECK(quotient(0.0f, divisor(0.0f)) == 0.0f);
    std::printf("%ld quotients compared bit for bit, %ld below 2^-24 checked to stay below 2^-23\n", exact, tiny);
    return slip_test::report("test-scale-divide");
}
