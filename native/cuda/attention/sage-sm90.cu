// SageAttention2 on Hopper: the wgmma kernels that native/cuda/triton/aot.py compiled from the
// Gluon source sage_attention.py, embedded as cubins and loaded by embedded_kernel
// (native/cuda/embedded-kernel.cu). They load K and V^T by TMA: the launcher encodes the two tensor
// maps per call (host work of a few microseconds) with the boxes and swizzles aot.py recorded.
//
// The block-sparse variant walks a list of kept key tiles per program instead of testing the mask
// tile by tile (a branch in the loop would stall its load pipeline): compact_tiles below
// writes, per BLOCK_M query rows, the kept tiles that need no mask, then those that do.
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "../cuda-common.cuh"
#include "../tma.cuh"
#include "sage-cuda.cuh"

namespace slip::cuda {

namespace sage {

namespace {

struct Sm90Kernel {
    const char *cubin, *kernel;
    int d, block_m, block_n, sparse, bf16;
    int k_box_rows, k_box_inner, k_swizzle, v_box_rows, v_box_inner, v_swizzle;  // the TMA boxes (aot.py)
    int warps, shared;
};

constexpr Sm90Kernel kKernels[] = {
#include "../triton/cubin/sage-kernels.inc"
};
constexpr int kMaskCols = kTileK;  // keys per block-mask column (attend()'s contract)

const Sm90Kernel &pick(int d, bool sparse, bool bf16) {
    for (const Sm90Kernel &k : kKernels)
        if (k.d == d && k.sparse == (sparse ? 1 : 0) && k.bf16 == (bf16 ? 1 : 0)) return k;
    fail(SLIP_STATUS_UNSUPPORTED, format("no sm_90 attention kernel for D %d", d));
}

// Key tiles [0, n_full) need no mask for query rows [first, first + rows); [n_full, n_end) do.
__host__ __device__ inline void tile_range(const Shape &s, bool causal, int first, int rows, int block_n, int &n_full,
                                           int &n_end) {
    n_end = (s.Nk + block_n - 1) / block_n;
    n_full = s.Nk / block_n;
    if (causal) {
        const int shift = s.Nk - s.Nq;
        const int seen = max(min(first + rows, s.Nq) + shift, 0);
        n_end = min(n_end, (seen + block_n - 1) / block_n);
        n_full = min(n_full, max(first + shift + 1, 0) / block_n);
    }
}

// One warp per program (bh, BLOCK_M rows): its kept tiles in ascending order, counts[2t] of them
// below n_full.
__global__ void compact_tiles(const uint8_t *mask, Shape s, int causal, int block_m, int programs_m, int mask_cols,
                              int tile_cols, int16_t *tiles, int *counts) {
    const int64_t t = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (t >= static_cast<int64_t>(s.B) * s.Hq * programs_m) return;
    const int64_t bh = t / programs_m;
    const int first = static_cast<int>(t % programs_m) * block_m;
    int n_full, n_end;
    tile_range(s, causal != 0, first, block_m, kMaskCols, n_full, n_end);
    const int mask_rows = (s.Nq + kMaskRows - 1) / kMaskRows;
    const uint8_t *row = mask + (bh * mask_rows + first / kMaskRows) * mask_cols;
    int16_t *out = tiles + t * tile_cols;
    int count = 0, below = 0;
    for (int j0 = 0; j0 < n_end; j0 += 32) {
        const int j = j0 + lane;
        const bool keep = j < n_end && row[j] != 0;
        const unsigned ballot = __ballot_sync(0xffffffffu, keep);
        if (keep) out[count + __popc(ballot & ((1u << lane) - 1u))] = static_cast<int16_t>(j);
        count += __popc(ballot);
        below += __popc(__ballot_sync(0xffffffffu, keep && j < n_full));
    }
    if (lane == 0) {
        counts[2 * t] = below;
        counts[2 * t + 1] = count;
    }
}

}  // namespace

bool sm90_available(int device) {
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess)
        return false;
    // SLIPSTREAM_SAGE_KERNEL=mma keeps the mma.sync kernel on Hopper (the benchmark compares both).
    const char *choice = std::getenv("SLIPSTREAM_SAGE_KERNEL");
    return major == 9 && minor == 0 && !(choice && std::strcmp(choice, "mma") == 0);
}

void attend_sm90(const QuantBuffers &buf, const Shape &s, bool causal, const uint8_t *block_mask, const View4 &out,
                 bool out_bf16, float *lse, cudaStream_t stream) {
    const Sm90Kernel &k = pick(s.D, block_mask != nullptr, out_bf16);
    if (s.Nkp % kSm90KeyAlign != 0 || s.Nkp % k.block_n != 0)
        fail(SLIP_STATUS_INTERNAL, "sm_90 attention needs Nkp a multiple of 128");
    const cudaKernel_t kernel = embedded_kernel(k.cubin, k.kernel, k.shared);
    const int programs_m = (s.Nq + k.block_m - 1) / k.block_m;
    const int64_t programs = static_cast<int64_t>(s.B) * s.Hq * programs_m;
    const int mask_cols = (s.Nk + kMaskCols - 1) / kMaskCols;
    const int tile_cols = (mask_cols + 15) / 16 * 16;

    // The tensor maps before any scratch: a failure here leaves nothing to free.
    const int64_t kv_heads = static_cast<int64_t>(s.B) * s.Hk;
    TmaParam kc = tma_param(buf.kc, kv_heads * s.Nkp, s.D, k.k_box_rows, k.k_box_inner, k.k_swizzle, "K codes");
    TmaParam vt = tma_param(buf.vt, kv_heads * s.D, s.Nkp, k.v_box_rows, k.v_box_inner, k.v_swizzle, "V^T codes");

    int16_t *tiles = nullptr;
    int *counts = nullptr;
    if (block_mask) {
        tiles = static_cast<int16_t *>(scratch_alloc(programs * tile_cols * sizeof(int16_t), stream, "sparse tile lists"));
        counts = static_cast<int *>(scratch_alloc(programs * 2 * sizeof(int), stream, "sparse tile counts"));
        compact_tiles<<<static_cast<unsigned>((programs + 7) / 8), 256, 0, stream>>>(
            block_mask, s, causal ? 1 : 0, k.block_m, programs_m, mask_cols, tile_cols, tiles, counts);
    }

    const int8_t *qc = buf.qc;
    const float *qs = buf.qs, *ks = buf.ks, *vs = buf.vs, *lsec = buf.lsec;
    void *outp = out.data;
    float *lsep = lse;
    int Hq = s.Hq, Hk = s.Hk, Nq = s.Nq, Nk = s.Nk, Nkp = s.Nkp;
    int64_t sb = out.sb, sh = out.sh, sn = out.sn;
    int causal_i = causal ? 1 : 0, write_lse = lse ? 1 : 0, has_lsec = lsec ? 1 : 0, cols = tile_cols;
    void *scratch0 = nullptr, *scratch1 = nullptr;
    void *args[] = {&qc, &qs, &kc.map, &kc.rows, &kc.inner, &kc.row_stride, &kc.unit_stride, &ks, &vt.map, &vt.rows,
                    &vt.inner, &vt.row_stride, &vt.unit_stride, &vs, &lsec, &outp, &lsep, &tiles, &counts, &Hq, &Hk,
                    &Nq, &Nk, &Nkp, &sb, &sh, &sn, &causal_i, &write_lse, &has_lsec, &cols, &scratch0, &scratch1};
    const cudaError_t err = cudaLaunchKernel(reinterpret_cast<const void *>(kernel),
                                             dim3(programs_m, s.B * s.Hq, 1), dim3(k.warps * 32, 1, 1), args,
                                             static_cast<size_t>(k.shared), stream);
    if (block_mask) {
        scratch_free(tiles, stream);
        scratch_free(counts, stream);
    }
    check_cuda(err, format("sm_90 attention kernel %s", k.cubin).c_str());
}

}  // namespace sage
}  // namespace slip::cuda
