// Entry points of the CUDA backend (native/cuda/), which the C API calls when its tensors live on
// a CUDA device: the same functions, the device chosen by the tensors. A build without nvcc links
// the stubs in cuda-stubs.cpp, which refuse with SLIP_STATUS_UNSUPPORTED.
#pragma once

#include <initializer_list>
#include <memory>

#include "slipstream.h"

namespace slip::cuda {

// True when any of the tensors (nullptr skipped) is on a CUDA device.
bool any_on_device(std::initializer_list<const slip_tensor *> ts);

// slip_attn_sage / slip_attn_sage_block_sparse on CUDA tensors; sp already checked by the caller.
void attn_sage(const slip_tensor *q, const slip_tensor *k, const slip_tensor *v, const slip_tensor *mask,
               const slip_tensor *block_mask, const slip_attn_params *p, const slip_sage_params *sp, slip_tensor *out,
               slip_tensor *lse);

// slip_linear_plan_* for a weight on a CUDA device (native/cuda/gemm/). The plan is opaque here:
// its deleter frees the device copy. create validates w and p; run takes the activation mode of
// this call (the plan's own, or run_as's).
std::shared_ptr<void> linear_plan_create(const slip_qweight *w, const slip_linear_params *p);
void linear_plan_run(const void *plan, const slip_linear_params *p, const slip_tensor *x, const slip_tensor *bias,
                     slip_tensor *y);
int64_t linear_plan_weight_bytes(const void *plan);

// slip_attn_sparse_predict on CUDA tensors; sp already checked by the caller.
void attn_sparse_predict(const slip_tensor *q, const slip_tensor *k, const slip_attn_params *attn,
                         const slip_sparse_params *sp, slip_tensor *block_mask_out, double *sparsity_out);

}  // namespace slip::cuda
