// Minimal test harness for the native tests: CHECK records a failure with its location and
// goes on, so one run reports every broken case; main() returns report().
#pragma once

#include <cstdio>
#include <cstring>

#include "slipstream.h"

namespace slip_test {

inline int &failures() {
    static int n = 0;
    return n;
}
inline int &checks() {
    static int n = 0;
    return n;
}

inline int report(const char *name) {
    std::printf("%s: %d checks, %d failed\n", name, checks(), failures());
    return failures() == 0 ? 0 : 1;
}

}  // namespace slip_test

#define CHECK(cond)                                                                  \
    do {                                                                             \
        ++slip_test::checks();                                                       \
        if (!(cond)) {                                                               \
            ++slip_test::failures();                                                 \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        ++slip_test::checks();                                                       \
        if (!(cond)) {                                                               \
            ++slip_test::failures();                                                 \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            std::fprintf(stderr, __VA_ARGS__);                                       \
            std::fputc('\n', stderr);                                                \
        }                                                                            \
    } while (0)

// The native call succeeds; on failure the message carries slip_last_error().
#define CHECK_OK(call)                                                                   \
    do {                                                                                 \
        const slip_status st_ = (call);                                                  \
        CHECK_MSG(st_ == SLIP_STATUS_OK, "%s: %s", #call, slip_last_error());            \
    } while (0)

// The call fails with `status` and a last-error sentence containing `text`.
#define CHECK_FAILS(call, status, text)                                                  \
    do {                                                                                 \
        const slip_status s_ = (call);                                                   \
        CHECK_MSG(s_ == (status) && std::strstr(slip_last_error(), (text)) != nullptr,   \
                  "%s: got %s \"%s\", expected %s containing \"%s\"", #call,            \
                  slip_status_string(s_), slip_last_error(), slip_status_string(status), \
                  (text));                                                               \
    } while (0)
