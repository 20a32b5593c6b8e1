"""Quantize-then-dequantize in torch, on any device, with the native codecs' arithmetic (the same
float32 operations in the same order, so the values are bit-identical to slip_quantize followed by
slip_dequantize; test_fakequant.py checks it). For emulating a low-bit linear where no kernel for
it exists on the device (Hopper has no FP4 tensor cores) and for calibration.

- nvfp4: 16-element blocks along the last axis, E4M3 block scales under one float32 global scale
  g = 2688 / amax (native/src/quant/nvfp4.cpp has the derivation and the operation order).
- int8_rows: one float32 scale per row (per token), amax / 127, codes rounded half-to-even and
  clamped to [-127, 127].
- hadamard: the orthonormal blocked Walsh-Hadamard transform along the last axis.
"""

from __future__ import annotations

import math

import torch

_FLT_MIN = 1.1754943508222875e-38
_ZERO_SCALE_F32 = 1.1920928955078125e-07  # what the codecs store for an all-zero row
_ZERO_SCALE_E4M3 = 0.125


# E2M1 magnitudes and the midpoints between them. At a midpoint round-to-nearest-even picks the
# even code: down at 0.25, 1.25, 2.5 and 5, up at 0.75, 1.75 and 3.5. bucketize puts a value equal
# to a boundary in the lower bucket, so the round-up midpoints sit one float32 step lower.
_E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
_ROUND_UP = (False, True, False, True, False, True, False)
_TABLES: dict = {}


def _tables(device):
    if device not in _TABLES:
        mids = torch.tensor(_MIDPOINTS, dtype=torch.float32)
        mids = torch.where(torch.tensor(_ROUND_UP), torch.nextafter(mids, torch.zeros(())), mids)  # float32 steps
        _TABLES[device] = (mids.to(device), torch.tensor(_E2M1, dtype=torch.float32, device=device))
    return _TABLES[device]


def _e2m1_round(a: torch.Tensor) -> torch.Tensor:
    """|x| rounded to the nearest E2M1 value (0, 0.5, 1, 1.5, 2, 3, 4, 6), ties to the even code,
    saturating at 6."""
    mids, values = _tables(a.device)
    return values[torch.bucketize(a, mids)]


def nvfp4(x: torch.Tensor, global_scale: float | None = None) -> torch.Tensor:
    """x through NVFP4 and back (float32 result). The last axis must be a multiple of 16."""
    if x.shape[-1] % 16:
        raise ValueError(f"nvfp4: expected the last axis a multiple of 16, got {x.shape[-1]}")
    x = x.float()
    if global_scale is None:
        amax = float(x.detach().abs().amax()) if x.numel() else 0.0
        g = torch.tensor(2688.0, dtype=torch.float32) / torch.tensor(max(amax, _FLT_MIN), dtype=torch.float32)
        g = g if math.isfinite(float(g)) else torch.tensor(1.0)
    else:
        g = torch.tensor(global_scale, dtype=torch.float32)
    g = g.to(x.device)
    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // 16, 16)
    amax16 = blocks.abs().amax(-1, keepdim=True)
    s = (g * (amax16 / 6.0)).to(torch.float8_e4m3fn).float()
    s = torch.where(s == 0, torch.full_like(s, _ZERO_SCALE_E4M3), s)
    eff = s / g
    q = blocks / eff
    codes = torch.copysign(_e2m1_round(q.abs()), q)
    return (codes * eff).reshape(x.shape)


def int8_rows(x: torch.Tensor) -> torch.Tensor:
    """x through per-row symmetric INT8 and back (float32 result)."""
    x = x.float()
    amax = x.abs().amax(-1, keepdim=True)
    scale = torch.where(amax > 0, amax / 127.0, torch.full_like(amax, _ZERO_SCALE_F32))
    return torch.clamp(torch.round(x / scale), -127, 127) * scale


def _hadamard_matrix(block: int, device) -> torch.Tensor:
    key = ("h", block, device)
    if key not in _TABLES:
        h = torch.ones(1, 1, dtype=torch.float64)
        while h.shape[0] < block:  # Sylvester: [[H, H], [H, -H]]
            h = torch.cat((torch.cat((h, h), 1), torch.cat((h, -h), 1)), 0)
        _TABLES[key] = (h / math.sqrt(block)).to(device=device, dtype=torch.float32)
    return _TABLES[key]


def hadamard(x: torch.Tensor, block: int) -> torch.Tensor:
    """Orthonormal blocked Walsh-Hadamard transform along the last axis (block a power of two
    dividing it; Sylvester order, as the native slip_hadamard); block 0 returns x. One float32
    matmul per block row: on a GPU that is tensor-core work, not a chain of elementwise passes."""
    if block == 0:
        return x
    if block & (block - 1) or x.shape[-1] % block:
        raise ValueError(f"hadamard: expected a power-of-two block dividing {x.shape[-1]}, got {block}")
    y = x.float().reshape(*x.shape[:-1], x.shape[-1] // block, block) @ _hadamard_matrix(block, x.device)
    return y.reshape(x.shape).to(x.dtype)
