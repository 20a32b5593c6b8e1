// ABI of the FP32 attentions (dense, block-sparse) and the shared validation every attention
// method runs (make_problem in attention-common.h): every bad argument becomes "expected X for
// <argument>, got Y" before a kernel runs.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "attention-common.h"
#include "base/kernels.h"
#include "base/tensor.h"
#include "base/thread-pool.h"
#include "dense.h"

namespace slip::attn {
namespace {

const KernelName kDense("attn_dense");
const KernelName kBlockSparse("attn_block_sparse");

void require_rank(const slip_tensor &t, const char *name, int32_t ndim, const char *what) {
    if (t.ndim != ndim)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected %d dimensions (%s) for %s, got %s", ndim,
                                                what, name, shape_string(t).c_str()));
}

// cu_seqlens: I32 [B+1], starting at 0, non-decreasing, ending at the token count.
void check_cu(const slip_tensor &cu, const char *name, int64_t total, const char *of) {
    if (cu.ndim != 1 || cu.shape[0] < 2)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected shape [B + 1] with B >= 1 for %s, got %s", name,
                    shape_string(cu).c_str()));
    const int32_t *c = data_as<const int32_t>(cu);
    if (c[0] != 0)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected 0 for %s[0], got %d", name, c[0]));
    for (int64_t i = 1; i < cu.shape[0]; ++i)
        if (c[i] < c[i - 1])
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected non-decreasing offsets in %s, got %d after %d at index %lld",
                        name, c[i], c[i - 1], static_cast<long long>(i)));
    if (c[cu.shape[0] - 1] != total)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected %s to end at %lld (the token count of %s), got %d", name,
                    static_cast<long long>(total), of, c[cu.shape[0] - 1]));
}

}  // namespace

[[noreturn]] void refuse(const char *feature, const char *op) {
    fail(SLIP_STATUS_UNSUPPORTED,
         format("expected no %s for %s (not supported), got one", feature, op));
}

void require_finite(const slip_tensor &t, const char *name) {
    const float *x = data_as<const float>(t);
    const int64_t n = numel(t);
    std::atomic<int64_t> bad{-1};
    parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
            if (!std::isfinite(x[i])) {
                int64_t none = -1;
                bad.compare_exchange_strong(none, i);
                return;
            }
    });
    if (bad >= 0)
        fail(SLIP_STATUS_NON_FINITE, format("expected finite values in %s, got %g at flat index %lld",
                                            name, static_cast<double>(x[bad.load()]),
                                            static_cast<long long>(bad.load())));
}

Problem make_problem(const slip_tensor *q, const slip_tensor *k, const slip_tensor *v,
                     const slip_tensor *mask, const slip_tensor *cu_q, const slip_tensor *cu_k,
                     const slip_attn_params *p, slip_tensor *out, slip_tensor *lse) {
    require_not_null(p, "params");
    const slip_tensor &tq = require_cpu_dense(q, "q", SLIP_DTYPE_F32);
    const slip_tensor &tk = require_cpu_dense(k, "k", SLIP_DTYPE_F32);
    const slip_tensor &tv = require_cpu_dense(v, "v", SLIP_DTYPE_F32);
    const slip_tensor &to = require_cpu_dense(out, "out", SLIP_DTYPE_F32);
    if (p->layout != SLIP_ATTN_HND && p->layout != SLIP_ATTN_NHD)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected SLIP_ATTN_HND (0) or SLIP_ATTN_NHD (1) for params.layout, got %d",
                    p->layout));
    if (p->causal != 0 && p->causal != 1)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected 0 or 1 for params.causal, got %d", p->causal));
    if (!std::isfinite(p->scale) || p->scale < 0.0f)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a finite non-negative value (0 = 1/sqrt(D)) for params.scale, got %g",
                    static_cast<double>(p->scale)));
    if ((cu_q == nullptr) != (cu_k == nullptr))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected both cu_seqlens_q and cu_seqlens_k or neither, got only %s",
                    cu_q ? "cu_seqlens_q" : "cu_seqlens_k"));

    Problem pr;
    pr.varlen = cu_q != nullptr;
    pr.causal = p->causal == 1;
    pr.layout = p->layout;
    const int32_t rank = pr.varlen ? 3 : 4;
    const char *what = pr.varlen ? "varlen [tokens, heads, D]"
                                 : (p->layout == SLIP_ATTN_HND ? "HND [B, H, N, D]" : "NHD [B, N, H, D]");
    require_rank(tq, "q", rank, what);
    require_rank(tk, "k", rank, what);
    require_rank(tv, "v", rank, what);
    // Index of the token and head dims in q/k/v for this layout.
    const int th = pr.varlen ? 0 : (p->layout == SLIP_ATTN_HND ? 2 : 1);
    const int hh = pr.varlen ? 1 : (p->layout == SLIP_ATTN_HND ? 1 : 2);
    pr.dim = tq.shape[rank - 1];
    pr.heads_q = tq.shape[hh];
    pr.heads_k = tk.shape[hh];
    pr.nq = tq.shape[th];
    pr.nk = tk.shape[th];
    pr.batch = pr.varlen ? 0 : tq.shape[0];
    if (pr.dim < 1 || pr.dim > kMaxHeadDim)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected a head dim (last extent) of 1 to %lld for q, got %s",
                    static_cast<long long>(kMaxHeadDim), shape_string(tq).c_str()));
    if (pr.heads_q < 1 || pr.heads_k < 1 || pr.heads_q % pr.heads_k != 0)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected query heads (%lld, from q %s) to be a positive multiple of kv heads "
                    "for k, got %s",
                    static_cast<long long>(pr.heads_q), shape_string(tq).c_str(),
                    shape_string(tk).c_str()));
    pr.group = pr.heads_q / pr.heads_k;
    if (!pr.varlen && tk.shape[0] != pr.batch)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected batch %lld (from q) for k, got %s", static_cast<long long>(pr.batch),
                    shape_string(tk).c_str()));
    if (tk.shape[rank - 1] != pr.dim)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected head dim %lld (from q) for k, got %s", static_cast<long long>(pr.dim),
                    shape_string(tk).c_str()));
    require_shape(tv, "v", tk.ndim, tk.shape);  // v shares k's shape: same tokens, heads, D
    require_shape(to, "out", tq.ndim, tq.shape);

    const int64_t D = pr.dim;
    if (pr.varlen) {
        const slip_tensor &cq = require_cpu_dense(cu_q, "cu_seqlens_q", SLIP_DTYPE_I32);
        const slip_tensor &ck = require_cpu_dense(cu_k, "cu_seqlens_k", SLIP_DTYPE_I32);
        check_cu(cq, "cu_seqlens_q", pr.nq, "q");
        check_cu(ck, "cu_seqlens_k", pr.nk, "k");
        if (ck.shape[0] != cq.shape[0])
            fail(SLIP_STATUS_SHAPE_MISMATCH,
                 format("expected shape %s (as cu_seqlens_q) for cu_seqlens_k, got %s",
                        shape_string(cq).c_str(), shape_string(ck).c_str()));
        pr.cu_q = data_as<const int32_t>(cq);
        pr.cu_k = data_as<const int32_t>(ck);
        pr.batch = cq.shape[0] - 1;
        const int64_t total_q = pr.nq;
        pr.nq = pr.nk = 0;
        for (int64_t b = 0; b < pr.batch; ++b) {
            pr.nq = std::max<int64_t>(pr.nq, pr.cu_q[b + 1] - pr.cu_q[b]);
            pr.nk = std::max<int64_t>(pr.nk, pr.cu_k[b + 1] - pr.cu_k[b]);
        }
        pr.sq = {0, D, pr.heads_q * D};
        pr.sk = pr.sv = {0, D, pr.heads_k * D};
        pr.slse = {0, total_q, 1};
        if (mask) refuse("mask with varlen (cu_seqlens)", "attention");
        if (lse) {
            const slip_tensor &tl = require_cpu_dense(lse, "lse", SLIP_DTYPE_F32);
            const int64_t want[2] = {pr.heads_q, total_q};  // [Hq, total_q]
            require_shape(tl, "lse", 2, want);
            pr.lse = data_as<float>(tl);
        }
    } else {
        const int64_t B = pr.batch, Hq = pr.heads_q, Hk = pr.heads_k, Nq = pr.nq, Nk = pr.nk;
        if (p->layout == SLIP_ATTN_HND) {
            pr.sq = {Hq * Nq * D, Nq * D, D};
            pr.sk = pr.sv = {Hk * Nk * D, Nk * D, D};
        } else {
            pr.sq = {Nq * Hq * D, D, Hq * D};
            pr.sk = pr.sv = {Nk * Hk * D, D, Hk * D};
        }
        if (lse) {
            const slip_tensor &tl = require_cpu_dense(lse, "lse", SLIP_DTYPE_F32);
            const int64_t want[3] = {B, Hq, Nq};
            require_shape(tl, "lse", 3, want);
            pr.lse = data_as<float>(tl);
            pr.slse = {Hq * Nq, Nq, 1};
        }
        if (mask) {
            require_not_null(mask, "mask");
            if (mask->dtype != SLIP_DTYPE_U8 && mask->dtype != SLIP_DTYPE_F32)
                fail(SLIP_STATUS_DTYPE_MISMATCH,
                     format("expected dtype U8 or F32 for mask, got %s",
                            slip_dtype_name(static_cast<slip_dtype>(mask->dtype))));
            const slip_tensor &tm =
                require_cpu_dense(mask, "mask", static_cast<slip_dtype>(mask->dtype));
            if (tm.ndim != 4 || (tm.shape[0] != 1 && tm.shape[0] != B) ||
                (tm.shape[1] != 1 && tm.shape[1] != Hq) || tm.shape[2] != Nq || tm.shape[3] != Nk)
                fail(SLIP_STATUS_SHAPE_MISMATCH,
                     format("expected shape [1 or %lld, 1 or %lld, %lld, %lld] for mask, got %s",
                            static_cast<long long>(B), static_cast<long long>(Hq),
                            static_cast<long long>(Nq), static_cast<long long>(Nk),
                            shape_string(tm).c_str()));
            pr.mask_dtype = tm.dtype;
            pr.mask = tm.data;
            pr.mask_row_stride = Nk;
            pr.mask_head_stride = tm.shape[1] == 1 ? 0 : Nq * Nk;
            pr.mask_batch_stride = tm.shape[0] == 1 ? 0 : tm.shape[1] * Nq * Nk;
            if (tm.dtype == SLIP_DTYPE_F32) {
                // -inf blocks; NaN or +inf would make the softmax NaN everywhere in the row.
                const float *m = data_as<const float>(tm);
                const int64_t n = numel(tm);
                for (int64_t i = 0; i < n; ++i)
                    if (std::isnan(m[i]) || m[i] == INFINITY)
                        fail(SLIP_STATUS_NON_FINITE,
                             format("expected finite values or -inf in mask, got %g at flat index "
                                    "%lld", static_cast<double>(m[i]), static_cast<long long>(i)));
            }
        }
    }
    pr.so = pr.sq;
    pr.q = data_as<const float>(tq);
    pr.k = data_as<const float>(tk);
    pr.v = data_as<const float>(tv);
    pr.out = data_as<float>(to);
    pr.scale = p->scale > 0.0f ? p->scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    return pr;
}

}  // namespace slip::attn

extern "C" {

SLIP_API slip_status slip_attn_params_init(slip_attn_params *p) {
    return slip::guard([&] {
        slip::require_not_null(p, "p");
        *p = slip_attn_params{};
        p->layout = SLIP_ATTN_HND;
        p->causal = 0;
        p->scale = 0.0f;  // 1/sqrt(D), resolved per call
    });
}

SLIP_API slip_status slip_attn_dense(const slip_tensor *q, const slip_tensor *k,
                                     const slip_tensor *v, const slip_tensor *mask,
                                     const slip_tensor *cu_seqlens_q,
                                     const slip_tensor *cu_seqlens_k, const slip_attn_params *p,
                                     slip_tensor *out, slip_tensor *lse) {
    return slip::guard([&] {
        const slip::attn::Problem pr =
            slip::attn::make_problem(q, k, v, mask, cu_seqlens_q, cu_seqlens_k, p, out, lse);
        slip::attn::run_dense(pr);
    });
}

SLIP_API slip_status slip_attn_block_sparse(const slip_tensor *q, const slip_tensor *k,
                                            const slip_tensor *v, const slip_tensor *mask,
                                            const slip_tensor *block_mask, int64_t block_q,
                                            int64_t block_k, const slip_attn_params *p,
                                            slip_tensor *out, slip_tensor *lse, double *density) {
    return slip::guard([&] {
        const slip::attn::Problem pr =
            slip::attn::make_problem(q, k, v, mask, nullptr, nullptr, p, out, lse);
        if (block_q < 1 || block_k < 1)
            slip::fail(SLIP_STATUS_INVALID_ARGUMENT,
                       slip::format("expected positive block_q and block_k, got %lld x %lld",
                                    static_cast<long long>(block_q),
                                    static_cast<long long>(block_k)));
        const int64_t nqb = (pr.nq + block_q - 1) / block_q, nkb = (pr.nk + block_k - 1) / block_k;
        const slip_tensor &bm = slip::require_cpu_dense(block_mask, "block_mask", SLIP_DTYPE_U8);
        const int64_t want[4] = {pr.batch, pr.heads_q, nqb, nkb};
        slip::require_shape(bm, "block_mask", 4, want);
        slip::attn::BlockMask blocks{slip::data_as<const uint8_t>(bm), block_q, block_k, nqb, nkb};
        const double d = slip::attn::run_block_sparse(pr, blocks);
        if (density) *density = d;
    });
}

}  // extern "C"
