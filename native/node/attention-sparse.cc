// SpargeAttention2 prediction and sparse attention bindings. They check and copy the arguments,
// call the C ABI, and nothing else: defaults come from slip_sparse_params_init (sparseDefaults
// hands them to TS, which needs block sizes for shapes), shapes are checked natively.
//   sparseDefaults() -> { blockQ, blockK, topk, topp, simThreshold, attentionSink, smoothK }
//   attnSparsePredict(q, k, blockMask, options, sparse) -> sparsity
//   attnSparse(q, k, v, out, blockMask | null, options, sparse) -> Promise<sparsity>
//   attnSparseSync(...) -> sparsity
// options: { layout?, causal?, scale?, mask?, lse? }; sparse: any subset of sparseDefaults().
#include <memory>
#include <vector>

#include "common.h"

namespace slipnode {
namespace {

// slip_attn_params over slip_attn_params_init's defaults, plus the optional mask and lse.
struct AttnParams {
    slip_attn_params params;
    slip_tensor mask, lse;
    bool has_mask = false, has_lse = false;
};

// { layout?, causal?, scale?, mask?, lse? }; undefined or null keeps every default.
AttnParams ToAttnParams(const Napi::Value &v) {
    const Options o(v, "options");
    AttnParams a;
    a.params = slipnode::ToAttnParams(o);
    a.mask = o.tensor("mask", &a.has_mask);
    a.lse = o.tensor("lse", &a.has_lse);
    return a;
}


slip_sparse_params ToSparseParams(const Napi::Value &v) {
    const Options o(v, "sparse");
    slip_sparse_params p;
    const slip_status st = slip_sparse_params_init(&p);
    if (st != SLIP_STATUS_OK) throw StatusError(v.Env(), st, slip_last_error());
    if (o.has("blockQ")) p.block_q = o.i64("blockQ");
    if (o.has("blockK")) p.block_k = o.i64("blockK");
    if (o.has("topk")) p.topk = o.f32("topk");
    if (o.has("topp")) p.topp = o.f32("topp");
    if (o.has("simThreshold")) p.sim_threshold = o.f32("simThreshold");
    if (o.has("attentionSink")) p.attention_sink = o.flag("attentionSink") ? 1 : 0;
    if (o.has("smoothK")) p.smooth_k = o.flag("smoothK") ? 1 : 0;
    return p;
}

Napi::Value SparseDefaults(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    const slip_sparse_params p = ToSparseParams(env.Undefined());
    Napi::Object o = Napi::Object::New(env);
    o.Set("blockQ", Napi::Number::New(env, static_cast<double>(p.block_q)));
    o.Set("blockK", Napi::Number::New(env, static_cast<double>(p.block_k)));
    o.Set("topk", Napi::Number::New(env, p.topk));
    o.Set("topp", Napi::Number::New(env, p.topp));
    o.Set("simThreshold", Napi::Number::New(env, p.sim_threshold));
    o.Set("attentionSink", Napi::Boolean::New(env, p.attention_sink != 0));
    o.Set("smoothK", Napi::Boolean::New(env, p.smooth_k != 0));
    return o;
}

Napi::Value AttnSparsePredict(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    slip_tensor q = ToTensor(info[0], "q"), k = ToTensor(info[1], "k");
    slip_tensor bm = ToTensor(info[2], "blockMask");
    const AttnParams a = ToAttnParams(info[3]);
    const slip_sparse_params sp = ToSparseParams(info[4]);
    double sparsity = 0.0;
    if (!Check(env, slip_attn_sparse_predict(&q, &k, &a.params, &sp, &bm, &sparsity)))
        return env.Undefined();
    return Napi::Number::New(env, sparsity);
}

struct SparseCall {
    slip_tensor q, k, v, out, bm;
    bool has_bm = false;
    AttnParams a;
    slip_sparse_params sp;
    double sparsity = 0.0;
};

std::shared_ptr<SparseCall> ToSparseCall(const Napi::CallbackInfo &info) {
    auto c = std::make_shared<SparseCall>();
    c->q = ToTensor(info[0], "q");
    c->k = ToTensor(info[1], "k");
    c->v = ToTensor(info[2], "v");
    c->out = ToTensor(info[3], "out");
    c->bm = ToOptionalTensor(info[4], "blockMask", &c->has_bm);
    c->a = ToAttnParams(info[5]);
    c->sp = ToSparseParams(info[6]);
    return c;
}

slip_status RunSparse(SparseCall &c) {
    return slip_attn_sparse(&c.q, &c.k, &c.v, c.a.has_mask ? &c.a.mask : nullptr, &c.a.params,
                            &c.sp, &c.out, c.a.has_lse ? &c.a.lse : nullptr,
                            c.has_bm ? &c.bm : nullptr, &c.sparsity);
}

Napi::Value AttnSparse(const Napi::CallbackInfo &info) {
    auto c = ToSparseCall(info);
    return RunAsync(
        info.Env(), [c] { return RunSparse(*c); },
        [c](Napi::Env env) { return Napi::Number::New(env, c->sparsity); }, Arguments(info));
}

Napi::Value AttnSparseSync(const Napi::CallbackInfo &info) {
    auto c = ToSparseCall(info);
    if (!Check(info.Env(), RunSparse(*c))) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), c->sparsity);
}

}  // namespace

void RegisterAttentionSparse(Napi::Env env, Napi::Object exports) {
    exports.Set("sparseDefaults", Napi::Function::New(env, SparseDefaults));
    exports.Set("attnSparsePredict", Napi::Function::New(env, AttnSparsePredict));
    exports.Set("attnSparse", Napi::Function::New(env, AttnSparse));
    exports.Set("attnSparseSync", Napi::Function::New(env, AttnSparseSync));
}

}  // namespace slipnode
