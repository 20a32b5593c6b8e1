// ABI of the element codecs: one small-float code per byte, no scaling.
#include <cmath>
#include <string>

#include "base/error.h"
#include "base/kernels.h"
#include "base/tensor.h"
#include "base/thread-pool.h"
#include "common.h"

namespace slip::quant {
namespace {

const KernelName kRegistered("element_codecs");

const char *element_name(int fmt) {
    switch (fmt) {
        case SLIP_ELEMENT_E4M3: return "E4M3";
        case SLIP_ELEMENT_E5M2: return "E5M2";
        case SLIP_ELEMENT_E2M1: return "E2M1";
        case SLIP_ELEMENT_E8M0: return "E8M0";
    }
    return nullptr;
}

const element::Spec *spec_of(int fmt) {
    switch (fmt) {
        case SLIP_ELEMENT_E4M3: return &element::kE4M3;
        case SLIP_ELEMENT_E5M2: return &element::kE5M2;
        case SLIP_ELEMENT_E2M1: return &element::kE2M1;
    }
    return nullptr;  // E8M0 has its own codec
}

void check_common(int fmt, const void *in, const void *out, int64_t n) {
    if (!element_name(fmt))
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a slip_element_format (0 to 3) for fmt, got %d", fmt));
    if (n < 0)
        fail(SLIP_STATUS_INVALID_ARGUMENT,
             format("expected a non-negative count for n, got %lld", static_cast<long long>(n)));
    if (n > 0) {
        require_not_null(in, "in");
        require_not_null(out, "out");
    }
}

constexpr int64_t kGrain = 1 << 16;

}  // namespace
}  // namespace slip::quant

extern "C" {

SLIP_API slip_status slip_element_encode(slip_element_format fmt, const float *in, uint8_t *out,
                                         int64_t n, slip_rounding rounding, uint64_t seed) {
    using namespace slip;
    return guard([&] {
        quant::check_common(fmt, in, out, n);
        if (rounding != SLIP_ROUND_NEAREST_EVEN && rounding != SLIP_ROUND_STOCHASTIC)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected SLIP_ROUND_NEAREST_EVEN (0) or SLIP_ROUND_STOCHASTIC (1) for "
                        "rounding, got %d", static_cast<int>(rounding)));
        if (fmt == SLIP_ELEMENT_E8M0) {
            // E8M0 rounds log2 down by definition (OCP MX scale rule); no other mode exists.
            if (rounding != SLIP_ROUND_NEAREST_EVEN)
                fail(SLIP_STATUS_INVALID_ARGUMENT,
                     "expected SLIP_ROUND_NEAREST_EVEN for rounding with E8M0 (its encode rounds "
                     "log2 down), got SLIP_ROUND_STOCHASTIC");
            parallel_for(n, quant::kGrain, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) out[i] = element::encode_e8m0_floor(in[i]);
            });
            return;
        }
        if (fmt == SLIP_ELEMENT_E2M1) {
            for (int64_t i = 0; i < n; ++i)
                if (std::isnan(in[i]))
                    fail(SLIP_STATUS_NON_FINITE,
                         format("expected a non-NaN value for in (E2M1 has no NaN), got NaN at "
                                "index %lld", static_cast<long long>(i)));
        }
        const element::Spec &s = *quant::spec_of(fmt);
        const bool sr = rounding == SLIP_ROUND_STOCHASTIC;
        parallel_for(n, quant::kGrain, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
                const float u = sr ? quant::uniform01(seed, static_cast<uint64_t>(i)) : -1.0f;
                out[i] = element::encode(in[i], s, u);
            }
        });
    });
}

SLIP_API slip_status slip_element_decode(slip_element_format fmt, const uint8_t *in, float *out,
                                         int64_t n) {
    using namespace slip;
    return guard([&] {
        quant::check_common(fmt, in, out, n);
        if (fmt == SLIP_ELEMENT_E8M0) {
            for (int64_t i = 0; i < n; ++i) out[i] = element::decode_e8m0(in[i]);
            return;
        }
        if (fmt == SLIP_ELEMENT_E2M1) {
            for (int64_t i = 0; i < n; ++i)
                if (in[i] > 0x0F)
                    fail(SLIP_STATUS_INVALID_ARGUMENT,
                         format("expected E2M1 codes in 0..15 for in, got %u at index %lld", in[i],
                                static_cast<long long>(i)));
        }
        const element::Spec &s = *quant::spec_of(fmt);
        for (int64_t i = 0; i < n; ++i) out[i] = element::decode(in[i], s);
    });
}

}  // extern "C"
