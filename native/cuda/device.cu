// CUDA presence at run time, and the scratch pool every CUDA entry point allocates from. Compiled
// only when nvcc was found; kernels live beside this file.
#include <cuda_runtime.h>

#include <mutex>

#include "cuda-common.cuh"

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

namespace slip::cuda {

namespace {

constexpr int kMaxDevices = 64;
std::mutex g_pool_mutex;
cudaMemPool_t g_pools[kMaxDevices] = {};

cudaMemPool_t scratch_pool(int device) {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    if (g_pools[device]) return g_pools[device];
    cudaMemPoolProps props = {};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    cudaMemPool_t pool = nullptr;
    check_cuda(cudaMemPoolCreate(&pool, &props), "cudaMemPoolCreate (scratch pool)");
    uint64_t keep = kScratchKeepBytes;
    check_cuda(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
    g_pools[device] = pool;
    return pool;
}

}  // namespace

void *scratch_alloc(size_t bytes, cudaStream_t stream, const char *what) {
    int device = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    if (device < 0 || device >= kMaxDevices) fail(SLIP_STATUS_UNSUPPORTED, format("CUDA device %d: at most %d devices", device, kMaxDevices));
    void *p = nullptr;
    check_cuda(cudaMallocFromPoolAsync(&p, bytes, scratch_pool(device), stream), what);
    return p;
}

void scratch_free(void *p, cudaStream_t stream) {
    if (p) cudaFreeAsync(p, stream);
}

}  // namespace slip::cuda
