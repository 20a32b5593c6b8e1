// Version, capabilities and settings.
#include "common.h"

namespace slipnode {

namespace {

Napi::Value AbiVersion(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), slip_abi_version());
}

Napi::Value Version(const Napi::CallbackInfo &info) {
    return Napi::String::New(info.Env(), slip_version_string());
}

Napi::Value Capabilities(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    slip_capabilities caps;
    if (!Check(env, slip_get_capabilities(&caps))) return env.Undefined();
    size_t needed = 0;
    if (!Check(env, slip_list_kernels(nullptr, 0, &needed))) return env.Undefined();
    std::string kernels(needed, '\0');
    if (!Check(env, slip_list_kernels(kernels.data(), kernels.size(), &needed)))
        return env.Undefined();
    kernels.resize(needed - 1);
    Napi::Object o = Napi::Object::New(env);
    o.Set("abiVersion", caps.abi_version);
    o.Set("cpuFeatures", caps.cpu_features);
    o.Set("isaDetected", caps.isa_detected);
    o.Set("isaActive", caps.isa_active);
    o.Set("numThreads", caps.num_threads);
    o.Set("cudaCompiled", caps.cuda_compiled != 0);
    o.Set("cudaDeviceCount", caps.cuda_device_count);
    o.Set("kernels", kernels);
    return o;
}

Napi::Value SetIsa(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    int64_t isa = ToInt64(info[0], "isa");
    Check(env, slip_set_isa(static_cast<slip_isa>(isa)));
    return env.Undefined();
}

Napi::Value SetNumThreads(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    int64_t n = ToInt64(info[0], "n");
    if (n < 1 || n > 1024) throw ArgumentError(env, "expected 1 to 1024 for n");
    Check(env, slip_set_num_threads(static_cast<int32_t>(n)));
    return env.Undefined();
}

// Address of a TypedArray's first byte: lets tests prove that tensors cross without a copy.
Napi::Value DataAddress(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray()) throw ArgumentError(env, "expected a TypedArray for array");
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    auto p = reinterpret_cast<uint64_t>(static_cast<uint8_t *>(ta.ArrayBuffer().Data()) +
                                        ta.ByteOffset());
    return Napi::BigInt::New(env, p);
}

}  // namespace

void RegisterInfo(Napi::Env env, Napi::Object exports) {
    exports.Set("abiVersion", Napi::Function::New(env, AbiVersion));
    exports.Set("version", Napi::Function::New(env, Version));
    exports.Set("capabilities", Napi::Function::New(env, Capabilities));
    exports.Set("setIsa", Napi::Function::New(env, SetIsa));
    exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
    exports.Set("dataAddress", Napi::Function::New(env, DataAddress));
}

}  // namespace slipnode
