// SageAttention2 / 2++ and SageBwd bindings. They check and copy the arguments, call the C ABI,
// and nothing else: defaults come from slip_attn_params_init and slip_sage_params_init, so an
// option left out keeps the native default; values are validated natively.
//   attnSage(q, k, v, out, options) -> Promise<void>;  attnSageSync(...) -> void
//   attnSageBackward(q, k, v, out, dOut, lse, dq, dk, dv, options) -> Promise<void>
//   attnSageBackwardSync(...) -> void
// options: { layout?, causal?, scale?, mask?, lse? (forward output), variant?, granularity?,
//            smoothK?, smoothQ?, blockQ?, blockK?, warpQ?, quantize? }
#include <memory>
#include <vector>

#include "common.h"

namespace slipnode {
namespace {

// Descriptors of one call, copied on the main thread so the worker never touches JS.
struct SageCall {
    slip_tensor q, k, v, out, mask, lse, d_out, dq, dk, dv;
    bool has_mask = false, has_lse = false;
    slip_attn_params params;
    slip_sage_params sage;
};

bool ToFlag(Napi::Env env, const Napi::Value &v, const char *name) {
    if (!v.IsBoolean()) throw ArgumentError(env, std::string("expected a boolean for ") + name);
    return v.As<Napi::Boolean>().Value();
}

void ReadOptions(Napi::Env env, const Napi::Value &ov, SageCall &c) {
    slip_status st = slip_attn_params_init(&c.params);
    if (st == SLIP_STATUS_OK) st = slip_sage_params_init(&c.sage);
    if (st != SLIP_STATUS_OK) throw StatusError(env, st, slip_last_error());
    if (ov.IsUndefined() || ov.IsNull()) return;
    if (!ov.IsObject()) throw ArgumentError(env, "expected an options object for options");
    Napi::Object o = ov.As<Napi::Object>();
    auto get = [&](const char *key) { return o.Has(key) ? o.Get(key) : env.Undefined(); };
    auto has = [&](const char *key) { return !get(key).IsUndefined() && !get(key).IsNull(); };
    auto i32 = [&](const char *key, const char *name) {
        return static_cast<int32_t>(ToInt64(get(key), name));
    };
    if (has("layout")) c.params.layout = i32("layout", "options.layout");
    if (has("causal")) c.params.causal = ToFlag(env, get("causal"), "options.causal") ? 1 : 0;
    if (has("scale")) c.params.scale = static_cast<float>(ToNumber(get("scale"), "options.scale"));
    if (has("variant")) c.sage.variant = i32("variant", "options.variant");
    if (has("granularity")) c.sage.granularity = i32("granularity", "options.granularity");
    if (has("smoothK")) c.sage.smooth_k = ToFlag(env, get("smoothK"), "options.smoothK") ? 1 : 0;
    if (has("smoothQ")) c.sage.smooth_q = ToFlag(env, get("smoothQ"), "options.smoothQ") ? 1 : 0;
    if (has("quantize")) c.sage.quantize = ToFlag(env, get("quantize"), "options.quantize") ? 1 : 0;
    if (has("blockQ")) c.sage.block_q = i32("blockQ", "options.blockQ");
    if (has("blockK")) c.sage.block_k = i32("blockK", "options.blockK");
    if (has("warpQ")) c.sage.warp_q = i32("warpQ", "options.warpQ");
    c.mask = ToOptionalTensor(get("mask"), "mask", &c.has_mask);
    c.lse = ToOptionalTensor(get("lse"), "lse", &c.has_lse);
}

std::shared_ptr<SageCall> ForwardCall(const Napi::CallbackInfo &info) {
    auto c = std::make_shared<SageCall>();
    c->q = ToTensor(info[0], "q");
    c->k = ToTensor(info[1], "k");
    c->v = ToTensor(info[2], "v");
    c->out = ToTensor(info[3], "out");
    ReadOptions(info.Env(), info[4], *c);
    return c;
}

std::shared_ptr<SageCall> BackwardCall(const Napi::CallbackInfo &info) {
    auto c = std::make_shared<SageCall>();
    c->q = ToTensor(info[0], "q");
    c->k = ToTensor(info[1], "k");
    c->v = ToTensor(info[2], "v");
    c->out = ToTensor(info[3], "out");
    c->d_out = ToTensor(info[4], "dOut");
    c->lse = ToTensor(info[5], "lse");
    c->dq = ToTensor(info[6], "dq");
    c->dk = ToTensor(info[7], "dk");
    c->dv = ToTensor(info[8], "dv");
    slip_tensor lse = c->lse;  // the forward's lse is a positional argument here
    ReadOptions(info.Env(), info[9], *c);
    c->lse = lse;
    return c;
}

slip_status RunForward(SageCall &c) {
    return slip_attn_sage(&c.q, &c.k, &c.v, c.has_mask ? &c.mask : nullptr, &c.params, &c.sage,
                          &c.out, c.has_lse ? &c.lse : nullptr);
}

slip_status RunBackward(SageCall &c) {
    return slip_attn_sage_backward(&c.q, &c.k, &c.v, &c.out, &c.d_out, &c.lse,
                                   c.has_mask ? &c.mask : nullptr, &c.params, &c.sage, &c.dq,
                                   &c.dk, &c.dv);
}

std::vector<Napi::Value> Keep(const Napi::CallbackInfo &info) {
    std::vector<Napi::Value> keep;
    for (size_t i = 0; i < info.Length(); ++i) keep.push_back(info[i]);
    return keep;
}

Napi::Value AttnSage(const Napi::CallbackInfo &info) {
    auto c = ForwardCall(info);
    return RunAsync(info.Env(), [c] { return RunForward(*c); }, nullptr, Keep(info));
}

Napi::Value AttnSageSync(const Napi::CallbackInfo &info) {
    auto c = ForwardCall(info);
    Check(info.Env(), RunForward(*c));
    return info.Env().Undefined();
}

Napi::Value AttnSageBackward(const Napi::CallbackInfo &info) {
    auto c = BackwardCall(info);
    return RunAsync(info.Env(), [c] { return RunBackward(*c); }, nullptr, Keep(info));
}

Napi::Value AttnSageBackwardSync(const Napi::CallbackInfo &info) {
    auto c = BackwardCall(info);
    Check(info.Env(), RunBackward(*c));
    return info.Env().Undefined();
}

}  // namespace

void RegisterAttentionSage(Napi::Env env, Napi::Object exports) {
    exports.Set("attnSage", Napi::Function::New(env, AttnSage, "attnSage"));
    exports.Set("attnSageSync", Napi::Function::New(env, AttnSageSync, "attnSageSync"));
    exports.Set("attnSageBackward", Napi::Function::New(env, AttnSageBackward, "attnSageBackward"));
    exports.Set("attnSageBackwardSync",
                Napi::Function::New(env, AttnSageBackwardSync, "attnSageBackwardSync"));
}

}  // namespace slipnode
