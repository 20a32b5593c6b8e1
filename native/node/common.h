// Shared pieces of the Node binding: JS tensor objects to slip_tensor, status to JS Error, and
// an AsyncWorker that runs a native call off the event loop. Bindings check, copy, dispatch.
#pragma once

#include <napi.h>

#include <functional>
#include <string>
#include <vector>

#include "slipstream.h"

namespace slipnode {

// A JS tensor is { data: TypedArray | Buffer, dtype: number (slip_dtype), shape: number[] }.
// The descriptor points into the ArrayBuffer (zero copy); the caller keeps the JS object alive.
slip_tensor ToTensor(const Napi::Value &value, const char *name);
// As ToTensor, or a zeroed descriptor with data == nullptr when value is null/undefined.
slip_tensor ToOptionalTensor(const Napi::Value &value, const char *name, bool *present);

int64_t ToInt64(const Napi::Value &value, const char *name);
double ToNumber(const Napi::Value &value, const char *name);

// A JS TypeError for bad arguments in the binding itself (code SLIP_STATUS_INVALID_ARGUMENT).
Napi::Error ArgumentError(Napi::Env env, const std::string &message);
// A JS Error from a native status: message = slip_last_error(), code = slip_status_string().
Napi::Error StatusError(Napi::Env env, slip_status status, const std::string &message);

// Throws (as a pending JS exception) when status is not OK; returns false then.
bool Check(Napi::Env env, slip_status status);

// Every argument of a call: what RunAsync keeps alive for an async call on the call's tensors.
std::vector<Napi::Value> Arguments(const Napi::CallbackInfo &info);

// Runs `work` on the libuv pool and resolves with `done()`'s value (undefined when empty).
// `keep` holds JS objects (tensor buffers) alive until the work finishes.
Napi::Value RunAsync(Napi::Env env, std::function<slip_status()> work,
                     std::function<Napi::Value(Napi::Env)> done,
                     const std::vector<Napi::Value> &keep);

// An options object: keys may be absent, undefined or null, which all mean "left out" (the native
// *_params_init default stays). Messages name the key as "<name>.<key>".
class Options {
  public:
    // Throws unless value is an object, undefined or null.
    Options(const Napi::Value &value, const char *name);
    bool has(const char *key) const;
    Napi::Value get(const char *key) const;
    int32_t i32(const char *key) const;
    int64_t i64(const char *key) const;
    float f32(const char *key) const;
    bool flag(const char *key) const;
    slip_tensor tensor(const char *key, bool *present) const;

  private:
    std::string where(const char *key) const;
    Napi::Env env_;
    Napi::Object object_;
    bool empty_;
    std::string name_;
};

// The weights of a runtime's create call, names[i] naming tensors[i]: the names own their strings
// (name_ptrs point into them, so the struct stays where it was filled); the tensors point into JS
// buffers the caller keeps alive until the call finishes.
struct NamedTensors {
    std::vector<std::string> names;
    std::vector<const char *> name_ptrs;
    std::vector<slip_tensor> tensors;
    int64_t count() const { return static_cast<int64_t>(tensors.size()); }
};

// Fills `out` from info[0] (names) and info[1] (tensors); `call` names the function in errors.
void ReadNamedTensors(const Napi::CallbackInfo &info, const char *call, NamedTensors &out);

// slip_attn_params over slip_attn_params_init: the options' layout, causal and scale.
slip_attn_params ToAttnParams(const Options &options);

// Each area adds its functions to the exports object.
void RegisterInfo(Napi::Env env, Napi::Object exports);
void RegisterQuant(Napi::Env env, Napi::Object exports);
void RegisterGemm(Napi::Env env, Napi::Object exports);
// native/node/attention.cc calls one Register function per attention method file.
void RegisterAttention(Napi::Env env, Napi::Object exports);
void RegisterRuntime(Napi::Env env, Napi::Object exports);

}  // namespace slipnode
