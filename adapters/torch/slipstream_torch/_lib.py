"""ctypes loader of libslipstream: the same shared library that Node loads.

One build serves every torch version: nothing here needs torch headers. The loader tries each
candidate path in order, keeps every failure, and raises one error that lists them with the fix.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Optional

import numpy as np

ABI_VERSION = 1
MAX_DIMS = 8

_REPO_ROOT = Path(__file__).resolve().parents[3]


class SlipstreamError(RuntimeError):
    """A failed native call: `code` is the stable status name, the message names the argument."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class SlipTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("device", ctypes.c_int32),
        ("device_index", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("shape", ctypes.c_int64 * MAX_DIMS),
        ("strides", ctypes.c_int64 * MAX_DIMS),
        ("stream", ctypes.c_void_p),
    ]


class SlipCapabilities(ctypes.Structure):
    _fields_ = [
        ("abi_version", ctypes.c_uint32),
        ("cpu_features", ctypes.c_uint32),
        ("isa_detected", ctypes.c_int32),
        ("isa_active", ctypes.c_int32),
        ("num_threads", ctypes.c_int32),
        ("cuda_compiled", ctypes.c_int32),
        ("cuda_device_count", ctypes.c_int32),
        ("reserved", ctypes.c_int32),
    ]


class SlipQuantParams(ctypes.Structure):
    _fields_ = [
        ("format", ctypes.c_int32),
        ("granularity", ctypes.c_int32),
        ("group_size", ctypes.c_int64),
        ("block_rows", ctypes.c_int64),
        ("block_cols", ctypes.c_int64),
        ("rounding", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("seed", ctypes.c_uint64),
        ("global_scale", ctypes.c_float),
        ("reserved", ctypes.c_int32 * 3),
    ]


class SlipQweight(ctypes.Structure):
    _fields_ = [
        ("params", SlipQuantParams),
        ("codes", SlipTensor),
        ("scales", SlipTensor),
        ("global_", SlipTensor),
    ]


class SlipLinearParams(ctypes.Structure):
    _fields_ = [
        ("act_quant", ctypes.c_int32),
        ("act_global_scale", ctypes.c_float),
        ("reserved", ctypes.c_int32 * 6),
    ]


# slip_dtype, in the header's order, against numpy dtypes. The FP8 types travel as raw bytes.
DTYPES = {
    "F32": (0, np.dtype(np.float32)),
    "F16": (1, np.dtype(np.float16)),
    "BF16": (2, np.dtype(np.uint16)),
    "F64": (3, np.dtype(np.float64)),
    "F8_E4M3": (4, np.dtype(np.uint8)),
    "F8_E5M2": (5, np.dtype(np.uint8)),
    "I8": (6, np.dtype(np.int8)),
    "U8": (7, np.dtype(np.uint8)),
    "I32": (8, np.dtype(np.int32)),
    "I64": (9, np.dtype(np.int64)),
}
_NATIVE_FOR_NUMPY = {
    np.dtype(np.float32): 0,
    np.dtype(np.float16): 1,
    np.dtype(np.float64): 3,
    np.dtype(np.int8): 6,
    np.dtype(np.uint8): 7,
    np.dtype(np.int32): 8,
    np.dtype(np.int64): 9,
}

_c = ctypes
_STATUS = _c.c_int32
_PROTOTYPES = {
    "slip_abi_version": (_c.c_uint32, []),
    "slip_version_string": (_c.c_char_p, []),
    "slip_status_string": (_c.c_char_p, [_STATUS]),
    "slip_last_error": (_c.c_char_p, []),
    "slip_get_capabilities": (_STATUS, [_c.POINTER(SlipCapabilities)]),
    "slip_list_kernels": (_STATUS, [_c.c_char_p, _c.c_size_t, _c.POINTER(_c.c_size_t)]),
    "slip_set_isa": (_STATUS, [_c.c_int32]),
    "slip_set_num_threads": (_STATUS, [_c.c_int32]),
}


def _candidates() -> list[Path]:
    env = os.environ.get("SLIPSTREAM_LIB")
    paths = [Path(env)] if env else []
    paths += [
        _REPO_ROOT / "build" / "Release" / "libslipstream.so",
        _REPO_ROOT / "build" / "libslipstream.so",
        Path(__file__).resolve().parent / "libslipstream.so",
    ]
    return paths


_lib: Optional[ctypes.CDLL] = None


def lib() -> ctypes.CDLL:
    """The loaded library, with the base prototypes declared. Loaded once."""
    global _lib
    if _lib is not None:
        return _lib
    failures = []
    for path in _candidates():
        if not path.exists():
            failures.append(f"{path}: not found")
            continue
        try:
            handle = ctypes.CDLL(str(path))
        except OSError as e:
            failures.append(f"{path}: {e}")
            continue
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(handle, name)
            fn.restype, fn.argtypes = restype, argtypes
        version = handle.slip_abi_version()
        if version != ABI_VERSION:
            failures.append(f"{path}: ABI version {version}, this package needs {ABI_VERSION} (stale build)")
            continue
        _lib = handle
        return handle
    raise SlipstreamError(
        "SLIP_E_NATIVE_MISSING",
        "libslipstream could not be loaded; run `npm install` (or `npm run build:native`) in "
        f"{_REPO_ROOT}, or set SLIPSTREAM_LIB to the library's path. Tried:\n  "
        + "\n  ".join(failures),
    )


def declare(name: str, restype, argtypes) -> ctypes._CFuncPtr:
    """Declares one more entry point's prototype (each module declares its own)."""
    fn = getattr(lib(), name)
    fn.restype, fn.argtypes = restype, argtypes
    return fn


def check(status: int) -> None:
    """Raises SlipstreamError with the native sentence when status is not OK."""
    if status != 0:
        handle = lib()
        code = handle.slip_status_string(status).decode()
        raise SlipstreamError(code, handle.slip_last_error().decode())


def tensor_from_numpy(arr: np.ndarray, dtype: Optional[str] = None) -> SlipTensor:
    """A descriptor over a C-contiguous array (no copy). `dtype` overrides the inferred slip dtype
    for raw-bit views ("BF16", "F8_E4M3", "F8_E5M2"). The caller keeps `arr` alive."""
    if not isinstance(arr, np.ndarray):
        raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected a numpy array, got {type(arr).__name__}")
    if not arr.flags["C_CONTIGUOUS"]:
        raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", "expected a C-contiguous array (use np.ascontiguousarray)")
    if arr.ndim > MAX_DIMS:
        raise SlipstreamError("SLIP_STATUS_SHAPE_MISMATCH", f"expected at most {MAX_DIMS} dimensions, got {arr.ndim}")
    if dtype is not None:
        if dtype not in DTYPES:
            raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected one of {sorted(DTYPES)} for dtype, got {dtype!r}")
        code, np_dtype = DTYPES[dtype]
        if arr.dtype.itemsize != np_dtype.itemsize:
            raise SlipstreamError("SLIP_STATUS_DTYPE_MISMATCH", f"expected {np_dtype.itemsize}-byte elements for {dtype}, got {arr.dtype}")
    else:
        if arr.dtype not in _NATIVE_FOR_NUMPY:
            raise SlipstreamError("SLIP_STATUS_DTYPE_MISMATCH", f"expected a float32/float16/float64/int8/uint8/int32/int64 array, got {arr.dtype}")
        code = _NATIVE_FOR_NUMPY[arr.dtype]
    t = SlipTensor()
    t.data = arr.ctypes.data if arr.size else None
    t.dtype = code
    t.device = 0
    t.ndim = arr.ndim
    stride = 1
    for i in range(arr.ndim - 1, -1, -1):
        t.shape[i] = arr.shape[i]
        t.strides[i] = stride
        stride *= arr.shape[i]
    return t


def capabilities() -> dict:
    """ABI version, CPU features, ISA levels, threads, CUDA, and the kernel list."""
    handle = lib()
    caps = SlipCapabilities()
    check(handle.slip_get_capabilities(ctypes.byref(caps)))
    needed = ctypes.c_size_t(0)
    check(handle.slip_list_kernels(None, 0, ctypes.byref(needed)))
    buf = ctypes.create_string_buffer(needed.value)
    check(handle.slip_list_kernels(buf, needed.value, ctypes.byref(needed)))
    kernels = buf.value.decode()
    return {
        "abi_version": caps.abi_version,
        "cpu_features": caps.cpu_features,
        "isa_detected": caps.isa_detected,
        "isa_active": caps.isa_active,
        "num_threads": caps.num_threads,
        "cuda_compiled": bool(caps.cuda_compiled),
        "cuda_device_count": caps.cuda_device_count,
        "kernels": kernels.split(",") if kernels else [],
    }


def set_isa(level: int) -> None:
    check(lib().slip_set_isa(level))


def set_num_threads(n: int) -> None:
    check(lib().slip_set_num_threads(n))
