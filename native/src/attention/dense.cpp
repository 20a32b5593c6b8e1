// Drivers of the FP32 attention: pack K into transposed panels once per call, then run query
// tiles in parallel over (head x sequence x query tile), dispatching the tile kernel on
// slip::isa_active().
#include <algorithm>
#include <atomic>
#include <vector>

#include "base/cpu.h"
#include "base/thread-pool.h"
#include "dense.h"

namespace slip::attn {

int64_t active_width() { return isa_active() >= SLIP_ISA_AVX512 ? 16 : 8; }

int64_t tile_scratch_floats(int64_t dim) {
    const int64_t vdim = (dim + 15) / 16 * 16;
    return kTileQ * dim + kTileQ * (kGroupK + 16) + kTileQ * vdim + 2 * kTileQ + 16 * kTileQ + 16;
}

void run_tile(const Tile &t) {
    // One scratch per pool thread, grown to the largest head dim seen: no allocation per tile.
    thread_local std::vector<float> scratch;
    const size_t need = static_cast<size_t>(tile_scratch_floats(t.pr->dim));
    if (scratch.size() < need) scratch.resize(need);
    const slip_isa isa = isa_active();
    if (isa >= SLIP_ISA_AVX512) tile_avx512(t, scratch.data());
    else if (isa >= SLIP_ISA_AVX2) tile_avx2(t, scratch.data());
    else tile_portable(t, scratch.data());
}

Packed pack(const Problem &pr, std::vector<float> &kbuf, std::vector<float> &vbuf) {
    Packed pk;
    const int64_t D = pr.dim, W = active_width();
    pk.chunks = (pr.nk + kChunkK - 1) / kChunkK;
    // Zero padding: keys past the end read 0 (their scores are then set to -inf); the extra
    // kChunkK floats let a segment starting mid-panel load whole vectors past its end.
    kbuf.assign(static_cast<size_t>(pr.batch * pr.heads_k * pk.chunks * D * kChunkK + kChunkK), 0.0f);
    pk.vdim = (D + W - 1) / W * W;
    const bool repack_v = pk.vdim != D;
    if (repack_v) vbuf.assign(static_cast<size_t>(pr.batch * pr.heads_k * pr.nk * pk.vdim), 0.0f);
    parallel_for(pr.batch * pr.heads_k, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int64_t b = t / pr.heads_k, hk = t % pr.heads_k;
            const Seq s = pr.seq(b);
            float *panels = kbuf.data() + t * pk.chunks * D * kChunkK;
            for (int64_t j = 0; j < s.nk; ++j) {
                const float *src = pr.k_row(s, hk, j);
                float *dst = panels + (j / kChunkK) * D * kChunkK + j % kChunkK;
                for (int64_t d = 0; d < D; ++d) dst[d * kChunkK] = src[d];
            }
            if (repack_v) {
                float *vdst = vbuf.data() + t * pr.nk * pk.vdim;
                for (int64_t j = 0; j < s.nk; ++j)
                    std::copy(pr.v_row(s, hk, j), pr.v_row(s, hk, j) + D, vdst + j * pk.vdim);
            }
        }
    });
    pk.k = kbuf.data();
    pk.v = repack_v ? vbuf.data() : nullptr;
    return pk;
}

// Appends [j0, j1) to segs, split where it crosses a K panel boundary.
void add_segments(int64_t j0, int64_t j1, std::vector<Segment> &segs) {
    while (j0 < j1) {
        const int64_t e = std::min(j1, (j0 / kChunkK + 1) * kChunkK);
        segs.push_back({j0, e});
        j0 = e;
    }
}

void run_dense(const Problem &pr) {
    std::vector<float> kbuf, vbuf;
    const Packed pk = pack(pr, kbuf, vbuf);
    // Query tile height: kTileQ (K and V stream from memory once per 256 rows at long N),
    // halved while that leaves fewer than 32 tiles per thread, so short sequences still balance.
    // Tile height never changes results: rows are independent, and keys past a row's causal
    // end are exact no-ops (dense-kernel.h).
    int64_t th = kTileQ;
    const auto tiles = [&](int64_t h) {
        int64_t n = 0;
        for (int64_t b = 0; b < pr.batch; ++b) n += (pr.seq(b).nq + h - 1) / h;
        return n * pr.heads_q;
    };
    while (th > 64 && tiles(th) < 32 * num_threads()) th /= 2;
    // Work items (sequence, first query row), the last tiles of each sequence first: under
    // causality they are the longest, and running them first evens out the finish.
    std::vector<std::pair<int64_t, int64_t>> items;
    for (int64_t b = 0; b < pr.batch; ++b)
        if (const int64_t nq = pr.seq(b).nq; nq > 0)
            for (int64_t i = (nq - 1) / th * th; i >= 0; i -= th) items.push_back({b, i});
    const int64_t n = static_cast<int64_t>(items.size()), total = n * pr.heads_q;
    // One task at a time from a shared counter (the pool hands out a few coarse chunks per
    // thread; on a shared machine a stalled thread then leaves a long tail).
    std::atomic<int64_t> next{0};
    parallel_for(num_threads(), 1, [&](int64_t, int64_t) {
        std::vector<Segment> segs;
        for (int64_t task; (task = next.fetch_add(1)) < total;) {
            // Head-major: the threads work on one head's K and V at a time (cache reuse).
            const int64_t h = task / n;
            const auto [b, i0] = items[static_cast<size_t>(task % n)];
            Tile t{&pr, &pk, pr.seq(b), h, i0, 0, nullptr, 0};
            t.i1 = std::min(t.s.nq, i0 + th);
            int64_t kend = t.s.nk;
            if (pr.causal) kend = std::clamp<int64_t>(t.i1 - 1 + t.s.causal_offset() + 1, 0, kend);
            segs.clear();
            add_segments(0, kend, segs);
            t.seg = segs.data();
            t.nseg = static_cast<int64_t>(segs.size());
            run_tile(t);
        }
    });
}

}  // namespace slip::attn
