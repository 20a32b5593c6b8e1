// The NVFP4 x FP8 product on Hopper's FP8 tensor cores: the transposed Gluon kernel of
// native/cuda/triton/nvfp4_gemm.py (y^T = W x^T, the decoded weight as wgmma's register operand),
// compiled ahead of time by aot.py and embedded; bench/gpu/fp4_probe.py chose its tiles on an H200.
#include <cuda_runtime.h>

#include <algorithm>

#include "base/error.h"
#include "../cuda-common.cuh"
#include "../tma.cuh"
#include "fp4-cuda.cuh"

namespace slip::cuda::fp4 {

namespace {

struct GemmKernel {
    const char *cubin, *kernel;
    int block_m, block_n, n16, bf16;
    // The TMA boxes (aot.py) of x, of the weight's codes and of its scales.
    int x_box_rows, x_box_inner, x_swizzle;
    int code_box_rows, code_box_inner, code_swizzle;
    int scale_box_rows, scale_box_inner, scale_swizzle;
    int warps, shared;
};

constexpr GemmKernel kGemmKernels[] = {
#include "../triton/cubin/gemm-kernels.inc"
};

// The kernel for the output type; where N is a multiple of 16 the one whose stores are 16 bytes wide.
const GemmKernel &pick(bool f16, int64_t n) {
    const GemmKernel *any = nullptr;
    for (const GemmKernel &k : kGemmKernels) {
        if (k.bf16 != (f16 ? 0 : 1)) continue;
        if (k.n16 && n % 16 == 0) return k;
        if (!k.n16) any = &k;
    }
    if (!any) fail(SLIP_STATUS_INTERNAL, "no sm_90 NVFP4 GEMM kernel embedded for this output type");
    return *any;
}

}  // namespace

void gemm_sm90(const Weight &w, const uint8_t *q, const float *scale, const float *bias, void *y, int64_t m, bool f16,
               int sm_count, cudaStream_t stream) {
    const GemmKernel &k = pick(f16, w.n);
    const cudaKernel_t kernel = embedded_kernel(k.cubin, k.kernel, k.shared);
    const int64_t tiles = (m + k.block_m - 1) / k.block_m * ((w.n + k.block_n - 1) / k.block_n);
    if (tiles > INT32_MAX || m > INT32_MAX || w.n > INT32_MAX)
        fail(SLIP_STATUS_UNSUPPORTED, "expected M and N below 2^31 for the sm_90 NVFP4 GEMM");
    // The kernel is persistent (its programs take every nprog-th tile), its shared memory one
    // program an SM.
    const int64_t programs = std::min<int64_t>(tiles, std::max(sm_count, 1));
    // x (E4M3 [m, 128 nchunks], quantize_fp8_permuted's output) by TMA.
    TmaParam xd = tma_param(q, m, int64_t{w.nchunks} * kChunk, k.x_box_rows, k.x_box_inner, k.x_swizzle, "x (E4M3)");
    // The planned weight (fp4-cuda.cuh) as int32 [tiles, 144 nchunks]: a step's codes and scales of
    // the program's tiles are two boxes of it.
    const int64_t words = int64_t{kTileBytes / 4} * w.nchunks;
    TmaParam wcd = tma_param(w.tiles, w.ntiles, words, k.code_box_rows, k.code_box_inner, k.code_swizzle,
                             "NVFP4 weight codes", 4);
    TmaParam wsd = tma_param(w.tiles, w.ntiles, words, k.scale_box_rows, k.scale_box_inner, k.scale_swizzle,
                             "NVFP4 weight scales", 4);
    const void *xs = scale, *colpow = w.colpow, *gscale = w.global;
    const void *bias_p = bias ? static_cast<const void *>(bias) : colpow;  // never read when has_bias is 0
    void *out = y;
    int M = static_cast<int>(m), N = static_cast<int>(w.n), nchunks = w.nchunks;
    int has_bias = bias ? 1 : 0;
    void *scratch0 = nullptr, *scratch1 = nullptr;
    void *args[] = {&xd.map,  &xd.rows,  &xd.inner,  &xd.row_stride,  &xd.unit_stride,
                    &wcd.map, &wcd.rows, &wcd.inner, &wcd.row_stride, &wcd.unit_stride,
                    &wsd.map, &wsd.rows, &wsd.inner, &wsd.row_stride, &wsd.unit_stride,
                    &xs, &colpow, &gscale, &bias_p, &out, &M, &N, &nchunks, &has_bias, &scratch0, &scratch1};
    // Programmatic dependent launch: the kernel's CTAs start while the quantizer ahead of it in the
    // stream finishes (it signals griddepcontrol.launch_dependents), issue their first stages'
    // weight copies and wait for its output at griddepcontrol.wait, so the launch gap between the
    // two and the first copies' latency are hidden.
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(static_cast<unsigned>(programs), 1, 1);
    cfg.blockDim = dim3(k.warps * 32, 1, 1);
    cfg.dynamicSmemBytes = static_cast<size_t>(k.shared);
    cfg.stream = stream;
    cudaLaunchAttribute attr = {};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    check_cuda(cudaLaunchKernelExC(&cfg, reinterpret_cast<const void *>(kernel), args),
               format("sm_90 NVFP4 GEMM kernel %s", k.cubin).c_str());
}

}  // namespace slip::cuda::fp4
