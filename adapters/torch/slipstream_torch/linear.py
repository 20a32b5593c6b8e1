"""Linears over libslipstream (numpy float32 in and out), mirroring core/src/linear.

    y = x @ W.T (+ bias)     x: [..., K] float32, W: [N, K] (PyTorch's Linear), y: [..., N]

A LinearPlan is made once per weight (the library repacks it and keeps its own copy) and run
many times; close() frees it (or use it as a context manager). Numerics are the C ABI's
(native/include/slipstream.h, "linears"): the result equals, up to FP32 summation order, the
float64 product of the decoded (quantized) activations and the decoded weight.
"""

from __future__ import annotations

import ctypes as _c
from typing import Optional, Union

import numpy as np

from ._lib import (SlipLinearParams, SlipQuantParams, SlipQweight, SlipstreamError, SlipTensor, check, declare,
                   tensor_from_numpy)

# slip_quant_format, plus F32: an unquantized weight passed as its codes.
FORMATS = {"INT8": 0, "INT4": 1, "FP8_E4M3": 2, "FP8_E5M2": 3, "NVFP4": 4, "NVFP4_TJ2": 5, "MXFP4": 6, "F32": 7}
ACTIVATIONS = {"none": 0, "dynamic": 1, "int8": 2}
GRANULARITIES = {"tensor": 0, "row": 1, "group": 2, "block": 3}
# (slip dtype of the codes, weight elements per codes item along K, slip dtype of the scales).
# Raw-bit arrays (FP8 codes, E4M3 and E8M0 scales) travel as uint8 and are named here.
_LAYOUT = {
    "INT8": ("I8", 1, "F32"), "INT4": ("I32", 8, "F32"), "FP8_E4M3": ("F8_E4M3", 1, "F32"),
    "FP8_E5M2": ("F8_E5M2", 1, "F32"), "NVFP4": ("U8", 2, "F8_E4M3"), "NVFP4_TJ2": ("U8", 2, "F8_E4M3"),
    "MXFP4": ("U8", 2, "U8"), "F32": ("F32", 1, None),
}

_NUMPY = {"F32": np.float32, "I8": np.int8, "I32": np.int32, "U8": np.uint8, "F8_E4M3": np.uint8, "F8_E5M2": np.uint8}

_S, _P = _c.c_int32, _c.POINTER
_fns: dict = {}


def _fn(name: str):
    if name not in _fns:
        protos = {
            "slip_quant_params_init": (_S, [_P(SlipQuantParams), _c.c_int32]),
            "slip_linear_params_init": (_S, [_P(SlipLinearParams)]),
            "slip_linear_plan_create": (_S, [_P(SlipQweight), _P(SlipLinearParams), _P(_c.c_void_p)]),
            "slip_linear_plan_run": (_S, [_c.c_void_p, _P(SlipTensor), _P(SlipTensor), _P(SlipTensor)]),
            "slip_linear_plan_run_as": (_S, [_c.c_void_p, _P(SlipLinearParams), _P(SlipTensor), _P(SlipTensor),
                                             _P(SlipTensor)]),
            "slip_linear_plan_weight_bytes": (_S, [_c.c_void_p, _P(_c.c_int64)]),
            "slip_linear_plan_free": (None, [_c.c_void_p]),
            "slip_gemm_f32": (_S, [_P(SlipTensor), _P(SlipTensor), _P(SlipTensor), _P(SlipTensor)]),
            "slip_bench_peak": (_S, [_c.c_int32, _c.c_double, _P(_c.c_double)]),
        }
        restype, argtypes = protos[name]
        _fns[name] = declare(name, restype, argtypes)
    return _fns[name]


def _lookup(table: dict, value, name: str):
    if value not in table:
        raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected one of {sorted(table)} for {name}, got {value!r}")
    return table[value]


def _array(value, name: str, dtype=None) -> np.ndarray:
    """A C-contiguous view (copy only when strided) of a numpy array of `dtype`."""
    if not isinstance(value, np.ndarray):
        raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected a numpy array for {name}, got {type(value).__name__}")
    if dtype is not None and value.dtype != dtype:
        raise SlipstreamError("SLIP_STATUS_DTYPE_MISMATCH",
                              f"expected a {np.dtype(dtype).name} array for {name}, got {value.dtype} {list(value.shape)}")
    return np.ascontiguousarray(value)


def _activations(x, k: int) -> tuple[np.ndarray, tuple]:
    x = _array(x, "x", np.float32)
    if x.ndim < 1 or x.shape[-1] != k:
        raise SlipstreamError("SLIP_STATUS_SHAPE_MISMATCH", f"expected shape [..., {k}] for x (K = {k}), got {list(x.shape)}")
    return x.reshape(-1, k), x.shape[:-1]


def _bias(bias, n: int) -> Optional[np.ndarray]:
    if bias is None:
        return None
    b = _array(bias, "bias", np.float32)
    if b.shape != (n,):
        raise SlipstreamError("SLIP_STATUS_SHAPE_MISMATCH", f"expected shape [{n}] for bias (N = {n}), got {list(b.shape)}")
    return b


def _qweight(w) -> tuple[SlipQweight, int, int, str, list]:
    """The descriptor of a weight dict (quantize()'s output) or an F32 [N, K] array, the arrays it
    points into (kept alive by the caller until create returns), N, K and the format."""
    if isinstance(w, np.ndarray):
        w = {"format": "F32", "codes": w}
    if not isinstance(w, dict):
        raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT",
                              f"expected a weight dict {{format, codes, scales, global}} or a float32 array for w, got {type(w).__name__}")
    fmt = w.get("format")
    _lookup(FORMATS, fmt, "w['format']")
    codes_dtype, per_item, scales_dtype = _LAYOUT[fmt]
    codes = _array(w.get("codes"), "w['codes']", _NUMPY[codes_dtype])
    if codes.ndim != 2:
        raise SlipstreamError("SLIP_STATUS_SHAPE_MISMATCH",
                              f"expected a 2-D [N, K{'' if per_item == 1 else f'/{per_item}'}] array for w['codes'] of a {fmt} "
                              f"weight, got {list(codes.shape)}")
    q = SlipQweight()
    keep = [codes]
    if fmt == "F32":
        q.params.format = FORMATS["F32"]
    else:
        check(_fn("slip_quant_params_init")(_c.byref(q.params), FORMATS[fmt]))
        options = w.get("options") or {}
        if options.get("granularity") is not None:
            q.params.granularity = _lookup(GRANULARITIES, options["granularity"], "w['options']['granularity']")
        if options.get("group_size") is not None:
            q.params.group_size = options["group_size"]
        if options.get("block") is not None:
            q.params.block_rows, q.params.block_cols = options["block"]
        scales = _array(w.get("scales"), "w['scales']", _NUMPY[scales_dtype])
        keep.append(scales)
        q.scales = tensor_from_numpy(scales, scales_dtype)
        if w.get("global") is not None:
            glob = _array(w["global"], "w['global']", np.float32)
            keep.append(glob)
            q.global_ = tensor_from_numpy(glob)
    q.codes = tensor_from_numpy(codes, codes_dtype)
    return q, codes.shape[0], codes.shape[1] * per_item, fmt, keep


class PlanHandle:
    """Owns one native slip_linear_plan_t (self._plan): freed by close(), a with-block or the GC."""

    _plan = None

    def close(self) -> None:
        """Frees the native plan (a CUDA one waits for work still queued on it); idempotent."""
        if self._plan is not None:
            _fn("slip_linear_plan_free")(self._plan)
            self._plan = None

    free = close

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        # Interpreter shutdown may have torn down the module globals already.
        try:
            self.close()
        except Exception:
            pass


class LinearPlan(PlanHandle):
    """y = x @ W.T (+ bias) for one weight, planned once.

    w: quantize()'s dict ({"format", "codes", "scales", "global", "options"}) or a float32 [N, K]
    array (the FP32 baseline). activations: "none" keeps x in FP32 (W4A16, W8A16, NVFP4A16);
    "dynamic" quantizes x per call with the weight format's scheme (INT8 per-token W8A8, FP8
    per-token, NVFP4 W4A4); "int8" quantizes x per token to INT8 against an INT8 weight (W8A8,
    as "dynamic") or an NVFP4 one (W4A8, exact integer products per 16-column group), other
    formats refuse it. act_global_scale: NVFP4 W4A4's static activation global scale
    (None: 448*6/amax(x) per call).
    """

    def __init__(self, w: Union[dict, np.ndarray], activations: Optional[str] = None,
                 act_global_scale: Optional[float] = None):
        self._plan: Optional[int] = None
        q, self.n, self.k, self.format, keep = _qweight(w)
        p = SlipLinearParams()
        check(_fn("slip_linear_params_init")(_c.byref(p)))
        if activations is not None:
            p.act_quant = _lookup(ACTIVATIONS, activations, "activations")
        if act_global_scale is not None:
            p.act_global_scale = act_global_scale
        handle = _c.c_void_p()
        check(_fn("slip_linear_plan_create")(_c.byref(q), _c.byref(p), _c.byref(handle)))
        del keep  # the plan holds its own copy of the weight
        self._plan = handle.value

    @property
    def closed(self) -> bool:
        return self._plan is None

    def run(self, x: np.ndarray, bias: Optional[np.ndarray] = None) -> np.ndarray:
        """x: float32 [..., K]; bias: float32 [N] or None. Returns float32 [..., N]."""
        if self._plan is None:
            raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", "expected an open LinearPlan, got one already closed")
        x2, lead = _activations(x, self.k)
        b = _bias(bias, self.n)
        y = np.empty((x2.shape[0], self.n), np.float32)
        xt, yt = tensor_from_numpy(x2), tensor_from_numpy(y)
        bt = tensor_from_numpy(b) if b is not None else None
        check(_fn("slip_linear_plan_run")(self._plan, _c.byref(xt), _c.byref(bt) if bt else None, _c.byref(yt)))
        return y.reshape(*lead, self.n)

    __call__ = run


def gemm_f32(x: np.ndarray, w: np.ndarray, bias: Optional[np.ndarray] = None) -> np.ndarray:
    """y = x @ w.T (+ bias) in FP32: x float32 [..., K], w float32 [N, K], bias float32 [N]."""
    wt_arr = _array(w, "w", np.float32)
    if wt_arr.ndim != 2:
        raise SlipstreamError("SLIP_STATUS_SHAPE_MISMATCH", f"expected a 2-D [N, K] array for w, got {list(wt_arr.shape)}")
    n, k = wt_arr.shape
    x2, lead = _activations(x, k)
    b = _bias(bias, n)
    y = np.empty((x2.shape[0], n), np.float32)
    xt, wt, yt = tensor_from_numpy(x2), tensor_from_numpy(wt_arr), tensor_from_numpy(y)
    bt = tensor_from_numpy(b) if b is not None else None
    check(_fn("slip_gemm_f32")(_c.byref(xt), _c.byref(wt), _c.byref(bt) if bt else None, _c.byref(yt)))
    return y.reshape(*lead, n)


def bench_peak(kind: str = "fp32-fma", seconds: float = 1.0) -> float:
    """Measured vector peak in ops/s ("fp32-fma" or "int8-vnni"); see slip_bench_peak."""
    out = _c.c_double()
    check(_fn("slip_bench_peak")(_lookup({"fp32-fma": 0, "int8-vnni": 1}, kind, "kind"), seconds, _c.byref(out)))
    return out.value
