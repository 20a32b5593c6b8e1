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
    Napi::Env env = v.Env();
    AttnParams a;
    const slip_status st = slip_attn_params_init(&a.params);
    if (st != SLIP_STATUS_OK) throw StatusError(env, st, slip_last_error());
    a.mask = ToOptionalTensor(env.Undefined(), "options.mask", &a.has_mask);
    a.lse = a.mask;
    if (v.IsUndefined() || v.IsNull()) return a;
    if (!v.IsObject()) throw ArgumentError(env, "expected an options object for options");
    Napi::Object o = v.As<Napi::Object>();
    auto get = [&](const char *key) { return o.Has(key) ? o.Get(key) : env.Undefined(); };
    auto has = [&](const char *key) { return !get(key).IsUndefined() && !get(key).IsNull(); };
    if (has("layout")) a.params.layout = static_cast<int32_t>(ToInt64(get("layout"), "options.layout"));
    if (has("causal")) {
        if (!get("causal").IsBoolean()) throw ArgumentError(env, "expected a boolean for options.causal");
        a.params.causal = get("causal").As<Napi::Boolean>().Value() ? 1 : 0;
    }
    if (has("scale")) a.params.scale = static_cast<float>(ToNumber(get("scale"), "options.scale"));
    a.mask = ToOptionalTensor(get("mask"), "options.mask", &a.has_mask);
    a.lse = ToOptionalTensor(get("lse"), "options.lse", &a.has_lse);
    return a;
}

int32_t ToFlag(const Napi::Value &v, const char *name) {
    if (!v.IsBoolean()) throw ArgumentError(v.Env(), std::string("expected a boolean for ") + name);
    return v.As<Napi::Boolean>().Value() ? 1 : 0;
}

std::vector<Napi::Value> KeepArgs(const Napi::CallbackInfo &info) {
    std::vector<Napi::Value> keep;
    for (size_t i = 0; i < info.Length(); ++i) keep.push_back(info[i]);
    return keep;
}


slip_sparse_params ToSparseParams(const Napi::Value &v) {
    Napi::Env env = v.Env();
    slip_sparse_params p;
    const slip_status st = slip_sparse_params_init(&p);
    if (st != SLIP_STATUS_OK) throw StatusError(env, st, slip_last_error());
    if (v.IsUndefined() || v.IsNull()) return p;
    if (!v.IsObject()) throw ArgumentError(env, "expected a sparse params object for sparse");
    Napi::Object o = v.As<Napi::Object>();
    auto has = [&](const char *k) { return o.Has(k) && !o.Get(k).IsUndefined(); };
    if (has("blockQ")) p.block_q = ToInt64(o.Get("blockQ"), "sparse.blockQ");
    if (has("blockK")) p.block_k = ToInt64(o.Get("blockK"), "sparse.blockK");
    if (has("topk")) p.topk = static_cast<float>(ToNumber(o.Get("topk"), "sparse.topk"));
    if (has("topp")) p.topp = static_cast<float>(ToNumber(o.Get("topp"), "sparse.topp"));
    if (has("simThreshold"))
        p.sim_threshold = static_cast<float>(ToNumber(o.Get("simThreshold"), "sparse.simThreshold"));
    if (has("attentionSink")) p.attention_sink = ToFlag(o.Get("attentionSink"), "sparse.attentionSink");
    if (has("smoothK")) p.smooth_k = ToFlag(o.Get("smoothK"), "sparse.smoothK");
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
        [c](Napi::Env env) { return Napi::Number::New(env, c->sparsity); }, KeepArgs(info));
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
