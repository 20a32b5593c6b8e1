#include "common.h"

namespace slipnode {

void RegisterAttentionSparse(Napi::Env, Napi::Object) {}

}  // namespace slipnode
