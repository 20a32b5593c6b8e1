// Validation of slip_tensor descriptors at the ABI. Every message names the argument and says
// what was expected and what came, so hosts can pass it straight to users.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "error.h"
#include "slipstream.h"

namespace slip {

std::string shape_string(const slip_tensor &t);
int64_t numel(const slip_tensor &t);
bool is_contiguous(const slip_tensor &t);

// Non-null, CPU, dense row-major, of this dtype. Returns the tensor for chaining.
const slip_tensor &require_cpu_dense(const slip_tensor *t, const char *name, slip_dtype dtype);
// Same, and exactly this shape.
const slip_tensor &require_shape(const slip_tensor *t, const char *name, slip_dtype dtype,
                                 std::initializer_list<int64_t> shape);
void require_shape(const slip_tensor &t, const char *name, int32_t ndim, const int64_t *shape);
void require_not_null(const void *p, const char *name);

// Rows x columns view of a tensor whose last dimension is K.
struct Matrix {
    int64_t rows;
    int64_t cols;
};
Matrix as_matrix(const slip_tensor &t, const char *name);

template <class T>
T *data_as(const slip_tensor &t) {
    return static_cast<T *>(t.data);
}

}  // namespace slip
