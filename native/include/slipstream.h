/*
 * slipstream.h — the C ABI of libslipstream. The only public header.
 *
 * Node (native/node) and Python (adapters/torch, through ctypes) load the very same shared
 * library through this header. Everything that crosses it is plain C: fixed-width integers,
 * caller-owned memory, status codes. No exceptions cross; no allocation is hidden from the
 * caller; nothing aborts on user input.
 *
 * Worked example: quantize a [N, K] float32 weight to NVFP4 as compressed-tensors stores it.
 *
 *     float w[64 * 32];                        // N = 64 rows, K = 32 columns
 *     uint8_t packed[64 * 16];                 // two E2M1 codes per byte along K
 *     uint8_t scales[64 * 2];                  // one E4M3 scale per 16 elements
 *     float global_scale;                      // 448*6/amax, stored "as a divisor"
 *
 *     slip_tensor x, q, s, g;
 *     int64_t wshape[2] = {64, 32}, qshape[2] = {64, 16}, sshape[2] = {64, 2}, gshape[1] = {1};
 *     slip_tensor_init(&x, w, SLIP_DTYPE_F32, 2, wshape);
 *     slip_tensor_init(&q, packed, SLIP_DTYPE_U8, 2, qshape);
 *     slip_tensor_init(&s, scales, SLIP_DTYPE_F8_E4M3, 2, sshape);
 *     slip_tensor_init(&g, &global_scale, SLIP_DTYPE_F32, 1, gshape);
 *
 *     slip_quant_params p;
 *     slip_quant_params_init(&p, SLIP_FORMAT_NVFP4);   // granularity, group size: the format's
 *     if (slip_quantize(&x, &p, &q, &s, &g) != SLIP_STATUS_OK)
 *         fprintf(stderr, "%s\n", slip_last_error());  // "expected ... for <argument>, got ..."
 *
 * Conventions
 *   - Names: slip_<object>_<action>; enum values SLIP_<ENUM>_<VALUE>.
 *   - Tensors are dense row-major unless strides say otherwise; strides count elements.
 *     Packed sub-byte formats are described by their container (U8 or I32) shape.
 *   - Matrices follow PyTorch's Linear: weight W is [N, K] (out, in), activations X are [M, K],
 *     Y = X · Wᵀ is [M, N].
 *   - Every entry point returns slip_status. On failure slip_last_error() returns a sentence for
 *     the calling thread ("expected <what> for <argument>, got <value>").
 */
#ifndef SLIPSTREAM_H
#define SLIPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SLIP_API __declspec(dllexport)
#else
#define SLIP_API __attribute__((visibility("default")))
#endif

/* Bumped on any incompatible change; loaders refuse a library whose version differs. */
#define SLIP_ABI_VERSION 1
#define SLIP_MAX_DIMS 8

/* ---------------------------------------------------------------- status and errors */

typedef enum slip_status {
    SLIP_STATUS_OK = 0,
    SLIP_STATUS_INVALID_ARGUMENT = 1, /* a null pointer, a bad enum value, an option out of range */
    SLIP_STATUS_SHAPE_MISMATCH = 2,   /* a tensor's rank or extents are not what the op needs */
    SLIP_STATUS_DTYPE_MISMATCH = 3,   /* a tensor's dtype is not what the op needs */
    SLIP_STATUS_NON_FINITE = 4,       /* NaN or Inf in an input that must be finite */
    SLIP_STATUS_UNSUPPORTED = 5,      /* valid request, but this build or device cannot run it */
    SLIP_STATUS_OUT_OF_MEMORY = 6,
    SLIP_STATUS_CUDA_ERROR = 7,
    SLIP_STATUS_INTERNAL = 8          /* a bug in libslipstream: please report it */
} slip_status;

#define SLIP_STATUS_COUNT 9

/* Stable name of a status code, e.g. "SLIP_STATUS_SHAPE_MISMATCH". Never NULL. */
SLIP_API const char *slip_status_string(slip_status status);
/* The calling thread's last error sentence; "" when the last call succeeded. Valid until the
 * thread's next call into the library. */
SLIP_API const char *slip_last_error(void);

/* ---------------------------------------------------------------- version and capabilities */

SLIP_API uint32_t slip_abi_version(void);
SLIP_API const char *slip_version_string(void);

/* CPU feature bits, as detected at load time (cpuid + xgetbv). */
typedef enum slip_cpu_feature {
    SLIP_CPU_AVX2 = 1u << 0,
    SLIP_CPU_FMA = 1u << 1,
    SLIP_CPU_F16C = 1u << 2,
    SLIP_CPU_AVX512F = 1u << 3,
    SLIP_CPU_AVX512BW = 1u << 4,
    SLIP_CPU_AVX512VL = 1u << 5,
    SLIP_CPU_AVX512VNNI = 1u << 6,
    SLIP_CPU_AVX512BF16 = 1u << 7,
    SLIP_CPU_AVXVNNI = 1u << 8,
    SLIP_CPU_AMX_TILE = 1u << 9,  /* AMX tiles, with the OS's permission to use their state */
    SLIP_CPU_AMX_BF16 = 1u << 10,
    SLIP_CPU_AMX_INT8 = 1u << 11
} slip_cpu_feature;

/* Instruction-set levels that kernels are dispatched on, lowest first. */
typedef enum slip_isa {
    SLIP_ISA_PORTABLE = 0,   /* plain C++; runs on any x86-64 (and elsewhere) */
    SLIP_ISA_AVX2 = 1,       /* AVX2 + FMA + F16C */
    SLIP_ISA_AVX512 = 2,     /* AVX-512 F/BW/VL/DQ */
    SLIP_ISA_AVX512VNNI = 3, /* AVX-512 plus VNNI int8 dot products */
    SLIP_ISA_AMX = 4         /* AVX512VNNI plus AVX-512 BF16 and AMX tiles (BF16, INT8) */
} slip_isa;

typedef struct slip_capabilities {
    uint32_t abi_version;
    uint32_t cpu_features;     /* slip_cpu_feature bits */
    int32_t isa_detected;      /* best slip_isa this CPU supports */
    int32_t isa_active;        /* the level kernels dispatch on now (<= detected) */
    int32_t num_threads;       /* size of the thread pool */
    int32_t cuda_compiled;     /* 1 when CUDA sources were built into this library */
    int32_t cuda_device_count; /* 0 when not compiled, no driver or no device */
    int32_t reserved;
} slip_capabilities;

SLIP_API slip_status slip_get_capabilities(slip_capabilities *out);

/* Comma-separated names of the kernels this build provides ("quantize,dequantize,gemm_f32,...")
 * written into buf (NUL-terminated). *needed receives the size including the NUL; a buffer too
 * small gives SLIP_STATUS_INVALID_ARGUMENT and writes nothing. */
SLIP_API slip_status slip_list_kernels(char *buf, size_t buf_size, size_t *needed);

/* Force kernels to a lower instruction-set level (tests compare levels; users work around a bad
 * CPU). Asking above the detected level gives SLIP_STATUS_UNSUPPORTED. The environment variable
 * SLIPSTREAM_ISA (portable|avx2|avx512|avx512vnni|amx) sets the initial level. */
SLIP_API slip_status slip_set_isa(slip_isa isa);

/* Thread pool size. SLIPSTREAM_NUM_THREADS sets the initial size; default: all cores. */
SLIP_API slip_status slip_set_num_threads(int32_t n);

/* ---------------------------------------------------------------- tensors */

typedef enum slip_dtype {
    SLIP_DTYPE_F32 = 0,
    SLIP_DTYPE_F16 = 1,
    SLIP_DTYPE_BF16 = 2,
    SLIP_DTYPE_F64 = 3,
    SLIP_DTYPE_F8_E4M3 = 4, /* OCP E4M3FN: bias 7, max 448, no Inf, 0x7F/0xFF are NaN */
    SLIP_DTYPE_F8_E5M2 = 5, /* OCP E5M2: bias 15, max 57344, IEEE-like Inf and NaN */
    SLIP_DTYPE_I8 = 6,
    SLIP_DTYPE_U8 = 7,
    SLIP_DTYPE_I32 = 8,
    SLIP_DTYPE_I64 = 9
} slip_dtype;

#define SLIP_DTYPE_COUNT 10

typedef enum slip_device { SLIP_DEVICE_CPU = 0, SLIP_DEVICE_CUDA = 1 } slip_device;

typedef struct slip_tensor {
    void *data;
    int32_t dtype;   /* slip_dtype */
    int32_t device;  /* slip_device */
    int32_t device_index;
    int32_t ndim;
    int64_t shape[SLIP_MAX_DIMS];
    int64_t strides[SLIP_MAX_DIMS]; /* in elements */
    void *stream;    /* cudaStream_t for CUDA tensors; NULL = default stream */
} slip_tensor;

/* Fill a descriptor for a dense row-major CPU tensor. */
SLIP_API slip_status slip_tensor_init(slip_tensor *t, void *data, slip_dtype dtype, int32_t ndim,
                                      const int64_t *shape);
/* Size of one element in bytes (1 for the FP8 types). 0 for an unknown dtype. */
SLIP_API size_t slip_dtype_size(slip_dtype dtype);
/* Stable name, e.g. "F8_E4M3" (the safetensors spelling). */
SLIP_API const char *slip_dtype_name(slip_dtype dtype);

/* ---------------------------------------------------------------- element codecs
 *
 * Scalar number formats, element by element, with no scaling: float32 in, one code per byte out.
 * Encoding rounds to nearest, ties to even, and saturates to the largest finite magnitude
 * (the "satfinite" conversion of the hardware). NaN encodes to the format's NaN (E2M1 has none:
 * NaN input is an error there). decode(encode(x)) is exact for every representable x.
 */
typedef enum slip_element_format {
    SLIP_ELEMENT_E4M3 = 0, /* FP8 E4M3FN, max 448 */
    SLIP_ELEMENT_E5M2 = 1, /* FP8 E5M2, max 57344 */
    SLIP_ELEMENT_E2M1 = 2, /* FP4 E2M1 (NVFP4/MXFP4 elements), max 6; code in the low 4 bits */
    SLIP_ELEMENT_E8M0 = 3  /* MX scale: 2^(code-127); 0xFF is NaN; encode rounds log2 down */
} slip_element_format;

typedef enum slip_rounding {
    SLIP_ROUND_NEAREST_EVEN = 0,
    SLIP_ROUND_STOCHASTIC = 1 /* unbiased: E[decode(encode(x))] = x inside the range */
} slip_rounding;

/* n elements; seed used only by stochastic rounding (a counter-based generator: the result
 * depends on (seed, element index) only, never on thread count). */
SLIP_API slip_status slip_element_encode(slip_element_format fmt, const float *in, uint8_t *out,
                                         int64_t n, slip_rounding rounding, uint64_t seed);
SLIP_API slip_status slip_element_decode(slip_element_format fmt, const uint8_t *in, float *out,
                                         int64_t n);

/* Two 4-bit codes per byte: element 2i in the low nibble, 2i+1 in the high nibble (the order of
 * compressed-tensors' and ModelOpt's NVFP4). n must be even. */
SLIP_API slip_status slip_pack_nibbles(const uint8_t *codes, uint8_t *packed, int64_t n);
SLIP_API slip_status slip_unpack_nibbles(const uint8_t *packed, uint8_t *codes, int64_t n);

/* compressed-tensors' pack-quantized layout for signed ints of `bits` (4 or 8) bits: values are
 * offset by 2^(bits-1) and packed little-end-first into int32 words along each row.
 * values: [rows, cols] int8; packed: [rows, ceil(cols*bits/32)] int32. */
SLIP_API slip_status slip_pack_int_ct(const int8_t *values, int32_t *packed, int64_t rows,
                                      int64_t cols, int32_t bits);
SLIP_API slip_status slip_unpack_int_ct(const int32_t *packed, int8_t *values, int64_t rows,
                                        int64_t cols, int32_t bits);

/* ---------------------------------------------------------------- tensor quantization
 *
 * One entry point per direction for every scaled format. The input is a float32 tensor whose
 * last dimension is K ("columns"); all leading dimensions are flattened into rows.
 *
 *   format        codes tensor              scales tensor                   global tensor
 *   INT8          I8   [rows, K]            F32, by granularity (below)     unused (NULL)
 *   INT4          I32  [rows, K/8] (CT)     F32 [rows, K/group]             unused
 *   FP8_E4M3      F8_E4M3 [rows, K]         F32, by granularity             unused
 *   FP8_E5M2      F8_E5M2 [rows, K]         F32, by granularity             unused
 *   NVFP4         U8   [rows, K/2]          F8_E4M3 [rows, K/16]            F32 [1]: 448*6/amax
 *   NVFP4_TJ2     U8   [rows, K/2]          F8_E4M3 [rows, K/16]            F32 [rows, K/128]: outer
 *   MXFP4         U8   [rows, K/2]          U8 (E8M0) [rows, K/32]          unused
 *
 * Granularity of INT8 / FP8 scales (symmetric, scale = amax / qmax, decode = code * scale):
 *   TENSOR   one scale, shape [1]
 *   ROW      one scale per row, shape [rows, 1]: compressed-tensors' "channel" for a weight
 *            [N, K] and "token" for activations [M, K] — the same rows-share-a-scale rule
 *   GROUP    one per `group_size` consecutive columns of a row: [rows, K/group_size]
 *   BLOCK    one per block_rows x block_cols tile: [ceil(rows/br), ceil(K/bc)]
 *
 * NVFP4 follows compressed-tensors and vLLM: global g = 448*6/amax(x) (given by the caller when
 * params.global_scale > 0, e.g. shared across fused q/k/v), block scale
 * s = RN_E4M3(amax_16/6 * g), element code = RNE_sat_E2M1(x * g / s), decode x = code * s / g.
 * NVFP4_TJ2 is TetraJet-v2's double-block variant: outer S_o = amax_128/(448*6) in FP32 per
 * 128 columns, inner S_i = RN_E4M3(amax_16/(S_o*6)) (zero guarded by the smallest E4M3
 * subnormal 2^-9), decode x = code * S_o * S_i; its global tensor holds S_o.
 * MXFP4 follows OCP MX v1.0: scale exponent floor(log2(amax_32)) - 2, elements RNE saturating.
 */
typedef enum slip_quant_format {
    SLIP_FORMAT_INT8 = 0,
    SLIP_FORMAT_INT4 = 1,
    SLIP_FORMAT_FP8_E4M3 = 2,
    SLIP_FORMAT_FP8_E5M2 = 3,
    SLIP_FORMAT_NVFP4 = 4,
    SLIP_FORMAT_NVFP4_TJ2 = 5,
    SLIP_FORMAT_MXFP4 = 6,
    SLIP_FORMAT_F32 = 7 /* no quantization: only as a slip_qweight (codes = the F32 weight) */
} slip_quant_format;

typedef enum slip_granularity {
    SLIP_GRANULARITY_TENSOR = 0,
    SLIP_GRANULARITY_ROW = 1,
    SLIP_GRANULARITY_GROUP = 2,
    SLIP_GRANULARITY_BLOCK = 3
} slip_granularity;

/* Flags */
#define SLIP_QUANT_ALLOW_NONFINITE 1u /* NaN/Inf inputs are an error unless this is set; when set,
                                         they are excluded from amax and encoded as the format
                                         saturates (E2M1: NaN becomes 0) */
#define SLIP_QUANT_FULL_INT_RANGE 2u  /* INT8/INT4: scale = amax / (qmax + 0.5) and codes in
                                         [-(qmax+1), qmax] (INT8: amax/127.5, [-128, 127]; INT4:
                                         amax/7.5, [-8, 7]): compressed-tensors' convention for
                                         weights. Without it: amax/qmax and [-qmax, qmax], the
                                         symmetric range of vLLM's dynamic per-token INT8. */
#define SLIP_QUANT_MSE_SCALES 4u      /* NVFP4 (weights, offline): each block's E4M3 scale is the
                                         one, among the amax/6 scale and the 6 E4M3 values below
                                         it, whose round-to-nearest codes give the least squared
                                         error (clipping the block's largest values can cost less
                                         than coarse steps for all of them). Still plain NVFP4:
                                         any reader decodes it unchanged. Nearest-even only. */

typedef struct slip_quant_params {
    int32_t format;        /* slip_quant_format */
    int32_t granularity;   /* slip_granularity; fixed by the format for INT4/NVFP4*/
    int64_t group_size;    /* GROUP: columns per scale (INT4: 128; NVFP4: 16; MXFP4: 32) */
    int64_t block_rows;    /* BLOCK: tile rows (e.g. 128) */
    int64_t block_cols;    /* BLOCK: tile columns (e.g. 128) */
    int32_t rounding;      /* slip_rounding of the elements */
    uint32_t flags;        /* SLIP_QUANT_* */
    uint64_t seed;         /* stochastic rounding seed */
    float global_scale;    /* NVFP4: > 0 uses this global scale instead of 448*6/amax */
    int32_t reserved[3];
} slip_quant_params;

/* The format's defaults: INT8/FP8 ROW; INT4 GROUP 128; NVFP4/NVFP4_TJ2 GROUP 16; MXFP4 GROUP 32;
 * blocks 128x128; nearest-even; no flags. */
SLIP_API slip_status slip_quant_params_init(slip_quant_params *p, slip_quant_format format);

/* Shapes the outputs of slip_quantize must have for an input of `shape` (ndim dims); ranks are
 * returned in *_ndim (0 for an unused tensor). */
SLIP_API slip_status slip_quant_shapes(const slip_quant_params *p, int32_t ndim,
                                       const int64_t *shape, int32_t *codes_ndim,
                                       int64_t *codes_shape, int32_t *scales_ndim,
                                       int64_t *scales_shape, int32_t *global_ndim,
                                       int64_t *global_shape);

/* x: F32 [..., K]. Writes codes, scales and (NVFP4 formats) global; global may be NULL for the
 * others. */
SLIP_API slip_status slip_quantize(const slip_tensor *x, const slip_quant_params *p,
                                   slip_tensor *codes, slip_tensor *scales, slip_tensor *global);
/* The inverse: out F32 with the input's shape. */
SLIP_API slip_status slip_dequantize(const slip_tensor *codes, const slip_tensor *scales,
                                     const slip_tensor *global, const slip_quant_params *p,
                                     slip_tensor *out);

/* In-place blocked Walsh-Hadamard transform along the last dimension, orthonormal (scaled by
 * 1/sqrt(block)), block in {16, 32, 64, 128, 256}; K must be a multiple of block. Applying it
 * twice is the identity: H/sqrt(n) is symmetric and orthogonal. Spreads channel outliers before
 * 4-bit quantization. */
SLIP_API slip_status slip_hadamard(slip_tensor *x, int64_t block);

/* ---------------------------------------------------------------- linears
 *
 * Y[M, N] = X[M, K] · Wᵀ (+ bias[N]), float32 in and out.
 */

/* W: F32 [N, K]. The FP32 baseline: tiled, threaded, vectorized. */
SLIP_API slip_status slip_gemm_f32(const slip_tensor *x, const slip_tensor *w,
                                   const slip_tensor *bias, slip_tensor *y);

/* A weight already quantized by slip_quantize (codes, scales, global exactly as it wrote them). */
typedef struct slip_qweight {
    slip_quant_params params; /* the params it was quantized with; N, K from the tensors */
    slip_tensor codes;
    slip_tensor scales;
    slip_tensor global;       /* NVFP4 formats only */
} slip_qweight;

/* What happens to the activations X.
 *   W8A8 INT8:  dynamic per-token INT8 (symmetric, scale amax/127), int32 accumulation
 *   FP8:        dynamic per-token FP8 of the weight's element format, FP32 accumulation
 *   NVFP4 W4A4: NVFP4 with global scale act_global_scale (> 0) or 448*6/amax(X) (0)
 *   NONE:       activations stay FP32 (W4A16, NVFP4A16, weight-only FP8/INT8)
 * NVFP4 weights against INT8 (SLIP_ACT_INT8, W4A8) or NVFP4 (W4A4) activations run as exact
 * integer dot products per 16-column group (2 x E2M1 is an integer), with one or two float FMAs
 * per group, where AVX-512 VNNI is; below it as the FP32 product of the decoded operands. Either
 * way the plan keeps the weight at 4.5 bits per element (codes + one E4M3 scale per 16). */
typedef enum slip_act_quant {
    SLIP_ACT_NONE = 0,
    SLIP_ACT_DYNAMIC = 1, /* the weight format's own activation scheme, listed above */
    SLIP_ACT_INT8 = 2,    /* dynamic per-token INT8 activations (scale amax/127) against any
                             weight format whose codes are exact small integers: INT8 (= W8A8),
                             and NVFP4 (W4A8: E2M1 x 2 is an integer, so the product is an exact
                             integer dot product per 16-column group). Other formats:
                             SLIP_STATUS_UNSUPPORTED */
    SLIP_ACT_BF16 = 3,    /* activations rounded to BF16 (nearest even) against an NVFP4 weight,
                             which BF16 holds exactly (E2M1 x E4M3 has at most 6 significant bits;
                             the global scale goes to the epilogue), FP32 accumulation: the
                             16-bit "high precision" of mixed-precision schemes. AMX BF16 tiles at
                             SLIP_ISA_AMX; below it the FP32 product of the rounded activations
                             and the decoded weight, equal up to FP32 summation order. Served by
                             slip_linear_plan_run_as on NVFP4 plans only */
    SLIP_ACT_FP8 = 4      /* W4A8 on CUDA: activations quantized per token to FP8 E4M3 (scale
                             amax/448, nearest even, saturating) against an NVFP4 weight, whose
                             products BF16/FP16 tensor cores form exactly (both operands are exact
                             there), FP32 accumulation; the row scale and 1/global go to the
                             epilogue. On compute capability 9.0 at M > 64 the product runs on FP8
                             tensor cores instead: each decoded weight e2m1 x scale is scaled by a
                             power of two per output column (the largest, up to 2^15, that keeps
                             the column within 448) and rounded to E4M3 (nearest even), and the
                             power comes back out in the epilogue. CUDA plans only: the CPU
                             answers SLIP_STATUS_UNSUPPORTED */
} slip_act_quant;

typedef struct slip_linear_params {
    int32_t act_quant;        /* slip_act_quant */
    float act_global_scale;   /* NVFP4 activations: static global scale, 0 = from the live amax */
    int32_t reserved[6];
} slip_linear_params;

SLIP_API slip_status slip_linear_params_init(slip_linear_params *p);

/* A linear is planned once per weight (the weight repacked into the layout the dispatched
 * kernel wants; its column sums precomputed) and run many times. The plan copies what it needs:
 * the caller may free the weight's buffers after create. A plan may be run from several threads
 * at once. */
typedef struct slip_linear_plan_s *slip_linear_plan_t;

/* On CUDA. An NVFP4 weight whose codes, scales and global are CUDA tensors (the CPU layout above,
 * K a multiple of 16) is planned on its device: repacked there, stream-ordered on w->codes.stream,
 * still 4.5 bits per element; runs on other streams must be ordered after that one. Such a plan
 * takes x BF16 or F16 [M, K] (contiguous, 16-byte aligned), bias F32 [N] or NULL, y of x's dtype
 * [M, N], all on the weight's device, and runs on x's stream:
 *   SLIP_ACT_NONE  W4A16: x as given against the weight decoded exactly to x's 16-bit type on
 *                  chip, tensor-core products, FP32 accumulation, 1/global in the epilogue;
 *   SLIP_ACT_FP8   W4A8: x quantized per token to E4M3 first (see SLIP_ACT_FP8).
 * Either plan serves both through slip_linear_plan_run_as; other modes, other formats and GPUs
 * below compute capability 8.9 give SLIP_STATUS_UNSUPPORTED. Activations are not checked for
 * NaN/Inf on the device: they propagate to y. Compute capability 8.9 or newer. */

SLIP_API slip_status slip_linear_plan_create(const slip_qweight *w, const slip_linear_params *p,
                                             slip_linear_plan_t *out);
/* x: F32 [M, K]; bias: F32 [N] or NULL; y: F32 [M, N]. The result equals, up to FP32 summation
 * order, the float64 product of the decoded (quantized) activations and the decoded weight. */
SLIP_API slip_status slip_linear_plan_run(slip_linear_plan_t plan, const slip_tensor *x,
                                          const slip_tensor *bias, slip_tensor *y);
/* slip_linear_plan_run with other activation params than the plan was made with, so that one
 * planned weight serves several activation precisions (a mixed-precision policy switches per call
 * without a second copy of the weight). A plan of an NVFP4 weight made with SLIP_ACT_INT8 or
 * SLIP_ACT_DYNAMIC serves p->act_quant NONE (the decoded weight against FP32 activations),
 * BF16, INT8 (W4A8) and DYNAMIC (W4A4, with p->act_global_scale); any plan serves its own mode.
 * Anything else: SLIP_STATUS_UNSUPPORTED. */
SLIP_API slip_status slip_linear_plan_run_as(slip_linear_plan_t plan, const slip_linear_params *p,
                                             const slip_tensor *x, const slip_tensor *bias,
                                             slip_tensor *y);
/* Resident bytes of the planned weight (panels, packed codes, scales, column sums; device memory
 * for a CUDA plan): what the plan costs in memory, for reporting a model's weight footprint. */
SLIP_API slip_status slip_linear_plan_weight_bytes(slip_linear_plan_t plan, int64_t *bytes);
SLIP_API void slip_linear_plan_free(slip_linear_plan_t plan);

/* create + run + free, for one-off products. */
SLIP_API slip_status slip_linear(const slip_tensor *x, const slip_qweight *w,
                                 const slip_tensor *bias, const slip_linear_params *p,
                                 slip_tensor *y);

/* The machine's vector peak, measured: a register-only loop of 24 independent chains of one
 * instruction per pool thread, all threads at once, for `seconds` (0 < seconds <= 60) after a
 * short untimed warm-up. *ops_per_second receives
 *   kind 0, FP32 FMA (vfmadd zmm):          16 lanes x 2 flop per instruction
 *   kind 1, INT8 VNNI dot products (vpdpbusd zmm): 16 lanes x 4 MACs x 2 ops per instruction
 * summed over all threads, per wall-clock second: the ceiling the linears are compared with
 * (bench/linear.md). SLIP_STATUS_UNSUPPORTED where the active ISA level lacks AVX-512 (kind 0)
 * or AVX-512 VNNI (kind 1). Blocks the calling thread and the pool for the whole time. */
SLIP_API slip_status slip_bench_peak(int32_t kind, double seconds, double *ops_per_second);


/* ---------------------------------------------------------------- attention
 *
 * O = softmax(scale · Q Kᵀ + mask) V per (batch, head), float32 in and out.
 *
 * Layouts (slip_attn_params.layout):
 *   HND  q [B, Hq, Nq, D], k and v [B, Hk, Nk, D], out [B, Hq, Nq, D]
 *   NHD  q [B, Nq, Hq, D], k and v [B, Nk, Hk, D], out [B, Nq, Hq, D]
 *   varlen (cu_seqlens given): q [total_q, Hq, D], k and v [total_k, Hk, D], out like q;
 *        sequence b spans rows cu_seqlens[b] .. cu_seqlens[b+1] (I32 [B+1], starts at 0).
 * D (head dim) is 1..256; v shares it. GQA/MQA: Hq a multiple of Hk; query head h reads kv head
 * h / (Hq/Hk).
 * Causal: query i attends key j iff j <= i + (Nk - Nq) (aligned to the bottom right, as
 * FlashAttention 2.1+; the usual j <= i when Nq == Nk). A query row that can attend nothing gets
 * output 0 and LSE -inf.
 * Mask (optional): U8 (1 = attend, 0 = blocked) or F32 (added to the scaled scores; -inf blocks),
 * shape [Bm, Hm, Nq, Nk] with Bm in {1, B} and Hm in {1, Hq} (broadcast); not with varlen.
 * LSE (optional): F32 [B, Hq, Nq] (varlen: [Hq, total_q]), natural log of the softmax
 * denominator of the scaled, masked scores.
 * Every method honours masks and causality or refuses them with SLIP_STATUS_UNSUPPORTED: never
 * ignores them.
 */
typedef enum slip_attn_layout { SLIP_ATTN_HND = 0, SLIP_ATTN_NHD = 1 } slip_attn_layout;

typedef struct slip_attn_params {
    int32_t layout;    /* slip_attn_layout; ignored with varlen */
    int32_t causal;    /* 0 or 1 */
    float scale;       /* 0: 1/sqrt(D) */
    int32_t reserved[5];
} slip_attn_params;

SLIP_API slip_status slip_attn_params_init(slip_attn_params *p);

/* The FP32 baseline: tiled, online softmax, FP32 accumulation. mask, cu_seqlens_q/_k and lse
 * may be NULL (cu_seqlens both or neither). */
SLIP_API slip_status slip_attn_dense(const slip_tensor *q, const slip_tensor *k,
                                     const slip_tensor *v, const slip_tensor *mask,
                                     const slip_tensor *cu_seqlens_q,
                                     const slip_tensor *cu_seqlens_k,
                                     const slip_attn_params *p, slip_tensor *out,
                                     slip_tensor *lse);

/* Block-sparse attention: the dense numerics on the (query block, key block) pairs that
 * block_mask keeps; the work of dropped pairs is skipped, not masked. block_mask: U8
 * [B, Hq, ceil(Nq/block_q), ceil(Nk/block_k)] (1 = compute). Causality is applied per token
 * inside the kept blocks (never at block granularity: no future token leaks through a diagonal
 * block), and an optional token mask as in slip_attn_dense. Not with varlen. *density receives
 * the fraction of (query block, key block) pairs computed among those causality allows (NULL to
 * skip): the achieved sparsity is 1 - density; 0 when causality allows no pair. A key block
 * counts as allowed for a query block when its first key is visible to the block's last row.
 * Query rows with no kept, attendable key get output 0 and LSE -inf, as in slip_attn_dense. */
SLIP_API slip_status slip_attn_block_sparse(const slip_tensor *q, const slip_tensor *k,
                                            const slip_tensor *v, const slip_tensor *mask,
                                            const slip_tensor *block_mask, int64_t block_q,
                                            int64_t block_k, const slip_attn_params *p,
                                            slip_tensor *out, slip_tensor *lse, double *density);

/* --- attention: SageAttention2 / 2++ low-bit forward and SageBwd backward (section owner: sage) */

/* SageAttention2 (arXiv 2411.10958) and 2++ (2505.21136) on the CPU, emulating the GPU kernels'
 * numerics exactly rather than running them fast: the reference the CUDA kernels are tested
 * against. Forward, per (batch, head, Q tile of block_q rows), over K/V tiles of block_k keys:
 *   1. K <- K - mean_tokens(K) per (batch, kv head) when smooth_k (exact: a shift common to all
 *      keys moves every score of a row by the same amount; the LSE gets scale*(q . kmean) back).
 *      smooth_q subtracts each Q tile's mean qm and adds dS = qm . K'^T in FP32 to the scores.
 *   2. Q, K to INT8, symmetric: scale = amax/127 over a row group (granularity below), code =
 *      x/scale rounded half away from zero (SageAttention's quantizers add 0.5*sign and
 *      truncate). S = int32(Qc . Kc) * scale_q * scale_k * scale, in FP32.
 *   3. Mask and causality applied to S, then online softmax in FP32: P~ = 448 * exp(S - m_run),
 *      so P~ is in [0, 448] (the static 448 scale of E4M3's maximum); P~ is encoded to FP8 E4M3
 *      (nearest-even, saturating). The row sum l adds the unquantized FP32 P~ (CUDA-core sum).
 *   4. V per (batch, kv head, channel) to FP8 E4M3 with scale amax_c/448 (SAGE2) or
 *      amax_c/2.25 (SAGE2PP). V is never cast to FP16, so |V| > 65504 cannot overflow.
 *   5. P~ . V~ per K tile in an emulated inner accumulator, one MMA k-step = 32 keys: the step's
 *      products are summed exactly and added to the partial, which is then rounded
 *        SAGE2:   to FP22 (1 sign, 8 exponent, 13 mantissa bits) by truncation toward zero,
 *                 the FP8 MMA accumulator of Ada/Hopper (SA2's "FP22"; SageAttention's
 *                 docstring: "only 22 valid bits in the FP32 accumulator");
 *        SAGE2PP: to FP16 (round to nearest even, subnormals kept); 448 * 2.25 * 64 keys =
 *                 64512 < 65504, so block_k must be <= 64 and no partial can overflow.
 *      Each tile's partial is flushed into an FP32 accumulator (two-level accumulation).
 *   6. out = acc * scale_v[c] / l; lse = m + log(l/448) (+ the smooth-K correction).
 * Inputs must be finite (SLIP_STATUS_NON_FINITE names the tensor); D may be 1..256 (the
 * emulated MMA pads D with zeros, which is exact). Not with varlen.
 *
 * Granularity of the Q and K INT8 scales, with Q tiles of block_q rows split into warp tiles of
 * warp_q rows, K tiles of block_k rows; row indices count from the tile's first row:
 *   BLOCK   one Q scale per Q tile; one K scale per K tile (SA1's Triton kernels)
 *   WARP    one Q scale per warp tile; one K scale per K tile
 *   THREAD  in each warp tile, Q rows with equal (row mod 8) share a scale (8 per warp tile);
 *           in each K tile, K rows with (row mod 8) in {2t, 2t+1} share scale t (4 per tile):
 *           the rows one thread's m16n8k32 fragment holds (SA2's per-thread quantization)
 */
typedef enum slip_sage_variant {
    SLIP_SAGE_VARIANT_SAGE2 = 0,   /* FP8 PV, FP22 inner accumulator, FP32 outer ("fp32+fp32") */
    SLIP_SAGE_VARIANT_SAGE2PP = 1  /* FP8 PV, FP16 inner accumulator, FP32 outer ("fp32+fp16") */
} slip_sage_variant;

typedef enum slip_sage_granularity {
    SLIP_SAGE_GRANULARITY_BLOCK = 0,
    SLIP_SAGE_GRANULARITY_WARP = 1,
    SLIP_SAGE_GRANULARITY_THREAD = 2
} slip_sage_granularity;

typedef struct slip_sage_params {
    int32_t variant;      /* slip_sage_variant */
    int32_t granularity;  /* slip_sage_granularity of the Q and K scales (forward) */
    int32_t smooth_k;     /* 0 or 1 */
    int32_t smooth_q;     /* 0 or 1 (forward only: see the backward) */
    int32_t block_q;      /* Q tile rows, a multiple of warp_q, <= 1024 */
    int32_t block_k;      /* K/V tile rows, a multiple of 32, <= 1024 (SAGE2PP: <= 64) */
    int32_t warp_q;       /* warp tile rows, a multiple of 8 */
    int32_t quantize;     /* 1; 0 runs the same tiling in plain FP32 (no INT8/FP8, no inner
                             rounding): the exact baseline the quantization error is measured by */
    int32_t reserved[4];
} slip_sage_params;

/* SAGE2, THREAD, smooth_k 1, smooth_q 0, block_q 128, block_k 64, warp_q 32, quantize 1: the
 * sm89 kernel's CTA_Q/CTA_K/WARP_Q. */
SLIP_API slip_status slip_sage_params_init(slip_sage_params *sp);

/* q, k, v, mask, p, out, lse as slip_attn_dense without varlen (mask and lse may be NULL).
 *
 * CUDA tensors (device SLIP_DEVICE_CUDA, all on one device, the work queued on q's stream): q, k,
 * v and out BF16 or F16 (one dtype), any strides with D contiguous, D 64, 128 or 256; lse F32
 * contiguous or NULL; no token mask; SAGE2 only (Hopper's FP8 MMA has no FP16 accumulator),
 * quantize 1, smooth_q 0, block_k 64; any granularity, block_q and warp_q (they define the INT8
 * scale groups). Compute capability 8.9 or newer (FP8 MMA). On 9.0 (Hopper) the wgmma kernels
 * generated from native/cuda/triton run, flushing the FP8 accumulator per 128 keys at D 64 and
 * 128 and accumulating in it directly at D 256 (bench/gpu.md has the accuracy); elsewhere, or with
 * SLIPSTREAM_SAGE_KERNEL=mma in the environment, the mma.sync kernel with its flush per block_k
 * (64) keys. Scratch comes from a stream-ordered pool of the library's own that keeps up to 1 GiB
 * between calls, so a call can be captured in a CUDA graph (make one call first: the Hopper
 * kernels load on first use). Inputs are not checked for NaN/Inf there (a check needs a
 * device-to-host copy): non-finite inputs give non-finite rows. */
SLIP_API slip_status slip_attn_sage(const slip_tensor *q, const slip_tensor *k,
                                    const slip_tensor *v, const slip_tensor *mask,
                                    const slip_attn_params *p, const slip_sage_params *sp,
                                    slip_tensor *out, slip_tensor *lse);

/* slip_attn_sage on the (query tile, key tile) pairs block_mask keeps, tiles of sp->block_q and
 * sp->block_k tokens: U8 [B, Hq, ceil(Nq/block_q), ceil(Nk/block_k)], 1 = compute (a mask from
 * slip_attn_sparse_predict with the same block sizes). Dropped pairs are skipped, not masked;
 * rows that keep nothing get 0 and LSE -inf. No token mask. On CUDA block_q must be 128 (the
 * kernel's query tile) and the mask on the same device. */
SLIP_API slip_status slip_attn_sage_block_sparse(const slip_tensor *q, const slip_tensor *k,
                                                 const slip_tensor *v, const slip_tensor *block_mask,
                                                 const slip_attn_params *p, const slip_sage_params *sp,
                                                 slip_tensor *out, slip_tensor *lse);

/* SageBwd (arXiv 2603.02170): gradients of attention given the forward's out and lse (the true,
 * smooth-K-corrected LSE that slip_attn_sage returns). Four of its five matmuls are INT8:
 * S = Q K'^T recomputed, dV = P^T dO, dQ = dS K', dK = dS^T Q; dP = dO V^T stays FP32 (the paper
 * keeps it FP16: its error feeds dS = P (dP - D), D = rowsum(dO * out), directly). Operands are
 * quantized per block (amax/127, half away from zero): Q per Q tile, K' per K tile, dO per Q
 * tile, P and dS per (Q tile, K tile), whatever sp->granularity says, because a scale must be
 * constant along the contraction to factor out of an INT32 product (dK contracts over Q rows).
 * K' = K - mean(K) when smooth_k: dQ and dK are unchanged by the shift, since every row of dS
 * sums to zero (softmax is shift invariant per row), so dS K' = dS K and the gradient through the
 * mean is zero. smooth_q is not used (dS^T qm does not vanish). variant is ignored (no PV here).
 * dq like q; dk, dv like k and v (GQA: summed over the query heads of a group). Rows with lse
 * -inf (nothing attended) contribute nothing. quantize 0: the same computation in FP32. */
SLIP_API slip_status slip_attn_sage_backward(const slip_tensor *q, const slip_tensor *k,
                                             const slip_tensor *v, const slip_tensor *out,
                                             const slip_tensor *d_out, const slip_tensor *lse,
                                             const slip_tensor *mask, const slip_attn_params *p,
                                             const slip_sage_params *sp, slip_tensor *dq,
                                             slip_tensor *dk, slip_tensor *dv);

/* Low-bit attention for the CPU, fast (where slip_attn_sage emulates the GPU's numerics exactly):
 * K minus its token mean (exact for softmax), Q and K to INT8 per token (amax/127, half away from
 * zero), S = int32(Qc Kc^T) * sq * sk * scale in FP32, softmax in FP32, P and V rounded to BF16,
 * out = (P~ V~) / l with FP32 accumulation, l the sum of the unrounded P. AMX tiles (INT8 and BF16)
 * at SLIP_ISA_AMX with D a multiple of 64; the same numbers in scalar code otherwise (equal up to
 * FP32 summation order and exp2's last bits). q, k, v, out as slip_attn_dense, FP32, not causal,
 * no token mask, no varlen; block_mask (U8 [B, Hq, ceil(Nq/128), ceil(Nk/64)], 1 = compute) or
 * NULL makes it block-sparse (rows that keep nothing get 0). Inputs must be finite. */
SLIP_API slip_status slip_attn_lowbit(const slip_tensor *q, const slip_tensor *k, const slip_tensor *v,
                                      const slip_tensor *block_mask, const slip_attn_params *p,
                                      slip_tensor *out);

/* --- attention: SpargeAttention2 mask prediction and SLA2 (section owner: sparse) */

/* Training-free block-mask prediction (SpargeAttn / SpargeAttention2, arXiv 2602.13515).
 * Per (batch, query head): Q is cut into block_q-token blocks and K into block_k-token blocks
 * (the last block of each may be short). Each block is mean-pooled (K after smooth-K, i.e. minus
 * its per-head mean over the sequence); the pooled scores P̂ = softmax(scale · q̄ k̄ᵀ) are taken
 * per query-block row over the key blocks causality allows. A pair is kept when
 *   - Top-k keeps it: the max(1, floor(topk · n_allowed)) highest P̂ of the row (topk > 0), or
 *   - Top-p keeps it: the shortest prefix of the row sorted by P̂ descending whose mass >= topp
 *     (topp > 0); with both rules on, a pair is kept if either keeps it (the hybrid rule), or
 *   - the self-similarity guard forces it: a block whose tokens' mean pairwise cosine is <=
 *     sim_threshold has an untrustworthy mean; such a key block is kept for every query block
 *     (and left out of the pooled softmax), such a query block keeps its whole row, or
 *   - attention_sink is set and it is key block 0.
 * Pairs causality forbids are never kept (0 in the mask). The token mask of slip_attn_sparse is
 * applied inside the kept blocks only; prediction does not read it. Not with varlen. */
typedef struct slip_sparse_params {
    int64_t block_q;        /* query tokens per block: 128 */
    int64_t block_k;        /* key tokens per block: 64 */
    float topk;             /* fraction of allowed key blocks per row, in [0, 1]; 0 = rule off: 0.5 */
    float topp;             /* cumulative pooled mass, in [0, 1]; 0 = rule off: 0 */
    float sim_threshold;    /* mean cosine a block needs to be trusted, in [-1, 1]: -0.1 */
    int32_t attention_sink; /* 0 or 1: always keep key block 0: 0 */
    int32_t smooth_k;       /* 0 or 1: subtract K's per-head mean before pooling: 1 */
    int32_t reserved[4];
} slip_sparse_params;

SLIP_API slip_status slip_sparse_params_init(slip_sparse_params *p);

/* block_mask_out: U8 [B, Hq, ceil(Nq/block_q), ceil(Nk/block_k)], 1 = keep. q, k as in
 * slip_attn_dense (HND or NHD; GQA). topk and topp may not both be 0. *sparsity_out (NULL to
 * skip) receives 1 - kept / allowed over the causally allowed pairs (0 when none is allowed).
 * CUDA tensors (q, k BF16 or F16, D <= 256, at most 2048 key blocks per row; block_mask_out contiguous on
 * the same device): the same rule with the same float64 pooling, queued on q's stream; masks
 * equal the CPU's except where two pooled scores tie within double rounding. Asking for
 * sparsity_out waits for the stream. */
SLIP_API slip_status slip_attn_sparse_predict(const slip_tensor *q, const slip_tensor *k,
                                              const slip_attn_params *attn,
                                              const slip_sparse_params *sparse,
                                              slip_tensor *block_mask_out, double *sparsity_out);

/* Prediction, then slip_attn_block_sparse on the predicted mask. mask, lse, block_mask_out and
 * sparsity_out may be NULL; block_mask_out, when given, receives the mask used. */
SLIP_API slip_status slip_attn_sparse(const slip_tensor *q, const slip_tensor *k,
                                      const slip_tensor *v, const slip_tensor *mask,
                                      const slip_attn_params *attn,
                                      const slip_sparse_params *sparse, slip_tensor *out,
                                      slip_tensor *lse, slip_tensor *block_mask_out,
                                      double *sparsity_out);

/* SLA2 sparse-linear attention (arXiv 2602.12675), forward and backward, FP32 in and out.
 * A router classifies each (query block, key block) pair from pooled, projected blocks:
 *   R = softmax(scale · (q̄ Wqᵀ)(k̄ Wkᵀ)ᵀ) per query-block row (k̄ after smooth-K; Wq, Wk are
 *   [D, D], NULL = identity, the training-free router); per row the max(1, floor(critical·nKb))
 *   highest are CRITICAL (2), the floor(negligible·nKb) lowest of the rest NEGLIGIBLE (0), the
 *   others MARGINAL (1). The route map is U8 [B, Hq, nQb, nKb].
 * Per query token i of block I and head h:
 *   Oˢ_i = softmax over the keys of I's critical blocks of scale · q_i·k_j, times V (exact)
 *   Oˡ_i = φ(q_i)ᵀ H_I / (φ(q_i)·z_I), H_I = Σ φ(k_j) v_jᵀ, z_I = Σ φ(k_j) over I's marginal
 *          blocks (Oˡ_i = 0 where the denominator is not positive, e.g. no marginal block)
 *   O_i   = α_h Oˢ_i + (1 − α_h) (Oˡ_i Wpᵀ + bp)
 * φ is applied per token over the D features (the same map for q and k). Negligible blocks are
 * skipped. alpha: F32 [Hq]; proj_w (Wp): F32 [D, D] (out, in); proj_b: F32 [D] or NULL (zero).
 * Not causal and without a token mask (refused with SLIP_STATUS_UNSUPPORTED); no varlen.
 * The router is a hard Top-k: it has no gradient, and slip_sla_backward gives none for Wq, Wk. */
typedef enum slip_sla_feature_map {
    SLIP_SLA_FEATURE_SOFTMAX = 0, /* softmax over the D features (SLA's default) */
    SLIP_SLA_FEATURE_ELU = 1,     /* elu(x) + 1 */
    SLIP_SLA_FEATURE_RELU = 2     /* relu(x) */
} slip_sla_feature_map;

typedef enum slip_sla_route {
    SLIP_SLA_NEGLIGIBLE = 0,
    SLIP_SLA_MARGINAL = 1,
    SLIP_SLA_CRITICAL = 2
} slip_sla_route;

typedef struct slip_sla_params {
    int64_t block_q;     /* 128 */
    int64_t block_k;     /* 64 */
    float critical;      /* fraction of key blocks per row routed to the softmax branch: 0.05 */
    float negligible;    /* fraction of key blocks per row skipped, in [0, 1 - critical]: 0 */
    int32_t feature_map; /* slip_sla_feature_map: SOFTMAX */
    int32_t smooth_k;    /* 0 or 1, for the router: 1 */
    int32_t reserved[4];
} slip_sla_params;

SLIP_API slip_status slip_sla_params_init(slip_sla_params *p);

/* route_out: U8 [B, Hq, nQb, nKb] of slip_sla_route values. router_wq, router_wk: F32 [D, D] or
 * NULL (identity). *sparsity_out (NULL to skip): fraction of pairs not CRITICAL. */
SLIP_API slip_status slip_sla_route_predict(const slip_tensor *q, const slip_tensor *k,
                                            const slip_tensor *router_wq,
                                            const slip_tensor *router_wk,
                                            const slip_attn_params *attn,
                                            const slip_sla_params *sla, slip_tensor *route_out,
                                            double *sparsity_out);

/* out like q. route: from slip_sla_route_predict (or any map of slip_sla_route values). */
SLIP_API slip_status slip_sla_forward(const slip_tensor *q, const slip_tensor *k,
                                      const slip_tensor *v, const slip_tensor *route,
                                      const slip_tensor *alpha, const slip_tensor *proj_w,
                                      const slip_tensor *proj_b, const slip_attn_params *attn,
                                      const slip_sla_params *sla, slip_tensor *out);

/* Gradients of sum(dout ⊙ O) for the same inputs and route (recomputed: nothing is saved by the
 * forward). dq, dk, dv like q, k, v; dalpha F32 [Hq]; dproj_w F32 [D, D]; dproj_b F32 [D] or
 * NULL. All are overwritten. The route is held fixed (no gradient to the router). */
SLIP_API slip_status slip_sla_backward(const slip_tensor *q, const slip_tensor *k,
                                       const slip_tensor *v, const slip_tensor *route,
                                       const slip_tensor *alpha, const slip_tensor *proj_w,
                                       const slip_tensor *proj_b, const slip_tensor *dout,
                                       const slip_attn_params *attn, const slip_sla_params *sla,
                                       slip_tensor *dq, slip_tensor *dk, slip_tensor *dv,
                                       slip_tensor *dalpha, slip_tensor *dproj_w,
                                       slip_tensor *dproj_b);

/* ---------------------------------------------------------------- runtime: Wan2.1 DiT (section owner: runtime)
 *
 * A Wan2.1 text-to-video diffusion transformer held in FP32 and run with the library's own
 * kernels: every linear is an FP32 slip_linear_plan (planned once at create), attention is
 * slip_attn_dense in the NHD layout, norms, RoPE and modulation are threaded loops.
 *
 * Weights are passed by their Wan2.1 / diffusers state-dict names (the names ComfyUI loads):
 *   patch_embedding.weight [dim, in, pt, ph, pw], .bias [dim]       Conv3d, stride = kernel
 *   text_embedding.{0,2}.{weight,bias}   [dim, text_dim], [dim, dim]   Linear, GELU(tanh), Linear
 *   time_embedding.{0,2}.{weight,bias}   [dim, freq_dim], [dim, dim]   Linear, SiLU, Linear
 *   time_projection.1.{weight,bias}      [6 dim, dim]                  SiLU, Linear
 *   blocks.<i>.{self_attn,cross_attn}.{q,k,v,o}.{weight,bias} [dim, dim], [dim]
 *   blocks.<i>.{self_attn,cross_attn}.norm_{q,k}.weight [dim]         RMSNorm over dim
 *   blocks.<i>.norm3.{weight,bias} [dim]                               cross-attention LayerNorm
 *   blocks.<i>.ffn.0.{weight,bias} [ffn_dim, dim]; blocks.<i>.ffn.2.{weight,bias} [dim, ffn_dim]
 *   blocks.<i>.modulation [1, 6, dim]
 *   head.head.{weight,bias} [out * pt * ph * pw, dim]; head.modulation [1, 2, dim]
 * Each may be F32, F16 or BF16 (widened to FP32 at create; the caller may free its buffers
 * afterwards). A missing, repeated or unexpected name, or a wrong shape or dtype, is refused with
 * a sentence naming the tensor.
 *
 * Forward (t is sigma * 1000, ComfyUI's flow multiplier):
 *   tokens = patch_embed(x); e = time_embedding(sinusoidal_freq_dim(t)); e0 = time_projection(e)
 *   ctx = text_embedding(context); per block, with (s0, c0, g0, s1, c1, g1) = modulation + e0:
 *     x += g0 * self_attn(LN(x) (1 + c0) + s0)        q, k RMSNorm'd, 3-D RoPE (slipstream's rope)
 *     x += cross_attn(norm3(x), ctx)
 *     x += g1 * ffn(LN(x) (1 + c1) + s1)
 *   out = unpatchify(head(LN(x) (1 + c) + s)), (s, c) = head.modulation + e
 * LN is LayerNorm without affine; all LayerNorms and RMSNorms use config.eps. RoPE: head dim d
 * split (d - 4(d/6), 2(d/6), 2(d/6)) over (frame, row, col), theta 10000, adjacent pairs.
 */
typedef struct slip_wan_config {
    int64_t dim;           /* model width; a multiple of heads */
    int64_t ffn_dim;
    int64_t heads;         /* head dim = dim / heads: even, <= 256 (Wan: 128) */
    int64_t layers;        /* number of blocks */
    int64_t in_channels;   /* latent channels in */
    int64_t out_channels;  /* latent channels out */
    int64_t text_dim;      /* width of the context embeddings (Wan: 4096) */
    int64_t freq_dim;      /* width of the sinusoidal time embedding, even (Wan: 256) */
    int64_t patch[3];      /* (pt, ph, pw) */
    float eps;             /* LayerNorm and RMSNorm epsilon (Wan: 1e-6) */
    int32_t reserved[5];   /* 0 */
} slip_wan_config;

typedef struct slip_wan_model_s *slip_wan_model_t;

/* How the blocks' linears (self- and cross-attention q/k/v/o, ffn.0, ffn.2) are held. The
 * embeddings and the head always stay FP32: they are run once per call on few rows, or are tiny. */
typedef enum slip_wan_weights {
    SLIP_WAN_WEIGHTS_F32 = 0,  /* the FP32 baseline; blocks run at SLIP_WAN_PRECISION_FULL only */
    SLIP_WAN_WEIGHTS_NVFP4 = 1 /* 6Bit-Diffusion: every block linear stored once in NVFP4, after a
                                  blocked Hadamard rotation of its K axis; the same 4-bit weight
                                  serves all three precisions below */
} slip_wan_weights;

typedef struct slip_wan_model_options {
    int32_t weights;        /* slip_wan_weights: F32 */
    int32_t hadamard_block; /* NVFP4: rotation block on K, applied to weights at create and to
                               activations online (they cancel: (xH)(WH)^T = xW^T). 128; 0 = none */
    int32_t reserved[6];
} slip_wan_model_options;

SLIP_API slip_status slip_wan_model_options_init(slip_wan_model_options *o);

/* names[i] names tensors[i], i < count. options: NULL for the defaults (FP32). *out receives the
 * model (free with slip_wan_model_free). */
SLIP_API slip_status slip_wan_model_create(const char *const *names, const slip_tensor *tensors,
                                           int64_t count, const slip_wan_config *config,
                                           const slip_wan_model_options *options,
                                           slip_wan_model_t *out);

/* Resident bytes of the model's weights (linear plans, norms, modulations, biases). */
SLIP_API slip_status slip_wan_model_weight_bytes(slip_wan_model_t model, int64_t *bytes);

/* x: F32 [B, in, F, H, W] with F, H, W multiples of the patch; t: F32 [B]; context: F32
 * [B, Lc, text_dim] (Lc >= 1); out: F32 [B, out, F, H, W]. Inputs must be finite. A model may
 * run forwards from several threads at once (each call has its own scratch). */
SLIP_API slip_status slip_wan_forward(slip_wan_model_t model, const slip_tensor *x,
                                      const slip_tensor *t, const slip_tensor *context,
                                      slip_tensor *out);

/* slip_wan_forward that also writes the residual stream: hidden F32 [layers + 1, B, L, dim],
 * L = (F/pt)(H/ph)(W/pw) tokens in row-major grid order; hidden[0] is the patch embedding,
 * hidden[i] the output of block i - 1. For checking against a reference and for calibrating
 * caches that look at block inputs and outputs. */
SLIP_API slip_status slip_wan_forward_trace(slip_wan_model_t model, const slip_tensor *x,
                                            const slip_tensor *t, const slip_tensor *context,
                                            slip_tensor *out, slip_tensor *hidden);

/* Copies the model's configuration into *out. */
SLIP_API slip_status slip_wan_model_config(slip_wan_model_t model, slip_wan_config *out);

SLIP_API void slip_wan_model_free(slip_wan_model_t model);

/* ---- stepping the blocks one by one: what block caches and mixed precision sit on
 *
 * A session holds one forward's residual stream and, across forwards, each block's last residual
 * delta = output - input. Per forward:
 *     slip_wan_session_begin(s, x, t, context)           tokens = patch embedding
 *     for each block i, one of
 *         slip_wan_session_run_block(s, i, &options, &stats)   tokens = block_i(tokens); delta cached
 *         slip_wan_session_skip_block(s, i)                    tokens += block i's cached delta
 *     slip_wan_session_finish(s, out)                    out = head(tokens)
 * Running every block at FULL precision gives exactly slip_wan_forward. Policies (which block to
 * skip, at which precision to run it) live with the caller; the session measures what they need.
 * A session is used by one thread at a time; the model must outlive it. */
typedef struct slip_wan_session_s *slip_wan_session_t;

typedef enum slip_wan_precision {
    SLIP_WAN_PRECISION_FULL = 0,  /* FP32 activations (FP32 weights, or the NVFP4 weight decoded) */
    SLIP_WAN_PRECISION_INT8 = 1,  /* dynamic per-token INT8 activations (W4A8 on NVFP4 weights) */
    SLIP_WAN_PRECISION_NVFP4 = 2, /* dynamic NVFP4 activations (W4A4) */
    SLIP_WAN_PRECISION_BF16 = 3   /* BF16 activations against the exact NVFP4 weight (SLIP_ACT_BF16) */
} slip_wan_precision;

typedef struct slip_wan_block_options {
    int32_t precision;   /* slip_wan_precision for the block's linears: FULL */
    float outlier_guard; /* > 0: a linear whose input has max|X| / mean|X| above this runs at
                            guard_precision whatever `precision` says (Purified Delta Refresh:
                            25); 0 = off */
    float sparse_topk;   /* self-attention: > 0 or sparse_topp > 0 runs it block-sparse on a
                            SpargeAttention2 mask predicted from this call's q and k (Top-k keeps
                            this fraction of key blocks per query block, Top-p this cumulative
                            pooled mass; both: their union). 0 and 0 = dense */
    float sparse_topp;
    int32_t guard_precision; /* what the outlier guard promotes to: FULL (default) or BF16 */
    int32_t attention;       /* slip_wan_attention of the self-attention: FP32 (default) */
    int32_t reserved[2];
} slip_wan_block_options;

/* Self-attention arithmetic of a block. LOWBIT is SageAttention's recipe on the CPU: K minus its
 * token mean, Q and K in INT8 per token (amax/127), scores from exact INT32 products, softmax in
 * FP32, P and V in BF16 with FP32 accumulation; AMX tiles where present (head dim a multiple of
 * 64), the same numbers in scalar code elsewhere. Block-sparse with sparse_topk/topp as FP32 is.
 * Cross-attention (a few context keys) stays FP32. */
typedef enum slip_wan_attention {
    SLIP_WAN_ATTENTION_FP32 = 0,
    SLIP_WAN_ATTENTION_LOWBIT = 1
} slip_wan_attention;

SLIP_API slip_status slip_wan_block_options_init(slip_wan_block_options *o);

/* What one run_block measured. Means are over all B * L * dim elements. */
typedef struct slip_wan_block_stats {
    double input_l1;      /* mean |in| */
    double delta_l1;      /* mean |delta|; delta_l1 / input_l1 is DMPQ's Gamma */
    double delta_change;  /* mean |delta - previous delta| / mean |previous delta|: how the block's
                             residual moved since its last run (-1 when it has not run before in
                             this session, or was reset) */
    float max_outlier;    /* the largest max|X| / mean|X| over the inputs of the block's linears */
    int32_t full_linears; /* linears of this block run at FULL or BF16 precision this time (of the
                             8 on the token stream; cross-attention's key and value projections
                             of the context, a few rows that never change, always run FULL) */
    int32_t lowbit_linears; /* ... at INT8 or NVFP4 */
    float attention_sparsity; /* fraction of self-attention key blocks skipped (0 when dense) */
    int32_t reserved[2];
} slip_wan_block_stats;

SLIP_API slip_status slip_wan_session_create(slip_wan_model_t model, slip_wan_session_t *out);
/* Forgets every cached delta (a new video). Shapes may change after a reset. */
SLIP_API slip_status slip_wan_session_reset(slip_wan_session_t session);
/* x, t, context as for slip_wan_forward. The batch and token count must match the cached deltas'
 * (reset first to change them). */
SLIP_API slip_status slip_wan_session_begin(slip_wan_session_t session, const slip_tensor *x,
                                            const slip_tensor *t, const slip_tensor *context);
/* Blocks run in any order the caller likes, but a cache is only meaningful in model order. stats
 * may be NULL. */
SLIP_API slip_status slip_wan_session_run_block(slip_wan_session_t session, int64_t block,
                                                const slip_wan_block_options *options,
                                                slip_wan_block_stats *stats);
/* SLIP_STATUS_INVALID_ARGUMENT when the block has no cached delta yet. */
SLIP_API slip_status slip_wan_session_skip_block(slip_wan_session_t session, int64_t block);
/* out: F32 [B, out, F, H, W] of the begin() call. */
SLIP_API slip_status slip_wan_session_finish(slip_wan_session_t session, slip_tensor *out);
/* Copies the residual stream (F32 [B, L, dim]) out or in: for caches that reuse the residual of
 * a whole range of blocks, and for calibration runs that try one block two ways. */
SLIP_API slip_status slip_wan_session_read_tokens(slip_wan_session_t session, slip_tensor *out);
SLIP_API slip_status slip_wan_session_write_tokens(slip_wan_session_t session,
                                                   const slip_tensor *in);
/* The blocks' modulation input of this forward, e0 = time_projection(e): F32 [B, 6, dim]
 * (TeaCache's signal for Wan). */
SLIP_API slip_status slip_wan_session_time_embedding(slip_wan_session_t session,
                                                     slip_tensor *out);
SLIP_API void slip_wan_session_free(slip_wan_session_t session);

/* ---------------------------------------------------------------- runtime: Qwen3 LLM (section owner: runtime)
 *
 * A Qwen3 causal language model (Hugging Face Qwen3ForCausalLM) held in FP32 and run with the
 * library's own kernels: every projection is an FP32 slip_linear_plan (q/k/v fused into one plan,
 * gate/up into another, so a one-token decode step makes few threaded calls), attention is
 * slip_attn_dense (GQA, causal, NHD) over a per-session KV cache.
 *
 * Weights are passed by their Hugging Face state-dict names; with H_i query heads, G_i KV heads
 * (H_i a multiple of G_i), I_i MLP channels in layer i, head dim d and width D:
 *   model.embed_tokens.weight [vocab, D]
 *   model.layers.<i>.input_layernorm.weight, .post_attention_layernorm.weight [D]
 *   model.layers.<i>.self_attn.q_proj.weight [H_i d, D]; k_proj, v_proj .weight [G_i d, D]
 *   model.layers.<i>.self_attn.o_proj.weight [D, H_i d]
 *   model.layers.<i>.self_attn.{q,k,v,o}_proj.bias (only with config.attention_bias)
 *   model.layers.<i>.self_attn.q_norm.weight, .k_norm.weight [d]      per-head RMSNorm
 *   model.layers.<i>.mlp.gate_proj.weight, .up_proj.weight [I_i, D]; .down_proj.weight [D, I_i]
 *   model.norm.weight [D]
 *   lm_head.weight [vocab, D]   required unless config.tie_word_embeddings (then optional: the
 *                               embedding is used when it is absent)
 * Each may be F32, F16 or BF16 (widened to FP32 at create; the caller may free its buffers afterwards).
 * A missing, repeated or unexpected name, or a wrong shape or dtype, is refused with a sentence
 * naming the tensor.
 *
 * Forward, per token at position p (0-based in the session):
 *   x = embed[token]; per layer:
 *     h = RMSNorm(x) * input_layernorm; q, k, v = h Wq^T, h Wk^T, h Wv^T
 *     q, k per head: RMSNorm over d (q_norm, k_norm), then RoPE (rotate-half pairs (j, j + d/2),
 *       angle p * theta^(-2j/d), theta = config.rope_theta); k, v appended to the cache
 *     x += o_proj(softmax(q k^T / sqrt(d), causal) v)    query head h reads KV head h / (H_i/G_i)
 *     h = RMSNorm(x) * post_attention_layernorm; x += down(silu(gate(h)) * up(h))
 *   logits = (RMSNorm(x) * norm) lm_head^T
 * All RMSNorms use config.rms_norm_eps. Uneven (pruned) models give per-layer widths through
 * config.layer_heads / layer_kv_heads / layer_intermediate (the lists adapters/vllm/prune.ts
 * writes as layer_num_attention_heads, layer_num_key_value_heads, layer_intermediate_size).
 */
typedef struct slip_qwen3_config {
    int64_t vocab_size;
    int64_t hidden_size;        /* D */
    int64_t layers;             /* num_hidden_layers */
    int64_t heads;              /* num_attention_heads (every layer, unless layer_heads) */
    int64_t kv_heads;           /* num_key_value_heads; heads a multiple of it */
    int64_t head_dim;           /* d: even, <= 256 */
    int64_t intermediate_size;  /* MLP channels (every layer, unless layer_intermediate) */
    int64_t max_context;        /* tokens a session may hold (max_position_embeddings) */
    double rope_theta;          /* > 0 (Qwen3: 1e6; qwen3-mini: 1e4) */
    float rms_norm_eps;         /* > 0 (Qwen3: 1e-6) */
    int32_t tie_word_embeddings; /* 0 or 1 */
    int32_t attention_bias;      /* 0 or 1: q/k/v/o projections have biases */
    int32_t reserved0;
    /* NULL, or [layers] per-layer widths that replace heads / kv_heads / intermediate_size; read
     * at create only (the model keeps its own copy). */
    const int64_t *layer_heads;
    const int64_t *layer_kv_heads;
    const int64_t *layer_intermediate;
    int32_t reserved[4];        /* 0 */
} slip_qwen3_config;

typedef struct slip_qwen3_model_s *slip_qwen3_model_t;
typedef struct slip_qwen3_session_s *slip_qwen3_session_t;

typedef struct slip_qwen3_model_options {
    int32_t reserved[8];        /* 0: the weights are always held in FP32 for now */
} slip_qwen3_model_options;

SLIP_API slip_status slip_qwen3_model_options_init(slip_qwen3_model_options *o);

/* names[i] names tensors[i], i < count. options: NULL for the defaults. *out receives the model
 * (free with slip_qwen3_model_free, after every session of it). */
SLIP_API slip_status slip_qwen3_model_create(const char *const *names, const slip_tensor *tensors,
                                             int64_t count, const slip_qwen3_config *config,
                                             const slip_qwen3_model_options *options,
                                             slip_qwen3_model_t *out);
/* Resident bytes of the model's weights (linear plans, embedding, norms). */
SLIP_API slip_status slip_qwen3_model_weight_bytes(slip_qwen3_model_t model, int64_t *bytes);
/* Copies the model's configuration into *out; the per-layer pointers are set to NULL (read the
 * widths with slip_qwen3_model_layer_widths). */
SLIP_API slip_status slip_qwen3_model_config(slip_qwen3_model_t model, slip_qwen3_config *out);
/* Layer `layer`'s query heads, KV heads and MLP channels (any pointer may be NULL). */
SLIP_API slip_status slip_qwen3_model_layer_widths(slip_qwen3_model_t model, int64_t layer,
                                                   int64_t *heads, int64_t *kv_heads,
                                                   int64_t *intermediate);
SLIP_API void slip_qwen3_model_free(slip_qwen3_model_t model);

/* A session is one sequence: its KV cache (grown on demand, up to config.max_context tokens) and
 * its position. A session is used by one thread at a time; sessions of one model may run on
 * several threads at once. The model must outlive its sessions. */
SLIP_API slip_status slip_qwen3_session_create(slip_qwen3_model_t model, slip_qwen3_session_t *out);
/* Empties the cache: the next forward starts at position 0 (the cache's memory is kept). */
SLIP_API slip_status slip_qwen3_session_reset(slip_qwen3_session_t session);
/* Tokens held in the cache (the position of the next token). */
SLIP_API slip_status slip_qwen3_session_position(slip_qwen3_session_t session, int64_t *position);
/* Forgets the cached tokens from `position` on (0 <= position <= the current position): a
 * caller that keeps a common prompt prefix rewinds to it instead of recomputing it. */
SLIP_API slip_status slip_qwen3_session_truncate(slip_qwen3_session_t session, int64_t position);
/* Appends tokens[0 .. n) (n >= 1, each in [0, vocab_size)) at the session's position and runs
 * them through the model (a prompt prefill when n > 1, a decode step when n == 1). logits: NULL,
 * F32 [vocab] or [1, vocab] for the last token's logits, or F32 [n, vocab] for every token's.
 * A position + n above config.max_context is SLIP_STATUS_INVALID_ARGUMENT; on any error the
 * session is left as it was. */
SLIP_API slip_status slip_qwen3_session_forward(slip_qwen3_session_t session,
                                                const int32_t *tokens, int64_t n,
                                                slip_tensor *logits);
SLIP_API void slip_qwen3_session_free(slip_qwen3_session_t session);

/* Sampling one token from a logits row, as transformers' generate does (temperature, then top-k,
 * then top-p):
 *   temperature == 0: greedy, the first index of the largest logit (no random number drawn);
 *   else p = softmax(logits / temperature); top_k > 0 keeps the k most likely tokens; top_p < 1
 *   keeps the most likely tokens until their mass reaches top_p (at least one); one token is
 *   drawn from what is kept, renormalized, with a uniform number from *rng_state. */
typedef struct slip_qwen3_sample_params {
    float temperature; /* >= 0; 1 */
    float top_p;       /* (0, 1]; 1 = off */
    int32_t top_k;     /* >= 0; 0 = off */
    int32_t reserved[5];
} slip_qwen3_sample_params;

SLIP_API slip_status slip_qwen3_sample_params_init(slip_qwen3_sample_params *p);
/* logits: F32 [vocab] (or [1, vocab]), finite. rng_state: in/out, a splitmix64 counter that the
 * caller seeds (any value, e.g. the user's seed) and passes back unchanged to the next call: the
 * same seed and logits give the same tokens on every machine. *token receives the index. */
SLIP_API slip_status slip_qwen3_sample(const slip_tensor *logits, const slip_qwen3_sample_params *p,
                                       uint64_t *rng_state, int32_t *token);

#ifdef __cplusplus
}
#endif

#endif /* SLIPSTREAM_H */
