// Linears: gemmF32(x, w, bias, y) and linearPlanCreate(qweight, params) -> LinearPlan, whose
// run(x, bias, y) works off the event loop (runSync on it); benchPeak(kind, seconds) -> Promise
// of the measured vector peak in ops/s. The plan's native memory is freed by
// free() or, failing that, by the garbage collector's finalizer.
#include <atomic>
#include <memory>

#include "common.h"

namespace slipnode {

namespace {

Napi::FunctionReference *g_plan_ctor = nullptr;

class LinearPlan : public Napi::ObjectWrap<LinearPlan> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "LinearPlan",
                           {InstanceMethod("run", &LinearPlan::Run),
                            InstanceMethod("runSync", &LinearPlan::RunSync),
                            InstanceMethod("free", &LinearPlan::Free),
                            InstanceAccessor("freed", &LinearPlan::Freed, nullptr)});
    }

    explicit LinearPlan(const Napi::CallbackInfo &info) : Napi::ObjectWrap<LinearPlan>(info) {
        if (info.Length() != 1 || !info[0].IsExternal())
            throw ArgumentError(info.Env(), "LinearPlan is made by linearPlanCreate(), not new");
        plan_ = info[0].As<Napi::External<slip_linear_plan_s>>().Data();
    }
    ~LinearPlan() override { slip_linear_plan_free(plan_); }

  private:
    slip_linear_plan_t Live(Napi::Env env) {
        if (!plan_) throw ArgumentError(env, "expected a live plan, got one already freed");
        return plan_;
    }

    Napi::Value Run(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        slip_linear_plan_t plan = Live(env);
        bool has_bias = false;
        slip_tensor x = ToTensor(info[0], "x");
        slip_tensor bias = ToOptionalTensor(info[1], "bias", &has_bias);
        slip_tensor y = ToTensor(info[2], "y");
        ++running_;
        std::atomic<int> *running = &running_;
        return RunAsync(
            env,
            [=]() mutable {
                const slip_status st = slip_linear_plan_run(plan, &x, has_bias ? &bias : nullptr, &y);
                --*running;
                return st;
            },
            {}, {info.This(), info[0], info[1], info[2]});  // keeps this plan and the buffers alive
    }

    Napi::Value RunSync(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        bool has_bias = false;
        slip_tensor x = ToTensor(info[0], "x");
        slip_tensor bias = ToOptionalTensor(info[1], "bias", &has_bias);
        slip_tensor y = ToTensor(info[2], "y");
        Check(env, slip_linear_plan_run(Live(env), &x, has_bias ? &bias : nullptr, &y));
        return env.Undefined();
    }

    Napi::Value Free(const Napi::CallbackInfo &info) {
        if (running_.load() > 0)
            throw ArgumentError(info.Env(), "expected no run() in flight when freeing the plan");
        slip_linear_plan_free(plan_);
        plan_ = nullptr;
        return info.Env().Undefined();
    }

    Napi::Value Freed(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), !plan_); }

    slip_linear_plan_t plan_ = nullptr;
    std::atomic<int> running_{0};
};

int64_t OptInt(const Napi::Object &o, const char *key, int64_t fallback) {
    return o.Has(key) && !o.Get(key).IsUndefined() ? ToInt64(o.Get(key), key) : fallback;
}

// { format, granularity?, groupSize?, blockRows?, blockCols?, codes, scales?, global? }
slip_qweight ToQweight(Napi::Env env, const Napi::Value &v) {
    if (!v.IsObject()) throw ArgumentError(env, "expected an object { format, codes, scales, global } for w");
    Napi::Object o = v.As<Napi::Object>();
    slip_qweight w{};
    const int64_t format = ToInt64(o.Get("format"), "w.format");
    // An unknown format is left for slip_linear_plan_create to reject with its own sentence.
    if (slip_quant_params_init(&w.params, static_cast<slip_quant_format>(format)) != SLIP_STATUS_OK)
        w.params.format = static_cast<int32_t>(format);
    w.params.granularity = static_cast<int32_t>(OptInt(o, "granularity", w.params.granularity));
    w.params.group_size = OptInt(o, "groupSize", w.params.group_size);
    w.params.block_rows = OptInt(o, "blockRows", w.params.block_rows);
    w.params.block_cols = OptInt(o, "blockCols", w.params.block_cols);
    bool present = false;
    w.codes = ToTensor(o.Get("codes"), "w.codes");
    w.scales = ToOptionalTensor(o.Get("scales"), "w.scales", &present);
    w.global = ToOptionalTensor(o.Get("global"), "w.global", &present);
    return w;
}

Napi::Value LinearPlanCreate(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    slip_qweight w = ToQweight(env, info[0]);
    slip_linear_params p;
    slip_linear_params_init(&p);
    if (info.Length() > 1 && info[1].IsObject()) {
        Napi::Object o = info[1].As<Napi::Object>();
        p.act_quant = static_cast<int32_t>(OptInt(o, "actQuant", p.act_quant));
        if (o.Has("actGlobalScale") && !o.Get("actGlobalScale").IsUndefined())
            p.act_global_scale = static_cast<float>(ToNumber(o.Get("actGlobalScale"), "actGlobalScale"));
    }
    slip_linear_plan_t plan = nullptr;
    if (!Check(env, slip_linear_plan_create(&w, &p, &plan))) return env.Undefined();
    return g_plan_ctor->New({Napi::External<slip_linear_plan_s>::New(env, plan)});
}

Napi::Value GemmF32(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    bool has_bias = false;
    slip_tensor x = ToTensor(info[0], "x");
    slip_tensor w = ToTensor(info[1], "w");
    slip_tensor bias = ToOptionalTensor(info[2], "bias", &has_bias);
    slip_tensor y = ToTensor(info[3], "y");
    Check(env, slip_gemm_f32(&x, &w, has_bias ? &bias : nullptr, &y));
    return env.Undefined();
}

// benchPeak(kind, seconds): slip_bench_peak off the event loop (it runs for `seconds`).
Napi::Value BenchPeak(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    const int32_t kind = static_cast<int32_t>(ToInt64(info[0], "kind"));
    const double seconds = ToNumber(info[1], "seconds");
    auto result = std::make_shared<double>(0.0);
    return RunAsync(
        env, [=]() { return slip_bench_peak(kind, seconds, result.get()); },
        [result](Napi::Env e) { return Napi::Number::New(e, *result); }, {});
}

}  // namespace

void RegisterGemm(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = LinearPlan::Define(env);
    g_plan_ctor = new Napi::FunctionReference(Napi::Persistent(ctor));  // lives with the process
    exports.Set("LinearPlan", ctor);
    exports.Set("gemmF32", Napi::Function::New(env, GemmF32, "gemmF32"));
    exports.Set("linearPlanCreate", Napi::Function::New(env, LinearPlanCreate, "linearPlanCreate"));
    exports.Set("benchPeak", Napi::Function::New(env, BenchPeak, "benchPeak"));
}

}  // namespace slipnode
