// The driver of lowbit.h: per (batch, head) the operands quantized, then one of the two kernels.
#include "lowbit.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../base/bf16.h"
#include "../base/cpu.h"
#include "../base/thread-pool.h"
#include "sage.h"

namespace slip::attn::lowbit {

namespace {

// One row to INT8 with its own scale amax/127 (sage::int8_code rounds as SageAttention does).
float quantize_row(const float *x, const float *shift, int64_t n, int8_t *codes) {
    float a = 0.0f;
    for (int64_t c = 0; c < n; ++c) a = std::fmax(a, std::fabs(shift ? x[c] - shift[c] : x[c]));
    const float s = a / 127.0f;
    for (int64_t c = 0; c < n; ++c) codes[c] = sage::int8_code(shift ? x[c] - shift[c] : x[c], s);
    return s;
}

}  // namespace

void head_portable(const Head &h) {
    const int64_t nkb = (h.lk + kMaskK - 1) / kMaskK;
    std::vector<float> s(static_cast<size_t>(h.lk)), o(static_cast<size_t>(h.hd));
    constexpr float kLog2e = 1.4426950408889634f;
    for (int64_t r = 0; r < h.lq; ++r) {
        const uint8_t *keep = h.keep ? h.keep + (r / kMaskQ) * nkb : nullptr;
        float m = -INFINITY;
        for (int64_t j = 0; j < h.lk; ++j) {
            if (keep && !keep[j / kMaskK]) {
                s[j] = -INFINITY;
                continue;
            }
            int32_t acc = 0;
            for (int64_t c = 0; c < h.hd; ++c) acc += static_cast<int32_t>(h.qc[r * h.hd + c]) * h.kc[j * h.hd + c];
            s[j] = static_cast<float>(acc) * h.qs[r] * h.ks[j] * kLog2e;
            m = std::fmax(m, s[j]);
        }
        std::fill(o.begin(), o.end(), 0.0f);
        float l = 0.0f;
        if (m > -INFINITY)
            for (int64_t j = 0; j < h.lk; ++j) {
                if (s[j] == -INFINITY) continue;
                const float p = std::exp2(s[j] - m);
                l += p;
                const float pb = bf16_value(bf16_bits(p));
                for (int64_t c = 0; c < h.hd; ++c) o[c] += pb * bf16_value(h.vb[j * h.hd + c]);
            }
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int64_t c = 0; c < h.hd; ++c) h.out[r * h.out_stride + c] = o[c] * inv;
    }
}

void attend(const Problem &pr, const uint8_t *keep) {
    const int64_t lq = pr.nq, lk = pr.nk, hd = pr.dim;
    const bool amx = isa_active() >= SLIP_ISA_AMX && hd % 64 == 0;
    const int64_t nqb = (lq + kMaskQ - 1) / kMaskQ, nkb = (lk + kMaskK - 1) / kMaskK;
    parallel_for(pr.batch * pr.heads_q, 1, [&](int64_t t0, int64_t t1) {
        std::vector<int8_t> qc(static_cast<size_t>(lq * hd)), kc(static_cast<size_t>(lk * hd));
        std::vector<float> qs(static_cast<size_t>(lq)), ks(static_cast<size_t>(lk)), mean(static_cast<size_t>(hd));
        std::vector<float> out(static_cast<size_t>(lq * hd));
        std::vector<uint16_t> vb(static_cast<size_t>(lk * hd));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / pr.heads_q, hh = t % pr.heads_q, hk = pr.kv_head(hh);
            const Seq s = pr.seq(b);
            // Smooth-K: one vector subtracted from every key moves each row's scores by a constant.
            std::vector<double> sum(static_cast<size_t>(hd), 0.0);
            for (int64_t j = 0; j < lk; ++j)
                for (int64_t c = 0; c < hd; ++c) sum[c] += pr.k_row(s, hk, j)[c];
            for (int64_t c = 0; c < hd; ++c) mean[c] = static_cast<float>(sum[c] / static_cast<double>(lk));
            auto quantize = amx ? quantize_row_amx : quantize_row;
            for (int64_t i = 0; i < lq; ++i) qs[i] = quantize(pr.q_row(s, hh, i), nullptr, hd, &qc[i * hd]) * pr.scale;
            for (int64_t j = 0; j < lk; ++j) {
                ks[j] = quantize(pr.k_row(s, hk, j), mean.data(), hd, &kc[j * hd]);
                const float *vj = pr.v_row(s, hk, j);
                for (int64_t c = 0; c < hd; ++c) vb[j * hd + c] = bf16_bits(vj[c]);
            }
            Head h;
            h.lq = lq;
            h.lk = lk;
            h.hd = hd;
            h.qc = qc.data();
            h.qs = qs.data();
            h.kc = kc.data();
            h.ks = ks.data();
            h.vb = vb.data();
            h.keep = keep ? keep + t * nqb * nkb : nullptr;
            h.out = out.data();
            h.out_stride = hd;
            (amx ? head_amx : head_portable)(h);
            for (int64_t i = 0; i < lq; ++i) std::memcpy(pr.out_row(s, hh, i), &out[i * hd], static_cast<size_t>(hd) * 4);
        }
    });
}

}  // namespace slip::attn::lowbit
