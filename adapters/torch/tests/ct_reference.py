"""What compressed-tensors writes for one Linear weight, re-derived in numpy float32.

Written from compressed-tensors' documented behaviour at commit ac8e2ba8 (calculate_qparams,
generate_gparam, _quantize, the FP4 and int pack helpers) and kept to the same order of float32
operations, because bit-exactness depends on it:

- the observed range always includes 0: amax = max(|min(x, 0)|, |max(x, 0)|);
- symmetric scales divide amax by half the code range: INT8 by 127.5 (codes clamped to
  [-128, 127]), INT4 by 7.5 ([-8, 7]), FP8 E4M3 by 448, FP4 by 6;
- NVFP4: global g = 448*6 / amax(tensor) (float32); block scale = g * (amax_16 / 6), clamped to
  ±448 and cast to E4M3 (nearest even); the value divided is x / (e4m3 / g);
- a scale that comes out 0 is replaced by its dtype's eps (E4M3: 0.125; float32: 2^-23), so
  decoders never divide by zero.

This is the independent reference `slipstream quantize` is checked against; it shares no code
with libslipstream.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

F32 = np.float32
E4M3 = ml_dtypes.float8_e4m3fn
E2M1_VALUES = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=F32)


def _amax(x: np.ndarray, axis=None) -> np.ndarray:
    lo = np.minimum(x.min(axis=axis), F32(0))
    hi = np.maximum(x.max(axis=axis), F32(0))
    return np.maximum(np.abs(lo), np.abs(hi)).astype(F32)


def _eps_for_zero(scale: np.ndarray, eps: float) -> np.ndarray:
    return np.where(scale == 0, F32(eps), scale).astype(scale.dtype)


def _rne_e2m1_codes(v: np.ndarray) -> np.ndarray:
    """Nearest E2M1 magnitude with ties to the even code, as 4-bit codes (bit 3 = sign)."""
    a = np.abs(v).astype(F32)
    idx = np.zeros(a.shape, dtype=np.uint8)
    # Thresholds between neighbours; a tie goes to the neighbour with the even index.
    for i, (mid, tie_up) in enumerate(
        [(0.25, False), (0.75, True), (1.25, False), (1.75, True), (2.5, False), (3.5, True), (5.0, False)]
    ):
        idx = np.where((a > mid) | ((a == mid) & tie_up), np.uint8(i + 1), idx)
    sign = (np.signbit(v) & (idx != 0)) | (np.signbit(v) & (idx == 0))
    return (idx | (sign.astype(np.uint8) << 3)).astype(np.uint8)


def _pack_nibbles(codes: np.ndarray) -> np.ndarray:
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def nvfp4(w: np.ndarray) -> dict[str, np.ndarray]:
    """weight_packed (uint8 [N, K/2]), weight_scale (E4M3 bits, uint8 [N, K/16]),
    weight_global_scale (float32 [1])."""
    w = w.astype(F32)
    n, k = w.shape
    amax = max(_amax(w), np.finfo(F32).tiny)
    g = F32(F32(448.0 * 6.0) / F32(amax))
    blocks = w.reshape(n, k // 16, 16)
    local = (g * (_amax(blocks, axis=-1) / F32(6.0))).astype(F32)
    scale = np.clip(local, -448.0, 448.0).astype(F32).astype(E4M3)
    scale = np.where(scale.astype(F32) == 0, F32(0.125), scale.astype(F32)).astype(E4M3)
    effective = (scale.astype(F32) / g).astype(F32)
    scaled = np.clip((blocks / effective[..., None]).astype(F32), -6.0, 6.0)
    codes = _rne_e2m1_codes(scaled).reshape(n, k)
    return {
        "weight_packed": _pack_nibbles(codes),
        "weight_scale": scale.view(np.uint8),
        "weight_global_scale": np.array([g], dtype=F32),
    }


def int8_channel(w: np.ndarray) -> dict[str, np.ndarray]:
    """weight (int8 [N, K]) and weight_scale (float32 [N, 1])."""
    w = w.astype(F32)
    scale = _eps_for_zero((_amax(w, axis=1) / F32(127.5)).astype(F32), np.finfo(F32).eps)[:, None]
    q = np.rint(np.clip((w / scale).astype(F32), -128, 127)).astype(np.int8)
    return {"weight": q, "weight_scale": scale}


def fp8_channel(w: np.ndarray) -> dict[str, np.ndarray]:
    """weight (E4M3 bits, uint8 [N, K]) and weight_scale (float32 [N, 1])."""
    w = w.astype(F32)
    scale = _eps_for_zero((_amax(w, axis=1) / F32(448.0)).astype(F32), np.finfo(F32).eps)[:, None]
    q = np.clip((w / scale).astype(F32), -448.0, 448.0).astype(E4M3)
    return {"weight": q.view(np.uint8), "weight_scale": scale}


def w4a16(w: np.ndarray, group: int = 128) -> dict[str, np.ndarray]:
    """weight_packed (int32 [N, K/8]), weight_scale (float32 [N, K/group]), weight_shape."""
    w = w.astype(F32)
    n, k = w.shape
    groups = w.reshape(n, k // group, group)
    scale = _eps_for_zero((_amax(groups, axis=-1) / F32(7.5)).astype(F32), np.finfo(F32).eps)
    q = np.rint(np.clip((groups / scale[..., None]).astype(F32), -8, 7)).astype(np.int64).reshape(n, k)
    u = (q + 8).astype(np.uint32).reshape(n, k // 8, 8)
    packed = np.zeros((n, k // 8), dtype=np.uint32)
    for i in range(8):
        packed |= u[..., i] << np.uint32(4 * i)
    return {
        "weight_packed": packed.view(np.int32),
        "weight_scale": scale,
        "weight_shape": np.array([n, k], dtype=np.int64),
    }
