// The quantizers of SageAttention2 on CUDA, numerically those of the CPU reference
// (native/src/attention/sage-quant.cpp): smooth-K with the per-(batch, kv head) token mean, INT8
// codes amax/127 rounded half away from zero per row group (BLOCK, WARP or THREAD granularity),
// V per channel to E4M3 (nearest even, saturating) with scale amax_c / v_bound.
//
// Three passes over K and V, one over Q, all with 16-byte loads (8 elements per thread):
//   stats      per (chunk of kStatRows keys, b, hk): K's column sums (deterministic partials) and
//              V's column amax (atomicMax on the bits of a non-negative float: order-free)
//   kmean      the partials summed in a fixed order, over Nk
//   rows       per (tile, b, h) of Q and of K': row amax, each row's group scale and divisor
//              (once a row, in shared memory), then the codes
//   v          per (64-key tile, b, hk): the 16-bit tile through shared memory, read down its
//              columns in the permuted key order
// Divisions by a scale are scale-divide.cuh's: the quotient of a division at a third of the cost.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "../scale-divide.cuh"
#include "sage-cuda.cuh"

namespace slip::cuda::sage {

namespace {

constexpr int kStatRows = 512;  // keys per stats CTA: Nk / 512 partial sums per channel to add
constexpr int kThreads = 256;

// Eight 16-bit values (one 16-byte load) as floats.
template <bool BF16>
__device__ inline void unpack8(const uint4 raw, float (&x)[8]) {
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if constexpr (BF16) {
            const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&w[j]));
            x[2 * j] = f.x;
            x[2 * j + 1] = f.y;
        } else {
            const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&w[j]));
            x[2 * j] = f.x;
            x[2 * j + 1] = f.y;
        }
    }
}

__device__ inline uint4 load16(const void *base, int64_t i) {
    return *reinterpret_cast<const uint4 *>(static_cast<const uint16_t *>(base) + i);
}

// Eight consecutive elements (16 bytes) of a bf16 or fp16 row as floats.
template <bool BF16>
__device__ inline void load8(const void *base, int64_t i, float (&x)[8]) {
    unpack8<BF16>(load16(base, i), x);
}

// An INT8 code: the quotient rounded half away from zero, within +-127 (the CPU's).
__device__ inline uint32_t int8_round(float t) {
    t += t >= 0.0f ? 0.5f : -0.5f;
    t = fminf(fmaxf(t, -127.0f), 127.0f);
    return static_cast<uint32_t>(static_cast<int>(t)) & 0xFFu;
}

// Row groups, counted from the tile's first row (sage-quant.cpp's q_group / k_group).
__device__ inline int q_group(int granularity, int r, int warp_q) {
    return granularity == 0 ? 0 : granularity == 1 ? r / warp_q : (r / warp_q) * 8 + r % 8;
}
__device__ inline int k_group(int granularity, int r) { return granularity == 2 ? (r % 8) / 2 : 0; }

// Lanes of one row (L = D / 8 consecutive lanes of a warp) reduce together.
template <class Op>
__device__ inline float row_reduce(float v, int lanes, Op op) {
    for (int o = lanes / 2; o; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

template <bool BF16>
__global__ void __launch_bounds__(kThreads) stats(View4 k, View4 v, Shape s, bool want_sum, float *ksum_part,
                                                  unsigned *vmax) {
    __shared__ float sum_sh[kThreads][8], max_sh[kThreads][8];
    const int chunk = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
    const int lanes = s.D / 8, col = threadIdx.x % lanes, pass = kThreads / lanes;
    const int n0 = chunk * kStatRows, n1 = min(s.Nk, n0 + kStatRows);
    float sum[8] = {}, mx[8] = {};
    // Four rows a trip, their loads issued together (one a trip left the loads' latency exposed).
    // A thread still adds its rows in increasing order: the partials are those of one row a trip.
    for (int n = n0 + static_cast<int>(threadIdx.x) / lanes; n < n1; n += 4 * pass) {
        uint4 rk[4] = {}, rv[4] = {};
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            const int nu = n + u * pass;
            if (nu >= n1) continue;
            if (want_sum) rk[u] = load16(k.data, b * k.sb + hk * k.sh + nu * k.sn + col * 8);
            rv[u] = load16(v.data, b * v.sb + hk * v.sh + nu * v.sn + col * 8);
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            if (n + u * pass >= n1) continue;
            float xk[8], xv[8];
            unpack8<BF16>(rk[u], xk);
            unpack8<BF16>(rv[u], xv);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                if (want_sum) sum[j] += xk[j];
                mx[j] = fmaxf(mx[j], fabsf(xv[j]));
            }
        }
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        sum_sh[threadIdx.x][j] = sum[j];
        max_sh[threadIdx.x][j] = mx[j];
    }
    __syncthreads();
    if (threadIdx.x < lanes) {
        float ts[8] = {}, tm[8] = {};
        for (int p = 0; p < pass; ++p)  // a fixed order: the partial is the same on every run
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                ts[j] += sum_sh[p * lanes + col][j];
                tm[j] = fmaxf(tm[j], max_sh[p * lanes + col][j]);
            }
        const int64_t bh = static_cast<int64_t>(b) * s.Hk + hk, nchunks = gridDim.x;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            if (want_sum) ksum_part[(bh * nchunks + chunk) * s.D + col * 8 + j] = ts[j];
            atomicMax(vmax + bh * s.D + col * 8 + j, __float_as_uint(tm[j]));
        }
    }
}

__global__ void kmean_kernel(Shape s, int nchunks, const float *part, float *kmean) {
    const int64_t bh = blockIdx.x;
    for (int d = threadIdx.x; d < s.D; d += blockDim.x) {
        double sum = 0.0;
        for (int c = 0; c < nchunks; ++c) sum += part[(bh * nchunks + c) * s.D + d];
        kmean[bh * s.D + d] = static_cast<float>(sum / s.Nk);
    }
}

// One CTA per (tile of tile_rows rows, h, b) of Q (IS_K false) or K'. A row is D/8 lanes of 8
// elements; the row's amax (and, for the LSE correction, q . mean(K)) is reduced over them, then
// the group scales, then the codes from a second read of the tile (it is in L1 or L2 by then).
template <bool BF16, bool IS_K, int D>
__global__ void __launch_bounds__(kThreads) quantize_rows(View4 x, Shape s, int tile_rows, int granularity, int warp_q,
                                                          const float *kmean, float out_scale, float lse_scale,
                                                          int8_t *codes, float *scales, float *lsec) {
    constexpr int lanes = D / 8, pass = kThreads / lanes;
    // [tile_rows] the rows' amax, [tile_rows] each group's amax as bits, then the rows' divisors.
    extern __shared__ float row_amax[];
    unsigned *group_amax = reinterpret_cast<unsigned *>(row_amax + tile_rows);
    Divisor *row_div = reinterpret_cast<Divisor *>(row_amax + 2 * tile_rows);
    for (int g = threadIdx.x; g < tile_rows; g += kThreads) group_amax[g] = 0u;
    const int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int col = threadIdx.x % lanes, row_in_pass = threadIdx.x / lanes;
    const int H = IS_K ? s.Hk : s.Hq, N = IS_K ? s.Nk : s.Nq, hk = IS_K ? h : h / (s.Hq / s.Hk);
    const int r0 = tile * tile_rows, rows = min(tile_rows, N - r0);
    const bool want_dot = !IS_K && lsec != nullptr;
    float mean[8] = {};
    if (kmean)
#pragma unroll
        for (int j = 0; j < 8; ++j) mean[j] = kmean[(static_cast<int64_t>(b) * s.Hk + hk) * D + col * 8 + j];
    const uint16_t *base = static_cast<const uint16_t *>(x.data) + b * x.sb + h * x.sh + col * 8;
    const int64_t out_row0 = (static_cast<int64_t>(b) * H + h) * (IS_K ? s.Nkp : s.Nq) + r0;
    // Every thread of a row takes the same trip count, so the row's lanes shuffle together; four
    // trips a time keep four loads a thread in flight.
    const int trips = (tile_rows + pass - 1) / pass;
#pragma unroll 4
    for (int it = 0; it < trips; ++it) {
        const int r = it * pass + row_in_pass;
        float a = 0.0f, dot = 0.0f;
        if (r < rows) {
            float v[8];
            load8<BF16>(base, (r0 + r) * x.sn, v);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                a = fmaxf(a, fabsf(IS_K ? v[j] - mean[j] : v[j]));
                if (want_dot) dot = fmaf(v[j], mean[j], dot);
            }
        }
        a = row_reduce(a, lanes, [](float p, float q) { return fmaxf(p, q); });
        if (want_dot) dot = row_reduce(dot, lanes, [](float p, float q) { return p + q; });
        if (r < rows && col == 0) {
            row_amax[r] = a;
            if (want_dot) lsec[(static_cast<int64_t>(b) * H + h) * N + r0 + r] = lse_scale * dot;
        }
    }
    __syncthreads();
    // Each group's amax (group indices are below tile_rows), through the bits of non-negative floats.
    for (int r = threadIdx.x; r < rows; r += kThreads)
        atomicMax(group_amax + (IS_K ? k_group(granularity, r) : q_group(granularity, r, warp_q)), __float_as_uint(row_amax[r]));
    __syncthreads();
    // Each row's scale and divisor, once a row rather than in each of its D/8 threads (the group
    // lookup and the divisions cost more than a thread's eight codes).
    for (int r = threadIdx.x; r < rows; r += kThreads) {
        const float sc = __uint_as_float(group_amax[IS_K ? k_group(granularity, r) : q_group(granularity, r, warp_q)]) / 127.0f;
        row_div[r] = divisor(sc);
        scales[out_row0 + r] = sc * out_scale;
    }
    __syncthreads();
#pragma unroll 4
    for (int it = 0; it < trips; ++it) {
        const int r = it * pass + row_in_pass;
        if (r >= rows) continue;
        const Divisor dv = row_div[r];
        float v[8];
        load8<BF16>(base, (r0 + r) * x.sn, v);
        uint32_t c[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) c[j] = int8_round(quotient(IS_K ? v[j] - mean[j] : v[j], dv));
        *reinterpret_cast<uint2 *>(codes + (out_row0 + r) * D + col * 8) =
            make_uint2(c[0] | c[1] << 8 | c[2] << 16 | c[3] << 24, c[4] | c[5] << 8 | c[6] << 16 | c[7] << 24);
    }
    // K rows past Nk up to the 64-key padding: zero codes and scales.
    if (IS_K && r0 + tile_rows >= N)
        for (int r = N + row_in_pass; r < s.Nkp; r += pass) {
            const int64_t row = (static_cast<int64_t>(b) * H + h) * s.Nkp + r;
            *reinterpret_cast<uint2 *>(codes + row * D + col * 8) = make_uint2(0, 0);
            if (col == 0) scales[row] = 0.0f;
        }
}

// Two floats to two E4M3 bytes (nearest even, saturating), a in bits 0..7.
__device__ inline uint32_t e4m3x2(float a, float b) {
    uint16_t e;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(e) : "f"(b), "f"(a));
    return e;
}

// V^T in E4M3, keys permuted per 16 (sage-cuda.cuh). One CTA per (64-key tile, hk, b): the tile
// comes into shared memory as it is (16-bit, one 16-byte store a thread: no bank conflicts), then
// each item (channel, 16-key group) reads its 16 values down a column (consecutive channels in
// consecutive lanes) and makes one 16-byte store.
template <bool BF16, int D>
__global__ void __launch_bounds__(kThreads) quantize_v(View4 v, Shape s, const unsigned *vmax, float v_bound,
                                                       float *vscale, uint8_t *vt) {
    constexpr int lanes = D / 8;
    __shared__ uint4 tile_sh[kTileK * lanes];  // [key][D] 16-bit values
    __shared__ Divisor ch_div[D];                // per channel
    const int tile = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
    const int64_t bh = static_cast<int64_t>(b) * s.Hk + hk;
    const uint16_t *src = static_cast<const uint16_t *>(v.data) + b * v.sb + hk * v.sh;
    // All of a thread's loads issued before any store: a store each, the loop waited a DRAM latency
    // per load (ncu: 29 cycles between a warp's instructions, DRAM 41%).
    constexpr int kLoads = kTileK * lanes / kThreads;
    static_assert(kLoads * kThreads == kTileK * lanes, "the tile divides among the threads");
    uint4 piece[kLoads];
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
        const int i = threadIdx.x + j * kThreads, r = i / lanes, col = i % lanes, n = tile * kTileK + r;
        piece[j] = n < s.Nk ? *reinterpret_cast<const uint4 *>(src + n * v.sn + col * 8) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int j = 0; j < kLoads; ++j) tile_sh[threadIdx.x + j * kThreads] = piece[j];
    for (int d = threadIdx.x; d < D; d += kThreads) {
        const float sc = __uint_as_float(vmax[bh * D + d]) / v_bound;
        ch_div[d] = divisor(sc);
        if (tile == 0) vscale[bh * D + d] = sc;
    }
    __syncthreads();
    const uint16_t *t16 = reinterpret_cast<const uint16_t *>(tile_sh);
    for (int item = threadIdx.x; item < D * (kTileK / 16); item += kThreads) {
        const int d = item % D, grp = item / D;
        const Divisor dv = ch_div[d];
        float x[16];
#pragma unroll
        for (int p = 0; p < 16; ++p) {
            const uint32_t raw = t16[(grp * 16 + (vt_key_of_position(p) & 15)) * D + d];
            const float f = BF16 ? __uint_as_float(raw << 16) : __half2float(__ushort_as_half(static_cast<unsigned short>(raw)));
            x[p] = quotient(f, dv);
        }
        uint32_t w[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) w[i] = e4m3x2(x[4 * i], x[4 * i + 1]) | e4m3x2(x[4 * i + 2], x[4 * i + 3]) << 16;
        *reinterpret_cast<uint4 *>(vt + (bh * D + d) * s.Nkp + tile * kTileK + grp * 16) = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

int stat_chunks(const Shape &s) { return (s.Nk + kStatRows - 1) / kStatRows; }

// quantize_rows' shared memory for tiles of `rows` rows: each row's amax, its group's amax bits,
// its divisor.
size_t rows_smem(int rows) { return static_cast<size_t>(rows) * (2 * sizeof(float) + sizeof(Divisor)); }

template <bool BF16, int D>
void run(const View4 &q, const View4 &k, const View4 &v, const Shape &s, int granularity, int block_q, int block_k,
         int warp_q, bool smooth_k, float scale, float v_bound, QuantBuffers &buf, float *scratch, cudaStream_t st) {
    const int chunks = stat_chunks(s);
    float *part = scratch, *kmean = part + static_cast<int64_t>(s.B) * s.Hk * chunks * D;
    unsigned *vmax = reinterpret_cast<unsigned *>(kmean + static_cast<int64_t>(s.B) * s.Hk * D);
    cudaMemsetAsync(vmax, 0, sizeof(unsigned) * s.B * s.Hk * D, st);
    stats<BF16><<<dim3(chunks, s.Hk, s.B), kThreads, 0, st>>>(k, v, s, smooth_k, part, vmax);
    const float *mean = nullptr;
    if (smooth_k) {
        kmean_kernel<<<s.B * s.Hk, 128, 0, st>>>(s, chunks, part, kmean);
        mean = kmean;
    }
    const float log2e = 1.4426950408889634f;
    quantize_rows<BF16, false, D><<<dim3((s.Nq + block_q - 1) / block_q, s.Hq, s.B), kThreads, rows_smem(block_q), st>>>(
        q, s, block_q, granularity, warp_q, mean, scale * log2e, scale, buf.qc, buf.qs, mean ? buf.lsec : nullptr);
    quantize_rows<BF16, true, D><<<dim3((s.Nk + block_k - 1) / block_k, s.Hk, s.B), kThreads, rows_smem(block_k), st>>>(
        k, s, block_k, granularity, warp_q, mean, 1.0f, 0.0f, buf.kc, buf.ks, nullptr);
    quantize_v<BF16, D><<<dim3(s.Nkp / kTileK, s.Hk, s.B), kThreads, 0, st>>>(v, s, vmax, v_bound, buf.vs, buf.vt);
}

template <bool BF16>
void run_d(const View4 &q, const View4 &k, const View4 &v, const Shape &s, int granularity, int block_q, int block_k,
           int warp_q, bool smooth_k, float scale, float v_bound, QuantBuffers &buf, float *scratch, cudaStream_t st) {
    // The API admits D 64, 128 and 256 only (sage-api.cu).
    if (s.D == 64) run<BF16, 64>(q, k, v, s, granularity, block_q, block_k, warp_q, smooth_k, scale, v_bound, buf, scratch, st);
    else if (s.D == 128) run<BF16, 128>(q, k, v, s, granularity, block_q, block_k, warp_q, smooth_k, scale, v_bound, buf, scratch, st);
    else run<BF16, 256>(q, k, v, s, granularity, block_q, block_k, warp_q, smooth_k, scale, v_bound, buf, scratch, st);
}

}  // namespace

int64_t quantize_scratch_floats(const Shape &s) {
    return static_cast<int64_t>(s.B) * s.Hk * s.D * (stat_chunks(s) + 2);
}

void quantize(const View4 &q, const View4 &k, const View4 &v, bool in_bf16, const Shape &s, int granularity,
              int block_q, int block_k, int warp_q, bool smooth_k, float scale, float v_bound, QuantBuffers &buf,
              float *scratch, cudaStream_t stream) {
    if (in_bf16) run_d<true>(q, k, v, s, granularity, block_q, block_k, warp_q, smooth_k, scale, v_bound, buf, scratch, stream);
    else run_d<false>(q, k, v, s, granularity, block_q, block_k, warp_q, smooth_k, scale, v_bound, buf, scratch, stream);
}

}  // namespace slip::cuda::sage
