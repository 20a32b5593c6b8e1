"""NVFP4 linears on CUDA through libslipstream's linear plans (native/include/slipstream.h,
"linears", "On CUDA"): the weight stays on the GPU at 4.5 bits per element and is decoded on chip.

    plan = CudaLinearPlan(codes, scales, global_scale)   # torch CUDA tensors in the NVFP4 layout
    y = plan(x)                                          # W4A16: x bf16/fp16 [..., K] -> [..., N]
    y = plan(x, activations="fp8")                       # W4A8: x quantized per token to E4M3

codes uint8 [N, K/2] (element 2i in the low nibble), scales float8_e4m3fn (or its uint8 bits)
[N, K/16], global_scale float32 [1]: weight = e2m1(code) * scale / global, compressed-tensors'
layout, the one slipstream_torch.quant writes. The plan is made, and each call runs, on the
current CUDA stream. y has x's dtype; bias is float32 [N].
"""

from __future__ import annotations

import ctypes as _c
from typing import Optional

import torch

from ._lib import SlipLinearParams, SlipQweight, SlipstreamError, check
from .linear import PlanHandle, _fn
from .ops import _cuda_desc

# slip_act_quant values a CUDA plan serves.
ACTIVATIONS = {"none": 0, "fp8": 4}
_NVFP4 = 4
_F8_E4M3 = 4


def _params(activations: str) -> SlipLinearParams:
    if activations not in ACTIVATIONS:
        raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT",
                              f"expected one of {sorted(ACTIVATIONS)} for activations, got {activations!r}")
    p = SlipLinearParams()
    check(_fn("slip_linear_params_init")(_c.byref(p)))
    p.act_quant = ACTIVATIONS[activations]
    return p


def _require_cuda(t, name: str, dtypes: tuple) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not t.is_cuda:
        raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected a CUDA tensor for {name}, got {type(t).__name__}"
                              + (f" on {t.device}" if isinstance(t, torch.Tensor) else ""))
    if t.dtype not in dtypes:
        raise SlipstreamError("SLIP_STATUS_DTYPE_MISMATCH",
                              f"expected {' or '.join(str(d) for d in dtypes)} for {name}, got {t.dtype}")
    return t.contiguous()


class CudaLinearPlan(PlanHandle):
    """y = x @ W.T (+ bias) for one NVFP4 weight on the GPU, planned once (the library keeps a
    repacked device copy; the tensors passed in may be freed afterwards). activations: the plan's
    default, "none" (W4A16) or "fp8" (W4A8); each call may ask for the other."""

    def __init__(self, codes: torch.Tensor, scales: torch.Tensor, global_scale: torch.Tensor,
                 activations: str = "none"):
        self._plan: Optional[int] = None
        codes = _require_cuda(codes, "codes", (torch.uint8,))
        scales = _require_cuda(scales, "scales", (torch.float8_e4m3fn, torch.uint8))
        glob = _require_cuda(global_scale, "global_scale", (torch.float32,)).reshape(1)
        if codes.dim() != 2:
            raise SlipstreamError("SLIP_STATUS_SHAPE_MISMATCH", f"expected a 2-D [N, K/2] tensor for codes, got {list(codes.shape)}")
        self.n, self.k = codes.shape[0], codes.shape[1] * 2
        self.activations = activations
        q = SlipQweight()
        check(_fn("slip_quant_params_init")(_c.byref(q.params), _NVFP4))
        q.codes = _cuda_desc(codes)
        q.scales = _cuda_desc(scales.view(torch.uint8))
        q.scales.dtype = _F8_E4M3
        q.global_ = _cuda_desc(glob)
        p = _params(activations)
        handle = _c.c_void_p()
        check(_fn("slip_linear_plan_create")(_c.byref(q), _c.byref(p), _c.byref(handle)))
        self._plan = handle.value

    @property
    def weight_bytes(self) -> int:
        """Device bytes of the planned weight."""
        out = _c.c_int64()
        check(_fn("slip_linear_plan_weight_bytes")(self._open(), _c.byref(out)))
        return out.value

    def _open(self) -> int:
        if self._plan is None:
            raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", "expected an open CudaLinearPlan, got one already closed")
        return self._plan

    def run(self, x: torch.Tensor, bias: Optional[torch.Tensor] = None, activations: Optional[str] = None,
            out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: bf16 or fp16 CUDA [..., K]; bias: float32 [N] or None; out: x's dtype [..., N] or None."""
        plan = self._open()
        x = _require_cuda(x, "x", (torch.bfloat16, torch.float16))
        if x.shape[-1] != self.k:
            raise SlipstreamError("SLIP_STATUS_SHAPE_MISMATCH", f"expected shape [..., {self.k}] for x, got {list(x.shape)}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.k)
        if x2.data_ptr() % 16:
            x2 = x2.clone()  # the kernels read x 16 bytes at a time
        y = out if out is not None else torch.empty(*lead, self.n, dtype=x.dtype, device=x.device)
        y2 = y.view(-1, self.n)
        p = _params(activations or self.activations)
        b = _require_cuda(bias, "bias", (torch.float32,)) if bias is not None else None
        tx, ty = _cuda_desc(x2), _cuda_desc(y2)
        tb = _cuda_desc(b) if b is not None else None
        check(_fn("slip_linear_plan_run_as")(plan, _c.byref(p), _c.byref(tx), _c.byref(tb) if tb else None,
                                             _c.byref(ty)))
        return y

    __call__ = run
