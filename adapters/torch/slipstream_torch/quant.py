"""Quantization over libslipstream (numpy in, numpy out), mirroring core/src/quant.

Formats, shapes and numerics are the C ABI's (native/include/slipstream.h, "element codecs" and
"tensor quantization"); defaults come from slip_quant_params_init, so an option left as None
keeps the format's default.
"""

from __future__ import annotations

import ctypes as _c
from typing import Optional

import numpy as np

from ._lib import SlipQuantParams, SlipstreamError, SlipTensor, check, declare, tensor_from_numpy

FORMATS = {"INT8": 0, "INT4": 1, "FP8_E4M3": 2, "FP8_E5M2": 3, "NVFP4": 4, "NVFP4_TJ2": 5, "MXFP4": 6}
ELEMENTS = {"E4M3": 0, "E5M2": 1, "E2M1": 2, "E8M0": 3}
GRANULARITIES = {"tensor": 0, "row": 1, "group": 2, "block": 3}
ROUNDINGS = {"nearest": 0, "stochastic": 1}
ALLOW_NONFINITE = 1
FULL_INT_RANGE = 2  # INT8/INT4: amax/(qmax+0.5), codes [-(qmax+1), qmax] (compressed-tensors)

_CODES = {"INT8": ("I8", np.int8), "INT4": ("I32", np.int32), "FP8_E4M3": ("F8_E4M3", np.uint8),
          "FP8_E5M2": ("F8_E5M2", np.uint8), "NVFP4": ("U8", np.uint8), "NVFP4_TJ2": ("U8", np.uint8),
          "MXFP4": ("U8", np.uint8)}
_SCALES = {"NVFP4": ("F8_E4M3", np.uint8), "NVFP4_TJ2": ("F8_E4M3", np.uint8), "MXFP4": ("U8", np.uint8)}

_S, _P = _c.c_int32, _c.POINTER
_u8, _f32, _i8, _i32, _i64 = _P(_c.c_uint8), _P(_c.c_float), _P(_c.c_int8), _P(_c.c_int32), _P(_c.c_int64)
_fns: dict = {}


def _fn(name: str):
    if name not in _fns:
        protos = {
            "slip_element_encode": [_c.c_int32, _f32, _u8, _c.c_int64, _c.c_int32, _c.c_uint64],
            "slip_element_decode": [_c.c_int32, _u8, _f32, _c.c_int64],
            "slip_pack_nibbles": [_u8, _u8, _c.c_int64],
            "slip_unpack_nibbles": [_u8, _u8, _c.c_int64],
            "slip_pack_int_ct": [_i8, _i32, _c.c_int64, _c.c_int64, _c.c_int32],
            "slip_unpack_int_ct": [_i32, _i8, _c.c_int64, _c.c_int64, _c.c_int32],
            "slip_quant_params_init": [_P(SlipQuantParams), _c.c_int32],
            "slip_quant_shapes": [_P(SlipQuantParams), _c.c_int32, _i64, _i32, _i64, _i32, _i64, _i32, _i64],
            "slip_quantize": [_P(SlipTensor), _P(SlipQuantParams), _P(SlipTensor), _P(SlipTensor), _P(SlipTensor)],
            "slip_dequantize": [_P(SlipTensor), _P(SlipTensor), _P(SlipTensor), _P(SlipQuantParams), _P(SlipTensor)],
            "slip_hadamard": [_P(SlipTensor), _c.c_int64],
        }
        _fns[name] = declare(name, _S, protos[name])
    return _fns[name]


def _ptr(arr: np.ndarray, ctype):
    return arr.ctypes.data_as(_P(ctype))


def _lookup(table: dict, value, name: str):
    if value not in table:
        raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected one of {sorted(table)} for {name}, got {value!r}")
    return table[value]


def encode_elements(fmt: str, x: np.ndarray, rounding: str = "nearest", seed: int = 0) -> np.ndarray:
    """One code per float32 value: nearest-even (or stochastic) with saturation."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape, dtype=np.uint8)
    check(_fn("slip_element_encode")(_lookup(ELEMENTS, fmt, "fmt"), _ptr(x, _c.c_float), _ptr(out, _c.c_uint8),
                                     x.size, _lookup(ROUNDINGS, rounding, "rounding"), seed))
    return out


def decode_elements(fmt: str, codes: np.ndarray) -> np.ndarray:
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    out = np.empty(codes.shape, dtype=np.float32)
    check(_fn("slip_element_decode")(_lookup(ELEMENTS, fmt, "fmt"), _ptr(codes, _c.c_uint8), _ptr(out, _c.c_float), codes.size))
    return out


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """Element 2i in the low nibble, 2i+1 in the high nibble, along the flattened array."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    out = np.empty(codes.size // 2, dtype=np.uint8)
    check(_fn("slip_pack_nibbles")(_ptr(codes, _c.c_uint8), _ptr(out, _c.c_uint8), codes.size))
    return out


def unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    out = np.empty(packed.size * 2, dtype=np.uint8)
    check(_fn("slip_unpack_nibbles")(_ptr(packed, _c.c_uint8), _ptr(out, _c.c_uint8), out.size))
    return out


def pack_int_ct(values: np.ndarray, bits: int) -> np.ndarray:
    """compressed-tensors' pack-quantized int32 words of a [rows, cols] int8 array."""
    values = np.ascontiguousarray(values, dtype=np.int8)
    rows, cols = values.shape
    out = np.empty((rows, (cols * bits + 31) // 32), dtype=np.int32)
    check(_fn("slip_pack_int_ct")(_ptr(values, _c.c_int8), _ptr(out, _c.c_int32), rows, cols, bits))
    return out


def unpack_int_ct(packed: np.ndarray, cols: int, bits: int) -> np.ndarray:
    packed = np.ascontiguousarray(packed, dtype=np.int32)
    rows = packed.shape[0]
    if packed.shape != (rows, (cols * bits + 31) // 32):
        raise SlipstreamError("SLIP_STATUS_SHAPE_MISMATCH",
                              f"expected shape ({rows}, {(cols * bits + 31) // 32}) for packed, got {packed.shape}")
    out = np.empty((rows, cols), dtype=np.int8)
    check(_fn("slip_unpack_int_ct")(_ptr(packed, _c.c_int32), _ptr(out, _c.c_int8), rows, cols, bits))
    return out


def _params(fmt: str, granularity=None, group_size=None, block=None, rounding=None, seed=None,
            allow_nonfinite=False, full_int_range=False, global_scale=None) -> SlipQuantParams:
    p = SlipQuantParams()
    check(_fn("slip_quant_params_init")(_c.byref(p), _lookup(FORMATS, fmt, "format")))
    if granularity is not None:
        p.granularity = _lookup(GRANULARITIES, granularity, "granularity")
    if group_size is not None:
        p.group_size = group_size
    if block is not None:
        p.block_rows, p.block_cols = block
    if rounding is not None:
        p.rounding = _lookup(ROUNDINGS, rounding, "rounding")
    if seed is not None:
        p.seed = seed
    if allow_nonfinite:
        p.flags |= ALLOW_NONFINITE
    if full_int_range:
        p.flags |= FULL_INT_RANGE
    if global_scale is not None:
        p.global_scale = global_scale
    return p


def quant_shapes(fmt: str, shape, **options) -> dict:
    p = _params(fmt, **options)
    dims = (_c.c_int64 * len(shape))(*shape)
    nd = [_c.c_int32() for _ in range(3)]
    sh = [(_c.c_int64 * 8)() for _ in range(3)]
    check(_fn("slip_quant_shapes")(_c.byref(p), len(shape), dims, _c.byref(nd[0]), sh[0], _c.byref(nd[1]), sh[1],
                                   _c.byref(nd[2]), sh[2]))
    tup = [tuple(sh[i][: nd[i].value]) for i in range(3)]
    return {"codes": tup[0], "scales": tup[1], "global": tup[2] if nd[2].value else None}


def quantize(x: np.ndarray, fmt: str, **options) -> dict:
    """{"codes", "scales", "global" (NVFP4 formats, else None), "format", "options"} as the
    compressed-tensors layout of the format; FP8/E4M3 arrays hold raw bits (uint8)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    shapes = quant_shapes(fmt, x.shape, **options)
    cd, cnp = _CODES[fmt]
    sd, snp = _SCALES.get(fmt, ("F32", np.float32))
    codes, scales = np.zeros(shapes["codes"], cnp), np.zeros(shapes["scales"], snp)
    glob = np.zeros(shapes["global"], np.float32) if shapes["global"] else None
    xt, ct, st = tensor_from_numpy(x), tensor_from_numpy(codes, cd), tensor_from_numpy(scales, sd)
    gt = tensor_from_numpy(glob) if glob is not None else None
    p = _params(fmt, **options)
    check(_fn("slip_quantize")(_c.byref(xt), _c.byref(p), _c.byref(ct), _c.byref(st), _c.byref(gt) if gt else None))
    return {"codes": codes, "scales": scales, "global": glob, "format": fmt, "options": options}


def dequantize(q: dict, shape) -> np.ndarray:
    fmt = q["format"]
    out = np.zeros(tuple(shape), np.float32)
    ct = tensor_from_numpy(q["codes"], _CODES[fmt][0])
    st = tensor_from_numpy(q["scales"], _SCALES.get(fmt, ("F32",))[0])
    gt = tensor_from_numpy(q["global"]) if q.get("global") is not None else None
    p, ot = _params(fmt, **q.get("options", {})), tensor_from_numpy(out)
    check(_fn("slip_dequantize")(_c.byref(ct), _c.byref(st), _c.byref(gt) if gt else None, _c.byref(p), _c.byref(ot)))
    return out


def hadamard(x: np.ndarray, block: int) -> np.ndarray:
    """Orthonormal blocked Walsh-Hadamard along the last axis; returns a new array."""
    y = np.array(x, dtype=np.float32, order="C", copy=True)
    t = tensor_from_numpy(y)
    check(_fn("slip_hadamard")(_c.byref(t), block))
    return y
