// The low-bit pieces of the SageAttention2 emulation: inner-accumulator roundings, the row
// groups that share an INT8 scale, INT8 quantization of row groups, and the per-(batch, kv head)
// preparation of K (smoothing, INT8) and V (per-channel FP8 E4M3).
#include <cmath>
#include <limits>

#include "base/thread-pool.h"
#include "quant/element.h"
#include "sage.h"

namespace slip::sage {
namespace {

// x rounded to `mbits` explicit mantissa bits with the exponent floored at emin (subnormals
// below): truncation toward zero or nearest-even. x / q is exact because q is a power of two.
double round_to(double x, int mbits, int emin, bool truncate) {
    if (x == 0.0 || !std::isfinite(x)) return x;
    int ex;
    std::frexp(x, &ex);
    const int e = ex - 1 < emin ? emin : ex - 1;
    const double q = std::ldexp(1.0, e - mbits);
    const double t = x / q;
    return (truncate ? std::trunc(t) : std::nearbyint(t)) * q;
}

}  // namespace

// The FP8 MMA accumulator keeps 13 mantissa bits and drops the rest: truncation toward zero
// (the "FP22" of SageAttention2; the FP8 tensor-core truncation measured on H100 and RTX 40xx).
// Exponent range of FP32 (8 bits, emin -126).
double round_fp22(double x) { return round_to(x, 13, -126, true); }

// IEEE binary16: 10 mantissa bits, emin -14, nearest-even; beyond 65504 it overflows to inf. The
// V bound of SA2++ keeps every partial below that, so an inf here would be a bug (callers never
// see one: the ABI refuses block_k > 64 for SAGE2PP).
double round_fp16(double x) {
    const double r = round_to(x, 10, -14, false);
    if (std::fabs(r) > 65504.0) return std::copysign(std::numeric_limits<double>::infinity(), r);
    return r;
}

float e4m3(float x) {
    const float a = element::round_magnitude(std::fabs(x), element::kE4M3, -1.0f);
    return std::signbit(x) ? -a : a;
}

int64_t q_group(int32_t granularity, int64_t r, int64_t warp_q) {
    switch (granularity) {
        case SLIP_SAGE_GRANULARITY_BLOCK: return 0;
        case SLIP_SAGE_GRANULARITY_WARP: return r / warp_q;
        default: return (r / warp_q) * 8 + r % 8;  // THREAD: 8 scales per warp tile
    }
}

int64_t q_groups_per_tile(int32_t granularity, int64_t block_q, int64_t warp_q) {
    switch (granularity) {
        case SLIP_SAGE_GRANULARITY_BLOCK: return 1;
        case SLIP_SAGE_GRANULARITY_WARP: return block_q / warp_q;
        default: return block_q / warp_q * 8;
    }
}

// K rows {2t, 2t+1} mod 8 are the B-fragment rows of thread t's quad in m16n8k32; per-block
// and per-warp both give one scale per K tile.
int64_t k_group(int32_t granularity, int64_t r) {
    return granularity == SLIP_SAGE_GRANULARITY_THREAD ? (r % 8) / 2 : 0;
}

int64_t k_groups_per_tile(int32_t granularity) {
    return granularity == SLIP_SAGE_GRANULARITY_THREAD ? 4 : 1;
}

void quantize_rows(const float *x, int64_t stride, int64_t rows, int64_t dim,
                   const std::vector<int64_t> &group, int64_t ngroups, int8_t *codes,
                   float *scale) {
    std::vector<float> amax(static_cast<size_t>(ngroups), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * stride;
        float a = amax[group[r]];
        for (int64_t c = 0; c < dim; ++c) a = std::fmax(a, std::fabs(xr[c]));
        amax[group[r]] = a;
    }
    for (int64_t r = 0; r < rows; ++r) {
        // Symmetric amax/127: SageAttention's per-block/warp/thread quantizers (not 127.5).
        const float s = amax[group[r]] / 127.0f;
        scale[r] = s;
        const float *xr = x + r * stride;
        int8_t *cr = codes + r * dim;
        for (int64_t c = 0; c < dim; ++c) cr[c] = int8_code(xr[c], s);
    }
}

std::vector<KvPrep> prepare_kv(const attn::Problem &pr, const slip_sage_params &sp,
                               int32_t granularity, bool with_v, float v_bound) {
    std::vector<KvPrep> out(static_cast<size_t>(pr.batch * pr.heads_k));
    const int64_t D = pr.dim, bk = sp.block_k;
    parallel_for(pr.batch * pr.heads_k, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int64_t b = t / pr.heads_k, hk = t % pr.heads_k;
            const attn::Seq s = pr.seq(b);
            const int64_t nk = s.nk;
            KvPrep &kp = out[static_cast<size_t>(t)];
            kp.kmean.assign(D, 0.0f);
            if (sp.smooth_k && nk > 0) {
                // The mean's own rounding is harmless: any single vector subtracted from every
                // key is exact (SA1's smooth-K), so double then FP32 is only for tidiness.
                std::vector<double> sum(D, 0.0);
                for (int64_t j = 0; j < nk; ++j) {
                    const float *kj = pr.k_row(s, hk, j);
                    for (int64_t c = 0; c < D; ++c) sum[c] += kj[c];
                }
                for (int64_t c = 0; c < D; ++c) kp.kmean[c] = static_cast<float>(sum[c] / nk);
            }
            kp.ks.resize(nk * D);
            for (int64_t j = 0; j < nk; ++j) {
                const float *kj = pr.k_row(s, hk, j);
                for (int64_t c = 0; c < D; ++c) kp.ks[j * D + c] = kj[c] - kp.kmean[c];
            }
            if (sp.quantize) {
                const int64_t gpt = k_groups_per_tile(granularity);
                std::vector<int64_t> group(nk);
                for (int64_t j = 0; j < nk; ++j)
                    group[j] = (j / bk) * gpt + k_group(granularity, j % bk);
                kp.kcodes.resize(nk * D);
                kp.kscale.resize(nk);
                quantize_rows(kp.ks.data(), D, nk, D, group, (nk + bk - 1) / bk * gpt,
                              kp.kcodes.data(), kp.kscale.data());
            }
            if (!with_v || !sp.quantize) continue;
            // V per (batch, kv head, channel): scale amax_c / 448 (SA2) or / 2.25 (SA2++),
            // then E4M3 nearest-even. No FP16 cast anywhere, so large V cannot overflow.
            kp.vscale.assign(D, 0.0f);
            for (int64_t j = 0; j < nk; ++j) {
                const float *vj = pr.v_row(s, hk, j);
                for (int64_t c = 0; c < D; ++c)
                    kp.vscale[c] = std::fmax(kp.vscale[c], std::fabs(vj[c]));
            }
            for (int64_t c = 0; c < D; ++c) kp.vscale[c] /= v_bound;
            kp.vq.resize(nk * D);
            for (int64_t j = 0; j < nk; ++j) {
                const float *vj = pr.v_row(s, hk, j);
                for (int64_t c = 0; c < D; ++c)
                    kp.vq[j * D + c] = kp.vscale[c] == 0.0f ? 0.0f : e4m3(vj[c] / kp.vscale[c]);
            }
        }
    });
    return out;
}

}  // namespace slip::sage
