// CUDA presence at run time. Compiled only when nvcc was found; kernels live beside this file.
#include <cuda_runtime.h>

namespace slip {

int cuda_device_count() {
    int n = 0;
    // No driver or no device is not an error for the library: the CPU backend serves.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

}  // namespace slip
