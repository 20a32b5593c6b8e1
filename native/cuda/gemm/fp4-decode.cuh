// The NVFP4 decode and the mma.sync pieces that fp4-gemm.cu's kernels and fp4-stream.cu's share.
//
// The weight is decoded on chip exactly to the activations' 16-bit type: E2M1 x E4M3 has at most 6
// significant bits and lies in [2^-10, 2688], which BF16 and FP16 both hold, so only the FP32
// summation rounds; 1/global (and the FP8 path's per-token scale) go to the epilogue. Decoding a
// 32-bit word of codes (fp4-cuda.cuh) into four B registers takes byte permutes: PRMT looks the
// eight E2M1 magnitudes up in two 8-byte tables (the low and the high byte of each 16-bit value),
// the sign bits are ORed into the high bytes, two more PRMTs interleave them into pairs, and one
// packed multiply applies the block's E4M3 scale (exact: the product is representable).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "fp4-cuda.cuh"

namespace slip::cuda::fp4 {

// E2M1 magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6 as BF16 and FP16, split into low-byte and high-byte
// tables of 8 bytes (two registers each) for PRMT. FP16's low bytes are all zero.
template <bool F16>
struct Lut;
template <>
struct Lut<false> {
    static constexpr uint32_t lo0 = 0xC0800000u, lo1 = 0xC0804000u, hi0 = 0x3F3F3F00u, hi1 = 0x40404040u;
};
template <>
struct Lut<true> {
    static constexpr uint32_t hi0 = 0x3E3C3800u, hi1 = 0x46444240u;
};

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint32_t d;
    asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
    return d;
}

// Two 16-bit products a * s, exact here (so the rounding mode never acts). BF16 multiplies as an FMA
// with -0 (sm_80's form; mul.bf16x2 is sm_90 only).
template <bool F16>
__device__ __forceinline__ uint32_t mul2(uint32_t a, uint32_t s) {
    uint32_t d;
    if constexpr (F16) asm("mul.rn.f16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(s));
    else asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(s), "r"(0x80008000u));
    return d;
}

// Two E4M3 bytes (low 16 bits of sc) to FP16x2, byte 0 in the low half: exact (every E4M3 value,
// subnormals included, is a normal FP16).
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t sc) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 890
    __trap();  // the host refuses devices below sm_89
    return 0;
#else
    uint32_t h;
    asm("{\n.reg .b16 t;\ncvt.u16.u32 t, %1;\ncvt.rn.f16x2.e4m3x2 %0, t;\n}\n" : "=r"(h) : "r"(sc));
    return h;
#endif
}

// A lane's two block scales as broadcast pairs of the MMA type: lo for k-steps 0..3, hi for 4..7.
template <bool F16>
__device__ __forceinline__ void scale_pairs(uint32_t sc, uint32_t &lo, uint32_t &hi) {
    const uint32_t h = e4m3x2_to_f16x2(sc);
    if constexpr (F16) {
        lo = prmt(h, 0u, 0x1010u);
        hi = prmt(h, 0u, 0x3232u);
    } else {
        // FP16 -> FP32 is exact, and FP32 -> BF16 is truncation here (at most 4 significant bits).
        const float f0 = __half2float(__ushort_as_half(static_cast<unsigned short>(h & 0xFFFFu)));
        const float f1 = __half2float(__ushort_as_half(static_cast<unsigned short>(h >> 16)));
        lo = prmt(__float_as_uint(f0), 0u, 0x3232u);
        hi = prmt(__float_as_uint(f1), 0u, 0x3232u);
    }
}

// One code word (k-steps 2j and 2j+1) to B fragments b[step][reg], times the scale pair s. lo0 and
// hi0: the tables' first words, which PRMT must read from registers (the second is its immediate);
// a caller may pass them in registers it holds (lut_reg).
template <bool F16>
__device__ __forceinline__ void decode(uint32_t w, uint32_t s, uint32_t (&b)[2][2], uint32_t hi0 = Lut<F16>::hi0,
                                       uint32_t lo0 = Lut<false>::lo0) {
    using L = Lut<F16>;
    const uint32_t m = w & 0x77777777u, m2 = m >> 16;  // PRMT reads the selector's low 16 bits
    const uint32_t y0 = prmt(hi0, L::hi1, m) | (w & 0x80808080u);
    const uint32_t y1 = prmt(hi0, L::hi1, m2) | ((w << 4) & 0x80808080u);
    uint32_t x0 = 0u, x1 = 0u;
    if constexpr (!F16) {
        x0 = prmt(lo0, L::lo1, m);
        x1 = prmt(lo0, L::lo1, m2);
    }
    // Byte i of x/y is element i's low/high byte; pairs (0, 1) and (2, 3), element 0 in the low half.
    b[0][0] = mul2<F16>(prmt(x0, y0, 0x5140u), s);
    b[0][1] = mul2<F16>(prmt(x0, y0, 0x7362u), s);
    b[1][0] = mul2<F16>(prmt(x1, y1, 0x5140u), s);
    b[1][1] = mul2<F16>(prmt(x1, y1, 0x7362u), s);
}

__device__ __forceinline__ uint32_t word(const uint4 &v, int j) {
    return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

// c += A · B on a 16 x 8 x 16 tile. a: {row g, k lo}, {row g+8, k lo}, {row g, k hi}, {row g+8, k hi}.
template <bool F16>
__device__ __forceinline__ void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
    if constexpr (F16)
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// The k-step pair (2j, 2j+1) of one 16 x 8 output tile: av/bv hold rows g and g+8, columns
// 32t + 8j .. 32t + 8j + 7, so .x/.y are step 2j's low/high k and .z/.w step 2j+1's.
template <bool F16>
__device__ __forceinline__ void mma_pair(float (&c)[4], const uint4 &av, const uint4 &bv, const uint32_t (&b)[2][2]) {
    mma<F16>(c, av.x, bv.x, av.y, bv.y, b[0][0], b[0][1]);
    mma<F16>(c, av.z, bv.z, av.w, bv.w, b[1][0], b[1][1]);
}

// Where register r (0..3) of a lane's m16n8 accumulator lands when a tile pair is the MMA's A
// operand (16 weight rows: the pair's first tile, then its second) and tokens are its B operand:
// token pair_token (from the first token, base; half h: tokens 8h ..), in tile pair_tile of the
// pair (0 or 1), at column lane / 4 of that tile.
template <typename T>
__device__ __forceinline__ T pair_token(T base, int h, int r, int lane) {
    return base + 8 * h + 2 * (lane % 4) + (r & 1);
}
__device__ __forceinline__ int pair_tile(int r) { return r >= 2 ? 1 : 0; }

template <bool F16>
__device__ __forceinline__ void store1(void *y, int64_t i, float v) {
    if constexpr (F16) static_cast<__half *>(y)[i] = __float2half_rn(v);
    else static_cast<__nv_bfloat16 *>(y)[i] = __float2bfloat16_rn(v);
}

template <bool F16>
__device__ __forceinline__ void store2(void *y, int64_t i, float v0, float v1) {
    if constexpr (F16) *reinterpret_cast<__half2 *>(static_cast<__half *>(y) + i) = __floats2half2_rn(v0, v1);
    else *reinterpret_cast<__nv_bfloat162 *>(static_cast<__nv_bfloat16 *>(y) + i) = __floats2bfloat162_rn(v0, v1);
}

__device__ __forceinline__ float epilogue(const Problem &p, float acc, float inv_g, int64_t row, int64_t col) {
    float v = acc * inv_g;
    if (p.row_scale) v *= p.row_scale[row];
    if (p.bias) v += p.bias[col];
    return v;
}

__device__ __forceinline__ uint4 ldg16(const void *p) { return __ldg(static_cast<const uint4 *>(p)); }

// Weights are read once: keep them out of L1.
__device__ __forceinline__ uint4 ldg16_stream(const void *p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

}  // namespace slip::cuda::fp4
