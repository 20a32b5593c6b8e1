// Quantization bindings: element codecs, packing, quantize/dequantize, Hadamard. They check
// and copy arguments, call the C ABI, and nothing else; defaults come from
// slip_quant_params_init, so a JS params object only overrides what the caller set.
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace slipnode {

namespace {

template <class T>
T *ArrayData(const Napi::Value &v, napi_typedarray_type type, const char *what, const char *name,
             size_t *length) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
        throw ArgumentError(v.Env(), std::string("expected a ") + what + " for " + name);
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    *length = ta.ElementLength();
    return reinterpret_cast<T *>(static_cast<uint8_t *>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

// { format, granularity?, groupSize?, blockRows?, blockCols?, rounding?, flags?, seed?,
//   globalScale? } -> slip_quant_params over the format's defaults.
slip_quant_params ToParams(const Napi::Value &v) {
    Napi::Env env = v.Env();
    if (!v.IsObject()) throw ArgumentError(env, "expected a params object for params");
    Napi::Object o = v.As<Napi::Object>();
    slip_quant_params p;
    const int64_t format = ToInt64(o.Get("format"), "params.format");
    const slip_status st = slip_quant_params_init(&p, static_cast<slip_quant_format>(format));
    if (st != SLIP_STATUS_OK) throw StatusError(env, st, slip_last_error());
    auto has = [&](const char *k) { return o.Has(k) && !o.Get(k).IsUndefined(); };
    if (has("granularity")) p.granularity = static_cast<int32_t>(ToInt64(o.Get("granularity"), "params.granularity"));
    if (has("groupSize")) p.group_size = ToInt64(o.Get("groupSize"), "params.groupSize");
    if (has("blockRows")) p.block_rows = ToInt64(o.Get("blockRows"), "params.blockRows");
    if (has("blockCols")) p.block_cols = ToInt64(o.Get("blockCols"), "params.blockCols");
    if (has("rounding")) p.rounding = static_cast<int32_t>(ToInt64(o.Get("rounding"), "params.rounding"));
    if (has("flags")) p.flags = static_cast<uint32_t>(ToInt64(o.Get("flags"), "params.flags"));
    if (has("seed")) p.seed = static_cast<uint64_t>(ToInt64(o.Get("seed"), "params.seed"));
    if (has("globalScale")) p.global_scale = static_cast<float>(ToNumber(o.Get("globalScale"), "params.globalScale"));
    return p;
}

Napi::Array ToArray(Napi::Env env, int32_t ndim, const int64_t *shape) {
    Napi::Array a = Napi::Array::New(env, ndim);
    for (int32_t i = 0; i < ndim; ++i) a.Set(i, Napi::Number::New(env, static_cast<double>(shape[i])));
    return a;
}

Napi::Value ElementEncode(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    const int64_t fmt = ToInt64(info[0], "format");
    size_t n = 0;
    const float *in = ArrayData<float>(info[1], napi_float32_array, "Float32Array", "values", &n);
    const int64_t rounding = info[2].IsUndefined() ? 0 : ToInt64(info[2], "rounding");
    const int64_t seed = info[3].IsUndefined() ? 0 : ToInt64(info[3], "seed");
    Napi::Uint8Array out = Napi::Uint8Array::New(env, n);
    if (!Check(env, slip_element_encode(static_cast<slip_element_format>(fmt), in, out.Data(),
                                        static_cast<int64_t>(n), static_cast<slip_rounding>(rounding),
                                        static_cast<uint64_t>(seed))))
        return env.Undefined();
    return out;
}

Napi::Value ElementDecode(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    const int64_t fmt = ToInt64(info[0], "format");
    size_t n = 0;
    const uint8_t *in = ArrayData<uint8_t>(info[1], napi_uint8_array, "Uint8Array", "codes", &n);
    Napi::Float32Array out = Napi::Float32Array::New(env, n);
    if (!Check(env, slip_element_decode(static_cast<slip_element_format>(fmt), in, out.Data(),
                                        static_cast<int64_t>(n))))
        return env.Undefined();
    return out;
}

Napi::Value PackNibbles(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    size_t n = 0;
    const uint8_t *codes = ArrayData<uint8_t>(info[0], napi_uint8_array, "Uint8Array", "codes", &n);
    Napi::Uint8Array out = Napi::Uint8Array::New(env, n / 2);
    if (!Check(env, slip_pack_nibbles(codes, out.Data(), static_cast<int64_t>(n)))) return env.Undefined();
    return out;
}

Napi::Value UnpackNibbles(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    size_t n = 0;
    const uint8_t *packed = ArrayData<uint8_t>(info[0], napi_uint8_array, "Uint8Array", "packed", &n);
    Napi::Uint8Array out = Napi::Uint8Array::New(env, 2 * n);
    if (!Check(env, slip_unpack_nibbles(packed, out.Data(), static_cast<int64_t>(2 * n)))) return env.Undefined();
    return out;
}

int64_t CtWords(int64_t cols, int64_t bits) { return (cols * bits + 31) / 32; }

void CheckCtArgs(Napi::Env env, int64_t rows, int64_t cols, int64_t bits) {
    if (rows < 0 || cols < 0) throw ArgumentError(env, "expected non-negative rows and cols");
    if (bits != 4 && bits != 8) throw ArgumentError(env, "expected 4 or 8 for bits, got " + std::to_string(bits));
}

Napi::Value PackIntCT(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    size_t n = 0;
    const int8_t *values = ArrayData<int8_t>(info[0], napi_int8_array, "Int8Array", "values", &n);
    const int64_t rows = ToInt64(info[1], "rows"), cols = ToInt64(info[2], "cols"), bits = ToInt64(info[3], "bits");
    CheckCtArgs(env, rows, cols, bits);
    if (static_cast<int64_t>(n) != rows * cols)
        throw ArgumentError(env, "expected " + std::to_string(rows * cols) + " values for values, got " + std::to_string(n));
    Napi::Int32Array out = Napi::Int32Array::New(env, rows * CtWords(cols, bits));
    if (!Check(env, slip_pack_int_ct(values, out.Data(), rows, cols, static_cast<int32_t>(bits)))) return env.Undefined();
    return out;
}

Napi::Value UnpackIntCT(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    size_t n = 0;
    const int32_t *packed = ArrayData<int32_t>(info[0], napi_int32_array, "Int32Array", "packed", &n);
    const int64_t rows = ToInt64(info[1], "rows"), cols = ToInt64(info[2], "cols"), bits = ToInt64(info[3], "bits");
    CheckCtArgs(env, rows, cols, bits);
    if (static_cast<int64_t>(n) != rows * CtWords(cols, bits))
        throw ArgumentError(env, "expected " + std::to_string(rows * CtWords(cols, bits)) +
                                     " int32 words for packed, got " + std::to_string(n));
    Napi::Int8Array out = Napi::Int8Array::New(env, rows * cols);
    if (!Check(env, slip_unpack_int_ct(packed, out.Data(), rows, cols, static_cast<int32_t>(bits)))) return env.Undefined();
    return out;
}

// quantShapes(params, shape) -> { codes: number[], scales: number[], global: number[] | null }
Napi::Value QuantShapes(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    const slip_quant_params p = ToParams(info[0]);
    if (!info[1].IsArray()) throw ArgumentError(env, "expected an array for shape");
    Napi::Array s = info[1].As<Napi::Array>();
    if (s.Length() > SLIP_MAX_DIMS) throw ArgumentError(env, "expected at most 8 dimensions for shape");
    int64_t shape[SLIP_MAX_DIMS];
    for (uint32_t i = 0; i < s.Length(); ++i) shape[i] = ToInt64(s.Get(i), "shape");
    int32_t nd[3];
    int64_t sh[3][SLIP_MAX_DIMS];
    if (!Check(env, slip_quant_shapes(&p, static_cast<int32_t>(s.Length()), shape, &nd[0], sh[0],
                                      &nd[1], sh[1], &nd[2], sh[2])))
        return env.Undefined();
    Napi::Object o = Napi::Object::New(env);
    o.Set("codes", ToArray(env, nd[0], sh[0]));
    o.Set("scales", ToArray(env, nd[1], sh[1]));
    o.Set("global", nd[2] ? ToArray(env, nd[2], sh[2]) : env.Null());
    return o;
}

// The arguments of a quantize/dequantize call, copied out of JS before any work runs.
struct QuantCall {
    slip_tensor a, b, c, d;
    bool has_global = false;
    slip_quant_params p;
};

// quantize(x, params, codes, scales, global?)
QuantCall QuantizeArgs(const Napi::CallbackInfo &info) {
    QuantCall q;
    q.a = ToTensor(info[0], "x");
    q.p = ToParams(info[1]);
    q.b = ToTensor(info[2], "codes");
    q.c = ToTensor(info[3], "scales");
    q.d = ToOptionalTensor(info[4], "global", &q.has_global);
    return q;
}

slip_status RunQuantize(QuantCall &q) {
    return slip_quantize(&q.a, &q.p, &q.b, &q.c, q.has_global ? &q.d : nullptr);
}

// dequantize(codes, scales, global | null, params, out)
QuantCall DequantizeArgs(const Napi::CallbackInfo &info) {
    QuantCall q;
    q.a = ToTensor(info[0], "codes");
    q.b = ToTensor(info[1], "scales");
    q.c = ToOptionalTensor(info[2], "global", &q.has_global);
    q.p = ToParams(info[3]);
    q.d = ToTensor(info[4], "out");
    return q;
}

slip_status RunDequantize(QuantCall &q) {
    return slip_dequantize(&q.a, &q.b, q.has_global ? &q.c : nullptr, &q.p, &q.d);
}

Napi::Value QuantizeSync(const Napi::CallbackInfo &info) {
    QuantCall q = QuantizeArgs(info);
    Check(info.Env(), RunQuantize(q));
    return info.Env().Undefined();
}

Napi::Value Quantize(const Napi::CallbackInfo &info) {
    auto q = std::make_shared<QuantCall>(QuantizeArgs(info));
    return RunAsync(info.Env(), [q] { return RunQuantize(*q); }, nullptr, Arguments(info));
}

Napi::Value DequantizeSync(const Napi::CallbackInfo &info) {
    QuantCall q = DequantizeArgs(info);
    Check(info.Env(), RunDequantize(q));
    return info.Env().Undefined();
}

Napi::Value Dequantize(const Napi::CallbackInfo &info) {
    auto q = std::make_shared<QuantCall>(DequantizeArgs(info));
    return RunAsync(info.Env(), [q] { return RunDequantize(*q); }, nullptr, Arguments(info));
}

// hadamard(x, block): in place.
Napi::Value Hadamard(const Napi::CallbackInfo &info) {
    slip_tensor x = ToTensor(info[0], "x");
    const int64_t block = ToInt64(info[1], "block");
    Check(info.Env(), slip_hadamard(&x, block));
    return info.Env().Undefined();
}

}  // namespace

void RegisterQuant(Napi::Env env, Napi::Object exports) {
    exports.Set("elementEncode", Napi::Function::New(env, ElementEncode));
    exports.Set("elementDecode", Napi::Function::New(env, ElementDecode));
    exports.Set("packNibbles", Napi::Function::New(env, PackNibbles));
    exports.Set("unpackNibbles", Napi::Function::New(env, UnpackNibbles));
    exports.Set("packIntCT", Napi::Function::New(env, PackIntCT));
    exports.Set("unpackIntCT", Napi::Function::New(env, UnpackIntCT));
    exports.Set("quantShapes", Napi::Function::New(env, QuantShapes));
    exports.Set("quantize", Napi::Function::New(env, Quantize));
    exports.Set("quantizeSync", Napi::Function::New(env, QuantizeSync));
    exports.Set("dequantize", Napi::Function::New(env, Dequantize));
    exports.Set("dequantizeSync", Napi::Function::New(env, DequantizeSync));
    exports.Set("hadamard", Napi::Function::New(env, Hadamard));
}

}  // namespace slipnode
