// Plan construction: validates a slip_qweight against its format's table (slipstream.h) and turns
// it into what the driver consumes: packed FP32 panels, 4-bit codes expanded block by block, or
// INT8 panels with column sums.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../base/cpu.h"
#include "../base/cuda-backend.h"
#include "../base/error.h"
#include "../base/tensor.h"
#include "../quant/element.h"
#include "plan.h"

namespace slip::gemm {

void NibbleSource::decode(int64_t n0, int64_t nc, int64_t k0, int64_t kc, float *dst) const {
    // The vector decoder takes 16 k of one group at a time: groups that are multiples of 16
    // (NVFP4 16, MXFP4 32, INT4 usually 32..128; K blocks then start and end on group bounds).
    if (isa_active() >= SLIP_ISA_AVX512 && group % 16 == 0 && kc % 16 == 0 && k0 % 16 == 0)
        return decode_nibbles_avx512(*this, n0, nc, k0, kc, dst);
    // Segments start even (k0 is a multiple of KC, groups are even), so bytes split cleanly.
    const int64_t row_bytes = k / 2, groups = k / group;
    for (int64_t p = 0; p < ceil_div(nc, NR); ++p) {
        float *d = dst + p * kc * NR;
        for (int j = 0; j < NR; ++j) {
            const int64_t col = n0 + p * NR + j;
            if (col >= n0 + nc) {
                for (int64_t kk = 0; kk < kc; ++kk) d[kk * NR + j] = 0.0f;
                continue;
            }
            const uint8_t *row = bytes.data() + col * row_bytes;
            const float *f = factor.data() + col * groups;
            for (int64_t g0 = k0; g0 < k0 + kc;) {  // one run of a shared factor at a time
                const int64_t end = std::min(k0 + kc, (g0 / group + 1) * group);
                const float fg = f[g0 / group];
                float *o = d + (g0 - k0) * NR + j;
                for (int64_t i = 0; i < end - g0; i += 2) {
                    const uint8_t byte = row[(g0 + i) >> 1];
                    o[i * NR] = lut[byte & 15] * fg;
                    o[(i + 1) * NR] = lut[byte >> 4] * fg;
                }
                g0 = end;
            }
        }
    }
}

namespace {

const char *format_name(int32_t f) {
    static const char *names[] = {"INT8", "INT4", "FP8_E4M3", "FP8_E5M2", "NVFP4", "NVFP4_TJ2", "MXFP4", "F32"};
    return f >= 0 && f <= SLIP_FORMAT_F32 ? names[f] : "unknown";
}

// The [n, k] weight's K from its codes container: [n, k / per_item].
void weight_dims(const slip_tensor &codes, slip_dtype dtype, int64_t per_item, int64_t *n, int64_t *k) {
    require_cpu_dense(&codes, "w.codes", dtype);
    if (codes.ndim != 2)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected a 2-D [N, K%s] tensor for w.codes, got %s",
                    per_item == 1 ? "" : per_item == 2 ? "/2" : "/8", shape_string(codes).c_str()));
    *n = codes.shape[0];
    *k = codes.shape[1] * per_item;
}

// Float scale of element (r, c) of an INT8/FP8 weight, by granularity.
struct ScaleMap {
    const float *s = nullptr;
    int32_t gran = 0;
    int64_t per_row = 1, group = 1, br = 1, bc = 1;
    float at(int64_t r, int64_t c) const {
        switch (gran) {
            case SLIP_GRANULARITY_TENSOR: return s[0];
            case SLIP_GRANULARITY_ROW: return s[r];
            case SLIP_GRANULARITY_GROUP: return s[r * per_row + c / group];
            default: return s[(r / br) * per_row + c / bc];
        }
    }
};

ScaleMap scale_map(const slip_qweight &w, int64_t n, int64_t k) {
    const slip_quant_params &q = w.params;
    const slip_tensor &st = require_cpu_dense(&w.scales, "w.scales", SLIP_DTYPE_F32);
    ScaleMap m;
    m.s = data_as<const float>(st);
    m.gran = q.granularity;
    switch (q.granularity) {
        case SLIP_GRANULARITY_TENSOR:
            if (numel(st) != 1)
                fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected one element ([1]) for w.scales of a "
                                                        "TENSOR scale, got %s", shape_string(st).c_str()));
            break;
        case SLIP_GRANULARITY_ROW: require_shape(&w.scales, "w.scales", SLIP_DTYPE_F32, {n, 1}); break;
        case SLIP_GRANULARITY_GROUP:
            if (q.group_size <= 0 || k % q.group_size != 0)
                fail(SLIP_STATUS_INVALID_ARGUMENT,
                     format("expected w.params.group_size to divide K = %lld, got %lld",
                            static_cast<long long>(k), static_cast<long long>(q.group_size)));
            m.group = q.group_size;
            m.per_row = k / q.group_size;
            require_shape(&w.scales, "w.scales", SLIP_DTYPE_F32, {n, m.per_row});
            break;
        case SLIP_GRANULARITY_BLOCK:
            if (q.block_rows <= 0 || q.block_cols <= 0)
                fail(SLIP_STATUS_INVALID_ARGUMENT,
                     format("expected positive w.params.block_rows and block_cols, got %lld x %lld",
                            static_cast<long long>(q.block_rows), static_cast<long long>(q.block_cols)));
            m.br = q.block_rows;
            m.bc = q.block_cols;
            m.per_row = ceil_div(k, m.bc);
            require_shape(&w.scales, "w.scales", SLIP_DTYPE_F32, {ceil_div(n, m.br), m.per_row});
            break;
        default:
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected a slip_granularity (0..3) for w.params.granularity, got %d", q.granularity));
    }
    return m;
}

// NVFP4's global scale: one finite positive float.
float nvfp4_global(const slip_qweight &w) {
    const slip_tensor &gt = require_cpu_dense(&w.global, "w.global", SLIP_DTYPE_F32);
    if (numel(gt) != 1)
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected one element ([1]) for w.global, got %s",
                                                shape_string(gt).c_str()));
    const float g = data_as<const float>(gt)[0];
    if (!(std::isfinite(g) && g > 0.0f))
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a finite positive w.global, got %g", g));
    return g;
}

std::unique_ptr<PackedSource> packed_from(const float *w, int64_t n, int64_t k) {
    auto src = std::make_unique<PackedSource>();
    src->n = n;
    src->k = k;
    src->panels = Aligned<float>(ceil_div(n, NR) * NR * k);
    pack_b_f32(w, n, k, src->panels.data());
    src->packed = src->panels.data();
    return src;
}

// INT8 and FP8: decode to floats (weight-only: code * scale; dynamic FP8: the element values,
// with the per-row scale kept for the epilogue), or INT8 panels for W8A8.
void plan_int8_fp8(const slip_qweight &w, bool dynamic, Plan &pl) {
    const int32_t f = w.params.format;
    const slip_dtype dt = f == SLIP_FORMAT_INT8 ? SLIP_DTYPE_I8
                          : f == SLIP_FORMAT_FP8_E4M3 ? SLIP_DTYPE_F8_E4M3 : SLIP_DTYPE_F8_E5M2;
    int64_t n, k;
    weight_dims(w.codes, dt, 1, &n, &k);
    pl.n = n;
    pl.k = k;
    const ScaleMap sm = scale_map(w, n, k);
    const uint8_t *codes = data_as<const uint8_t>(w.codes);
    float lut[256];
    for (int c = 0; c < 256; ++c)
        lut[c] = f == SLIP_FORMAT_INT8 ? static_cast<float>(static_cast<int8_t>(c))
                                       : element::decode(static_cast<uint8_t>(c),
                                                         f == SLIP_FORMAT_FP8_E4M3 ? element::kE4M3 : element::kE5M2);
    if (dynamic && sm.gran != SLIP_GRANULARITY_TENSOR && sm.gran != SLIP_GRANULARITY_ROW)
        fail(SLIP_STATUS_UNSUPPORTED,
             format("expected TENSOR or ROW weight scales (w.params.granularity 0 or 1) with dynamic "
                    "activations, so the scale factors out of the sum; got %d", sm.gran));
    std::vector<float> row_scale(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) row_scale[r] = n ? sm.at(r, 0) : 0.0f;

    if (dynamic && f == SLIP_FORMAT_INT8) {
        if (k > 65536)
            fail(SLIP_STATUS_UNSUPPORTED, format("expected K <= 65536 for W8A8 (int32 accumulation), got %lld",
                                                 static_cast<long long>(k)));
        pl.path = Path::I8;
        pl.i8.n = n;
        pl.i8.k = k;
        pl.i8.panels = Aligned<int8_t>(ceil_div(n, NR) * NR * ceil_div(k, 4) * 4);
        pl.i8.colsum.assign(static_cast<size_t>(n), 0);
        pl.i8.scale = row_scale;
        pack_b_i8(reinterpret_cast<const int8_t *>(codes), n, k, pl.i8.panels.data(), pl.i8.colsum.data());
        return;
    }
    std::vector<float> dec(static_cast<size_t>(n * k));
    for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c)
            dec[r * k + c] = dynamic ? lut[codes[r * k + c]] : lut[codes[r * k + c]] * sm.at(r, c);
    pl.b = packed_from(dec.data(), n, k);
    if (dynamic) {
        pl.path = Path::FP8;
        pl.e5m2 = f == SLIP_FORMAT_FP8_E5M2;
        pl.col_scale = row_scale;
    }
}

// The 4-bit formats: codes as bytes, one float factor per group. integer (NVFP4 only): the
// integer path's PackedFp4 instead.
void plan_nibbles(const slip_qweight &w, bool integer, Plan &pl) {
    const int32_t f = w.params.format;
    int64_t n, k;
    weight_dims(w.codes, f == SLIP_FORMAT_INT4 ? SLIP_DTYPE_I32 : SLIP_DTYPE_U8, f == SLIP_FORMAT_INT4 ? 8 : 2, &n, &k);
    const int64_t g = f == SLIP_FORMAT_INT4 ? w.params.group_size : f == SLIP_FORMAT_MXFP4 ? 32 : 16;
    if (g <= 0 || g % 2 != 0 || k % g != 0)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected K (%lld, from w.codes) to be a multiple of the %s group size %lld",
                    static_cast<long long>(k), format_name(f), static_cast<long long>(g)));
    const int64_t groups = k / g;
    pl.n = n;
    pl.k = k;
    if (integer) {
        const uint8_t *s =
            data_as<const uint8_t>(require_shape(&w.scales, "w.scales", SLIP_DTYPE_F8_E4M3, {n, groups}));
        auto packed = std::make_unique<PackedFp4>();
        pack_fp4(data_as<const uint8_t>(w.codes), s, nvfp4_global(w), n, k, *packed);
        pl.b = std::move(packed);
        return;
    }
    auto src = std::make_unique<NibbleSource>();
    src->n = n;
    src->k = k;
    src->group = g;
    src->bytes.resize(static_cast<size_t>(n * k / 2));
    if (!src->bytes.empty()) std::memcpy(src->bytes.data(), w.codes.data, src->bytes.size());
    src->factor.resize(static_cast<size_t>(n * groups));
    for (int c = 0; c < 16; ++c)
        src->lut[c] = f == SLIP_FORMAT_INT4 ? static_cast<float>(c - 8) : element::decode(static_cast<uint8_t>(c), element::kE2M1);

    if (f == SLIP_FORMAT_INT4) {
        const float *s = data_as<const float>(require_shape(&w.scales, "w.scales", SLIP_DTYPE_F32, {n, groups}));
        std::memcpy(src->factor.data(), s, src->factor.size() * sizeof(float));
    } else if (f == SLIP_FORMAT_MXFP4) {
        const uint8_t *s = data_as<const uint8_t>(require_shape(&w.scales, "w.scales", SLIP_DTYPE_U8, {n, groups}));
        for (size_t i = 0; i < src->factor.size(); ++i) src->factor[i] = element::decode_e8m0(s[i]);
    } else {  // NVFP4 (global divisor) and NVFP4_TJ2 (outer multiplier per 128 columns)
        const uint8_t *s = data_as<const uint8_t>(require_shape(&w.scales, "w.scales", SLIP_DTYPE_F8_E4M3, {n, groups}));
        const bool tj2 = f == SLIP_FORMAT_NVFP4_TJ2;
        if (tj2 && k % 128 != 0)
            fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected K to be a multiple of 128 for NVFP4_TJ2, got %lld",
                                                    static_cast<long long>(k)));
        const float *gv = nullptr;
        if (tj2) {
            const slip_tensor &gt = require_cpu_dense(&w.global, "w.global", SLIP_DTYPE_F32);
            require_shape(gt, "w.global", 2, std::vector<int64_t>{n, k / 128}.data());
            gv = data_as<const float>(gt);
        }
        const float g1 = tj2 ? 0.0f : nvfp4_global(w);
        for (int64_t r = 0; r < n; ++r)
            for (int64_t b = 0; b < groups; ++b) {
                const float sb = element::decode(s[r * groups + b], element::kE4M3);
                src->factor[r * groups + b] = tj2 ? gv[r * (k / 128) + b / 8] * sb : sb / g1;
            }
    }
    pl.b = std::move(src);
}

}  // namespace

std::unique_ptr<Plan> build_plan(const slip_qweight *w, const slip_linear_params *p) {
    require_not_null(w, "w");
    // The weight's device picks the backend (w.global is not looked at: formats without one may
    // leave it unset).
    if (cuda::any_on_device({&w->codes, &w->scales})) {
        auto pl = std::make_unique<Plan>();
        pl->format = w->params.format;
        pl->cuda = cuda::linear_plan_create(w, p);
        return pl;
    }
    slip_linear_params defaults{};
    if (!p) p = &defaults;
    if (p->act_quant < SLIP_ACT_NONE || p->act_quant > SLIP_ACT_FP8)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected SLIP_ACT_NONE (0), SLIP_ACT_DYNAMIC (1), SLIP_ACT_INT8 (2), SLIP_ACT_BF16 (3) or "
                    "SLIP_ACT_FP8 (4) for p.act_quant, got %d",
                    p->act_quant));
    if (!(std::isfinite(p->act_global_scale) && p->act_global_scale >= 0.0f))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a finite, non-negative p.act_global_scale, got %g", p->act_global_scale));
    const bool int8 = p->act_quant == SLIP_ACT_INT8, bf16 = p->act_quant == SLIP_ACT_BF16;
    const bool dynamic = p->act_quant == SLIP_ACT_DYNAMIC || int8 || bf16;
    const int32_t f = w->params.format;
    if (p->act_quant == SLIP_ACT_FP8)
        fail(SLIP_STATUS_UNSUPPORTED,
             format("expected an NVFP4 weight on a CUDA device for p.act_quant SLIP_ACT_FP8 (FP8 activations "
                    "against NVFP4 run on CUDA only), got a %s weight on the CPU",
                    format_name(f)));
    auto pl = std::make_unique<Plan>();
    pl->format = f;
    const bool has_dynamic = f == SLIP_FORMAT_INT8 || f == SLIP_FORMAT_FP8_E4M3 ||
                             f == SLIP_FORMAT_FP8_E5M2 || f == SLIP_FORMAT_NVFP4;
    if (int8 && f != SLIP_FORMAT_INT8 && f != SLIP_FORMAT_NVFP4)
        fail(SLIP_STATUS_UNSUPPORTED,
             format("expected an INT8 or NVFP4 weight for p.act_quant SLIP_ACT_INT8 (integer activations "
                    "need weight codes that are exact small integers), got format %s", format_name(f)));
    if (bf16 && f != SLIP_FORMAT_NVFP4)
        fail(SLIP_STATUS_UNSUPPORTED,
             format("expected an NVFP4 weight for p.act_quant SLIP_ACT_BF16 (the weight must be exact in BF16), "
                    "got format %s", format_name(f)));
    if (dynamic && !has_dynamic)
        fail(SLIP_STATUS_UNSUPPORTED,
             format("expected p.act_quant SLIP_ACT_NONE for a %s weight (it has no activation "
                    "scheme), got SLIP_ACT_DYNAMIC", format_name(f)));
    switch (f) {
        case SLIP_FORMAT_F32: {
            int64_t n, k;
            weight_dims(w->codes, SLIP_DTYPE_F32, 1, &n, &k);
            pl->n = n;
            pl->k = k;
            pl->b = packed_from(data_as<const float>(w->codes), n, k);
            break;
        }
        case SLIP_FORMAT_INT8:
        case SLIP_FORMAT_FP8_E4M3:
        case SLIP_FORMAT_FP8_E5M2: plan_int8_fp8(*w, dynamic, *pl); break;
        case SLIP_FORMAT_INT4:
        case SLIP_FORMAT_NVFP4:
        case SLIP_FORMAT_NVFP4_TJ2:
        case SLIP_FORMAT_MXFP4:
            plan_nibbles(*w, dynamic, *pl);
            if (dynamic) {
                pl->path = bf16 ? Path::NVFP4_BF16 : int8 ? Path::NVFP4_A8 : Path::NVFP4_A4;
                pl->act_global = p->act_global_scale;
            }
            break;
        default:
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected a slip_quant_format (0..7) for w.params.format, got %d", f));
    }
    return pl;
}

}  // namespace slip::gemm
