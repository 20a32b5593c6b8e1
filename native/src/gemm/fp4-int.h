// NVFP4 weights against integer-coded activations (W4A8: per-token INT8; W4A4: NVFP4), as exact
// integer dot products per 16-column group.
//
// Every E2M1 value times 2 is an integer in {0, ±1, ±2, ±3, ±4, ±6, ±8, ±12}, so a weight element
// is w2 · ws with w2 = 2·e2m1 an int8 and ws = fp8_scale / global / 2 the group's float; NVFP4
// activations decompose the same way (q · s / (2 g)) and INT8 ones are q · amax/127. So
//   y[m, n] = a[m] · Σ_g ws[n, g] · (s[m, g]) · Σ_{k in g} q[m, k] · w2[n, k],
// the inner sum exact in int32 (|sum| <= 16 · 127 · 12), one or two float FMAs per group, and
// a[m] (amax/127, or 1 / (2 g)) applied once at the end.
//
// Resident weight: the codes, still 4 bits, and the raw E4M3 group scales, 1 byte per 16:
// 0.5625 bytes per weight element (4.5 bits), plus columns padded to NR and a 1 KiB scale table.
// Panel by panel the kernel unpacks them into a per-thread buffer (u8 codes + float scales) that
// every row of the job then reuses.
#pragma once

#include <cstdint>
#include <vector>

#include "gemm.h"

namespace slip::gemm {

constexpr int64_t kFp4Group = 16;
// Rows of the microkernel's tile (its width is NR): 2·6 int32 and 2·6 float accumulators, two B
// vectors and the magic constant fit the 32 zmm registers.
constexpr int kFp4Rows = 6;
// One group of one unpacked panel: 4 steps of 4 k x NR u8 codes (the vpdpbusd B layout of
// gemm.h), then NR float scales.
constexpr int64_t kFp4GroupBytes = 4 * NR * 4 + NR * 4;
// The kernel's accumulator starts at the bits of 1.5·2^23 (minus the code-shift term below): an
// int32 d added to them, |d| < 2^22, reads as the float 1.5·2^23 + d exactly, and one subtract
// gives d as a float, on either FP port, where vcvtdq2ps would queue behind vpdpbusd on port 0.
constexpr int32_t kFp4MagicBits = 0x4B400000;
constexpr float kFp4Magic = 12582912.0f;

// The weight: 4-bit codes in the order the kernel consumes them, so unpacking is two table
// lookups per 64 bytes. Per panel of NR columns, per group, per step of 4 k: 64 bytes, byte i
// holding column i/4 (low nibble) and column 16 + i/4 (high nibble) at k = 4·step + i%4.
// Columns past N have code 0 and scale 0. Also a BSource: the FP32 emulation below VNNI decodes
// the same bytes.
struct PackedFp4 : BSource {
    int64_t groups = 0;                 // k / 16
    Aligned<uint8_t> codes;             // [ceil(n/NR)][groups][4][64]
    std::vector<uint8_t> scales;        // [ceil(n/NR)][groups][NR] E4M3 codes
    float scale_lut[256] = {};          // E4M3 code -> decode(code) / global / 2
    float global = 1.0f;                // the weight's global scale (a divisor)
    void decode(int64_t n0, int64_t nc, int64_t k0, int64_t kc, float *dst) const override;
};

// The AVX-512 decode of the same panels (fp4-decode-avx512.cpp), bit-identical; decode()
// dispatches to it when NR is 32.
void decode_fp4_avx512(const PackedFp4 &w, int64_t n0, int64_t nc, int64_t k0, int64_t kc, float *dst);

// codes: NVFP4 [n, k/2] bytes (even column in the low nibble); scales: E4M3 [n, k/16].
void pack_fp4(const uint8_t *codes, const uint8_t *scales, float global, int64_t n, int64_t k, PackedFp4 &out);

// The activations' per-group terms, one record per (panel of kFp4Rows rows, group), the rows at
// fixed offsets in it: the kernel follows one pointer. (Separate [row][group] arrays took a
// register per row and array; the spills to vector registers and back ran on port 0, beside
// vpdpbusd.) For row slot i < kFp4Rows a record holds
//   W4A8, 8 int32:   [i] init = kFp4MagicBits - 12 · Σ codes of the row's group
//   W4A4, 24 int32:  [4 i] init, [4 i + 1] float s, the activation's E4M3 block scale, and
//                    [4 i + 2] float kFp4Magic · s. Both exact, so one FMA, (kFp4Magic + d) · s -
//                    kFp4Magic · s, recovers the integer d from the accumulator and scales it,
//                    rounding once.
constexpr int64_t fp4_meta_stride(bool a4) { return a4 ? 24 : 8; }
// Row r's slot in its record for group 0 (group g: + g · stride).
constexpr int64_t fp4_meta_row(int64_t r, int64_t groups, bool a4) {
    return (r / kFp4Rows) * groups * fp4_meta_stride(a4) + (a4 ? 4 : 1) * (r % kFp4Rows);
}

// One microkernel call: c[mr x nr] (+)= the tile's sum over `groups` groups.
struct Fp4Tile {
    int64_t groups;
    const int8_t *a;       // mr rows of activation codes at the block's first column, stride lda
    int64_t lda;
    const int32_t *meta;   // the rows' records, from the block's first group on
    bool a4;
    const uint8_t *b;      // groups x kFp4GroupBytes of unpacked panel
    float *c;
    int64_t ldc;
    int mr, nr;
    bool accumulate;
    // The epilogue, on the last K block: c = c · row_scale[r] · out_scale + bias[j] (the terms set).
    bool last;
    const float *row_scale;  // [mr]: W4A8's activation scale
    float out_scale;         // W4A4: the activations' 1 / (2 · global); 1 for W4A8
    const float *bias;       // [nr]
};
void kernel_fp4_avx512vnni(const Fp4Tile &t);
// Panel p, groups [g0, g0 + gc) into dst (gc x kFp4GroupBytes, 64-byte aligned).
void unpack_fp4_avx512vnni(const PackedFp4 &w, int64_t p, int64_t g0, int64_t gc, uint8_t *dst);

// The activations' codes (AVX-512 rows): q [m, k] int8, and meta, the records above
// (ceil(m / kFp4Rows) · k/16 · stride int32). INT8 writes scale [m] = amax/127; NVFP4 returns its
// global scale g (a code q decodes to q · s / (2 g)). k a multiple of 16.
void quantize_i8_codes(const float *x, int64_t m, int64_t k, int8_t *q, int32_t *meta, float *scale);
float quantize_nvfp4_codes(const float *x, int64_t m, int64_t k, float global, int8_t *q, int32_t *meta);
// Rows of them (the INT8 one given its scale; meta at the row's record), and a row's amax (k a
// multiple of 16; NaN kept).
void quantize_i8_codes_row_avx512(const float *row, int64_t k, float s, int8_t *q, int32_t *meta);
void quantize_nvfp4_codes_row_avx512(const float *row, int64_t k, float g, int8_t *q, int32_t *meta);
float row_amax_avx512(const float *row, int64_t k);

// y = x · Wᵀ (+ bias) with activations quantized per call (a4: NVFP4 with act_global, else
// INT8). Integer kernel at AVX-512 VNNI; below it, the FP32 emulation (the decoded activations
// times the decoded weight), equal up to FP32 summation order.
void run_fp4(const float *x, int64_t m, const PackedFp4 &w, bool a4, float act_global, const float *bias,
             float *y);

}  // namespace slip::gemm
