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

void ReadOptions(const Napi::Value &ov, SageCall &c) {
    const Options o(ov, "options");
    c.params = ToAttnParams(o);
    if (slip_sage_params_init(&c.sage) != SLIP_STATUS_OK)
        throw StatusError(ov.Env(), SLIP_STATUS_INTERNAL, slip_last_error());
    if (o.has("variant")) c.sage.variant = o.i32("variant");
    if (o.has("granularity")) c.sage.granularity = o.i32("granularity");
    if (o.has("smoothK")) c.sage.smooth_k = o.flag("smoothK") ? 1 : 0;
    if (o.has("smoothQ")) c.sage.smooth_q = o.flag("smoothQ") ? 1 : 0;
    if (o.has("quantize")) c.sage.quantize = o.flag("quantize") ? 1 : 0;
    if (o.has("blockQ")) c.sage.block_q = o.i64("blockQ");
    if (o.has("blockK")) c.sage.block_k = o.i64("blockK");
    if (o.has("warpQ")) c.sage.warp_q = o.i64("warpQ");
    c.mask = o.tensor("mask", &c.has_mask);
    c.lse = o.tensor("lse", &c.has_lse);
}

std::shared_ptr<SageCall> ForwardCall(const Napi::CallbackInfo &info) {
    auto c = std::make_shared<SageCall>();
    c->q = ToTensor(info[0], "q");
    c->k = ToTensor(info[1], "k");
    c->v = ToTensor(info[2], "v");
    c->out = ToTensor(info[3], "out");
    ReadOptions(info[4], *c);
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
    ReadOptions(info[9], *c);
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

Napi::Value AttnSage(const Napi::CallbackInfo &info) {
    auto c = ForwardCall(info);
    return RunAsync(info.Env(), [c] { return RunForward(*c); }, nullptr, Arguments(info));
}

Napi::Value AttnSageSync(const Napi::CallbackInfo &info) {
    auto c = ForwardCall(info);
    Check(info.Env(), RunForward(*c));
    return info.Env().Undefined();
}

Napi::Value AttnSageBackward(const Napi::CallbackInfo &info) {
    auto c = BackwardCall(info);
    return RunAsync(info.Env(), [c] { return RunBackward(*c); }, nullptr, Arguments(info));
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
