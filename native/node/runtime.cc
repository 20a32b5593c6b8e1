// The Wan2.1 runtime: wanModelCreate(names, tensors, config, options?) / wanModelCreateSync(...)
// -> WanModel, whose forward(x, t, context, out, hidden?) works off the event loop (forwardSync
// inline), and whose createSession() gives a WanSession that steps the blocks one by one, inline
// (each call is one block: the caches and precision policies decide between calls).
// Native memory is freed by free() or, failing that, by the garbage collector.
#include <atomic>
#include <memory>
#include <string>

#include "common.h"

namespace slipnode {

namespace {

Napi::FunctionReference *g_wan_ctor = nullptr;
Napi::FunctionReference *g_session_ctor = nullptr;

// A session over a model; holds a reference to the model's JS object so the model outlives it.
class WanSession : public Napi::ObjectWrap<WanSession> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "WanSession",
                           {InstanceMethod("begin", &WanSession::Begin),
                            InstanceMethod("runBlock", &WanSession::RunBlock),
                            InstanceMethod("skipBlock", &WanSession::SkipBlock),
                            InstanceMethod("finish", &WanSession::Finish),
                            InstanceMethod("readTokens", &WanSession::ReadTokens),
                            InstanceMethod("writeTokens", &WanSession::WriteTokens),
                            InstanceMethod("timeEmbedding", &WanSession::TimeEmbedding),
                            InstanceMethod("reset", &WanSession::Reset),
                            InstanceMethod("free", &WanSession::Free)});
    }

    explicit WanSession(const Napi::CallbackInfo &info) : Napi::ObjectWrap<WanSession>(info) {
        if (info.Length() != 2 || !info[0].IsExternal() || !info[1].IsObject())
            throw ArgumentError(info.Env(), "WanSession is made by WanModel.createSession(), not new");
        session_ = info[0].As<Napi::External<slip_wan_session_s>>().Data();
        model_ref_ = Napi::Persistent(info[1].As<Napi::Object>());
    }
    ~WanSession() override { Release(); }

    // The model counts its live sessions so that freeing it under one is refused, not a crash.
    void Attach(std::shared_ptr<int> live_sessions) {
        live_ = std::move(live_sessions);
        ++*live_;
    }

  private:
    slip_wan_session_t Live(Napi::Env env) {
        if (!session_) throw ArgumentError(env, "expected a live session, got one already freed");
        return session_;
    }

    Napi::Value Begin(const Napi::CallbackInfo &info) {
        slip_tensor x = ToTensor(info[0], "x"), t = ToTensor(info[1], "t"), c = ToTensor(info[2], "context");
        Check(info.Env(), slip_wan_session_begin(Live(info.Env()), &x, &t, &c));
        return info.Env().Undefined();
    }

    // runBlock(i, { precision, outlierGuard, guardPrecision, sparseTopk, sparseTopp }) -> stats
    Napi::Value RunBlock(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        const int64_t block = ToInt64(info[0], "block");
        slip_wan_block_options o;
        slip_wan_block_options_init(&o);
        Options opts(info[1], "options");
        if (opts.has("precision")) o.precision = opts.i32("precision");
        if (opts.has("outlierGuard")) o.outlier_guard = opts.f32("outlierGuard");
        if (opts.has("guardPrecision")) o.guard_precision = opts.i32("guardPrecision");
        if (opts.has("attention")) o.attention = opts.i32("attention");
        if (opts.has("sparseTopk")) o.sparse_topk = opts.f32("sparseTopk");
        if (opts.has("sparseTopp")) o.sparse_topp = opts.f32("sparseTopp");
        slip_wan_block_stats st{};
        if (!Check(env, slip_wan_session_run_block(Live(env), block, &o, &st))) return env.Undefined();
        Napi::Object r = Napi::Object::New(env);
        r.Set("inputL1", st.input_l1);
        r.Set("deltaL1", st.delta_l1);
        r.Set("deltaChange", st.delta_change);
        r.Set("maxOutlier", st.max_outlier);
        r.Set("fullLinears", st.full_linears);
        r.Set("lowbitLinears", st.lowbit_linears);
        r.Set("attentionSparsity", st.attention_sparsity);
        return r;
    }

    Napi::Value SkipBlock(const Napi::CallbackInfo &info) {
        Check(info.Env(), slip_wan_session_skip_block(Live(info.Env()), ToInt64(info[0], "block")));
        return info.Env().Undefined();
    }

    Napi::Value Finish(const Napi::CallbackInfo &info) {
        slip_tensor out = ToTensor(info[0], "out");
        Check(info.Env(), slip_wan_session_finish(Live(info.Env()), &out));
        return info.Env().Undefined();
    }

    Napi::Value ReadTokens(const Napi::CallbackInfo &info) {
        slip_tensor out = ToTensor(info[0], "out");
        Check(info.Env(), slip_wan_session_read_tokens(Live(info.Env()), &out));
        return info.Env().Undefined();
    }

    Napi::Value WriteTokens(const Napi::CallbackInfo &info) {
        slip_tensor in = ToTensor(info[0], "in");
        Check(info.Env(), slip_wan_session_write_tokens(Live(info.Env()), &in));
        return info.Env().Undefined();
    }

    Napi::Value TimeEmbedding(const Napi::CallbackInfo &info) {
        slip_tensor out = ToTensor(info[0], "out");
        Check(info.Env(), slip_wan_session_time_embedding(Live(info.Env()), &out));
        return info.Env().Undefined();
    }

    Napi::Value Reset(const Napi::CallbackInfo &info) {
        Check(info.Env(), slip_wan_session_reset(Live(info.Env())));
        return info.Env().Undefined();
    }

    void Release() {
        if (!session_) return;
        slip_wan_session_free(session_);
        session_ = nullptr;
        if (live_) --*live_;
        live_.reset();
    }

    Napi::Value Free(const Napi::CallbackInfo &info) {
        Release();
        model_ref_.Reset();
        return info.Env().Undefined();
    }

    slip_wan_session_t session_ = nullptr;
    Napi::ObjectReference model_ref_;
    std::shared_ptr<int> live_;
};

class WanModel : public Napi::ObjectWrap<WanModel> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "WanModel",
                           {InstanceMethod("forward", &WanModel::Forward),
                            InstanceMethod("forwardSync", &WanModel::ForwardSync),
                            InstanceMethod("createSession", &WanModel::CreateSession),
                            InstanceMethod("weightBytes", &WanModel::WeightBytes),
                            InstanceMethod("free", &WanModel::Free),
                            InstanceAccessor("freed", &WanModel::Freed, nullptr)});
    }

    explicit WanModel(const Napi::CallbackInfo &info) : Napi::ObjectWrap<WanModel>(info) {
        if (info.Length() != 1 || !info[0].IsExternal())
            throw ArgumentError(info.Env(), "WanModel is made by wanModelCreate(), not new");
        model_ = info[0].As<Napi::External<slip_wan_model_s>>().Data();
    }
    ~WanModel() override { slip_wan_model_free(model_); }

  private:
    slip_wan_model_t Live(Napi::Env env) {
        if (!model_) throw ArgumentError(env, "expected a live model, got one already freed");
        return model_;
    }

    struct Args {
        slip_tensor x, t, context, out, hidden;
        bool has_hidden = false;
    };
    static Args ToArgs(const Napi::CallbackInfo &info) {
        Args a;
        a.x = ToTensor(info[0], "x");
        a.t = ToTensor(info[1], "t");
        a.context = ToTensor(info[2], "context");
        a.out = ToTensor(info[3], "out");
        a.hidden = ToOptionalTensor(info[4], "hidden", &a.has_hidden);
        return a;
    }
    static slip_status Call(slip_wan_model_t m, Args &a) {
        return a.has_hidden ? slip_wan_forward_trace(m, &a.x, &a.t, &a.context, &a.out, &a.hidden)
                            : slip_wan_forward(m, &a.x, &a.t, &a.context, &a.out);
    }

    Napi::Value Forward(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        slip_wan_model_t m = Live(env);
        Args a = ToArgs(info);
        ++running_;
        std::atomic<int> *running = &running_;
        std::vector<Napi::Value> keep = Arguments(info);
        keep.push_back(info.This());  // keeps this model alive while the forward runs
        return RunAsync(
            env,
            [=]() mutable {
                const slip_status st = Call(m, a);
                --*running;
                return st;
            },
            {}, keep);
    }

    Napi::Value ForwardSync(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        Args a = ToArgs(info);
        Check(env, Call(Live(env), a));
        return env.Undefined();
    }

    Napi::Value CreateSession(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        slip_wan_session_t s = nullptr;
        if (!Check(env, slip_wan_session_create(Live(env), &s))) return env.Undefined();
        Napi::Object obj = g_session_ctor->New({Napi::External<slip_wan_session_s>::New(env, s), info.This()});
        WanSession::Unwrap(obj)->Attach(sessions_);
        return obj;
    }

    Napi::Value WeightBytes(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        int64_t bytes = 0;
        if (!Check(env, slip_wan_model_weight_bytes(Live(env), &bytes))) return env.Undefined();
        return Napi::Number::New(env, static_cast<double>(bytes));
    }

    Napi::Value Free(const Napi::CallbackInfo &info) {
        if (running_.load() > 0)
            throw ArgumentError(info.Env(), "expected no forward() in flight when freeing the model");
        if (*sessions_ > 0)
            throw ArgumentError(info.Env(), "expected every session of the model freed before the model, got " +
                                                std::to_string(*sessions_) + " live");
        slip_wan_model_free(model_);
        model_ = nullptr;
        return info.Env().Undefined();
    }

    Napi::Value Freed(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), !model_); }

    slip_wan_model_t model_ = nullptr;
    std::atomic<int> running_{0};
    std::shared_ptr<int> sessions_ = std::make_shared<int>(0);
};

// { dim, ffnDim, heads, layers, inChannels, outChannels, textDim, freqDim, patch: [3], eps }
slip_wan_config ToWanConfig(Napi::Env env, const Napi::Value &v) {
    if (!v.IsObject()) throw ArgumentError(env, "expected an object for config");
    Options o(v, "config");
    slip_wan_config c{};
    c.dim = o.i64("dim");
    c.ffn_dim = o.i64("ffnDim");
    c.heads = o.i64("heads");
    c.layers = o.i64("layers");
    c.in_channels = o.i64("inChannels");
    c.out_channels = o.i64("outChannels");
    c.text_dim = o.i64("textDim");
    c.freq_dim = o.i64("freqDim");
    c.eps = o.f32("eps");
    Napi::Value p = o.get("patch");
    if (!p.IsArray() || p.As<Napi::Array>().Length() != 3)
        throw ArgumentError(env, "expected an array of 3 integers for config.patch");
    for (uint32_t i = 0; i < 3; ++i) c.patch[i] = ToInt64(p.As<Napi::Array>().Get(i), "config.patch");
    return c;
}

// The copied arguments of a create call.
struct CreateArgs {
    NamedTensors weights;
    slip_wan_config config{};
    slip_wan_model_options options{};
    slip_wan_model_t model = nullptr;
};

// { weights: 0 (F32) | 1 (NVFP4), hadamardBlock }, every key optional.
slip_wan_model_options ToWanOptions(const Napi::Value &v) {
    slip_wan_model_options o;
    slip_wan_model_options_init(&o);
    Options opts(v, "options");
    if (opts.has("weights")) o.weights = opts.i32("weights");
    if (opts.has("hadamardBlock")) o.hadamard_block = opts.i32("hadamardBlock");
    return o;
}

std::shared_ptr<CreateArgs> ToCreateArgs(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    auto a = std::make_shared<CreateArgs>();
    ReadNamedTensors(info, "wanModelCreate", a->weights);
    a->config = ToWanConfig(env, info[2]);
    a->options = ToWanOptions(info[3]);
    return a;
}

Napi::Value Wrap(Napi::Env env, slip_wan_model_t model) {
    return g_wan_ctor->New({Napi::External<slip_wan_model_s>::New(env, model)});
}

Napi::Value WanModelCreate(const Napi::CallbackInfo &info) {
    std::shared_ptr<CreateArgs> a = ToCreateArgs(info);
    return RunAsync(
        info.Env(),
        [a]() {
            return slip_wan_model_create(a->weights.name_ptrs.data(), a->weights.tensors.data(), a->weights.count(),
                                         &a->config, &a->options, &a->model);
        },
        [a](Napi::Env env) { return Wrap(env, a->model); }, Arguments(info));
}

Napi::Value WanModelCreateSync(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::shared_ptr<CreateArgs> a = ToCreateArgs(info);
    if (!Check(env, slip_wan_model_create(a->weights.name_ptrs.data(), a->weights.tensors.data(), a->weights.count(),
                                          &a->config, &a->options, &a->model)))
        return env.Undefined();
    return Wrap(env, a->model);
}

}  // namespace

void RegisterRuntime(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = WanModel::Define(env);
    g_wan_ctor = new Napi::FunctionReference(Napi::Persistent(ctor));  // lives with the process
    exports.Set("WanModel", ctor);
    Napi::Function session_ctor = WanSession::Define(env);
    g_session_ctor = new Napi::FunctionReference(Napi::Persistent(session_ctor));
    exports.Set("WanSession", session_ctor);
    exports.Set("wanModelCreate", Napi::Function::New(env, WanModelCreate, "wanModelCreate"));
    exports.Set("wanModelCreateSync", Napi::Function::New(env, WanModelCreateSync, "wanModelCreateSync"));
}

}  // namespace slipnode
