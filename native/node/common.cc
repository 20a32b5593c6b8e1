#include "common.h"

#include <cstdint>

namespace slipnode {

namespace {

bool TypedArrayData(const Napi::Value &value, void **data, size_t *bytes) {
    if (value.IsTypedArray()) {
        Napi::TypedArray ta = value.As<Napi::TypedArray>();
        Napi::ArrayBuffer buf = ta.ArrayBuffer();
        *data = static_cast<uint8_t *>(buf.Data()) + ta.ByteOffset();
        *bytes = ta.ByteLength();
        return true;
    }
    if (value.IsDataView()) {
        Napi::DataView dv = value.As<Napi::DataView>();
        *data = static_cast<uint8_t *>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
        *bytes = dv.ByteLength();
        return true;
    }
    return false;
}

}  // namespace

Napi::Error ArgumentError(Napi::Env env, const std::string &message) {
    Napi::Error e = Napi::TypeError::New(env, message);
    e.Set("code", Napi::String::New(env, "SLIP_STATUS_INVALID_ARGUMENT"));
    return e;
}

Napi::Error StatusError(Napi::Env env, slip_status status, const std::string &message) {
    Napi::Error e = Napi::Error::New(env, message.empty() ? slip_status_string(status) : message);
    e.Set("code", Napi::String::New(env, slip_status_string(status)));
    return e;
}

bool Check(Napi::Env env, slip_status status) {
    if (status == SLIP_STATUS_OK) return true;
    StatusError(env, status, slip_last_error()).ThrowAsJavaScriptException();
    return false;
}

int64_t ToInt64(const Napi::Value &value, const char *name) {
    if (!value.IsNumber() && !value.IsBigInt())
        throw ArgumentError(value.Env(), std::string("expected an integer for ") + name);
    if (value.IsBigInt()) {
        bool lossless = true;
        int64_t v = value.As<Napi::BigInt>().Int64Value(&lossless);
        if (!lossless)
            throw ArgumentError(value.Env(), std::string("expected a 64-bit integer for ") + name);
        return v;
    }
    double d = value.As<Napi::Number>().DoubleValue();
    if (d != static_cast<double>(static_cast<int64_t>(d)))
        throw ArgumentError(value.Env(), std::string("expected an integer for ") + name);
    return static_cast<int64_t>(d);
}

double ToNumber(const Napi::Value &value, const char *name) {
    if (!value.IsNumber())
        throw ArgumentError(value.Env(), std::string("expected a number for ") + name);
    return value.As<Napi::Number>().DoubleValue();
}

slip_tensor ToTensor(const Napi::Value &value, const char *name) {
    Napi::Env env = value.Env();
    if (!value.IsObject())
        throw ArgumentError(env, std::string("expected a tensor object for ") + name);
    Napi::Object obj = value.As<Napi::Object>();
    void *data = nullptr;
    size_t bytes = 0;
    if (!TypedArrayData(obj.Get("data"), &data, &bytes))
        throw ArgumentError(env, std::string("expected a TypedArray for ") + name + ".data");
    int64_t dtype = ToInt64(obj.Get("dtype"), name);
    Napi::Value shape_v = obj.Get("shape");
    if (!shape_v.IsArray())
        throw ArgumentError(env, std::string("expected an array for ") + name + ".shape");
    Napi::Array shape_a = shape_v.As<Napi::Array>();
    if (shape_a.Length() > SLIP_MAX_DIMS)
        throw ArgumentError(env, std::string("expected at most 8 dimensions for ") + name);
    int64_t shape[SLIP_MAX_DIMS];
    int64_t count = 1;
    for (uint32_t i = 0; i < shape_a.Length(); ++i) {
        shape[i] = ToInt64(shape_a.Get(i), name);
        if (shape[i] < 0)
            throw ArgumentError(env, std::string("expected non-negative extents for ") + name);
        count *= shape[i];
    }
    size_t elem = slip_dtype_size(static_cast<slip_dtype>(dtype));
    if (elem == 0)
        throw ArgumentError(env, std::string("expected a known dtype for ") + name);
    if (static_cast<size_t>(count) * elem > bytes)
        throw ArgumentError(env, std::string("expected ") + std::to_string(count * elem) +
                                     " bytes of data for " + name + ", got " +
                                     std::to_string(bytes));
    slip_tensor t;
    if (slip_tensor_init(&t, data, static_cast<slip_dtype>(dtype),
                         static_cast<int32_t>(shape_a.Length()), shape) != SLIP_STATUS_OK)
        throw StatusError(env, SLIP_STATUS_INVALID_ARGUMENT, slip_last_error());
    return t;
}

slip_tensor ToOptionalTensor(const Napi::Value &value, const char *name, bool *present) {
    *present = !(value.IsNull() || value.IsUndefined());
    if (!*present) return slip_tensor{};
    return ToTensor(value, name);
}

Options::Options(const Napi::Value &value, const char *name)
    : env_(value.Env()), empty_(value.IsUndefined() || value.IsNull()), name_(name) {
    if (empty_) return;
    if (!value.IsObject()) throw ArgumentError(env_, std::string("expected an object for ") + name);
    object_ = value.As<Napi::Object>();
}

std::string Options::where(const char *key) const { return name_ + "." + key; }

Napi::Value Options::get(const char *key) const {
    return empty_ || !object_.Has(key) ? env_.Undefined() : object_.Get(key);
}

bool Options::has(const char *key) const {
    const Napi::Value v = get(key);
    return !v.IsUndefined() && !v.IsNull();
}

int64_t Options::i64(const char *key) const { return ToInt64(get(key), where(key).c_str()); }

int32_t Options::i32(const char *key) const {
    const int64_t v = i64(key);
    if (v < INT32_MIN || v > INT32_MAX)
        throw ArgumentError(env_, "expected a 32-bit integer for " + where(key));
    return static_cast<int32_t>(v);
}

float Options::f32(const char *key) const {
    return static_cast<float>(ToNumber(get(key), where(key).c_str()));
}

bool Options::flag(const char *key) const {
    const Napi::Value v = get(key);
    if (!v.IsBoolean()) throw ArgumentError(env_, "expected a boolean for " + where(key));
    return v.As<Napi::Boolean>().Value();
}

slip_tensor Options::tensor(const char *key, bool *present) const {
    return ToOptionalTensor(get(key), where(key).c_str(), present);
}

std::vector<Napi::Value> Arguments(const Napi::CallbackInfo &info) {
    std::vector<Napi::Value> all;
    for (size_t i = 0; i < info.Length(); ++i) all.push_back(info[i]);
    return all;
}

slip_attn_params ToAttnParams(const Options &o) {
    slip_attn_params p;
    const slip_status st = slip_attn_params_init(&p);
    if (st != SLIP_STATUS_OK) throw StatusError(o.get("layout").Env(), st, slip_last_error());
    if (o.has("layout")) p.layout = o.i32("layout");
    if (o.has("causal")) p.causal = o.flag("causal") ? 1 : 0;
    if (o.has("scale")) p.scale = o.f32("scale");
    return p;
}

namespace {

class Worker : public Napi::AsyncWorker {
  public:
    Worker(Napi::Env env, std::function<slip_status()> work,
           std::function<Napi::Value(Napi::Env)> done, const std::vector<Napi::Value> &keep)
        : Napi::AsyncWorker(env, "slipstream"),
          deferred_(Napi::Promise::Deferred::New(env)),
          work_(std::move(work)),
          done_(std::move(done)) {
        Napi::Array held = Napi::Array::New(env, keep.size());
        for (size_t i = 0; i < keep.size(); ++i) held.Set(static_cast<uint32_t>(i), keep[i]);
        keep_ = Napi::Persistent(held.As<Napi::Object>());
    }

    Napi::Promise Promise() { return deferred_.Promise(); }

    // Runs on a libuv thread: touches no JS.
    void Execute() override {
        status_ = work_();
        if (status_ != SLIP_STATUS_OK) message_ = slip_last_error();
    }

    void OnOK() override {
        Napi::Env env = Env();
        Napi::HandleScope scope(env);
        if (status_ != SLIP_STATUS_OK) {
            deferred_.Reject(StatusError(env, status_, message_).Value());
            return;
        }
        deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    }

    void OnError(const Napi::Error &e) override { deferred_.Reject(e.Value()); }

  private:
    Napi::Promise::Deferred deferred_;
    std::function<slip_status()> work_;
    std::function<Napi::Value(Napi::Env)> done_;
    Napi::ObjectReference keep_;
    slip_status status_ = SLIP_STATUS_OK;
    std::string message_;
};

}  // namespace

Napi::Value RunAsync(Napi::Env env, std::function<slip_status()> work,
                     std::function<Napi::Value(Napi::Env)> done,
                     const std::vector<Napi::Value> &keep) {
    Worker *w = new Worker(env, std::move(work), std::move(done), keep);
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
}

void ReadNamedTensors(const Napi::CallbackInfo &info, const char *call, NamedTensors &out) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray() || !info[1].IsArray())
        throw ArgumentError(env, std::string("expected arrays of names and tensors for ") + call + "(names, tensors, config)");
    Napi::Array names = info[0].As<Napi::Array>(), tensors = info[1].As<Napi::Array>();
    if (names.Length() != tensors.Length())
        throw ArgumentError(env, "expected as many names as tensors, got " + std::to_string(names.Length()) +
                                     " names and " + std::to_string(tensors.Length()) + " tensors");
    for (uint32_t i = 0; i < names.Length(); ++i) {
        Napi::Value n = names.Get(i);
        if (!n.IsString()) throw ArgumentError(env, "expected a string for names[" + std::to_string(i) + "]");
        out.names.push_back(n.As<Napi::String>().Utf8Value());
        out.tensors.push_back(ToTensor(tensors.Get(i), out.names.back().c_str()));
    }
    for (const std::string &n : out.names) out.name_ptrs.push_back(n.c_str());
}

}  // namespace slipnode
