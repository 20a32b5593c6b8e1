// Token sampling from a logits row: greedy, or temperature + top-k + top-p with a caller-held
// splitmix64 state, in float64 so that the same seed picks the same token on every ISA.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "qwen3.h"

namespace slip::runtime::qwen3 {

namespace {

uint64_t splitmix64(uint64_t &state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int32_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return static_cast<int32_t>(best);
}

}  // namespace

int32_t sample(const float *logits, int64_t vocab, const slip_qwen3_sample_params &p, uint64_t &rng) {
    if (p.temperature == 0.0f) return argmax(logits, vocab);
    const double t = p.temperature;
    const float top = logits[argmax(logits, vocab)];
    std::vector<double> prob(static_cast<size_t>(vocab));
    for (int64_t i = 0; i < vocab; ++i) prob[i] = std::exp((static_cast<double>(logits[i]) - top) / t);

    // Candidates, most likely first (ties: lower index first, so the order is deterministic);
    // sorted only as far as top-k / top-p need.
    std::vector<int32_t> order(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), 0);
    const bool use_k = p.top_k > 0 && p.top_k < vocab, use_p = p.top_p < 1.0f;
    size_t kept = order.size();
    if (use_k || use_p) {
        auto before = [&](int32_t a, int32_t b) { return prob[a] > prob[b] || (prob[a] == prob[b] && a < b); };
        if (use_k && !use_p) {
            kept = static_cast<size_t>(p.top_k);
            std::partial_sort(order.begin(), order.begin() + static_cast<int64_t>(kept), order.end(), before);
        } else {
            std::sort(order.begin(), order.end(), before);
            if (use_k) kept = static_cast<size_t>(p.top_k);
        }
        if (use_p) {
            // HF's TopPLogitsWarper: a token stays while the mass of the tokens before it is below
            // top_p (of the distribution after top-k), so the one that crosses top_p stays too.
            double total = 0.0;
            for (size_t i = 0; i < kept; ++i) total += prob[order[i]];
            double before_mass = 0.0;
            size_t i = 0;
            while (i < kept && before_mass < p.top_p * total) before_mass += prob[order[i++]];
            kept = std::max<size_t>(i, 1);
        }
    }
    double mass = 0.0;
    for (size_t i = 0; i < kept; ++i) mass += prob[order[i]];
    const double u = static_cast<double>(splitmix64(rng) >> 11) * 0x1.0p-53 * mass;
    double acc = 0.0;
    for (size_t i = 0; i < kept; ++i) {
        acc += prob[order[i]];
        if (u < acc) return order[i];
    }
    return order[kept - 1];  // u rounded up to the full mass
}

}  // namespace slip::runtime::qwen3
