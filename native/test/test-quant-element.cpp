// Element codecs (E4M3, E5M2, E2M1, E8M0): every code round-trips; encode equals the
// enumerated float64 reference on random data, on every midpoint (ties) and just around it;
// saturation; stochastic rounding is unbiased and independent of the thread count.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "quant-ref.h"

namespace {

struct Case {
    slip_element_format fmt;
    const ref::Format &f;
    const char *name;
};

std::vector<uint8_t> encode(const Case &c, const std::vector<float> &x,
                            slip_rounding r = SLIP_ROUND_NEAREST_EVEN, uint64_t seed = 0) {
    std::vector<uint8_t> out(x.size());
    CHECK_OK(slip_element_encode(c.fmt, x.data(), out.data(), static_cast<int64_t>(x.size()), r, seed));
    return out;
}

std::vector<float> decode(const Case &c, const std::vector<uint8_t> &codes) {
    std::vector<float> out(codes.size());
    CHECK_OK(slip_element_decode(c.fmt, codes.data(), out.data(), static_cast<int64_t>(codes.size())));
    return out;
}

void test_round_trip(const Case &c) {
    const int ncodes = 1 << (c.f.sign_bit() + 1);
    std::vector<uint8_t> codes;
    for (int s = 0; s < 2; ++s)
        for (int m = 0; m < c.f.first_special; ++m) codes.push_back(static_cast<uint8_t>((s << c.f.sign_bit()) | m));
    const std::vector<float> values = decode(c, codes);
    for (size_t i = 0; i < codes.size(); ++i)
        CHECK_MSG(values[i] == static_cast<float>(ref::decode(codes[i], c.f)), "%s code 0x%02x", c.name, codes[i]);
    const std::vector<uint8_t> again = encode(c, values);
    for (size_t i = 0; i < codes.size(); ++i)
        CHECK_MSG(again[i] == codes[i], "%s code 0x%02x re-encodes to 0x%02x", c.name, codes[i], again[i]);
    // The special codes: E4M3 0x7F/0xFF are NaN; E5M2 0x7C/0xFC are +-Inf, 0x7D..0x7F NaN.
    for (int code = 0; code < ncodes; ++code) {
        if ((code & ((1 << c.f.sign_bit()) - 1)) < c.f.first_special) continue;
        const float v = decode(c, {static_cast<uint8_t>(code)})[0];
        const bool inf = c.fmt == SLIP_ELEMENT_E5M2 && (code & 0x7F) == 0x7C;
        CHECK_MSG(inf ? std::isinf(v) : std::isnan(v), "%s special 0x%02x", c.name, code);
    }
}

void check_against_reference(const Case &c, const std::vector<float> &x, const char *what) {
    const std::vector<uint8_t> got = encode(c, x);
    int bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        const int want = ref::encode(x[i], c.f);
        if (got[i] != want && ++bad <= 5)
            CHECK_MSG(false, "%s %s: x=%.9g encodes to 0x%02x, reference 0x%02x", c.name, what, x[i], got[i], want);
    }
    CHECK_MSG(bad == 0, "%s %s: %d mismatches", c.name, what, bad);
}

void test_reference(const Case &c) {
    // Log-uniform magnitudes from a quarter of the smallest subnormal to 4x the max: covers
    // subnormals, every binade, and saturation.
    std::mt19937_64 rng(1234 + c.fmt);
    const double lo = std::log2(c.f.value(1) / 4), hi = std::log2(c.f.max() * 4);
    std::uniform_real_distribution<double> e(lo, hi);
    std::vector<float> x(200000);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i & 1 ? -1 : 1) * std::exp2(e(rng)));
    x.push_back(0.0f);
    x.push_back(-0.0f);
    x.push_back(INFINITY);
    x.push_back(-INFINITY);
    x.push_back(3.4e38f);
    check_against_reference(c, x, "random");

    // Every midpoint between neighbours (a tie: must go to the even code), the float32 values
    // on either side of it (must go to the nearer neighbour), and the midpoint past the max.
    std::vector<float> ties;
    for (int m = 0; m + 1 < c.f.first_special; ++m) {
        const float mid = static_cast<float>((c.f.value(m) + c.f.value(m + 1)) / 2);  // exact
        for (float v : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
            ties.push_back(v);
            ties.push_back(-v);
        }
    }
    const double top = c.f.max() + (c.f.max() - c.f.value(c.f.first_special - 2)) / 2;
    ties.push_back(static_cast<float>(top));
    check_against_reference(c, ties, "ties");

    // Saturation: beyond the max goes to the max code, +-Inf too ("satfinite").
    const std::vector<uint8_t> sat = encode(c, {static_cast<float>(c.f.max() * 1.5), -INFINITY});
    CHECK(sat[0] == c.f.first_special - 1);
    CHECK(sat[1] == ((1 << c.f.sign_bit()) | (c.f.first_special - 1)));
}

// E[decode(encode(x))] = x: 1e6 draws of one value between two grid points, mean within four
// standard errors of x, where the per-draw deviation is spacing * sqrt(p (1 - p)).
void test_stochastic(const Case &c, int lower_code) {
    const double lo = c.f.value(lower_code), hi = c.f.value(lower_code + 1), p = 0.3;
    const float x = static_cast<float>(lo + p * (hi - lo));
    const double pe = (x - lo) / (hi - lo);
    const size_t n = 1000000;
    std::vector<float> xs(n, x);
    slip_set_num_threads(1);
    const std::vector<uint8_t> one = encode(c, xs, SLIP_ROUND_STOCHASTIC, 42);
    slip_set_num_threads(7);
    const std::vector<uint8_t> seven = encode(c, xs, SLIP_ROUND_STOCHASTIC, 42);
    CHECK_MSG(one == seven, "%s stochastic codes depend on the thread count", c.name);
    const std::vector<float> v = decode(c, one);
    double sum = 0;
    for (float f : v) {
        CHECK(f == static_cast<float>(lo) || f == static_cast<float>(hi));
        sum += f;
    }
    const double mean = sum / n, se = (hi - lo) * std::sqrt(pe * (1 - pe) / n);
    CHECK_MSG(std::fabs(mean - x) < 4 * se, "%s stochastic mean %.9g vs %.9g (se %.3g)", c.name, mean, x, se);
    CHECK_MSG(encode(c, xs, SLIP_ROUND_STOCHASTIC, 43) != one, "%s: another seed gives other draws", c.name);
    // A grid value is never moved by stochastic rounding.
    const std::vector<uint8_t> exact = encode(c, std::vector<float>(1000, static_cast<float>(hi)), SLIP_ROUND_STOCHASTIC, 7);
    for (uint8_t code : exact) CHECK(code == lower_code + 1);
}

void test_e8m0() {
    std::vector<float> x = {1.0f, 1.5f, 0.75f, 0x1p-127f, 0x1p127f, 3.0e38f, 0.0f, NAN, INFINITY};
    std::vector<uint8_t> codes(x.size());
    CHECK_OK(slip_element_encode(SLIP_ELEMENT_E8M0, x.data(), codes.data(), x.size(), SLIP_ROUND_NEAREST_EVEN, 0));
    const std::vector<uint8_t> want = {127, 127, 126, 0, 254, 254, 0, 255, 254};  // log2 rounded down
    CHECK(codes == want);
    std::vector<uint8_t> all(255);
    for (int i = 0; i < 255; ++i) all[i] = static_cast<uint8_t>(i);
    std::vector<float> v(255);
    CHECK_OK(slip_element_decode(SLIP_ELEMENT_E8M0, all.data(), v.data(), 255));
    for (int i = 0; i < 255; ++i) CHECK(v[i] == static_cast<float>(std::ldexp(1.0, i - 127)));
    uint8_t nan_code = 255;
    float nan_value = 0;
    CHECK_OK(slip_element_decode(SLIP_ELEMENT_E8M0, &nan_code, &nan_value, 1));
    CHECK(std::isnan(nan_value));
}

void test_errors() {
    float x[2] = {1.0f, NAN};
    uint8_t c[2];
    CHECK_FAILS(slip_element_encode(SLIP_ELEMENT_E2M1, x, c, 2, SLIP_ROUND_NEAREST_EVEN, 0),
                SLIP_STATUS_NON_FINITE, "NaN at index 1");
    CHECK_FAILS(slip_element_encode(static_cast<slip_element_format>(9), x, c, 2, SLIP_ROUND_NEAREST_EVEN, 0),
                SLIP_STATUS_INVALID_ARGUMENT, "for fmt, got 9");
    CHECK_FAILS(slip_element_encode(SLIP_ELEMENT_E4M3, x, c, -1, SLIP_ROUND_NEAREST_EVEN, 0),
                SLIP_STATUS_INVALID_ARGUMENT, "for n, got -1");
    CHECK_FAILS(slip_element_encode(SLIP_ELEMENT_E4M3, nullptr, c, 2, SLIP_ROUND_NEAREST_EVEN, 0),
                SLIP_STATUS_INVALID_ARGUMENT, "for in");
    CHECK_FAILS(slip_element_encode(SLIP_ELEMENT_E4M3, x, c, 2, static_cast<slip_rounding>(5), 0),
                SLIP_STATUS_INVALID_ARGUMENT, "for rounding, got 5");
    CHECK_FAILS(slip_element_encode(SLIP_ELEMENT_E8M0, x, c, 2, SLIP_ROUND_STOCHASTIC, 0),
                SLIP_STATUS_INVALID_ARGUMENT, "E8M0");
    uint8_t big = 0x1F;
    float out;
    CHECK_FAILS(slip_element_decode(SLIP_ELEMENT_E2M1, &big, &out, 1), SLIP_STATUS_INVALID_ARGUMENT,
                "0..15");
    // NaN encodes to the format's NaN where it has one.
    CHECK_OK(slip_element_encode(SLIP_ELEMENT_E4M3, x, c, 2, SLIP_ROUND_NEAREST_EVEN, 0));
    CHECK(c[1] == 0x7F);
}

}  // namespace

int main() {
    const Case cases[] = {{SLIP_ELEMENT_E4M3, ref::kE4M3, "E4M3"},
                          {SLIP_ELEMENT_E5M2, ref::kE5M2, "E5M2"},
                          {SLIP_ELEMENT_E2M1, ref::kE2M1, "E2M1"}};
    for (const Case &c : cases) {
        test_round_trip(c);
        test_reference(c);
    }
    test_stochastic(cases[0], 0x38);  // E4M3 between 1 and 1.125
    test_stochastic(cases[0], 0x02);  // E4M3 subnormals
    test_stochastic(cases[1], 0x3C);  // E5M2 between 1 and 1.25
    test_stochastic(cases[2], 0x04);  // E2M1 between 2 and 3
    test_e8m0();
    test_errors();
    return slip_test::report("test-quant-element");
}
