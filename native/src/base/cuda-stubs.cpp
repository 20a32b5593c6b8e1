// What the C API's CUDA calls do in a build without the CUDA backend: refuse, saying why.
#include "cuda-backend.h"

#include "error.h"

namespace slip::cuda {

bool any_on_device(std::initializer_list<const slip_tensor *> ts) {
    for (const slip_tensor *t : ts)
        if (t && t->device == SLIP_DEVICE_CUDA) return true;
    return false;
}

#ifndef SLIPSTREAM_WITH_CUDA
namespace {
[[noreturn]] void no_cuda(const char *what) {
    fail(SLIP_STATUS_UNSUPPORTED,
         format("%s on CUDA tensors: this build of libslipstream has no CUDA backend (nvcc was not found when it "
                "was built, or SLIPSTREAM_CUDA=0)",
                what));
}
}  // namespace

void attn_sage(const slip_tensor *, const slip_tensor *, const slip_tensor *, const slip_tensor *, const slip_tensor *,
               const slip_attn_params *, const slip_sage_params *, slip_tensor *, slip_tensor *) {
    no_cuda("slip_attn_sage");
}

void attn_sparse_predict(const slip_tensor *, const slip_tensor *, const slip_attn_params *, const slip_sparse_params *,
                         slip_tensor *, double *) {
    no_cuda("slip_attn_sparse_predict");
}

std::shared_ptr<void> linear_plan_create(const slip_qweight *, const slip_linear_params *) {
    no_cuda("slip_linear_plan_create");
}

// No CUDA plan can exist in this build; these are here for the linker.
void linear_plan_run(const void *, const slip_linear_params *, const slip_tensor *, const slip_tensor *, slip_tensor *) {
    no_cuda("slip_linear_plan_run");
}

int64_t linear_plan_weight_bytes(const void *) { no_cuda("slip_linear_plan_weight_bytes"); }
#endif

}  // namespace slip::cuda
