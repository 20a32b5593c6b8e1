// The attention tile kernel, written once over a vector-traits type V (dense-avx512.cpp,
// dense-avx2.cpp, dense-portable.cpp instantiate it). Include only from those files: V brings
// the ISA's intrinsics.
//
// Per query tile (FlashAttention-2's loop order, Dao 2023, arXiv 2307.08691, Alg. 1): Q is
// copied once, pre-multiplied by scale·log2(e) so scores are in log2 units and exp2 is the only
// transcendental; for each key segment S = Q Kᵀ comes from a register-blocked microkernel (MR
// query rows x up to NVMAX vectors of keys, Q broadcast, packed Kᵀ panel rows loaded), then the
// online softmax (Milakov & Gimelshein 2018, arXiv 1805.02867) rescales the running max m, sum l
// and the output accumulator O, and O += P V from a second microkernel (MR rows x up to 4
// vectors of D, P broadcast, V rows loaded). All accumulation is FP32.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "dense.h"

namespace slip::attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr double kLn2 = 0.6931471805599453;
// Row stride of the score tile: a chunk plus one vector, so a segment that starts mid-chunk
// still fits its rounded-up vectors.
constexpr int64_t kScoreStride = kChunkK + 16;

template <class V>
struct TileKernel {
    using reg = typename V::reg;
    static constexpr int W = V::W;

    template <int R, int NV>
    static void qk(const float *q, int64_t D, const float *kp, float *s) {
        reg acc[R][NV];
        for (int r = 0; r < R; ++r)
            for (int c = 0; c < NV; ++c) acc[r][c] = V::zero();
        for (int64_t d = 0; d < D; ++d) {
            reg kv[NV];
            for (int c = 0; c < NV; ++c) kv[c] = V::loadu(kp + d * kChunkK + c * W);
            for (int r = 0; r < R; ++r) {
                const reg qb = V::set1(q[r * D + d]);
                for (int c = 0; c < NV; ++c) acc[r][c] = V::fma(qb, kv[c], acc[r][c]);
            }
        }
        for (int r = 0; r < R; ++r)
            for (int c = 0; c < NV; ++c) V::storeu(s + r * kScoreStride + c * W, acc[r][c]);
    }

    template <int R, int NV>
    static void pv(const float *p, int64_t len, const float *v0, int64_t vstride, float *o,
                   int64_t ostride, const float *alpha) {
        reg acc[R][NV];
        for (int r = 0; r < R; ++r) {
            const reg a = V::set1(alpha[r]);
            for (int c = 0; c < NV; ++c) acc[r][c] = V::mul(V::loadu(o + r * ostride + c * W), a);
        }
        for (int64_t j = 0; j < len; ++j) {
            reg vv[NV];
            for (int c = 0; c < NV; ++c) vv[c] = V::loadu(v0 + j * vstride + c * W);
            for (int r = 0; r < R; ++r) {
                const reg pb = V::set1(p[r * kScoreStride + j]);
                for (int c = 0; c < NV; ++c) acc[r][c] = V::fma(pb, vv[c], acc[r][c]);
            }
        }
        for (int r = 0; r < R; ++r)
            for (int c = 0; c < NV; ++c) V::storeu(o + r * ostride + c * W, acc[r][c]);
    }

    template <int R>
    static void qk_cols(int nv, const float *q, int64_t D, const float *kp, float *s) {
        for (int c = 0; c < nv; c += V::NVMAX) {
            const int n = std::min(nv - c, V::NVMAX);
            const float *k = kp + c * W;
            float *o = s + c * W;
            if (n == 1) qk<R, 1>(q, D, k, o);
            else if (n == 2) qk<R, 2>(q, D, k, o);
            else if constexpr (V::NVMAX >= 4) {
                if (n == 3) qk<R, 3>(q, D, k, o);
                else qk<R, 4>(q, D, k, o);
            }
        }
    }

    template <int R>
    static void pv_cols(int64_t vdim, const float *p, int64_t len, const float *v0,
                        int64_t vstride, float *o, int64_t ostride, const float *alpha) {
        const int nv = static_cast<int>(vdim / W);
        for (int c = 0; c < nv; c += 4) {
            const int n = std::min(nv - c, 4);
            const float *v = v0 + c * W;
            float *oc = o + c * W;
            if (n == 1) pv<R, 1>(p, len, v, vstride, oc, ostride, alpha);
            else if (n == 2) pv<R, 2>(p, len, v, vstride, oc, ostride, alpha);
            else if (n == 3) pv<R, 3>(p, len, v, vstride, oc, ostride, alpha);
            else pv<R, 4>(p, len, v, vstride, oc, ostride, alpha);
        }
    }

    // Row blocks of MR (then the remainder) over the tile's rows.
    template <class F>
    static void by_rows(int64_t rows, F &&f) {
        int64_t r = 0;
        for (; r + V::MR <= rows; r += V::MR) f(std::integral_constant<int, V::MR>{}, r);
        switch (rows - r) {
            case 1: f(std::integral_constant<int, 1>{}, r); break;
            case 2: f(std::integral_constant<int, 2>{}, r); break;
            case 3: f(std::integral_constant<int, 3>{}, r); break;
            case 4: if constexpr (V::MR > 4) f(std::integral_constant<int, 4>{}, r); break;
            case 5: if constexpr (V::MR > 5) f(std::integral_constant<int, 5>{}, r); break;
            default: break;
        }
    }

    static void run(const Tile &t, float *scratch) {
        const Problem &pr = *t.pr;
        const Packed &pk = *t.pk;
        const int64_t D = pr.dim, rows = t.i1 - t.i0, hk = pr.kv_head(t.h);
        const int64_t vdim = (D + W - 1) / W * W;
        float *qs = scratch;                    // [kTileQ][D]
        float *S = qs + kTileQ * D;             // [kTileQ][kScoreStride]
        float *O = S + kTileQ * kScoreStride;   // [kTileQ][vdim]
        float *m = O + kTileQ * vdim, *l = m + kTileQ, *alpha = l + kTileQ;
        const float qscale = pr.scale * kLog2e;
        for (int64_t r = 0; r < rows; ++r) {
            const float *src = pr.q_row(t.s, t.h, t.i0 + r);
            for (int64_t d = 0; d < D; ++d) qs[r * D + d] = src[d] * qscale;
            m[r] = -std::numeric_limits<float>::infinity();
            l[r] = 0.0f;
        }
        std::memset(O, 0, sizeof(float) * rows * vdim);
        const float *kpan = pk.k_panels(pr, t.s, hk);
        const float *vbase = pk.v ? pk.v + ((t.s.b * pr.heads_k + hk) * pr.nk) * vdim
                                  : pr.v_row(t.s, hk, 0);
        const int64_t vstride = pk.v ? vdim : pr.sv.token;
        const int64_t off = t.s.causal_offset();
        const float ninf = -std::numeric_limits<float>::infinity();

        for (int64_t g = 0; g < t.nseg; ++g) {
            const int64_t j0 = t.seg[g].j0, len = t.seg[g].j1 - j0;
            const int nv = static_cast<int>((len + W - 1) / W);
            const float *kp = kpan + (j0 / kChunkK) * D * kChunkK + j0 % kChunkK;
            by_rows(rows, [&](auto R, int64_t r) { qk_cols<decltype(R)::value>(nv, qs + r * D, D, kp, S + r * kScoreStride); });
            for (int64_t r = 0; r < rows; ++r) {
                float *srow = S + r * kScoreStride;
                const int64_t i = t.i0 + r;
                // Keys past the segment, and (causal) past i + offset, get -inf: exp2 -> 0.
                int64_t end = len;
                if (pr.causal) end = std::max<int64_t>(0, std::min(end, i + off - j0 + 1));
                for (int64_t c = end; c < nv * W; ++c) srow[c] = ninf;
                if (const uint8_t *mu = pr.mask_u8_row(t.s, t.h, i)) {
                    for (int64_t c = 0; c < end; ++c)
                        if (!mu[j0 + c]) srow[c] = ninf;
                } else if (const float *mf = pr.mask_f32_row(t.s, t.h, i)) {
                    for (int64_t c = 0; c < end; ++c) srow[c] += mf[j0 + c] * kLog2e;
                }
                reg mx = V::set1(ninf);
                for (int c = 0; c < nv; ++c) mx = V::max(mx, V::loadu(srow + c * W));
                const float mnew = std::max(m[r], V::hmax(mx));
                if (mnew == ninf) {  // nothing attended yet: keep O and l, add zero
                    alpha[r] = 1.0f;
                    for (int c = 0; c < nv; ++c) V::storeu(srow + c * W, V::zero());
                    continue;
                }
                alpha[r] = std::exp2(m[r] - mnew);  // m = -inf -> 0
                const reg mv = V::set1(mnew);
                reg sum = V::zero();
                for (int c = 0; c < nv; ++c) {
                    const reg p = V::exp2(V::sub(V::loadu(srow + c * W), mv));
                    V::storeu(srow + c * W, p);
                    sum = V::add(sum, p);
                }
                l[r] = l[r] * alpha[r] + V::hsum(sum);
                m[r] = mnew;
            }
            const float *v0 = vbase + j0 * vstride;
            by_rows(rows, [&](auto R, int64_t r) {
                pv_cols<decltype(R)::value>(vdim, S + r * kScoreStride, len, v0, vstride, O + r * vdim, vdim, alpha + r);
            });
        }

        for (int64_t r = 0; r < rows; ++r) {
            float *dst = pr.out_row(t.s, t.h, t.i0 + r);
            // A row that attended nothing (l == 0) gets 0 and LSE -inf (slipstream.h).
            const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
            for (int64_t d = 0; d < D; ++d) dst[d] = O[r * vdim + d] * inv;
            if (float *lse = pr.lse_at(t.s, t.h, t.i0 + r))
                *lse = l[r] > 0.0f ? static_cast<float>((m[r] + std::log2(static_cast<double>(l[r]))) * kLn2)
                                   : ninf;
        }
    }
};

}  // namespace slip::attn
