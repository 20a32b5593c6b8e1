// TMA descriptors for the Gluon kernels that native/cuda/triton/aot.py compiles (the attention's K
// and V^T, the NVFP4 x FP8 GEMM's x and weight): the launcher encodes them per call with the boxes and
// swizzles aot.py recorded; each is passed as Triton lowers a descriptor parameter.
#pragma once

#include <cuda.h>  // CUtensorMap and its enums only: the encoder comes through the runtime
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "base/error.h"

namespace slip::cuda {

// A TMA descriptor parameter as Triton lowers one: the tensor map, then the tensor's sizes (i32)
// and strides (i64, elements), outer dimension first.
struct TmaParam {
    CUtensorMap map;  // aligned as CUDA declares it (the kernel parameter is 64-byte aligned)
    int32_t rows, inner;
    int64_t row_stride, unit_stride;
};

inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
    static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
        void *p = nullptr;
        cudaDriverEntryPointQueryResult found{};
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &found) !=
                cudaSuccess ||
            found != cudaDriverEntryPointSuccess)
            p = nullptr;
        return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
    }();
    if (!fn) fail(SLIP_STATUS_INTERNAL, "the CUDA driver has no cuTensorMapEncodeTiled (TMA needs a 12.0+ driver)");
    return fn;
}

// A row-major [rows, inner] matrix of bytes (elem_bytes 1) or 32-bit words (4) as a kernel's
// descriptor of box_rows x box_inner boxes (swizzle: CUtensorMapSwizzle). Boxes past the matrix
// read zeros.
inline TmaParam tma_param(const void *base, int64_t rows, int64_t inner, int box_rows, int box_inner, int swizzle,
                          const char *what, int elem_bytes = 1) {
    if (rows > INT_MAX) fail(SLIP_STATUS_UNSUPPORTED, format("%s: %lld rows exceed TMA's 32-bit coordinates", what,
                                                             static_cast<long long>(rows)));
    if (elem_bytes != 1 && elem_bytes != 4)
        fail(SLIP_STATUS_INTERNAL, format("%s: TMA elements of %d bytes (1 or 4 are encoded)", what, elem_bytes));
    TmaParam p{};
    const cuuint64_t dims[2] = {static_cast<cuuint64_t>(inner), static_cast<cuuint64_t>(rows)};
    const cuuint64_t strides[1] = {static_cast<cuuint64_t>(inner * elem_bytes)};  // bytes, of the outer dimension
    const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_inner), static_cast<cuuint32_t>(box_rows)};
    const cuuint32_t unit[2] = {1, 1};
    const CUtensorMapDataType type = elem_bytes == 4 ? CU_TENSOR_MAP_DATA_TYPE_INT32 : CU_TENSOR_MAP_DATA_TYPE_UINT8;
    const CUresult r = tensor_map_encoder()(&p.map, type, 2, const_cast<void *>(base), dims, strides, box, unit,
                                            CU_TENSOR_MAP_INTERLEAVE_NONE,
                                            static_cast<CUtensorMapSwizzle>(swizzle), CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) fail(SLIP_STATUS_INTERNAL, format("cuTensorMapEncodeTiled (%s) failed with CUresult %d", what,
                                                             static_cast<int>(r)));
    p.rows = static_cast<int32_t>(rows);
    p.inner = static_cast<int32_t>(inner);
    p.row_stride = inner;
    p.unit_stride = 1;
    return p;
}

}  // namespace slip::cuda
