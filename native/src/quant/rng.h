// Counter-based uniform draws for stochastic rounding. A draw is a pure function of
// (seed, element index), so results never depend on the thread count or chunking: the same
// seed reproduces the same codes on any machine (the property Philox gives cuRAND; a
// splitmix64 finalizer is enough here since we need only one 24-bit draw per element).
#pragma once

#include <cstdint>

namespace slip::quant {

// splitmix64's output function (Steele, Lea, Flood 2014): a bijective avalanche mix.
inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [0, 1) on a 2^-24 grid: 24 bits is what a float32 can hold exactly, and finer
// than the half-ulp of any element format we round (E4M3 has 3 mantissa bits).
inline float uniform01(uint64_t seed, uint64_t index) {
    const uint64_t h = mix64(mix64(seed ^ 0x6A09E667F3BCC909ull) + index * 0x9E3779B97F4A7C15ull);
    return static_cast<float>(h >> 40) * 0x1p-24f;
}

}  // namespace slip::quant
