// ABI entry points of the Wan2.1 runtime: checks, then the stages of wan.h.
#include <cstring>

#include "../base/error.h"
#include "../base/kernels.h"
#include "../base/tensor.h"
#include "wan.h"

namespace {

slip::KernelName k_wan("wan_forward");

void forward(slip_wan_model_t model, const slip_tensor *x, const slip_tensor *t,
             const slip_tensor *context, slip_tensor *out, slip_tensor *hidden) {
    using namespace slip;
    require_not_null(model, "model");
    require_not_null(x, "x");
    require_not_null(t, "t");
    require_not_null(context, "context");
    const slip_wan_config &c = model->cfg;
    std::vector<float> tokens;
    const runtime::Step s = runtime::embed(*model, *x, *t, *context, tokens);
    require_shape(out, "out", SLIP_DTYPE_F32, {s.batch, c.out_channels, s.frames, s.height, s.width});
    const size_t stage = tokens.size();
    if (hidden)  // hidden: [layers + 1, B, L, dim]
        require_shape(hidden, "hidden", SLIP_DTYPE_F32, {c.layers + 1, s.batch, s.tokens, c.dim});
    auto record = [&](int64_t i) {
        if (hidden) std::memcpy(data_as<float>(*hidden) + i * stage, tokens.data(), stage * sizeof(float));
    };
    record(0);
    runtime::Scratch scratch(*model, s);
    for (int64_t i = 0; i < c.layers; ++i) {
        runtime::run_block(*model, i, s, tokens.data(), scratch);
        record(i + 1);
    }
    runtime::run_head(*model, s, tokens.data(), data_as<float>(*out));
}

}  // namespace

extern "C" {

SLIP_API slip_status slip_wan_model_options_init(slip_wan_model_options *o) {
    return slip::guard([&] {
        slip::require_not_null(o, "o");
        *o = slip_wan_model_options{};
        o->weights = SLIP_WAN_WEIGHTS_F32;
        o->hadamard_block = 128;
    });
}

SLIP_API slip_status slip_wan_model_create(const char *const *names, const slip_tensor *tensors,
                                           int64_t count, const slip_wan_config *config,
                                           const slip_wan_model_options *options,
                                           slip_wan_model_t *out) {
    return slip::guard([&] {
        slip::require_not_null(config, "config");
        slip::require_not_null(out, "out");
        *out = nullptr;
        slip_wan_model_options defaults;
        slip_wan_model_options_init(&defaults);
        *out = slip::runtime::create_model(names, tensors, count, *config, options ? *options : defaults);
    });
}

SLIP_API slip_status slip_wan_model_weight_bytes(slip_wan_model_t model, int64_t *bytes) {
    return slip::guard([&] {
        slip::require_not_null(model, "model");
        slip::require_not_null(bytes, "bytes");
        *bytes = slip::runtime::weight_bytes(*model);
    });
}

SLIP_API slip_status slip_wan_forward(slip_wan_model_t model, const slip_tensor *x,
                                      const slip_tensor *t, const slip_tensor *context,
                                      slip_tensor *out) {
    return slip::guard([&] { forward(model, x, t, context, out, nullptr); });
}

SLIP_API slip_status slip_wan_forward_trace(slip_wan_model_t model, const slip_tensor *x,
                                            const slip_tensor *t, const slip_tensor *context,
                                            slip_tensor *out, slip_tensor *hidden) {
    return slip::guard([&] {
        slip::require_not_null(hidden, "hidden");
        forward(model, x, t, context, out, hidden);
    });
}

SLIP_API slip_status slip_wan_model_config(slip_wan_model_t model, slip_wan_config *out) {
    return slip::guard([&] {
        slip::require_not_null(model, "model");
        slip::require_not_null(out, "out");
        *out = model->cfg;
    });
}

SLIP_API void slip_wan_model_free(slip_wan_model_t model) { delete model; }

}  // extern "C"
