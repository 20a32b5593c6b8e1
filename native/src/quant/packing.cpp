// ABI of the packing helpers: nibble pairs (NVFP4/MXFP4 codes) and compressed-tensors' int32
// pack-quantized words (INT4/INT8 weights).
#include "base/error.h"
#include "base/tensor.h"
#include "base/thread-pool.h"
#include "packing.h"

namespace slip::quant {
namespace {

void check_nibble_args(const void *a, const char *an, const void *b, const char *bn, int64_t n) {
    if (n < 0 || n % 2 != 0)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a non-negative even count for n (two codes per byte), got %lld",
                    static_cast<long long>(n)));
    if (n > 0) {
        require_not_null(a, an);
        require_not_null(b, bn);
    }
}

void check_ct_args(const void *a, const char *an, const void *b, const char *bn, int64_t rows,
                   int64_t cols, int32_t bits) {
    if (bits != 4 && bits != 8)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected 4 or 8 for bits, got %d", bits));
    if (rows < 0 || cols < 0)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected non-negative extents for rows and cols, got %lld x %lld",
                    static_cast<long long>(rows), static_cast<long long>(cols)));
    if (rows > 0 && cols > 0) {
        require_not_null(a, an);
        require_not_null(b, bn);
    }
}

}  // namespace
}  // namespace slip::quant

extern "C" {

SLIP_API slip_status slip_pack_nibbles(const uint8_t *codes, uint8_t *packed, int64_t n) {
    using namespace slip;
    return guard([&] {
        quant::check_nibble_args(codes, "codes", packed, "packed", n);
        for (int64_t i = 0; i < n; ++i)
            if (codes[i] > 0x0F)
                fail(SLIP_STATUS_INVALID_ARGUMENT,
                     format("expected 4-bit codes (0..15) for codes, got %u at index %lld",
                            codes[i], static_cast<long long>(i)));
        for (int64_t i = 0; i < n / 2; ++i)
            packed[i] = quant::pack_pair(codes[2 * i], codes[2 * i + 1]);
    });
}

SLIP_API slip_status slip_unpack_nibbles(const uint8_t *packed, uint8_t *codes, int64_t n) {
    using namespace slip;
    return guard([&] {
        quant::check_nibble_args(packed, "packed", codes, "codes", n);
        for (int64_t i = 0; i < n / 2; ++i) {
            codes[2 * i] = packed[i] & 0x0F;
            codes[2 * i + 1] = packed[i] >> 4;
        }
    });
}

SLIP_API slip_status slip_pack_int_ct(const int8_t *values, int32_t *packed, int64_t rows,
                                      int64_t cols, int32_t bits) {
    using namespace slip;
    return guard([&] {
        quant::check_ct_args(values, "values", packed, "packed", rows, cols, bits);
        const int lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
        for (int64_t i = 0; i < rows * cols; ++i)
            if (values[i] < lo || values[i] > hi)
                fail(SLIP_STATUS_INVALID_ARGUMENT,
                     format("expected %d-bit values in [%d, %d] for values, got %d at index %lld",
                            bits, lo, hi, values[i], static_cast<long long>(i)));
        const int64_t nw = quant::ct_words(cols, bits);
        parallel_for(rows, 64, [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r)
                quant::ct_pack_row(values + r * cols, packed + r * nw, cols, bits);
        });
    });
}

SLIP_API slip_status slip_unpack_int_ct(const int32_t *packed, int8_t *values, int64_t rows,
                                        int64_t cols, int32_t bits) {
    using namespace slip;
    return guard([&] {
        quant::check_ct_args(packed, "packed", values, "values", rows, cols, bits);
        const int64_t nw = quant::ct_words(cols, bits);
        parallel_for(rows, 64, [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r)
                quant::ct_unpack_row(packed + r * nw, values + r * cols, cols, bits);
        });
    });
}

}  // extern "C"
