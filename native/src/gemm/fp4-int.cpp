// The integer NVFP4 path (fp4-int.h): the weight's packing, its FP32 decode for ISA levels
// without VNNI, and the driver.
//
// vpdpbusd multiplies unsigned by signed bytes. The unsigned side here is the weight, as w2 + 12
// in [0, 24], against signed activation codes: the shift adds 12 · Σ q per (row, group), which
// the quantizer computes on the way, and which enters the kernel for free as the accumulator's
// starting value (one broadcast load per row and group). Shifting the activations instead (+128,
// as W8A8 does) moves the correction to every (column, group): a vector per group to build in the
// unpack and a register copy per accumulator, on the ports vpdpbusd needs.
#include <algorithm>
#include <cstring>

#include "../base/cpu.h"
#include "../base/thread-pool.h"
#include "../quant/element.h"
#include "fp4-int.h"
#include "plan.h"

namespace slip::gemm {

namespace {

// Rows of one job are swept per panel, so its A block (rows x kKGroups x 16 bytes) should stay in
// L2 and the unpacked panel block (kKGroups x kFp4GroupBytes = 20 KiB) in L1.
constexpr int64_t kKGroups = 32;
constexpr int64_t kRowBlock = 192;

inline uint8_t nibble(const uint8_t *codes, int64_t k, int64_t col, int64_t kk) {
    return (codes[col * (k / 2) + kk / 2] >> (4 * (kk & 1))) & 15;
}

}  // namespace

void pack_fp4(const uint8_t *codes, const uint8_t *scales, float global, int64_t n, int64_t k, PackedFp4 &out) {
    const int64_t groups = k / kFp4Group, panels = ceil_div(n, NR);
    out.n = n;
    out.k = k;
    out.groups = groups;
    out.global = global;
    out.codes = Aligned<uint8_t>(panels * groups * 4 * 64);
    out.scales.assign(static_cast<size_t>(panels * groups * NR), 0);
    for (int c = 0; c < 256; ++c)
        out.scale_lut[c] = element::decode(static_cast<uint8_t>(c), element::kE4M3) / global * 0.5f;
    parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
            for (int64_t g = 0; g < groups; ++g) {
                uint8_t *d = out.codes.data() + (p * groups + g) * 4 * 64;
                for (int s = 0; s < 4; ++s)
                    for (int i = 0; i < 64; ++i) {
                        const int64_t lo = p * NR + i / 4, hi = lo + 16, kk = g * 16 + s * 4 + i % 4;
                        d[s * 64 + i] = static_cast<uint8_t>((lo < n ? nibble(codes, k, lo, kk) : 0) |
                                                             (hi < n ? nibble(codes, k, hi, kk) : 0) << 4);
                    }
                for (int j = 0; j < NR; ++j)
                    if (p * NR + j < n) out.scales[(p * groups + g) * NR + j] = scales[(p * NR + j) * groups + g];
            }
    });
}

void PackedFp4::decode(int64_t n0, int64_t nc, int64_t k0, int64_t kc, float *dst) const {
    if (NR == 32 && isa_active() >= SLIP_ISA_AVX512) return decode_fp4_avx512(*this, n0, nc, k0, kc, dst);
    float e2m1[16];
    for (int c = 0; c < 16; ++c) e2m1[c] = 2.0f * element::decode(static_cast<uint8_t>(c), element::kE2M1);
    // w2 · ws = e2m1 · (fp8 / global): the value NibbleSource decodes, bit for bit.
    for (int64_t p = 0; p < ceil_div(nc, NR); ++p) {
        const int64_t panel = n0 / NR + p;
        float *d = dst + p * kc * NR;
        for (int64_t kk = 0; kk < kc; ++kk) {
            const int64_t kg = k0 + kk, g = kg / 16;
            const uint8_t *step = codes.data() + ((panel * groups + g) * 4 + (kg % 16) / 4) * 64 + kg % 4;
            const uint8_t *sc = scales.data() + (panel * groups + g) * NR;
            for (int j = 0; j < NR; ++j) {
                const uint8_t byte = step[(j % 16) * 4];
                d[kk * NR + j] = e2m1[j < 16 ? byte & 15 : byte >> 4] * scale_lut[sc[j]];
            }
        }
    }
}

void run_fp4(const float *x, int64_t m, const PackedFp4 &w, bool a4, float act_global, const float *bias,
             float *y) {
    const int64_t n = w.n, k = w.k, groups = w.groups;
    if (m == 0 || n == 0) return;
    if (isa_active() < SLIP_ISA_AVX512VNNI || k == 0) {
        // The quantized activations, decoded (W4A8: the integer codes, their scale in the
        // epilogue), times the decoded weight on the FP32 kernels.
        Aligned<float> xq(m * k);
        std::vector<float> xs;
        Epilogue ep;
        ep.bias = bias;
        if (a4) {
            quantize_nvfp4_rows(x, m, k, act_global, xq.data());
        } else {
            xs.resize(static_cast<size_t>(m));
            quantize_i8_rows(x, m, k, xq.data(), xs.data());
            ep.row_scale = xs.data();
        }
        return run_f32(xq.data(), m, w, ep, y);
    }

    // The quantized activations live in a buffer the calling thread keeps across calls: freed
    // each call, these few hundred KiB made glibc trim the heap and fault the pages back in on
    // the next call (a sixth of a 1024 x 256 x 256 W4A4 run). The codes come first, then the
    // records, then the W4A8 row scales, each 64-byte aligned.
    const int64_t meta_n = ceil_div(m, kFp4Rows) * groups * fp4_meta_stride(a4);
    const int64_t q_bytes = ceil_div(m * k, 64) * 64, meta_bytes = ceil_div(meta_n * 4, 64) * 64;
    const int64_t need = q_bytes + meta_bytes + (a4 ? 0 : m * 4);
    thread_local Aligned<uint8_t> scratch;
    if (scratch.n < need) scratch = Aligned<uint8_t>(need);
    int8_t *aq = reinterpret_cast<int8_t *>(scratch.data());
    int32_t *meta = reinterpret_cast<int32_t *>(scratch.data() + q_bytes);
    float *as = reinterpret_cast<float *>(scratch.data() + q_bytes + meta_bytes);
    float out_scale = 1.0f;
    if (a4) out_scale = 0.5f / quantize_nvfp4_codes(x, m, k, act_global, aq, meta);
    else quantize_i8_codes(x, m, k, aq, meta, as);

    // Jobs: column blocks first (each unpacks its panels once per K block for all its rows), then
    // row blocks until every thread has about two jobs.
    const int64_t threads = num_threads(), panels = ceil_div(n, NR);
    const int64_t nc_panels = std::clamp<int64_t>(ceil_div(panels, 2 * threads), 1, 32);
    const int64_t col_jobs = ceil_div(panels, nc_panels);
    const int64_t row_blocks = ceil_div(m, kRowBlock);
    const int64_t row_jobs = std::min(row_blocks, ceil_div(2 * threads, col_jobs));
    const int64_t rows_per_job = ceil_div(row_blocks, row_jobs) * kRowBlock;

    parallel_for(row_jobs * col_jobs, 1, [&](int64_t j0, int64_t j1) {
        Aligned<uint8_t> buf(kKGroups * kFp4GroupBytes);
        for (int64_t job = j0; job < j1; ++job) {
            const int64_t i0 = (job / col_jobs) * rows_per_job, i1 = std::min(m, i0 + rows_per_job);
            const int64_t p0 = (job % col_jobs) * nc_panels, p1 = std::min(panels, p0 + nc_panels);
            if (i0 >= i1) continue;
            for (int64_t g0 = 0; g0 < groups; g0 += kKGroups) {
                const int64_t gc = std::min(kKGroups, groups - g0);
                for (int64_t p = p0; p < p1; ++p) {
                    unpack_fp4_avx512vnni(w, p, g0, gc, buf.data());
                    Fp4Tile t;
                    t.groups = gc;
                    t.lda = k;
                    t.a4 = a4;
                    t.b = buf.data();
                    t.ldc = n;
                    t.nr = static_cast<int>(std::min<int64_t>(NR, n - p * NR));
                    t.accumulate = g0 > 0;
                    t.last = g0 + gc == groups;
                    t.bias = bias ? bias + p * NR : nullptr;
                    t.out_scale = out_scale;
                    for (int64_t ir = i0; ir < i1; ir += kFp4Rows) {
                        t.mr = static_cast<int>(std::min<int64_t>(kFp4Rows, i1 - ir));
                        t.a = aq + ir * k + g0 * kFp4Group;
                        t.meta = meta + fp4_meta_row(ir, groups, a4) + g0 * fp4_meta_stride(a4);
                        t.row_scale = a4 ? nullptr : as + ir;
                        t.c = y + ir * n + p * NR;
                        kernel_fp4_avx512vnni(t);
                    }
                }
            }
        }
    });
}

}  // namespace slip::gemm
