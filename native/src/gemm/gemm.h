// Internal interface of the CPU GEMM: one packed layout shared by every ISA, the microkernels
// each ISA file provides, and the two drivers (FP32 and INT8).
//
// Layouts (the same for every ISA, so a plan made at one slip_set_isa level runs at any other):
//   A (activations) FP32: panels of MR rows: [ceil(M/MR)][K][MR], rows past M zero.
//   B (weight)      FP32: K blocks of KC, each all panels of NR columns: [K/KC][ceil(N/NR)][KC][NR]
//                   (the last block kc = K mod KC deep), columns past N zero. One block of
//                   panels is contiguous: no cache-set aliasing from a K-long panel stride.
//   A INT8: u8 (int8 + 128) panels [ceil(M/MR)][K4][MR][4], K4 = ceil(K/4).
//   B INT8: s8 panels [ceil(N/NR)][K4][NR][4]: one K4 step of a panel is two 64-byte vectors,
//           exactly what vpdpbusd consumes (4 consecutive k per 32-bit lane).
// MR x NR = 14 x 32 is the AVX-512 register tile: 28 accumulators + 2 B vectors + 1 broadcast
// of 32 zmm; 28 independent FMAs cover the 4-cycle latency of 2 FMA ports 3.5 times.
#pragma once

#include <cstdint>
#include <vector>

#include "slipstream.h"

namespace slip::gemm {

constexpr int MR = 14;
constexpr int NR = 32;
constexpr int64_t KC = 256;     // FP32 K block: a B micro-panel (KC x NR x 4 B = 32 KiB) fits L1
constexpr int64_t KC4 = 256;    // INT8 K block in steps of 4: also 32 KiB of B per micro-panel
constexpr int64_t MC = 14 * 12; // rows of A kept in L2 while one B block is swept

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// 64-byte aligned float / byte buffers (vector loads of packed panels never split lines).
template <class T>
struct Aligned {
    T *p = nullptr;
    int64_t n = 0;
    Aligned() = default;
    explicit Aligned(int64_t count);
    ~Aligned();
    Aligned(Aligned &&o) noexcept : p(o.p), n(o.n) { o.p = nullptr; o.n = 0; }
    Aligned &operator=(Aligned &&o) noexcept;
    Aligned(const Aligned &) = delete;
    T *data() const { return p; }
};

// ---- microkernels. c is row-major with row stride ldc; mr <= MR rows, nr <= NR columns are
// valid; accumulate: add to c, else overwrite it.
// FP32: c[mr x nr] (+)= A panel slice (kc x MR) · B panel slice (kc x NR).
using KernelF32 = void (*)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                           int mr, int nr, bool accumulate);
// INT8: c (int32) (+)= sum over kc4 steps of u8 A x s8 B.
using KernelI8 = void (*)(int64_t kc4, const uint8_t *a, const int8_t *b, int32_t *c,
                          int64_t ldc, int mr, int nr, bool accumulate);
// GEMV on one B panel: y[0..nr) = sum_k x[k] * b[k][0..nr) over k in [0, kc) (overwrites).
using GemvF32 = void (*)(int64_t kc, const float *x, const float *b, float *y, int nr);
// GEMV on a raw row-major weight: y[r] = sum_k x[k] * w[r * ldw + k] for r < rows <= 4
// (overwrites). slip_gemm_f32 at M = 1 streams W once this way, with no packing.
using DotRowsF32 = void (*)(int64_t k, const float *x, const float *w, int64_t ldw, int rows, float *y);

void kernel_f32_portable(int64_t, const float *, const float *, float *, int64_t, int, int, bool);
void kernel_f32_avx2(int64_t, const float *, const float *, float *, int64_t, int, int, bool);
void kernel_f32_avx512(int64_t, const float *, const float *, float *, int64_t, int, int, bool);
void gemv_f32_portable(int64_t, const float *, const float *, float *, int);
void gemv_f32_avx2(int64_t, const float *, const float *, float *, int);
void gemv_f32_avx512(int64_t, const float *, const float *, float *, int);
void dot_rows_f32_portable(int64_t, const float *, const float *, int64_t, int, float *);
void dot_rows_f32_avx2(int64_t, const float *, const float *, int64_t, int, float *);
void dot_rows_f32_avx512(int64_t, const float *, const float *, int64_t, int, float *);
void kernel_i8_portable(int64_t, const uint8_t *, const int8_t *, int32_t *, int64_t, int, int,
                        bool);
void kernel_i8_avx512vnni(int64_t, const uint8_t *, const int8_t *, int32_t *, int64_t, int,
                          int, bool);

KernelF32 pick_kernel_f32();
GemvF32 pick_gemv_f32();
DotRowsF32 pick_dot_rows_f32();
KernelI8 pick_kernel_i8();

// ---- packing
void pack_a_f32(const float *x, int64_t m, int64_t k, float *dst);  // dst: ceil(m/MR)*MR*k
void pack_b_f32(const float *w, int64_t n, int64_t k, float *dst);  // dst: ceil(n/NR)*NR*k, K-blocked
void pack_b_i8(const int8_t *w, int64_t n, int64_t k, int8_t *dst, int32_t *colsum);

// The weight of an FP32 product, as the driver sees it: either fully packed panels, or a
// decoder that writes the block [k0, k0+kc) x [n0, n0+nc) into panels on the fly (quantized
// weight-only formats keep 4 or 8 bits per weight in memory and expand one L2 block at a time).
struct BSource {
    int64_t n = 0, k = 0;
    const float *packed = nullptr;  // the K-blocked panel layout above, when set
    // Writes ceil(nc/NR) panels of kc x NR, panel stride kc*NR; n0 is a multiple of NR.
    virtual void decode(int64_t n0, int64_t nc, int64_t k0, int64_t kc, float *dst) const;
    virtual ~BSource() = default;
};

// y[m, n] = sum_k x[m,k] * B[n,k], then y = y * row_scale[m] * col_scale[n] + bias[n] for the
// epilogue terms that are non-null. x: row-major [m, k].
struct Epilogue {
    const float *row_scale = nullptr;  // [m]
    const float *col_scale = nullptr;  // [n]
    const float *bias = nullptr;       // [n]
};
void run_f32(const float *x, int64_t m, const BSource &b, const Epilogue &ep, float *y);
// slip_gemm_f32: W [n, k] row-major, packed block by block inside the driver.
void gemm_f32_raw(const float *x, int64_t m, const float *w, int64_t n, int64_t k,
                  const float *bias, float *y);

// INT8: xq u8 panels (pack of shifted int8 activations), B int8 panels with colsums.
// y = (acc - 128 colsum) * row_scale[m] * col_scale[n] + bias[n].
struct PackedI8 {
    int64_t n = 0, k = 0;
    Aligned<int8_t> panels;
    std::vector<int32_t> colsum;
    std::vector<float> scale;  // per output row of W
};
void run_i8(const float *x, int64_t m, const PackedI8 &w, const float *bias, float *y);

// The largest |x| of activation row r (k values), refusing NaN and Inf with an error that names the
// row; vec: the AVX-512 form (k a multiple of 16), same result (act.cpp).
float activation_row_amax(const float *row, int64_t k, int64_t r, bool vec = false);

// The epilogue, in one baseline-compiled place so every ISA rounds identically.
void apply_epilogue(float *y, int64_t ldy, int64_t rows, int64_t n0, int64_t cols,
                    const float *row_scale, const float *col_scale, const float *bias);

}  // namespace slip::gemm
