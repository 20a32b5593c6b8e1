// SageAttention2's forward on CUDA tensor cores (sm_89 and sm_90 through mma.sync): S = Q K'^T as
// INT8 m16n8k32 products with exact INT32 sums, online softmax in FP32 (log2 domain), P~ = 448 ·
// 2^(s - m) in E4M3, P~ V as E4M3 m16n8k32 products whose partial over one 64-key tile (the FP8
// accumulator, ~FP22) is flushed into FP32 registers: the CPU reference's numerics
// (native/src/attention/sage-forward.cpp), up to exp2 and summation order.
//
// CTA: 8 warps x 16 query rows = 128 rows; K/V tiles of 64 keys, double-buffered in shared memory
// by cp.async. Per warp and tile: 8 x D/32 INT8 MMAs for S (Q's fragments stay in registers), then
// D/8 x 2 FP8 MMAs for P~V. The P~ fragment is built from S's accumulators in place: thread t holds
// keys 2t, 2t+1 of each 8-key S tile, which vt's key order (sage-cuda.cuh) turns into m16n8k32's
// A layout, so P~ never leaves the registers.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "sage-cuda.cuh"

namespace slip::cuda::sage {

namespace {

constexpr float kLog2P448 = 8.807354922057604f;  // log2(448): P~ in [0, 448]
constexpr float kLn2 = 0.6931471805599453f;
// The S accumulators start at the bits of 1.5 * 2^23: an INT32 sum d, |d| <= 256 * 127 * 127 <
// 2^22, then reads as the float 1.5 * 2^23 + d exactly, and one subtraction gives d as a float on
// the full-rate FP32 pipe (I2F runs at a quarter of that, and would cost as much as the MMAs).
constexpr int32_t kMagicBits = 0x4B400000;
constexpr float kMagic = 12582912.0f;

// 2^x on the special-function unit, one instruction (denormal results flush to 0: P~ below 2^-126
// of 448 is 0 in E4M3 anyway).
__device__ inline float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

__device__ inline void mma_s8(int (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ inline void mma_e4m3(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    __trap();  // the host refuses devices below sm_89
#endif
}

// Four floats to E4M3 (nearest even, saturating), x0 in the lowest byte.
__device__ inline uint32_t fp8x4(float x0, float x1, float x2, float x3) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    uint16_t lo, hi;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(lo) : "f"(x1), "f"(x0));
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(hi) : "f"(x3), "f"(x2));
    return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
#else
    __trap();
    return 0;
#endif
}

// Four 8x8 b16 matrices (8 rows of 16 bytes each) from shared memory; lane L gives the address of
// row L % 8 of matrix L / 8, and register i of thread (g, t) receives matrix i's row g, bytes
// 4t..4t+3: for 8-bit data, an m16n8k32 B fragment half (4 k of one n).
__device__ inline void ldmatrix_x4(uint32_t (&r)[4], const void *smem) {
    const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

__device__ inline void cp_async16(void *smem, const void *gmem) {
    const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ inline void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Shared memory per stage: K rows padded by 16 bytes and V^T rows likewise, so the fragment loads
// of a warp (8 rows x 4 words) fall in 32 distinct banks; then the tile's 64 K scales.
template <int D>
struct Smem {
    static constexpr int kStride = D + 16, vStride = kTileK + 16;
    static constexpr int kBytes = kTileK * kStride, vBytes = D * vStride, sBytes = kTileK * 4;
    static constexpr int stage = kBytes + vBytes + sBytes;
    static constexpr int total = 2 * stage;
};

template <int D, bool BF16>
__global__ void __launch_bounds__(kWarps * 32, ctas_per_sm(D)) attend_kernel(QuantBuffers buf, Shape s, int causal,
                                                             const uint8_t *block_mask, View4 out, float *lse) {
    using S = Smem<D>;
    extern __shared__ __align__(16) uint8_t smem[];
    const int qb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int hk = h / (s.Hq / s.Hk);
    const int ra = qb * kCtaRows + warp * kWarpRows + g, rb = ra + 8;
    const int64_t qrow0 = (static_cast<int64_t>(b) * s.Hq + h) * s.Nq;

    uint32_t qa[D / 32][4];
    {
        const int8_t *qc = buf.qc + qrow0 * D;
#pragma unroll
        for (int kk = 0; kk < D / 32; ++kk) {
            const int c = kk * 32 + 4 * t;
            qa[kk][0] = ra < s.Nq ? *reinterpret_cast<const uint32_t *>(qc + ra * D + c) : 0u;
            qa[kk][1] = rb < s.Nq ? *reinterpret_cast<const uint32_t *>(qc + rb * D + c) : 0u;
            qa[kk][2] = ra < s.Nq ? *reinterpret_cast<const uint32_t *>(qc + ra * D + c + 16) : 0u;
            qa[kk][3] = rb < s.Nq ? *reinterpret_cast<const uint32_t *>(qc + rb * D + c + 16) : 0u;
        }
    }
    const float qsa = ra < s.Nq ? buf.qs[qrow0 + ra] : 0.0f, qsb = rb < s.Nq ? buf.qs[qrow0 + rb] : 0.0f;

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float ma = -INFINITY, mb = -INFINITY, la = 0.0f, lb = 0.0f;

    // Tiles this CTA needs: all, or up to the last key its last row may see.
    const int nkt = s.Nkp / kTileK;
    int kt_end = nkt;
    const int shift = s.Nk - s.Nq, first_row = qb * kCtaRows;
    if (causal) {
        const int last_key = min(s.Nq - 1, first_row + kCtaRows - 1) + shift;
        kt_end = last_key < 0 ? 0 : min(nkt, last_key / kTileK + 1);
    }
    // The block mask's query tiles are kMaskRows (128) rows: two CTAs share a row of it.
    const int nqb = (s.Nq + kMaskRows - 1) / kMaskRows;
    const uint8_t *keep =
        block_mask ? block_mask + ((static_cast<int64_t>(b) * s.Hq + h) * nqb + first_row / kMaskRows) * nkt : nullptr;
    auto next = [&](int kt) {
        if (keep)
            while (kt < kt_end && !keep[kt]) ++kt;
        return kt;
    };

    const int64_t kv = static_cast<int64_t>(b) * s.Hk + hk;
    const uint8_t *kbase = reinterpret_cast<const uint8_t *>(buf.kc) + kv * s.Nkp * D;
    const uint8_t *vbase = buf.vt + kv * D * s.Nkp;
    const float *ksbase = buf.ks + kv * s.Nkp;
    auto load = [&](int kt, int stage) {
        uint8_t *ks = smem + stage * S::stage, *vs = ks + S::kBytes;
        float *ss = reinterpret_cast<float *>(vs + S::vBytes);
        for (int c = threadIdx.x; c < kTileK * D / 16; c += kWarps * 32) {
            const int r = c / (D / 16), col = (c % (D / 16)) * 16;
            cp_async16(ks + r * S::kStride + col, kbase + static_cast<int64_t>(kt * kTileK + r) * D + col);
        }
        for (int c = threadIdx.x; c < D * (kTileK / 16); c += kWarps * 32) {
            const int r = c / (kTileK / 16), col = (c % (kTileK / 16)) * 16;
            cp_async16(vs + r * S::vStride + col, vbase + static_cast<int64_t>(r) * s.Nkp + kt * kTileK + col);
        }
        if (threadIdx.x < kTileK / 4) cp_async16(ss + threadIdx.x * 4, ksbase + kt * kTileK + threadIdx.x * 4);
        cp_async_commit();
    };

    int cur = next(0), stage = 0;
    if (cur < kt_end) load(cur, 0);
    while (cur < kt_end) {
        const int nxt = next(cur + 1);
        if (nxt < kt_end) {
            load(nxt, stage ^ 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const uint8_t *ks = smem + stage * S::stage, *vs = ks + S::kBytes;
        const float *ss = reinterpret_cast<const float *>(vs + S::vBytes);

        int sacc[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j) sacc[j][0] = sacc[j][1] = sacc[j][2] = sacc[j][3] = kMagicBits;
        // Lane L addresses row L % 8 of matrix L / 8: keys 8(j + m/2) + r, dims kk*32 + 16(m%2).
        const uint8_t *kl = ks + (8 * ((lane / 8) / 2) + lane % 8) * S::kStride + 16 * ((lane / 8) % 2);
#pragma unroll
        for (int kk = 0; kk < D / 32; ++kk)
#pragma unroll
            for (int j = 0; j < 8; j += 2) {
                uint32_t bf[4];
                ldmatrix_x4(bf, kl + j * 8 * S::kStride + kk * 32);
                mma_s8(sacc[j], qa[kk], bf[0], bf[1]);
                mma_s8(sacc[j + 1], qa[kk], bf[2], bf[3]);
            }

        // Scores in log2 units, S = S_int * q_scale * k_scale as the CPU reference rounds them;
        // masked past Nk and by causality only on the tiles that need it.
        float sv[8][4];
        float mxa = -INFINITY, mxb = -INFINITY;
        const bool edge = (cur + 1) * kTileK > s.Nk || (causal && (cur + 1) * kTileK - 1 > first_row + shift);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float2 kscale = *reinterpret_cast<const float2 *>(ss + j * 8 + 2 * t);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                float x = (__int_as_float(sacc[j][i]) - kMagic) * (i < 2 ? qsa : qsb) * ((i & 1) ? kscale.y : kscale.x);
                if (edge) {
                    const int key = cur * kTileK + j * 8 + 2 * t + (i & 1), row = i < 2 ? ra : rb;
                    if (key >= s.Nk || (causal && key > row + shift)) x = -INFINITY;
                }
                sv[j][i] = x;
                if (i < 2) mxa = fmaxf(mxa, x);
                else mxb = fmaxf(mxb, x);
            }
        }
        mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 1));
        mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 2));
        mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 1));
        mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 2));
        const float na = fmaxf(ma, mxa), nb = fmaxf(mb, mxb);
        // A row that has seen only -inf keeps m = -inf, alpha 1 and P~ 0 (never inf - inf).
        const float alpha_a = ma == -INFINITY ? 1.0f : fast_exp2(ma - na), alpha_b = mb == -INFINITY ? 1.0f : fast_exp2(mb - nb);
        const float offa = na == -INFINITY ? 0.0f : kLog2P448 - na, offb = nb == -INFINITY ? 0.0f : kLog2P448 - nb;
        ma = na;
        mb = nb;
        float suma = 0.0f, sumb = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; ++j)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const float p = fast_exp2(sv[j][i] + (i < 2 ? offa : offb));  // masked: 2^-inf = 0
                sv[j][i] = p;
                if (i < 2) suma += p;
                else sumb += p;
            }
        la = la * alpha_a + suma;
        lb = lb * alpha_b + sumb;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            o[n][0] *= alpha_a;
            o[n][1] *= alpha_a;
            o[n][2] *= alpha_b;
            o[n][3] *= alpha_b;
        }
        uint32_t pa[2][4];
#pragma unroll
        for (int c = 0; c < 2; ++c) {
            pa[c][0] = fp8x4(sv[4 * c][0], sv[4 * c][1], sv[4 * c + 1][0], sv[4 * c + 1][1]);
            pa[c][1] = fp8x4(sv[4 * c][2], sv[4 * c][3], sv[4 * c + 1][2], sv[4 * c + 1][3]);
            pa[c][2] = fp8x4(sv[4 * c + 2][0], sv[4 * c + 2][1], sv[4 * c + 3][0], sv[4 * c + 3][1]);
            pa[c][3] = fp8x4(sv[4 * c + 2][2], sv[4 * c + 2][3], sv[4 * c + 3][2], sv[4 * c + 3][3]);
        }
        // Lane L addresses row L % 8 (a channel) of matrix L / 8: positions 32(m/2) + 16(m%2).
        const uint8_t *vl = vs + (lane % 8) * S::vStride + 32 * ((lane / 8) / 2) + 16 * ((lane / 8) % 2);
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // this tile's FP8 accumulator, then flushed
            uint32_t bf[4];
            ldmatrix_x4(bf, vl + n * 8 * S::vStride);
            mma_e4m3(part, pa[0], bf[0], bf[1]);
            mma_e4m3(part, pa[1], bf[2], bf[3]);
            o[n][0] += part[0];
            o[n][1] += part[1];
            o[n][2] += part[2];
            o[n][3] += part[3];
        }
        __syncthreads();  // the stage is refilled two tiles from now
        cur = nxt;
        stage ^= 1;
    }

    la += __shfl_xor_sync(0xffffffffu, la, 1);
    la += __shfl_xor_sync(0xffffffffu, la, 2);
    lb += __shfl_xor_sync(0xffffffffu, lb, 1);
    lb += __shfl_xor_sync(0xffffffffu, lb, 2);
    const float *vsc = buf.vs + kv * D;
    auto store = [&](int row, float l, float m, int half) {
        if (row >= s.Nq) return;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        const int64_t base = b * out.sb + h * out.sh + static_cast<int64_t>(row) * out.sn;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            const int d = n * 8 + 2 * t;
            const float x0 = o[n][2 * half] * vsc[d] * inv, x1 = o[n][2 * half + 1] * vsc[d + 1] * inv;
            if constexpr (BF16)
                *reinterpret_cast<__nv_bfloat162 *>(static_cast<__nv_bfloat16 *>(out.data) + base + d) = __floats2bfloat162_rn(x0, x1);
            else
                *reinterpret_cast<__half2 *>(static_cast<__half *>(out.data) + base + d) = __floats2half2_rn(x0, x1);
        }
        if (lse && t == 0)
            lse[qrow0 + row] = l > 0.0f ? (m + log2f(l) - kLog2P448) * kLn2 + (buf.lsec ? buf.lsec[qrow0 + row] : 0.0f) : -INFINITY;
    };
    store(ra, la, ma, 0);
    store(rb, lb, mb, 1);
}

template <int D, bool BF16>
void launch(const QuantBuffers &buf, const Shape &s, bool causal, const uint8_t *mask, const View4 &out, float *lse,
            cudaStream_t st) {
    auto kernel = attend_kernel<D, BF16>;
    static const cudaError_t attr =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Smem<D>::total);
    (void)attr;  // a failure shows at launch
    const dim3 grid((s.Nq + kCtaRows - 1) / kCtaRows, s.Hq, s.B);
    kernel<<<grid, kWarps * 32, Smem<D>::total, st>>>(buf, s, causal ? 1 : 0, mask, out, lse);
}

}  // namespace

void attend(const QuantBuffers &buf, const Shape &s, bool causal, const uint8_t *block_mask, const View4 &out,
            bool out_bf16, float *lse, cudaStream_t stream) {
    switch (s.D) {
        case 64: return out_bf16 ? launch<64, true>(buf, s, causal, block_mask, out, lse, stream)
                                 : launch<64, false>(buf, s, causal, block_mask, out, lse, stream);
        case 128: return out_bf16 ? launch<128, true>(buf, s, causal, block_mask, out, lse, stream)
                                  : launch<128, false>(buf, s, causal, block_mask, out, lse, stream);
        default: return out_bf16 ? launch<256, true>(buf, s, causal, block_mask, out, lse, stream)
                                 : launch<256, false>(buf, s, causal, block_mask, out, lse, stream);
    }
}

}  // namespace slip::cuda::sage
