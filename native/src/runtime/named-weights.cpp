#include "named-weights.h"

#include <cstring>

#include "../base/bf16.h"
#include "../base/error.h"
#include "../base/tensor.h"

namespace slip::runtime {

namespace {

float widen_f16(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                man <<= 1;
                ++e;
            } while (!(man & 0x400u));
            bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
        }
    } else {
        bits = sign | (exp + 112) << 23 | man << 13;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

}  // namespace

NamedWeights::NamedWeights(const char *const *names, const slip_tensor *tensors, int64_t count, const char *model)
    : model_(model) {
    if (count < 0) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a non-negative count, got %lld", static_cast<long long>(count)));
    if (count > 0) {
        require_not_null(names, "names");
        require_not_null(tensors, "tensors");
    }
    for (int64_t i = 0; i < count; ++i) {
        if (!names[i]) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a name for tensors[%lld], got NULL", static_cast<long long>(i)));
        if (!by_name_.emplace(names[i], &tensors[i]).second)
            fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected each weight once, got \"%s\" twice", names[i]));
    }
}

void NamedWeights::take_into(const std::string &name, std::initializer_list<int64_t> shape, std::vector<float> &out) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a weight named \"%s\", got none", name.c_str()));
    const slip_tensor &t = *it->second;
    taken_.emplace(name);
    const std::string what = format("weight \"%s\"", name.c_str());
    if (t.dtype != SLIP_DTYPE_F32 && t.dtype != SLIP_DTYPE_F16 && t.dtype != SLIP_DTYPE_BF16)
        fail(SLIP_STATUS_DTYPE_MISMATCH, format("expected dtype F32, F16 or BF16 for %s, got %s", what.c_str(),
                                                slip_dtype_name(static_cast<slip_dtype>(t.dtype))));
    require_cpu_dense(&t, what.c_str(), static_cast<slip_dtype>(t.dtype));
    require_shape(t, what.c_str(), static_cast<int32_t>(shape.size()), shape.begin());
    const int64_t n = numel(t);
    if (n > 0) require_not_null(t.data, what.c_str());
    const size_t at = out.size();
    out.resize(at + static_cast<size_t>(n));
    if (t.dtype == SLIP_DTYPE_F32) {
        if (n) std::memcpy(out.data() + at, t.data, static_cast<size_t>(n) * 4);
    } else {
        const uint16_t *h = static_cast<const uint16_t *>(t.data);
        const bool f16 = t.dtype == SLIP_DTYPE_F16;
        for (int64_t i = 0; i < n; ++i) out[at + static_cast<size_t>(i)] = f16 ? widen_f16(h[i]) : bf16_value(h[i]);
    }
}

std::vector<float> NamedWeights::take(const std::string &name, std::initializer_list<int64_t> shape) {
    std::vector<float> out;
    take_into(name, shape, out);
    return out;
}

const slip_tensor &NamedWeights::take_raw(const std::string &name, slip_dtype dtype, std::initializer_list<int64_t> shape) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected a tensor named \"%s\", got none", name.c_str()));
    taken_.emplace(name);
    const std::string what = format("tensor \"%s\"", name.c_str());
    require_shape(it->second, what.c_str(), dtype, shape);
    return *it->second;
}

void NamedWeights::require_all_taken() const {
    for (const auto &kv : by_name_)
        if (!taken_.count(kv.first))
            fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected only the %s weights of this configuration, got an unexpected \"%s\"",
                                                      model_.c_str(), kv.first.c_str()));
}

}  // namespace slip::runtime
