// native/cuda/half-to-double.cuh against the value each bit pattern stands for: every one of the
// 65,536 patterns of bf16 and of fp16 must give that value as a double, bit for bit (the sign of
// zero included), and NaN for NaN.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../cuda/half-to-double.cuh"
#include "check.h"

namespace {

uint64_t bits(double d) {
    uint64_t b;
    std::memcpy(&b, &d, sizeof b);
    return b;
}

// bf16: the upper half of a float.
double bf16_value(uint32_t h) {
    const uint32_t b = h << 16;
    float f;
    std::memcpy(&f, &b, sizeof f);
    return static_cast<double>(f);
}

// fp16 from its fields (sign, 5-bit exponent biased by 15, 10-bit mantissa).
double f16_value(uint32_t h) {
    const bool negative = h >> 15;
    const int e = static_cast<int>((h >> 10) & 31), m = static_cast<int>(h & 1023);
    double v;
    if (e == 31) v = m ? std::nan("") : INFINITY;
    else if (e == 0) v = std::ldexp(static_cast<double>(m), -24);
    else v = std::ldexp(static_cast<double>(1024 + m), e - 25);
    return negative ? -v : v;
}

template <class Convert, class Reference>
int mismatches(Convert convert, Reference reference) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const double got = convert(h), want = reference(h);
        const bool ok = std::isnan(want) ? std::isnan(got) : bits(got) == bits(want);
        if (!ok && bad++ < 5) std::fprintf(stderr, "  pattern 0x%04x: got %a, want %a\n", h, got, want);
    }
    return bad;
}

}  // namespace

int main() {
    using namespace slip::cuda;
    CHECK(mismatches(bf16_bits_to_double, bf16_value) == 0);
    CHECK(mismatches(f16_bits_to_double, f16_value) == 0);
    // The reference itself, at a few known points: the smallest subnormals, the largest normals.
    CHECK(f16_value(0x0001) == 0x1p-24 && f16_value(0x7BFF) == 65504.0 && f16_value(0x8400) == -0x1p-14);
    CHECK(bf16_value(0x0001) == 0x1p-133 && bf16_value(0x7F7F) == 0x1.FEp127);
    return slip_test::report("test-half-to-double");
}
