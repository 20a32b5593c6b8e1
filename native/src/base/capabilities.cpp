// Version, capabilities and the kernel list: what a host asks before it decides to call us.
#include <cstring>
#include <string>

#include "cpu.h"
#include "error.h"
#include "kernels.h"
#include "tensor.h"
#include "thread-pool.h"

#ifndef SLIPSTREAM_VERSION
#define SLIPSTREAM_VERSION "0.0.0"
#endif

namespace slip {
int cuda_device_count();  // cuda/device.cu when CUDA is compiled, else below
}

#ifndef SLIPSTREAM_WITH_CUDA
int slip::cuda_device_count() { return 0; }
#endif

extern "C" {

SLIP_API uint32_t slip_abi_version(void) { return SLIP_ABI_VERSION; }
SLIP_API const char *slip_version_string(void) { return SLIPSTREAM_VERSION; }

SLIP_API slip_status slip_get_capabilities(slip_capabilities *out) {
    return slip::guard([&] {
        slip::require_not_null(out, "out");
        *out = slip_capabilities{};
        out->abi_version = SLIP_ABI_VERSION;
        out->cpu_features = slip::cpu_features();
        out->isa_detected = slip::isa_detected();
        out->isa_active = slip::isa_active();
        out->num_threads = slip::num_threads();
#ifdef SLIPSTREAM_WITH_CUDA
        out->cuda_compiled = 1;
#endif
        out->cuda_device_count = slip::cuda_device_count();
    });
}

SLIP_API slip_status slip_list_kernels(char *buf, size_t buf_size, size_t *needed) {
    return slip::guard([&] {
        std::string list;
        for (const char *name : slip::kernel_names()) {
            if (!list.empty()) list += ',';
            list += name;
        }
        if (needed) *needed = list.size() + 1;
        if (!buf) return;
        if (buf_size < list.size() + 1)
            slip::fail(SLIP_STATUS_INVALID_ARGUMENT,
                       slip::format("expected buf_size >= %zu for buf, got %zu", list.size() + 1,
                                    buf_size));
        std::memcpy(buf, list.c_str(), list.size() + 1);
    });
}

}  // extern "C"
