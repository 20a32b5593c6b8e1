// SpargeAttention2 block-mask prediction (arXiv 2602.13515; attention.md §3.1, §3.6): pooled
// scores, Top-k ∪ Top-p per query-block row, the self-similarity guard and the attention sink.
#include "sparse-predict.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "base/thread-pool.h"
#include "sparse-pool.h"

namespace slip::attn::sparse {
namespace {

// Marks in keep[] the key blocks [0, n) that Top-k or Top-p keeps, from scaled logits; blocks
// with trusted[kb] == 0 take no part (they are forced on by the caller). Returns nothing kept
// when no block is trusted.
void select_row(const double *logits, const uint8_t *trusted, int64_t n, double topk, double topp,
                uint8_t *keep) {
    std::vector<int64_t> idx;
    idx.reserve(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j)
        if (trusted[j]) idx.push_back(j);
    if (idx.empty()) return;
    // P̂ = softmax over the trusted blocks of the row (max-subtracted for range).
    double mx = -INFINITY;
    for (int64_t j : idx) mx = std::max(mx, logits[j]);
    std::vector<double> p(static_cast<size_t>(n), 0.0);
    double sum = 0.0;
    for (int64_t j : idx) sum += p[j] = std::exp(logits[j] - mx);
    for (int64_t j : idx) p[j] /= sum;
    // Descending by P̂; ties keep the earlier block first, so the mask is deterministic.
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    const int64_t m = static_cast<int64_t>(idx.size());
    if (topk > 0.0) {
        // floor, as SpargeAttn's Top-k (attention.md §3.1 item 5), of the row's allowed blocks
        // (untrusted ones count: they are kept anyway); at least one.
        int64_t c = static_cast<int64_t>(std::floor(topk * static_cast<double>(n)));
        c = std::min(m, std::max<int64_t>(1, c));
        for (int64_t r = 0; r < c; ++r) keep[idx[r]] = 1;
    }
    if (topp > 0.0) {
        // The shortest prefix with mass >= topp (§3.1 item 5, SpargeAttn's CDF rule).
        double cum = 0.0;
        for (int64_t r = 0; r < m; ++r) {
            keep[idx[r]] = 1;
            cum += p[idx[r]];
            if (cum >= topp) break;
        }
    }
}

}  // namespace

MaskCounts predict(const Problem &pr, const slip_sparse_params &sp, uint8_t *mask) {
    const int64_t nqb = ceil_div(pr.nq, sp.block_q), nkb = ceil_div(pr.nk, sp.block_k);
    const int64_t D = pr.dim;
    // K blocks once per kv head: GQA query heads of a group share them.
    std::vector<Pooled> kpool(static_cast<size_t>(pr.batch * pr.heads_k));
    parallel_for(pr.batch * pr.heads_k, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t t = b0; t < b1; ++t)
            kpool[t] = pool_k(pr, pr.seq(t / pr.heads_k), t % pr.heads_k, sp.block_k,
                              sp.smooth_k != 0);
    });
    const double theta = sp.sim_threshold;
    std::vector<MaskCounts> counts(static_cast<size_t>(pr.batch * pr.heads_q));
    parallel_for(pr.batch * pr.heads_q, 1, [&](int64_t t0, int64_t t1) {
        std::vector<double> logits(static_cast<size_t>(nkb));
        std::vector<uint8_t> trusted(static_cast<size_t>(nkb));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / pr.heads_q, h = t % pr.heads_q;
            const Seq s = pr.seq(b);
            const Pooled qp = pool_q(pr, s, h, sp.block_q);
            const Pooled &kp = kpool[static_cast<size_t>(b * pr.heads_k + pr.kv_head(h))];
            for (int64_t kb = 0; kb < nkb; ++kb) trusted[kb] = kp.sim[kb] > theta;
            MaskCounts &c = counts[static_cast<size_t>(t)];
            for (int64_t qb = 0; qb < nqb; ++qb) {
                uint8_t *row = mask + (t * nqb + qb) * nkb;
                std::fill(row, row + nkb, 0);
                const int64_t n = allowed_key_blocks(pr, s, qb, sp.block_q, sp.block_k);
                c.allowed += n;
                if (n == 0) continue;
                if (!(qp.sim[qb] > theta)) {
                    // An untrusted query block's mean says nothing of its tokens: keep the row.
                    std::fill(row, row + n, 1);
                } else {
                    const double *qm = &qp.mean[static_cast<size_t>(qb * D)];
                    for (int64_t kb = 0; kb < n; ++kb) {
                        if (!trusted[kb]) continue;
                        const double *km = &kp.mean[static_cast<size_t>(kb * D)];
                        double dot = 0.0;
                        for (int64_t d = 0; d < D; ++d) dot += qm[d] * km[d];
                        logits[kb] = pr.scale * dot;
                    }
                    select_row(logits.data(), trusted.data(), n, sp.topk, sp.topp, row);
                    for (int64_t kb = 0; kb < n; ++kb)
                        if (!trusted[kb]) row[kb] = 1;
                    if (sp.attention_sink) row[0] = 1;
                }
                for (int64_t kb = 0; kb < n; ++kb) c.kept += row[kb];
            }
        }
    });
    MaskCounts total;
    for (const MaskCounts &c : counts) {
        total.kept += c.kept;
        total.allowed += c.allowed;
    }
    return total;
}

}  // namespace slip::attn::sparse
