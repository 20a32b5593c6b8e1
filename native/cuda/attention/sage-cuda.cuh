// SageAttention2 on CUDA: the shared pieces of the quantization and attention kernels.
//
// Buffers the quantizers write and the attention kernel reads (one set per call, stream-ordered):
//   qc     int8 [B, Hq, Nq, D]      Q codes (row-major, D contiguous)
//   qs     f32  [B, Hq, Nq]         each Q row's scale times softmax scale times log2(e)
//   kc     int8 [B, Hk, Nkp, D]     K' = K - mean(K) codes, Nkp = Nk rounded up to 64, rows past Nk 0
//   ks     f32  [B, Hk, Nkp]        each K row's scale (0 past Nk)
//   vt     fp8  [B, Hk, D, Nkp]     V per channel in E4M3, transposed, keys permuted in each group
//                                   of 16 (vt_key_of_position): the order in which a thread's S
//                                   accumulators are its P operand, for mma.sync and wgmma alike
//   vs     f32  [B, Hk, D]          V's per-channel scale
//   lsec   f32  [B, Hq, Nq]         smooth-K's LSE correction scale·(q · mean(K)), or none
// Scales are per row (each row carries its group's scale). The mma.sync kernel reads them per row;
// the sm_90 kernels read one K scale per (64-key tile, key mod 8 / 2), the first key's, which
// every granularity with block_k 64 gives (the sage.h groups).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace slip::cuda::sage {

constexpr int kTileK = 64;     // keys per K/V tile (SageAttention2's CTA_K; the FP22 flush unit)
constexpr int kWarpRows = 16;  // query rows per warp (one m16 MMA row block)
constexpr int kWarps = 4;      // warps per CTA
constexpr int kCtaRows = kWarps * kWarpRows;  // query rows per CTA
// CTAs per SM the register budget is cut for: 3 x 128 threads leave 170 registers a thread (D 64
// and 128 fit); D 256 keeps 64 accumulators more and gets 2 (255 registers).
constexpr int ctas_per_sm(int d) { return d >= 256 ? 2 : 3; }
constexpr int kMaskRows = 128; // query rows per block-mask tile (slip_attn_sage_block_sparse)

// Position p of a 16-key group of vt holds key perm(p): thread t's fragment of m16n8k32 holds
// logical k = 4t..4t+3, and the P fragment built from the S accumulators of two m16n8 tiles holds
// keys 2t, 2t+1, 8+2t, 9+2t (and +16 for the upper half).
__host__ __device__ inline int vt_key_of_position(int p) {
    const int t = (p & 15) >> 2, i = p & 3;
    return (p & 16) + (i < 2 ? 2 * t + i : 8 + 2 * t + (i - 2));
}

// A strided [B, H, N, D] view of q, k, v or out (D contiguous), in elements.
struct View4 {
    void *data;
    int64_t sb, sh, sn;
};

struct QuantBuffers {
    int8_t *qc;
    float *qs;
    int8_t *kc;
    float *ks;
    uint8_t *vt;
    float *vs;
    float *lsec;  // nullptr: no correction (no smooth-K, or no LSE wanted)
};

struct Shape {
    int B, Hq, Hk, Nq, Nk, Nkp, D;
};

// Quantizers (sage-quant.cu). in_bf16: the inputs' dtype (else FP16). granularity, block_q,
// block_k, warp_q as slip_sage_params; scale: the softmax scale.
void quantize(const View4 &q, const View4 &k, const View4 &v, bool in_bf16, const Shape &s, int granularity,
              int block_q, int block_k, int warp_q, bool smooth_k, float scale, float v_bound, QuantBuffers &buf,
              float *scratch, cudaStream_t stream);
// Floats of scratch quantize() needs.
int64_t quantize_scratch_floats(const Shape &s);

// The attention kernel (sage-forward.cu). block_mask: U8 [B, Hq, ceil(Nq/128), Nkp/64] or nullptr.
// Needs Nkp a multiple of 64.
void attend(const QuantBuffers &buf, const Shape &s, bool causal, const uint8_t *block_mask, const View4 &out,
            bool out_bf16, float *lse, cudaStream_t stream);

// Hopper's kernels (sage-sm90.cu: Triton-generated wgmma, native/cuda/triton). Needs vt in order
// and Nkp a multiple of kSm90KeyAlign; block_mask as attend()'s, with ceil(Nk/64) columns.
constexpr int kSm90KeyAlign = 128;
bool sm90_available(int device);
void attend_sm90(const QuantBuffers &buf, const Shape &s, bool causal, const uint8_t *block_mask, const View4 &out,
                 bool out_bf16, float *lse, cudaStream_t stream);

}  // namespace slip::cuda::sage
