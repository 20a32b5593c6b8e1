// ABI of tensor quantization: parameter defaults, output shapes, and the validation that turns
// every bad argument into "expected X for <argument>, got Y" before a kernel runs.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/kernels.h"
#include "base/tensor.h"
#include "base/thread-pool.h"
#include "common.h"
#include "packing.h"

namespace slip::quant {
namespace {

const KernelName kQuantize("quantize");
const KernelName kDequantize("dequantize");

const char *format_name(int f) {
    static const char *names[] = {"INT8", "INT4", "FP8_E4M3", "FP8_E5M2",
                                  "NVFP4", "NVFP4_TJ2", "MXFP4", "F32"};
    return f >= 0 && f <= SLIP_FORMAT_F32 ? names[f] : "unknown";
}

const char *granularity_name(int g) {
    static const char *names[] = {"TENSOR", "ROW", "GROUP", "BLOCK"};
    return g >= 0 && g <= SLIP_GRANULARITY_BLOCK ? names[g] : "unknown";
}

struct Dims {
    int32_t ndim = 0;
    int64_t d[2] = {0, 0};
};

struct Shapes {
    Dims codes, scales, global;
};

std::string dims_string(int32_t ndim, const int64_t *shape) {
    std::string s = "[";
    for (int32_t i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// The block size a format fixes, 0 when the caller chooses it.
int64_t fixed_group(int format) {
    switch (format) {
        case SLIP_FORMAT_NVFP4:
        case SLIP_FORMAT_NVFP4_TJ2: return 16;
        case SLIP_FORMAT_MXFP4: return 32;
        default: return 0;
    }
}

void require_k_multiple(int64_t k, int64_t m, const char *why, int32_t ndim, const int64_t *shape,
                        const char *name) {
    if (k % m != 0)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected a last dimension (K) divisible by %lld for %s (%s), got %s",
                    static_cast<long long>(m), name, why, dims_string(ndim, shape).c_str()));
}

// Checks params against a tensor of `shape` ([..., K]); `name` is the tensor the shape is from.
Problem make_problem(const slip_quant_params *p, int32_t ndim, const int64_t *shape,
                     const char *name) {
    require_not_null(p, "params");
    const int f = p->format;
    if (f < 0 || f > SLIP_FORMAT_F32)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a slip_quant_format (0 to 6) for params.format, got %d", f));
    if (f == SLIP_FORMAT_F32)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             "expected a quantized format for params.format, got F32 (F32 is only a slip_qweight "
             "format)");
    if (p->rounding != SLIP_ROUND_NEAREST_EVEN && p->rounding != SLIP_ROUND_STOCHASTIC)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected SLIP_ROUND_NEAREST_EVEN (0) or SLIP_ROUND_STOCHASTIC (1) for "
                    "params.rounding, got %d", p->rounding));
    if (p->flags & ~(SLIP_QUANT_ALLOW_NONFINITE | SLIP_QUANT_FULL_INT_RANGE | SLIP_QUANT_MSE_SCALES))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected only SLIP_QUANT_* bits (0x7) in params.flags, got 0x%x", p->flags));
    if ((p->flags & SLIP_QUANT_MSE_SCALES) && (f != SLIP_FORMAT_NVFP4 || p->rounding != SLIP_ROUND_NEAREST_EVEN))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected SLIP_QUANT_MSE_SCALES only with the NVFP4 format and nearest-even rounding, got "
                    "format %d, rounding %d",
                    p->format, p->rounding));
    if ((p->flags & SLIP_QUANT_FULL_INT_RANGE) && p->format != SLIP_FORMAT_INT8 &&
        p->format != SLIP_FORMAT_INT4)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected SLIP_QUANT_FULL_INT_RANGE only with the INT8 or INT4 format, got "
                    "format %d",
                    p->format));
    if (!(p->global_scale >= 0.0f) || std::isinf(p->global_scale))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a finite non-negative value for params.global_scale, got %g",
                    static_cast<double>(p->global_scale)));
    if (p->global_scale > 0.0f && f != SLIP_FORMAT_NVFP4)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected 0 for params.global_scale (only NVFP4 takes a caller's global "
                    "scale), got %g with %s", static_cast<double>(p->global_scale),
                    format_name(f)));
    if (ndim < 1 || ndim > SLIP_MAX_DIMS)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected 1 to %d dimensions for %s, got %d", SLIP_MAX_DIMS, name, ndim));
    require_not_null(shape, "shape");
    Problem pr{*p, 1, shape[ndim - 1]};
    for (int32_t i = 0; i < ndim; ++i) {
        if (shape[i] < 0)
            fail(SLIP_STATUS_SHAPE_MISMATCH,
                 format("expected non-negative extents for %s, got %s", name,
                        dims_string(ndim, shape).c_str()));
        if (i + 1 < ndim) pr.rows *= shape[i];
    }
    const int64_t k = pr.cols;
    const bool scaled = f == SLIP_FORMAT_INT8 || f == SLIP_FORMAT_FP8_E4M3 || f == SLIP_FORMAT_FP8_E5M2;
    if (scaled) {
        if (p->granularity < 0 || p->granularity > SLIP_GRANULARITY_BLOCK)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected a slip_granularity (0 to 3) for params.granularity, got %d",
                        p->granularity));
        if (p->granularity == SLIP_GRANULARITY_BLOCK && (p->block_rows < 1 || p->block_cols < 1))
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected positive params.block_rows and params.block_cols, got %lld x %lld",
                        static_cast<long long>(p->block_rows),
                        static_cast<long long>(p->block_cols)));
    } else if (p->granularity != SLIP_GRANULARITY_GROUP) {
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected SLIP_GRANULARITY_GROUP for params.granularity (%s is group-wise), "
                    "got %s", format_name(f), granularity_name(p->granularity)));
    }
    if (p->granularity == SLIP_GRANULARITY_GROUP) {
        const int64_t fixed = fixed_group(f);
        if (fixed && p->group_size != fixed)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected %lld for params.group_size (fixed by %s), got %lld",
                        static_cast<long long>(fixed), format_name(f),
                        static_cast<long long>(p->group_size)));
        if (p->group_size < 1)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected a positive params.group_size, got %lld",
                        static_cast<long long>(p->group_size)));
        require_k_multiple(k, p->group_size, "one scale per params.group_size columns", ndim,
                           shape, name);
    }
    if (f == SLIP_FORMAT_NVFP4_TJ2)
        require_k_multiple(k, 128, "NVFP4_TJ2 outer blocks are 128 columns", ndim, shape, name);
    return pr;
}

Shapes shapes_of(const Problem &pr) {
    const int64_t rows = pr.rows, k = pr.cols;
    Shapes s;
    switch (pr.p.format) {
        case SLIP_FORMAT_INT8:
        case SLIP_FORMAT_FP8_E4M3:
        case SLIP_FORMAT_FP8_E5M2: {
            s.codes = {2, {rows, k}};
            const ScaleGrid g = scale_grid(pr);
            if (pr.p.granularity == SLIP_GRANULARITY_TENSOR) s.scales = {1, {1, 0}};
            else s.scales = {2, {g.row_groups, g.per_row}};
            break;
        }
        case SLIP_FORMAT_INT4:
            s.codes = {2, {rows, ct_words(k, 4)}};
            s.scales = {2, {rows, k / pr.p.group_size}};
            break;
        case SLIP_FORMAT_NVFP4:
            s.codes = {2, {rows, k / 2}};
            s.scales = {2, {rows, k / 16}};
            s.global = {1, {1, 0}};
            break;
        case SLIP_FORMAT_NVFP4_TJ2:
            s.codes = {2, {rows, k / 2}};
            s.scales = {2, {rows, k / 16}};
            s.global = {2, {rows, k / 128}};
            break;
        default:  // MXFP4
            s.codes = {2, {rows, k / 2}};
            s.scales = {2, {rows, k / 32}};
            break;
    }
    return s;
}

slip_dtype codes_dtype(int f) {
    switch (f) {
        case SLIP_FORMAT_INT8: return SLIP_DTYPE_I8;
        case SLIP_FORMAT_INT4: return SLIP_DTYPE_I32;
        case SLIP_FORMAT_FP8_E4M3: return SLIP_DTYPE_F8_E4M3;
        case SLIP_FORMAT_FP8_E5M2: return SLIP_DTYPE_F8_E5M2;
        default: return SLIP_DTYPE_U8;  // packed E2M1 pairs
    }
}

slip_dtype scales_dtype(int f) {
    switch (f) {
        case SLIP_FORMAT_NVFP4:
        case SLIP_FORMAT_NVFP4_TJ2: return SLIP_DTYPE_F8_E4M3;
        case SLIP_FORMAT_MXFP4: return SLIP_DTYPE_U8;  // E8M0 exponents
        default: return SLIP_DTYPE_F32;
    }
}

bool has_global(int f) { return f == SLIP_FORMAT_NVFP4 || f == SLIP_FORMAT_NVFP4_TJ2; }

const slip_tensor &require_output(const slip_tensor *t, const char *name, slip_dtype dtype,
                                  const Dims &d) {
    const slip_tensor &r = require_cpu_dense(t, name, dtype);
    require_shape(r, name, d.ndim, d.d);
    return r;
}

// NaN/Inf are refused unless the caller allows them; the message gives the first one.
void check_finite(const float *x, const Problem &pr) {
    if (pr.allow_nonfinite()) return;
    const int64_t n = pr.rows * pr.cols;
    const int64_t none = std::numeric_limits<int64_t>::max();
    std::vector<int64_t> first(static_cast<size_t>(pr.rows), none);
    parallel_for(pr.rows, row_grain(pr.cols), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t c = 0; c < pr.cols; ++c)
                if (!std::isfinite(x[r * pr.cols + c])) {
                    first[r] = r * pr.cols + c;
                    break;
                }
    });
    for (int64_t r = 0; r < pr.rows && n > 0; ++r)
        if (first[r] != none) {
            const int64_t i = first[r];
            fail(SLIP_STATUS_NON_FINITE,
                 format("expected finite values for x, got %s at index %lld (row %lld, column "
                        "%lld); set SLIP_QUANT_ALLOW_NONFINITE in params.flags to quantize anyway",
                        std::isnan(x[i]) ? "NaN" : x[i] > 0 ? "+Inf" : "-Inf",
                        static_cast<long long>(i), static_cast<long long>(r),
                        static_cast<long long>(i % pr.cols)));
        }
}

}  // namespace
}  // namespace slip::quant

extern "C" {

SLIP_API slip_status slip_quant_params_init(slip_quant_params *p, slip_quant_format format) {
    using namespace slip;
    return guard([&] {
        require_not_null(p, "p");
        if (format < 0 || format > SLIP_FORMAT_F32)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 slip::format("expected a slip_quant_format (0 to 7) for format, got %d",
                              static_cast<int>(format)));
        *p = slip_quant_params{};
        p->format = format;
        p->granularity = SLIP_GRANULARITY_ROW;
        p->block_rows = 128;
        p->block_cols = 128;
        p->rounding = SLIP_ROUND_NEAREST_EVEN;
        switch (format) {
            case SLIP_FORMAT_INT4:
                p->granularity = SLIP_GRANULARITY_GROUP;
                p->group_size = 128;
                break;
            case SLIP_FORMAT_NVFP4:
            case SLIP_FORMAT_NVFP4_TJ2:
            case SLIP_FORMAT_MXFP4:
                p->granularity = SLIP_GRANULARITY_GROUP;
                p->group_size = quant::fixed_group(format);
                break;
            default:
                p->group_size = 128;  // used only if the caller picks GROUP
                break;
        }
    });
}

SLIP_API slip_status slip_quant_shapes(const slip_quant_params *p, int32_t ndim,
                                       const int64_t *shape, int32_t *codes_ndim,
                                       int64_t *codes_shape, int32_t *scales_ndim,
                                       int64_t *scales_shape, int32_t *global_ndim,
                                       int64_t *global_shape) {
    using namespace slip;
    return guard([&] {
        const quant::Problem pr = quant::make_problem(p, ndim, shape, "shape");
        int32_t *nd[3] = {codes_ndim, scales_ndim, global_ndim};
        int64_t *sh[3] = {codes_shape, scales_shape, global_shape};
        const char *names[3][2] = {{"codes_ndim", "codes_shape"},
                                   {"scales_ndim", "scales_shape"},
                                   {"global_ndim", "global_shape"}};
        for (int i = 0; i < 3; ++i) {
            require_not_null(nd[i], names[i][0]);
            require_not_null(sh[i], names[i][1]);
        }
        const quant::Shapes s = quant::shapes_of(pr);
        const quant::Dims *d[3] = {&s.codes, &s.scales, &s.global};
        for (int i = 0; i < 3; ++i) {
            *nd[i] = d[i]->ndim;
            for (int32_t j = 0; j < d[i]->ndim; ++j) sh[i][j] = d[i]->d[j];
        }
    });
}

SLIP_API slip_status slip_quantize(const slip_tensor *x, const slip_quant_params *p,
                                   slip_tensor *codes, slip_tensor *scales, slip_tensor *global) {
    using namespace slip;
    return guard([&] {
        const slip_tensor &xt = require_cpu_dense(x, "x", SLIP_DTYPE_F32);
        const quant::Problem pr = quant::make_problem(p, xt.ndim, xt.shape, "x");
        const quant::Shapes s = quant::shapes_of(pr);
        const int f = pr.p.format;
        quant::QuantOut out{};
        out.codes = require_output(codes, "codes", quant::codes_dtype(f), s.codes).data;
        out.scales = require_output(scales, "scales", quant::scales_dtype(f), s.scales).data;
        if (quant::has_global(f))
            out.global = data_as<float>(require_output(global, "global", SLIP_DTYPE_F32, s.global));
        const float *xd = data_as<const float>(xt);
        quant::check_finite(xd, pr);
        switch (f) {
            case SLIP_FORMAT_INT4: quant::quantize_int4(pr, xd, out); break;
            case SLIP_FORMAT_NVFP4: quant::quantize_nvfp4(pr, xd, out); break;
            case SLIP_FORMAT_NVFP4_TJ2: quant::quantize_nvfp4_tj2(pr, xd, out); break;
            case SLIP_FORMAT_MXFP4: quant::quantize_mxfp4(pr, xd, out); break;
            default: quant::quantize_scaled(pr, xd, out); break;
        }
    });
}

SLIP_API slip_status slip_dequantize(const slip_tensor *codes, const slip_tensor *scales,
                                     const slip_tensor *global, const slip_quant_params *p,
                                     slip_tensor *out) {
    using namespace slip;
    return guard([&] {
        const slip_tensor &ot = require_cpu_dense(out, "out", SLIP_DTYPE_F32);
        const quant::Problem pr = quant::make_problem(p, ot.ndim, ot.shape, "out");
        const quant::Shapes s = quant::shapes_of(pr);
        const int f = pr.p.format;
        quant::DequantIn in{};
        in.codes = require_output(codes, "codes", quant::codes_dtype(f), s.codes).data;
        in.scales = require_output(scales, "scales", quant::scales_dtype(f), s.scales).data;
        if (quant::has_global(f))
            in.global = data_as<const float>(
                require_output(global, "global", SLIP_DTYPE_F32, s.global));
        if (f == SLIP_FORMAT_NVFP4 && !(in.global[0] > 0.0f && std::isfinite(in.global[0])))
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected a positive finite NVFP4 global scale for global, got %g",
                        static_cast<double>(in.global[0])));
        float *od = data_as<float>(ot);
        switch (f) {
            case SLIP_FORMAT_INT4: quant::dequantize_int4(pr, in, od); break;
            case SLIP_FORMAT_NVFP4: quant::dequantize_nvfp4(pr, in, od); break;
            case SLIP_FORMAT_NVFP4_TJ2: quant::dequantize_nvfp4_tj2(pr, in, od); break;
            case SLIP_FORMAT_MXFP4: quant::dequantize_mxfp4(pr, in, od); break;
            default: quant::dequantize_scaled(pr, in, od); break;
        }
    });
}

}  // extern "C"
