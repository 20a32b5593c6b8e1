// Weights handed to a runtime by name (Hugging Face / ComfyUI state-dict names): looked up and
// checked one at a time, widened to FP32, and every name must be taken exactly once, so a missing,
// repeated, misshapen or unexpected tensor is refused with a sentence naming it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "slipstream.h"

namespace slip::runtime {

class NamedWeights {
  public:
    // model: what the weights are of, for the message about unexpected names ("Qwen3", "Wan2.1").
    NamedWeights(const char *const *names, const slip_tensor *tensors, int64_t count, const char *model);

    bool has(const std::string &name) const { return by_name_.count(name) != 0; }

    // The tensor `name` (F32, F16 or BF16) as FP32, checked against `shape`; appended to `out`.
    void take_into(const std::string &name, std::initializer_list<int64_t> shape, std::vector<float> &out);
    std::vector<float> take(const std::string &name, std::initializer_list<int64_t> shape);

    // A tensor as given (no widening), checked for dtype and shape.
    const slip_tensor &take_raw(const std::string &name, slip_dtype dtype, std::initializer_list<int64_t> shape);

    void require_all_taken() const;

  private:
    std::string model_;
    std::map<std::string, const slip_tensor *> by_name_;
    std::set<std::string> taken_;
};

}  // namespace slip::runtime
