// Entry point of the Node binding: each area registers its functions.
#include "common.h"

namespace slipnode {
// native/node/runtime-qwen3.cc
void RegisterRuntimeQwen3(Napi::Env env, Napi::Object exports);
}  // namespace slipnode

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
    slipnode::RegisterInfo(env, exports);
    slipnode::RegisterQuant(env, exports);
    slipnode::RegisterGemm(env, exports);
    slipnode::RegisterAttention(env, exports);
    slipnode::RegisterRuntime(env, exports);
    slipnode::RegisterRuntimeQwen3(env, exports);
    return exports;
}

}  // namespace

NODE_API_MODULE(slipstream, Init)
