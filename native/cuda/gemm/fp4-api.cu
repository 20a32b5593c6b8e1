// slip_linear_plan_* for NVFP4 weights on a CUDA device: validation, the device copy of the weight
// (repacked on w->codes' stream), and per run the scratch from the stream-ordered allocator, the
// FP8 quantizer (W4A8) and the GEMM, all on x's stream.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <memory>

#include "base/cuda-backend.h"
#include "base/error.h"
#include "base/tensor.h"
#include "../cuda-common.cuh"
#include "fp4-cuda.cuh"

namespace slip::cuda {

namespace {

const char *dtype_name(int32_t dt) { return slip_dtype_name(static_cast<slip_dtype>(dt)); }

// Non-null, dense row-major, on CUDA device `device`; dtype checked when dtype >= 0.
const slip_tensor &require_cuda(const slip_tensor *t, const char *name, int32_t dtype, int device, const char *with) {
    require_not_null(t, name);
    if (t->ndim < 0 || t->ndim > SLIP_MAX_DIMS)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected 0 to %d dimensions for %s, got %d", SLIP_MAX_DIMS, name, t->ndim));
    for (int32_t i = 0; i < t->ndim; ++i)
        if (t->shape[i] < 0)
            fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected non-negative extents for %s, got %s", name, shape_string(*t).c_str()));
    if (dtype >= 0 && t->dtype != dtype)
        fail(SLIP_STATUS_DTYPE_MISMATCH, format("expected dtype %s for %s, got %s", dtype_name(dtype), name, dtype_name(t->dtype)));
    if (t->device != SLIP_DEVICE_CUDA || t->device_index != device)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected %s on CUDA device %d (with %s), got %s %d", name, device, with,
                    t->device == SLIP_DEVICE_CUDA ? "CUDA device" : "a CPU tensor, device", t->device_index));
    if (!is_contiguous(*t))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a dense row-major tensor for %s (shape %s)", name, shape_string(*t).c_str()));
    if (numel(*t) > 0 && !t->data) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected data for %s, got a null pointer", name));
    return *t;
}

void require_modes(const slip_linear_params *p, const char *what) {
    if (p->act_quant < SLIP_ACT_NONE || p->act_quant > SLIP_ACT_FP8)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected SLIP_ACT_NONE (0), SLIP_ACT_DYNAMIC (1), SLIP_ACT_INT8 (2), SLIP_ACT_BF16 (3) or "
                    "SLIP_ACT_FP8 (4) for p.act_quant, got %d",
                    p->act_quant));
    if (p->act_quant != SLIP_ACT_NONE && p->act_quant != SLIP_ACT_FP8)
        fail(SLIP_STATUS_UNSUPPORTED,
             format("expected p.act_quant SLIP_ACT_NONE (W4A16) or SLIP_ACT_FP8 (W4A8) for %s on CUDA (the CUDA "
                    "linears have no INT8, NVFP4 or BF16-rounded activations), got %d",
                    what, p->act_quant));
    if (!(std::isfinite(p->act_global_scale) && p->act_global_scale >= 0.0f))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a finite, non-negative p.act_global_scale, got %g", p->act_global_scale));
}

// The device copy: one allocation, the global's copy in its first 256 bytes, then the tiles, then
// on sm_90 the FP8 kernel's column powers.
struct CudaPlan {
    int device = 0, sm_count = 1, smem_per_block = 0;
    // The sm_90a code runs: clusters and bulk copies (fp4::plan_launch), and W4A8 above the skinny
    // kernel's rows on FP8 tensor cores (gemm_sm90, which needs the column powers).
    bool sm90a = false;
    int64_t bytes = 0;
    uint8_t *base = nullptr;
    fp4::Weight w{};
    ~CudaPlan() {
        if (!base) return;
        int prev = -1;
        if (cudaGetDevice(&prev) == cudaSuccess && prev != device) cudaSetDevice(device);
        cudaFree(base);  // waits for the work still queued on it
        if (prev >= 0 && prev != device) cudaSetDevice(prev);
    }
};

constexpr size_t kHeader = 256;

}  // namespace

std::shared_ptr<void> linear_plan_create(const slip_qweight *w, const slip_linear_params *p) {
    require_not_null(w, "w");
    slip_linear_params defaults{};
    if (!p) p = &defaults;
    const int32_t f = w->params.format;
    if (f != SLIP_FORMAT_NVFP4)
        fail(SLIP_STATUS_UNSUPPORTED,
             format("expected an NVFP4 weight (w.params.format 4) on CUDA: the CUDA linears plan NVFP4 weights only "
                    "(W4A16 and W4A8), got format %d",
                    f));
    require_modes(p, "a weight");
    const int dev = w->codes.device == SLIP_DEVICE_CUDA ? w->codes.device_index : w->scales.device_index;
    const slip_tensor &codes = require_cuda(&w->codes, "w.codes", SLIP_DTYPE_U8, dev, "the rest of the weight");
    if (codes.ndim != 2)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected a 2-D [N, K/2] tensor for w.codes, got %s", shape_string(codes).c_str()));
    const int64_t n = codes.shape[0], k = codes.shape[1] * 2;
    if (n < 1 || k < 16 || k % 16 != 0)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected N >= 1 and K a positive multiple of the NVFP4 group size 16 on CUDA, got N %lld, K %lld "
                    "(from w.codes)",
                    static_cast<long long>(n), static_cast<long long>(k)));
    const slip_tensor &scales = require_cuda(&w->scales, "w.scales", SLIP_DTYPE_F8_E4M3, dev, "the rest of the weight");
    const int64_t want_scales[2] = {n, k / 16};
    require_shape(scales, "w.scales", 2, want_scales);
    const slip_tensor &global = require_cuda(&w->global, "w.global", SLIP_DTYPE_F32, dev, "the rest of the weight");
    if (numel(global) != 1)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected one element ([1]) for w.global, got %s", shape_string(global).c_str()));
    if ((n + fp4::kTileRows - 1) / fp4::kTileRows > INT32_MAX / 2 || (k + fp4::kChunk - 1) / fp4::kChunk > INT32_MAX / 2)
        fail(SLIP_STATUS_UNSUPPORTED, "expected N and K below 2^33 on CUDA");

    DeviceScope scope(dev);
    int major = 0, minor = 0, sms = 0, smem = 0;
    check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "cudaDeviceGetAttribute");
    check_cuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev), "cudaDeviceGetAttribute");
    check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    check_cuda(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "cudaDeviceGetAttribute");
    if (major * 10 + minor < 89)
        fail(SLIP_STATUS_UNSUPPORTED,
             format("expected a GPU of compute capability 8.9 or newer for the CUDA linears (E4M3 conversions), got %d.%d",
                    major, minor));

    auto plan = std::make_shared<CudaPlan>();
    plan->device = dev;
    plan->sm_count = sms;
    plan->smem_per_block = smem;
    const int ntiles = static_cast<int>((n + fp4::kTileRows - 1) / fp4::kTileRows);
    const int nchunks = static_cast<int>((k + fp4::kChunk - 1) / fp4::kChunk);
    const size_t tile_bytes = static_cast<size_t>(ntiles) * nchunks * fp4::kTileBytes;
    // Only where the sm_90a code runs: a newer card JIT-compiles the compute_89 PTX, which has no
    // cluster path and no wgmma.
    plan->sm90a = major == 9 && minor == 0;
    const size_t colpow_at = kHeader + (tile_bytes + 255) / 256 * 256;
    const size_t colpow_bytes = plan->sm90a ? static_cast<size_t>(n) * sizeof(float) : 0;
    check_cuda(cudaMalloc(reinterpret_cast<void **>(&plan->base), colpow_at + colpow_bytes), "cudaMalloc (planned weight)");
    plan->bytes = static_cast<int64_t>(tile_bytes + sizeof(float) + colpow_bytes);
    float *colpow = plan->sm90a ? reinterpret_cast<float *>(plan->base + colpow_at) : nullptr;
    plan->w = fp4::Weight{plan->base + kHeader, reinterpret_cast<const float *>(plan->base), colpow, n, k, ntiles, nchunks};
    cudaStream_t stream = static_cast<cudaStream_t>(codes.stream);
    fp4::repack(static_cast<const uint8_t *>(codes.data), static_cast<const uint8_t *>(scales.data),
                static_cast<const float *>(global.data), n, k, plan->base + kHeader, reinterpret_cast<float *>(plan->base),
                ntiles, nchunks, stream);
    if (colpow) fp4::column_powers(plan->w, colpow, stream);
    check_cuda(cudaGetLastError(), "NVFP4 weight repack kernels");
    return plan;
}

void linear_plan_run(const void *handle, const slip_linear_params *p, const slip_tensor *x, const slip_tensor *bias,
                     slip_tensor *y) {
    const CudaPlan &pl = *static_cast<const CudaPlan *>(handle);
    require_not_null(p, "p");
    require_modes(p, "an NVFP4 plan");
    const fp4::Weight &w = pl.w;
    const int dev = pl.device;
    const slip_tensor &xt = require_cuda(x, "x", -1, dev, "the plan's weight");
    if (xt.dtype != SLIP_DTYPE_BF16 && xt.dtype != SLIP_DTYPE_F16)
        fail(SLIP_STATUS_DTYPE_MISMATCH, format("expected dtype BF16 or F16 for x on CUDA, got %s", dtype_name(xt.dtype)));
    if (xt.ndim != 2 || xt.shape[1] != w.k)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected shape [M, %lld] for x, got %s", static_cast<long long>(w.k), shape_string(xt).c_str()));
    const int64_t m = xt.shape[0];
    const slip_tensor &yt = require_cuda(y, "y", xt.dtype, dev, "the plan's weight");
    const int64_t want_y[2] = {m, w.n};
    require_shape(yt, "y", 2, want_y);
    if (bias) {
        require_cuda(bias, "bias", SLIP_DTYPE_F32, dev, "the plan's weight");
        const int64_t want_b[1] = {w.n};
        require_shape(*bias, "bias", 1, want_b);
    }
    if (m == 0) return;
    if (reinterpret_cast<uintptr_t>(xt.data) % 16 != 0)
        fail(SLIP_STATUS_UNSUPPORTED, "expected x 16-byte aligned on CUDA (the kernels read 16 bytes at a time)");
    if (reinterpret_cast<uintptr_t>(yt.data) % 2 != 0) fail(SLIP_STATUS_INVALID_ARGUMENT, "expected y 2-byte aligned");
    const auto *x0 = static_cast<const uint8_t *>(xt.data), *y0 = static_cast<const uint8_t *>(yt.data);
    if (x0 < y0 + m * w.n * 2 && y0 < x0 + m * w.k * 2) fail(SLIP_STATUS_INVALID_ARGUMENT, "expected y not to overlap x");
    if ((m + 127) / 128 > 65535) fail(SLIP_STATUS_UNSUPPORTED, "expected M below 2^23 on CUDA");

    DeviceScope scope(dev);
    cudaStream_t stream = static_cast<cudaStream_t>(xt.stream);
    const bool f16 = xt.dtype == SLIP_DTYPE_F16, fp8 = p->act_quant == SLIP_ACT_FP8;
    const float *bias_p = bias ? static_cast<const float *>(bias->data) : nullptr;
    auto align = [](size_t b) { return (b + 255) / 256 * 256; };
    if (fp8 && pl.sm90a && m > fp4::kSkinnyMaxRows) {
        const size_t q_bytes = align(static_cast<size_t>(m) * w.nchunks * fp4::kChunk);
        auto *pool = static_cast<uint8_t *>(scratch_alloc(q_bytes + align(m * sizeof(float)), stream, "linear scratch"));
        float *scale = reinterpret_cast<float *>(pool + q_bytes);
        fp4::quantize_fp8_permuted(xt.data, m, w.k, w.nchunks, f16, pool, scale, pl.sm_count, stream);
        cudaError_t err = cudaGetLastError();
        if (err == cudaSuccess) {
            try {
                fp4::gemm_sm90(w, pool, scale, bias_p, yt.data, m, f16, pl.sm_count, stream);
            } catch (...) {
                scratch_free(pool, stream);
                throw;
            }
        }
        scratch_free(pool, stream);
        check_cuda(err, "NVFP4 x FP8 linear (activation quantizer)");
        return;
    }
    const fp4::Launch launch = fp4::plan_launch(w, m, pl.sm_count, pl.smem_per_block, pl.sm90a);
    const size_t q_bytes = fp8 ? align(static_cast<size_t>(m) * w.k * 2) : 0, s_bytes = fp8 ? align(m * sizeof(float)) : 0;
    const size_t total = q_bytes + s_bytes + launch.workspace_bytes;
    uint8_t *pool = nullptr;
    if (total) pool = static_cast<uint8_t *>(scratch_alloc(total, stream, "linear scratch"));
    uint8_t *work = pool ? pool + q_bytes + s_bytes : nullptr;
    fp4::Problem pr{xt.data, nullptr, bias_p, yt.data, m, f16, reinterpret_cast<uintptr_t>(yt.data) % 4 == 0 && w.n % 2 == 0};
    cudaError_t err = cudaSuccess;
    if (launch.workspace_bytes) err = cudaMemsetAsync(work + launch.counters_offset, 0, launch.counters_bytes, stream);
    if (err == cudaSuccess && fp8) {
        float *scale = reinterpret_cast<float *>(pool + q_bytes);
        fp4::quantize_fp8(xt.data, m, w.k, f16, pool, scale, pl.sm_count, stream);
        pr.x = pool;
        pr.row_scale = scale;
        err = cudaGetLastError();
    }
    if (err == cudaSuccess) {
        fp4::gemm(w, pr, launch, work, stream);
        err = cudaGetLastError();
    }
    scratch_free(pool, stream);
    check_cuda(err, fp8 ? "NVFP4 x FP8 linear kernels" : "NVFP4 x 16-bit linear kernel");
}

int64_t linear_plan_weight_bytes(const void *handle) { return static_cast<const CudaPlan *>(handle)->bytes; }

}  // namespace slip::cuda
