// FP32 dense and block-sparse attention bindings. They check and copy the arguments, call the
// C ABI, and nothing else: defaults come from slip_attn_params_init, shapes are checked natively.
//   attnDense(q, k, v, out, options) -> Promise<void>;  attnDenseSync(...) -> void
//   attnBlockSparse(q, k, v, out, blockMask, blockQ, blockK, options) -> Promise<number>
//   attnBlockSparseSync(...) -> number (the density)
// options: { layout?, causal?, scale?, mask?, cuSeqlensQ?, cuSeqlensK?, lse? } (tensors or null).
#include <memory>
#include <vector>

#include "common.h"

namespace slipnode {
namespace {

// Descriptors of one call, copied on the main thread so the worker never touches JS.
struct AttnCall {
    slip_tensor q, k, v, out, mask, cu_q, cu_k, lse, block_mask;
    bool has_mask = false, has_cu_q = false, has_cu_k = false, has_lse = false;
    int64_t block_q = 0, block_k = 0;
    slip_attn_params params;
    double density = 0.0;
};

std::shared_ptr<AttnCall> ToCall(const Napi::CallbackInfo &info, size_t options_at) {
    auto c = std::make_shared<AttnCall>();
    c->q = ToTensor(info[0], "q");
    c->k = ToTensor(info[1], "k");
    c->v = ToTensor(info[2], "v");
    c->out = ToTensor(info[3], "out");
    const Options o(info[options_at], "options");
    c->params = ToAttnParams(o);
    c->mask = o.tensor("mask", &c->has_mask);
    c->cu_q = o.tensor("cuSeqlensQ", &c->has_cu_q);
    c->cu_k = o.tensor("cuSeqlensK", &c->has_cu_k);
    c->lse = o.tensor("lse", &c->has_lse);
    return c;
}

slip_status RunDense(AttnCall &c) {
    return slip_attn_dense(&c.q, &c.k, &c.v, c.has_mask ? &c.mask : nullptr,
                           c.has_cu_q ? &c.cu_q : nullptr, c.has_cu_k ? &c.cu_k : nullptr,
                           &c.params, &c.out, c.has_lse ? &c.lse : nullptr);
}

slip_status RunBlockSparse(AttnCall &c) {
    return slip_attn_block_sparse(&c.q, &c.k, &c.v, c.has_mask ? &c.mask : nullptr, &c.block_mask,
                                  c.block_q, c.block_k, &c.params, &c.out,
                                  c.has_lse ? &c.lse : nullptr, &c.density);
}

std::shared_ptr<AttnCall> ToBlockSparseCall(const Napi::CallbackInfo &info) {
    auto c = ToCall(info, 7);
    c->block_mask = ToTensor(info[4], "blockMask");
    c->block_q = ToInt64(info[5], "blockQ");
    c->block_k = ToInt64(info[6], "blockK");
    return c;
}

Napi::Value AttnDense(const Napi::CallbackInfo &info) {
    auto c = ToCall(info, 4);
    return RunAsync(info.Env(), [c] { return RunDense(*c); }, nullptr, Arguments(info));
}

Napi::Value AttnDenseSync(const Napi::CallbackInfo &info) {
    auto c = ToCall(info, 4);
    Check(info.Env(), RunDense(*c));
    return info.Env().Undefined();
}

Napi::Value AttnBlockSparse(const Napi::CallbackInfo &info) {
    auto c = ToBlockSparseCall(info);
    return RunAsync(
        info.Env(), [c] { return RunBlockSparse(*c); },
        [c](Napi::Env e) { return Napi::Number::New(e, c->density); }, Arguments(info));
}

Napi::Value AttnBlockSparseSync(const Napi::CallbackInfo &info) {
    auto c = ToBlockSparseCall(info);
    if (!Check(info.Env(), RunBlockSparse(*c))) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), c->density);
}

}  // namespace

void RegisterAttentionDense(Napi::Env env, Napi::Object exports) {
    exports.Set("attnDense", Napi::Function::New(env, AttnDense, "attnDense"));
    exports.Set("attnDenseSync", Napi::Function::New(env, AttnDenseSync, "attnDenseSync"));
    exports.Set("attnBlockSparse", Napi::Function::New(env, AttnBlockSparse, "attnBlockSparse"));
    exports.Set("attnBlockSparseSync", Napi::Function::New(env, AttnBlockSparseSync, "attnBlockSparseSync"));
}

}  // namespace slipnode
