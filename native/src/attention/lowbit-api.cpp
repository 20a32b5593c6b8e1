// slip_attn_lowbit: the checks, then lowbit.h's kernels.
#include "attention-common.h"
#include "base/kernels.h"
#include "base/tensor.h"
#include "lowbit.h"

namespace {
const slip::KernelName kLowbit("attn_lowbit");
}

extern "C" SLIP_API slip_status slip_attn_lowbit(const slip_tensor *q, const slip_tensor *k, const slip_tensor *v,
                                                 const slip_tensor *block_mask, const slip_attn_params *p,
                                                 slip_tensor *out) {
    return slip::guard([&] {
        const slip::attn::Problem pr = slip::attn::make_problem(q, k, v, nullptr, nullptr, nullptr, p, out, nullptr);
        if (pr.causal)
            slip::fail(SLIP_STATUS_UNSUPPORTED, "expected params.causal 0 for slip_attn_lowbit (it has no causal mask)");
        const uint8_t *keep = nullptr;
        if (block_mask) {
            const int64_t nqb = (pr.nq + slip::attn::lowbit::kMaskQ - 1) / slip::attn::lowbit::kMaskQ;
            const int64_t nkb = (pr.nk + slip::attn::lowbit::kMaskK - 1) / slip::attn::lowbit::kMaskK;
            keep = slip::data_as<const uint8_t>(
                slip::require_shape(block_mask, "block_mask", SLIP_DTYPE_U8, {pr.batch, pr.heads_q, nqb, nkb}));
        }
        // Scales come from amax: one NaN or Inf would poison a whole row.
        slip::attn::require_finite(*q, "q");
        slip::attn::require_finite(*k, "k");
        slip::attn::require_finite(*v, "v");
        slip::attn::lowbit::attend(pr, keep);
    });
}
