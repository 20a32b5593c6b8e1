// The attention tile kernel, written once over a vector-traits type V (dense-avx512.cpp,
// dense-avx2.cpp, dense-portable.cpp instantiate it). Include only from those files: V brings
// the ISA's intrinsics.
//
// Per query tile (FlashAttention-2's loop order, Dao 2023, arXiv 2307.08691, Alg. 1): Q is
// copied once, pre-multiplied by scale·log2(e) so scores are in log2 units and exp2 is the only
// transcendental; for each group of adjacent key segments (up to kGroupK keys) S = Q Kᵀ comes
// from a register-blocked microkernel (MR query rows x up to NVMAX vectors of keys, Q broadcast,
// packed Kᵀ panel rows loaded), then the online softmax (Milakov & Gimelshein 2018, arXiv
// 1805.02867) rescales the running max m, sum l (kept per vector lane) and the output
// accumulator O, and O += P V from a second microkernel (MR rows x up to 4 vectors of D, P
// broadcast, V rows loaded). Under causality, row blocks skip the keys none of their rows
// attend (an exact no-op). All accumulation is FP32.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "dense.h"

namespace slip::attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr double kLn2 = 0.6931471805599453;
// Row stride of the score tile: a group plus one vector, so a segment that starts mid-chunk
// still fits its rounded-up vectors.
constexpr int64_t kScoreStride = kGroupK + 16;

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
        bool rescale = false;
        for (int r = 0; r < R; ++r) rescale |= alpha[r] != 1.0f;
        // alpha = 1 (running max unchanged, the usual case) is exact: the multiply is skipped.
        for (int r = 0; r < R; ++r) {
            const reg a = V::set1(alpha[r]);
            for (int c = 0; c < NV; ++c) {
                const reg x = V::loadu(o + r * ostride + c * W);
                acc[r][c] = rescale ? V::mul(x, a) : x;
            }
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

    // O[:, c0 : c0 + n·W] += P V[:, same] for one row block, n <= 4 vectors of D.
    template <int R>
    static void pv_cols(int n, const float *p, int64_t len, const float *v, int64_t vstride,
                        float *o, int64_t ostride, const float *alpha) {
        if (n == 1) pv<R, 1>(p, len, v, vstride, o, ostride, alpha);
        else if (n == 2) pv<R, 2>(p, len, v, vstride, o, ostride, alpha);
        else if (n == 3) pv<R, 3>(p, len, v, vstride, o, ostride, alpha);
        else pv<R, 4>(p, len, v, vstride, o, ostride, alpha);
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
        // l is kept per lane (reduced once at the end): no horizontal add per row and segment.
        float *m = O + kTileQ * vdim, *alpha = m + kTileQ, *l = alpha + kTileQ;  // l: [kTileQ][W]
        const float qscale = pr.scale * kLog2e;
        for (int64_t r = 0; r < rows; ++r) {
            const float *src = pr.q_row(t.s, t.h, t.i0 + r);
            for (int64_t d = 0; d < D; ++d) qs[r * D + d] = src[d] * qscale;
            m[r] = -std::numeric_limits<float>::infinity();
            V::storeu(l + r * W, V::zero());
        }
        std::memset(O, 0, sizeof(float) * rows * vdim);
        const float *kpan = pk.k_panels(pr, t.s, hk);
        const float *vbase = pk.v ? pk.v + ((t.s.b * pr.heads_k + hk) * pr.nk) * vdim
                                  : pr.v_row(t.s, hk, 0);
        const int64_t vstride = pk.v ? vdim : pr.sv.token;
        const int64_t off = t.s.causal_offset();
        const float ninf = -std::numeric_limits<float>::infinity();

        for (int64_t g = 0; g < t.nseg;) {
            // A group: segments [g, ge) that are adjacent in keys and span at most kGroupK keys.
            // It depends only on the segment list, so equal lists (dense and all-kept
            // block-sparse) give the same bits.
            int64_t ge = g + 1;
            while (ge < t.nseg && t.seg[ge].j0 == t.seg[ge - 1].j1 && t.seg[ge].j1 - t.seg[g].j0 <= kGroupK) ++ge;
            const int64_t j0 = t.seg[g].j0, len = t.seg[ge - 1].j1 - j0;
            const int nv = static_cast<int>((len + W - 1) / W);
            const int64_t gfirst = g;
            g = ge;
            // Causal: rows before r0 attend no key of this group; for them the update would be
            // an exact no-op (alpha 1, p 0), so they are skipped.
            const int64_t r0 = pr.causal ? std::clamp<int64_t>(j0 - off - t.i0, 0, rows) : 0;
            if (r0 == rows) continue;
            // Segments in key order: a segment's rounded-up last vector is overwritten by the
            // next one's scores, and the group's tail past len is set to -inf below. Causal:
            // scores past what a row block's last row attends are not computed; the masking
            // below sets them to -inf for every row of the block.
            for (int64_t k = gfirst; k < ge; ++k) {
                const int64_t sj0 = t.seg[k].j0, slen = t.seg[k].j1 - sj0;
                const int snv = static_cast<int>((slen + W - 1) / W);
                const float *kp = kpan + (sj0 / kChunkK) * D * kChunkK + sj0 % kChunkK;
                by_rows(rows - r0, [&](auto R, int64_t r) {
                    r += r0;
                    int nvb = snv;
                    if (pr.causal) {  // only the vectors the block's last row may attend
                        const int64_t reach = t.i0 + r + decltype(R)::value + off - sj0;
                        if (reach <= 0) return;
                        nvb = static_cast<int>(std::min<int64_t>(snv, (reach + W - 1) / W));
                    }
                    qk_cols<decltype(R)::value>(nvb, qs + r * D, D, kp, S + r * kScoreStride + (sj0 - j0));
                });
            }
            for (int64_t r = r0; r < rows; ++r) {
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
                alpha[r] = mnew == m[r] ? 1.0f : std::exp2(m[r] - mnew);  // m = -inf -> 0
                const reg mv = V::set1(mnew);
                reg sum = V::zero();
                for (int c = 0; c < nv; ++c) {
                    const reg p = V::exp2(V::sub(V::loadu(srow + c * W), mv));
                    V::storeu(srow + c * W, p);
                    sum = V::add(sum, p);
                }
                V::storeu(l + r * W, V::fma(V::loadu(l + r * W), V::set1(alpha[r]), sum));
                m[r] = mnew;
            }
            // Column blocks of 4 vectors outside the row blocks: the group's V columns stay in
            // L1/L2 across the tile's rows.
            const float *v0 = vbase + j0 * vstride;
            for (int64_t c0 = 0; c0 < vdim; c0 += 4 * W) {
                const int n = static_cast<int>(std::min<int64_t>(vdim - c0, 4 * W) / W);
                by_rows(rows - r0, [&](auto R, int64_t r) {
                    r += r0;
                    // Causal: keys past the block's last row have p = 0 for the whole block,
                    // an exact no-op; they are skipped.
                    const int64_t plen = pr.causal ? std::clamp<int64_t>(t.i0 + r + decltype(R)::value + off - j0, 0, len) : len;
                    pv_cols<decltype(R)::value>(n, S + r * kScoreStride, plen, v0 + c0, vstride,
                                                O + r * vdim + c0, vdim, alpha + r);
                });
            }
        }

        for (int64_t r = 0; r < rows; ++r) l[r] = V::hsum(V::loadu(l + r * W));  // in place: r*W >= r
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
