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

// Runs `work` on the libuv pool and resolves with `done()`'s value (undefined when empty).
// `keep` holds JS objects (tensor buffers) alive until the work finishes.
Napi::Value RunAsync(Napi::Env env, std::function<slip_status()> work,
                     std::function<Napi::Value(Napi::Env)> done,
                     const std::vector<Napi::Value> &keep);

// Each area adds its functions to the exports object.
void RegisterInfo(Napi::Env env, Napi::Object exports);
void RegisterQuant(Napi::Env env, Napi::Object exports);
void RegisterGemm(Napi::Env env, Napi::Object exports);
// native/node/attention.cc calls one Register function per attention method file.
void RegisterAttention(Napi::Env env, Napi::Object exports);

}  // namespace slipnode
