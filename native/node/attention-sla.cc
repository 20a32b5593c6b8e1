// SLA2 bindings: router, forward, backward. They check and copy the arguments, call the C ABI,
// and nothing else: defaults come from slip_sla_params_init (slaDefaults hands them to TS for
// shapes), shapes are checked natively.
//   slaDefaults() -> { blockQ, blockK, critical, negligible, featureMap, smoothK }
//   slaRoute(q, k, routerWq | null, routerWk | null, route, options, sla) -> sparsity
//   slaForward(q, k, v, route, alpha, projW, projB | null, out, options, sla) -> Promise<void>
//   slaBackward(q, k, v, route, alpha, projW, projB | null, dout,
//               dq, dk, dv, dalpha, dprojW, dprojB | null, options, sla) -> Promise<void>
//   (and slaForwardSync, slaBackwardSync). options: { layout?, scale? } (SLA2 is not causal).
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace slipnode {
namespace {

// { layout?, causal?, scale? }: causal is passed on so the native call refuses it in its words.
slip_attn_params ToParams(const Napi::Value &v) { return ToAttnParams(Options(v, "options")); }

slip_sla_params ToSlaParams(const Napi::Value &v) {
    const Options o(v, "sla");
    slip_sla_params p;
    const slip_status st = slip_sla_params_init(&p);
    if (st != SLIP_STATUS_OK) throw StatusError(v.Env(), st, slip_last_error());
    if (o.has("blockQ")) p.block_q = o.i64("blockQ");
    if (o.has("blockK")) p.block_k = o.i64("blockK");
    if (o.has("critical")) p.critical = o.f32("critical");
    if (o.has("negligible")) p.negligible = o.f32("negligible");
    if (o.has("featureMap")) p.feature_map = o.i32("featureMap");
    if (o.has("smoothK")) p.smooth_k = o.flag("smoothK") ? 1 : 0;
    return p;
}

Napi::Value SlaDefaults(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    const slip_sla_params p = ToSlaParams(env.Undefined());
    Napi::Object o = Napi::Object::New(env);
    o.Set("blockQ", Napi::Number::New(env, static_cast<double>(p.block_q)));
    o.Set("blockK", Napi::Number::New(env, static_cast<double>(p.block_k)));
    o.Set("critical", Napi::Number::New(env, p.critical));
    o.Set("negligible", Napi::Number::New(env, p.negligible));
    o.Set("featureMap", Napi::Number::New(env, p.feature_map));
    o.Set("smoothK", Napi::Boolean::New(env, p.smooth_k != 0));
    return o;
}

Napi::Value SlaRoute(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    slip_tensor q = ToTensor(info[0], "q"), k = ToTensor(info[1], "k");
    bool has_wq = false, has_wk = false;
    slip_tensor wq = ToOptionalTensor(info[2], "routerWq", &has_wq);
    slip_tensor wk = ToOptionalTensor(info[3], "routerWk", &has_wk);
    slip_tensor route = ToTensor(info[4], "route");
    const slip_attn_params p = ToParams(info[5]);
    const slip_sla_params sp = ToSlaParams(info[6]);
    double sparsity = 0.0;
    if (!Check(env, slip_sla_route_predict(&q, &k, has_wq ? &wq : nullptr, has_wk ? &wk : nullptr,
                                           &p, &sp, &route, &sparsity)))
        return env.Undefined();
    return Napi::Number::New(env, sparsity);
}

// Forward and backward share the first seven arguments; backward adds dout and the gradients.
struct SlaCall {
    slip_tensor q, k, v, route, alpha, w, b, out;   // out: dout for backward
    slip_tensor dq, dk, dv, dalpha, dw, db;
    bool has_b = false, has_db = false;
    slip_attn_params p;
    slip_sla_params sp;
};

std::shared_ptr<SlaCall> ToSlaCall(const Napi::CallbackInfo &info, bool backward) {
    auto c = std::make_shared<SlaCall>();
    c->q = ToTensor(info[0], "q");
    c->k = ToTensor(info[1], "k");
    c->v = ToTensor(info[2], "v");
    c->route = ToTensor(info[3], "route");
    c->alpha = ToTensor(info[4], "alpha");
    c->w = ToTensor(info[5], "projW");
    c->b = ToOptionalTensor(info[6], "projB", &c->has_b);
    c->out = ToTensor(info[7], backward ? "dout" : "out");
    size_t at = 8;
    if (backward) {
        c->dq = ToTensor(info[8], "dq");
        c->dk = ToTensor(info[9], "dk");
        c->dv = ToTensor(info[10], "dv");
        c->dalpha = ToTensor(info[11], "dalpha");
        c->dw = ToTensor(info[12], "dprojW");
        c->db = ToOptionalTensor(info[13], "dprojB", &c->has_db);
        at = 14;
    }
    c->p = ToParams(info[at]);
    c->sp = ToSlaParams(info[at + 1]);
    return c;
}

slip_status RunForward(SlaCall &c) {
    return slip_sla_forward(&c.q, &c.k, &c.v, &c.route, &c.alpha, &c.w, c.has_b ? &c.b : nullptr,
                            &c.p, &c.sp, &c.out);
}

slip_status RunBackward(SlaCall &c) {
    return slip_sla_backward(&c.q, &c.k, &c.v, &c.route, &c.alpha, &c.w, c.has_b ? &c.b : nullptr,
                             &c.out, &c.p, &c.sp, &c.dq, &c.dk, &c.dv, &c.dalpha, &c.dw,
                             c.has_db ? &c.db : nullptr);
}

Napi::Value SlaForward(const Napi::CallbackInfo &info) {
    auto c = ToSlaCall(info, false);
    return RunAsync(info.Env(), [c] { return RunForward(*c); }, nullptr, Arguments(info));
}

Napi::Value SlaForwardSync(const Napi::CallbackInfo &info) {
    auto c = ToSlaCall(info, false);
    Check(info.Env(), RunForward(*c));
    return info.Env().Undefined();
}

Napi::Value SlaBackward(const Napi::CallbackInfo &info) {
    auto c = ToSlaCall(info, true);
    return RunAsync(info.Env(), [c] { return RunBackward(*c); }, nullptr, Arguments(info));
}

Napi::Value SlaBackwardSync(const Napi::CallbackInfo &info) {
    auto c = ToSlaCall(info, true);
    Check(info.Env(), RunBackward(*c));
    return info.Env().Undefined();
}

}  // namespace

void RegisterAttentionSla(Napi::Env env, Napi::Object exports) {
    exports.Set("slaDefaults", Napi::Function::New(env, SlaDefaults));
    exports.Set("slaRoute", Napi::Function::New(env, SlaRoute));
    exports.Set("slaForward", Napi::Function::New(env, SlaForward));
    exports.Set("slaForwardSync", Napi::Function::New(env, SlaForwardSync));
    exports.Set("slaBackward", Napi::Function::New(env, SlaBackward));
    exports.Set("slaBackwardSync", Napi::Function::New(env, SlaBackwardSync));
}

}  // namespace slipnode
