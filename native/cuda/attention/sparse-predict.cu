// SpargeAttention2's block-mask prediction on CUDA (slip_attn_sparse_predict on CUDA tensors): the
// CPU reference's rule (native/src/attention/sparse-predict.cpp) with its float64 pooling, so the
// masks agree except where two pooled scores tie within double rounding.
//   kmean      smooth-K's per-(batch, kv head) mean, from fixed-order partial sums
//   pool       per block of Q (and of K minus the mean): the mean and the self-similarity
//              ‖Σ u‖² / b² (u the unit tokens), one warp per token, fixed-order combination
//   logits     every (query block, key block) pair's pooled logit, a tiled float64 product
//   select     per (query block, head): pooled logits over the allowed key blocks, softmax over
//              the trusted ones, a bitonic sort (score descending, earlier block first), Top-k ∪
//              Top-p, the similarity guard, the sink; kept and allowed pairs counted
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "base/cuda-backend.h"
#include "base/error.h"
#include "base/tensor.h"
#include "../cuda-common.cuh"

namespace slip::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kChunkRows = 128;  // keys per smooth-K partial sum: enough CTAs to fill the GPU
constexpr int kMaxSort = 4096;  // key blocks one row can sort in shared memory

struct View {
    const void *data;
    int64_t sb, sh, sn;
    bool bf16;
    __device__ float at(int b, int h, int n, int d) const {
        const int64_t i = b * sb + h * sh + n * sn + d;
        return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16 *>(data)[i])
                    : __half2float(static_cast<const __half *>(data)[i]);
    }
};

struct Dims {
    int B, Hq, Hk, Nq, Nk, D, bq, bk, nqb, nkb;
    bool causal;
};

__global__ void kmean_partials(View k, Dims s, double *part) {
    const int chunk = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
    const int n0 = chunk * kChunkRows, n1 = min(s.Nk, n0 + kChunkRows);
    for (int d = threadIdx.x; d < s.D; d += blockDim.x) {
        double acc = 0.0;
        for (int n = n0; n < n1; ++n) acc += k.at(b, hk, n, d);
        part[((static_cast<int64_t>(b) * s.Hk + hk) * gridDim.x + chunk) * s.D + d] = acc;
    }
}

__global__ void kmean_finish(Dims s, int chunks, const double *part, double *mean) {
    const int64_t bh = blockIdx.x;
    for (int d = threadIdx.x; d < s.D; d += blockDim.x) {
        double acc = 0.0;
        for (int c = 0; c < chunks; ++c) acc += part[(bh * chunks + c) * s.D + d];
        mean[bh * s.D + d] = acc / s.Nk;
    }
}

// The sum of v over the CTA (kThreads threads) in a fixed tree order, the same on every run; every
// thread gets it. sh: kThreads doubles of shared memory.
__device__ double cta_sum(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int w = kThreads / 2; w; w >>= 1) {
        if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    const double r = sh[0];
    __syncthreads();
    return r;
}

// One CTA per (block, head, batch) of Q (mean_shift null) or K: means [.., blocks, D], sim [.., blocks].
__global__ void pool(View x, Dims s, int heads, int n_tokens, int block, const double *shift, double *means,
                     double *sims) {
    __shared__ double msum[kThreads / 32][256], usum[kThreads / 32][256];
    const int blk = blockIdx.x, h = blockIdx.y, b = blockIdx.z, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int t0 = blk * block, t1 = min(n_tokens, t0 + block);
    const double *sh = shift ? shift + (static_cast<int64_t>(b) * s.Hk + h) * s.D : nullptr;
    double m[8] = {}, u[8] = {};
    for (int t = t0 + warp; t < t1; t += kThreads / 32) {
        double xv[8], nn = 0.0;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int d = lane + 32 * j;
            xv[j] = d < s.D ? static_cast<double>(x.at(b, h, t, d)) - (sh ? sh[d] : 0.0) : 0.0;
            m[j] += xv[j];
            nn += xv[j] * xv[j];
        }
        for (int o = 16; o; o >>= 1) nn += __shfl_xor_sync(0xffffffffu, nn, o);
        if (nn > 0.0) {
            const double inv = 1.0 / sqrt(nn);
#pragma unroll
            for (int j = 0; j < 8; ++j) u[j] += xv[j] * inv;
        }
    }
#pragma unroll
    for (int j = 0; j < 8; ++j)
        if (lane + 32 * j < s.D) {
            msum[warp][lane + 32 * j] = m[j];
            usum[warp][lane + 32 * j] = u[j];
        }
    __syncthreads();
    const double cnt = static_cast<double>(t1 - t0);
    const int64_t row = (static_cast<int64_t>(b) * heads + h) * gridDim.x + blk;
    __shared__ double s2[kThreads];
    double sq = 0.0;
    for (int d = threadIdx.x; d < s.D; d += kThreads) {
        double ms = 0.0, us = 0.0;
        for (int w = 0; w < kThreads / 32; ++w) {
            ms += msum[w][d];
            us += usum[w][d];
        }
        means[row * s.D + d] = ms / cnt;
        sq += us * us;
    }
    const double tot = cta_sum(sq, s2);
    if (threadIdx.x == 0) sims[row] = tot / (cnt * cnt);
}

// logits[b, h, qb, kb] = qmean[b, h, qb] . kmean[b, hk, kb], summed over d in order as the CPU
// does, for every pair: a tiled product (each select_blocks CTA computing its own row re-read all
// of kmean from L2, ~1 ms at 32,760 tokens).
constexpr int kLogitTile = 32;
__global__ void pooled_logits(Dims s, const double *qmean, const double *kmean, double *logits) {
    __shared__ double qt[kLogitTile][kLogitTile + 1], kt[kLogitTile][kLogitTile + 1];
    const int bh = blockIdx.z, b = bh / s.Hq, h = bh % s.Hq, hk = h / (s.Hq / s.Hk);
    const int q0 = blockIdx.y * kLogitTile, k0 = blockIdx.x * kLogitTile;
    const int tx = threadIdx.x % kLogitTile, ty = threadIdx.x / kLogitTile;  // 8 rows of 32
    constexpr int kRows = kLogitTile / (kThreads / kLogitTile);               // 4 outputs a thread
    const double *qm = qmean + static_cast<int64_t>(bh) * s.nqb * s.D;
    const double *km = kmean + (static_cast<int64_t>(b) * s.Hk + hk) * s.nkb * s.D;
    double acc[kRows] = {};
    for (int d0 = 0; d0 < s.D; d0 += kLogitTile) {
        for (int r = ty; r < kLogitTile; r += kThreads / kLogitTile) {
            const bool dk = d0 + tx < s.D;
            qt[r][tx] = q0 + r < s.nqb && dk ? qm[static_cast<int64_t>(q0 + r) * s.D + d0 + tx] : 0.0;
            kt[r][tx] = k0 + r < s.nkb && dk ? km[static_cast<int64_t>(k0 + r) * s.D + d0 + tx] : 0.0;
        }
        __syncthreads();
        const int dn = min(kLogitTile, s.D - d0);
        for (int d = 0; d < dn; ++d)
#pragma unroll
            for (int i = 0; i < kRows; ++i) acc[i] += qt[ty + i * (kThreads / kLogitTile)][d] * kt[tx][d];
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
        const int qb = q0 + ty + i * (kThreads / kLogitTile), kb = k0 + tx;
        if (qb < s.nqb && kb < s.nkb) logits[(static_cast<int64_t>(bh) * s.nqb + qb) * s.nkb + kb] = acc[i];
    }
}

// Key blocks [0, n) that query block qb may see (bottom-right causality), as allowed_key_blocks().
__device__ inline int allowed(const Dims &s, int qb) {
    if (!s.causal) return s.nkb;
    const int last_q = min(s.Nq, (qb + 1) * s.bq) - 1, last_k = last_q + (s.Nk - s.Nq);
    return last_k < 0 ? 0 : min(s.nkb, last_k / s.bk + 1);
}

__global__ void select_blocks(Dims s, float scale, float topk, float topp, float theta, int sink, const double *logits,
                              const double *qsim, const double *ksim, int sort_n, uint8_t *mask,
                              unsigned long long *counts) {
    extern __shared__ unsigned char sh[];
    double *p = reinterpret_cast<double *>(sh);           // [sort_n] score, then sorted
    int *idx = reinterpret_cast<int *>(p + sort_n);       // [sort_n]
    uint8_t *keep = reinterpret_cast<uint8_t *>(idx + sort_n);  // [nkb]
    __shared__ double red[kThreads];
    const int qb = blockIdx.x, h = blockIdx.y, b = blockIdx.z, hk = h / (s.Hq / s.Hk);
    const int n = allowed(s, qb);
    uint8_t *row = mask + ((static_cast<int64_t>(b) * s.Hq + h) * s.nqb + qb) * s.nkb;
    const double *ks = ksim + (static_cast<int64_t>(b) * s.Hk + hk) * s.nkb;
    const int64_t qrow = (static_cast<int64_t>(b) * s.Hq + h) * s.nqb + qb;
    const bool q_trusted = qsim[qrow] > theta;
    for (int j = threadIdx.x; j < s.nkb; j += kThreads) keep[j] = (j < n && (!q_trusted || !(ks[j] > theta))) ? 1 : 0;
    if (n > 0 && q_trusted) {
        // Logits of the trusted blocks; the rest sort last (score -1).
        const double *lg = logits + qrow * s.nkb;
        double mx = -INFINITY;
        for (int j = threadIdx.x; j < sort_n; j += kThreads) {
            const double v = j < n && ks[j] > theta ? static_cast<double>(scale) * lg[j] : -INFINITY;
            p[j] = v;
            idx[j] = j;
            mx = fmax(mx, v);
        }
        red[threadIdx.x] = mx;
        __syncthreads();
        for (int w = kThreads / 2; w; w >>= 1) {
            if (threadIdx.x < w) red[threadIdx.x] = fmax(red[threadIdx.x], red[threadIdx.x + w]);
            __syncthreads();
        }
        mx = red[0];
        __syncthreads();
        double sum = 0.0;
        for (int j = threadIdx.x; j < sort_n; j += kThreads) {
            const double e = p[j] == -INFINITY ? 0.0 : exp(p[j] - mx);
            p[j] = e;
            sum += e;
        }
        sum = cta_sum(sum, red);
        double trusted = 0.0;  // blocks with a score: they sort first
        for (int j = threadIdx.x; j < sort_n; j += kThreads) {
            const bool t = j < n && ks[j] > theta;
            p[j] = t ? p[j] / sum : -1.0;
            trusted += t ? 1.0 : 0.0;
        }
        const int m = static_cast<int>(cta_sum(trusted, red));
        // Bitonic sort: score descending, then block index ascending (the CPU's stable sort).
        for (int size = 2; size <= sort_n; size <<= 1)
            for (int stride = size >> 1; stride; stride >>= 1) {
                for (int i = threadIdx.x; i < sort_n; i += kThreads) {
                    const int jx = i ^ stride;
                    if (jx > i) {
                        const bool desc = (i & size) == 0;
                        const bool i_first = p[i] > p[jx] || (p[i] == p[jx] && idx[i] < idx[jx]);
                        if (i_first != desc) {
                            const double tp = p[i];
                            p[i] = p[jx];
                            p[jx] = tp;
                            const int ti = idx[i];
                            idx[i] = idx[jx];
                            idx[jx] = ti;
                        }
                    }
                }
                __syncthreads();
            }
        if (threadIdx.x == 0) {
            if (m > 0) {
                if (topk > 0.0f) {
                    int c = static_cast<int>(floor(static_cast<double>(topk) * n));
                    c = min(m, max(1, c));
                    for (int r = 0; r < c; ++r) keep[idx[r]] = 1;
                }
                if (topp > 0.0f) {
                    double cum = 0.0;
                    for (int r = 0; r < m; ++r) {
                        keep[idx[r]] = 1;
                        cum += p[r];
                        if (cum >= topp) break;
                    }
                }
            }
            if (sink) keep[0] = 1;
        }
    }
    __syncthreads();
    double kept = 0.0;
    for (int j = threadIdx.x; j < s.nkb; j += kThreads) {
        row[j] = keep[j];
        kept += keep[j];
    }
    const double tot = cta_sum(kept, red);  // whole numbers: exact in any order
    if (threadIdx.x == 0 && counts) {
        atomicAdd(counts, static_cast<unsigned long long>(tot));
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
    return View{t->data, t->strides[0], t->strides[hd], t->strides[nd], t->dtype == SLIP_DTYPE_BF16};
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
    const double *shift = nullptr;
    if (sp->smooth_k) {
        kmean_partials<<<dim3(chunks, Hk, B), kThreads, 0, st>>>(kv, s, part);
        kmean_finish<<<B * Hk, kThreads, 0, st>>>(s, chunks, part, kmean);
        shift = kmean;
    }
    pool<<<dim3(nqb, Hq, B), kThreads, 0, st>>>(qv, s, static_cast<int>(Hq), static_cast<int>(Nq), s.bq, nullptr, qm, qs);
    pool<<<dim3(nkb, Hk, B), kThreads, 0, st>>>(kv, s, static_cast<int>(Hk), static_cast<int>(Nk), s.bk, shift, km, ks);
    pooled_logits<<<dim3((nkb + kLogitTile - 1) / kLogitTile, (nqb + kLogitTile - 1) / kLogitTile, B * Hq), kThreads, 0,
                    st>>>(s, qm, km, logits);
    int sort_n = 1;
    while (sort_n < nkb) sort_n <<= 1;
    const size_t smem = static_cast<size_t>(sort_n) * (8 + 4) + static_cast<size_t>(nkb);
    static const cudaError_t attr =
        cudaFuncSetAttribute(select_blocks, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSort * 12 + kMaxSort);
    (void)attr;
    select_blocks<<<dim3(nqb, Hq, B), kThreads, smem, st>>>(s, scale, sp->topk, sp->topp, sp->sim_threshold,
                                                            sp->attention_sink, logits, qs, ks, sort_n,
                                                            static_cast<uint8_t *>(bm.data), counts);
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
