// Thread-local last error and the catch-all that keeps C++ exceptions from crossing the ABI.
#pragma once

#include <stdexcept>
#include <string>

#include "slipstream.h"

namespace slip {

// Thrown inside the library; converted to a status + sentence at the ABI edge by guard().
class Error : public std::runtime_error {
  public:
    Error(slip_status status, std::string message)
        : std::runtime_error(std::move(message)), status_(status) {}
    slip_status status() const { return status_; }

  private:
    slip_status status_;
};

// printf-style sentence builder.
std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

[[noreturn]] void fail(slip_status status, const std::string &message);

void set_last_error(const std::string &message);
void clear_last_error();

// Runs body at an ABI entry point: clears the last error, maps exceptions to statuses.
template <class F>
slip_status guard(F &&body) noexcept {
    try {
        clear_last_error();
        body();
        return SLIP_STATUS_OK;
    } catch (const Error &e) {
        set_last_error(e.what());
        return e.status();
    } catch (const std::bad_alloc &) {
        set_last_error("out of memory");
        return SLIP_STATUS_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        set_last_error(std::string("internal error: ") + e.what());
        return SLIP_STATUS_INTERNAL;
    } catch (...) {
        set_last_error("internal error: unknown exception");
        return SLIP_STATUS_INTERNAL;
    }
}

}  // namespace slip
