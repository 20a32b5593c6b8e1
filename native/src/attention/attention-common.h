// The attention problem every method shares: one validating constructor turns the ABI's tensors
// (q, k, v, mask, cu_seqlens, out, lse, params) into a Problem of extents and element strides,
// so kernels index HND, NHD and varlen the same way and never re-check their inputs.
//
// Use from a method's ABI entry point (inside slip::guard):
//     const slip::attn::Problem pr = slip::attn::make_problem("q", q, k, v, mask, cu_q, cu_k, p,
//                                                             out, lse);
//     if (pr.varlen) slip::attn::refuse(pr, "varlen", "slip_attn_foo");   // if not supported
//     for b, h: Seq s = pr.seq(b); const float *qi = pr.q_row(s, h, i); ...
#pragma once

#include <cmath>
#include <cstdint>

#include "base/error.h"
#include "slipstream.h"

namespace slip::attn {

// The largest head dim any method takes: the ABI's limit (slipstream.h, "D (head dim) is 1..256").
constexpr int64_t kMaxHeadDim = 256;

// Element strides of one [batch, head, token, dim] operand (dim stride is always 1).
struct Strides {
    int64_t batch = 0;  // 0 for varlen: the token offset comes from cu_seqlens
    int64_t head = 0;
    int64_t token = 0;
};

// One sequence of the batch: its token offset (non-zero only for varlen) and lengths.
struct Seq {
    int64_t b = 0;
    int64_t q_begin = 0, k_begin = 0;  // first token row of the sequence in q and in k/v
    int64_t nq = 0, nk = 0;
    // Causal: query i attends key j iff j <= i + offset (bottom-right aligned, FlashAttention 2.1+).
    int64_t causal_offset() const { return nk - nq; }
};

struct Problem {
    int64_t batch = 0;      // B (varlen: number of sequences)
    int64_t heads_q = 0;    // Hq
    int64_t heads_k = 0;    // Hk; Hq % Hk == 0
    int64_t group = 1;      // Hq / Hk: query head h reads kv head h / group
    int64_t nq = 0, nk = 0; // per-sequence lengths (varlen: the longest sequence)
    int64_t dim = 0;        // D, 1..kMaxHeadDim
    bool varlen = false;
    bool causal = false;
    float scale = 0.0f;     // resolved: params.scale, or 1/sqrt(D) when that was 0
    int32_t layout = SLIP_ATTN_HND;

    const float *q = nullptr, *k = nullptr, *v = nullptr;
    float *out = nullptr;
    Strides sq, sk, sv, so;  // out shares q's layout

    const int32_t *cu_q = nullptr, *cu_k = nullptr;  // varlen only, [batch + 1]

    // Mask: absent (dtype -1), U8 (1 attend, 0 blocked) or F32 (additive, -inf blocks).
    int32_t mask_dtype = -1;
    const void *mask = nullptr;
    int64_t mask_batch_stride = 0, mask_head_stride = 0;  // 0 where broadcast
    int64_t mask_row_stride = 0;                          // Nk

    float *lse = nullptr;  // optional; [B, Hq, Nq] or varlen [Hq, total_q]
    Strides slse;          // token stride 1

    Seq seq(int64_t b) const {
        Seq s;
        s.b = b;
        if (varlen) {
            s.q_begin = cu_q[b];
            s.k_begin = cu_k[b];
            s.nq = cu_q[b + 1] - cu_q[b];
            s.nk = cu_k[b + 1] - cu_k[b];
        } else {
            s.nq = nq;
            s.nk = nk;
        }
        return s;
    }
    int64_t kv_head(int64_t h) const { return h / group; }

    const float *q_row(const Seq &s, int64_t h, int64_t i) const {
        return q + s.b * sq.batch + h * sq.head + (s.q_begin + i) * sq.token;
    }
    float *out_row(const Seq &s, int64_t h, int64_t i) const {
        return out + s.b * so.batch + h * so.head + (s.q_begin + i) * so.token;
    }
    // kv head hk (not the query head): callers map with kv_head().
    const float *k_row(const Seq &s, int64_t hk, int64_t j) const {
        return k + s.b * sk.batch + hk * sk.head + (s.k_begin + j) * sk.token;
    }
    const float *v_row(const Seq &s, int64_t hk, int64_t j) const {
        return v + s.b * sv.batch + hk * sv.head + (s.k_begin + j) * sv.token;
    }
    // Row i of the mask for query head h ([Nk] elements); nullptr when there is no mask.
    const uint8_t *mask_u8_row(const Seq &s, int64_t h, int64_t i) const {
        if (mask_dtype != SLIP_DTYPE_U8) return nullptr;
        return static_cast<const uint8_t *>(mask) + s.b * mask_batch_stride +
               h * mask_head_stride + i * mask_row_stride;
    }
    const float *mask_f32_row(const Seq &s, int64_t h, int64_t i) const {
        if (mask_dtype != SLIP_DTYPE_F32) return nullptr;
        return static_cast<const float *>(mask) + s.b * mask_batch_stride +
               h * mask_head_stride + i * mask_row_stride;
    }
    float *lse_at(const Seq &s, int64_t h, int64_t i) const {
        if (!lse) return nullptr;
        return lse + s.b * slse.batch + h * slse.head + (s.q_begin + i) * slse.token;
    }
};

// Validates every argument of an attention entry point and resolves the layout. mask, cu_q,
// cu_k and lse may be null (cu both or neither). Refuses, with "expected X for <argument>, got
// Y": null or non-CPU or non-contiguous tensors, dtypes other than F32 (mask U8/F32, cu I32),
// ranks and extents that disagree, D outside 1..256, Hq not a multiple of Hk, malformed
// cu_seqlens, a mask with varlen, a mask whose F32 values hold NaN or +inf (NON_FINITE), a
// non-finite or negative scale, a layout or causal flag out of range.
Problem make_problem(const slip_tensor *q, const slip_tensor *k, const slip_tensor *v,
                     const slip_tensor *mask, const slip_tensor *cu_q, const slip_tensor *cu_k,
                     const slip_attn_params *p, slip_tensor *out, slip_tensor *lse);

// Throws SLIP_STATUS_UNSUPPORTED: "expected no <feature> for <op> (not supported), got one".
// For methods that refuse a feature the Problem carries (varlen, mask, causal, lse).
[[noreturn]] void refuse(const char *feature, const char *op);

// Throws SLIP_STATUS_NON_FINITE naming the tensor when any of its F32 elements is NaN or +-inf
// (for methods whose quantization breaks on them; the dense FP32 kernel propagates NaN as IEEE
// arithmetic does, like PyTorch). Threaded.
void require_finite(const slip_tensor &t, const char *name);

}  // namespace slip::attn
