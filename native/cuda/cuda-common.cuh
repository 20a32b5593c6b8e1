// Host-side pieces every CUDA entry point shares: CUDA errors as the library's errors, and running
// on the tensors' device without leaving the caller's current device changed.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "base/error.h"

namespace slip::cuda {

inline void check_cuda(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return;
    cudaGetLastError();  // a sticky error stays; a plain one is consumed so it does not poison later calls
    fail(e == cudaErrorMemoryAllocation ? SLIP_STATUS_OUT_OF_MEMORY : SLIP_STATUS_CUDA_ERROR,
         format("%s: %s", what, cudaGetErrorString(e)));
}

// Scratch for one call, stream-ordered, from a pool of the library's own on the current device
// that keeps up to kScratchKeepBytes between calls. The default pool hands its memory back at every
// synchronization, and mapping it again cost ~0.5 ms a call for a few hundred MB on the H100
// (bench/NOTES.md); the memory kept is freed at exit. scratch_free queues the release on stream.
constexpr uint64_t kScratchKeepBytes = uint64_t{1} << 30;
void *scratch_alloc(size_t bytes, cudaStream_t stream, const char *what);
void scratch_free(void *p, cudaStream_t stream);

// A kernel of a cubin that native/cuda/triton/aot.py generated (CMake embeds them by file name),
// loaded on first use and kept for the process, its dynamic shared memory raised to shared_bytes.
// Through the runtime's library API: the library links no driver and still loads without a GPU.
cudaKernel_t embedded_kernel(const char *cubin, const char *kernel, int shared_bytes);

class DeviceScope {
  public:
    explicit DeviceScope(int device) {
        check_cuda(cudaGetDevice(&prev_), "cudaGetDevice");
        if (prev_ != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
    }
    ~DeviceScope() {
        if (prev_ >= 0) cudaSetDevice(prev_);
    }
    DeviceScope(const DeviceScope &) = delete;
    DeviceScope &operator=(const DeviceScope &) = delete;

  private:
    int prev_ = -1;
};

}  // namespace slip::cuda
