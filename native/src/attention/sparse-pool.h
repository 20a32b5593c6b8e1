// Block pooling shared by SpargeAttention2 prediction (sparse-predict.cpp) and the SLA2 router
// (sla-route.cpp): per-block means of Q and K and the blocks' self-similarity, in float64 so the
// selection that follows is stable under summation order.
#pragma once

#include <cstdint>
#include <vector>

#include "attention-common.h"

namespace slip::attn::sparse {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks of one (batch, head): means [n_blocks * D] and mean pairwise cosines [n_blocks].
struct Pooled {
    int64_t blocks = 0;
    std::vector<double> mean;
    std::vector<double> sim;
};

// Query head h of sequence s, blocks of `block` tokens.
Pooled pool_q(const Problem &pr, const Seq &s, int64_t h, int64_t block);
// KV head hk; with smooth, the per-head mean of K over the sequence is subtracted first (from
// the means and from the tokens whose cosines make the similarity).
Pooled pool_k(const Problem &pr, const Seq &s, int64_t hk, int64_t block, bool smooth);

// Key blocks query block qb may see: a prefix [0, n) (causality is bottom-right aligned, so a
// later key block is never allowed where an earlier one is not). All of them without causality.
int64_t allowed_key_blocks(const Problem &pr, const Seq &s, int64_t qb, int64_t block_q,
                           int64_t block_k);

}  // namespace slip::attn::sparse
