// The streamed NVFP4 GEMV (sm_90, M <= 16, N wide enough for a CTA an SM without splitting K): the
// weight goes from HBM to shared memory by the copy engine (cp.async.bulk into a ring of stages
// behind mbarriers), so the bytes in flight are set by the ring, not by registers; the warps only
// decode and multiply, and nothing is summed across CTAs.
//
// A CTA owns 4 or 8 tiles (32 or 64 output columns) over all of K. A stage holds kStreamChunks
// chunks of each tile (contiguous in the planned weight: one copy a tile) and of each row of x (one
// copy a row). One producer warp issues the copies; two consumer warps take chunk j of every stage,
// each for half of the CTA's tile pairs (each pair the MMA's A operand, 16 weight rows, and x's rows
// its B operand, as in the skinny kernel; a warp's pairs are independent chains of MMAs). At the end
// the consumers' sums of a pair are added in chunk order through shared memory (deterministic).
//
// Measured against the skinny kernel (bench/NOTES.md, H200): faster at K = N = 8,192 and at M 1,
// 4,096; at M > 8 with few columns (4,096) the skinny kernel's K splits read x less often and stay.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <type_traits>

#include "fp4-cuda.cuh"
#include "fp4-decode.cuh"

namespace slip::cuda::fp4 {

namespace {

// A CTA's shape: TILES tiles of 8 columns (TILES / 2 pairs, each the A operand of 16-row MMAs),
// kStreamChunks chunks of K a stage, two consumer warps a chunk of the stage with half the pairs
// each. (One warp a chunk with all the pairs reads x half as often but leaves ~2 warps a scheduler,
// under one of them ready: 0.2-0.6 us slower at M 1 in one A/B run, bench/NOTES.md.)
template <int TILES>
struct StreamShape {
    static_assert(TILES == 4 || TILES == 8);
    static constexpr int groups = 2;                                // consumer warps a chunk
    static constexpr int consumers = kStreamChunks * groups;
    static constexpr int threads = (consumers + 1) * 32;             // and the producer warp
    static constexpr int tile_run = kStreamChunks * kTileBytes;  // a tile's chunks of one stage: one copy
    static constexpr int x_at = TILES * tile_run;                // x's rows after the weight in a stage
    // x's rows padded by 16 bytes, so that rows g and g + 1 fall in different bank groups (lane
    // (g, t) reads 16 bytes at 64 t + 16 u of row g: a 2-way conflict is left, as 4t mod 8 allows).
    static constexpr int x_row = kStreamChunks * kChunk * 2 + 16;
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t *b, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(b)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect(uint64_t *b, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(b)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t *b) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(b)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t *b, unsigned parity) {
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(smem_addr(b)), "r"(parity)
                     : "memory");
}
// bytes (a multiple of 16) from global src to shared dst, counted on b when they land. Weights are
// read once: evict_first keeps x, read by every CTA, in L2 against them.
__device__ __forceinline__ void bulk_copy(void *dst, const void *src, unsigned bytes, uint64_t *b, bool once) {
    if (once) {
        uint64_t policy;
        asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
        asm volatile(
            "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;\n" ::"r"(
                smem_addr(dst)),
            "l"(src), "r"(bytes), "r"(smem_addr(b)), "l"(policy)
            : "memory");
    } else {
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                         smem_addr(dst)),
                     "l"(src), "r"(bytes), "r"(smem_addr(b))
                     : "memory");
    }
}
#endif

// UPPER: M > 8 (tokens 8..15 are a second B operand). stage_bytes: x_at + M rows of x_row; stages:
// at most kStreamMaxStages (plan_launch).
template <bool F16, bool UPPER, int TILES>
__global__ void __launch_bounds__(StreamShape<TILES>::threads)
    streamed_kernel(Weight w, Problem p, int stages, int stage_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    using S = StreamShape<TILES>;
    constexpr int CHUNKS = kStreamChunks, PAIRS = TILES / 2 / S::groups;  // pairs a consumer warp
    constexpr int kHalves = UPPER ? 2 : 1, kAcc = kHalves * 4;
    static_assert(TILES / 2 * CHUNKS * kAcc * 32 * sizeof(float) <= S::x_at, "the consumers' sums fit in one stage");
    extern __shared__ __align__(128) uint8_t ring[];
    __shared__ uint64_t full[kStreamMaxStages], empty[kStreamMaxStages];
    __shared__ uint32_t lut[2];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int nt0 = blockIdx.x * TILES, rows = static_cast<int>(p.m);
    if (threadIdx.x == 0) {
        for (int s = 0; s < stages; ++s) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], S::consumers);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        // The decode tables' first words, through shared memory: as constants ptxas moves them into
        // a register before nearly every PRMT that reads them (see skinny_kernel).
        lut[0] = Lut<F16>::hi0;
        lut[1] = Lut<false>::lo0;
    }
    __syncthreads();

    // Loaded now and used only in the epilogue, which would otherwise wait a DRAM round trip for it.
    const float global = __ldg(w.global);
    // A consumer's chunk of each stage, its first tile pair and its sums, a pair each.
    const int chunk = warp % CHUNKS, pair0 = warp / CHUNKS * PAIRS;
    // Load i carries group (i + rot) % loads of CHUNKS chunks: the CTAs start at different points
    // of K, so that at any time x's rows are read a few CTAs to a chunk (x is every CTA's, and all
    // of them on the same chunks at once make its lines hot spots in L2).
    const int loads = (w.nchunks + CHUNKS - 1) / CHUNKS, rot = static_cast<int>(blockIdx.x % loads);
    float acc[PAIRS][kHalves][4] = {};
    if (warp == S::consumers) {
        // The producer: load i fills stage i % stages with group grp's chunks, CHUNKS grp .. CHUNKS
        // (grp + 1) - 1, of the CTA's tiles and of x's rows, once the consumers have released what it
        // held before.
        const int tiles = min(TILES, w.ntiles - nt0);
        const uint8_t *wsrc = w.tiles + (static_cast<int64_t>(nt0) + min(lane, tiles - 1)) * w.nchunks * kTileBytes;
        const uint8_t *xsrc = static_cast<const uint8_t *>(p.x) + static_cast<int64_t>(min(max(lane - TILES, 0), rows - 1)) * w.k * 2;
        const bool copies_w = lane < tiles, copies_x = lane >= TILES && lane - TILES < rows;
        uint8_t *xdst = ring + S::x_at + (lane - TILES) * S::x_row;
        uint8_t *wdst = ring + lane * S::tile_run;
        int s = 0;
        unsigned phase = 0;
        for (int i = 0, grp = rot; i < loads; ++i, grp = grp + 1 == loads ? 0 : grp + 1) {
            const int c = grp * CHUNKS, nck = min(CHUNKS, w.nchunks - c);
            if (i >= stages) mbar_wait(&empty[s], phase ^ 1);
            const int64_t k0 = static_cast<int64_t>(c) * kChunk;
            const int xbytes = static_cast<int>(min(static_cast<int64_t>(nck) * kChunk, w.k - k0) * 2);  // 32 | xbytes
            const int64_t at = static_cast<int64_t>(s) * stage_bytes;
            // Past K the weight is zero but the stage may hold anything from an earlier load (an
            // Inf of x times zero is NaN): the last chunk's tail of each row is zeroed.
            if (copies_x)
                for (int b = xbytes; b < nck * kChunk * 2; b += 16)
                    *reinterpret_cast<uint4 *>(xdst + at + b) = make_uint4(0u, 0u, 0u, 0u);
            __syncwarp();
            if (lane == 0) mbar_expect(&full[s], static_cast<unsigned>(tiles * nck * kTileBytes + rows * xbytes));
            __syncwarp();
            if (copies_w) bulk_copy(wdst + at, wsrc + c * kTileBytes, static_cast<unsigned>(nck * kTileBytes), &full[s], true);
            if (copies_x) bulk_copy(xdst + at, xsrc + k0 * 2, static_cast<unsigned>(xbytes), &full[s], false);
            if (++s == stages) {
                s = 0;
                phase ^= 1;
            }
        }
    } else {
        const int g = lane / 4, t = lane % 4;
        // The groups that hold a chunk of this warp's: the first `mine` (the last group may be short).
        const int mine = (w.nchunks - chunk + CHUNKS - 1) / CHUNKS;
        // Tokens past M read row M - 1 (their outputs are never stored; past the staged rows lies
        // the next stage, or the end of shared memory).
        // A lane's offsets in a stage, made once: ptxas otherwise rebuilds them from the thread index
        // inside the loop (~45 instructions a chunk), and an empty asm keeps it from doing so.
        int xa = S::x_at + min(g, rows - 1) * S::x_row + chunk * kChunk * 2 + t * 64;
        int xb = S::x_at + min(g + 8, rows - 1) * S::x_row + chunk * kChunk * 2 + t * 64;
        int wa = chunk * kTileBytes + lane * 16;
        int sa = chunk * kTileBytes + kCodeBytes + lane * 2;
        asm volatile("" : "+r"(xa), "+r"(xb), "+r"(wa), "+r"(sa));
        const uint32_t hi0 = lut[0], lo0 = lut[1];
        int s = 0, at = 0;
        unsigned phase = 0;
        for (int i = 0, grp = rot; i < loads; ++i, grp = grp + 1 == loads ? 0 : grp + 1) {
            mbar_wait(&full[s], phase);
            if (grp < mine) {
                const uint8_t *st = ring + at;
                uint4 av[4], bv[4];
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    av[u] = *reinterpret_cast<const uint4 *>(st + xa + 16 * u);
                    if constexpr (UPPER) bv[u] = *reinterpret_cast<const uint4 *>(st + xb + 16 * u);
                }
#pragma unroll
                for (int q = 0; q < PAIRS; ++q) {
                    const int run = 2 * (pair0 + q) * S::tile_run;
                    const uint8_t *t0 = st + wa + run, *s0 = st + sa + run;
                    const uint4 c0 = *reinterpret_cast<const uint4 *>(t0);
                    const uint4 c1 = *reinterpret_cast<const uint4 *>(t0 + S::tile_run);
                    uint32_t lo[2], hi[2];
                    scale_pairs<F16>(*reinterpret_cast<const uint16_t *>(s0), lo[0], hi[0]);
                    scale_pairs<F16>(*reinterpret_cast<const uint16_t *>(s0 + S::tile_run), lo[1], hi[1]);
#pragma unroll
                    for (int u = 0; u < 4; ++u) {
                        uint32_t r0[2][2], r1[2][2];  // weight rows g of tile 2pr and of tile 2pr + 1
                        decode<F16>(word(c0, u), u < 2 ? lo[0] : hi[0], r0, hi0, lo0);
                        decode<F16>(word(c1, u), u < 2 ? lo[1] : hi[1], r1, hi0, lo0);
                        float(&a)[kHalves][4] = acc[q];
                        mma<F16>(a[0], r0[0][0], r1[0][0], r0[0][1], r1[0][1], av[u].x, av[u].y);
                        mma<F16>(a[0], r0[1][0], r1[1][0], r0[1][1], r1[1][1], av[u].z, av[u].w);
                        if constexpr (UPPER) {
                            mma<F16>(a[1], r0[0][0], r1[0][0], r0[0][1], r1[0][1], bv[u].x, bv[u].y);
                            mma<F16>(a[1], r0[1][0], r1[1][0], r0[1][1], r1[1][1], bv[u].z, bv[u].w);
                        }
                    }
                }
            }
            __syncwarp();
            if (lane == 0) mbar_arrive(&empty[s]);
            at += stage_bytes;
            if (++s == stages) {
                s = at = 0;
                phase ^= 1;
            }
        }
    }
    // Every copy has landed (each consumer waited for every load): the ring is free for the sums,
    // pair-major: red[((pair * CHUNKS + chunk) * kAcc + j) * 32 + lane].
    __syncthreads();
    float *red = reinterpret_cast<float *>(ring);
    if (warp < S::consumers)
#pragma unroll
        for (int q = 0; q < PAIRS; ++q)
#pragma unroll
            for (int j = 0; j < kAcc; ++j)
                red[(((pair0 + q) * CHUNKS + chunk) * kAcc + j) * 32 + lane] = acc[q][j / 4][j % 4];
    __syncthreads();

    // Output e: accumulator j = e / 32 % kAcc (half j / 4, register j % 4) of lane e % 32 of pair
    // e / (32 kAcc), summed over the pair's consumers in chunk order.
    const float inv_g = 1.0f / global;
    for (int e = threadIdx.x; e < TILES / 2 * kAcc * 32; e += S::threads) {
        const int l = e % 32, j = e / 32 % kAcc, pr = e / (32 * kAcc), h = j / 4, r = j % 4;
        const int64_t row = pair_token(0, h, r, l);
        const int64_t col = static_cast<int64_t>(nt0 + 2 * pr + pair_tile(r)) * kTileRows + l / 4;
        if (row >= p.m || col >= w.n) continue;
        float v = 0.0f;
#pragma unroll
        for (int jj = 0; jj < CHUNKS; ++jj) v += red[((pr * CHUNKS + jj) * kAcc + j) * 32 + l];
        store1<F16>(p.y, row * w.n + col, epilogue(p, v, inv_g, row, col));
    }
#else
    __trap();  // planned only where the sm_90a code runs
#endif
}

}  // namespace

int stream_stage_bytes(int64_t m, int tiles) {
    auto bytes = [&](auto shape) { return decltype(shape)::x_at + static_cast<int>(m) * decltype(shape)::x_row; };
    return tiles == 8 ? bytes(StreamShape<8>{}) : bytes(StreamShape<4>{});
}

void gemv_streamed(const Weight &w, const Problem &p, const Launch &l, cudaStream_t stream) {
    const int bytes = l.stages * l.stage_bytes;
    auto go = [&](auto kernel, int tiles, int threads) {
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
        kernel<<<static_cast<unsigned>((w.ntiles + tiles - 1) / tiles), threads, bytes, stream>>>(w, p, l.stages,
                                                                                                    l.stage_bytes);
    };
    auto shape = [&](auto f16, auto upper) {
        constexpr bool F = decltype(f16)::value, U = decltype(upper)::value;
        if (l.stream_tiles == 8) return go(streamed_kernel<F, U, 8>, 8, StreamShape<8>::threads);
        go(streamed_kernel<F, U, 4>, 4, StreamShape<4>::threads);
    };
    using T = std::true_type;
    using F = std::false_type;
    if (p.f16) p.m > 8 ? shape(T{}, T{}) : shape(T{}, F{});
    else p.m > 8 ? shape(F{}, T{}) : shape(F{}, F{});
}

}  // namespace slip::cuda::fp4
