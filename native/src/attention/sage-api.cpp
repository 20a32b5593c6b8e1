// ABI of SageAttention2 / 2++ (slip_attn_sage) and SageBwd (slip_attn_sage_backward): params
// defaults, validation of the Sage-specific options on top of the shared attention checks
// (attention-common.h), refusal of NaN/Inf inputs, then the emulating kernels.
#include <cmath>

#include "attention-common.h"
#include "base/cuda-backend.h"
#include "base/kernels.h"
#include "base/tensor.h"
#include "sage.h"

namespace slip::sage {
namespace {

const KernelName kSage("attn_sage");
const KernelName kSageBackward("attn_sage_backward");

void require_flag(int32_t v, const char *name) {
    if (v != 0 && v != 1)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected 0 or 1 for %s, got %d", name, v));
}

void check_params(const slip_sage_params *sp) {
    require_not_null(sp, "sage_params");
    if (sp->variant != SLIP_SAGE_VARIANT_SAGE2 && sp->variant != SLIP_SAGE_VARIANT_SAGE2PP)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected SLIP_SAGE_VARIANT_SAGE2 (0) or SLIP_SAGE_VARIANT_SAGE2PP (1) for "
                    "sage_params.variant, got %d", sp->variant));
    if (sp->granularity < SLIP_SAGE_GRANULARITY_BLOCK ||
        sp->granularity > SLIP_SAGE_GRANULARITY_THREAD)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected BLOCK (0), WARP (1) or THREAD (2) for sage_params.granularity, "
                    "got %d", sp->granularity));
    require_flag(sp->smooth_k, "sage_params.smooth_k");
    require_flag(sp->smooth_q, "sage_params.smooth_q");
    require_flag(sp->quantize, "sage_params.quantize");
    // warp_q a multiple of 8: the THREAD rule groups rows by (row mod 8) inside a warp tile.
    if (sp->warp_q < 8 || sp->warp_q % 8 != 0)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a positive multiple of 8 for sage_params.warp_q, got %d", sp->warp_q));
    if (sp->block_q < sp->warp_q || sp->block_q % sp->warp_q != 0 || sp->block_q > 1024)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a multiple of warp_q (%d) up to 1024 for sage_params.block_q, got %d",
                    sp->warp_q, sp->block_q));
    // block_k a multiple of the MMA k-step (32 keys), so k-steps never straddle two tiles.
    if (sp->block_k < 32 || sp->block_k % 32 != 0 || sp->block_k > 1024)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a multiple of 32 up to 1024 for sage_params.block_k, got %d",
                    sp->block_k));
    if (sp->variant == SLIP_SAGE_VARIANT_SAGE2PP && sp->block_k > kMaxBlockK2pp)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected sage_params.block_k <= 64 with SAGE2PP (448 * 2.25 * block_k must "
                    "stay below the FP16 maximum 65504), got %d", sp->block_k));
}

void require_like(const slip_tensor *t, const char *name, const slip_tensor *ref) {
    const slip_tensor &r = require_cpu_dense(t, name, SLIP_DTYPE_F32);
    require_shape(r, name, ref->ndim, ref->shape);
}

// lse may hold -inf (a row that attended nothing) but never NaN or +inf.
void require_lse(const slip_tensor &t) {
    const float *x = data_as<const float>(t);
    const int64_t n = numel(t);
    for (int64_t i = 0; i < n; ++i)
        if (std::isnan(x[i]) || x[i] == INFINITY)
            fail(SLIP_STATUS_NON_FINITE,
                 format("expected finite values or -inf in lse, got %g at flat index %lld",
                        static_cast<double>(x[i]), static_cast<long long>(i)));
}

}  // namespace
}  // namespace slip::sage

extern "C" {

SLIP_API slip_status slip_sage_params_init(slip_sage_params *sp) {
    return slip::guard([&] {
        slip::require_not_null(sp, "sp");
        *sp = slip_sage_params{};
        sp->variant = SLIP_SAGE_VARIANT_SAGE2;
        sp->granularity = SLIP_SAGE_GRANULARITY_THREAD;  // SA2's default qk_quant_gran
        sp->smooth_k = 1;                                // SA2's default smooth_k=True
        sp->smooth_q = 0;                                // not exposed by SA2 2.2.0's CUDA API
        sp->block_q = 128;                               // sm89 CTA_Q
        sp->block_k = 64;                                // sm89 CTA_K
        sp->warp_q = 32;                                 // sm89 WARP_Q
        sp->quantize = 1;
    });
}

SLIP_API slip_status slip_attn_sage(const slip_tensor *q, const slip_tensor *k,
                                    const slip_tensor *v, const slip_tensor *mask,
                                    const slip_attn_params *p, const slip_sage_params *sp,
                                    slip_tensor *out, slip_tensor *lse) {
    return slip::guard([&] {
        if (slip::cuda::any_on_device({q, k, v, mask, out, lse})) {
            slip::sage::check_params(sp);
            return slip::cuda::attn_sage(q, k, v, mask, nullptr, p, sp, out, lse);
        }
        const slip::attn::Problem pr =
            slip::attn::make_problem(q, k, v, mask, nullptr, nullptr, p, out, lse);
        slip::sage::check_params(sp);
        // Quantization scales come from amax: one NaN or Inf would poison a whole group.
        slip::attn::require_finite(*q, "q");
        slip::attn::require_finite(*k, "k");
        slip::attn::require_finite(*v, "v");
        slip::sage::run_forward(pr, *sp);
    });
}

SLIP_API slip_status slip_attn_sage_block_sparse(const slip_tensor *q, const slip_tensor *k,
                                                 const slip_tensor *v, const slip_tensor *block_mask,
                                                 const slip_attn_params *p, const slip_sage_params *sp,
                                                 slip_tensor *out, slip_tensor *lse) {
    return slip::guard([&] {
        slip::require_not_null(block_mask, "block_mask");
        slip::sage::check_params(sp);
        if (slip::cuda::any_on_device({q, k, v, block_mask, out, lse}))
            return slip::cuda::attn_sage(q, k, v, nullptr, block_mask, p, sp, out, lse);
        const slip::attn::Problem pr =
            slip::attn::make_problem(q, k, v, nullptr, nullptr, nullptr, p, out, lse);
        const int64_t nqt = (pr.nq + sp->block_q - 1) / sp->block_q, nkt = (pr.nk + sp->block_k - 1) / sp->block_k;
        const slip_tensor &bm = slip::require_shape(block_mask, "block_mask", SLIP_DTYPE_U8, {pr.batch, pr.heads_q, nqt, nkt});
        slip::attn::require_finite(*q, "q");
        slip::attn::require_finite(*k, "k");
        slip::attn::require_finite(*v, "v");
        slip::sage::run_forward(pr, *sp, slip::data_as<const uint8_t>(bm));
    });
}

SLIP_API slip_status slip_attn_sage_backward(const slip_tensor *q, const slip_tensor *k,
                                             const slip_tensor *v, const slip_tensor *out,
                                             const slip_tensor *d_out, const slip_tensor *lse,
                                             const slip_tensor *mask, const slip_attn_params *p,
                                             const slip_sage_params *sp, slip_tensor *dq,
                                             slip_tensor *dk, slip_tensor *dv) {
    return slip::guard([&] {
        slip::require_not_null(lse, "lse");
        // out and lse are inputs here; make_problem only reads their descriptors.
        const slip::attn::Problem pr = slip::attn::make_problem(
            q, k, v, mask, nullptr, nullptr, p, const_cast<slip_tensor *>(out),
            const_cast<slip_tensor *>(lse));
        slip::sage::check_params(sp);
        slip::sage::require_like(d_out, "d_out", q);
        slip::sage::require_like(dq, "dq", q);
        slip::sage::require_like(dk, "dk", k);
        slip::sage::require_like(dv, "dv", v);
        slip::attn::require_finite(*q, "q");
        slip::attn::require_finite(*k, "k");
        slip::attn::require_finite(*v, "v");
        slip::attn::require_finite(*out, "out");
        slip::attn::require_finite(*d_out, "d_out");
        slip::sage::require_lse(*lse);
        const slip::sage::Grads g{pr.out, slip::data_as<const float>(*d_out), pr.lse,
                                  slip::data_as<float>(*dq), slip::data_as<float>(*dk),
                                  slip::data_as<float>(*dv)};
        slip::sage::run_backward(pr, *sp, g);
    });
}

}  // extern "C"
