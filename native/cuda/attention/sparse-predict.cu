// SpargeAttention2's block-mask prediction on CUDA (slip_attn_sparse_predict on CUDA tensors): the
// CPU reference's rule (native/src/attention/sparse-predict.cpp) with its float64 pooling, so the
// masks agree except where two pooled scores tie within double rounding.
//   kmean      smooth-K's per-(batch, kv head) mean, from fixed-order partial sums
//   pool       per block of Q (and of K minus the mean): the mean and the self-similarity
//              ‖Σ u‖² / b² (u the unit tokens), D / 8 lanes a token, fixed-order combination
//   logits     every (query block, key block) pair's pooled logit, on the float64 tensor cores
//   select     per (query block, head): pooled logits over the allowed key blocks, softmax over
//              the trusted ones, a bitonic sort in registers (score descending, earlier block
//              first), Top-k ∪ Top-p, the similarity guard, the sink; kept and allowed pairs counted
// Every sum runs in an order fixed by the shapes alone, so a mask is the same on every run.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "base/cuda-backend.h"
#include "base/error.h"
#include "base/tensor.h"
#include "../cuda-common.cuh"

namespace slip::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kChunkRows = 512;  // keys per smooth-K partial sum: ~6 CTAs an SM at 32,760 keys and 12 heads
constexpr int kMaxSort = 2048;  // key blocks one row can sort: 64 slots a lane, in registers

struct View {
    const void *data;
    int64_t sb, sh, sn;
    bool bf16;
    bool vec8;  // rows start 16-byte aligned: eight elements load as one 16-byte word
    // Elements d0 .. d0 + 7 of row (b, h, n) as eight 16-bit values; those at or past D read as 0.
    __device__ uint4 raw8(int b, int h, int n, int d0, int D) const {
        const uint16_t *x = static_cast<const uint16_t *>(data) + (b * sb + h * sh + n * sn + d0);
        if (vec8 && d0 + 8 <= D) return __ldg(reinterpret_cast<const uint4 *>(x));
        uint32_t w[4] = {};
#pragma unroll
        for (int j = 0; j < 8; ++j)
            if (d0 + j < D) w[j / 2] |= static_cast<uint32_t>(__ldg(x + j)) << (16 * (j % 2));
        return make_uint4(w[0], w[1], w[2], w[3]);
    }
    __device__ void to_double(const uint4 &r, double (&x)[8]) const {
        const uint32_t u[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const uint32_t h16 = (u[j / 2] >> (16 * (j % 2))) & 0xFFFFu;
            x[j] = bf16 ? __uint_as_float(h16 << 16) : __half2float(__ushort_as_half(static_cast<unsigned short>(h16)));
        }
    }
};

struct Dims {
    int B, Hq, Hk, Nq, Nk, D, bq, bk, nqb, nkb;
    bool causal;
};

// Per chunk of kChunkRows keys: the sum of each channel, D / 8 lanes a key (eight channels each),
// TPW keys a warp at once; the row groups combine in a fixed order. A thread issues kBatch loads
// before it converts any: one at a time, the loop waited a DRAM latency per key (ncu: 0.29 issued
// a cycle, DRAM 45%).
template <int TPW>
__global__ void __launch_bounds__(kThreads) kmean_partials(View k, Dims s, double *part) {
    constexpr int kLanes = 32 / TPW, kSlots = kThreads / 32 * TPW, kBatch = 4;
    __shared__ double acc_s[kSlots][kLanes * 8 + 1];
    const int chunk = blockIdx.x, hk = blockIdx.y, b = blockIdx.z, lane = threadIdx.x % 32;
    const int slot = threadIdx.x / 32 * TPW + lane / kLanes, d0 = (lane % kLanes) * 8;
    const int n0 = chunk * kChunkRows, n1 = min(s.Nk, n0 + kChunkRows);
    double acc[8] = {};
    for (int n = n0 + slot; n < n1; n += kBatch * kSlots) {
        uint4 raw[kBatch];
#pragma unroll
        for (int i = 0; i < kBatch; ++i)
            raw[i] = n + i * kSlots < n1 ? k.raw8(b, hk, n + i * kSlots, d0, s.D) : make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
        for (int i = 0; i < kBatch; ++i) {
            double x[8];
            k.to_double(raw[i], x);
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[j] += x[j];
        }
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) acc_s[slot][d0 + j] = acc[j];
    __syncthreads();
    for (int d = threadIdx.x; d < s.D; d += kThreads) {
        double v = 0.0;
        for (int r = 0; r < kSlots; ++r) v += acc_s[r][d];
        part[((static_cast<int64_t>(b) * s.Hk + hk) * gridDim.x + chunk) * s.D + d] = v;
    }
}

// One warp per (batch, kv head, channel): its lanes take every 32nd partial, then a fixed xor tree.
__global__ void kmean_finish(Dims s, int chunks, const double *part, double *mean) {
    const int64_t item = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (item >= static_cast<int64_t>(s.B) * s.Hk * s.D) return;
    const int64_t bh = item / s.D;
    const int d = static_cast<int>(item % s.D);
    double acc = 0.0;
    for (int c = lane; c < chunks; c += 32) acc += part[(bh * chunks + c) * s.D + d];
    for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) mean[bh * s.D + d] = acc / s.Nk;
}

// One warp per (block, head, batch) of Q (shift null) or K: means [.., blocks, D], sim [.., blocks].
// A token is read by D/8 lanes, eight channels each (one 16-byte load where rows are aligned), so
// the warp takes TPW tokens at once, the next ones' loads in flight while it works on these; each
// lane keeps its channels' sums of x and of the unit vector, and the TPW partial sums meet by
// shuffles at the end: no shared memory, no barrier.
template <int TPW, bool SHIFT>
__global__ void __launch_bounds__(kThreads) pool(View x, Dims s, int heads, int n_tokens, int block, int blocks,
                                                 const double *shift, double *means, double *sims) {
    constexpr int kLanes = 32 / TPW;  // lanes a token
    const int lane = threadIdx.x % 32;
    // Heads and batches from the last: K's pooling follows its mean's pass, which ends on the last
    // ones, still in L2 then.
    const int blk = blockIdx.x * (kThreads / 32) + threadIdx.x / 32, h = heads - 1 - blockIdx.y;
    const int b = gridDim.z - 1 - blockIdx.z;
    if (blk >= blocks) return;  // whole warps leave
    const int slot = lane / kLanes, d0 = (lane % kLanes) * 8;
    const int t0 = blk * block, t1 = min(n_tokens, t0 + block);
    double sh[8] = {}, m[8] = {}, u[8] = {};
    if constexpr (SHIFT) {
        const double *sp = shift + (static_cast<int64_t>(b) * s.Hk + h) * s.D;
#pragma unroll
        for (int j = 0; j < 8; ++j) sh[j] = d0 + j < s.D ? sp[d0 + j] : 0.0;
    }
    int t = t0 + slot;
    uint4 next = t < t1 ? x.raw8(b, h, t, d0, s.D) : make_uint4(0u, 0u, 0u, 0u);
    for (; t - slot < t1; t += TPW) {
        const bool live = t < t1;  // the whole warp stays in the loop for the shuffles
        double cur[8];
        x.to_double(next, cur);
        if (t + TPW < t1) next = x.raw8(b, h, t + TPW, d0, s.D);
        double nn = 0.0;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            cur[j] = live && d0 + j < s.D ? cur[j] - sh[j] : 0.0;
            m[j] += cur[j];
            nn += cur[j] * cur[j];
        }
#pragma unroll
        for (int o = kLanes / 2; o; o >>= 1) nn += __shfl_xor_sync(0xffffffffu, nn, o);
        if (nn > 0.0) {
            const double inv = rsqrt(nn);
#pragma unroll
            for (int j = 0; j < 8; ++j) u[j] += cur[j] * inv;
        }
    }
    // The token slots' sums, slot 0 first; then the block's mean and ‖Σ u‖².
#pragma unroll
    for (int o = kLanes; o < 32; o <<= 1)
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            m[j] += __shfl_xor_sync(0xffffffffu, m[j], o);
            u[j] += __shfl_xor_sync(0xffffffffu, u[j], o);
        }
    const double cnt = static_cast<double>(t1 - t0);
    const int64_t row = (static_cast<int64_t>(b) * heads + h) * blocks + blk;
    double sq = 0.0;
    if (slot == 0)
#pragma unroll
        for (int j = 0; j < 8; ++j)
            if (d0 + j < s.D) {
                means[row * s.D + d0 + j] = m[j] / cnt;
                sq += u[j] * u[j];
            }
    for (int o = 16; o; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    if (lane == 0) sims[row] = sq / (cnt * cnt);
}

// D(16 x 8) += A(16 x 4) B(4 x 8) on the float64 tensor cores (twice the rate of float64 FMAs on
// sm_90): a[0] = A[g][t], a[1] = A[g + 8][t], b = B[t][g]; c[0..1] = D[g][2t, 2t + 1], c[2..3] the same
// of row g + 8 (g = lane / 4, t = lane % 4). sm_80/89 have only the 8 x 8 x 4 shape: two of them.
__device__ __forceinline__ void dmma_16x8x4(double (&c)[4], const double (&a)[2], double b) {
#if __CUDA_ARCH__ >= 900
    asm("mma.sync.aligned.m16n8k4.row.col.f64.f64.f64.f64 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};"
        : "+d"(c[0]), "+d"(c[1]), "+d"(c[2]), "+d"(c[3])
        : "d"(a[0]), "d"(a[1]), "d"(b));
#else
    asm("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};"
        : "+d"(c[0]), "+d"(c[1])
        : "d"(a[0]), "d"(b));
    asm("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};"
        : "+d"(c[2]), "+d"(c[3])
        : "d"(a[1]), "d"(b));
#endif
}

// logits[b, h, qb, kb] = qmean[b, h, qb] . kmean[b, hk, kb] for every pair, summed over d in
// ascending order four channels an MMA: 64 x 64 outputs a CTA, four warps of 32 x 32 (2 x 4 MMA
// tiles). The next 16 channels load into registers while the tensor cores work on these. The FP64
// FMA version reached a third of the FMA pipe's peak (12 shared-memory loads for 32 FMAs).
constexpr int kLogitTile = 64, kLogitDepth = 16, kLogitThreads = 128;
constexpr int kLogitLoads = kLogitTile * kLogitDepth / kLogitThreads;
// Rows padded to 20 doubles: a fragment's 16 lanes of a half warp (rows g, channels t) then fall on
// 16 distinct 8-byte bank pairs, and a half warp's stores (16 channels of one row) on consecutive ones.
constexpr int kLogitPitch = kLogitDepth + 4;
__global__ void __launch_bounds__(kLogitThreads) pooled_logits(Dims s, const double *qmean, const double *kmean,
                                                               double *logits) {
    __shared__ double qt[kLogitTile][kLogitPitch], kt[kLogitTile][kLogitPitch];
    const int bh = blockIdx.z, b = bh / s.Hq, h = bh % s.Hq, hk = h / (s.Hq / s.Hk);
    const int q0 = blockIdx.y * kLogitTile, k0 = blockIdx.x * kLogitTile;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int wq = warp / 2 * 32, wk = warp % 2 * 32;  // the warp's 32 x 32 corner
    const double *qm = qmean + static_cast<int64_t>(bh) * s.nqb * s.D;
    const double *km = kmean + (static_cast<int64_t>(b) * s.Hk + hk) * s.nkb * s.D;
    // A thread loads channel d0 + c of rows r0 + 8i: a half warp reads 16 consecutive channels.
    constexpr int kRowStep = kLogitThreads / kLogitDepth;
    const int c = threadIdx.x % kLogitDepth, r0 = threadIdx.x / kLogitDepth;
    double qr[kLogitLoads], kr[kLogitLoads];
    auto fetch = [&](int d0) {
        const int d = d0 + c;
#pragma unroll
        for (int i = 0; i < kLogitLoads; ++i) {
            const int r = r0 + kRowStep * i;
            qr[i] = q0 + r < s.nqb && d < s.D ? qm[static_cast<int64_t>(q0 + r) * s.D + d] : 0.0;
            kr[i] = k0 + r < s.nkb && d < s.D ? km[static_cast<int64_t>(k0 + r) * s.D + d] : 0.0;
        }
    };
    double acc[2][4][4] = {};
    fetch(0);
    for (int d0 = 0; d0 < s.D; d0 += kLogitDepth) {
        __syncthreads();  // every warp is done with the previous channels
#pragma unroll
        for (int i = 0; i < kLogitLoads; ++i) {
            qt[r0 + kRowStep * i][c] = qr[i];
            kt[r0 + kRowStep * i][c] = kr[i];
        }
        __syncthreads();
        if (d0 + kLogitDepth < s.D) fetch(d0 + kLogitDepth);
        // Channels past D are zeros on both sides: their products add +0, which changes no sum.
#pragma unroll
        for (int kk = 0; kk < kLogitDepth; kk += 4) {
            double a[2][2], bk[4];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                a[mi][0] = qt[wq + 16 * mi + g][kk + t];
                a[mi][1] = qt[wq + 16 * mi + 8 + g][kk + t];
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) bk[ni] = kt[wk + 8 * ni + g][kk + t];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) dmma_16x8x4(acc[mi][ni], a[mi], bk[ni]);
        }
    }
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int qb = q0 + wq + 16 * mi + g + (e / 2) * 8, kb = k0 + wk + 8 * ni + 2 * t + e % 2;
                if (qb < s.nqb && kb < s.nkb) logits[(static_cast<int64_t>(bh) * s.nqb + qb) * s.nkb + kb] = acc[mi][ni][e];
            }
}

// Key blocks [0, n) that query block qb may see (bottom-right causality), as allowed_key_blocks().
__device__ inline int allowed(const Dims &s, int qb) {
    if (!s.causal) return s.nkb;
    const int last_q = min(s.Nq, (qb + 1) * s.bq) - 1, last_k = last_q + (s.Nk - s.Nq);
    return last_k < 0 ? 0 : min(s.nkb, last_k / s.bk + 1);
}

// The order of the sort: a before b when its score is higher, or equal with the earlier block (the
// CPU's stable sort by descending score).
__device__ __forceinline__ bool before(double pa, int ia, double pb, int ib) { return pa > pb || (pa == pb && ia < ib); }

// One bitonic step on element i (score p, block ix) against its partner i ^ stride (score q, block
// iq): within a run of `size` that sorts forward (i & size == 0) the lower index keeps the element
// that comes first.
__device__ __forceinline__ void bitonic_keep(int i, int size, int stride, double &p, int &ix, double q, int iq) {
    const bool forward = (i & size) == 0, lower = (i & stride) == 0;
    if (before(p, ix, q, iq) != (forward == lower)) {
        p = q;
        ix = iq;
    }
}

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Top-k alone keeps ranks [0, c) of the sort's order (score descending, the earlier block first)
// without the sort: the c-th largest score by a radix select, 8 bits a pass from the top, over keys
// that order as the scores do (a non-negative double's bits + 1; blocks without a score, -1, get 0,
// under every scored one), then every block above it and, of those equal to it, the earliest. Each
// pass counts the keys still matching the chosen prefix into 256 bins in shared memory, one atomic
// per run of lanes with the same digit (most keys share their first digits), and picks the bin that
// holds rank c counted from the top. p[e] is block e * 32 + lane's score (unsorted).
template <int PER>
__device__ void keep_top(const double (&p)[PER], int c, unsigned *hist, int lane, uint8_t *row) {
    constexpr unsigned kAll = 0xffffffffu;
    uint64_t key[PER];
#pragma unroll
    for (int e = 0; e < PER; ++e) key[e] = p[e] >= 0.0 ? static_cast<uint64_t>(__double_as_longlong(p[e])) + 1u : 0u;
    uint64_t prefix = 0, mask = 0;
    unsigned want = static_cast<unsigned>(c);  // rank of the c-th key among those matching prefix
#pragma unroll 1
    for (int shift = 56; shift >= 0; shift -= 8) {
#pragma unroll
        for (int i = 0; i < 8; ++i) hist[lane * 8 + i] = 0u;
        __syncwarp();
#pragma unroll
        for (int e = 0; e < PER; ++e) {
            const bool in = (key[e] & mask) == prefix;
            const unsigned digit = in ? static_cast<unsigned>(key[e] >> shift) & 255u : 256u;
            const unsigned same = __match_any_sync(kAll, digit);
            if (in && lane == __ffs(same) - 1) atomicAdd(hist + digit, static_cast<unsigned>(__popc(same)));
        }
        __syncwarp();
        // Lane l holds digits 255 - 8l down to 248 - 8l: the counts from the top, scanned over lanes.
        unsigned cnt[8], total = 0;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            cnt[i] = hist[255 - (lane * 8 + i)];
            total += cnt[i];
        }
        unsigned incl = total;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned v = __shfl_up_sync(kAll, incl, o);
            if (lane >= o) incl += v;
        }
        const unsigned excl = incl - total;
        const int src = __ffs(__ballot_sync(kAll, excl < want && want <= incl)) - 1;
        // In lane src: the bin where the count from the top reaches want, and the keys above it.
        unsigned digit = 0, above = excl;
        bool found = false;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            if (!found && above + cnt[i] >= want) {
                digit = 255u - static_cast<unsigned>(lane * 8 + i);
                found = true;
            } else if (!found) {
                above += cnt[i];
            }
        }
        digit = __shfl_sync(kAll, digit, src);
        above = __shfl_sync(kAll, above, src);
        want -= above;
        prefix |= static_cast<uint64_t>(digit) << shift;
        mask |= static_cast<uint64_t>(0xFFu) << shift;
        __syncwarp();  // every lane has read the bins before the next pass clears them
    }
    // prefix is the c-th key: keep the keys above it and the first `want` equal to it.
    unsigned take = want;
#pragma unroll
    for (int e = 0; e < PER; ++e) {
        const unsigned eq = __ballot_sync(kAll, key[e] == prefix);
        const unsigned before = static_cast<unsigned>(__popc(eq & ((1u << lane) - 1u)));
        if (key[e] > prefix || (key[e] == prefix && before < take)) row[e * 32 + lane] = 1;
        const unsigned n_eq = static_cast<unsigned>(__popc(eq));
        take = take > n_eq ? take - n_eq : 0u;
    }
}

// One warp per (query block, head, batch), kSelectThreads / 32 rows a CTA: the row's pooled logits
// over the allowed key blocks, softmax over the trusted ones, a bitonic sort held in registers (element
// e * 32 + lane in slot e of the lane: strides under 32 through shuffles, larger ones between a
// lane's own slots), Top-k ∪ Top-p, the guard, the sink; the mask row is written straight to
// global memory (__syncwarp orders the lanes' writes). PER = sort_n / 32 slots a lane.
// Up to 512 key blocks, registers cut for 3 CTAs an SM (a few bytes spill): measured faster than
// 256 x 2, 128 x 5 and 128 x 6 (bench/NOTES.md).
constexpr int kSelectThreads = 256, kSelectCtasPerSm = 3;
template <int PER>
__global__ void __launch_bounds__(kSelectThreads, PER <= 16 ? kSelectCtasPerSm : 1) select_blocks(Dims s, float scale, float topk, float topp, float theta,
                                                          int sink, const double *logits, const double *qsim,
                                                          const double *ksim, uint8_t *mask, unsigned long long *counts) {
    constexpr int kSort = PER * 32;
    __shared__ unsigned hist[kSelectThreads / 32][256];  // keep_top's bins, a warp's own
    const int lane = threadIdx.x % 32;
    const int qb = blockIdx.x * (kSelectThreads / 32) + threadIdx.x / 32, h = blockIdx.y, b = blockIdx.z;
    if (qb >= s.nqb) return;  // whole warps leave
    const int hk = h / (s.Hq / s.Hk), n = allowed(s, qb);
    uint8_t *row = mask + ((static_cast<int64_t>(b) * s.Hq + h) * s.nqb + qb) * s.nkb;
    const double *ks = ksim + (static_cast<int64_t>(b) * s.Hk + hk) * s.nkb;
    const int64_t qrow = (static_cast<int64_t>(b) * s.Hq + h) * s.nqb + qb;
    const bool q_trusted = qsim[qrow] > theta;
    for (int j = lane; j < s.nkb; j += 32) row[j] = (j < n && (!q_trusted || !(ks[j] > theta))) ? 1 : 0;
    __syncwarp();
    if (n > 0 && q_trusted) {
        const double *lg = logits + qrow * s.nkb;
        double p[PER];
        int ix[PER];
        double mx = -INFINITY;
#pragma unroll
        for (int e = 0; e < PER; ++e) {
            const int j = e * 32 + lane;
            ix[e] = j;
            p[e] = j < n && ks[j] > theta ? static_cast<double>(scale) * lg[j] : -INFINITY;
            mx = fmax(mx, p[e]);
        }
        for (int o = 16; o; o >>= 1) mx = fmax(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        double sum = 0.0, trusted = 0.0;
#pragma unroll
        for (int e = 0; e < PER; ++e) {
            p[e] = p[e] == -INFINITY ? 0.0 : exp(p[e] - mx);
            sum += p[e];
        }
        sum = warp_sum(sum);
#pragma unroll
        for (int e = 0; e < PER; ++e) {
            const int j = ix[e];
            const bool tr = j < n && ks[j] > theta;
            p[e] = tr ? p[e] / sum : -1.0;  // blocks without a score sort last
            trusted += tr ? 1.0 : 0.0;
        }
        const int m = static_cast<int>(warp_sum(trusted));
        // Top-k's count, ranks [0, c) of the sort's order; made in each branch, not held across the sort
        // (live through it, it cost registers there: more spills at 16 and 64 slots a lane).
        auto topk_count = [&] {
            return m > 0 && topk > 0.0f ? min(m, max(1, static_cast<int>(floor(static_cast<double>(topk) * n)))) : 0;
        };
        if (topp <= 0.0f) {
            const int c = topk_count();
            if (c > 0) keep_top<PER>(p, c, hist[threadIdx.x / 32], lane, row);
        } else {
            for (int size = 2; size <= kSort; size <<= 1)
                for (int stride = size >> 1; stride; stride >>= 1) {
                    if (stride >= 32) {
                        // Partners in the lane's own slots e and e ^ (stride / 32): one unrolled copy per
                        // distance, so every slot index is a constant and the slots stay in registers.
#pragma unroll
                        for (int de = 1; de < PER; de <<= 1)
                            if (stride == 32 * de)
#pragma unroll
                                for (int e = 0; e < PER; ++e)
                                    if ((e & de) == 0) {
                                        const double pe = p[e], pf = p[e | de];
                                        const int ie = ix[e], jf = ix[e | de];
                                        bitonic_keep(e * 32 + lane, size, stride, p[e], ix[e], pf, jf);
                                        bitonic_keep((e | de) * 32 + lane, size, stride, p[e | de], ix[e | de], pe, ie);
                                    }
                    } else {
#pragma unroll
                        for (int e = 0; e < PER; ++e) {
                            const double q = __shfl_xor_sync(0xffffffffu, p[e], stride);
                            const int iq = __shfl_xor_sync(0xffffffffu, ix[e], stride);
                            bitonic_keep(e * 32 + lane, size, stride, p[e], ix[e], q, iq);
                        }
                    }
                }
            // Sorted rank r lives in slot r / 32 of lane r % 32. Top-k keeps ranks below c; Top-p the
            // ranks up to the first whose running sum (added rank by rank, as the CPU adds) reaches p.
            int last = topk_count() - 1;
            if (m > 0 && topp > 0.0f) {
                double cum = 0.0;
                int stop = m - 1;
                bool done = false;
#pragma unroll
                for (int e = 0; e < PER; ++e) {
                    if (done) break;  // uniform: every lane holds the same cum
                    for (int l = 0; l < 32 && !done; ++l) {
                        const int r = e * 32 + l;
                        if (r >= m) {
                            done = true;
                            break;
                        }
                        cum += __shfl_sync(0xffffffffu, p[e], l);
                        if (cum >= topp) {
                            stop = r;
                            done = true;
                        }
                    }
                }
                last = max(last, stop);
            }
#pragma unroll
            for (int e = 0; e < PER; ++e)
                if (e * 32 + lane <= last) row[ix[e]] = 1;
        }
        if (sink && lane == 0) row[0] = 1;
        __syncwarp();
    }
    double kept = 0.0;
    for (int j = lane; j < s.nkb; j += 32) kept += row[j];
    kept = warp_sum(kept);  // whole numbers: exact in any order
    if (lane == 0 && counts) {
        atomicAdd(counts, static_cast<unsigned long long>(kept));
        atomicAdd(counts + 1, static_cast<unsigned long long>(n));
    }
}

View view(const slip_tensor *t, const char *name, int32_t layout, int dev, int64_t (&ext)[4]) {
    require_not_null(t, name);
    if (t->device != SLIP_DEVICE_CUDA || t->device_index != dev)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected %s on CUDA device %d (with q)", name, dev));
    if (t->dtype != SLIP_DTYPE_BF16 && t->dtype != SLIP_DTYPE_F16)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected BF16 or F16 for %s on CUDA, got %s", name,
                                                  slip_dtype_name(static_cast<slip_dtype>(t->dtype))));
    if (t->ndim != 4) fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected 4 dimensions for %s, got %d", name, t->ndim));
    if (t->strides[3] != 1) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected %s's head dimension contiguous", name));
    const int hd = layout == SLIP_ATTN_HND ? 1 : 2, nd = layout == SLIP_ATTN_HND ? 2 : 1;
    ext[0] = t->shape[0];
    ext[1] = t->shape[hd];
    ext[2] = t->shape[nd];
    ext[3] = t->shape[3];
    const bool vec8 = reinterpret_cast<uintptr_t>(t->data) % 16 == 0 && t->strides[0] % 8 == 0 && t->strides[hd] % 8 == 0 &&
                      t->strides[nd] % 8 == 0;
    return View{t->data, t->strides[0], t->strides[hd], t->strides[nd], t->dtype == SLIP_DTYPE_BF16, vec8};
}

}  // namespace

void attn_sparse_predict(const slip_tensor *q, const slip_tensor *k, const slip_attn_params *attn,
                         const slip_sparse_params *sp, slip_tensor *block_mask_out, double *sparsity_out) {
    require_not_null(q, "q");
    require_not_null(attn, "attn");
    const int dev = q->device_index;
    if (attn->layout != SLIP_ATTN_HND && attn->layout != SLIP_ATTN_NHD)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected SLIP_ATTN_HND (0) or SLIP_ATTN_NHD (1) for attn.layout, got %d", attn->layout));
    int64_t qe[4], ke[4];
    const View qv = view(q, "q", attn->layout, dev, qe), kv = view(k, "k", attn->layout, dev, ke);
    if (qv.bf16 != kv.bf16) fail(SLIP_STATUS_INVALID_ARGUMENT, "expected k's dtype equal to q's");
    const int64_t B = qe[0], Hq = qe[1], Nq = qe[2], D = qe[3], Hk = ke[1], Nk = ke[2];
    if (ke[0] != B || ke[3] != D || Hk < 1 || Hq % Hk != 0 || Nq < 1 || Nk < 1)
        fail(SLIP_STATUS_SHAPE_MISMATCH, "expected k [B, Hk dividing Hq, Nk >= 1, D] beside q [B, Hq, Nq >= 1, D]");
    if (D > 256) fail(SLIP_STATUS_UNSUPPORTED, format("expected head dim <= 256 on CUDA, got %lld", static_cast<long long>(D)));
    const int64_t nqb = (Nq + sp->block_q - 1) / sp->block_q, nkb = (Nk + sp->block_k - 1) / sp->block_k;
    if (nkb > kMaxSort)
        fail(SLIP_STATUS_UNSUPPORTED, format("expected at most %d key blocks per row on CUDA, got %lld", kMaxSort,
                                             static_cast<long long>(nkb)));
    require_not_null(block_mask_out, "block_mask_out");
    const slip_tensor &bm = *block_mask_out;
    if (bm.device != SLIP_DEVICE_CUDA || bm.device_index != dev || bm.dtype != SLIP_DTYPE_U8 || bm.ndim != 4 ||
        bm.shape[0] != B || bm.shape[1] != Hq || bm.shape[2] != nqb || bm.shape[3] != nkb || bm.strides[3] != 1 ||
        bm.strides[2] != nkb || bm.strides[1] != nqb * nkb)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected block_mask_out a contiguous U8 CUDA tensor [%lld, %lld, %lld, %lld]",
                                                static_cast<long long>(B), static_cast<long long>(Hq),
                                                static_cast<long long>(nqb), static_cast<long long>(nkb)));
    const Dims s{static_cast<int>(B), static_cast<int>(Hq), static_cast<int>(Hk), static_cast<int>(Nq),
                 static_cast<int>(Nk), static_cast<int>(D), static_cast<int>(sp->block_q), static_cast<int>(sp->block_k),
                 static_cast<int>(nqb), static_cast<int>(nkb), attn->causal != 0};
    const float scale = attn->scale > 0.0f ? attn->scale : 1.0f / std::sqrt(static_cast<float>(D));

    DeviceScope scope(dev);
    cudaStream_t st = static_cast<cudaStream_t>(q->stream);
    const int chunks = static_cast<int>((Nk + kChunkRows - 1) / kChunkRows);
    const int64_t n_part = B * Hk * chunks * D, n_kmean = B * Hk * D, n_qm = B * Hq * nqb * D, n_qs = B * Hq * nqb,
                  n_km = B * Hk * nkb * D, n_ks = B * Hk * nkb;
    const int64_t n_logits = B * Hq * nqb * nkb;
    const int64_t doubles = n_part + n_kmean + n_qm + n_qs + n_km + n_ks + n_logits;
    auto *pool_mem = static_cast<unsigned char *>(scratch_alloc(doubles * 8 + 16, st, "prediction scratch"));
    double *part = reinterpret_cast<double *>(pool_mem), *kmean = part + n_part, *qm = kmean + n_kmean, *qs = qm + n_qm,
           *km = qs + n_qs, *ks = km + n_km, *logits = ks + n_ks;
    auto *counts = reinterpret_cast<unsigned long long *>(logits + n_logits);
    cudaMemsetAsync(counts, 0, 16, st);
    // Tokens a warp pools at once: D / 8 lanes read one. A warp per block, 8 blocks a CTA.
    auto pool_launch = [&](const View &x, int heads, int tokens, int block, int blocks, const double *sh, double *means,
                           double *sims) {
        const dim3 grid((blocks + kThreads / 32 - 1) / (kThreads / 32), heads, B);
        auto go = [&](auto tpw, auto shifted) {
            pool<decltype(tpw)::value, decltype(shifted)::value><<<grid, kThreads, 0, st>>>(x, s, heads, tokens, block,
                                                                                           blocks, sh, means, sims);
        };
        auto by_dim = [&](auto shifted) {
            if (D <= 64) go(std::integral_constant<int, 4>{}, shifted);
            else if (D <= 128) go(std::integral_constant<int, 2>{}, shifted);
            else go(std::integral_constant<int, 1>{}, shifted);
        };
        if (sh) by_dim(std::true_type{});
        else by_dim(std::false_type{});
    };
    // Q first: K's mean and K's pooling then read K back to back (the second mostly from L2).
    pool_launch(qv, static_cast<int>(Hq), static_cast<int>(Nq), s.bq, s.nqb, nullptr, qm, qs);
    const double *shift = nullptr;
    if (sp->smooth_k) {
        const dim3 grid(chunks, Hk, B);
        if (D <= 64) kmean_partials<4><<<grid, kThreads, 0, st>>>(kv, s, part);
        else if (D <= 128) kmean_partials<2><<<grid, kThreads, 0, st>>>(kv, s, part);
        else kmean_partials<1><<<grid, kThreads, 0, st>>>(kv, s, part);
        const int64_t warps = B * Hk * D;
        kmean_finish<<<static_cast<unsigned>((warps + kThreads / 32 - 1) / (kThreads / 32)), kThreads, 0, st>>>(s, chunks, part, kmean);
        shift = kmean;
    }
    pool_launch(kv, static_cast<int>(Hk), static_cast<int>(Nk), s.bk, s.nkb, shift, km, ks);
    pooled_logits<<<dim3((nkb + kLogitTile - 1) / kLogitTile, (nqb + kLogitTile - 1) / kLogitTile, B * Hq), kLogitThreads,
                    0, st>>>(s, qm, km, logits);
    const dim3 rows((nqb + kSelectThreads / 32 - 1) / (kSelectThreads / 32), Hq, B);
    auto select = [&](auto per) {
        select_blocks<decltype(per)::value><<<rows, kSelectThreads, 0, st>>>(s, scale, sp->topk, sp->topp, sp->sim_threshold,
                                                                       sp->attention_sink, logits, qs, ks,
                                                                       static_cast<uint8_t *>(bm.data), counts);
    };
    // Slots a lane sorts: the row's key blocks rounded up to a power of two, over 32 lanes.
    if (nkb <= 32) select(std::integral_constant<int, 1>{});
    else if (nkb <= 64) select(std::integral_constant<int, 2>{});
    else if (nkb <= 128) select(std::integral_constant<int, 4>{});
    else if (nkb <= 256) select(std::integral_constant<int, 8>{});
    else if (nkb <= 512) select(std::integral_constant<int, 16>{});
    else if (nkb <= 1024) select(std::integral_constant<int, 32>{});
    else select(std::integral_constant<int, 64>{});
    const cudaError_t launch = cudaGetLastError();
    unsigned long long host_counts[2] = {0, 0};
    cudaError_t copy = cudaSuccess;
    if (launch == cudaSuccess && sparsity_out) {
        // The sparsity is a host number: this copy waits for the stream (the mask itself does not).
        copy = cudaMemcpyAsync(host_counts, counts, 16, cudaMemcpyDeviceToHost, st);
        if (copy == cudaSuccess) copy = cudaStreamSynchronize(st);
    }
    scratch_free(pool_mem, st);
    check_cuda(launch, "block-mask prediction kernels");
    check_cuda(copy, "block-mask prediction (sparsity copy)");
    if (sparsity_out)
        *sparsity_out = host_counts[1] ? 1.0 - static_cast<double>(host_counts[0]) / static_cast<double>(host_counts[1]) : 0.0;
}

}  // namespace slip::cuda
