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

float quantize_row_amx(const float *x, const float *shift, int64_t n, int8_t *codes) {
    // sage::int8_code on 16 lanes: x / s (IEEE), ± 0.5 toward the sign, clamp, truncate.
    const __m512 zero = _mm512_setzero_ps();
    __m512 amax = zero;
    for (int64_t c = 0; c < n; c += 16) {
        const __mmask16 m = static_cast<__mmask16>(n - c >= 16 ? 0xffff : (1u << (n - c)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + c);
        if (shift) v = _mm512_sub_ps(v, _mm512_maskz_loadu_ps(m, shift + c));
        amax = _mm512_max_ps(amax, _mm512_abs_ps(v));
    }
    const float s = _mm512_reduce_max_ps(amax) / 127.0f;
    const __m512 sv = _mm512_set1_ps(s), half = _mm512_set1_ps(0.5f), lim = _mm512_set1_ps(127.0f);
    for (int64_t c = 0; c < n; c += 16) {
        const __mmask16 m = static_cast<__mmask16>(n - c >= 16 ? 0xffff : (1u << (n - c)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + c);
        if (shift) v = _mm512_sub_ps(v, _mm512_maskz_loadu_ps(m, shift + c));
        __m512 t = s == 0.0f ? zero : _mm512_div_ps(v, sv);
        const __mmask16 neg = _mm512_cmp_ps_mask(t, zero, _CMP_LT_OQ);
        t = _mm512_mask_sub_ps(_mm512_add_ps(t, half), neg, t, half);
        t = _mm512_min_ps(_mm512_max_ps(t, _mm512_sub_ps(zero, lim)), lim);
        if (s == 0.0f) t = zero;
        _mm_mask_storeu_epi8(codes + c, m, _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(t)));
    }
    return s;
}

void head_amx(const Head &h) {
    const int64_t hd = h.hd, lk = h.lk, lkp = (lk + 31) / 32 * 32, chunks = hd / 64, dtiles = hd / 16;
    const int64_t nkb = (lk + kMaskK - 1) / kMaskK;
    thread_local std::vector<int8_t> kp, qpad;
    thread_local std::vector<uint16_t> vp, pb;
    thread_local std::vector<int32_t> sbuf;
    thread_local std::vector<float> obuf;
    // K as tdpbssd B tiles: [key tile][chunk][row r][4n + i] = K[16 tile + n][64 chunk + 4r + i]:
    // one 4-byte word of a key row per (r, n).
    int8_t *K = grow(kp, lkp / 16 * chunks * 1024);
    for (int64_t kt = 0; kt < lkp / 16; ++kt)
        for (int n = 0; n < 16; ++n) {
            const int64_t key = kt * 16 + n;
            for (int64_t c = 0; c < chunks; ++c) {
                int8_t *t = K + (kt * chunks + c) * 1024 + 4 * n;
                for (int r = 0; r < 16; ++r) {
                    uint32_t w = 0;
                    if (key < lk) std::memcpy(&w, h.kc + key * hd + 64 * c + 4 * r, 4);
                    std::memcpy(t + r * 64, &w, 4);
                }
            }
        }
    // V as tdpbf16ps B tiles: [key chunk of 32][channel tile][row r][2n + i] = V[32 chunk + 2r + i][16 tile + n]:
    // the 16 channels of keys 2r and 2r + 1 interleaved by one permute.
    alignas(64) static const uint16_t pair_idx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                      8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i pairs = _mm512_load_si512(pair_idx);
    uint16_t *V = grow(vp, lkp / 32 * dtiles * 512);
    for (int64_t kc = 0; kc < lkp / 32; ++kc)
        for (int r = 0; r < 16; ++r) {
            const int64_t k0 = kc * 32 + 2 * r, k1 = k0 + 1;
            for (int64_t dt = 0; dt < dtiles; ++dt) {
                const __m256i a = k0 < lk ? _mm256_loadu_si256(reinterpret_cast<const __m256i *>(h.vb + k0 * hd + dt * 16))
                                          : _mm256_setzero_si256();
                const __m256i b = k1 < lk ? _mm256_loadu_si256(reinterpret_cast<const __m256i *>(h.vb + k1 * hd + dt * 16))
                                          : _mm256_setzero_si256();
                const __m512i ab = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
                _mm512_storeu_si512(V + (kc * dtiles + dt) * 512 + r * 32, _mm512_permutexvar_epi16(pairs, ab));
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
                if (!kept(j)) {  // dropped by the mask: P~ 0, no exp2 (PV skips the chunk too)
                    _mm256_storeu_si256(reinterpret_cast<__m256i *>(prow + j), _mm256_setzero_si256());
                    continue;
                }
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
