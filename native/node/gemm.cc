#include "common.h"

namespace slipnode {

void RegisterGemm(Napi::Env, Napi::Object) {}

}  // namespace slipnode
