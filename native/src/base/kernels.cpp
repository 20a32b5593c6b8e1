#include "kernels.h"

namespace slip {

namespace {
std::vector<const char *> &registry() {
    static std::vector<const char *> names;
    return names;
}
}  // namespace

const std::vector<const char *> &kernel_names() { return registry(); }

KernelName::KernelName(const char *name) { registry().push_back(name); }

}  // namespace slip
