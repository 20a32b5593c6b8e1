#include "common.h"

namespace slipnode {

void RegisterQuant(Napi::Env, Napi::Object) {}

}  // namespace slipnode
