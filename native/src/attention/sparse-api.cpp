// ABI of SpargeAttention2 prediction and sparse attention: parameter defaults and the checks
// that turn every bad argument into "expected X for <argument>, got Y" before any work runs.
#include <cmath>
#include <string>
#include <vector>

#include "attention-common.h"
#include "base/cuda-backend.h"
#include "base/error.h"
#include "base/kernels.h"
#include "base/tensor.h"
#include "sparse-pool.h"
#include "sparse-predict.h"

namespace slip::attn::sparse {
namespace {

const KernelName kPredict("attn_sparse_predict");
const KernelName kSparse("attn_sparse");

void require_fraction(float v, const char *name) {
    if (!(v >= 0.0f && v <= 1.0f))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a value in [0, 1] for %s, got %g", name, static_cast<double>(v)));
}

void require_flag(int32_t v, const char *name) {
    if (v != 0 && v != 1)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected 0 or 1 for %s, got %d", name, v));
}

const slip_sparse_params &check_params(const slip_sparse_params *sp) {
    require_not_null(sp, "sparse");
    if (sp->block_q < 1 || sp->block_k < 1)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected positive sparse.block_q and sparse.block_k, got %lld and %lld",
                    static_cast<long long>(sp->block_q), static_cast<long long>(sp->block_k)));
    require_fraction(sp->topk, "sparse.topk");
    require_fraction(sp->topp, "sparse.topp");
    if (sp->topk == 0.0f && sp->topp == 0.0f)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             "expected sparse.topk > 0 or sparse.topp > 0 (at least one selection rule), got both 0");
    if (!(sp->sim_threshold >= -1.0f && sp->sim_threshold <= 1.0f))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a value in [-1, 1] for sparse.sim_threshold, got %g",
                    static_cast<double>(sp->sim_threshold)));
    require_flag(sp->attention_sink, "sparse.attention_sink");
    require_flag(sp->smooth_k, "sparse.smooth_k");
    return *sp;
}

// The block mask tensor, U8 [B, Hq, nQb, nKb].
uint8_t *check_mask_out(slip_tensor *t, const Problem &pr, const slip_sparse_params &sp) {
    const slip_tensor &m = require_shape(t, "block_mask_out", SLIP_DTYPE_U8,
                                         {pr.batch, pr.heads_q, ceil_div(pr.nq, sp.block_q),
                                          ceil_div(pr.nk, sp.block_k)});
    return data_as<uint8_t>(m);
}

double sparsity_of(const MaskCounts &c) {
    return c.allowed ? 1.0 - static_cast<double>(c.kept) / static_cast<double>(c.allowed) : 0.0;
}

}  // namespace
}  // namespace slip::attn::sparse

using namespace slip::attn::sparse;

extern "C" {

slip_status slip_sparse_params_init(slip_sparse_params *p) {
    return slip::guard([&] {
        slip::require_not_null(p, "p");
        *p = slip_sparse_params{};
        // b_q × b_k = 128 × 64: SpargeAttn's tiles on sm80/86/89/120 and SLA2's (§3.1 item 1,
        // §4.3); the CPU kernels take any size.
        p->block_q = 128;
        p->block_k = 64;
        // topk 0.5, sim_threshold -0.1: spas_sage2_attn_meansim_topk_cuda's defaults (§3.3),
        // the recommended training-free entry point. Top-p is off: the hybrid (§3.6) is opt-in.
        p->topk = 0.5f;
        p->topp = 0.0f;
        p->sim_threshold = -0.1f;
        p->attention_sink = 0;
        p->smooth_k = 1;
    });
}

slip_status slip_attn_sparse_predict(const slip_tensor *q, const slip_tensor *k,
                                     const slip_attn_params *attn,
                                     const slip_sparse_params *sparse,
                                     slip_tensor *block_mask_out, double *sparsity_out) {
    return slip::guard([&] {
        slip::require_not_null(q, "q");
        if (slip::cuda::any_on_device({q, k, block_mask_out}))
            return slip::cuda::attn_sparse_predict(q, k, attn, &check_params(sparse), block_mask_out, sparsity_out);
        // make_problem validates q and k as slip_attn_dense does; prediction has no v or out,
        // so k stands in for v and a copy of q's descriptor for out (read, never written).
        slip_tensor out_view = *q;
        const slip::attn::Problem pr =
            slip::attn::make_problem(q, k, k, nullptr, nullptr, nullptr, attn, &out_view, nullptr);
        const slip_sparse_params &sp = check_params(sparse);
        uint8_t *mask = check_mask_out(block_mask_out, pr, sp);
        const MaskCounts c = predict(pr, sp, mask);
        if (sparsity_out) *sparsity_out = sparsity_of(c);
    });
}

slip_status slip_attn_sparse(const slip_tensor *q, const slip_tensor *k, const slip_tensor *v,
                             const slip_tensor *mask, const slip_attn_params *attn,
                             const slip_sparse_params *sparse, slip_tensor *out, slip_tensor *lse,
                             slip_tensor *block_mask_out, double *sparsity_out) {
    return slip::guard([&] {
        const slip::attn::Problem pr =
            slip::attn::make_problem(q, k, v, mask, nullptr, nullptr, attn, out, lse);
        const slip_sparse_params &sp = check_params(sparse);
        const int64_t shape[4] = {pr.batch, pr.heads_q, ceil_div(pr.nq, sp.block_q),
                                  ceil_div(pr.nk, sp.block_k)};
        std::vector<uint8_t> scratch;
        slip_tensor bm;
        uint8_t *bits;
        if (block_mask_out) {
            bits = check_mask_out(block_mask_out, pr, sp);
            bm = *block_mask_out;
        } else {
            scratch.resize(static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]));
            bits = scratch.data();
            slip_tensor_init(&bm, bits, SLIP_DTYPE_U8, 4, shape);
        }
        const MaskCounts c = predict(pr, sp, bits);
        // The sparse compute is the block-sparse kernel's, through the ABI like any caller.
        const slip_status st = slip_attn_block_sparse(q, k, v, mask, &bm, sp.block_q, sp.block_k,
                                                      attn, out, lse, nullptr);
        if (st != SLIP_STATUS_OK) slip::fail(st, slip_last_error());
        if (sparsity_out) *sparsity_out = sparsity_of(c);
    });
}

}  // extern "C"
