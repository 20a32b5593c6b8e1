#include "sparse-pool.h"

#include <algorithm>
#include <cmath>

namespace slip::attn::sparse {
namespace {

// Means and self-similarity of the rows row(0..n) cut into blocks of `block`, minus `shift`
// (nullptr: none).
//
// Self-similarity (SpargeAttn, attention.md §3.1): the mean over all b² ordered token pairs
// (a, c) of a block, self-pairs included, of cos(x_a, x_c). With u_a = x_a / ‖x_a‖,
//     Σ_a Σ_c cos(x_a, x_c) = Σ_a Σ_c u_a·u_c = (Σ_a u_a)·(Σ_c u_c) = ‖Σ_a u_a‖²,
// so sim = ‖Σ_a u_a‖² / b²: O(b·d) instead of the b×b Gram matrix. It lies in [0, 1] (1 when
// all tokens point the same way), so a threshold below 0 trusts every block. A zero token has
// no direction; it adds nothing to Σ u but still counts in b (it is not similar to anything).
template <class Row>
Pooled pool(int64_t n, int64_t dim, int64_t block, const double *shift, Row row) {
    Pooled p;
    p.blocks = ceil_div(n, block);
    p.mean.assign(static_cast<size_t>(p.blocks * dim), 0.0);
    p.sim.assign(static_cast<size_t>(p.blocks), 0.0);
    std::vector<double> x(static_cast<size_t>(dim)), usum(static_cast<size_t>(dim));
    for (int64_t blk = 0; blk < p.blocks; ++blk) {
        const int64_t t0 = blk * block, t1 = std::min(n, t0 + block);
        double *m = &p.mean[static_cast<size_t>(blk * dim)];
        std::fill(usum.begin(), usum.end(), 0.0);
        for (int64_t t = t0; t < t1; ++t) {
            const float *r = row(t);
            double nn = 0.0;
            for (int64_t d = 0; d < dim; ++d) {
                x[d] = static_cast<double>(r[d]) - (shift ? shift[d] : 0.0);
                m[d] += x[d];
                nn += x[d] * x[d];
            }
            if (nn > 0.0) {
                const double inv = 1.0 / std::sqrt(nn);
                for (int64_t d = 0; d < dim; ++d) usum[d] += x[d] * inv;
            }
        }
        const double cnt = static_cast<double>(t1 - t0);
        double s2 = 0.0;
        for (int64_t d = 0; d < dim; ++d) {
            m[d] /= cnt;
            s2 += usum[d] * usum[d];
        }
        p.sim[static_cast<size_t>(blk)] = s2 / (cnt * cnt);
    }
    return p;
}

}  // namespace

Pooled pool_q(const Problem &pr, const Seq &s, int64_t h, int64_t block) {
    return pool(s.nq, pr.dim, block, nullptr, [&](int64_t t) { return pr.q_row(s, h, t); });
}

Pooled pool_k(const Problem &pr, const Seq &s, int64_t hk, int64_t block, bool smooth) {
    // Smooth-K (SageAttention, attention.md §3.1 item 2): a shift shared by all keys changes
    // every score of a query row by the same amount, so the softmax, exact or pooled, is
    // unchanged; but it removes the common component that makes every key block look
    // self-similar, which is what the similarity guard measures.
    std::vector<double> mu;
    if (smooth && s.nk > 0) {
        mu.assign(static_cast<size_t>(pr.dim), 0.0);
        for (int64_t t = 0; t < s.nk; ++t) {
            const float *r = pr.k_row(s, hk, t);
            for (int64_t d = 0; d < pr.dim; ++d) mu[d] += r[d];
        }
        for (double &m : mu) m /= static_cast<double>(s.nk);
    }
    return pool(s.nk, pr.dim, block, mu.empty() ? nullptr : mu.data(),
                [&](int64_t t) { return pr.k_row(s, hk, t); });
}

int64_t allowed_key_blocks(const Problem &pr, const Seq &s, int64_t qb, int64_t block_q,
                           int64_t block_k) {
    const int64_t nkb = ceil_div(s.nk, block_k);
    if (!pr.causal) return nkb;
    // Key block kb is allowed iff its first key kb·block_k is visible to the block's last
    // query: kb·block_k <= last_q + (Nk - Nq).
    const int64_t last_q = std::min(s.nq, (qb + 1) * block_q) - 1;
    const int64_t last_k = last_q + s.causal_offset();
    if (last_k < 0) return 0;
    return std::min(nkb, last_k / block_k + 1);
}

}  // namespace slip::attn::sparse
