// SLA2's router (arXiv 2602.12675; attention.md §4.3 change 1): scores from pooled, linearly
// projected Q and K blocks; per query-block row the top fraction is critical, the bottom
// fraction negligible, the rest marginal. With identity projections it is SLA's training-free
// predictor on smoothed, mean-pooled blocks (§4.1, §4.2).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "base/thread-pool.h"
#include "sla.h"
#include "sparse-pool.h"

namespace slip::attn::sla {
namespace {

// y = W x for W [D, D] (out, in); identity when W is null.
void project(const float *w, const double *x, int64_t D, double *y) {
    if (!w) {
        std::copy(x, x + D, y);
        return;
    }
    for (int64_t o = 0; o < D; ++o) {
        double acc = 0.0;
        for (int64_t i = 0; i < D; ++i) acc += static_cast<double>(w[o * D + i]) * x[i];
        y[o] = acc;
    }
}

}  // namespace

int64_t route(const Problem &pr, const slip_sla_params &sp, const float *wq, const float *wk,
              uint8_t *route_out) {
    using sparse::ceil_div;
    const int64_t D = pr.dim, nqb = ceil_div(pr.nq, sp.block_q), nkb = ceil_div(pr.nk, sp.block_k);
    // Counts per row. The softmax of the router is monotone in its logits, so ranking the
    // logits ranks R; floor as SLA's get_block_map (§4.2), at least one critical block.
    const int64_t n_crit = std::min(nkb, std::max<int64_t>(1, static_cast<int64_t>(std::floor(
                                                                 sp.critical * static_cast<double>(nkb)))));
    const int64_t n_negl = std::min(nkb - n_crit, static_cast<int64_t>(std::floor(
                                                      sp.negligible * static_cast<double>(nkb))));
    std::vector<int64_t> crit(static_cast<size_t>(pr.batch * pr.heads_q), 0);
    parallel_for(pr.batch * pr.heads_q, 1, [&](int64_t t0, int64_t t1) {
        std::vector<double> qp(D), kx(D), logits(nkb);
        std::vector<int64_t> idx(nkb);
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / pr.heads_q, h = t % pr.heads_q;
            const Seq s = pr.seq(b);
            const sparse::Pooled q = sparse::pool_q(pr, s, h, sp.block_q);
            const sparse::Pooled k = sparse::pool_k(pr, s, pr.kv_head(h), sp.block_k, sp.smooth_k != 0);
            std::vector<double> kp(static_cast<size_t>(nkb * D));
            for (int64_t kb = 0; kb < nkb; ++kb) project(wk, &k.mean[kb * D], D, &kp[kb * D]);
            for (int64_t qb = 0; qb < nqb; ++qb) {
                project(wq, &q.mean[qb * D], D, qp.data());
                for (int64_t kb = 0; kb < nkb; ++kb) {
                    double dot = 0.0;
                    for (int64_t d = 0; d < D; ++d) dot += qp[d] * kp[kb * D + d];
                    logits[kb] = pr.scale * dot;
                }
                std::iota(idx.begin(), idx.end(), 0);
                // Descending; ties keep the earlier block first, so routes are deterministic.
                std::stable_sort(idx.begin(), idx.end(),
                                 [&](int64_t x, int64_t y) { return logits[x] > logits[y]; });
                uint8_t *row = route_out + (t * nqb + qb) * nkb;
                for (int64_t r = 0; r < nkb; ++r)
                    row[idx[r]] = r < n_crit ? SLIP_SLA_CRITICAL
                                  : r >= nkb - n_negl ? SLIP_SLA_NEGLIGIBLE
                                                      : SLIP_SLA_MARGINAL;
                crit[t] += n_crit;
            }
        }
    });
    return std::accumulate(crit.begin(), crit.end(), int64_t{0});
}

}  // namespace slip::attn::sla
