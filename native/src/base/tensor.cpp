#include "tensor.h"

namespace slip {

std::string shape_string(const slip_tensor &t) {
    std::string s = "[";
    for (int32_t i = 0; i < t.ndim; ++i) {
        if (i) s += ", ";
        s += std::to_string(t.shape[i]);
    }
    return s + "]";
}

int64_t numel(const slip_tensor &t) {
    int64_t n = 1;
    for (int32_t i = 0; i < t.ndim; ++i) n *= t.shape[i];
    return n;
}

bool is_contiguous(const slip_tensor &t) {
    int64_t expected = 1;
    for (int32_t i = t.ndim - 1; i >= 0; --i) {
        if (t.shape[i] != 1 && t.strides[i] != expected) return false;
        expected *= t.shape[i];
    }
    return true;
}

void require_not_null(const void *p, const char *name) {
    if (!p) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a non-null pointer for %s", name));
}

const slip_tensor &require_cpu_dense(const slip_tensor *t, const char *name, slip_dtype dtype) {
    require_not_null(t, name);
    if (t->ndim < 0 || t->ndim > SLIP_MAX_DIMS)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected 0 to %d dimensions for %s, got %d", SLIP_MAX_DIMS, name, t->ndim));
    for (int32_t i = 0; i < t->ndim; ++i)
        if (t->shape[i] < 0)
            fail(SLIP_STATUS_SHAPE_MISMATCH,
                 format("expected non-negative extents for %s, got %s", name,
                        shape_string(*t).c_str()));
    if (t->dtype != dtype)
        fail(SLIP_STATUS_DTYPE_MISMATCH,
             format("expected dtype %s for %s, got %s", slip_dtype_name(dtype), name,
                    slip_dtype_name(static_cast<slip_dtype>(t->dtype))));
    if (t->device != SLIP_DEVICE_CPU)
        fail(SLIP_STATUS_UNSUPPORTED, format("expected a CPU tensor for %s, got device %d", name,
                                             t->device));
    if (!is_contiguous(*t))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a dense row-major tensor for %s (shape %s)", name,
                    shape_string(*t).c_str()));
    if (numel(*t) > 0 && !t->data)
        fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected data for %s, got a null pointer", name));
    return *t;
}

void require_shape(const slip_tensor &t, const char *name, int32_t ndim, const int64_t *shape) {
    bool ok = t.ndim == ndim;
    for (int32_t i = 0; ok && i < ndim; ++i) ok = t.shape[i] == shape[i];
    if (!ok) {
        std::string want = "[";
        for (int32_t i = 0; i < ndim; ++i) {
            if (i) want += ", ";
            want += std::to_string(shape[i]);
        }
        want += "]";
        fail(SLIP_STATUS_SHAPE_MISMATCH, format("expected shape %s for %s, got %s", want.c_str(),
                                                name, shape_string(t).c_str()));
    }
}

const slip_tensor &require_shape(const slip_tensor *t, const char *name, slip_dtype dtype,
                                 std::initializer_list<int64_t> shape) {
    const slip_tensor &r = require_cpu_dense(t, name, dtype);
    require_shape(r, name, static_cast<int32_t>(shape.size()), shape.begin());
    return r;
}

Matrix as_matrix(const slip_tensor &t, const char *name) {
    if (t.ndim < 1)
        fail(SLIP_STATUS_SHAPE_MISMATCH,
             format("expected at least 1 dimension for %s, got a scalar", name));
    Matrix m{1, t.shape[t.ndim - 1]};
    for (int32_t i = 0; i + 1 < t.ndim; ++i) m.rows *= t.shape[i];
    return m;
}

}  // namespace slip

extern "C" {

SLIP_API size_t slip_dtype_size(slip_dtype dtype) {
    switch (dtype) {
        case SLIP_DTYPE_F32: return 4;
        case SLIP_DTYPE_F16: return 2;
        case SLIP_DTYPE_BF16: return 2;
        case SLIP_DTYPE_F64: return 8;
        case SLIP_DTYPE_F8_E4M3: return 1;
        case SLIP_DTYPE_F8_E5M2: return 1;
        case SLIP_DTYPE_I8: return 1;
        case SLIP_DTYPE_U8: return 1;
        case SLIP_DTYPE_I32: return 4;
        case SLIP_DTYPE_I64: return 8;
    }
    return 0;
}

SLIP_API const char *slip_dtype_name(slip_dtype dtype) {
    switch (dtype) {
        case SLIP_DTYPE_F32: return "F32";
        case SLIP_DTYPE_F16: return "F16";
        case SLIP_DTYPE_BF16: return "BF16";
        case SLIP_DTYPE_F64: return "F64";
        case SLIP_DTYPE_F8_E4M3: return "F8_E4M3";
        case SLIP_DTYPE_F8_E5M2: return "F8_E5M2";
        case SLIP_DTYPE_I8: return "I8";
        case SLIP_DTYPE_U8: return "U8";
        case SLIP_DTYPE_I32: return "I32";
        case SLIP_DTYPE_I64: return "I64";
    }
    return "UNKNOWN";
}

SLIP_API slip_status slip_tensor_init(slip_tensor *t, void *data, slip_dtype dtype, int32_t ndim,
                                      const int64_t *shape) {
    return slip::guard([&] {
        slip::require_not_null(t, "t");
        if (ndim < 0 || ndim > SLIP_MAX_DIMS)
            slip::fail(SLIP_STATUS_SHAPE_MISMATCH,
                       slip::format("expected 0 to %d dimensions for ndim, got %d", SLIP_MAX_DIMS,
                                    ndim));
        if (ndim > 0) slip::require_not_null(shape, "shape");
        if (slip_dtype_size(dtype) == 0)
            slip::fail(SLIP_STATUS_INVALID_ARGUMENT,
                       slip::format("expected a slip_dtype for dtype, got %d", dtype));
        *t = slip_tensor{};
        t->data = data;
        t->dtype = dtype;
        t->device = SLIP_DEVICE_CPU;
        t->ndim = ndim;
        int64_t stride = 1;
        for (int32_t i = ndim - 1; i >= 0; --i) {
            if (shape[i] < 0)
                slip::fail(SLIP_STATUS_SHAPE_MISMATCH,
                           slip::format("expected non-negative extents for shape, got %lld at %d",
                                        static_cast<long long>(shape[i]), i));
            t->shape[i] = shape[i];
            t->strides[i] = stride;
            stride *= shape[i];
        }
    });
}

}  // extern "C"
