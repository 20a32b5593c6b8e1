#include "common.h"

namespace slipnode {

void RegisterAttentionSage(Napi::Env, Napi::Object) {}

}  // namespace slipnode
