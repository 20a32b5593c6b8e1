// The runtime's Linear: plans per precision over one weight, and the online Hadamard rotation of
// activations that NVFP4-stored weights were rotated with.
#include <algorithm>

#include "../base/error.h"
#include "wan.h"

namespace slip::runtime {

namespace {

slip_linear_plan_t plan_or_fail(const slip_qweight &q, int32_t act_quant, const std::string &what) {
    slip_linear_params p;
    slip_linear_params_init(&p);
    p.act_quant = act_quant;
    slip_linear_plan_t plan = nullptr;
    const slip_status st = slip_linear_plan_create(&q, &p, &plan);
    if (st != SLIP_STATUS_OK) fail(st, format("%s: %s", what.c_str(), slip_last_error()));
    return plan;
}

void check(slip_status st) {
    if (st != SLIP_STATUS_OK) fail(st, slip_last_error());
}

void check_hadamard(int64_t k, const slip_wan_model_options &o, const std::string &what) {
    if (o.hadamard_block > 0 && k % o.hadamard_block != 0)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected the input width of %s (%lld) to be a multiple of hadamard_block %d",
                                                what.c_str(), static_cast<long long>(k), o.hadamard_block));
}

}  // namespace

Linear make_linear(std::vector<float> w, int64_t n, int64_t k, std::vector<float> bias, bool lowbit,
                   const slip_wan_model_options &o, const std::string &what) {
    Linear l;
    l.n = n;
    l.k = k;
    l.bias = std::move(bias);
    const int64_t ws[2] = {n, k};
    if (!lowbit || o.weights == SLIP_WAN_WEIGHTS_F32) {
        slip_qweight q{};
        slip_quant_params_init(&q.params, SLIP_FORMAT_F32);
        slip_tensor_init(&q.codes, w.data(), SLIP_DTYPE_F32, 2, ws);
        l.plan.reset(plan_or_fail(q, SLIP_ACT_NONE, what));
        check(slip_linear_plan_weight_bytes(l.plan.get(), &l.weight_bytes));
        l.weight_bytes += n * 4;
        return l;
    }
    // NVFP4: rotate K in Hadamard blocks first, so that (x H)(W H)^T = x W^T, and the rotated
    // weight (outliers spread over the block) quantizes with less error.
    check_hadamard(k, o, what);
    if (o.hadamard_block > 0) {
        slip_tensor wt;
        slip_tensor_init(&wt, w.data(), SLIP_DTYPE_F32, 2, ws);
        check(slip_hadamard(&wt, o.hadamard_block));
    }
    slip_qweight q{};
    slip_quant_params_init(&q.params, SLIP_FORMAT_NVFP4);
    q.params.flags |= SLIP_QUANT_MSE_SCALES;  // offline, once: the least-error scale per block
    int32_t cn = 0, sn = 0, gn = 0;
    int64_t cs[8], ss[8], gs[8];
    check(slip_quant_shapes(&q.params, 2, ws, &cn, cs, &sn, ss, &gn, gs));
    auto count = [](int32_t nd, const int64_t *sh) {
        int64_t c = 1;
        for (int32_t i = 0; i < nd; ++i) c *= sh[i];
        return c;
    };
    std::vector<uint8_t> codes(static_cast<size_t>(count(cn, cs)));
    std::vector<uint8_t> scales(static_cast<size_t>(count(sn, ss)));
    std::vector<float> global(static_cast<size_t>(std::max<int64_t>(1, count(gn, gs))));
    slip_tensor_init(&q.codes, codes.data(), SLIP_DTYPE_U8, cn, cs);
    slip_tensor_init(&q.scales, scales.data(), SLIP_DTYPE_F8_E4M3, sn, ss);
    slip_tensor_init(&q.global, global.data(), SLIP_DTYPE_F32, gn, gs);
    slip_tensor wt;
    slip_tensor_init(&wt, w.data(), SLIP_DTYPE_F32, 2, ws);
    check(slip_quantize(&wt, &q.params, &q.codes, &q.scales, &q.global));
    return make_nvfp4_linear(q.codes, q.scales, q.global, n, k, std::move(l.bias), o, what);
}

Linear make_nvfp4_linear(const slip_tensor &packed, const slip_tensor &scale, const slip_tensor &global, int64_t n,
                         int64_t k, std::vector<float> bias, const slip_wan_model_options &o, const std::string &what) {
    check_hadamard(k, o, what);
    Linear l;
    l.n = n;
    l.k = k;
    l.bias = std::move(bias);
    l.hadamard = o.hadamard_block;
    slip_qweight q{};
    slip_quant_params_init(&q.params, SLIP_FORMAT_NVFP4);
    q.codes = packed;
    q.scales = scale;
    q.global = global;
    l.plan.reset(plan_or_fail(q, SLIP_ACT_INT8, what));
    l.lowbit = true;
    check(slip_linear_plan_weight_bytes(l.plan.get(), &l.weight_bytes));
    l.weight_bytes += n * 4;
    return l;
}

void Linear::run(const float *x, int64_t m, float *y, slip_wan_precision p) const {
    if (!lowbit && p != SLIP_WAN_PRECISION_FULL)
        fail(SLIP_STATUS_UNSUPPORTED,
             "expected SLIP_WAN_PRECISION_FULL for a model whose weights are FP32 (the other precisions need "
             "weights = SLIP_WAN_WEIGHTS_NVFP4), got a low-bit precision");
    // One rotation buffer per thread: blocks may run on several threads, each with its own.
    thread_local std::vector<float> rotated;
    if (hadamard > 0) {
        rotated.assign(x, x + m * k);
        slip_tensor rt;
        const int64_t rs[2] = {m, k};
        slip_tensor_init(&rt, rotated.data(), SLIP_DTYPE_F32, 2, rs);
        check(slip_hadamard(&rt, hadamard));
        x = rotated.data();
    }
    slip_tensor xt, bt, yt;
    const int64_t xs[2] = {m, k}, ys[2] = {m, n}, bs[1] = {n};
    slip_tensor_init(&xt, const_cast<float *>(x), SLIP_DTYPE_F32, 2, xs);
    slip_tensor_init(&yt, y, SLIP_DTYPE_F32, 2, ys);
    slip_tensor_init(&bt, const_cast<float *>(bias.data()), SLIP_DTYPE_F32, 1, bs);
    slip_linear_params lp;
    slip_linear_params_init(&lp);
    lp.act_quant = p == SLIP_WAN_PRECISION_INT8    ? SLIP_ACT_INT8
                   : p == SLIP_WAN_PRECISION_NVFP4 ? SLIP_ACT_DYNAMIC
                   : p == SLIP_WAN_PRECISION_BF16  ? SLIP_ACT_BF16
                                                   : SLIP_ACT_NONE;
    check(slip_linear_plan_run_as(plan.get(), &lp, &xt, bias.empty() ? nullptr : &bt, &yt));
}

}  // namespace slip::runtime
