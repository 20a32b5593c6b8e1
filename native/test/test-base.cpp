// The base layer: statuses, last error, capabilities, ISA switching, thread pool resizing.
#include <cstring>
#include <string>

#include "check.h"
#include "slipstream.h"

int main() {
    CHECK(slip_abi_version() == SLIP_ABI_VERSION);
    CHECK(std::strcmp(slip_status_string(SLIP_STATUS_SHAPE_MISMATCH), "SLIP_STATUS_SHAPE_MISMATCH") == 0);
    CHECK(std::strcmp(slip_status_string(static_cast<slip_status>(99)), "SLIP_STATUS_UNKNOWN") == 0);

    slip_capabilities caps;
    CHECK(slip_get_capabilities(&caps) == SLIP_STATUS_OK);
    CHECK(caps.num_threads >= 1);
    CHECK(caps.isa_active <= caps.isa_detected);
    CHECK(slip_get_capabilities(nullptr) == SLIP_STATUS_INVALID_ARGUMENT);
    CHECK(std::strstr(slip_last_error(), "out") != nullptr);

    // Every ISA level up to the detected one can be selected; above it is refused.
    for (int isa = 0; isa <= caps.isa_detected; ++isa)
        CHECK(slip_set_isa(static_cast<slip_isa>(isa)) == SLIP_STATUS_OK);
    if (caps.isa_detected < SLIP_ISA_AVX512VNNI)
        CHECK(slip_set_isa(static_cast<slip_isa>(caps.isa_detected + 1)) == SLIP_STATUS_UNSUPPORTED);
    CHECK(slip_set_isa(static_cast<slip_isa>(9)) == SLIP_STATUS_INVALID_ARGUMENT);
    CHECK(slip_last_error()[0] != '\0');
    CHECK(slip_set_isa(static_cast<slip_isa>(caps.isa_detected)) == SLIP_STATUS_OK);
    CHECK(slip_last_error()[0] == '\0');  // a successful call clears it

    CHECK(slip_set_num_threads(3) == SLIP_STATUS_OK);
    CHECK(slip_get_capabilities(&caps) == SLIP_STATUS_OK && caps.num_threads == 3);
    CHECK(slip_set_num_threads(0) == SLIP_STATUS_INVALID_ARGUMENT);

    size_t needed = 0;
    CHECK(slip_list_kernels(nullptr, 0, &needed) == SLIP_STATUS_OK && needed >= 1);
    char tiny[1];
    if (needed > 1) CHECK(slip_list_kernels(tiny, 1, &needed) == SLIP_STATUS_INVALID_ARGUMENT);

    slip_tensor t;
    int64_t shape[2] = {3, -1};
    float data[4];
    CHECK(slip_tensor_init(&t, data, SLIP_DTYPE_F32, 2, shape) == SLIP_STATUS_SHAPE_MISMATCH);
    shape[1] = 4;
    CHECK(slip_tensor_init(&t, data, static_cast<slip_dtype>(42), 2, shape) ==
          SLIP_STATUS_INVALID_ARGUMENT);
    CHECK(slip_tensor_init(&t, data, SLIP_DTYPE_F32, 2, shape) == SLIP_STATUS_OK);
    CHECK(t.strides[0] == 4 && t.strides[1] == 1);
    CHECK(slip_dtype_size(SLIP_DTYPE_BF16) == 2 && std::strcmp(slip_dtype_name(SLIP_DTYPE_F8_E4M3), "F8_E4M3") == 0);
    return slip_test::report("test-base");
}
