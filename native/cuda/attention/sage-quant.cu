// The quantizers of SageAttention2 on CUDA, numerically those of the CPU reference
// (native/src/attention/sage-quant.cpp): smooth-K with the per-(batch, kv head) token mean, INT8
// codes amax/127 rounded half away from zero per row group (BLOCK, WARP or THREAD granularity),
// V per channel to E4M3 (nearest even, saturating) with scale amax_c / v_bound.
//
// Three passes over K and V, one over Q, all with 16-byte loads (8 elements per thread):
//   stats      per (chunk of kStatRows keys, b, hk): K's column sums (deterministic partials) and
//              V's column amax (atomicMax on the bits of a non-negative float: order-free)
//   kmean      the partials summed in a fixed order, over Nk
//   rows       per (tile, b, h) of Q and of K': row amax, each row's group scale, codes
//   v          per (64-key tile, b, hk): the tile through shared memory, transposed and permuted
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "sage-cuda.cuh"

namespace slip::cuda::sage {

namespace {

constexpr int kStatRows = 512;  // keys per stats CTA: Nk / 512 partial sums per channel to add
constexpr int kThreads = 256;

// Eight consecutive elements (16 bytes) of a bf16 or fp16 row as floats.
template <bool BF16>
__device__ inline void load8(const void *base, int64_t i, float (&x)[8]) {
    const uint4 raw = *reinterpret_cast<const uint4 *>(static_cast<const uint16_t *>(base) + i);
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

__device__ inline int8_t int8_code(float x, float s) {
    if (s == 0.0f) return 0;
    float t = x / s;
    t += t >= 0.0f ? 0.5f : -0.5f;
    t = fminf(fmaxf(t, -127.0f), 127.0f);
    return static_cast<int8_t>(static_cast<int>(t));
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
    for (int n = n0 + static_cast<int>(threadIdx.x) / lanes; n < n1; n += pass) {
        float x[8];
        if (want_sum) {
            load8<BF16>(k.data, b * k.sb + hk * k.sh + n * k.sn + col * 8, x);
#pragma unroll
            for (int j = 0; j < 8; ++j) sum[j] += x[j];
        }
        load8<BF16>(v.data, b * v.sb + hk * v.sh + n * v.sn + col * 8, x);
#pragma unroll
        for (int j = 0; j < 8; ++j) mx[j] = fmaxf(mx[j], fabsf(x[j]));
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

// One CTA per (tile of tile_rows rows, h, b) of Q (is_k false) or K'. A row is L = D/8 lanes.
template <bool BF16>
__global__ void __launch_bounds__(kThreads) quantize_rows(View4 x, Shape s, bool is_k, int tile_rows, int granularity,
                                                          int warp_q, const float *kmean, float out_scale,
                                                          float lse_scale, int8_t *codes, float *scales, float *lsec) {
    extern __shared__ float row_amax[];  // [tile_rows], then each group's amax as bits: [tile_rows]
    unsigned *group_amax = reinterpret_cast<unsigned *>(row_amax + tile_rows);
    for (int g = threadIdx.x; g < tile_rows; g += kThreads) group_amax[g] = 0u;
    const int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int lanes = s.D / 8, col = threadIdx.x % lanes, pass = kThreads / lanes;
    const int H = is_k ? s.Hk : s.Hq, N = is_k ? s.Nk : s.Nq, hk = is_k ? h : h / (s.Hq / s.Hk);
    const int r0 = tile * tile_rows, rows = min(tile_rows, N - r0);
    float mean[8] = {};
    if (kmean)
#pragma unroll
        for (int j = 0; j < 8; ++j) mean[j] = kmean[(static_cast<int64_t>(b) * s.Hk + hk) * s.D + col * 8 + j];
    const int64_t base = b * x.sb + h * x.sh;
    const int64_t out_row0 = (static_cast<int64_t>(b) * H + h) * (is_k ? s.Nkp : s.Nq) + r0;
    // Every thread of a row takes the same trip count, so the row's lanes shuffle together.
    const int trips = (tile_rows + pass - 1) / pass;
    for (int it = 0; it < trips; ++it) {
        const int r = it * pass + static_cast<int>(threadIdx.x) / lanes;
        float a = 0.0f, dot = 0.0f;
        if (r < rows) {
            float v[8];
            load8<BF16>(x.data, base + (r0 + r) * x.sn + col * 8, v);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                a = fmaxf(a, fabsf(is_k ? v[j] - mean[j] : v[j]));
                dot = fmaf(v[j], mean[j], dot);
            }
        }
        a = row_reduce(a, lanes, [](float p, float q) { return fmaxf(p, q); });
        dot = row_reduce(dot, lanes, [](float p, float q) { return p + q; });
        if (r < rows && col == 0) {
            row_amax[r] = a;
            if (lsec) lsec[(static_cast<int64_t>(b) * H + h) * N + r0 + r] = lse_scale * dot;
        }
    }
    __syncthreads();
    // Each group's amax (group indices are below tile_rows), through the bits of non-negative floats.
    for (int r = threadIdx.x; r < rows; r += kThreads)
        atomicMax(group_amax + (is_k ? k_group(granularity, r) : q_group(granularity, r, warp_q)), __float_as_uint(row_amax[r]));
    __syncthreads();
    for (int it = 0; it < trips; ++it) {
        const int r = it * pass + static_cast<int>(threadIdx.x) / lanes;
        if (r >= rows) continue;
        const float sc = __uint_as_float(group_amax[is_k ? k_group(granularity, r) : q_group(granularity, r, warp_q)]) / 127.0f;
        float v[8];
        load8<BF16>(x.data, base + (r0 + r) * x.sn + col * 8, v);
        uint8_t c[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) c[j] = static_cast<uint8_t>(int8_code(is_k ? v[j] - mean[j] : v[j], sc));
        *reinterpret_cast<uint2 *>(codes + (out_row0 + r) * s.D + col * 8) = *reinterpret_cast<const uint2 *>(c);
        if (col == 0) scales[out_row0 + r] = sc * out_scale;
    }
    // K rows past Nk up to the 64-key padding: zero codes and scales.
    if (is_k && r0 + tile_rows >= N)
        for (int r = N + static_cast<int>(threadIdx.x) / lanes; r < s.Nkp; r += pass) {
            const int64_t row = (static_cast<int64_t>(b) * H + h) * s.Nkp + r;
            *reinterpret_cast<uint2 *>(codes + row * s.D + col * 8) = make_uint2(0, 0);
            if (col == 0) scales[row] = 0.0f;
        }
}

// V^T in E4M3, keys permuted per 16 (sage-cuda.cuh). One CTA per (64-key tile, hk, b): the tile
// comes in through shared memory with 16-byte loads, then each item (channel, 16-key group) is
// one 16-byte store.
template <bool BF16>
__global__ void __launch_bounds__(kThreads) quantize_v(View4 v, Shape s, const unsigned *vmax, float v_bound,
                                                       float *vscale, uint8_t *vt) {
    extern __shared__ float tile_sh[];  // [kTileK][D]
    const int tile = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
    const int lanes = s.D / 8;
    const int64_t bh = static_cast<int64_t>(b) * s.Hk + hk, base = b * v.sb + hk * v.sh;
    for (int i = threadIdx.x; i < kTileK * lanes; i += kThreads) {
        const int r = i / lanes, col = i % lanes, n = tile * kTileK + r;
        float x[8] = {};
        if (n < s.Nk) load8<BF16>(v.data, base + n * v.sn + col * 8, x);
#pragma unroll
        for (int j = 0; j < 8; ++j) tile_sh[r * s.D + col * 8 + j] = x[j];
    }
    if (tile == 0)
        for (int d = threadIdx.x; d < s.D; d += kThreads) vscale[bh * s.D + d] = __uint_as_float(vmax[bh * s.D + d]) / v_bound;
    __syncthreads();
    for (int item = threadIdx.x; item < s.D * (kTileK / 16); item += kThreads) {
        const int d = item % s.D, grp = item / s.D;
        const float sc = __uint_as_float(vmax[bh * s.D + d]) / v_bound;
        alignas(16) uint8_t bytes[16];
#pragma unroll
        for (int p = 0; p < 16; ++p) {
            const float x = sc != 0.0f ? tile_sh[(grp * 16 + (vt_key_of_position(p) & 15)) * s.D + d] / sc : 0.0f;
            bytes[p] = static_cast<uint8_t>(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3));
        }
        *reinterpret_cast<uint4 *>(vt + (bh * s.D + d) * s.Nkp + tile * kTileK + grp * 16) =
            *reinterpret_cast<const uint4 *>(bytes);
    }
}

int stat_chunks(const Shape &s) { return (s.Nk + kStatRows - 1) / kStatRows; }

template <bool BF16>
void run(const View4 &q, const View4 &k, const View4 &v, const Shape &s, int granularity, int block_q, int block_k,
         int warp_q, bool smooth_k, float scale, float v_bound, QuantBuffers &buf, float *scratch, cudaStream_t st) {
    const int chunks = stat_chunks(s);
    float *part = scratch, *kmean = part + static_cast<int64_t>(s.B) * s.Hk * chunks * s.D;
    unsigned *vmax = reinterpret_cast<unsigned *>(kmean + static_cast<int64_t>(s.B) * s.Hk * s.D);
    cudaMemsetAsync(vmax, 0, sizeof(unsigned) * s.B * s.Hk * s.D, st);
    stats<BF16><<<dim3(chunks, s.Hk, s.B), kThreads, 0, st>>>(k, v, s, smooth_k, part, vmax);
    const float *mean = nullptr;
    if (smooth_k) {
        kmean_kernel<<<s.B * s.Hk, 128, 0, st>>>(s, chunks, part, kmean);
        mean = kmean;
    }
    const float log2e = 1.4426950408889634f;
    quantize_rows<BF16><<<dim3((s.Nq + block_q - 1) / block_q, s.Hq, s.B), kThreads, 2 * block_q * sizeof(float), st>>>(
        q, s, false, block_q, granularity, warp_q, mean, scale * log2e, scale, buf.qc, buf.qs, mean ? buf.lsec : nullptr);
    quantize_rows<BF16><<<dim3((s.Nk + block_k - 1) / block_k, s.Hk, s.B), kThreads, 2 * block_k * sizeof(float), st>>>(
        k, s, true, block_k, granularity, warp_q, mean, 1.0f, 0.0f, buf.kc, buf.ks, nullptr);
    // D = 256 needs 64 KiB of shared memory: above the default 48, so raised once.
    static const cudaError_t attr =
        cudaFuncSetAttribute(quantize_v<BF16>, cudaFuncAttributeMaxDynamicSharedMemorySize, kTileK * 256 * sizeof(float));
    (void)attr;  // a failure shows at launch
    quantize_v<BF16><<<dim3(s.Nkp / kTileK, s.Hk, s.B), kThreads, kTileK * s.D * sizeof(float), st>>>(
        v, s, vmax, v_bound, buf.vs, buf.vt);
}

}  // namespace

int64_t quantize_scratch_floats(const Shape &s) {
    return static_cast<int64_t>(s.B) * s.Hk * s.D * (stat_chunks(s) + 2);
}

void quantize(const View4 &q, const View4 &k, const View4 &v, bool in_bf16, const Shape &s, int granularity,
              int block_q, int block_k, int warp_q, bool smooth_k, float scale, float v_bound, QuantBuffers &buf,
              float *scratch, cudaStream_t stream) {
    if (in_bf16) run<true>(q, k, v, s, granularity, block_q, block_k, warp_q, smooth_k, scale, v_bound, buf, scratch, stream);
    else run<false>(q, k, v, s, granularity, block_q, block_k, warp_q, smooth_k, scale, v_bound, buf, scratch, stream);
}

}  // namespace slip::cuda::sage
