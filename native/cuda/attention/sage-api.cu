// slip_attn_sage and slip_attn_sage_block_sparse on CUDA tensors: validation, scratch from the
// stream-ordered allocator, the quantizers, then the attention kernel, all on q's stream.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <utility>

#include "base/cuda-backend.h"
#include "base/error.h"
#include "base/tensor.h"
#include "../cuda-common.cuh"
#include "sage-cuda.cuh"

namespace slip::cuda {

namespace {

const slip_tensor &require_cuda(const slip_tensor *t, const char *name, int device) {
    require_not_null(t, name);
    if (t->device != SLIP_DEVICE_CUDA || t->device_index != device)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected %s on CUDA device %d (with q), got %s %d", name, device,
                    t->device == SLIP_DEVICE_CUDA ? "CUDA device" : "a CPU tensor, device", t->device_index));
    return *t;
}

// [B, H, N, D] extents and element strides of a 4-D tensor in the given layout; D contiguous.
sage::View4 view4(const slip_tensor &t, const char *name, int32_t layout, int64_t (&ext)[4]) {
    if (t.ndim != 4) fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected 4 dimensions for %s, got %d", name, t.ndim));
    const int hn[2] = {layout == SLIP_ATTN_HND ? 1 : 2, layout == SLIP_ATTN_HND ? 2 : 1};
    ext[0] = t.shape[0];
    ext[1] = t.shape[hn[0]];
    ext[2] = t.shape[hn[1]];
    ext[3] = t.shape[3];
    if (t.strides[3] != 1)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected %s's last (head) dimension contiguous (stride 1), got stride %lld", name,
                    static_cast<long long>(t.strides[3])));
    // The quantizers read 8 elements (16 bytes) at a time.
    if (reinterpret_cast<uintptr_t>(t.data) % 16 != 0 || t.strides[0] % 8 != 0 || t.strides[hn[0]] % 8 != 0 ||
        t.strides[hn[1]] % 8 != 0)
        fail(SLIP_STATUS_UNSUPPORTED,
             format("expected %s 16-byte aligned with strides that are multiples of 8 elements on CUDA", name));
    return sage::View4{t.data, t.strides[0], t.strides[hn[0]], t.strides[hn[1]]};
}

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

void attn_sage(const slip_tensor *q, const slip_tensor *k, const slip_tensor *v, const slip_tensor *mask,
               const slip_tensor *block_mask, const slip_attn_params *p, const slip_sage_params *sp, slip_tensor *out,
               slip_tensor *lse) {
    require_not_null(q, "q");
    require_not_null(p, "params");
    const int dev = q->device_index;
    require_cuda(q, "q", dev);
    require_cuda(k, "k", dev);
    require_cuda(v, "v", dev);
    require_cuda(out, "out", dev);
    if (mask)
        fail(SLIP_STATUS_UNSUPPORTED, "expected no token mask for slip_attn_sage on CUDA (the CUDA kernel has none; "
                                      "use causal, or the CPU path)");
    const int32_t dt = q->dtype;
    if (dt != SLIP_DTYPE_BF16 && dt != SLIP_DTYPE_F16)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected BF16 or F16 for q on CUDA, got %s", slip_dtype_name(static_cast<slip_dtype>(dt))));
    for (auto [t, name] : {std::pair<const slip_tensor *, const char *>{k, "k"}, {v, "v"}, {out, "out"}})
        if (t->dtype != dt)
            fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected %s's dtype %s (like q), got %s", name,
                                                      slip_dtype_name(static_cast<slip_dtype>(dt)),
                                                      slip_dtype_name(static_cast<slip_dtype>(t->dtype))));
    if (p->layout != SLIP_ATTN_HND && p->layout != SLIP_ATTN_NHD)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected SLIP_ATTN_HND (0) or SLIP_ATTN_NHD (1) for params.layout, got %d", p->layout));
    int64_t qe[4], ke[4], ve[4], oe[4];
    const sage::View4 qv = view4(*q, "q", p->layout, qe), kv = view4(*k, "k", p->layout, ke),
                      vv = view4(*v, "v", p->layout, ve), ov = view4(*out, "out", p->layout, oe);
    const int64_t B = qe[0], Hq = qe[1], Nq = qe[2], D = qe[3], Hk = ke[1], Nk = ke[2];
    if (D != 64 && D != 128 && D != 256)
        fail(SLIP_STATUS_UNSUPPORTED, format("expected head dim 64, 128 or 256 on CUDA, got %lld", static_cast<long long>(D)));
    if (ke[0] != B || ke[3] != D || Hk < 1 || Hq % Hk != 0)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected k [B=%lld, Hk dividing %lld, Nk, D=%lld], got [%lld, %lld, %lld, %lld]",
                                                static_cast<long long>(B), static_cast<long long>(Hq), static_cast<long long>(D),
                                                static_cast<long long>(ke[0]), static_cast<long long>(ke[1]),
                                                static_cast<long long>(ke[2]), static_cast<long long>(ke[3])));
    for (int i = 0; i < 4; ++i) {
        if (ve[i] != ke[i]) fail(SLIP_STATUS_SHAPE_MISMATCH, "expected v with k's shape");
        if (oe[i] != qe[i]) fail(SLIP_STATUS_SHAPE_MISMATCH, "expected out with q's shape");
    }
    if (Nk < 1) fail(SLIP_STATUS_SHAPE_MISMATCH, "expected at least one key (Nk >= 1)");
    if (B * Hq * Nq > INT32_MAX || B * Hk * Nk > INT32_MAX)
        fail(SLIP_STATUS_UNSUPPORTED, "expected B * H * N below 2^31 on CUDA");
    if (sp->variant != SLIP_SAGE_VARIANT_SAGE2)
        fail(SLIP_STATUS_UNSUPPORTED, "expected SLIP_SAGE_VARIANT_SAGE2 on CUDA (SAGE2PP's FP16 accumulator for FP8 "
                                      "products exists on Ada and consumer Blackwell, not on Hopper)");
    if (!sp->quantize || sp->smooth_q)
        fail(SLIP_STATUS_UNSUPPORTED, "expected sage_params.quantize 1 and smooth_q 0 on CUDA");
    if (sp->block_k != sage::kTileK)
        fail(SLIP_STATUS_UNSUPPORTED, format("expected sage_params.block_k 64 on CUDA (the kernel's key tile), got %d", sp->block_k));
    if (block_mask && sp->block_q != sage::kMaskRows)
        fail(SLIP_STATUS_UNSUPPORTED, format("expected sage_params.block_q 128 for the block-sparse kernel on CUDA, got %d", sp->block_q));
    if (block_mask) {
        require_cuda(block_mask, "block_mask", dev);
        const int64_t want[4] = {B, Hq, (Nq + 127) / 128, (Nk + sage::kTileK - 1) / sage::kTileK};
        bool ok = block_mask->dtype == SLIP_DTYPE_U8 && block_mask->ndim == 4;
        for (int i = 0; ok && i < 4; ++i) ok = block_mask->shape[i] == want[i];
        ok = ok && block_mask->strides[3] == 1 && block_mask->strides[2] == want[3] && block_mask->strides[1] == want[2] * want[3];
        if (!ok)
            fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected a contiguous U8 block_mask [%lld, %lld, %lld, %lld]",
                                                    static_cast<long long>(want[0]), static_cast<long long>(want[1]),
                                                    static_cast<long long>(want[2]), static_cast<long long>(want[3])));
    }
    if (lse) {
        require_cuda(lse, "lse", dev);
        if (lse->dtype != SLIP_DTYPE_F32 || lse->ndim != 3 || lse->shape[0] != B || lse->shape[1] != Hq ||
            lse->shape[2] != Nq || lse->strides[2] != 1 || lse->strides[1] != Nq)
            fail(SLIP_STATUS_SHAPE_MISMATCH, "expected a contiguous F32 lse [B, Hq, Nq]");
    }
    if (!(p->scale >= 0.0f) || !std::isfinite(p->scale))
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a finite, non-negative params.scale, got %g", p->scale));

    DeviceScope scope(dev);
    int major = 0, minor = 0;
    check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "cudaDeviceGetAttribute");
    check_cuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev), "cudaDeviceGetAttribute");
    if (major * 10 + minor < 89)
        fail(SLIP_STATUS_UNSUPPORTED, format("expected a GPU of compute capability 8.9 or newer (FP8 tensor cores), got %d.%d", major, minor));

    // Hopper runs the wgmma kernels (sage-sm90.cu), which read keys padded to 128.
    const bool sm90 = sage::sm90_available(dev);
    const int64_t key_align = sm90 ? sage::kSm90KeyAlign : sage::kTileK;
    const int64_t Nkp = (Nk + key_align - 1) / key_align * key_align;
    const sage::Shape s{static_cast<int>(B), static_cast<int>(Hq), static_cast<int>(Hk), static_cast<int>(Nq),
                        static_cast<int>(Nk), static_cast<int>(Nkp), static_cast<int>(D)};
    const bool want_corr = lse && sp->smooth_k;
    const size_t sizes[8] = {
        align256(B * Hq * Nq * D), align256(B * Hq * Nq * 4), align256(B * Hk * Nkp * D), align256(B * Hk * Nkp * 4),
        align256(B * Hk * D * Nkp), align256(B * Hk * D * 4), want_corr ? align256(B * Hq * Nq * 4) : 0,
        align256(sage::quantize_scratch_floats(s) * 4)};
    size_t total = 0;
    for (size_t n : sizes) total += n;
    cudaStream_t stream = static_cast<cudaStream_t>(q->stream);
    uint8_t *pool = static_cast<uint8_t *>(scratch_alloc(total, stream, "attention scratch"));
    uint8_t *at = pool;
    auto take = [&](size_t n) {
        uint8_t *r = n ? at : nullptr;
        at += n;
        return r;
    };
    sage::QuantBuffers buf;
    buf.qc = reinterpret_cast<int8_t *>(take(sizes[0]));
    buf.qs = reinterpret_cast<float *>(take(sizes[1]));
    buf.kc = reinterpret_cast<int8_t *>(take(sizes[2]));
    buf.ks = reinterpret_cast<float *>(take(sizes[3]));
    buf.vt = take(sizes[4]);
    buf.vs = reinterpret_cast<float *>(take(sizes[5]));
    buf.lsec = reinterpret_cast<float *>(take(sizes[6]));
    float *scratch = reinterpret_cast<float *>(take(sizes[7]));
    const float scale = p->scale > 0.0f ? p->scale : 1.0f / std::sqrt(static_cast<float>(D));
    sage::quantize(qv, kv, vv, dt == SLIP_DTYPE_BF16, s, sp->granularity, sp->block_q, sp->block_k, sp->warp_q,
                   sp->smooth_k != 0, scale, 448.0f, buf, scratch, stream);
    const cudaError_t qerr = cudaGetLastError();
    cudaError_t aerr = cudaSuccess;
    if (qerr == cudaSuccess) {
        const uint8_t *bm = block_mask ? static_cast<const uint8_t *>(block_mask->data) : nullptr;
        float *lsep = lse ? static_cast<float *>(lse->data) : nullptr;
        if (sm90) {
            try {
                sage::attend_sm90(buf, s, p->causal != 0, bm, ov, dt == SLIP_DTYPE_BF16, lsep, stream);
            } catch (...) {
                scratch_free(pool, stream);
                throw;
            }
        } else {
            sage::attend(buf, s, p->causal != 0, bm, ov, dt == SLIP_DTYPE_BF16, lsep, stream);
        }
        aerr = cudaGetLastError();
    }
    scratch_free(pool, stream);
    check_cuda(qerr, "SageAttention quantization kernels");
    check_cuda(aerr, "SageAttention kernel");
}

}  // namespace slip::cuda
