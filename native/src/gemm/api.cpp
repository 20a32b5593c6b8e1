// ABI entry points of the linears: argument checks, then the drivers.
#include "../base/error.h"
#include "../base/kernels.h"
#include "../base/tensor.h"
#include "gemm.h"

namespace {
slip::KernelName k_gemm("gemm_f32");
}

extern "C" SLIP_API slip_status slip_gemm_f32(const slip_tensor *x, const slip_tensor *w,
                                              const slip_tensor *bias, slip_tensor *y) {
    return slip::guard([&] {
        using namespace slip;
        const slip_tensor &wt = require_cpu_dense(w, "w", SLIP_DTYPE_F32);
        if (wt.ndim != 2)
            fail(SLIP_STATUS_SHAPE_MISMATCH,
                 format("expected a 2-D [N, K] tensor for w, got %s", shape_string(wt).c_str()));
        const int64_t n = wt.shape[0], k = wt.shape[1];
        const slip_tensor &xt = require_cpu_dense(x, "x", SLIP_DTYPE_F32);
        if (xt.ndim != 2 || xt.shape[1] != k)
            fail(SLIP_STATUS_SHAPE_MISMATCH,
                 format("expected shape [M, %lld] for x, got %s", static_cast<long long>(k),
                        shape_string(xt).c_str()));
        const int64_t m = xt.shape[0];
        require_shape(y, "y", SLIP_DTYPE_F32, {m, n});
        if (bias) require_shape(bias, "bias", SLIP_DTYPE_F32, {n});
        gemm::gemm_f32_raw(data_as<const float>(xt), m, data_as<const float>(wt), n, k,
                           bias ? data_as<const float>(*bias) : nullptr, data_as<float>(*y));
    });
}
