// The registry of kernel names reported by slip_list_kernels. Each op area registers its names
// with a static KernelName so the list is always what was linked in.
#pragma once

#include <vector>

namespace slip {

const std::vector<const char *> &kernel_names();

struct KernelName {
    explicit KernelName(const char *name);
};

}  // namespace slip
