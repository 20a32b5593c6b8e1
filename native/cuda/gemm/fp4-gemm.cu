// NVFP4-weight GEMMs on tensor cores (sm_89 and sm_90 through mma.sync m16n8k16, FP32 accumulators).
//
// The decode (fp4-decode.cuh) gives the MMA the weight exactly in x's 16-bit type.
//
// Two kernels here, and on sm_90 a third for M <= 16 where the columns fill the GPU without splitting
// K (the streamed GEMV, fp4-stream.cu; plan_launch chooses):
//   skinny (M <= 64): memory-bound. The decoded weight is the MMA's A operand (16 weight rows) and
//     x its B operand (8 tokens), the two roles reversed from the tiled kernel's, so that neither
//     operand needs register moves. A CTA of 4 warps owns 4 x 2 or 4 x 4 tiles (64 or 128 output
//     columns) and a range of chunks, which its warps walk together, each decoding its own tiles:
//     x's chunk is copied into shared memory once a CTA (cp.async, a ring three chunks ahead) and
//     read by all four warps, and each lane has its tiles' 16-byte weight loads of the next chunk
//     in flight while it decodes this one; every weight byte is read once. Rows in blocks of 16
//     (grid z). When there are too few column blocks to fill the GPU, K is also split over CTAs
//     (grid y), and the partials are summed in split order (deterministic): on sm_90 the splits of
//     a column block form a cluster and read each other's shared memory, so a call is one kernel
//     with no workspace; before sm_90 they go through global memory, and the last CTA of a column
//     block to arrive sums them.
//   tiled (M > 64): 128 x 256 CTA tiles (wide in N: x is the 16-bit operand, so the tile's width
//     sets how often it is read again), 8 warps of 128 rows x 32 columns, one chunk (128 of K) per
//     stage, three stages filled by cp.async (sm_89, with less shared memory: 128 x 128, 2 stages).
//     A is stored with rows padded to 272 bytes and its 16-byte pieces swizzled, so the lanes'
//     16-byte fragment loads are free of bank conflicts.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cooperative_groups.h>

#include <algorithm>
#include <type_traits>

#include "fp4-cuda.cuh"
#include "fp4-decode.cuh"

namespace slip::cuda::fp4 {

namespace {

// ------------------------------------------------------------------ skinny (M <= 64)

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid) {
    const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// The 4 warps of a CTA walk the same chunks, each with its own tiles: x's chunk is fetched once a
// CTA into shared memory and read by all four, where a warp that owned its own chunks read x for
// itself (at M 16 that was 4 KB of x a chunk against 1 KB of weight, 128 MB of L2 reads at
// K = N = 8,192 for 36 MB of weight). A warp's tiles: 2 or 4 (plan_launch takes 4, halving x's
// reads again, unless 2 fill more of the GPU). With x out of registers, 4 tiles double-buffered
// fit 128 registers even with rows g + 8 live (UPPER), which held 168 when x was in registers too.
constexpr int kSkinnyWarps = 4;
constexpr int kSkinnyCtasPerSm = 4;  // the registers are cut for this many CTAs an SM
constexpr int kSkinnyStages = 4;     // x's ring: a chunk in use, three in flight
constexpr int kSkinnyThreads = kSkinnyWarps * 32;
__host__ __device__ constexpr int skinny_rows(bool upper) { return upper ? 16 : 8; }  // rows of x staged

// One chunk of a warp's weight: its tiles' codes and scales.
template <int TILES>
struct SkinnyChunk {
    uint4 code[TILES];
    uint32_t sc[TILES];
};

// The loop-invariant part of a lane's weight addresses, made once: the split's chunk i of the
// warp's tile j is at code + j * tile_stride + i * kTileBytes (its scales at scale + the same).
// Recomputed per load from the tile index (as the compiler did under register pressure) they were
// ~16 integer instructions a 16-byte load. Tiles past N read the warp's last tile below N again
// (a warp wholly past N reads the last tile), rather than loading zeros: what they add up lands in
// outputs that are never stored.
struct SkinnyBases {
    const uint8_t *code, *scale;
    int64_t tile_stride;
    int tiles;  // of the warp's tiles, those below N (at least 1)
};

template <int TILES>
__device__ __forceinline__ void skinny_load(SkinnyChunk<TILES> &ch, const SkinnyBases &sb, int i) {
    const int64_t off = static_cast<int64_t>(i) * kTileBytes;
    const uint8_t *code = sb.code + off, *scale = sb.scale + off;
#pragma unroll
    for (int j = 0; j < TILES; ++j) {
        ch.code[j] = ldg16_stream(code);
        ch.sc[j] = __ldg(reinterpret_cast<const uint16_t *>(scale));
        const int64_t step = j + 1 < sb.tiles ? sb.tile_stride : 0;
        code += step;
        scale += step;
    }
}

// Where 16-byte piece q (0..15, K 8q .. 8q + 7 of the chunk) of a staged row r of x lives, in
// pieces from the row's start (rows are 256 bytes). Lane (g, t) reads piece 4t + u of row g for
// k-step pair u; the 8 lanes of a 16-byte load's phase are rows 2i and 2i + 1 with t = 0..3,
// whose pieces fall in only two of the eight 16-byte bank groups unpermuted (a 4-way conflict).
// Flipping bit 1 by the row's parity and bit 0 by bit 3 (t's high bit) spreads them over all
// eight; within a row it only swaps pieces, so the copies stay one 16-byte store each.
__host__ __device__ constexpr int x_piece(int r, int q) { return q ^ ((r & 1) << 1 | q >> 3); }

// UPPER: the row block has rows past 8 (else rows g + 8 are known zero: not staged, no MMAs).
// TILES: tiles of 8 columns a warp. CLUSTER: the grid's y dimension (the K splits) is one cluster
// (sm_90), partials summed through distributed shared memory; else split partials go through
// `partial` and `counters`.
template <bool F16, bool UPPER, int TILES, bool CLUSTER>
__global__ void __launch_bounds__(kSkinnyThreads, kSkinnyCtasPerSm)
    skinny_kernel(Weight w, Problem p, int chunks_per_split, float *partial, unsigned *counters) {
    constexpr int kHalves = UPPER ? 2 : 1, kAcc = TILES / 2 * kHalves * 4;  // accumulators a thread
    constexpr int kRows = skinny_rows(UPPER), kStage = kRows * kChunk * 2;
    __shared__ __align__(128) uint8_t ring[kSkinnyStages * kStage];  // x's
    __shared__ bool last;
    constexpr int kOut = kAcc * kSkinnyThreads;  // the CTA's outputs
    // CLUSTER: the splits' partials of the outputs this CTA sums, written by its peers, split-major:
    // splits x ceil(kOut / splits) floats, at most kOut + kMaxClusterSplits - 1 (plan_launch caps
    // the splits of a cluster at kMaxClusterSplits).
    __shared__ float summed[CLUSTER ? kOut + kMaxClusterSplits : 1];
#if __CUDA_ARCH__ >= 900
    // A peer's shared memory may be written only once the peer runs: every thread arrives now and
    // waits before its first remote store, long after every CTA of the cluster has arrived.
    if constexpr (CLUSTER) asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
#endif
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int nt0 = blockIdx.x * (kSkinnyWarps * TILES), ntw = nt0 + warp * TILES;
    const int64_t m0 = static_cast<int64_t>(blockIdx.z) * 16;
    const int c_begin = blockIdx.y * chunks_per_split, nc = min(chunks_per_split, w.nchunks - c_begin);

    const int64_t tile_stride = static_cast<int64_t>(w.nchunks) * kTileBytes;
    const uint8_t *tile0 = w.tiles + min(ntw, w.ntiles - 1) * tile_stride + static_cast<int64_t>(c_begin) * kTileBytes;
    const SkinnyBases sb{tile0 + lane * 16, tile0 + kCodeBytes + lane * 2, tile_stride,
                         max(1, min(TILES, w.ntiles - ntw))};

    // Staging: thread (xr, xq) copies piece xq of rows xr and xr + 8 of each chunk. Rows past M and
    // pieces past K arrive as zeros (src-size 0, nothing read): past K the weight is zero but x
    // could be anything (NaN times zero). K is a multiple of 16: a piece is all in or all out.
    const uint16_t *x = static_cast<const uint16_t *>(p.x);
    const int xr = threadIdx.x / 16, xq = threadIdx.x % 16;
    const int64_t xk = static_cast<int64_t>(c_begin) * kChunk + 8 * xq;  // in the split's chunk i: xk + i * kChunk
    // The split's chunks 0 .. in - 1 have this thread's piece inside K; none for rows past M.
    const int in = static_cast<int>(max(min((w.k - xk + kChunk - 1) / kChunk, static_cast<int64_t>(nc)), int64_t{0}));
    const bool ok0 = m0 + xr < p.m, ok1 = UPPER && m0 + xr + 8 < p.m;
    const int in0 = ok0 ? in : 0, in1 = ok1 ? in : 0;
    const uint16_t *src0 = x + (ok0 ? m0 + xr : 0) * w.k + xk, *src1 = x + (ok1 ? m0 + xr + 8 : 0) * w.k + xk;
    uint8_t *const dst = ring + xr * (kChunk * 2) + x_piece(xr, xq) * 16;
    auto stage_x = [&](int i) {
        uint8_t *d = dst + (i % kSkinnyStages) * kStage;
        cp_async16(d, i < in0 ? src0 + i * kChunk : x, i < in0);
        if constexpr (UPPER) cp_async16(d + 8 * kChunk * 2, i < in1 ? src1 + i * kChunk : x, i < in1);
    };
    // Lane (g, t) reads pieces 4t + u of rows g and g + 8: their offsets in a stage.
    int xoff[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) xoff[u] = g * (kChunk * 2) + x_piece(g, 4 * t + u) * 16;

    // The weight is the MMA's A operand (16 rows: row g of tiles 2p and 2p+1) and x its B operand
    // (8 tokens: rows g of x for acc[p][0], g + 8 for acc[p][1]), so the decoded words land straight
    // in the A registers and x's 16-byte pieces are already B's register pairs: no operand moves
    // (with x as A, each MMA had up to four), and half the MMAs when M <= 8.
    float acc[TILES / 2][kHalves][4] = {};
    // The tables' first words, through shared memory so that the compiler cannot see their values:
    // as constants it moves them into a register again before nearly every PRMT that reads them
    // (121 moves in a loop of 904 instructions; an empty asm or a shuffle does not hide them). The
    // last stage is free until the first barrier of the loop, and each thread reads back its own word.
    uint32_t hi0, lo0 = 0u;
    {
        volatile uint32_t *tab = reinterpret_cast<volatile uint32_t *>(ring + (kSkinnyStages - 1) * kStage) + 2 * threadIdx.x;
        tab[0] = Lut<F16>::hi0;
        if constexpr (!F16) tab[1] = Lut<false>::lo0;
        hi0 = tab[0];
        if constexpr (!F16) lo0 = tab[1];
    }
    auto compute = [&](const SkinnyChunk<TILES> &ch, const uint8_t *st) {
        uint32_t slo[TILES], shi[TILES];
#pragma unroll
        for (int j = 0; j < TILES; ++j) scale_pairs<F16>(ch.sc[j], slo[j], shi[j]);
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            const uint4 av = *reinterpret_cast<const uint4 *>(st + xoff[u]);
            uint4 bv = make_uint4(0u, 0u, 0u, 0u);
            if constexpr (UPPER) bv = *reinterpret_cast<const uint4 *>(st + xoff[u] + 8 * kChunk * 2);
#pragma unroll
            for (int pr = 0; pr < TILES / 2; ++pr) {
                uint32_t r0[2][2], r1[2][2];  // weight rows g (tile 2pr) and g + 8 (tile 2pr + 1)
                decode<F16>(word(ch.code[2 * pr], u), u < 2 ? slo[2 * pr] : shi[2 * pr], r0, hi0, lo0);
                decode<F16>(word(ch.code[2 * pr + 1], u), u < 2 ? slo[2 * pr + 1] : shi[2 * pr + 1], r1, hi0, lo0);
                mma<F16>(acc[pr][0], r0[0][0], r1[0][0], r0[0][1], r1[0][1], av.x, av.y);
                mma<F16>(acc[pr][0], r0[1][0], r1[1][0], r0[1][1], r1[1][1], av.z, av.w);
                if constexpr (UPPER) {
                    mma<F16>(acc[pr][1], r0[0][0], r1[0][0], r0[0][1], r1[0][1], bv.x, bv.y);
                    mma<F16>(acc[pr][1], r0[1][0], r1[1][0], r0[1][1], r1[1][1], bv.z, bv.w);
                }
            }
        }
    };

    // Chunk i of the split is in stage i % kSkinnyStages; one commit group per chunk (empty past
    // the split's end) keeps wait_group's count. The weights go to registers one chunk ahead,
    // two buffers taking turns (not a copy per chunk: a move a register).
#pragma unroll
    for (int i = 0; i < kSkinnyStages - 1; ++i) {
        if (i < nc) stage_x(i);
        cp_async_commit();
    }
    auto step = [&](int i, const SkinnyChunk<TILES> &ch) {
        cp_async_wait<kSkinnyStages - 2>();
        // Chunk i is in for every thread; every warp is done with chunk i - 1, whose stage refills now.
        __syncthreads();
        if (i + kSkinnyStages - 1 < nc) stage_x(i + kSkinnyStages - 1);
        cp_async_commit();
        compute(ch, ring + (i % kSkinnyStages) * kStage);
    };
    // Loaded now and used only after the loop, which would otherwise wait a DRAM round trip for it.
    const float global = __ldg(w.global);
    SkinnyChunk<TILES> even, odd;
    if (nc > 0) skinny_load<TILES>(even, sb, 0);
    for (int i = 0; i < nc; i += 2) {
        if (i + 1 < nc) skinny_load<TILES>(odd, sb, i + 1);
        step(i, even);
        if (i + 1 >= nc) break;
        if (i + 2 < nc) skinny_load<TILES>(even, sb, i + 2);
        step(i + 1, odd);
    }

    const float inv_g = 1.0f / global;
    // Output e = j * kSkinnyThreads + thread is accumulator j (tile pair pr, token half h, register
    // r) of that thread (warp v, lane L: g = L / 4, q = L % 4): token 8h + 2q + (r & 1), weight row
    // g of the warp's tile 2pr + (r >= 2). A thread's own outputs are j * kSkinnyThreads + threadIdx.x.
    auto where = [&](int e, int64_t &row, int64_t &col) {
        const int j = e / kSkinnyThreads, th = e % kSkinnyThreads, l = th % 32;
        const int pr = j / (kHalves * 4), h = j / 4 % kHalves, r = j % 4;
        row = pair_token(m0, h, r, l);
        col = static_cast<int64_t>(nt0 + th / 32 * TILES + 2 * pr + pair_tile(r)) * kTileRows + l / 4;
        return row < p.m && col < w.n;
    };
    auto mine = [&](int j) { return acc[j / (kHalves * 4)][j / 4 % kHalves][j % 4]; };
    if constexpr (CLUSTER) {
#if __CUDA_ARCH__ >= 900
        // Every CTA of the cluster (the splits, ranked by blockIdx.y) sums a slice of the outputs
        // over the splits in rank order and stores it. Each CTA stores its partials of a slice
        // straight into the slice owner's shared memory (remote stores do not wait for a reply, as
        // the owner's remote loads did), and one cluster barrier makes them visible; afterwards
        // no CTA touches another's memory, so none waits for its peers again.
        namespace cg = cooperative_groups;
        cg::cluster_group cluster = cg::this_cluster();
        const int splits = static_cast<int>(cluster.num_blocks()), rank = static_cast<int>(cluster.block_rank());
        const int slice = (kOut + splits - 1) / splits;
        asm volatile("barrier.cluster.wait.aligned;\n" ::: "memory");
#pragma unroll
        for (int j = 0; j < kAcc; ++j) {
            const int e = j * kSkinnyThreads + threadIdx.x, owner = e / slice;
            cluster.map_shared_rank(summed, owner)[rank * slice + e - owner * slice] = mine(j);
        }
        cluster.sync();
        const int e0 = rank * slice, e1 = min(kOut, e0 + slice);
        for (int e = e0 + threadIdx.x; e < e1; e += kSkinnyThreads) {
            int64_t row, col;
            if (!where(e, row, col)) continue;
            float v = 0.0f;
            for (int r = 0; r < splits; ++r) v += summed[r * slice + e - e0];
            store1<F16>(p.y, row * w.n + col, epilogue(p, v, inv_g, row, col));
        }
#else
        (void)summed;
        __trap();  // launched as a cluster only on sm_90
#endif
    } else {
        // Warps own distinct outputs, so each thread stores its own accumulators.
        const bool split = gridDim.y > 1;
#pragma unroll
        for (int j = 0; j < kAcc; ++j) {
            int64_t row, col;
            if (!where(j * kSkinnyThreads + threadIdx.x, row, col)) continue;
            if (split) partial[(blockIdx.y * p.m + row) * w.n + col] = mine(j);
            else store1<F16>(p.y, row * w.n + col, epilogue(p, mine(j), inv_g, row, col));
        }
        if (!split) return;

        // The last split of this column block to arrive sums all of them, in split order.
        __threadfence();
        __syncthreads();
        if (threadIdx.x == 0) {
            const unsigned before = atomicAdd(counters + blockIdx.z * gridDim.x + blockIdx.x, 1u);
            last = before == gridDim.y - 1;
        }
        __syncthreads();
        if (!last) return;
        __threadfence();
#pragma unroll
        for (int j = 0; j < kAcc; ++j) {
            int64_t row, col;
            if (!where(j * kSkinnyThreads + threadIdx.x, row, col)) continue;
            float v = 0.0f;
            for (unsigned s = 0; s < gridDim.y; ++s) v += __ldcg(partial + (s * p.m + row) * w.n + col);
            store1<F16>(p.y, row * w.n + col, epilogue(p, v, inv_g, row, col));
        }
    }
}

// ------------------------------------------------------------------ tiled (M > 64)

constexpr int kBM = 128;
constexpr int kWarpTiles = 4;           // 4 tiles of 8 columns per warp
constexpr int kMTiles = kBM / 16;       // 8
constexpr int kARow = kChunk * 2 + 16;  // bytes per A row in shared memory
constexpr int kABytes = kBM * kARow;

// CTA shapes: 128 x 256 in 3 stages (156 KB of shared memory: Hopper), or 128 x 128 in 2 (86 KB:
// what an sm_89 block may have).
template <int BN>
struct Tiled {
    static constexpr int warps = BN / kTileRows / kWarpTiles;
    static constexpr int stages = BN == 256 ? 3 : 2;
    static constexpr int stage = kABytes + BN / kTileRows * kTileBytes;
    static constexpr int smem = stages * stage;
};

// Where 16-byte piece q (0..15) of an A row lives. Lanes (g, t) read piece 4t + j of rows g and
// g + 1 in one phase; with rows 17 pieces apart, flipping bit 1 of the upper half's pieces puts
// those 8 reads in 8 different 16-byte bank groups.
__device__ __forceinline__ int a_piece(int q) { return q ^ ((q >> 2) & 2); }

// Chunk c of the CTA's A rows and B tiles into a stage; what lies past M, K or N reads as zeros.
template <int BN>
__device__ __forceinline__ void load_stage(uint8_t *stage, const Weight &w, const Problem &p, int64_t m0, int nt0,
                                           int c) {
    constexpr int kThreads = Tiled<BN>::warps * 32;
    // Rows tid/16 + 8i, piece tid % 16. Not unrolled: unrolled, the compiler keeps all 16 row
    // addresses live across the main loop and spills the accumulators.
    const uint16_t *x = static_cast<const uint16_t *>(p.x);
    const int q = threadIdx.x % 16, row0 = threadIdx.x / 16;
    const int64_t gk = static_cast<int64_t>(c) * kChunk + q * 8;
    const uint16_t *src = x + (m0 + row0) * w.k + gk;
    uint8_t *dst = stage + row0 * kARow + a_piece(q) * 16;
#pragma unroll 1
    for (int row = row0; row < kBM; row += kThreads / 16) {
        const bool ok = m0 + row < p.m && gk < w.k;
        cp_async16(dst, ok ? src : x, ok);
        src += kThreads / 16 * w.k;
        dst += kThreads / 16 * kARow;
    }
    uint8_t *bs = stage + kABytes;
    for (int idx = threadIdx.x; idx < BN / kTileRows * (kTileBytes / 16); idx += kThreads) {
        const int j = idx / (kTileBytes / 16), piece = idx % (kTileBytes / 16), nt = nt0 + j;
        const bool ok = nt < w.ntiles;
        const uint8_t *src = ok ? w.tiles + (static_cast<int64_t>(nt) * w.nchunks + c) * kTileBytes + piece * 16 : w.tiles;
        cp_async16(bs + j * kTileBytes + piece * 16, src, ok);
    }
}

template <bool F16, int BN>
__global__ void __launch_bounds__(Tiled<BN>::warps * 32, 1) tiled_kernel(Weight w, Problem p) {
    constexpr int kStages = Tiled<BN>::stages, kStage = Tiled<BN>::stage;
    extern __shared__ __align__(16) uint8_t smem[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int nt0 = blockIdx.x * (BN / kTileRows);
    const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM;

    float acc[kMTiles][kWarpTiles][4];
#pragma unroll
    for (int i = 0; i < kMTiles; ++i)
#pragma unroll
        for (int j = 0; j < kWarpTiles; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;

    // Chunk c lives in stage c % 3; one commit group per chunk (empty past the end) keeps the count.
#pragma unroll
    for (int c = 0; c < kStages - 1; ++c) {
        if (c < w.nchunks) load_stage<BN>(smem + c * kStage, w, p, m0, nt0, c);
        cp_async_commit();
    }
    for (int c = 0; c < w.nchunks; ++c) {
        cp_async_wait<kStages - 2>();
        __syncthreads();  // chunk c is in; every warp is done with chunk c - 1, whose stage refills now
        if (c + kStages - 1 < w.nchunks)
            load_stage<BN>(smem + (c + kStages - 1) % kStages * kStage, w, p, m0, nt0, c + kStages - 1);
        cp_async_commit();
        const uint8_t *as = smem + c % kStages * kStage, *bs = as + kABytes + warp * kWarpTiles * kTileBytes;
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            // Code words are read per k-step pair, not held for the chunk: registers are the limit.
            uint32_t b[kWarpTiles][2][2];
#pragma unroll
            for (int j = 0; j < kWarpTiles; ++j) {
                const uint8_t *tile = bs + j * kTileBytes;
                const uint32_t wd = reinterpret_cast<const uint32_t *>(tile + lane * 16)[q];
                uint32_t slo, shi;
                scale_pairs<F16>(reinterpret_cast<const uint16_t *>(tile + kCodeBytes)[lane], slo, shi);
                decode<F16>(wd, q < 2 ? slo : shi, b[j]);
            }
            const int piece = a_piece(t * 4 + q) * 16;
#pragma unroll
            for (int i = 0; i < kMTiles; ++i) {
                const uint4 av = *reinterpret_cast<const uint4 *>(as + (i * 16 + g) * kARow + piece);
                const uint4 bv = *reinterpret_cast<const uint4 *>(as + (i * 16 + g + 8) * kARow + piece);
#pragma unroll
                for (int j = 0; j < kWarpTiles; ++j) mma_pair<F16>(acc[i][j], av, bv, b[j]);
            }
        }
    }

    const float inv_g = 1.0f / __ldg(w.global);
#pragma unroll
    for (int i = 0; i < kMTiles; ++i)
#pragma unroll
        for (int j = 0; j < kWarpTiles; ++j)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int64_t row = m0 + i * 16 + g + 8 * h;
                const int64_t col = static_cast<int64_t>(nt0 + warp * kWarpTiles + j) * kTileRows + 2 * t;
                if (row >= p.m || col >= w.n) continue;
                const float v0 = epilogue(p, acc[i][j][2 * h], inv_g, row, col);
                if (p.pair_stores) {  // n even, so col + 1 < n too
                    store2<F16>(p.y, row * w.n + col, v0, epilogue(p, acc[i][j][2 * h + 1], inv_g, row, col + 1));
                } else {
                    store1<F16>(p.y, row * w.n + col, v0);
                    if (col + 1 < w.n) store1<F16>(p.y, row * w.n + col + 1, epilogue(p, acc[i][j][2 * h + 1], inv_g, row, col + 1));
                }
            }
}

// ------------------------------------------------------------------ repack and column powers

__global__ void repack_kernel(const uint8_t *codes, const uint8_t *scales, const float *global, int64_t n, int64_t k,
                              int ntiles, int nchunks, uint8_t *tiles, float *global_out) {
    const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (id == 0) *global_out = *global;
    const int64_t tile = id / 32;
    if (tile >= static_cast<int64_t>(ntiles) * nchunks) return;
    const int lane = static_cast<int>(id % 32), g = lane / 4, t = lane % 4;
    const int64_t nt = tile / nchunks, c = tile % nchunks;
    const int64_t row = nt * kTileRows + g, k0 = c * kChunk + t * 32;  // this lane's 32 columns
    uint8_t bytes[16];  // two codes each, the even column in the low nibble
#pragma unroll
    for (int i = 0; i < 16; ++i) bytes[i] = row < n && k0 + 2 * i < k ? codes[row * (k / 2) + k0 / 2 + i] : 0;
    uint32_t out[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        uint32_t wd = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int ea = 8 * j + i, eb = ea + 4;  // element i of k-steps 2j and 2j+1
            const uint32_t ca = (bytes[ea / 2] >> (4 * (ea % 2))) & 15u, cb = (bytes[eb / 2] >> (4 * (eb % 2))) & 15u;
            wd |= (ca & 7u) << (4 * i) | (cb & 7u) << (16 + 4 * i) | (ca >> 3) << (8 * i + 7) | (cb >> 3) << (8 * i + 3);
        }
        out[j] = wd;
    }
    uint8_t *dst = tiles + tile * kTileBytes;
    *reinterpret_cast<uint4 *>(dst + lane * 16) = make_uint4(out[0], out[1], out[2], out[3]);
    const int64_t groups = k / 16;
    const uint32_t s0 = row < n && k0 < k ? scales[row * groups + k0 / 16] : 0u;
    const uint32_t s1 = row < n && k0 + 16 < k ? scales[row * groups + k0 / 16 + 1] : 0u;
    reinterpret_cast<uint16_t *>(dst + kCodeBytes)[lane] = static_cast<uint16_t>(s0 | s1 << 8);
}

// One warp per weight row: the largest |e2m1 · scale| over its groups (E2M1 magnitudes are monotone
// in their code, so a group's largest magnitude code gives its largest value), then the power of two.
__global__ void column_powers_kernel(Weight w, float *colpow) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= w.n) return;
    constexpr float kE2M1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    const int64_t nt = row / kTileRows, g = row % kTileRows;
    float mx = 0.0f;
    for (int c = lane; c < w.nchunks; c += 32) {
        const uint8_t *tile = w.tiles + (nt * w.nchunks + c) * kTileBytes;
        const uint32_t *words = reinterpret_cast<const uint32_t *>(tile + g * 64);
#pragma unroll
        for (int grp = 0; grp < 8; ++grp) {  // 16 columns: words 2 grp and 2 grp + 1
            uint32_t top = 0;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const uint32_t wd = words[2 * grp + h];
#pragma unroll
                for (int i = 0; i < 8; ++i) top = max(top, (wd >> (4 * i)) & 7u);
            }
            const uint32_t sc = tile[kCodeBytes + g * 8 + grp] & 0x7Fu;  // |scale|: the codec allows either sign
            const float s = __half2float(__ushort_as_half(static_cast<unsigned short>(e4m3x2_to_f16x2(sc) & 0xFFFFu)));
            mx = fmaxf(mx, kE2M1[top] * s);  // exact: at most 5 significant bits
        }
    }
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, o));
    if (lane != 0) return;
    int e = 15;
    while (e > -14 && ldexpf(mx, e) > 448.0f) --e;  // mx · 2^e is exact: a comparison, no rounding
    colpow[row] = mx > 0.0f ? ldexpf(1.0f, e) : 1.0f;
}

template <bool F16>
void launch(const Weight &w, const Problem &p, const Launch &l, void *workspace, cudaStream_t stream) {
    if (l.skinny) {
        const int cta_tiles = kSkinnyWarps * l.skinny_tiles;
        const dim3 grid((w.ntiles + cta_tiles - 1) / cta_tiles, l.splits, static_cast<unsigned>((p.m + 15) / 16));
        auto skinny = [&](auto upper, auto tiles, auto cluster) {
            constexpr bool U = decltype(upper)::value, C = decltype(cluster)::value;
            constexpr int T = decltype(tiles)::value;
            float *partial = nullptr;
            unsigned *counters = nullptr;
            if (!C && l.splits > 1) {
                partial = static_cast<float *>(workspace);
                counters = reinterpret_cast<unsigned *>(static_cast<uint8_t *>(workspace) + l.counters_offset);
            }
            cudaLaunchConfig_t cfg = {};
            cfg.gridDim = grid;
            cfg.blockDim = dim3(kSkinnyThreads);
            cfg.stream = stream;
            cudaLaunchAttribute attr = {};
            attr.id = cudaLaunchAttributeClusterDimension;
            attr.val.clusterDim.x = 1;
            attr.val.clusterDim.y = static_cast<unsigned>(l.splits);
            attr.val.clusterDim.z = 1;
            cfg.attrs = &attr;
            cfg.numAttrs = C ? 1 : 0;
            // An error here is the runtime's last error, which the caller checks.
            (void)cudaLaunchKernelEx(&cfg, skinny_kernel<F16, U, T, C>, w, p, l.chunks_per_split, partial, counters);
        };
        auto tiles = [&](auto upper, auto cluster) {
            if (l.skinny_tiles == 4) skinny(upper, std::integral_constant<int, 4>{}, cluster);
            else skinny(upper, std::integral_constant<int, 2>{}, cluster);
        };
        using T = std::true_type;
        using F = std::false_type;
        if (p.m > 8) l.cluster ? tiles(T{}, T{}) : tiles(T{}, F{});
        else l.cluster ? tiles(F{}, T{}) : tiles(F{}, F{});
        return;
    }
    auto tiled = [&](auto bn) {
        constexpr int BN = decltype(bn)::value;
        cudaFuncSetAttribute(tiled_kernel<F16, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, Tiled<BN>::smem);
        const dim3 grid((w.ntiles + BN / kTileRows - 1) / (BN / kTileRows), static_cast<unsigned>((p.m + kBM - 1) / kBM));
        tiled_kernel<F16, BN><<<grid, Tiled<BN>::warps * 32, Tiled<BN>::smem, stream>>>(w, p);
    };
    if (l.wide) tiled(std::integral_constant<int, 256>{});
    else tiled(std::integral_constant<int, 128>{});
}

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

Launch plan_launch(const Weight &w, int64_t m, int sm_count, int smem_per_block, bool sm90a) {
    Launch l;
    l.wide = smem_per_block >= Tiled<256>::smem;
    if (m > kSkinnyMaxRows) return l;
    // The streamed GEMV where its CTAs fill 7/8 of the SMs or more: 8 tiles a CTA (x read half as
    // often), else 4 when x is at most 8 rows (above that, the skinny kernel's K splits read less
    // of x: at M 16, K = N = 4,096 4 tiles measured 11.8-12.1 us against its 11.6-11.8).
    auto fills = [&](int tiles) { return (w.ntiles + tiles - 1) / tiles * 8 >= int64_t{7} * sm_count; };
    const int tiles = fills(8) ? 8 : m <= 8 && fills(4) ? 4 : 0;
    if (sm90a && m <= kStreamMaxRows && tiles) {
        // The ring: about kStreamInFlight bytes of weight a CTA (2 stages at least), within the
        // shared memory of the CTAs an SM holds at once. More stages measured slower at M 1 (at
        // K = N = 8,192 16 stages 20.4 us, 2 19.0: a stage's bytes arrive behind the others'), fewer
        // slower at M 16 (2 stages 24.1 us, 4 22.8).
        const int64_t ctas = (w.ntiles + tiles - 1) / tiles, weight_stage = int64_t{tiles} * kStreamChunks * kTileBytes;
        const int64_t per_sm = std::min<int64_t>(2, (ctas + sm_count - 1) / std::max(sm_count, 1));
        const int64_t budget = (smem_per_block + 1024) / per_sm - 2048;
        const int64_t loads = (w.nchunks + kStreamChunks - 1) / kStreamChunks;
        const int64_t want = std::max<int64_t>(2, (kStreamInFlight + weight_stage - 1) / weight_stage);
        l.streamed = true;
        l.stream_tiles = tiles;
        l.stage_bytes = stream_stage_bytes(m, tiles);
        l.stages = static_cast<int>(
            std::max<int64_t>(1, std::min({loads, want, int64_t{kStreamMaxStages}, budget / l.stage_bytes})));
        return l;
    }
    l.skinny = true;
    // As many CTAs as are resident at once (one wave); a split at least 2 chunks, so that the next
    // chunk's loads overlap this one's decode; a cluster holds at most kMaxClusterSplits. (Filling
    // a second wave instead, 3 splits at M = 16 and K = N = 8,192, took 0.0355 ms against 0.0254
    // with one.)
    const int64_t rows = (m + 15) / 16, slots = kSkinnyCtasPerSm * static_cast<int64_t>(std::max(sm_count, 1));
    const int64_t most = std::max<int64_t>(1, std::min<int64_t>(kMaxClusterSplits, w.nchunks / 2));
    auto blocks = [&](int tiles) { return (w.ntiles + kSkinnyWarps * tiles - 1) / (kSkinnyWarps * tiles) * rows; };
    auto splits = [&](int tiles) { return std::max<int64_t>(1, std::min(slots / blocks(tiles), most)); };
    // 4 tiles a warp read x half as often as 2 (every CTA reads all of x in its K range), unless
    // the cluster limit leaves them fewer CTAs (N = 4,096: 256 against 512).
    l.skinny_tiles = blocks(4) * splits(4) >= blocks(2) * splits(2) ? 4 : 2;
    const int64_t want = splits(l.skinny_tiles);
    l.chunks_per_split = static_cast<int>((w.nchunks + want - 1) / want);
    l.splits = l.chunks_per_split > 0 ? (w.nchunks + l.chunks_per_split - 1) / l.chunks_per_split : 1;
    if (l.splits < 1) l.splits = 1;
    l.cluster = sm90a && l.splits > 1;
    if (l.splits > 1 && !l.cluster) {
        l.counters_offset = align256(static_cast<size_t>(l.splits) * m * w.n * sizeof(float));
        l.counters_bytes = static_cast<size_t>(blocks(l.skinny_tiles)) * sizeof(unsigned);
        l.workspace_bytes = l.counters_offset + align256(l.counters_bytes);
    }
    return l;
}

void repack(const uint8_t *codes, const uint8_t *scales, const float *global, int64_t n, int64_t k, uint8_t *tiles,
            float *global_out, int ntiles, int nchunks, cudaStream_t stream) {
    const int64_t threads = static_cast<int64_t>(ntiles) * nchunks * 32;
    const int block = 256;
    repack_kernel<<<static_cast<unsigned>(std::max<int64_t>(1, (threads + block - 1) / block)), block, 0, stream>>>(
        codes, scales, global, n, k, ntiles, nchunks, tiles, global_out);
}

void column_powers(const Weight &w, float *colpow, cudaStream_t stream) {
    const int64_t blocks = (w.n + 7) / 8;
    column_powers_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(w, colpow);
}

void gemm(const Weight &w, const Problem &p, const Launch &l, void *workspace, cudaStream_t stream) {
    if (l.streamed) return gemv_streamed(w, p, l, stream);
    if (p.f16) launch<true>(w, p, l, workspace, stream);
    else launch<false>(w, p, l, workspace, stream);
}

}  // namespace slip::cuda::fp4
