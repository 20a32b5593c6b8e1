#include "error.h"

#include <cstdarg>
#include <cstdio>
#include <vector>

namespace slip {

namespace {
thread_local std::string tls_last_error;
}

std::string format(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    va_list copy;
    va_copy(copy, args);
    int n = std::vsnprintf(nullptr, 0, fmt, copy);
    va_end(copy);
    std::string out;
    if (n > 0) {
        std::vector<char> buf(static_cast<size_t>(n) + 1);
        std::vsnprintf(buf.data(), buf.size(), fmt, args);
        out.assign(buf.data(), static_cast<size_t>(n));
    }
    va_end(args);
    return out;
}

void fail(slip_status status, const std::string &message) { throw Error(status, message); }

void set_last_error(const std::string &message) { tls_last_error = message; }
void clear_last_error() { tls_last_error.clear(); }

}  // namespace slip

extern "C" {

SLIP_API const char *slip_last_error(void) { return slip::tls_last_error.c_str(); }

SLIP_API const char *slip_status_string(slip_status status) {
    switch (status) {
        case SLIP_STATUS_OK: return "SLIP_STATUS_OK";
        case SLIP_STATUS_INVALID_ARGUMENT: return "SLIP_STATUS_INVALID_ARGUMENT";
        case SLIP_STATUS_SHAPE_MISMATCH: return "SLIP_STATUS_SHAPE_MISMATCH";
        case SLIP_STATUS_DTYPE_MISMATCH: return "SLIP_STATUS_DTYPE_MISMATCH";
        case SLIP_STATUS_NON_FINITE: return "SLIP_STATUS_NON_FINITE";
        case SLIP_STATUS_UNSUPPORTED: return "SLIP_STATUS_UNSUPPORTED";
        case SLIP_STATUS_OUT_OF_MEMORY: return "SLIP_STATUS_OUT_OF_MEMORY";
        case SLIP_STATUS_CUDA_ERROR: return "SLIP_STATUS_CUDA_ERROR";
        case SLIP_STATUS_INTERNAL: return "SLIP_STATUS_INTERNAL";
    }
    return "SLIP_STATUS_UNKNOWN";
}

}  // extern "C"
