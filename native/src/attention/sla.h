// SLA2 sparse-linear attention (arXiv 2602.12675; attention.md §4.1–4.3) on validated inputs
// (sla-api.cpp validates). Float32 in and out, float64 inside: the CPU path is the reference the
// accelerated kernels are checked against, so it spends precision rather than speed.
#pragma once

#include <cstdint>
#include <vector>

#include "attention-common.h"

namespace slip::attn::sla {

struct Sla {
    Problem pr;
    const uint8_t *route = nullptr;  // [B, Hq, nqb, nkb] slip_sla_route values
    int64_t bq = 0, bk = 0, nqb = 0, nkb = 0;
    const float *alpha = nullptr;    // [Hq]
    const float *proj_w = nullptr;   // [D, D] (out, in)
    const float *proj_b = nullptr;   // [D] or nullptr
    int32_t fmap = SLIP_SLA_FEATURE_SOFTMAX;

    const uint8_t *route_row(int64_t b, int64_t h, int64_t qb) const {
        return route + ((b * pr.heads_q + h) * nqb + qb) * nkb;
    }
};

// φ over D features, and its vector-Jacobian product dx = J_φ(x)ᵀ g (y = φ(x)).
void feature(int32_t fmap, const double *x, int64_t D, double *y);
void feature_vjp(int32_t fmap, const double *x, const double *y, const double *g, int64_t D,
                 double *dx);

// Per (batch, kv head): φ(k) of every key and, per key block, h = Σ φ(k) vᵀ [D×D], z = Σ φ(k).
struct KvState {
    std::vector<double> phik;  // [Nk, D]
    std::vector<double> h;     // [nkb, D, D]
    std::vector<double> z;     // [nkb, D]
};
void build_kv(const Sla &a, const Seq &s, int64_t hk, KvState &kv);

// One query-block row of one query head: the critical key blocks and the marginal sums.
struct RowState {
    std::vector<int64_t> critical;  // key block indices
    std::vector<double> H;          // [D, D] Σ over marginal blocks
    std::vector<double> z;          // [D]
    bool marginal = false;
};
void build_row(const Sla &a, const KvState &kv, int64_t b, int64_t h, int64_t qb, RowState &row);

// Forward of one query token: the sparse branch os and its log-sum-exp, the linear branch ol,
// φ(q) and the linear denominator (<= 0: the linear branch is 0 for this token).
struct QueryFwd {
    std::vector<double> q, os, ol, phiq;
    double lse = 0.0, den = 0.0;
};
void query_forward(const Sla &a, const Seq &s, int64_t h, int64_t i, const RowState &row,
                   QueryFwd &f);

// O = α Oˢ + (1 − α)(Oˡ Wpᵀ + bp) for one token; pj receives Oˡ Wpᵀ + bp.
void combine(const Sla &a, int64_t h, const QueryFwd &f, double *pj, float *out);

void forward(const Sla &a, float *out);

struct Grads {
    float *dq, *dk, *dv, *dalpha, *dproj_w, *dproj_b;  // dproj_b may be nullptr
};
void backward(const Sla &a, const float *dout, const Grads &g);

// Route map from pooled (projected) blocks; returns the number of CRITICAL pairs.
int64_t route(const Problem &pr, const slip_sla_params &sp, const float *wq, const float *wk,
              uint8_t *route_out);

}  // namespace slip::attn::sla
