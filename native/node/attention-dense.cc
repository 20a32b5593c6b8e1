#include "common.h"

namespace slipnode {

void RegisterAttentionDense(Napi::Env, Napi::Object) {}

}  // namespace slipnode
