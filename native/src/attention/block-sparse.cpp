// Block-sparse FP32 attention: the dense tile kernel walking only the key blocks the caller's
// block mask keeps for each query block (the work of dropped blocks is never done), with
// causality applied per token inside the kernel (never at block granularity, so a diagonal
// block cannot leak future tokens: research/attention.md §3.3 finds that leak in SpargeAttn's
// SA2 path).
#include <algorithm>
#include <vector>

#include "base/thread-pool.h"
#include "dense.h"

namespace slip::attn {

namespace {

// Last key (exclusive) that any row < i_end may attend: all of them without causality.
int64_t key_end(const Problem &pr, const Seq &s, int64_t i_end) {
    if (!pr.causal) return s.nk;
    return std::clamp<int64_t>(i_end - 1 + s.causal_offset() + 1, 0, s.nk);
}

}  // namespace

double run_block_sparse(const Problem &pr, const BlockMask &bm) {
    // Density over the pairs causality allows: a key block counts when its first key is
    // attendable by the query block's last row.
    int64_t kept = 0, allowed = 0;
    const Seq s0 = pr.seq(0);
    for (int64_t bh = 0; bh < pr.batch * pr.heads_q; ++bh)
        for (int64_t qb = 0; qb < bm.nqb; ++qb) {
            const int64_t kend = key_end(pr, s0, std::min(pr.nq, (qb + 1) * bm.block_q));
            const uint8_t *row = bm.keep + (bh * bm.nqb + qb) * bm.nkb;
            for (int64_t kb = 0; kb < bm.nkb && kb * bm.block_k < kend; ++kb) {
                ++allowed;
                kept += row[kb] != 0;
            }
        }

    std::vector<float> kbuf, vbuf;
    const Packed pk = pack(pr, kbuf, vbuf);
    const int64_t nb = pr.batch * bm.nqb;  // head-major tasks, as run_dense
    parallel_for(nb * pr.heads_q, 1, [&](int64_t begin, int64_t end) {
        std::vector<Segment> segs;
        for (int64_t task = begin; task < end; ++task) {
            const int64_t h = task / nb, b = (task % nb) / bm.nqb, qb = task % bm.nqb;
            const Seq s = pr.seq(b);
            const uint8_t *row = bm.keep + ((b * pr.heads_q + h) * bm.nqb + qb) * bm.nkb;
            const int64_t q_end = std::min(s.nq, (qb + 1) * bm.block_q);
            // Query blocks wider than a tile run as several tiles; each trims the kept key
            // ranges to what its own last row may attend.
            for (int64_t i0 = qb * bm.block_q; i0 < q_end; i0 += kTileQ) {
                const int64_t i1 = std::min(q_end, i0 + kTileQ);
                const int64_t kend = key_end(pr, s, i1);
                segs.clear();
                int64_t r0 = 0, r1 = 0;  // current run of adjacent kept blocks
                for (int64_t kb = 0; kb < bm.nkb && kb * bm.block_k < kend; ++kb) {
                    if (!row[kb]) continue;
                    const int64_t j0 = kb * bm.block_k, j1 = std::min(kend, j0 + bm.block_k);
                    if (j0 == r1) {
                        r1 = j1;
                    } else {
                        add_segments(r0, r1, segs);
                        r0 = j0, r1 = j1;
                    }
                }
                add_segments(r0, r1, segs);
                Tile t{&pr, &pk, s, h, i0, i1, segs.data(), static_cast<int64_t>(segs.size())};
                run_tile(t);
            }
        }
    });
    return allowed > 0 ? static_cast<double>(kept) / static_cast<double>(allowed) : 0.0;
}

}  // namespace slip::attn
