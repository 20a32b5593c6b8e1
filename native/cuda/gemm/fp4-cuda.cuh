// NVFP4 linears on CUDA: the shared pieces of the plan (fp4-api.cu) and the kernels (fp4-gemm.cu,
// fp4-stream.cu, fp4-sm90.cu, and fp8-activations.cu for W4A8's x).
//
// The planned weight is a grid of tiles of 8 rows x 128 columns (one "chunk" of K), tile (nt, c)
// at (nt * nchunks + c) * kTileBytes, rows and columns past N and K zero:
//   bytes   0..511  codes: lane L = 4g + t owns row g, columns 32t .. 32t+31 of the chunk, 16 bytes
//   bytes 512..575  scales: lane L's two E4M3 bytes at 512 + 2L (its columns' two 16-groups)
// so a warp fetches a tile with one 16-byte load per lane, and what lane L loads is exactly the B
// fragments of m16n8k16 it needs for 8 k-steps. Within a chunk the MMA's k order is permuted
// (the products don't care, as long as A and B agree): k-step s of lane (g, t) covers columns
// 32t + 4s .. 32t + 4s + 3, so a lane's A elements are 32 consecutive columns too (four 16-byte
// loads) and its B elements one 16-group per four k-steps (one scale per four). Codes are 4.5 bits
// per weight as in the caller's layout, re-encoded per 32-bit word for the decoder (fp4-gemm.cu):
// word j holds k-steps 2j and 2j+1; the four magnitudes (code & 7) of step 2j in nibbles 0..3 and
// of step 2j+1 in nibbles 4..7, the signs of step 2j at bits 7, 15, 23, 31 and of step 2j+1 at
// bits 3, 11, 19, 27; element i of a step is column 4s + i.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace slip::cuda::fp4 {

constexpr int kTileRows = 8;
constexpr int kChunk = 128;
constexpr int kCodeBytes = 512;
constexpr int kTileBytes = kCodeBytes + 64;
constexpr int64_t kSkinnyMaxRows = 64;  // M up to this: the memory-bound skinny kernel

// The planned weight on the device.
struct Weight {
    const uint8_t *tiles;
    const float *global;  // the NVFP4 global scale (weights are decoded values / global)
    const float *colpow;  // [n]: the FP8 tensor-core kernel's per-column power of two (sm_90), or null
    int64_t n, k;
    int ntiles, nchunks;  // ceil(n / 8), ceil(k / 128)
};

// One product y[m, n] = (x · Wᵀ)[m, n] · row_scale[m] / global + bias[n].
struct Problem {
    const void *x;           // [m, k], 16-bit (f16 or bf16), 16-byte aligned rows
    const float *row_scale;  // [m] or nullptr (1)
    const float *bias;       // [n] or nullptr
    void *y;                 // [m, n], x's type
    int64_t m;
    bool f16;
    bool pair_stores;  // y 4-byte aligned and n even: two outputs per store
};

// The streamed GEMV (fp4-stream.cu): chunks of K a stage, the ring's most stages, most rows.
constexpr int kStreamChunks = 8;
constexpr int kStreamMaxStages = 16;
constexpr int kStreamInFlight = 80 << 10;  // bytes of weight a CTA keeps in flight
constexpr int64_t kStreamMaxRows = 16;

// How a product is launched, and the scratch it needs (zeroed counters included).
struct Launch {
    bool streamed = false;  // the streamed GEMV (sm_90): stages of stage_bytes, tiles (4 or 8) a CTA
    int stages = 0, stage_bytes = 0, stream_tiles = 8;
    bool skinny = false;
    int skinny_tiles = 2;  // skinny: tiles of 8 columns a warp (2 or 4)
    bool wide = false;  // tiled: 128 x 256 CTAs (enough shared memory per block), else 128 x 128
    int splits = 1, chunks_per_split = 0;
    bool cluster = false;        // skinny with splits on sm_90: the splits sum through a cluster
    size_t workspace_bytes = 0;  // partial sums then counters; 0 unless split without a cluster
    size_t counters_offset = 0, counters_bytes = 0;
};

constexpr int kMaxClusterSplits = 8;  // the portable cluster size

// smem_per_block: the device's opt-in shared memory per block; sm90a: the sm_90a code runs (thread
// block clusters and bulk copies).
Launch plan_launch(const Weight &w, int64_t m, int sm_count, int smem_per_block, bool sm90a);

// codes U8 [n, k/2], scales E4M3 [n, k/16], global F32 [1], all on the device; writes the tiles
// and the global's copy.
void repack(const uint8_t *codes, const uint8_t *scales, const float *global, int64_t n, int64_t k, uint8_t *tiles,
            float *global_out, int ntiles, int nchunks, cudaStream_t stream);

// Per-token E4M3 quantization of x [m, k]: q holds the element values (exact in x's type),
// scale[r] = amax(row r) / 448. sm_count: the device's SMs (the kernel's CTAs stay resident).
void quantize_fp8(const void *x, int64_t m, int64_t k, bool f16, void *q, float *scale, int sm_count,
                  cudaStream_t stream);

// colpow[n] of the planned weight: the largest power of two, at most 2^15, with
// max_k |e2m1 · scale| · colpow[n] <= 448 (E4M3's largest value); 1 for a row of zeros.
void column_powers(const Weight &w, float *colpow, cudaStream_t stream);

// The FP8 tensor-core kernel's activations (sm_90): x [m, k] per token to E4M3 bytes (scale
// amax/448, as quantize_fp8), written [m, 128 · nchunks] with each 128-column chunk in the order of
// the kernel's register operand: position 32s + 16a + 4q + j holds column 32q + 8s + 4a + j, zero
// past k.
void quantize_fp8_permuted(const void *x, int64_t m, int64_t k, int nchunks, bool f16, uint8_t *q, float *scale,
                           int sm_count, cudaStream_t stream);

// y = x · Wᵀ on sm_90's FP8 tensor cores (native/cuda/triton/nvfp4_gemm.py's transposed kernel,
// embedded, persistent: at most one program an SM): q and scale from quantize_fp8_permuted, w.colpow
// from column_powers.
void gemm_sm90(const Weight &w, const uint8_t *q, const float *scale, const float *bias, void *y, int64_t m, bool f16,
               int sm_count, cudaStream_t stream);

// A stage of the streamed GEMV at m rows of x, in bytes.
int stream_stage_bytes(int64_t m, int tiles);

// The streamed GEMV (l.streamed): y = x · Wᵀ for m <= kStreamMaxRows on sm_90a.
void gemv_streamed(const Weight &w, const Problem &p, const Launch &l, cudaStream_t stream);

// workspace: Launch::workspace_bytes of device memory, counters already zeroed.
void gemm(const Weight &w, const Problem &p, const Launch &l, void *workspace, cudaStream_t stream);

}  // namespace slip::cuda::fp4
