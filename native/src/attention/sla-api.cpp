// ABI of SLA2: parameter defaults and the checks that turn every bad argument into
// "expected X for <argument>, got Y" before any work runs.
#include <cmath>
#include <string>

#include "attention-common.h"
#include "base/error.h"
#include "base/kernels.h"
#include "base/tensor.h"
#include "sla.h"
#include "sparse-pool.h"

namespace slip::attn::sla {
namespace {

const KernelName kRoute("sla_route");
const KernelName kForward("sla_forward");
const KernelName kBackward("sla_backward");

const slip_sla_params &check_params(const slip_sla_params *sp) {
    require_not_null(sp, "sla");
    if (sp->block_q < 1 || sp->block_k < 1)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected positive sla.block_q and sla.block_k, got %lld and %lld",
                    static_cast<long long>(sp->block_q), static_cast<long long>(sp->block_k)));
    if (!(sp->critical > 0.0f && sp->critical <= 1.0f))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a value in (0, 1] for sla.critical, got %g",
                    static_cast<double>(sp->critical)));
    if (!(sp->negligible >= 0.0f && sp->negligible <= 1.0f - sp->critical))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a value in [0, 1 - sla.critical] = [0, %g] for sla.negligible, got %g",
                    1.0 - sp->critical, static_cast<double>(sp->negligible)));
    if (sp->feature_map < SLIP_SLA_FEATURE_SOFTMAX || sp->feature_map > SLIP_SLA_FEATURE_RELU)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a slip_sla_feature_map (0 to 2) for sla.feature_map, got %d",
                    sp->feature_map));
    if (sp->smooth_k != 0 && sp->smooth_k != 1)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected 0 or 1 for sla.smooth_k, got %d", sp->smooth_k));
    return *sp;
}

// SLA2 targets diffusion transformers: bidirectional attention with no token mask (§4).
void refuse_causal(const Problem &pr, const char *op) {
    if (pr.causal) refuse("causal", op);
}

const float *optional_square(const slip_tensor *t, const char *name, int64_t D) {
    if (!t) return nullptr;
    return data_as<float>(require_shape(t, name, SLIP_DTYPE_F32, {D, D}));
}

// Everything forward and backward share: problem, route map, α, Wp, bp.
Sla make_sla(const Problem &pr, const slip_tensor *route, const slip_tensor *alpha,
             const slip_tensor *proj_w, const slip_tensor *proj_b, const slip_sla_params *p) {
    const slip_sla_params &sp = check_params(p);
    Sla a;
    a.pr = pr;
    a.bq = sp.block_q;
    a.bk = sp.block_k;
    a.nqb = sparse::ceil_div(pr.nq, a.bq);
    a.nkb = sparse::ceil_div(pr.nk, a.bk);
    a.fmap = sp.feature_map;
    const slip_tensor &r =
        require_shape(route, "route", SLIP_DTYPE_U8, {pr.batch, pr.heads_q, a.nqb, a.nkb});
    a.route = data_as<uint8_t>(r);
    const int64_t n = numel(r);
    for (int64_t i = 0; i < n; ++i)
        if (a.route[i] > SLIP_SLA_CRITICAL)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected slip_sla_route values (0, 1 or 2) in route, got %d at flat "
                        "index %lld", a.route[i], static_cast<long long>(i)));
    a.alpha = data_as<float>(require_shape(alpha, "alpha", SLIP_DTYPE_F32, {pr.heads_q}));
    a.proj_w = data_as<float>(require_shape(proj_w, "proj_w", SLIP_DTYPE_F32, {pr.dim, pr.dim}));
    if (proj_b) a.proj_b = data_as<float>(require_shape(proj_b, "proj_b", SLIP_DTYPE_F32, {pr.dim}));
    return a;
}

}  // namespace
}  // namespace slip::attn::sla

using namespace slip::attn::sla;

extern "C" {

slip_status slip_sla_params_init(slip_sla_params *p) {
    return slip::guard([&] {
        slip::require_not_null(p, "p");
        *p = slip_sla_params{};
        p->block_q = 128;  // b_q × b_kv = 128 × 64, SLA2's tiles (attention.md §4.3)
        p->block_k = 64;
        // 5% critical: the low end of SLA's fine-tuned top-k range 0.05–0.1 (§4.2); SLA2's
        // headline 97% sparsity is 3% after its fine-tuning.
        p->critical = 0.05f;
        // No negligible blocks: SLA's released kernel routes every non-critical block to the
        // linear branch (§4.2).
        p->negligible = 0.0f;
        p->feature_map = SLIP_SLA_FEATURE_SOFTMAX;  // SLA's default (§4.2)
        p->smooth_k = 1;
    });
}

slip_status slip_sla_route_predict(const slip_tensor *q, const slip_tensor *k,
                                   const slip_tensor *router_wq, const slip_tensor *router_wk,
                                   const slip_attn_params *attn, const slip_sla_params *sla,
                                   slip_tensor *route_out, double *sparsity_out) {
    return slip::guard([&] {
        slip::require_not_null(q, "q");
        // No v or out here: k stands in for v and a copy of q's descriptor for out (read only).
        slip_tensor out_view = *q;
        const slip::attn::Problem pr =
            slip::attn::make_problem(q, k, k, nullptr, nullptr, nullptr, attn, &out_view, nullptr);
        refuse_causal(pr, "slip_sla_route_predict");
        const slip_sla_params &sp = check_params(sla);
        const float *wq = optional_square(router_wq, "router_wq", pr.dim);
        const float *wk = optional_square(router_wk, "router_wk", pr.dim);
        const int64_t nqb = slip::attn::sparse::ceil_div(pr.nq, sp.block_q);
        const int64_t nkb = slip::attn::sparse::ceil_div(pr.nk, sp.block_k);
        const slip_tensor &r = slip::require_shape(route_out, "route_out", SLIP_DTYPE_U8,
                                                   {pr.batch, pr.heads_q, nqb, nkb});
        const int64_t crit = route(pr, sp, wq, wk, slip::data_as<uint8_t>(r));
        const int64_t all = pr.batch * pr.heads_q * nqb * nkb;
        if (sparsity_out)
            *sparsity_out = all ? 1.0 - static_cast<double>(crit) / static_cast<double>(all) : 0.0;
    });
}

slip_status slip_sla_forward(const slip_tensor *q, const slip_tensor *k, const slip_tensor *v,
                             const slip_tensor *route, const slip_tensor *alpha,
                             const slip_tensor *proj_w, const slip_tensor *proj_b,
                             const slip_attn_params *attn, const slip_sla_params *sla,
                             slip_tensor *out) {
    return slip::guard([&] {
        const slip::attn::Problem pr =
            slip::attn::make_problem(q, k, v, nullptr, nullptr, nullptr, attn, out, nullptr);
        refuse_causal(pr, "slip_sla_forward");
        const Sla a = make_sla(pr, route, alpha, proj_w, proj_b, sla);
        forward(a, pr.out);
    });
}

slip_status slip_sla_backward(const slip_tensor *q, const slip_tensor *k, const slip_tensor *v,
                              const slip_tensor *route, const slip_tensor *alpha,
                              const slip_tensor *proj_w, const slip_tensor *proj_b,
                              const slip_tensor *dout, const slip_attn_params *attn,
                              const slip_sla_params *sla, slip_tensor *dq, slip_tensor *dk,
                              slip_tensor *dv, slip_tensor *dalpha, slip_tensor *dproj_w,
                              slip_tensor *dproj_b) {
    return slip::guard([&] {
        // dout has q's shape; validated as "out" would be, under its own name first.
        const slip_tensor &qq = slip::require_cpu_dense(q, "q", SLIP_DTYPE_F32);
        const slip_tensor &go = slip::require_cpu_dense(dout, "dout", SLIP_DTYPE_F32);
        slip::require_shape(go, "dout", qq.ndim, qq.shape);
        slip_tensor dout_view = go;
        const slip::attn::Problem pr =
            slip::attn::make_problem(q, k, v, nullptr, nullptr, nullptr, attn, &dout_view, nullptr);
        refuse_causal(pr, "slip_sla_backward");
        const Sla a = make_sla(pr, route, alpha, proj_w, proj_b, sla);
        const slip_tensor &kk = *k, &vv = *v;
        slip::require_cpu_dense(dq, "dq", SLIP_DTYPE_F32);
        slip::require_shape(*dq, "dq", qq.ndim, qq.shape);
        slip::require_cpu_dense(dk, "dk", SLIP_DTYPE_F32);
        slip::require_shape(*dk, "dk", kk.ndim, kk.shape);
        slip::require_cpu_dense(dv, "dv", SLIP_DTYPE_F32);
        slip::require_shape(*dv, "dv", vv.ndim, vv.shape);
        Grads g;
        g.dq = slip::data_as<float>(*dq);
        g.dk = slip::data_as<float>(*dk);
        g.dv = slip::data_as<float>(*dv);
        g.dalpha = slip::data_as<float>(
            slip::require_shape(dalpha, "dalpha", SLIP_DTYPE_F32, {pr.heads_q}));
        g.dproj_w = slip::data_as<float>(
            slip::require_shape(dproj_w, "dproj_w", SLIP_DTYPE_F32, {pr.dim, pr.dim}));
        g.dproj_b = dproj_b ? slip::data_as<float>(slip::require_shape(
                                  dproj_b, "dproj_b", SLIP_DTYPE_F32, {pr.dim}))
                            : nullptr;
        backward(a, slip::data_as<const float>(go), g);
    });
}

}  // extern "C"
