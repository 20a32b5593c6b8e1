// NVFP4-weight GEMMs on tensor cores (sm_89 and sm_90 through mma.sync m16n8k16, FP32 accumulators).
//
// The weight is decoded on chip exactly to the activations' 16-bit type: E2M1 x E4M3 has at most 6
// significant bits and lies in [2^-10, 2688], which BF16 and FP16 both hold, so only the FP32
// summation rounds; 1/global (and the FP8 path's per-token scale) go to the epilogue. Decoding a
// 32-bit word of codes (fp4-cuda.cuh) into four B registers takes byte permutes: PRMT looks the
// eight E2M1 magnitudes up in two 8-byte tables (the low and the high byte of each 16-bit value),
// the sign bits are ORed into the high bytes, two more PRMTs interleave them into pairs, and one
// packed multiply applies the block's E4M3 scale (exact: the product is representable).
//
// Two kernels:
//   skinny (M <= 64): memory-bound. The decoded weight is the MMA's A operand (16 weight rows) and
//     x its B operand (8 tokens), the two roles reversed from the tiled kernel's, so that neither
//     operand needs register moves. A CTA of 4 warps owns 32 output columns (4 tiles; 2 tiles
//     when M > 8) and a range of chunks, the warps taking every 4th chunk: each lane has its
//     tiles' 16-byte weight loads (and scale loads, 4 activation loads per row) of its next chunk
//     in flight while it decodes this one, and every weight byte is read once. Rows in blocks of 16 (grid z). When there are too
//     few column blocks to fill the GPU, K is also split over CTAs (grid y), and the partials are
//     summed in split order (deterministic): on sm_90 the splits of a column block form a cluster
//     and read each other's shared memory, so a call is one kernel with no workspace; before sm_90
//     they go through global memory, and the last CTA of a column block to arrive sums them.
//   tiled (M > 64): 128 x 256 CTA tiles (wide in N: x is the 16-bit operand, so the tile's width
//     sets how often it is read again), 8 warps of 128 rows x 32 columns, one chunk (128 of K) per
//     stage, three stages filled by cp.async (sm_89, with less shared memory: 128 x 128, 2 stages). A is stored with rows padded to 272 bytes and its
//     16-byte pieces swizzled, so the lanes' 16-byte fragment loads are free of bank conflicts.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cooperative_groups.h>

#include <algorithm>
#include <type_traits>

#include "../scale-divide.cuh"
#include "fp4-cuda.cuh"

namespace slip::cuda::fp4 {

namespace {

// E2M1 magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6 as BF16 and FP16, split into low-byte and high-byte
// tables of 8 bytes (two registers each) for PRMT. FP16's low bytes are all zero.
template <bool F16>
struct Lut;
template <>
struct Lut<false> {
    static constexpr uint32_t lo0 = 0xC0800000u, lo1 = 0xC0804000u, hi0 = 0x3F3F3F00u, hi1 = 0x40404040u;
};
template <>
struct Lut<true> {
    static constexpr uint32_t hi0 = 0x3E3C3800u, hi1 = 0x46444240u;
};

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint32_t d;
    asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
    return d;
}

// Two 16-bit products a * s, exact here (so the rounding mode never acts). BF16 multiplies as an FMA
// with -0 (sm_80's form; mul.bf16x2 is sm_90 only).
template <bool F16>
__device__ __forceinline__ uint32_t mul2(uint32_t a, uint32_t s) {
    uint32_t d;
    if constexpr (F16) asm("mul.rn.f16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(s));
    else asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(s), "r"(0x80008000u));
    return d;
}

// Two E4M3 bytes (low 16 bits of sc) to FP16x2, byte 0 in the low half: exact (every E4M3 value,
// subnormals included, is a normal FP16).
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t sc) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 890
    __trap();  // the host refuses devices below sm_89
    return 0;
#else
    uint32_t h;
    asm("{\n.reg .b16 t;\ncvt.u16.u32 t, %1;\ncvt.rn.f16x2.e4m3x2 %0, t;\n}\n" : "=r"(h) : "r"(sc));
    return h;
#endif
}

// A lane's two block scales as broadcast pairs of the MMA type: lo for k-steps 0..3, hi for 4..7.
template <bool F16>
__device__ __forceinline__ void scale_pairs(uint32_t sc, uint32_t &lo, uint32_t &hi) {
    const uint32_t h = e4m3x2_to_f16x2(sc);
    if constexpr (F16) {
        lo = prmt(h, 0u, 0x1010u);
        hi = prmt(h, 0u, 0x3232u);
    } else {
        // FP16 -> FP32 is exact, and FP32 -> BF16 is truncation here (at most 4 significant bits).
        const float f0 = __half2float(__ushort_as_half(static_cast<unsigned short>(h & 0xFFFFu)));
        const float f1 = __half2float(__ushort_as_half(static_cast<unsigned short>(h >> 16)));
        lo = prmt(__float_as_uint(f0), 0u, 0x3232u);
        hi = prmt(__float_as_uint(f1), 0u, 0x3232u);
    }
}

// One code word (k-steps 2j and 2j+1) to B fragments b[step][reg], times the scale pair s.
template <bool F16>
__device__ __forceinline__ void decode(uint32_t w, uint32_t s, uint32_t (&b)[2][2]) {
    using L = Lut<F16>;
    const uint32_t m = w & 0x77777777u, m2 = m >> 16;  // PRMT reads the selector's low 16 bits
    const uint32_t y0 = prmt(L::hi0, L::hi1, m) | (w & 0x80808080u);
    const uint32_t y1 = prmt(L::hi0, L::hi1, m2) | ((w << 4) & 0x80808080u);
    uint32_t x0 = 0u, x1 = 0u;
    if constexpr (!F16) {
        x0 = prmt(L::lo0, L::lo1, m);
        x1 = prmt(L::lo0, L::lo1, m2);
    }
    // Byte i of x/y is element i's low/high byte; pairs (0, 1) and (2, 3), element 0 in the low half.
    b[0][0] = mul2<F16>(prmt(x0, y0, 0x5140u), s);
    b[0][1] = mul2<F16>(prmt(x0, y0, 0x7362u), s);
    b[1][0] = mul2<F16>(prmt(x1, y1, 0x5140u), s);
    b[1][1] = mul2<F16>(prmt(x1, y1, 0x7362u), s);
}

__device__ __forceinline__ uint32_t word(const uint4 &v, int j) {
    return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

// c += A · B on a 16 x 8 x 16 tile. a: {row g, k lo}, {row g+8, k lo}, {row g, k hi}, {row g+8, k hi}.
template <bool F16>
__device__ __forceinline__ void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
    if constexpr (F16)
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// The k-step pair (2j, 2j+1) of one 16 x 8 output tile: av/bv hold rows g and g+8, columns
// 32t + 8j .. 32t + 8j + 7, so .x/.y are step 2j's low/high k and .z/.w step 2j+1's.
template <bool F16>
__device__ __forceinline__ void mma_pair(float (&c)[4], const uint4 &av, const uint4 &bv, const uint32_t (&b)[2][2]) {
    mma<F16>(c, av.x, bv.x, av.y, bv.y, b[0][0], b[0][1]);
    mma<F16>(c, av.z, bv.z, av.w, bv.w, b[1][0], b[1][1]);
}

template <bool F16>
__device__ __forceinline__ void store1(void *y, int64_t i, float v) {
    if constexpr (F16) static_cast<__half *>(y)[i] = __float2half_rn(v);
    else static_cast<__nv_bfloat16 *>(y)[i] = __float2bfloat16_rn(v);
}

template <bool F16>
__device__ __forceinline__ void store2(void *y, int64_t i, float v0, float v1) {
    if constexpr (F16) *reinterpret_cast<__half2 *>(static_cast<__half *>(y) + i) = __floats2half2_rn(v0, v1);
    else *reinterpret_cast<__nv_bfloat162 *>(static_cast<__nv_bfloat16 *>(y) + i) = __floats2bfloat162_rn(v0, v1);
}

__device__ __forceinline__ float epilogue(const Problem &p, float acc, float inv_g, int64_t row, int64_t col) {
    float v = acc * inv_g;
    if (p.row_scale) v *= p.row_scale[row];
    if (p.bias) v += p.bias[col];
    return v;
}

__device__ __forceinline__ uint4 ldg16(const void *p) { return __ldg(static_cast<const uint4 *>(p)); }

// Weights are read once: keep them out of L1.
__device__ __forceinline__ uint4 ldg16_stream(const void *p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

// ------------------------------------------------------------------ skinny (M <= 64)

// Tiles of 8 columns a CTA: 4 (32 columns) for up to 8 rows; 2 when rows g+8 are live too (UPPER),
// whose x pieces cost 32 registers more a buffer: with 4 tiles that kernel took 168 registers, 3
// CTAs an SM, and at M 16, K = N 8,192 its 256 CTAs left 7.75 warps an SM (DRAM 28%). With 2 tiles
// both kernels fit 4 CTAs (16 warps) an SM.
__host__ __device__ constexpr int skinny_tiles(bool upper) { return upper ? 2 : 4; }
constexpr int kSkinnyWarps = 4;
constexpr int kSkinnyCtasPerSm = 4;  // the registers are cut for this many CTAs an SM
__host__ __device__ constexpr int skinny_out(bool upper) { return skinny_tiles(upper) * 4 * 32; }  // accumulators a warp

// One chunk of a warp's operands: its tiles' codes and scales, rows g and g+8 of x.
template <int TILES>
struct SkinnyChunk {
    uint4 code[TILES];
    uint32_t sc[TILES];
    uint4 av[4], bv[4];
};

// The loop-invariant part of a thread's load addresses, made once: chunk c of the CTA's tile j is
// at code + j * tile_stride + c * kTileBytes (its scales at scale + the same), x's pieces of chunk c
// at xa + c * kChunk + 8q. Recomputed per load from the tile and row indices (as the compiler did
// under register pressure) they were ~16 integer instructions a 16-byte load. Tiles past N read
// the CTA's last tile again and rows past M read row 0, rather than loading zeros (five register
// moves a load): what they add up lands in outputs that are never stored.
struct SkinnyBases {
    const uint8_t *code, *scale;
    int64_t tile_stride;
    int tiles;  // of the CTA's tiles, those below N
    const uint16_t *xa, *xb;
    int64_t k;  // K less the thread's first column in a chunk
};

// UPPER: the row block has rows past 8 (else rows g+8 are known zero and not loaded).
template <bool UPPER>
__device__ __forceinline__ void skinny_load(SkinnyChunk<skinny_tiles(UPPER)> &ch, const SkinnyBases &sb, int c) {
    const int64_t off = static_cast<int64_t>(c) * kTileBytes;
    const uint8_t *code = sb.code + off, *scale = sb.scale + off;
#pragma unroll
    for (int j = 0; j < skinny_tiles(UPPER); ++j) {
        ch.code[j] = ldg16_stream(code);
        ch.sc[j] = __ldg(reinterpret_cast<const uint16_t *>(scale));
        const int64_t step = j + 1 < sb.tiles ? sb.tile_stride : 0;
        code += step;
        scale += step;
    }
    const int64_t kb = static_cast<int64_t>(c) * kChunk;
    const uint16_t *xa = sb.xa + kb, *xb = sb.xb + kb;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        // K is a multiple of 16: a piece is all in or all out. Past K the weight is zero but x
        // could be anything (NaN times zero), so those pieces are zeros.
        const bool in = kb + 8 * q < sb.k;
        ch.av[q] = in ? ldg16(xa + 8 * q) : make_uint4(0u, 0u, 0u, 0u);
        ch.bv[q] = UPPER && in ? ldg16(xb + 8 * q) : make_uint4(0u, 0u, 0u, 0u);
    }
}

// CLUSTER: the grid's y dimension (the K splits) is one cluster (sm_90), partials summed through
// distributed shared memory; else split partials go through `partial` and `counters`.
template <bool F16, bool UPPER, bool CLUSTER>
__global__ void __launch_bounds__(kSkinnyWarps * 32, kSkinnyCtasPerSm)
    skinny_kernel(Weight w, Problem p, int chunks_per_split, float *partial, unsigned *counters) {
    constexpr int kTiles = skinny_tiles(UPPER), kOut = skinny_out(UPPER);
    __shared__ float red[kSkinnyWarps][kOut];
    __shared__ bool last;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4;
    const int nt0 = blockIdx.x * kTiles;
    const int64_t m0 = static_cast<int64_t>(blockIdx.z) * 16;
    const int c_begin = blockIdx.y * chunks_per_split, c_end = min(c_begin + chunks_per_split, w.nchunks);
    const int64_t ra = m0 + g, rb = ra + 8;
    const bool va = ra < p.m, vb = rb < p.m;
    const uint16_t *x = static_cast<const uint16_t *>(p.x);
    // sb.k relative to the thread's first column (lane % 4) * 32, so one compare per piece.
    const int64_t col0 = (lane % 4) * 32;
    const int64_t tile_stride = static_cast<int64_t>(w.nchunks) * kTileBytes;
    const uint8_t *tile0 = w.tiles + nt0 * tile_stride;
    const SkinnyBases sb{tile0 + lane * 16, tile0 + kCodeBytes + lane * 2, tile_stride, min(kTiles, w.ntiles - nt0),
                         x + (va ? ra : 0) * w.k + col0, x + (vb ? rb : 0) * w.k + col0, w.k - col0};

    // The weight is the MMA's A operand (16 rows: row g of tiles 2p and 2p+1) and x its B operand
    // (8 tokens: rows g of x for acc[p][0], g + 8 for acc[p][1]), so the decoded words land straight
    // in the A registers and x's 16-byte loads are already B's register pairs: no operand moves
    // (with x as A, each MMA had up to four), and half the MMAs when M <= 8.
    float acc[kTiles / 2][2][4] = {};
    auto compute = [&](const SkinnyChunk<kTiles> &ch) {
#pragma unroll
        for (int pr = 0; pr < kTiles / 2; ++pr) {
            uint32_t slo0, shi0, slo1, shi1;
            scale_pairs<F16>(ch.sc[2 * pr], slo0, shi0);
            scale_pairs<F16>(ch.sc[2 * pr + 1], slo1, shi1);
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                uint32_t r0[2][2], r1[2][2];  // weight rows g (tile 2pr) and g + 8 (tile 2pr + 1)
                decode<F16>(word(ch.code[2 * pr], u), u < 2 ? slo0 : shi0, r0);
                decode<F16>(word(ch.code[2 * pr + 1], u), u < 2 ? slo1 : shi1, r1);
                mma<F16>(acc[pr][0], r0[0][0], r1[0][0], r0[0][1], r1[0][1], ch.av[u].x, ch.av[u].y);
                mma<F16>(acc[pr][0], r0[1][0], r1[1][0], r0[1][1], r1[1][1], ch.av[u].z, ch.av[u].w);
                if constexpr (UPPER) {
                    mma<F16>(acc[pr][1], r0[0][0], r1[0][0], r0[0][1], r1[0][1], ch.bv[u].x, ch.bv[u].y);
                    mma<F16>(acc[pr][1], r0[1][0], r1[1][0], r0[1][1], r1[1][1], ch.bv[u].z, ch.bv[u].w);
                }
            }
        }
    };
    // Register double buffering: the next chunk's loads are in flight while this one is decoded.
    // Two buffers taking turns (not a copy per chunk: that is 50 moves).
    SkinnyChunk<kTiles> even, odd;
    int c = c_begin + warp;
    if (c < c_end) skinny_load<UPPER>(even, sb, c);
    for (; c < c_end; c += 2 * kSkinnyWarps) {
        const int c1 = c + kSkinnyWarps, c2 = c1 + kSkinnyWarps;
        if (c1 < c_end) skinny_load<UPPER>(odd, sb, c1);
        compute(even);
        if (c1 >= c_end) break;
        if (c2 < c_end) skinny_load<UPPER>(even, sb, c2);
        compute(odd);
    }

#pragma unroll
    for (int pr = 0; pr < kTiles / 2; ++pr)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int r = 0; r < 4; ++r) red[warp][((pr * 2 + h) * 4 + r) * 32 + lane] = acc[pr][h][r];
    __syncthreads();

    const float inv_g = 1.0f / __ldg(w.global);
    const bool split = gridDim.y > 1;
    // Element e: tile pair pr, token half h, register r, lane L (g = L / 4, q = L % 4) -> token
    // 8h + 2q + (r & 1), weight row g of tile 2pr + (r >= 2).
    auto where = [&](int e, int64_t &row, int64_t &col) {
        const int pr = e / 256, h = (e / 128) % 2, r = (e / 32) % 4, l = e % 32;
        row = m0 + 8 * h + 2 * (l % 4) + (r & 1);
        col = static_cast<int64_t>(nt0 + 2 * pr + (r >= 2 ? 1 : 0)) * kTileRows + l / 4;
        return row < p.m && col < w.n;
    };
    // The CTA's warps summed into red[0], in warp order; each element by the thread that reads it
    // back below, so no barrier before the split paths.
    for (int e = threadIdx.x; e < kOut; e += kSkinnyWarps * 32) {
        float v = 0.0f;
#pragma unroll
        for (int i = 0; i < kSkinnyWarps; ++i) v += red[i][e];
        red[0][e] = v;
    }
    if constexpr (CLUSTER) {
#if __CUDA_ARCH__ >= 900
        // Every CTA of the cluster (the splits, ranked by blockIdx.y) sums a slice of the outputs
        // over the splits in rank order and stores it. The second cluster barrier keeps each CTA's
        // shared memory alive until its peers have read it.
        namespace cg = cooperative_groups;
        cg::cluster_group cluster = cg::this_cluster();
        cluster.sync();
        const int splits = static_cast<int>(cluster.num_blocks()), slice = (kOut + splits - 1) / splits;
        const int e0 = static_cast<int>(cluster.block_rank()) * slice, e1 = min(kOut, e0 + slice);
        for (int e = e0 + threadIdx.x; e < e1; e += kSkinnyWarps * 32) {
            int64_t row, col;
            if (!where(e, row, col)) continue;
            float v = 0.0f;
            for (int r = 0; r < splits; ++r) v += cluster.map_shared_rank(&red[0][0], r)[e];
            store1<F16>(p.y, row * w.n + col, epilogue(p, v, inv_g, row, col));
        }
        cluster.sync();
#else
        __trap();  // launched as a cluster only on sm_90
#endif
    } else {
        for (int e = threadIdx.x; e < kOut; e += kSkinnyWarps * 32) {
            int64_t row, col;
            if (!where(e, row, col)) continue;
            const float v = red[0][e];
            if (split) partial[(blockIdx.y * p.m + row) * w.n + col] = v;
            else store1<F16>(p.y, row * w.n + col, epilogue(p, v, inv_g, row, col));
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
        for (int e = threadIdx.x; e < kOut; e += kSkinnyWarps * 32) {
            int64_t row, col;
            if (!where(e, row, col)) continue;
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

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid) {
    const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

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

// ------------------------------------------------------------------ repack and FP8 activations

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

// Eight 16-bit values to floats and back.
template <bool F16>
__device__ __forceinline__ float to_float(uint32_t bits16) {
    if constexpr (F16) return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16)));
    else return __uint_as_float(bits16 << 16);
}

// Two 16-bit values x / s to two E4M3 bytes (nearest even, saturating: the CPU's RNE_sat), the low
// one in bits 0..7.
template <bool F16>
__device__ __forceinline__ uint32_t fp8_bytes(uint32_t v, const Divisor &s) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 890
    __trap();
    return 0;
#else
    const float a = quotient(to_float<F16>(v & 0xFFFFu), s);
    const float b = quotient(to_float<F16>(v >> 16), s);
    uint16_t e;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(e) : "f"(b), "f"(a));
    return e;
#endif
}

// The same two values rounded to E4M3, back in the 16-bit type (exact: at most 4 significant bits).
template <bool F16>
__device__ __forceinline__ uint32_t fp8_pair(uint32_t v, const Divisor &s) {
    const uint32_t h = e4m3x2_to_f16x2(fp8_bytes<F16>(v, s));
    if constexpr (F16) return h;
    const float f0 = __half2float(__ushort_as_half(static_cast<unsigned short>(h & 0xFFFFu)));
    const float f1 = __half2float(__ushort_as_half(static_cast<unsigned short>(h >> 16)));
    return prmt(__float_as_uint(f0), __float_as_uint(f1), 0x7632u);
}

constexpr int kQuantThreads = 256;

// The E4M3 scale of one row of x, amax / 448, over the CTA (kQuantThreads threads); every thread gets it.
template <bool F16>
__device__ float row_fp8_scale(const uint16_t *row, int64_t k) {
    __shared__ float part[kQuantThreads / 32];
    float amax = 0.0f;
    for (int64_t i = threadIdx.x * 8; i < k; i += kQuantThreads * 8) {
        const uint4 v = ldg16(row + i);
        const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int j = 0; j < 4; ++j)
            amax = fmaxf(amax, fmaxf(fabsf(to_float<F16>(w[j] & 0xFFFFu)), fabsf(to_float<F16>(w[j] >> 16))));
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = amax;
    __syncthreads();
    amax = part[0];
#pragma unroll
    for (int i = 1; i < kQuantThreads / 32; ++i) amax = fmaxf(amax, part[i]);
    return amax / 448.0f;
}

template <bool F16>
__global__ void __launch_bounds__(kQuantThreads) quantize_kernel(const uint16_t *x, int64_t k, uint16_t *q, float *scale) {
    const uint16_t *row = x + static_cast<int64_t>(blockIdx.x) * k;
    uint16_t *out = q + static_cast<int64_t>(blockIdx.x) * k;
    const float s = row_fp8_scale<F16>(row, k);
    if (threadIdx.x == 0) scale[blockIdx.x] = s;
    const Divisor dv = divisor(s);
    for (int64_t i = threadIdx.x * 8; i < k; i += kQuantThreads * 8) {
        const uint4 v = ldg16(row + i);
        *reinterpret_cast<uint4 *>(out + i) =
            make_uint4(fp8_pair<F16>(v.x, dv), fp8_pair<F16>(v.y, dv), fp8_pair<F16>(v.z, dv), fp8_pair<F16>(v.w, dv));
    }
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

// One CTA per row: its amax, then 16 output bytes a thread (one 16-position piece of a chunk:
// four runs of four consecutive columns).
template <bool F16>
__global__ void __launch_bounds__(kQuantThreads) quantize_permuted_kernel(const uint16_t *x, int64_t k, int nchunks,
                                                                          uint8_t *q, float *scale) {
    const uint16_t *row = x + static_cast<int64_t>(blockIdx.x) * k;
    uint8_t *out = q + static_cast<int64_t>(blockIdx.x) * nchunks * kChunk;
    const float s = row_fp8_scale<F16>(row, k);
    if (threadIdx.x == 0) scale[blockIdx.x] = s;
    const Divisor dv = divisor(s);
    for (int piece = threadIdx.x; piece < nchunks * (kChunk / 16); piece += kQuantThreads) {
        const int c = piece / (kChunk / 16), p0 = (piece % (kChunk / 16)) * 16, sa = p0 / 32, a = (p0 / 16) % 2;
        uint32_t bytes[4];
#pragma unroll
        for (int qq = 0; qq < 4; ++qq) {
            const int64_t col = static_cast<int64_t>(c) * kChunk + 32 * qq + 8 * sa + 4 * a;  // K % 16 == 0: all 4 or none
            uint2 v = make_uint2(0u, 0u);
            if (col < k) v = *reinterpret_cast<const uint2 *>(row + col);
            bytes[qq] = fp8_bytes<F16>(v.x, dv) | fp8_bytes<F16>(v.y, dv) << 16;
        }
        *reinterpret_cast<uint4 *>(out + static_cast<int64_t>(c) * kChunk + p0) =
            make_uint4(bytes[0], bytes[1], bytes[2], bytes[3]);
    }
}

template <bool F16>
void launch(const Weight &w, const Problem &p, const Launch &l, void *workspace, cudaStream_t stream) {
    if (l.skinny) {
        const int tiles = skinny_tiles(p.m > 8);
        const dim3 grid((w.ntiles + tiles - 1) / tiles, l.splits, static_cast<unsigned>((p.m + 15) / 16));
        auto skinny = [&](auto upper, auto cluster) {
            constexpr bool U = decltype(upper)::value, C = decltype(cluster)::value;
            float *partial = nullptr;
            unsigned *counters = nullptr;
            if (!C && l.splits > 1) {
                partial = static_cast<float *>(workspace);
                counters = reinterpret_cast<unsigned *>(static_cast<uint8_t *>(workspace) + l.counters_offset);
            }
            cudaLaunchConfig_t cfg = {};
            cfg.gridDim = grid;
            cfg.blockDim = dim3(kSkinnyWarps * 32);
            cfg.stream = stream;
            cudaLaunchAttribute attr = {};
            attr.id = cudaLaunchAttributeClusterDimension;
            attr.val.clusterDim.x = 1;
            attr.val.clusterDim.y = static_cast<unsigned>(l.splits);
            attr.val.clusterDim.z = 1;
            cfg.attrs = &attr;
            cfg.numAttrs = C ? 1 : 0;
            // An error here is the runtime's last error, which the caller checks.
            (void)cudaLaunchKernelEx(&cfg, skinny_kernel<F16, U, C>, w, p, l.chunks_per_split, partial, counters);
        };
        using T = std::true_type;
        using F = std::false_type;
        if (p.m > 8) l.cluster ? skinny(T{}, T{}) : skinny(T{}, F{});
        else l.cluster ? skinny(F{}, T{}) : skinny(F{}, F{});
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

Launch plan_launch(const Weight &w, int64_t m, int sm_count, int smem_per_block, bool clusters) {
    Launch l;
    l.wide = smem_per_block >= Tiled<256>::smem;
    if (m > kSkinnyMaxRows) return l;
    l.skinny = true;
    const int tiles = skinny_tiles(m > 8);
    const int64_t blocks = (w.ntiles + tiles - 1) / tiles * ((m + 15) / 16);
    // As many CTAs as are resident at once (one wave), each warp with at least two chunks so that
    // its prefetch overlaps; a cluster holds at most kMaxClusterSplits. (Filling a second wave
    // instead, 3 splits at M = 16 and K = N = 8,192, took 0.0355 ms against 0.0254 with one.)
    const int64_t want = kSkinnyCtasPerSm * static_cast<int64_t>(std::max(sm_count, 1)) / blocks;
    const int64_t most = std::max<int64_t>(1, std::min<int64_t>(kMaxClusterSplits, w.nchunks / (2 * kSkinnyWarps)));
    const int64_t splits = std::max<int64_t>(1, std::min(want, most));
    l.chunks_per_split = static_cast<int>((w.nchunks + splits - 1) / splits);
    l.splits = l.chunks_per_split > 0 ? (w.nchunks + l.chunks_per_split - 1) / l.chunks_per_split : 1;
    if (l.splits < 1) l.splits = 1;
    l.cluster = clusters && l.splits > 1;
    if (l.splits > 1 && !l.cluster) {
        l.counters_offset = align256(static_cast<size_t>(l.splits) * m * w.n * sizeof(float));
        l.counters_bytes = static_cast<size_t>(blocks) * sizeof(unsigned);
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

void quantize_fp8(const void *x, int64_t m, int64_t k, bool f16, void *q, float *scale, cudaStream_t stream) {
    const auto *xs = static_cast<const uint16_t *>(x);
    auto *qs = static_cast<uint16_t *>(q);
    if (f16) quantize_kernel<true><<<static_cast<unsigned>(m), kQuantThreads, 0, stream>>>(xs, k, qs, scale);
    else quantize_kernel<false><<<static_cast<unsigned>(m), kQuantThreads, 0, stream>>>(xs, k, qs, scale);
}

void column_powers(const Weight &w, float *colpow, cudaStream_t stream) {
    const int64_t blocks = (w.n + 7) / 8;
    column_powers_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(w, colpow);
}

void quantize_fp8_permuted(const void *x, int64_t m, int64_t k, int nchunks, bool f16, uint8_t *q, float *scale,
                           cudaStream_t stream) {
    const auto *xs = static_cast<const uint16_t *>(x);
    if (f16) quantize_permuted_kernel<true><<<static_cast<unsigned>(m), kQuantThreads, 0, stream>>>(xs, k, nchunks, q, scale);
    else quantize_permuted_kernel<false><<<static_cast<unsigned>(m), kQuantThreads, 0, stream>>>(xs, k, nchunks, q, scale);
}

void gemm(const Weight &w, const Problem &p, const Launch &l, void *workspace, cudaStream_t stream) {
    if (p.f16) launch<true>(w, p, l, workspace, stream);
    else launch<false>(w, p, l, workspace, stream);
}

}  // namespace slip::cuda::fp4
