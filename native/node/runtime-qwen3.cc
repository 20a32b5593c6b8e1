// The Qwen3 runtime: qwen3ModelCreate(names, tensors, config, options?) / qwen3ModelCreateSync(...)
// -> Qwen3Model, whose createSession() gives a Qwen3Session: forward(tokens, logits) runs off the
// event loop (forwardSync inline), one call in flight per session; and qwen3Sample(logits,
// params, state) -> { token, state } (inline: one row, microseconds).
// Native memory is freed by free() or, failing that, by the garbage collector.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace slipnode {

namespace {

Napi::FunctionReference *g_model_ctor = nullptr;
Napi::FunctionReference *g_session_ctor = nullptr;

class Qwen3Session : public Napi::ObjectWrap<Qwen3Session> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "Qwen3Session",
                           {InstanceMethod("forward", &Qwen3Session::Forward),
                            InstanceMethod("forwardSync", &Qwen3Session::ForwardSync),
                            InstanceMethod("position", &Qwen3Session::Position),
                            InstanceMethod("truncate", &Qwen3Session::Truncate),
                            InstanceMethod("reset", &Qwen3Session::Reset),
                            InstanceMethod("free", &Qwen3Session::Free)});
    }

    explicit Qwen3Session(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Qwen3Session>(info) {
        if (info.Length() != 2 || !info[0].IsExternal() || !info[1].IsObject())
            throw ArgumentError(info.Env(), "Qwen3Session is made by Qwen3Model.createSession(), not new");
        session_ = info[0].As<Napi::External<slip_qwen3_session_s>>().Data();
        model_ref_ = Napi::Persistent(info[1].As<Napi::Object>());
    }
    ~Qwen3Session() override { Release(); }

    // The model counts its live sessions so that freeing it under one is refused, not a crash.
    void Attach(std::shared_ptr<int> live_sessions) {
        live_ = std::move(live_sessions);
        ++*live_;
    }

  private:
    // A session's cache is one sequence: a second call while a forward runs would race on it.
    slip_qwen3_session_t Idle(Napi::Env env) {
        if (!session_) throw ArgumentError(env, "expected a live session, got one already freed");
        if (*busy_) throw ArgumentError(env, "expected no forward() in flight on this session, got one running");
        return session_;
    }

    struct Args {
        std::vector<int32_t> tokens;
        slip_tensor logits{};
        bool has_logits = false;
    };
    static Args ToArgs(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        Args a;
        if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
            throw ArgumentError(env, "expected an Int32Array of token ids for tokens");
        Napi::Int32Array t = info[0].As<Napi::Int32Array>();
        a.tokens.assign(t.Data(), t.Data() + t.ElementLength());  // copied: JS may reuse the array
        a.logits = ToOptionalTensor(info[1], "logits", &a.has_logits);
        return a;
    }
    static slip_status Call(slip_qwen3_session_t s, Args &a) {
        return slip_qwen3_session_forward(s, a.tokens.empty() ? nullptr : a.tokens.data(),
                                          static_cast<int64_t>(a.tokens.size()), a.has_logits ? &a.logits : nullptr);
    }

    Napi::Value Forward(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        slip_qwen3_session_t s = Idle(env);
        auto a = std::make_shared<Args>(ToArgs(info));
        *busy_ = true;
        std::shared_ptr<std::atomic<bool>> busy = busy_;
        std::vector<Napi::Value> keep = Arguments(info);
        keep.push_back(info.This());  // keeps this session (and through it the model) alive
        // In flight until the promise settles, not until the worker returns: a call made right
        // after forward() is refused whatever the pool's timing (a failure frees it at once).
        return RunAsync(
            env,
            [s, a, busy]() {
                const slip_status st = Call(s, *a);
                if (st != SLIP_STATUS_OK) *busy = false;
                return st;
            },
            [busy](Napi::Env env) {
                *busy = false;
                return env.Undefined();
            },
            keep);
    }

    Napi::Value ForwardSync(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        Args a = ToArgs(info);
        Check(env, Call(Idle(env), a));
        return env.Undefined();
    }

    Napi::Value Position(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        int64_t p = 0;
        if (!Check(env, slip_qwen3_session_position(Idle(env), &p))) return env.Undefined();
        return Napi::Number::New(env, static_cast<double>(p));
    }

    Napi::Value Truncate(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        Check(env, slip_qwen3_session_truncate(Idle(env), ToInt64(info[0], "position")));
        return env.Undefined();
    }

    Napi::Value Reset(const Napi::CallbackInfo &info) {
        Check(info.Env(), slip_qwen3_session_reset(Idle(info.Env())));
        return info.Env().Undefined();
    }

    void Release() {
        if (!session_) return;
        slip_qwen3_session_free(session_);
        session_ = nullptr;
        if (live_) --*live_;
        live_.reset();
    }

    Napi::Value Free(const Napi::CallbackInfo &info) {
        if (!session_) return info.Env().Undefined();
        Idle(info.Env());
        Release();
        model_ref_.Reset();
        return info.Env().Undefined();
    }

    slip_qwen3_session_t session_ = nullptr;
    Napi::ObjectReference model_ref_;
    std::shared_ptr<int> live_;
    std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
};

class Qwen3Model : public Napi::ObjectWrap<Qwen3Model> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "Qwen3Model",
                           {InstanceMethod("createSession", &Qwen3Model::CreateSession),
                            InstanceMethod("weightBytes", &Qwen3Model::WeightBytes),
                            InstanceMethod("layerWidths", &Qwen3Model::LayerWidths),
                            InstanceMethod("free", &Qwen3Model::Free),
                            InstanceAccessor("freed", &Qwen3Model::Freed, nullptr)});
    }

    explicit Qwen3Model(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Qwen3Model>(info) {
        if (info.Length() != 1 || !info[0].IsExternal())
            throw ArgumentError(info.Env(), "Qwen3Model is made by qwen3ModelCreate(), not new");
        model_ = info[0].As<Napi::External<slip_qwen3_model_s>>().Data();
    }
    ~Qwen3Model() override { slip_qwen3_model_free(model_); }

  private:
    slip_qwen3_model_t Live(Napi::Env env) {
        if (!model_) throw ArgumentError(env, "expected a live model, got one already freed");
        return model_;
    }

    Napi::Value CreateSession(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        slip_qwen3_session_t s = nullptr;
        if (!Check(env, slip_qwen3_session_create(Live(env), &s))) return env.Undefined();
        Napi::Object obj = g_session_ctor->New({Napi::External<slip_qwen3_session_s>::New(env, s), info.This()});
        Qwen3Session::Unwrap(obj)->Attach(sessions_);
        return obj;
    }

    Napi::Value WeightBytes(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        int64_t bytes = 0;
        if (!Check(env, slip_qwen3_model_weight_bytes(Live(env), &bytes))) return env.Undefined();
        return Napi::Number::New(env, static_cast<double>(bytes));
    }

    // layerWidths(i) -> { heads, kvHeads, intermediate }
    Napi::Value LayerWidths(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        int64_t h = 0, g = 0, i = 0;
        if (!Check(env, slip_qwen3_model_layer_widths(Live(env), ToInt64(info[0], "layer"), &h, &g, &i)))
            return env.Undefined();
        Napi::Object r = Napi::Object::New(env);
        r.Set("heads", static_cast<double>(h));
        r.Set("kvHeads", static_cast<double>(g));
        r.Set("intermediate", static_cast<double>(i));
        return r;
    }

    Napi::Value Free(const Napi::CallbackInfo &info) {
        if (*sessions_ > 0)
            throw ArgumentError(info.Env(), "expected every session of the model freed before the model, got " +
                                                std::to_string(*sessions_) + " live");
        slip_qwen3_model_free(model_);
        model_ = nullptr;
        return info.Env().Undefined();
    }

    Napi::Value Freed(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), !model_); }

    slip_qwen3_model_t model_ = nullptr;
    std::shared_ptr<int> sessions_ = std::make_shared<int>(0);
};

// The copied arguments of a create call: the per-layer lists own their numbers.
struct CreateArgs {
    NamedTensors weights;
    std::vector<int64_t> layer_heads, layer_kv_heads, layer_intermediate;
    slip_qwen3_config config{};
    slip_qwen3_model_t model = nullptr;
};

std::vector<int64_t> ToInt64List(Napi::Env env, const Napi::Value &v, const std::string &name) {
    if (!v.IsArray()) throw ArgumentError(env, "expected an array of integers for " + name);
    Napi::Array a = v.As<Napi::Array>();
    std::vector<int64_t> out;
    for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(ToInt64(a.Get(i), (name + "[" + std::to_string(i) + "]").c_str()));
    return out;
}

// { vocabSize, hiddenSize, layers, heads, kvHeads, headDim, intermediateSize, maxContext,
//   ropeTheta, rmsNormEps, tieWordEmbeddings, attentionBias?, layerHeads?, layerKvHeads?,
//   layerIntermediate? }
void ToQwen3Config(Napi::Env env, const Napi::Value &v, CreateArgs &a) {
    if (!v.IsObject()) throw ArgumentError(env, "expected an object for config");
    Options o(v, "config");
    slip_qwen3_config &c = a.config;
    c.vocab_size = o.i64("vocabSize");
    c.hidden_size = o.i64("hiddenSize");
    c.layers = o.i64("layers");
    c.heads = o.i64("heads");
    c.kv_heads = o.i64("kvHeads");
    c.head_dim = o.i64("headDim");
    c.intermediate_size = o.i64("intermediateSize");
    c.max_context = o.i64("maxContext");
    c.rope_theta = ToNumber(o.get("ropeTheta"), "config.ropeTheta");
    c.rms_norm_eps = o.f32("rmsNormEps");
    c.tie_word_embeddings = o.flag("tieWordEmbeddings") ? 1 : 0;
    c.attention_bias = o.has("attentionBias") && o.flag("attentionBias") ? 1 : 0;
    auto list = [&](const char *key, std::vector<int64_t> &dst, const int64_t *&ptr) {
        if (!o.has(key)) return;
        dst = ToInt64List(env, o.get(key), std::string("config.") + key);
        if (static_cast<int64_t>(dst.size()) != c.layers)
            throw ArgumentError(env, "expected " + std::to_string(c.layers) + " entries (config.layers) in config." + key +
                                         ", got " + std::to_string(dst.size()));
        ptr = dst.data();
    };
    list("layerHeads", a.layer_heads, c.layer_heads);
    list("layerKvHeads", a.layer_kv_heads, c.layer_kv_heads);
    list("layerIntermediate", a.layer_intermediate, c.layer_intermediate);
}

std::shared_ptr<CreateArgs> ToCreateArgs(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    auto a = std::make_shared<CreateArgs>();
    ReadNamedTensors(info, "qwen3ModelCreate", a->weights);
    ToQwen3Config(env, info[2], *a);
    Options(info[3], "options");  // no keys yet; still refuses a non-object
    return a;
}

slip_status Create(CreateArgs &a) {
    return slip_qwen3_model_create(a.weights.name_ptrs.data(), a.weights.tensors.data(), a.weights.count(), &a.config,
                                   nullptr, &a.model);
}

Napi::Value Wrap(Napi::Env env, slip_qwen3_model_t model) {
    return g_model_ctor->New({Napi::External<slip_qwen3_model_s>::New(env, model)});
}

Napi::Value Qwen3ModelCreate(const Napi::CallbackInfo &info) {
    std::shared_ptr<CreateArgs> a = ToCreateArgs(info);
    return RunAsync(
        info.Env(), [a]() { return Create(*a); }, [a](Napi::Env env) { return Wrap(env, a->model); }, Arguments(info));
}

Napi::Value Qwen3ModelCreateSync(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::shared_ptr<CreateArgs> a = ToCreateArgs(info);
    if (!Check(env, Create(*a))) return env.Undefined();
    return Wrap(env, a->model);
}

// qwen3Sample(logits, { temperature, topP, topK }, state: bigint) -> { token, state: bigint }
Napi::Value Qwen3Sample(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    slip_tensor logits = ToTensor(info[0], "logits");
    slip_qwen3_sample_params p;
    slip_qwen3_sample_params_init(&p);
    Options o(info[1], "params");
    if (o.has("temperature")) p.temperature = o.f32("temperature");
    if (o.has("topP")) p.top_p = o.f32("topP");
    if (o.has("topK")) p.top_k = o.i32("topK");
    if (!info[2].IsBigInt()) throw ArgumentError(env, "expected a bigint for state");
    bool lossless = false;
    uint64_t state = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw ArgumentError(env, "expected a bigint in [0, 2^64) for state");
    int32_t token = -1;
    if (!Check(env, slip_qwen3_sample(&logits, &p, &state, &token))) return env.Undefined();
    Napi::Object r = Napi::Object::New(env);
    r.Set("token", token);
    r.Set("state", Napi::BigInt::New(env, state));
    return r;
}

}  // namespace

void RegisterRuntimeQwen3(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = Qwen3Model::Define(env);
    g_model_ctor = new Napi::FunctionReference(Napi::Persistent(ctor));  // lives with the process
    exports.Set("Qwen3Model", ctor);
    Napi::Function session_ctor = Qwen3Session::Define(env);
    g_session_ctor = new Napi::FunctionReference(Napi::Persistent(session_ctor));
    exports.Set("Qwen3Session", session_ctor);
    exports.Set("qwen3ModelCreate", Napi::Function::New(env, Qwen3ModelCreate, "qwen3ModelCreate"));
    exports.Set("qwen3ModelCreateSync", Napi::Function::New(env, Qwen3ModelCreateSync, "qwen3ModelCreateSync"));
    exports.Set("qwen3Sample", Napi::Function::New(env, Qwen3Sample, "qwen3Sample"));
}

}  // namespace slipnode
