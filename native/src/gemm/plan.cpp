// slip_linear_plan_create / run / free and slip_linear: the run-time half of a plan (activation
// quantization, then one of the two drivers).
#include <vector>

#include "../base/cuda-backend.h"
#include "../base/error.h"
#include "../base/kernels.h"
#include "../base/tensor.h"
#include "fp4-bf16.h"
#include "plan.h"

namespace {
slip::KernelName k_int8("linear_int8"), k_fp8("linear_fp8"), k_int4("linear_int4"),
    k_nvfp4("linear_nvfp4"), k_mxfp4("linear_mxfp4");

// path and act_global: the plan's own, or another activation mode its weight serves
// (slip_linear_plan_run_as).
void run_plan(const slip::gemm::Plan &pl, slip::gemm::Path path, float act_global, const slip_tensor *x,
              const slip_tensor *bias, slip_tensor *y) {
    using namespace slip;
    using namespace slip::gemm;
    const slip_tensor &xt = require_cpu_dense(x, "x", SLIP_DTYPE_F32);
    if (xt.ndim != 2 || xt.shape[1] != pl.k)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected shape [M, %lld] for x, got %s",
                                                static_cast<long long>(pl.k), shape_string(xt).c_str()));
    const int64_t m = xt.shape[0], k = pl.k;
    require_shape(y, "y", SLIP_DTYPE_F32, {m, pl.n});
    if (bias) require_shape(bias, "bias", SLIP_DTYPE_F32, {pl.n});
    if (xt.data == y->data && m * k > 0)
        fail(SLIP_STATUS_INVALID_ARGUMENT, "expected y not to alias x");
    const float *xd = data_as<const float>(xt);
    const float *bd = bias ? data_as<const float>(*bias) : nullptr;
    float *yd = data_as<float>(*y);

    Epilogue ep;
    ep.bias = bd;
    switch (path) {
        case Path::F32: return run_f32(xd, m, *pl.b, ep, yd);
        case Path::I8: return run_i8(xd, m, pl.i8, bd, yd);
        // The quantized copies of X are written in full: Aligned skips std::vector's zero fill.
        case Path::FP8: {
            Aligned<float> xq(m * k);
            std::vector<float> xs(static_cast<size_t>(m));
            quantize_fp8_rows(xd, m, k, pl.e5m2, xq.data(), xs.data());
            ep.row_scale = xs.data();
            ep.col_scale = pl.col_scale.data();
            return run_f32(xq.data(), m, *pl.b, ep, yd);
        }
        case Path::NVFP4_BF16: return run_fp4_bf16(xd, m, static_cast<const PackedFp4 &>(*pl.b), bd, yd);
        case Path::NVFP4_A8:
        case Path::NVFP4_A4:
            return run_fp4(xd, m, static_cast<const PackedFp4 &>(*pl.b), path == Path::NVFP4_A4, act_global, bd, yd);
    }
}

}  // namespace

extern "C" {

SLIP_API slip_status slip_linear_params_init(slip_linear_params *p) {
    return slip::guard([&] {
        slip::require_not_null(p, "p");
        *p = slip_linear_params{};
        p->act_quant = SLIP_ACT_NONE;
    });
}

SLIP_API slip_status slip_linear_plan_create(const slip_qweight *w, const slip_linear_params *p,
                                             slip_linear_plan_t *out) {
    return slip::guard([&] {
        slip::require_not_null(out, "out");
        *out = nullptr;
        auto plan = slip::gemm::build_plan(w, p);
        plan->act_quant = p ? p->act_quant : SLIP_ACT_NONE;
        *out = new slip_linear_plan_s{std::move(plan)};
    });
}

SLIP_API slip_status slip_linear_plan_run(slip_linear_plan_t plan, const slip_tensor *x,
                                          const slip_tensor *bias, slip_tensor *y) {
    return slip::guard([&] {
        slip::require_not_null(plan, "plan");
        const slip::gemm::Plan &pl = *plan->plan;
        if (pl.cuda) {
            slip_linear_params own{};
            own.act_quant = pl.act_quant;
            return slip::cuda::linear_plan_run(pl.cuda.get(), &own, x, bias, y);
        }
        run_plan(pl, pl.path, pl.act_global, x, bias, y);
    });
}

SLIP_API slip_status slip_linear_plan_run_as(slip_linear_plan_t plan, const slip_linear_params *p,
                                             const slip_tensor *x, const slip_tensor *bias, slip_tensor *y) {
    return slip::guard([&] {
        using namespace slip::gemm;
        slip::require_not_null(plan, "plan");
        slip::require_not_null(p, "p");
        const Plan &pl = *plan->plan;
        if (pl.cuda) return slip::cuda::linear_plan_run(pl.cuda.get(), p, x, bias, y);
        if (p->act_quant == SLIP_ACT_FP8)
            slip::fail(SLIP_STATUS_UNSUPPORTED, "expected a plan of an NVFP4 weight on a CUDA device for p.act_quant "
                                                "SLIP_ACT_FP8 (FP8 activations run on CUDA only), got a CPU plan");
        const bool fp4 = pl.path == Path::NVFP4_A8 || pl.path == Path::NVFP4_A4 || pl.path == Path::NVFP4_BF16;
        Path path = pl.path;
        if (fp4 && p->act_quant == SLIP_ACT_NONE) path = Path::F32;  // PackedFp4 decodes as a BSource
        else if (fp4 && p->act_quant == SLIP_ACT_BF16) path = Path::NVFP4_BF16;
        else if (fp4 && p->act_quant == SLIP_ACT_INT8) path = Path::NVFP4_A8;
        else if (fp4 && p->act_quant == SLIP_ACT_DYNAMIC) path = Path::NVFP4_A4;
        else if (p->act_quant != pl.act_quant)
            slip::fail(SLIP_STATUS_UNSUPPORTED,
                       slip::format("expected an NVFP4 plan made with SLIP_ACT_INT8 or SLIP_ACT_DYNAMIC (its weight serves "
                                    "NONE, BF16, INT8 and DYNAMIC activations), or p.act_quant equal to the plan's own, got "
                                    "p.act_quant %d for a plan of another kind",
                                    p->act_quant));
        run_plan(pl, path, p->act_global_scale, x, bias, y);
    });
}

SLIP_API slip_status slip_linear_plan_weight_bytes(slip_linear_plan_t plan, int64_t *bytes) {
    return slip::guard([&] {
        using namespace slip::gemm;
        slip::require_not_null(plan, "plan");
        slip::require_not_null(bytes, "bytes");
        const Plan &pl = *plan->plan;
        if (pl.cuda) {
            *bytes = slip::cuda::linear_plan_weight_bytes(pl.cuda.get());
            return;
        }
        int64_t b = static_cast<int64_t>(pl.col_scale.size() * sizeof(float));
        if (const auto *nib = dynamic_cast<const NibbleSource *>(pl.b.get()))
            b += static_cast<int64_t>(nib->bytes.size() + nib->factor.size() * sizeof(float));
        else if (const auto *packed = dynamic_cast<const PackedSource *>(pl.b.get()))
            b += packed->panels.n * static_cast<int64_t>(sizeof(float));
        else if (const auto *fp4 = dynamic_cast<const PackedFp4 *>(pl.b.get()))
            b += fp4->codes.n + static_cast<int64_t>(fp4->scales.size() + sizeof fp4->scale_lut);
        b += pl.i8.panels.n + static_cast<int64_t>(pl.i8.colsum.size() * sizeof(int32_t) + pl.i8.scale.size() * sizeof(float));
        *bytes = b;
    });
}

SLIP_API void slip_linear_plan_free(slip_linear_plan_t plan) { delete plan; }

SLIP_API slip_status slip_linear(const slip_tensor *x, const slip_qweight *w,
                                 const slip_tensor *bias, const slip_linear_params *p,
                                 slip_tensor *y) {
    return slip::guard([&] {
        auto plan = slip::gemm::build_plan(w, p);
        if (plan->cuda) {
            slip_linear_params defaults{};
            return slip::cuda::linear_plan_run(plan->cuda.get(), p ? p : &defaults, x, bias, y);
        }
        run_plan(*plan, plan->path, plan->act_global, x, bias, y);
    });
}

}  // extern "C"
