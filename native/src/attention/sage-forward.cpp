// SageAttention2 / 2++ forward, emulated: one task per (batch, query head, Q tile), the K/V
// tiles in order as one CTA walks them (slipstream.h lists the steps). Scores and the online
// softmax are FP32 as on CUDA cores; the two MMAs are emulated exactly: INT8 x INT8 -> INT32 for
// QK^T, and E4M3 x E4M3 with a truncating FP22 or nearest-even FP16 accumulator for P~V.
#include <algorithm>
#include <cmath>
#include <vector>

#include "base/thread-pool.h"
#include "sage.h"

namespace slip::sage {
namespace {

// Per-task scratch, reused across the tasks of one parallel_for chunk.
struct Work {
    std::vector<float> q, qs, qm, ds, s, p, acc, m, l, corr;
    std::vector<int8_t> qc;
    std::vector<double> part, step;
    std::vector<int64_t> group;
};

int64_t dot_i8(const int8_t *a, const int8_t *b, int64_t n) {
    int32_t acc = 0;  // |sum| <= 256 * 127 * 127 < 2^31: exact, as the INT32 MMA accumulator
    for (int64_t c = 0; c < n; ++c) acc += static_cast<int32_t>(a[c]) * b[c];
    return acc;
}

float dot_f32(const float *a, const float *b, int64_t n) {
    float acc = 0.0f;
    for (int64_t c = 0; c < n; ++c) acc += a[c] * b[c];
    return acc;
}

class TileRunner {
  public:
    TileRunner(const attn::Problem &pr, const slip_sage_params &sp,
               const std::vector<KvPrep> &kv, const uint8_t *block_mask)
        : pr_(pr), sp_(sp), kv_(kv), D_(pr.dim), mask_(block_mask) {}

    void run(int64_t task, Work &w) const {
        const int64_t nqt = (pr_.nq + sp_.block_q - 1) / sp_.block_q;
        const int64_t b = task / (pr_.heads_q * nqt), h = task / nqt % pr_.heads_q;
        const attn::Seq s = pr_.seq(b);
        const int64_t i0 = task % nqt * sp_.block_q, i1 = std::min(i0 + sp_.block_q, s.nq);
        if (i0 >= i1) return;
        const KvPrep &kp = kv_[static_cast<size_t>(b * pr_.heads_k + pr_.kv_head(h))];
        load_q(s, h, i0, i1, kp, w);
        const int64_t nr = i1 - i0, bk = sp_.block_k;
        w.m.assign(nr, -INFINITY);
        w.l.assign(nr, 0.0f);
        w.acc.assign(nr * D_, 0.0f);
        const int64_t nkt = (pr_.nk + bk - 1) / bk;
        const uint8_t *keep = mask_ ? mask_ + ((b * pr_.heads_q + h) * nqt + i0 / sp_.block_q) * nkt : nullptr;
        for (int64_t j0 = 0; j0 < s.nk; j0 += bk) {
            // Causality hides every later tile from every row of this one: stop, as the kernel.
            if (pr_.causal && j0 > i1 - 1 + s.causal_offset()) break;
            if (keep && !keep[j0 / bk]) continue;  // block-sparse: the pair is skipped, not masked
            tile(s, h, i0, nr, j0, std::min(j0 + bk, s.nk), kp, w);
        }
        store(s, h, i0, nr, kp, w);
    }

  private:
    // Q rows of the tile in FP32, smoothed per tile when smooth_q, then INT8 by row group.
    void load_q(const attn::Seq &s, int64_t h, int64_t i0, int64_t i1, const KvPrep &kp,
                Work &w) const {
        const int64_t nr = i1 - i0;
        w.q.resize(nr * D_);
        w.corr.assign(nr, 0.0f);
        for (int64_t r = 0; r < nr; ++r) {
            const float *qi = pr_.q_row(s, h, i0 + r);
            std::copy(qi, qi + D_, w.q.begin() + r * D_);
            // LSE correction of smooth-K: the true scores exceed the kernel's by scale*(q.kmean).
            if (sp_.smooth_k) w.corr[r] = pr_.scale * dot_f32(qi, kp.kmean.data(), D_);
        }
        w.qm.assign(D_, 0.0f);
        if (sp_.smooth_q) {
            std::vector<double> sum(D_, 0.0);
            for (int64_t r = 0; r < nr; ++r)
                for (int64_t c = 0; c < D_; ++c) sum[c] += w.q[r * D_ + c];
            for (int64_t c = 0; c < D_; ++c) w.qm[c] = static_cast<float>(sum[c] / nr);
            for (int64_t r = 0; r < nr; ++r)
                for (int64_t c = 0; c < D_; ++c) w.q[r * D_ + c] -= w.qm[c];
        }
        if (!sp_.quantize) return;
        w.group.resize(nr);
        for (int64_t r = 0; r < nr; ++r) w.group[r] = q_group(sp_.granularity, r, sp_.warp_q);
        w.qc.resize(nr * D_);
        w.qs.resize(nr);
        quantize_rows(w.q.data(), D_, nr, D_, w.group,
                      q_groups_per_tile(sp_.granularity, sp_.block_q, sp_.warp_q), w.qc.data(),
                      w.qs.data());
        // scale folded into Q's scale, as the kernels fold sm_scale into the dequantization.
        for (int64_t r = 0; r < nr; ++r) w.qs[r] *= pr_.scale;
    }

    void scores(const attn::Seq &s, int64_t h, int64_t i0, int64_t nr, int64_t j0, int64_t j1,
                const KvPrep &kp, Work &w) const {
        const int64_t nk = j1 - j0;
        if (sp_.smooth_q) {  // dS = qm . K'^T in FP32, added back inside the kernel (SA2/SA3)
            w.ds.resize(nk);
            for (int64_t j = j0; j < j1; ++j)
                w.ds[j - j0] = pr_.scale * dot_f32(w.qm.data(), &kp.ks[j * D_], D_);
        }
        w.s.resize(nr * nk);
        for (int64_t r = 0; r < nr; ++r) {
            const MaskRow mr = mask_row(pr_, s, h, i0 + r);
            float *sr = &w.s[r * nk];
            for (int64_t j = j0; j < j1; ++j) {
                float v;
                if (sp_.quantize)
                    v = static_cast<float>(dot_i8(&w.qc[r * D_], &kp.kcodes[j * D_], D_)) *
                        (w.qs[r] * kp.kscale[j]);
                else
                    v = pr_.scale * dot_f32(&w.q[r * D_], &kp.ks[j * D_], D_);
                if (sp_.smooth_q) v += w.ds[j - j0];
                sr[j - j0] = v + mr.term(j);
            }
        }
    }

    void tile(const attn::Seq &s, int64_t h, int64_t i0, int64_t nr, int64_t j0, int64_t j1,
              const KvPrep &kp, Work &w) const {
        scores(s, h, i0, nr, j0, j1, kp, w);
        const int64_t nk = j1 - j0;
        const int64_t hk = pr_.kv_head(h);
        w.p.resize(nk);
        w.part.resize(D_);
        w.step.resize(D_);
        for (int64_t r = 0; r < nr; ++r) {
            const float *sr = &w.s[r * nk];
            float mt = -INFINITY;
            for (int64_t j = 0; j < nk; ++j) mt = std::fmax(mt, sr[j]);
            const float mnew = std::fmax(w.m[r], mt);
            if (mnew == -INFINITY) continue;  // nothing visible yet in this row
            const float alpha = w.m[r] == -INFINITY ? 0.0f : std::exp(w.m[r] - mnew);
            float lsum = 0.0f;
            for (int64_t j = 0; j < nk; ++j) {
                // P~ in [0, 448]: the static FP8 scale of SA2; l adds the FP32 value (CUDA cores).
                const float pt = sr[j] == -INFINITY ? 0.0f : kPScale * std::exp(sr[j] - mnew);
                lsum += pt;
                w.p[j] = sp_.quantize ? e4m3(pt) : pt;
            }
            w.l[r] = w.l[r] * alpha + lsum;
            w.m[r] = mnew;
            float *acc = &w.acc[r * D_];
            for (int64_t c = 0; c < D_; ++c) acc[c] *= alpha;
            if (sp_.quantize)
                pv_low_bit(j0, nk, kp, acc, w);
            else
                for (int64_t j = 0; j < nk; ++j) {
                    if (w.p[j] == 0.0f) continue;
                    const float *vj = pr_.v_row(s, hk, j0 + j);
                    for (int64_t c = 0; c < D_; ++c) acc[c] += w.p[j] * vj[c];
                }
        }
    }

    // One row's P~ (E4M3 values) times V~ over a tile: a fresh inner accumulator per tile (the
    // "init" MMA), one rounding per 32-key k-step, then the flush into the FP32 accumulator.
    // Products of two E4M3 values are multiples of 2^-18 below 2^18, so a 32-term step sum is
    // exact in double: the only inexact operation is the accumulator's own rounding.
    void pv_low_bit(int64_t j0, int64_t nk, const KvPrep &kp, float *acc,
                    Work &w) const {
        const bool fp16 = sp_.variant == SLIP_SAGE_VARIANT_SAGE2PP;
        std::fill(w.part.begin(), w.part.end(), 0.0);
        for (int64_t k0 = 0; k0 < nk; k0 += kMmaK) {
            std::fill(w.step.begin(), w.step.end(), 0.0);
            bool any = false;
            for (int64_t j = k0; j < std::min(k0 + kMmaK, nk); ++j) {
                const double pj = w.p[j];
                if (pj == 0.0) continue;
                any = true;
                const float *vj = &kp.vq[(j0 + j) * D_];
                for (int64_t c = 0; c < D_; ++c) w.step[c] += pj * vj[c];
            }
            if (!any) continue;  // adding exact zeros leaves the accumulator as it was
            for (int64_t c = 0; c < D_; ++c)
                w.part[c] = fp16 ? round_fp16(w.part[c] + w.step[c])
                                 : round_fp22(w.part[c] + w.step[c]);
        }
        // Exact: an FP22 or FP16 value is an FP32 value.
        for (int64_t c = 0; c < D_; ++c) acc[c] += static_cast<float>(w.part[c]);
    }

    // out = acc * scale_v / l (the per-channel V scale fused into the epilogue); a row that saw
    // no key gets 0 and LSE -inf.
    void store(const attn::Seq &s, int64_t h, int64_t i0, int64_t nr, const KvPrep &kp,
               Work &w) const {
        for (int64_t r = 0; r < nr; ++r) {
            float *o = pr_.out_row(s, h, i0 + r);
            const float l = w.l[r];
            for (int64_t c = 0; c < D_; ++c) {
                const float a = sp_.quantize ? w.acc[r * D_ + c] * kp.vscale[c] : w.acc[r * D_ + c];
                o[c] = l > 0.0f ? a / l : 0.0f;
            }
            if (float *lse = pr_.lse_at(s, h, i0 + r))
                *lse = l > 0.0f ? w.m[r] + std::log(l / kPScale) + w.corr[r] : -INFINITY;
        }
    }

    const attn::Problem &pr_;
    const slip_sage_params &sp_;
    const std::vector<KvPrep> &kv_;
    const int64_t D_;
    const uint8_t *mask_;
};

}  // namespace

void run_forward(const attn::Problem &pr, const slip_sage_params &sp, const uint8_t *block_mask) {
    const float v_bound = sp.variant == SLIP_SAGE_VARIANT_SAGE2PP ? kVBound2pp : kPScale;
    const std::vector<KvPrep> kv = prepare_kv(pr, sp, sp.granularity, true, v_bound);
    const TileRunner runner(pr, sp, kv, block_mask);
    const int64_t nqt = (pr.nq + sp.block_q - 1) / sp.block_q;
    parallel_for(pr.batch * pr.heads_q * nqt, 1, [&](int64_t begin, int64_t end) {
        Work w;
        for (int64_t t = begin; t < end; ++t) runner.run(t, w);
    });
}

}  // namespace slip::sage
