#include "common.h"

namespace slipnode {

void RegisterAttentionSla(Napi::Env, Napi::Object) {}

}  // namespace slipnode
