// Attention bindings: one file per method (attention-dense.cc, attention-sage.cc,
// attention-sparse.cc, attention-sla.cc), registered here.
#include "common.h"

namespace slipnode {

void RegisterAttentionDense(Napi::Env env, Napi::Object exports);
void RegisterAttentionSage(Napi::Env env, Napi::Object exports);
void RegisterAttentionSparse(Napi::Env env, Napi::Object exports);
void RegisterAttentionSla(Napi::Env env, Napi::Object exports);

void RegisterAttention(Napi::Env env, Napi::Object exports) {
    RegisterAttentionDense(env, exports);
    RegisterAttentionSage(env, exports);
    RegisterAttentionSparse(env, exports);
    RegisterAttentionSla(env, exports);
}

}  // namespace slipnode
