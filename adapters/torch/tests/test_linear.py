"""LinearPlan and gemm_f32 against a float64 numpy product of the decoded operands.

Weights are written directly as codes; activations are quantized here by the spec's formulas
(float32 steps where the library rounds in float32). Bound, as native/test/test-gemm.cpp: an FP32
dot product of K terms is within gamma_K * sum|a_i w_i| of the exact sum, gamma_K = K u/(1 - K u),
u = 2^-24 (Higham 3.1); decoding, the scale multiplies and the bias add round a few more times,
so |y - ref| <= gamma_{K+6} * (sum|a_i w_i| + |bias|).
"""

import ml_dtypes
import numpy as np
import pytest

from slipstream_torch import SlipstreamError
from slipstream_torch.linear import LinearPlan, bench_peak, gemm_f32

rng = np.random.default_rng(7)
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])


def e4m3(codes):
    return np.asarray(codes, np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)


def uni(*shape):
    return rng.uniform(-1, 1, shape).astype(np.float32)


def make_weight(kind, n, k):
    """(weight for LinearPlan, float64 decoded [n, k], activations mode)."""
    if kind == "F32":
        w = uni(n, k)
        return w, w.astype(np.float64), "none"
    if kind in ("W8A8", "W8A16"):
        codes = rng.integers(-127, 128, (n, k)).astype(np.int8)
        scales = (0.01 * (1 + np.arange(n) % 5)).astype(np.float32).reshape(n, 1)
        mode = "dynamic" if kind == "W8A8" else "none"
        return {"format": "INT8", "codes": codes, "scales": scales}, codes * scales.astype(np.float64), mode
    g = {"W4A16": 128, "MXFP4": 32}.get(kind, 16)
    nib = rng.integers(0, 16, (n, k)).astype(np.uint8)
    packed = np.ascontiguousarray(nib[:, 0::2] | (nib[:, 1::2] << 4))  # even column in the low nibble
    if kind == "W4A16":
        scales = (0.001 * (1 + np.arange(n * k // g) % 7)).astype(np.float32).reshape(n, k // g)
        dec = (nib.astype(np.float64) - 8) * np.repeat(scales, g, axis=1)
        return {"format": "INT4", "codes": packed.view(np.int32), "scales": scales}, dec, "none"
    if kind == "MXFP4":
        scales = rng.integers(120, 128, (n, k // g)).astype(np.uint8)
        dec = E2M1[nib] * np.repeat(2.0 ** (scales.astype(np.float64) - 127), g, axis=1)
        return {"format": "MXFP4", "codes": packed, "scales": scales}, dec, "none"
    scales = rng.integers(0x20, 0x48, (n, k // g)).astype(np.uint8)
    glob = np.array([37.0], np.float32)
    dec = E2M1[nib] * np.repeat(e4m3(scales), g, axis=1) / 37.0
    mode = {"NVFP4 W4A4": "dynamic", "NVFP4 W4A8": "int8"}.get(kind, "none")
    return {"format": "NVFP4", "codes": packed, "scales": scales, "global": glob}, dec, mode


def decoded_acts(x, kind, mode):
    if mode == "none":
        return x.astype(np.float64)
    amax = np.abs(x).max(axis=1, keepdims=True)
    if mode == "int8" or kind == "W8A8":
        s = amax / np.float32(127)
        q = np.clip(np.rint(np.divide(x, s, out=np.zeros_like(x), where=s > 0)), -127, 127)
        return q * s.astype(np.float64)
    # NVFP4 W4A4: global g = 448*6/amax(x); per 16 columns s = RN_E4M3(amax16/6*g), e = RNE_E2M1(x*g/s)
    g = np.float32(2688) / np.abs(x).max()
    m, k = x.shape
    blocks = x.reshape(m, k // 16, 16)
    bm = np.abs(blocks).max(axis=2, keepdims=True)
    s = ((bm / np.float32(6)) * g).astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    t = np.divide(blocks * g, s, out=np.zeros_like(blocks), where=s > 0)
    e = t.astype(ml_dtypes.float4_e2m1fn).astype(np.float64)  # RNE, saturating to 6
    return (e * s.astype(np.float64) / np.float64(g)).reshape(m, k)


def assert_close(y, a, w, bias):
    k = a.shape[1]
    u = 2.0 ** -24
    gamma = (k + 6) * u / (1 - (k + 6) * u)
    b = np.zeros(w.shape[0]) if bias is None else bias.astype(np.float64)
    ref = a @ w.T + b
    mag = np.abs(a) @ np.abs(w).T + np.abs(b)
    err = np.abs(y.astype(np.float64).reshape(ref.shape) - ref)
    assert (err <= gamma * mag + 1e-30).all(), f"max err/bound {(err / (gamma * mag + 1e-30)).max():.3g}"


KINDS = ["F32", "W8A8", "W8A16", "W4A16", "NVFP4 W4A4", "NVFP4 W4A8", "NVFP4A16", "MXFP4"]


@pytest.mark.parametrize("m,k,n", [(1, 128, 33), (7, 256, 129), (33, 384, 7), (2, 640, 1)])
@pytest.mark.parametrize("kind", KINDS)
def test_plan_matches_float64_reference(kind, m, k, n):
    w, dec, mode = make_weight(kind, n, k)
    x, bias = uni(m, k), uni(n)
    with LinearPlan(w, activations=mode) as plan:
        assert (plan.n, plan.k) == (n, k)
        y = plan.run(x, bias)
        assert y.shape == (m, n) and y.dtype == np.float32
        assert_close(y, decoded_acts(x, kind, mode), dec, bias)
    assert plan.closed


def test_leading_dims_strided_input_and_no_bias():
    w, dec, _ = make_weight("W4A16", 20, 256)
    x = uni(2, 3, 512)[:, :, ::2]  # strided: copied to contiguous
    with LinearPlan(w) as plan:
        y = plan(x)
    assert y.shape == (2, 3, 20)
    assert_close(y, x.reshape(6, 256).astype(np.float64), dec, None)


def test_gemm_f32():
    for m, k, n in [(1, 100, 37), (19, 111, 45), (3, 1, 2)]:
        x, w, b = uni(m, k), uni(n, k), uni(n)
        assert_close(gemm_f32(x, w, b), x.astype(np.float64), w.astype(np.float64), b)
        assert gemm_f32(x[None], w).shape == (1, m, n)


def test_takes_quantize_output_if_available():
    quant = pytest.importorskip("slipstream_torch.quant", reason="the quant adapter is not in this checkout")
    w = uni(48, 256)
    q = quant.quantize(w, "NVFP4")
    dec = quant.dequantize(q, w.shape).astype(np.float64)
    x = uni(5, 256)
    with LinearPlan(q) as plan:
        assert_close(plan.run(x), x.astype(np.float64), dec, None)


def raises(code, pattern, fn, *args, **kwargs):
    with pytest.raises(SlipstreamError, match=pattern) as err:
        fn(*args, **kwargs)
    assert err.value.code == code
    return err.value


def test_errors_name_x_and_bias():
    w, _, _ = make_weight("W4A16", 8, 256)
    with LinearPlan(w) as plan:
        raises("SLIP_STATUS_SHAPE_MISMATCH", r"expected shape \[\.\.\., 256\] for x \(K = 256\), got \[3, 100\]", plan.run, uni(3, 100))
        raises("SLIP_STATUS_DTYPE_MISMATCH", r"float32 array for x, got float64", plan.run, np.zeros((3, 256)))
        raises("SLIP_STATUS_INVALID_ARGUMENT", r"numpy array for x, got list", plan.run, [[0.0] * 256])
        raises("SLIP_STATUS_SHAPE_MISMATCH", r"shape \[8\] for bias", plan.run, uni(3, 256), uni(9))
        raises("SLIP_STATUS_DTYPE_MISMATCH", r"for bias", plan.run, uni(3, 256), np.zeros(8, np.float16))
    raises("SLIP_STATUS_INVALID_ARGUMENT", r"already closed", plan.run, uni(1, 256))
    plan.close()  # idempotent


def test_errors_name_the_weight_tensors():
    nv, _, _ = make_weight("NVFP4A16", 8, 64)
    raises("SLIP_STATUS_INVALID_ARGUMENT", r"for w\['format'\], got 'NVFP5'", LinearPlan, {**nv, "format": "NVFP5"})
    raises("SLIP_STATUS_DTYPE_MISMATCH", r"uint8 array for w\['codes'\], got int8", LinearPlan, {**nv, "codes": np.zeros((8, 32), np.int8)})
    raises("SLIP_STATUS_SHAPE_MISMATCH", r"\[N, K/2\] array for w\['codes'\]", LinearPlan, {**nv, "codes": np.zeros(256, np.uint8)})
    raises("SLIP_STATUS_SHAPE_MISMATCH", r"w\.scales", LinearPlan, {**nv, "scales": np.zeros((8, 3), np.uint8)})  # native's check
    raises("SLIP_STATUS_DTYPE_MISMATCH", r"uint8 array for w\['scales'\]", LinearPlan, {**nv, "scales": np.zeros((8, 4), np.float32)})
    raises("SLIP_STATUS_INVALID_ARGUMENT", r"numpy array for w\['scales'\], got NoneType", LinearPlan, {**nv, "scales": None})
    raises("SLIP_STATUS_INVALID_ARGUMENT", r"w\.global", LinearPlan, {**nv, "global": np.array([-1.0], np.float32)})
    raises("SLIP_STATUS_DTYPE_MISMATCH", r"float32 array for w\['codes'\]", LinearPlan, np.zeros((8, 64), np.float16))
    i4, _, _ = make_weight("W4A16", 8, 256)
    raises("SLIP_STATUS_UNSUPPORTED", r"INT4 weight", LinearPlan, i4, activations="dynamic")
    raises("SLIP_STATUS_UNSUPPORTED", r"INT8 or NVFP4 weight .*got format INT4", LinearPlan, i4, activations="int8")
    raises("SLIP_STATUS_INVALID_ARGUMENT", r"for activations, got 'static'", LinearPlan, i4, activations="static")
    raises("SLIP_STATUS_INVALID_ARGUMENT", r"act_global_scale", LinearPlan, i4, act_global_scale=-1.0)


def test_gemm_errors():
    raises("SLIP_STATUS_SHAPE_MISMATCH", r"\[N, K\] array for w", gemm_f32, uni(2, 8), uni(8))
    raises("SLIP_STATUS_SHAPE_MISMATCH", r"for x", gemm_f32, uni(2, 7), uni(4, 8))
    raises("SLIP_STATUS_DTYPE_MISMATCH", r"float32 array for w", gemm_f32, uni(2, 8), np.zeros((4, 8), np.int8))


def test_bench_peak():
    try:
        assert bench_peak("fp32-fma", 0.05) > 0
    except SlipstreamError as e:
        assert e.code == "SLIP_STATUS_UNSUPPORTED"
    raises("SLIP_STATUS_INVALID_ARGUMENT", r"for kind", bench_peak, "fp64", 1.0)
    raises("SLIP_STATUS_INVALID_ARGUMENT", r"seconds", bench_peak, "fp32-fma", 0.0)
