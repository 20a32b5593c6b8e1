// The AMX kernel of lowbit.h, one (batch, head) at a time, 16 query rows per pass:
//   S   = Qc · Kcᵀ    tdpbssd, 16 keys per C tile, K packed once per head as B tiles
//   P   = softmax     16 lanes of AVX-512 per step, exp2 polynomial; P̃ = bf16(p) in a row buffer
//   O   = P̃ · V̂       tdpbf16ps, 4 tiles of 16 channels at a time, V packed as B tiles
// Tiles: all 16 rows x 64 bytes (C int32/fp32 16x16, A int8 16x64 or bf16 16x32, B the same).
// Key tiles that the block mask drops are neither multiplied nor summed.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "exp2-avx512.h"
#include "lowbit.h"

namespace slip::attn::lowbit {

namespace {

struct alignas(64) TileConfig {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

template <class T>
T *grow(std::vector<T> &v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
    return v.data();
}

}  // namespace

void head_amx(const Head &h) {
    const int64_t hd = h.hd, lk = h.lk, lkp = (lk + 31) / 32 * 32, chunks = hd / 64, dtiles = hd / 16;
    const int64_t nkb = (lk + kMaskK - 1) / kMaskK;
    thread_local std::vector<int8_t> kp, qpad;
    thread_local std::vector<uint16_t> vp, pb;
    thread_local std::vector<int32_t> sbuf;
    thread_local std::vector<float> obuf;
    // K as tdpbssd B tiles: [key tile][chunk][row r][4n + i] = K[16 tile + n][64 chunk + 4r + i].
    int8_t *K = grow(kp, lkp / 16 * chunks * 1024);
    for (int64_t kt = 0; kt < lkp / 16; ++kt)
        for (int64_t c = 0; c < chunks; ++c) {
            int8_t *t = K + (kt * chunks + c) * 1024;
            for (int r = 0; r < 16; ++r)
                for (int n = 0; n < 16; ++n) {
                    const int64_t key = kt * 16 + n;
                    for (int i = 0; i < 4; ++i) t[r * 64 + 4 * n + i] = key < lk ? h.kc[key * hd + 64 * c + 4 * r + i] : 0;
                }
        }
    // V as tdpbf16ps B tiles: [key chunk of 32][channel tile][row r][2n + i] = V[32 chunk + 2r + i][16 tile + n].
    uint16_t *V = grow(vp, lkp / 32 * dtiles * 512);
    for (int64_t kc = 0; kc < lkp / 32; ++kc)
        for (int64_t dt = 0; dt < dtiles; ++dt) {
            uint16_t *t = V + (kc * dtiles + dt) * 512;
            for (int r = 0; r < 16; ++r)
                for (int n = 0; n < 16; ++n)
                    for (int i = 0; i < 2; ++i) {
                        const int64_t key = kc * 32 + 2 * r + i;
                        t[r * 32 + 2 * n + i] = key < lk ? h.vb[key * hd + dt * 16 + n] : 0;
                    }
        }
    int32_t *S = grow(sbuf, 16 * lkp);
    uint16_t *P = grow(pb, 16 * lkp);
    float *O = grow(obuf, 16 * hd);
    int8_t *Qpad = grow(qpad, 16 * hd);

    TileConfig cfg;
    for (int t = 0; t < 8; ++t) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    const __m512 log2e = _mm512_set1_ps(1.4426950408889634f), ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t r0 = 0; r0 < h.lq; r0 += 16) {
        const int64_t rows = std::min<int64_t>(16, h.lq - r0);
        const int8_t *A = h.qc + r0 * hd;
        if (rows < 16) {
            std::memset(Qpad, 0, static_cast<size_t>(16 * hd));
            std::memcpy(Qpad, A, static_cast<size_t>(rows * hd));
            A = Qpad;
        }
        const uint8_t *keep = h.keep ? h.keep + (r0 / kMaskQ) * nkb : nullptr;
        auto kept = [&](int64_t key0) { return !keep || keep[key0 / kMaskK]; };
        for (int64_t kt = 0; kt < lkp / 16; ++kt) {
            if (!kept(kt * 16)) continue;
            _tile_zero(0);
            for (int64_t c = 0; c < chunks; ++c) {
                _tile_loadd(4, A + 64 * c, hd);
                _tile_loadd(5, K + (kt * chunks + c) * 1024, 64);
                _tile_dpbssd(0, 4, 5);
            }
            _tile_stored(0, S + kt * 16, lkp * 4);
        }
        float l[16] = {};
        for (int64_t r = 0; r < 16; ++r) {
            uint16_t *prow = P + r * lkp;
            if (r >= rows) {
                std::memset(prow, 0, static_cast<size_t>(lkp * 2));
                continue;
            }
            // Scores in log2 units, as head_portable computes them; masked or past lk: -inf.
            float *srow = reinterpret_cast<float *>(S + r * lkp);
            const __m512 qs = _mm512_set1_ps(h.qs[r0 + r]);
            __m512 mx = ninf;
            for (int64_t j = 0; j < lkp; j += 16) {
                __m512 s = ninf;
                if (kept(j)) {
                    const __mmask16 valid = static_cast<__mmask16>(j + 16 <= lk ? 0xffff : j >= lk ? 0 : (1u << (lk - j)) - 1);
                    const __m512 ks = _mm512_maskz_loadu_ps(valid, h.ks + j);
                    const __m512 acc = _mm512_cvtepi32_ps(_mm512_loadu_si512(S + r * lkp + j));
                    s = _mm512_mask_mul_ps(ninf, valid, _mm512_mul_ps(_mm512_mul_ps(acc, qs), ks), log2e);
                }
                _mm512_storeu_ps(srow + j, s);
                mx = _mm512_max_ps(mx, s);
            }
            const float m = _mm512_reduce_max_ps(mx);
            __m512 sum = _mm512_setzero_ps();
            const __m512 mv = _mm512_set1_ps(m == -INFINITY ? 0.0f : m);
            for (int64_t j = 0; j < lkp; j += 16) {
                const __m512 p = exp2_avx512(_mm512_sub_ps(_mm512_loadu_ps(srow + j), mv));
                sum = _mm512_add_ps(sum, p);
                _mm256_storeu_si256(reinterpret_cast<__m256i *>(prow + j), (__m256i)_mm512_cvtneps_pbh(p));
            }
            l[r] = _mm512_reduce_add_ps(sum);
        }
        for (int64_t dt0 = 0; dt0 < dtiles; dt0 += 4) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int64_t kc = 0; kc < lkp / 32; ++kc) {
                if (!kept(kc * 32)) continue;
                _tile_loadd(4, P + kc * 32, lkp * 2);
                const uint16_t *vt = V + (kc * dtiles + dt0) * 512;
                _tile_loadd(5, vt, 64);
                _tile_dpbf16ps(0, 4, 5);
                _tile_loadd(5, vt + 512, 64);
                _tile_dpbf16ps(1, 4, 5);
                _tile_loadd(5, vt + 1024, 64);
                _tile_dpbf16ps(2, 4, 5);
                _tile_loadd(5, vt + 1536, 64);
                _tile_dpbf16ps(3, 4, 5);
            }
            _tile_stored(0, O + dt0 * 16, hd * 4);
            _tile_stored(1, O + dt0 * 16 + 16, hd * 4);
            _tile_stored(2, O + dt0 * 16 + 32, hd * 4);
            _tile_stored(3, O + dt0 * 16 + 48, hd * 4);
        }
        for (int64_t r = 0; r < rows; ++r) {
            const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
            for (int64_t c = 0; c < hd; ++c) h.out[(r0 + r) * h.out_stride + c] = O[r * hd + c] * inv;
        }
    }
    _tile_release();
}

}  // namespace slip::attn::lowbit
