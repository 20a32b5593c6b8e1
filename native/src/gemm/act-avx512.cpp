// AVX-512 activation quantizers, one 16-column block per zmm. The NVFP4 one is bit-identical to
// the scalar loop of act.cpp (the same roundings, each reached by cheaper instructions: see
// twice_e2m1, round_e4m3, divide): the scalar version does not vectorize (GCC keeps the compare
// chain as branches), and at M = 2048 it cost about a fifth of the emulated W4A4 run. The code
// quantizers feed the integer NVFP4 path (fp4-int.h), which runs only where AVX-512 VNNI is, so
// they have no scalar twin.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "fp4-int.h"
#include "plan.h"

// GCC 12 flags the _mm512_undefined_* inside these intrinsics' own definitions (a known false
// positive of its headers at -O3); nothing in this file reads an uninitialized value.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace slip::gemm {

namespace {

// 2 · RNE_sat_E2M1(t), sign included: t scaled by 2^(1 - max(floor(log2 |t|), 0)) onto the
// integers of its binade's grid, rounded to nearest-even, scaled back, clamped to ±12. Equal to
// act.cpp's round_e2m1 (compare chain) for every finite float, checked exhaustively; 7
// instructions where the chain of 7 compare + blend pairs is 14, and serial.
inline __m512 twice_e2m1(__m512 t) {
    const __m512 e = _mm512_max_ps(_mm512_getexp_ps(t), _mm512_setzero_ps());  // getexp(0) = -inf
    const __m512 u = _mm512_roundscale_ps(_mm512_scalef_ps(t, _mm512_sub_ps(_mm512_set1_ps(1.0f), e)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_max_ps(_mm512_min_ps(_mm512_scalef_ps(u, e), _mm512_set1_ps(12.0f)), _mm512_set1_ps(-12.0f));
}

inline __m512 abs_ps(__m512 x) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7FFFFFFF)));
}

// Stores the int8 codes of a chunk of nb <= 16 blocks of 16 (codes(i): block i's, as int8) and
// returns the kernel's accumulator starts of their groups (fp4-int.h), kFp4MagicBits - 12 · Σ
// codes, lane i for block i. Four blocks share one 64-byte store and one vpsadbw, which sums each
// 8 bytes of the codes biased to u8 (q + 128) into a 64-bit lane; the sums come from registers, as
// reading back the codes just stored would stall on store forwarding.
template <class Codes>
inline __m512i store_chunk(int64_t nb, Codes codes, int8_t *q) {
    __m512i t[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    for (int64_t i = 0; i < nb; i += 4) {
        __m512i quad = _mm512_zextsi128_si512(codes(i));
        if (i + 1 < nb) quad = _mm512_inserti32x4(quad, codes(i + 1), 1);
        if (i + 2 < nb) quad = _mm512_inserti32x4(quad, codes(i + 2), 2);
        if (i + 3 < nb) quad = _mm512_inserti32x4(quad, codes(i + 3), 3);
        _mm512_mask_storeu_epi8(q + 16 * i, nb - i >= 4 ? ~0ull : (1ull << (16 * (nb - i))) - 1, quad);
        const __m512i sad = _mm512_sad_epu8(_mm512_xor_si512(quad, _mm512_set1_epi8(-128)), _mm512_setzero_si512());
        t[i / 4] = _mm512_add_epi64(sad, _mm512_shuffle_epi32(sad, _MM_PERM_BADC));  // group sums, twice
    }
    const __m512i lo = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i hi = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 8, 12, 16, 20, 24, 28);
    const __m512i sum = _mm512_mask_blend_epi32(0xFF00, _mm512_permutex2var_epi32(t[0], lo, t[1]),
                                                _mm512_permutex2var_epi32(t[2], hi, t[3]));
    // kFp4MagicBits - 12 (sum - 16 · 128)
    return _mm512_sub_epi32(_mm512_set1_epi32(kFp4MagicBits + 12 * 16 * 128),
                            _mm512_mullo_epi32(sum, _mm512_set1_epi32(12)));
}

// W4A4's record slots (fp4-int.h) of nb <= 16 groups of one row: (init, s, kFp4Magic · s, 0) per
// group, 16 bytes each, `stride` int32 apart. A 4 x 4 transpose in each 128-bit lane turns the
// three per-group vectors into the slots, which go out as 16-byte stores.
inline void store_slots(int64_t nb, __m512i init, __m512 s, int32_t *rec, int64_t stride) {
    const __m512i si = _mm512_castps_si512(s);
    const __m512i off = _mm512_castps_si512(_mm512_mul_ps(s, _mm512_set1_ps(kFp4Magic)));
    const __m512i t0 = _mm512_unpacklo_epi32(init, si), t1 = _mm512_unpackhi_epi32(init, si);
    const __m512i t2 = _mm512_unpacklo_epi32(off, _mm512_setzero_si512());
    const __m512i t3 = _mm512_unpackhi_epi32(off, _mm512_setzero_si512());
    // slots[j] holds, in 128-bit lane l, group 4 l + j
    const __m512i slots[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                              _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
    alignas(64) int32_t lanes[4][16];
    for (int j = 0; j < 4; ++j) _mm512_store_si512(lanes[j], slots[j]);
    for (int64_t g = 0; g < nb; ++g)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(rec + g * stride),
                         _mm_load_si128(reinterpret_cast<const __m128i *>(&lanes[g % 4][4 * (g / 4)])));
}

// RN(a / b) from r = RN(1 / b) without a division (vdivps: 16 cycles per vector here): q0 = a r
// is within an ulp, the remainder a - b q0 is exact (FMA), and one correction step rounds
// correctly (Markstein's theorem). Holds while the remainder does not underflow: b in
// [2^-90, 2^90] and quotients above 2^-3 (smaller ones round to code 0 either way).
inline __m512 divide(__m512 a, __m512 b, __m512 r) {
    const __m512 q0 = _mm512_mul_ps(a, r);
    return _mm512_fmadd_ps(_mm512_fnmadd_ps(b, q0, a), r, q0);
}

// x · g for NVFP4's x · g / s, its magnitude capped at 2^20 (sign kept, one vrangeps): any value
// past 2688 = 6 · 448 already saturates to ±6 for every block scale, and the cap keeps a static
// global scale's overflow (x · g = ±inf) from becoming inf - inf = NaN inside divide().
inline __m512 times_global(__m512 x, __m512 g) {
    return _mm512_range_ps(_mm512_mul_ps(x, g), _mm512_set1_ps(0x1p20f), 0x02);  // min |.|, sign of x g
}

// element::round_magnitude(a, kE4M3, -1) of 16 finite a >= 0, bit for bit: the grid spacing
// 2^(max(floor(log2 a), -6) - 3), a scaled onto it exactly, rounded to nearest-even, saturated.
// Its scalar frexp/ldexp/rint calls cost more than the rest of a block's quantization.
inline __m512 round_e4m3(__m512 a) {
    const __m512 e = _mm512_max_ps(_mm512_getexp_ps(a), _mm512_set1_ps(-6.0f));  // getexp(0) = -inf
    const __m512 t = _mm512_scalef_ps(a, _mm512_sub_ps(_mm512_set1_ps(3.0f), e));
    const __m512 r = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_min_ps(_mm512_scalef_ps(r, _mm512_sub_ps(e, _mm512_set1_ps(3.0f))), _mm512_set1_ps(448.0f));
}

// The block scales s = RN_E4M3(amax_16 / 6 · g) of nb <= 16 blocks of 16 from row (lanes past
// nb: 0). The 16 block maxima come out of a transpose-like tree, 3 instructions per block where
// a horizontal max per block takes 8; blocks enter in the tree's output order (an involution),
// so lane i ends up with block i.
inline __m512 block_scales(const float *row, int64_t nb, float g) {
    static constexpr int kOrder[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};
    __m512 v[16];
    for (int i = 0; i < 16; ++i)
        v[i] = kOrder[i] < nb ? abs_ps(_mm512_loadu_ps(row + kOrder[i] * 16)) : _mm512_setzero_ps();
    for (int i = 0; i < 8; ++i)  // 256-bit halves: v[i], v[i + 8]
        v[i] = _mm512_max_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], 0x44), _mm512_shuffle_f32x4(v[i], v[i + 8], 0xEE));
    for (int i = 0; i < 4; ++i)  // 128-bit lanes: v[i] low, v[i + 8] low, v[i] high, v[i + 8] high halves
        v[i] = _mm512_max_ps(_mm512_shuffle_f32x4(v[i], v[i + 4], 0x88), _mm512_shuffle_f32x4(v[i], v[i + 4], 0xDD));
    for (int i = 0; i < 2; ++i) {  // per 128-bit lane: 2 partials of v[i]'s block, 2 of v[i + 2]'s
        const __m512d a = _mm512_castps_pd(v[i]), b = _mm512_castps_pd(v[i + 2]);
        v[i] = _mm512_max_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    const __m512 amax = _mm512_max_ps(_mm512_shuffle_ps(v[0], v[1], 0x88), _mm512_shuffle_ps(v[0], v[1], 0xDD));
    return round_e4m3(_mm512_mul_ps(_mm512_div_ps(amax, _mm512_set1_ps(6.0f)), _mm512_set1_ps(g)));
}

}  // namespace

void quantize_nvfp4_row_avx512(const float *row, int64_t k, float g, float *out) {
    const __m512 vg = _mm512_set1_ps(g);
    alignas(64) float scales[16], recips[16];
    for (int64_t b = 0; b < k; b += 16) {
        if (b % 256 == 0) {
            const __m512 s = block_scales(row + b, std::min<int64_t>(16, (k - b) / 16), g);
            _mm512_store_ps(scales, s);
            _mm512_store_ps(recips, _mm512_div_ps(_mm512_set1_ps(1.0f), s));  // s is 0 or in [2^-9, 448]
        }
        const float s = scales[b % 256 / 16];
        if (s == 0.0f) {
            _mm512_storeu_ps(out + b, _mm512_setzero_ps());
            continue;
        }
        const __m512 vs = _mm512_set1_ps(s);
        const __m512 t = divide(times_global(_mm512_loadu_ps(row + b), vg), vs, _mm512_set1_ps(recips[b % 256 / 16]));
        // The E2M1 value with x's sign (t's), then * s / g in that order.
        const __m512 r = _mm512_mul_ps(twice_e2m1(t), _mm512_set1_ps(0.5f));
        _mm512_storeu_ps(out + b, _mm512_div_ps(_mm512_mul_ps(r, vs), vg));
    }
}

// The NVFP4 recipe above, but as integer codes q = 2·E2M1 (sign included), the block scales s
// and kFp4Magic · s (fp4-int.h), for the integer path: q · s / (2 g) is the value
// quantize_nvfp4_row_avx512 decodes (to a rounding or two).
void quantize_nvfp4_codes_row_avx512(const float *row, int64_t k, float g, int8_t *q, int32_t *meta) {
    constexpr int stride = fp4_meta_stride(true);
    const __m512 vg = _mm512_set1_ps(g);
    for (int64_t c = 0; c < k; c += 256) {
        const int64_t nb = std::min<int64_t>(16, (k - c) / 16);
        const __m512 s = block_scales(row + c, nb, g);
        const __m512 rs = _mm512_div_ps(_mm512_set1_ps(1.0f), s);  // s is 0 or in [2^-9, 448]
        const __mmask16 live = _mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        // Block i's scale broadcast from its lane, and codes 0 where it is 0: no branch, no
        // round trip through memory.
        const __m512i init = store_chunk(nb, [&](int64_t i) {
            const __m512i lane = _mm512_set1_epi32(static_cast<int>(i));
            const __m512 xg = times_global(_mm512_loadu_ps(row + c + 16 * i), vg);
            const __m512 t = divide(xg, _mm512_permutexvar_ps(lane, s), _mm512_permutexvar_ps(lane, rs));
            const __mmask16 keep = (live >> i) & 1 ? 0xFFFF : 0;
            return _mm512_cvtepi32_epi8(_mm512_maskz_cvtps_epi32(keep, twice_e2m1(t)));
        }, q + c);
        store_slots(nb, init, s, meta + c / 16 * stride, stride);
    }
}

float row_amax_avx512(const float *row, int64_t k) {
    // On the bits of |x|, integer order is float order, and NaN and Inf sort above every finite
    // value (vmaxps would drop a NaN, returning its other operand).
    __m512i m = _mm512_setzero_si512();
    for (int64_t i = 0; i < k; i += 16)
        m = _mm512_max_epi32(m, _mm512_castps_si512(abs_ps(_mm512_loadu_ps(row + i))));
    alignas(64) int32_t lanes[16];
    _mm512_store_si512(lanes, m);
    int32_t bits = 0;
    for (int32_t v : lanes) bits = v > bits ? v : bits;
    float amax;
    std::memcpy(&amax, &bits, sizeof amax);
    return amax;
}

// Per-token INT8 with s = amax / 127, as int8.cpp's W8A8 quantizes: q = RNE(x / s) clamped to
// [-127, 127], x / s rounded as a division rounds (divide()), so ties go where the reference's do.
// The group inits go to the W4A8 records, 8 int32 apart.
void quantize_i8_codes_row_avx512(const float *row, int64_t k, float s, int8_t *q, int32_t *meta) {
    constexpr int stride = fp4_meta_stride(false);
    const __m512 vs = _mm512_set1_ps(s), vr = _mm512_set1_ps(1.0f / s);
    const bool fast = s >= 0x1p-90f && s <= 0x1p90f;  // divide()'s range
    for (int64_t c = 0; c < k; c += 256) {
        const int64_t nb = std::min<int64_t>(16, (k - c) / 16);
        const __m512i init = store_chunk(nb, [&](int64_t i) {
            if (s == 0.0f) return _mm_setzero_si128();
            const __m512 x = _mm512_loadu_ps(row + c + 16 * i);
            const __m512 t = fast ? divide(x, vs, vr) : _mm512_div_ps(x, vs);
            // cvtsepi32 saturates the top at 127; the bottom needs -127, not -128
            return _mm512_cvtsepi32_epi8(_mm512_max_epi32(_mm512_set1_epi32(-127), _mm512_cvtps_epi32(t)));
        }, q + c);
        const __m512i at = _mm512_setr_epi32(0, stride, 2 * stride, 3 * stride, 4 * stride, 5 * stride, 6 * stride,
                                             7 * stride, 8 * stride, 9 * stride, 10 * stride, 11 * stride,
                                             12 * stride, 13 * stride, 14 * stride, 15 * stride);
        _mm512_mask_i32scatter_epi32(meta + c / 16 * stride, static_cast<__mmask16>((1u << nb) - 1), at, init, 4);
    }
}

}  // namespace slip::gemm
