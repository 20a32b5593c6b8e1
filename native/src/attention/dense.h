// The FP32 tiled attention shared by slip_attn_dense and slip_attn_block_sparse: a driver packs
// K (and V when D is not a multiple of the vector width) once, then processes query tiles of
// kTileQ rows against a list of key segments, each inside one kChunkK-key panel of packed K.
#pragma once

#include <cstdint>
#include <vector>

#include "attention-common.h"

namespace slip::attn {

// Query rows per tile (at most; run_dense halves it for short sequences) and keys per packed K
// panel: the FlashAttention tiling (Dao et al., arXiv 2205.14135, Alg. 1) sized for a CPU
// cache. A panel (64 keys x D) stays in L1 while every row block of the tile reads it; a tall
// tile makes K and V stream from memory once per 256 query rows (at N = 16K, D = 128 they are
// 8 MiB each per head). At D = 256 the tile's Q, scores and O take ~0.8 MiB of a 2 MiB L2.
constexpr int64_t kTileQ = 256;
constexpr int64_t kChunkK = 64;
// Keys per softmax step: up to kGroupK keys of adjacent segments share one running-max update
// and one pass of O += P V, which divides the per-step work of a 64-key step (row max
// reduction, alpha, O load/scale/store) by kGroupK / kChunkK.
constexpr int64_t kGroupK = 4 * kChunkK;

// Caller's block mask for block-sparse attention: U8 [B, Hq, nqb, nkb].
struct BlockMask {
    const uint8_t *keep;
    int64_t block_q, block_k, nqb, nkb;
};

// A key range [j0, j1) that lies inside one packed panel (j0 / kChunkK == (j1 - 1) / kChunkK).
struct Segment {
    int64_t j0, j1;
};

// K (and V) in the layout the kernel reads; built once per call by the driver.
struct Packed {
    const float *k = nullptr;  // panels [B][Hk][chunks][D][kChunkK], zero padded
    int64_t chunks = 0;        // panels per (batch, kv head)
    const float *v = nullptr;  // [B][Hk][nk][vdim] when repacked, else nullptr (use v_row)
    int64_t vdim = 0;          // row length of packed V: D rounded up to the vector width
    const float *k_panels(const Problem &pr, const Seq &s, int64_t hk) const {
        return k + ((s.b * pr.heads_k + hk) * chunks) * pr.dim * kChunkK;
    }
};

// One query tile: rows [i0, i1) (i1 - i0 <= kTileQ) of head h in sequence s, over segments
// (in key order; adjacent ones are grouped up to kGroupK keys per softmax step).
struct Tile {
    const Problem *pr;
    const Packed *pk;
    Seq s;
    int64_t h, i0, i1;
    const Segment *seg;
    int64_t nseg;
};

// Per-ISA kernels (dense-avx512.cpp, dense-avx2.cpp, dense-portable.cpp). scratch holds at least
// tile_scratch_floats(D) floats, 64-byte aligned.
int64_t tile_scratch_floats(int64_t dim);
void tile_avx512(const Tile &t, float *scratch);
void tile_avx2(const Tile &t, float *scratch);
void tile_portable(const Tile &t, float *scratch);
// Vector width (floats) the active ISA's kernel pads packed V rows to.
int64_t active_width();

void run_dense(const Problem &pr);
// Returns the density: kept (query block, key block) pairs / pairs causality allows.
double run_block_sparse(const Problem &pr, const BlockMask &bm);

// Shared by both drivers (dense.cpp): pack K panels (and V rows when padded) into buffers the
// caller owns; split a key range at panel boundaries; run one tile on the active ISA.
Packed pack(const Problem &pr, std::vector<float> &kbuf, std::vector<float> &vbuf);
void add_segments(int64_t j0, int64_t j1, std::vector<Segment> &segs);
void run_tile(const Tile &t);

}  // namespace slip::attn
