// x to E4M3 per token for the W4A8 products: the GEMVs' exact 16-bit images (quantize_fp8) and
// the FP8 tensor-core kernel's permuted bytes (quantize_fp8_permuted), one kernel for both.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "../cuda-common.cuh"
#include "../scale-divide.cuh"
#include "fp4-cuda.cuh"
#include "fp4-decode.cuh"

namespace slip::cuda::fp4 {

namespace {

// A 16-bit value (the low 16 bits) to a float, exactly.
template <bool F16>
__device__ __forceinline__ float to_float(uint32_t bits16) {
    if constexpr (F16) return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16)));
    else return __uint_as_float(bits16 << 16);
}

// Two 16-bit values x / s to two E4M3 bytes (nearest even, saturating: the CPU's RNE_sat), the low
// one in bits 0..7.
template <bool F16>
__device__ __forceinline__ uint32_t fp8_bytes(uint32_t v, const Divisor &s) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 890
    __trap();
    return 0;
#else
    const float a = quotient(to_float<F16>(v & 0xFFFFu), s);
    const float b = quotient(to_float<F16>(v >> 16), s);
    uint16_t e;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(e) : "f"(b), "f"(a));
    return e;
#endif
}

// The same two values rounded to E4M3, back in the 16-bit type (exact: at most 4 significant bits).
template <bool F16>
__device__ __forceinline__ uint32_t fp8_pair(uint32_t v, const Divisor &s) {
    const uint32_t h = e4m3x2_to_f16x2(fp8_bytes<F16>(v, s));
    if constexpr (F16) return h;
    const float f0 = __half2float(__ushort_as_half(static_cast<unsigned short>(h & 0xFFFFu)));
    const float f1 = __half2float(__ushort_as_half(static_cast<unsigned short>(h >> 16)));
    return prmt(__float_as_uint(f0), __float_as_uint(f1), 0x7632u);
}

// Rows of x to E4M3 per token (scale amax / 448) in one pass over HBM. The CTAs stay resident and
// walk the rows (blockIdx.x, then every gridDim.x-th): each thread holds its groups of 8 columns of
// a row (16-byte loads) in registers while the CTA finds the amax, and has issued the loads of its
// next row before it starts on this one, so that a CTA's loads run beside its reduction and stores.
// On an H200 at 4,096 rows, same-run A/B: 16.0-16.2 us at K 4,096 and 28.9-29.2 at 8,192, where
// one CTA a row that loaded, reduced and stored in turn took 17.6 and 29.4 (DRAM at 48% of its
// peak); rows staged through a cp.async ring of shared memory instead of registers were no faster
// than that (17.9 against 17.5, bench/NOTES.md). A row longer than kQuantHeld groups a thread has the
// rest read a second time, from L2. The output is either the values rounded to E4M3 and back in
// the 16-bit type, in x's order (the GEMVs' W4A8), or E4M3 bytes in the FP8 kernel's order
// (PERMUTED: XPERM within each 128-column chunk, fp4-cuda.cuh), reordered across a half-warp by
// shuffles.
constexpr int kQuantHeld = 8;
constexpr int kQuantMaxThreads = 512;

// The largest magnitude of each half over a group, as a 16-bit pair: the sign bits cleared, then
// the type's packed max (a NaN loses to a number, as in fmaxf). One instruction a pair of values
// where the float route takes three a value.
template <bool F16>
__device__ __forceinline__ uint32_t group_amax2(const uint4 &v, uint32_t amax) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if constexpr (F16) asm("max.f16x2 %0, %0, %1;\n" : "+r"(amax) : "r"(w[j] & 0x7FFF7FFFu));
        else asm("max.bf16x2 %0, %0, %1;\n" : "+r"(amax) : "r"(w[j] & 0x7FFF7FFFu));
    }
    return amax;
}

template <bool F16, bool PERMUTED>
__device__ __forceinline__ void store_group(uint8_t *out, int li, int groups, const uint4 &v, const Divisor &dv) {
    if constexpr (PERMUTED) {
        // Group u = li % 16 of chunk li / 16 is columns 32q + 8s .. + 7 (u = 4q + s): its first four
        // go to positions 32s + 4q, its last four to 32s + 16 + 4q. Lane L writes positions 8w .. 8w + 7
        // (w = L % 16: piece h = w / 2 = 2s + a, q = 2 (w % 2) and that + 1) of its half-warp's chunk,
        // taking them from the lanes that hold those groups.
        const uint32_t lo = fp8_bytes<F16>(v.x, dv) | fp8_bytes<F16>(v.y, dv) << 16;
        const uint32_t hi = fp8_bytes<F16>(v.z, dv) | fp8_bytes<F16>(v.w, dv) << 16;
        const int lane = threadIdx.x % 32, wi = lane % 16, h = wi / 2, sx = h / 2, a = h % 2;
        const int src = (lane & 16) + 8 * (wi % 2) + sx;
        const uint32_t lo0 = __shfl_sync(0xFFFFFFFFu, lo, src), hi0 = __shfl_sync(0xFFFFFFFFu, hi, src);
        const uint32_t lo1 = __shfl_sync(0xFFFFFFFFu, lo, src + 4), hi1 = __shfl_sync(0xFFFFFFFFu, hi, src + 4);
        if (li < groups)
            *reinterpret_cast<uint2 *>(out + 8 * static_cast<int64_t>(li)) = make_uint2(a ? hi0 : lo0, a ? hi1 : lo1);
    } else {
        if (li < groups)
            *reinterpret_cast<uint4 *>(out + 16 * static_cast<int64_t>(li)) =
                make_uint4(fp8_pair<F16>(v.x, dv), fp8_pair<F16>(v.y, dv), fp8_pair<F16>(v.z, dv), fp8_pair<F16>(v.w, dv));
    }
}

template <bool F16, bool PERMUTED>
__global__ void __launch_bounds__(kQuantMaxThreads) quantize_rows_kernel(const uint16_t *x, int64_t m, int64_t k,
                                                                          int groups, int64_t out_row, uint8_t *q,
                                                                          float *scale) {
    __shared__ float part[2][kQuantMaxThreads / 32];  // a row's warp maxima, alternate rows alternate halves
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // The FP8 GEMM after the permuted quantizer is launched as its programmatic dependent
    // (gemm_sm90): it may start now and waits for this grid's writes at griddepcontrol.wait.
    if constexpr (PERMUTED) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
    const int step = static_cast<int>(blockDim.x), tid = static_cast<int>(threadIdx.x);
    auto load = [&](const uint16_t *row, int li) {  // past K (the permuted order's last chunk): zeros
        const int64_t col = 8 * static_cast<int64_t>(li);
        return col < k ? ldg16(row + col) : make_uint4(0u, 0u, 0u, 0u);
    };
    auto load_held = [&](int64_t r, uint4(&v)[kQuantHeld]) {
        const uint16_t *row = x + r * k;
#pragma unroll
        for (int i = 0; i < kQuantHeld; ++i) {
            const int li = tid + i * step;
            v[i] = li < groups ? load(row, li) : make_uint4(0u, 0u, 0u, 0u);
        }
    };
    // Row r from its held groups v, the loads of row r + gridDim.x into next issued first.
    auto row_pass = [&](int64_t r, int parity, const uint4(&v)[kQuantHeld], uint4(&next)[kQuantHeld]) {
        if (r + gridDim.x < m) load_held(r + gridDim.x, next);
        const uint16_t *row = x + r * k;
        uint8_t *out = q + r * out_row;
        uint32_t amax2 = 0u;
#pragma unroll
        for (int i = 0; i < kQuantHeld; ++i) amax2 = group_amax2<F16>(v[i], amax2);
        for (int li = tid + kQuantHeld * step; li < groups; li += step) amax2 = group_amax2<F16>(load(row, li), amax2);
        float amax = fmaxf(to_float<F16>(amax2 & 0xFFFFu), to_float<F16>(amax2 >> 16));
#pragma unroll
        for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
        if (tid % 32 == 0) part[parity][tid / 32] = amax;
        __syncthreads();
        amax = part[parity][0];
        for (int i = 1; i < step / 32; ++i) amax = fmaxf(amax, part[parity][i]);
        const float s = amax / 448.0f;
        if (tid == 0) scale[r] = s;
        const Divisor dv = divisor(s);
#pragma unroll
        for (int i = 0; i < kQuantHeld; ++i) store_group<F16, PERMUTED>(out, tid + i * step, groups, v[i], dv);
        // Whole warps go round (the shuffles need every lane).
        for (int base = kQuantHeld * step; base < groups; base += step) {
            const int li = base + tid;
            store_group<F16, PERMUTED>(out, li, groups, li < groups ? load(row, li) : make_uint4(0u, 0u, 0u, 0u), dv);
        }
    };
    // Two register sets take turns (no copies between rows).
    uint4 a[kQuantHeld], b[kQuantHeld];
    int64_t r = blockIdx.x;
    load_held(r, a);
    while (true) {
        row_pass(r, 0, a, b);
        if ((r += gridDim.x) >= m) break;
        row_pass(r, 1, b, a);
        if ((r += gridDim.x) >= m) break;
    }
}

// CTAs of the quantizer that stay resident together on an SM of the current device at `warps`
// warps, asked of the runtime once per (device, block size): every W4A8 call quantizes its x, and
// the query is host time on each.
template <bool F16, bool PERMUTED>
int resident_ctas(int warps) {
    constexpr int kDevices = 64;
    static std::atomic<int> known[kDevices][kQuantMaxThreads / 32 + 1];  // 0: not asked yet
    int dev = 0;
    check_cuda(cudaGetDevice(&dev), "cudaGetDevice (activation quantizer)");
    std::atomic<int> *slot = dev >= 0 && dev < kDevices ? &known[dev][warps] : nullptr;
    if (slot)
        if (const int n = slot->load(std::memory_order_relaxed)) return n;
    int per_sm = 1;
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, quantize_rows_kernel<F16, PERMUTED>, 32 * warps, 0),
               "cudaOccupancyMaxActiveBlocksPerMultiprocessor (activation quantizer)");
    per_sm = std::max(per_sm, 1);
    if (slot) slot->store(per_sm, std::memory_order_relaxed);
    return per_sm;
}

template <bool PERMUTED>
void quantize_rows(const void *x, int64_t m, int64_t k, int groups, int64_t out_row, bool f16, uint8_t *q, float *scale,
                   int sm_count, cudaStream_t stream) {
    const auto *xs = static_cast<const uint16_t *>(x);
    const int warps =
        std::min<int>(kQuantMaxThreads / 32, std::max<int>(1, (groups + 32 * kQuantHeld - 1) / (32 * kQuantHeld)));
    auto go = [&](auto f16_tag) {
        constexpr bool F16 = decltype(f16_tag)::value;
        // As many CTAs as stay resident together, each walking its share of the rows.
        const int64_t ctas = std::min<int64_t>(m, int64_t{resident_ctas<F16, PERMUTED>(warps)} * std::max(sm_count, 1));
        quantize_rows_kernel<F16, PERMUTED>
            <<<static_cast<unsigned>(ctas), 32 * warps, 0, stream>>>(xs, m, k, groups, out_row, q, scale);
    };
    if (f16) go(std::true_type{});
    else go(std::false_type{});
}

}  // namespace

void quantize_fp8(const void *x, int64_t m, int64_t k, bool f16, void *q, float *scale, int sm_count,
                  cudaStream_t stream) {
    quantize_rows<false>(x, m, k, static_cast<int>(k / 8), 2 * k, f16, static_cast<uint8_t *>(q), scale, sm_count,
                         stream);
}

void quantize_fp8_permuted(const void *x, int64_t m, int64_t k, int nchunks, bool f16, uint8_t *q, float *scale,
                           int sm_count, cudaStream_t stream) {
    quantize_rows<true>(x, m, k, nchunks * (kChunk / 8), int64_t{nchunks} * kChunk, f16, q, scale, sm_count, stream);
}

}  // namespace slip::cuda::fp4
