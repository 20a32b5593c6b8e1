"""Attention over libslipstream (numpy in, numpy out), mirroring core/src/attention.

Layouts, GQA, causality (bottom-right aligned), masks, varlen and LSE are the C ABI's
(native/include/slipstream.h, "attention"). Each method's functions follow the shared helpers.
Arrays are float32 and C-contiguous; a torch CPU tensor passes as `t.numpy()` (no copy).
"""

from __future__ import annotations

import ctypes as _c
from typing import Optional

import numpy as np

from ._lib import SlipstreamError, SlipTensor, check, declare, tensor_from_numpy

# ---------------------------------------------------------------- shared helpers (every method)

LAYOUTS = {"HND": 0, "NHD": 1}
_S, _P = _c.c_int32, _c.POINTER
_T = _P(SlipTensor)


class SlipAttnParams(_c.Structure):
    _fields_ = [("layout", _c.c_int32), ("causal", _c.c_int32), ("scale", _c.c_float),
                ("reserved", _c.c_int32 * 5)]


_fns: dict = {}


def _fn(name: str, argtypes):
    """Declares an attention entry point once (each method passes its own prototype)."""
    if name not in _fns:
        _fns[name] = declare(name, _S, argtypes)
    return _fns[name]


def attn_params(layout: str = "HND", causal: bool = False, scale: Optional[float] = None) -> SlipAttnParams:
    """slip_attn_params from slip_attn_params_init, then the caller's options."""
    p = SlipAttnParams()
    check(_fn("slip_attn_params_init", [_P(SlipAttnParams)])(_c.byref(p)))
    if layout not in LAYOUTS:
        raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected one of {sorted(LAYOUTS)} for layout, got {layout!r}")
    p.layout = LAYOUTS[layout]
    p.causal = 1 if causal else 0
    if scale is not None:
        p.scale = scale
    return p


def as_input(x, name: str, dtypes=(np.float32,)) -> np.ndarray:
    """A C-contiguous array of one of `dtypes`, or an error naming the argument (no silent casts:
    a float64 q is a caller's mistake worth hearing about)."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # a torch CPU tensor
        x = x.detach().numpy()
    if not isinstance(x, np.ndarray):
        raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected a numpy array for {name}, got {type(x).__name__}")
    if x.dtype not in [np.dtype(d) for d in dtypes]:
        want = " or ".join(np.dtype(d).name for d in dtypes)
        raise SlipstreamError("SLIP_STATUS_DTYPE_MISMATCH", f"expected a {want} array for {name}, got {x.dtype}")
    return np.ascontiguousarray(x)


def optional_tensor(x: Optional[np.ndarray]):
    """(descriptor pointer or None, descriptor kept alive)."""
    if x is None:
        return None, None
    t = tensor_from_numpy(x)
    return _c.byref(t), t


def lse_shape(q: np.ndarray, layout: str, varlen: bool) -> tuple:
    """LSE is [B, Hq, Nq] (varlen: [Hq, total_q])."""
    if varlen:
        return (q.shape[1], q.shape[0])
    if q.ndim != 4:  # the native call names the shape problem; any shape gets us there
        return (0,)
    return (q.shape[0], q.shape[1], q.shape[2]) if layout == "HND" else (q.shape[0], q.shape[2], q.shape[1])


# ---------------------------------------------------------------- dense and block-sparse (FP32)

_DENSE = [_T, _T, _T, _T, _T, _T, _P(SlipAttnParams), _T, _T]
_BLOCK_SPARSE = [_T, _T, _T, _T, _T, _c.c_int64, _c.c_int64, _P(SlipAttnParams), _T, _T, _P(_c.c_double)]


def dense(q, k, v, *, layout: str = "HND", causal: bool = False, scale: Optional[float] = None,
          mask=None, cu_seqlens_q=None, cu_seqlens_k=None, return_lse: bool = False):
    """softmax(scale·QKᵀ + mask)·V in FP32 (slip_attn_dense). mask: bool/uint8 (True attends)
    or float32 (added; -inf blocks), [B or 1, Hq or 1, Nq, Nk]. Varlen: q [total_q, Hq, D],
    k/v [total_k, Hk, D] with int32 cu_seqlens_q/_k [B+1]. Returns out, or (out, lse)."""
    q, k, v = as_input(q, "q"), as_input(k, "k"), as_input(v, "v")
    if mask is not None:
        mask = as_input(mask, "mask", (np.float32, np.uint8, np.bool_))
        if mask.dtype == np.bool_:
            mask = mask.view(np.uint8)
    varlen = cu_seqlens_q is not None or cu_seqlens_k is not None
    cq = as_input(cu_seqlens_q, "cu_seqlens_q", (np.int32,)) if cu_seqlens_q is not None else None
    ck = as_input(cu_seqlens_k, "cu_seqlens_k", (np.int32,)) if cu_seqlens_k is not None else None
    out = np.empty_like(q)
    lse = np.empty(lse_shape(q, layout, varlen), dtype=np.float32) if return_lse else None
    p = attn_params(layout, causal, scale)
    tq, tk, tv, to = (tensor_from_numpy(a) for a in (q, k, v, out))
    (pm, _m), (pcq, _q), (pck, _k), (pl, _l) = (optional_tensor(x) for x in (mask, cq, ck, lse))
    check(_fn("slip_attn_dense", _DENSE)(_c.byref(tq), _c.byref(tk), _c.byref(tv), pm, pcq, pck,
                                         _c.byref(p), _c.byref(to), pl))
    return (out, lse) if return_lse else out


def block_sparse(q, k, v, block_mask, *, block_q: int, block_k: int, layout: str = "HND",
                 causal: bool = False, scale: Optional[float] = None, mask=None, return_lse: bool = False):
    """The dense numerics on the (query block, key block) pairs block_mask keeps (uint8/bool
    [B, Hq, ceil(Nq/block_q), ceil(Nk/block_k)]); dropped pairs are skipped. Causality is per
    token. Returns (out, density) or (out, lse, density); density = kept / causally allowed."""
    q, k, v = as_input(q, "q"), as_input(k, "k"), as_input(v, "v")
    block_mask = as_input(block_mask, "block_mask", (np.uint8, np.bool_)).view(np.uint8)
    if mask is not None:
        mask = as_input(mask, "mask", (np.float32, np.uint8, np.bool_))
        if mask.dtype == np.bool_:
            mask = mask.view(np.uint8)
    out = np.empty_like(q)
    lse = np.empty(lse_shape(q, layout, False), dtype=np.float32) if return_lse else None
    p = attn_params(layout, causal, scale)
    tq, tk, tv, to, tb = (tensor_from_numpy(a) for a in (q, k, v, out, block_mask))
    (pm, _m), (pl, _l) = optional_tensor(mask), optional_tensor(lse)
    density = _c.c_double(0.0)
    check(_fn("slip_attn_block_sparse", _BLOCK_SPARSE)(
        _c.byref(tq), _c.byref(tk), _c.byref(tv), pm, _c.byref(tb), int(block_q), int(block_k),
        _c.byref(p), _c.byref(to), pl, _c.byref(density)))
    return (out, lse, density.value) if return_lse else (out, density.value)


# --- sparse: SpargeAttention2 prediction + sparse attention, SLA2 (section owner: sparse)

class SlipSparseParams(_c.Structure):
    _fields_ = [("block_q", _c.c_int64), ("block_k", _c.c_int64), ("topk", _c.c_float),
                ("topp", _c.c_float), ("sim_threshold", _c.c_float), ("attention_sink", _c.c_int32),
                ("smooth_k", _c.c_int32), ("reserved", _c.c_int32 * 4)]


class SlipSlaParams(_c.Structure):
    _fields_ = [("block_q", _c.c_int64), ("block_k", _c.c_int64), ("critical", _c.c_float),
                ("negligible", _c.c_float), ("feature_map", _c.c_int32), ("smooth_k", _c.c_int32),
                ("reserved", _c.c_int32 * 4)]


FEATURE_MAPS = {"softmax": 0, "elu": 1, "relu": 2}
_PRED = [_T, _T, _P(SlipAttnParams), _P(SlipSparseParams), _T, _P(_c.c_double)]
_SPARSE = [_T, _T, _T, _T, _P(SlipAttnParams), _P(SlipSparseParams), _T, _T, _T, _P(_c.c_double)]
_ROUTE = [_T, _T, _T, _T, _P(SlipAttnParams), _P(SlipSlaParams), _T, _P(_c.c_double)]
_SLA_FWD = [_T, _T, _T, _T, _T, _T, _T, _P(SlipAttnParams), _P(SlipSlaParams), _T]
_SLA_BWD = [_T] * 8 + [_P(SlipAttnParams), _P(SlipSlaParams)] + [_T] * 6


def sparse_params(**options) -> SlipSparseParams:
    """slip_sparse_params from slip_sparse_params_init (block 128×64, topk 0.5, topp off, θ -0.1,
    smooth-K on), then the options given: block_q, block_k, topk, topp, sim_threshold,
    attention_sink, smooth_k."""
    p = SlipSparseParams()
    check(_fn("slip_sparse_params_init", [_P(SlipSparseParams)])(_c.byref(p)))
    return _override(p, options, "sparse")


def sla_params(**options) -> SlipSlaParams:
    """slip_sla_params from slip_sla_params_init (block 128×64, 5% critical, none negligible,
    softmax φ, smooth-K on), then the options: block_q, block_k, critical, negligible,
    feature_map ("softmax" | "elu" | "relu"), smooth_k."""
    p = SlipSlaParams()
    check(_fn("slip_sla_params_init", [_P(SlipSlaParams)])(_c.byref(p)))
    if "feature_map" in options:
        fm = options["feature_map"]
        if fm not in FEATURE_MAPS:
            raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected one of {sorted(FEATURE_MAPS)} for feature_map, got {fm!r}")
        options = {**options, "feature_map": FEATURE_MAPS[fm]}
    return _override(p, options, "sla")


def _override(p, options: dict, what: str):
    names = {f[0] for f in p._fields_} - {"reserved"}
    for key, value in options.items():
        if key not in names:
            raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected one of {sorted(names)} for a {what} option, got {key!r}")
        setattr(p, key, int(value) if isinstance(value, bool) else value)
    return p


def _blocks(q: np.ndarray, k: np.ndarray, layout: str, bq: int, bk: int) -> tuple:
    """[B, Hq, nQb, nKb]; (0,) for a wrong rank (the native call names the problem)."""
    if q.ndim != 4 or k.ndim != 4 or bq < 1 or bk < 1:
        return (0,)
    b, hq, nq = (q.shape[0], q.shape[1], q.shape[2]) if layout == "HND" else (q.shape[0], q.shape[2], q.shape[1])
    nk = k.shape[2] if layout == "HND" else k.shape[1]
    return (b, hq, -(-nq // bq), -(-nk // bk))


def sparse_predict(q, k, *, layout: str = "HND", causal: bool = False, scale: Optional[float] = None, **options):
    """SpargeAttention2's block mask (uint8 [B, Hq, nQb, nKb], 1 = keep) and its sparsity over the
    causally allowed pairs. options: see sparse_params (topk and topp both on = the hybrid)."""
    q, k = as_input(q, "q"), as_input(k, "k")
    sp, p = sparse_params(**options), attn_params(layout, causal, scale)
    mask = np.zeros(_blocks(q, k, layout, sp.block_q, sp.block_k), dtype=np.uint8)
    tq, tk, tm = (tensor_from_numpy(a) for a in (q, k, mask))
    sparsity = _c.c_double(0.0)
    check(_fn("slip_attn_sparse_predict", _PRED)(_c.byref(tq), _c.byref(tk), _c.byref(p), _c.byref(sp),
                                                 _c.byref(tm), _c.byref(sparsity)))
    return mask, sparsity.value


def sparse(q, k, v, *, layout: str = "HND", causal: bool = False, scale: Optional[float] = None, mask=None,
           return_lse: bool = False, **options):
    """Prediction, then block-sparse attention on the mask. Returns (out, block_mask, sparsity),
    or (out, lse, block_mask, sparsity) with return_lse."""
    q, k, v = as_input(q, "q"), as_input(k, "k"), as_input(v, "v")
    if mask is not None:
        mask = as_input(mask, "mask", (np.float32, np.uint8, np.bool_))
        mask = mask.view(np.uint8) if mask.dtype == np.bool_ else mask
    sp, p = sparse_params(**options), attn_params(layout, causal, scale)
    bm = np.zeros(_blocks(q, k, layout, sp.block_q, sp.block_k), dtype=np.uint8)
    out = np.empty_like(q)
    lse = np.empty(lse_shape(q, layout, False), dtype=np.float32) if return_lse else None
    tq, tk, tv, to, tb = (tensor_from_numpy(a) for a in (q, k, v, out, bm))
    (pm, _m), (pl, _l) = optional_tensor(mask), optional_tensor(lse)
    sparsity = _c.c_double(0.0)
    check(_fn("slip_attn_sparse", _SPARSE)(_c.byref(tq), _c.byref(tk), _c.byref(tv), pm, _c.byref(p),
                                           _c.byref(sp), _c.byref(to), pl, _c.byref(tb), _c.byref(sparsity)))
    return (out, lse, bm, sparsity.value) if return_lse else (out, bm, sparsity.value)


def sla_route(q, k, *, router_wq=None, router_wk=None, layout: str = "HND", scale: Optional[float] = None,
              **options):
    """SLA2's router: uint8 [B, Hq, nQb, nKb] of 0 negligible / 1 marginal / 2 critical, and the
    fraction not critical. router_wq/_wk: float32 [D, D] projections (None: identity)."""
    q, k = as_input(q, "q"), as_input(k, "k")
    wq = as_input(router_wq, "router_wq") if router_wq is not None else None
    wk = as_input(router_wk, "router_wk") if router_wk is not None else None
    sp, p = sla_params(**options), attn_params(layout, False, scale)
    route = np.zeros(_blocks(q, k, layout, sp.block_q, sp.block_k), dtype=np.uint8)
    tq, tk, tr = (tensor_from_numpy(a) for a in (q, k, route))
    (pwq, _a), (pwk, _b) = optional_tensor(wq), optional_tensor(wk)
    sparsity = _c.c_double(0.0)
    check(_fn("slip_sla_route_predict", _ROUTE)(_c.byref(tq), _c.byref(tk), pwq, pwk, _c.byref(p), _c.byref(sp),
                                                _c.byref(tr), _c.byref(sparsity)))
    return route, sparsity.value


def _sla_inputs(q, k, v, route, alpha, proj_w, proj_b):
    arrays = [as_input(q, "q"), as_input(k, "k"), as_input(v, "v"), as_input(route, "route", (np.uint8,)),
              as_input(alpha, "alpha"), as_input(proj_w, "proj_w")]
    b = as_input(proj_b, "proj_b") if proj_b is not None else None
    return arrays, b


def sla_forward(q, k, v, route, alpha, proj_w, proj_b=None, *, layout: str = "HND", causal: bool = False,
                scale: Optional[float] = None, **options):
    """O = α·Oˢ + (1 − α)·(Oˡ·Wpᵀ + bp): alpha float32 [Hq], proj_w [D, D], proj_b [D] or None.
    Not causal (passing causal=True gets the native refusal)."""
    arrays, b = _sla_inputs(q, k, v, route, alpha, proj_w, proj_b)
    sp, p = sla_params(**options), attn_params(layout, causal, scale)
    out = np.empty_like(arrays[0])
    ts = [tensor_from_numpy(a) for a in arrays]
    pb, _b = optional_tensor(b)
    to = tensor_from_numpy(out)
    check(_fn("slip_sla_forward", _SLA_FWD)(*(_c.byref(t) for t in ts), pb, _c.byref(p), _c.byref(sp), _c.byref(to)))
    return out


def sla_backward(q, k, v, route, alpha, proj_w, proj_b, dout, *, layout: str = "HND", causal: bool = False,
                 scale: Optional[float] = None, **options):
    """Gradients of sum(dout ⊙ O) with the route fixed (no gradient reaches the router):
    a dict of dq, dk, dv, dalpha, dproj_w and, when proj_b is given, dproj_b."""
    arrays, b = _sla_inputs(q, k, v, route, alpha, proj_w, proj_b)
    go = as_input(dout, "dout")
    sp, p = sla_params(**options), attn_params(layout, causal, scale)
    g = {"dq": np.zeros_like(arrays[0]), "dk": np.zeros_like(arrays[1]), "dv": np.zeros_like(arrays[2]),
         "dalpha": np.zeros_like(arrays[4]), "dproj_w": np.zeros_like(arrays[5])}
    if b is not None:
        g["dproj_b"] = np.zeros_like(b)
    ts = [tensor_from_numpy(a) for a in arrays]
    tg = tensor_from_numpy(go)
    pb, _b = optional_tensor(b)
    gt = [tensor_from_numpy(g[n]) for n in ("dq", "dk", "dv", "dalpha", "dproj_w")]
    pdb, _db = optional_tensor(g.get("dproj_b"))
    check(_fn("slip_sla_backward", _SLA_BWD)(*(_c.byref(t) for t in ts), pb, _c.byref(tg), _c.byref(p), _c.byref(sp),
                                             *(_c.byref(t) for t in gt), pdb))
    return g


# --- sage: SageAttention2 / 2++ forward and SageBwd backward (section owner: sage)

class SlipSageParams(_c.Structure):
    _fields_ = [("variant", _c.c_int32), ("granularity", _c.c_int32), ("smooth_k", _c.c_int32),
                ("smooth_q", _c.c_int32), ("block_q", _c.c_int32), ("block_k", _c.c_int32),
                ("warp_q", _c.c_int32), ("quantize", _c.c_int32), ("reserved", _c.c_int32 * 4)]


SAGE_VARIANTS = {"sage2": 0, "sage2pp": 1}
SAGE_GRANULARITIES = {"block": 0, "warp": 1, "thread": 2}
_SAGE = [_T, _T, _T, _T, _P(SlipAttnParams), _P(SlipSageParams), _T, _T]
_SAGE_BWD = [_T, _T, _T, _T, _T, _T, _T, _P(SlipAttnParams), _P(SlipSageParams), _T, _T, _T]


def sage_params(variant: Optional[str] = None, granularity: Optional[str] = None, smooth_k: Optional[bool] = None,
                smooth_q: Optional[bool] = None, block_q: Optional[int] = None, block_k: Optional[int] = None,
                warp_q: Optional[int] = None, quantize: Optional[bool] = None) -> SlipSageParams:
    """slip_sage_params from slip_sage_params_init; None keeps the native default (sage2, thread,
    smooth_k on, smooth_q off, tiles 128 x 64, warps of 32, quantized). Values are checked natively."""
    sp = SlipSageParams()
    check(_fn("slip_sage_params_init", [_P(SlipSageParams)])(_c.byref(sp)))
    for name, table, value in (("variant", SAGE_VARIANTS, variant), ("granularity", SAGE_GRANULARITIES, granularity)):
        if value is not None:
            if value not in table:
                raise SlipstreamError("SLIP_STATUS_INVALID_ARGUMENT", f"expected one of {sorted(table)} for {name}, got {value!r}")
            setattr(sp, name, table[value])
    for name, value in (("smooth_k", smooth_k), ("smooth_q", smooth_q), ("quantize", quantize)):
        if value is not None:
            setattr(sp, name, 1 if value else 0)
    for name, value in (("block_q", block_q), ("block_k", block_k), ("warp_q", warp_q)):
        if value is not None:
            setattr(sp, name, int(value))
    return sp


def _sage_mask(mask):
    if mask is None:
        return None
    mask = as_input(mask, "mask", (np.float32, np.uint8, np.bool_))
    return mask.view(np.uint8) if mask.dtype == np.bool_ else mask


def sage(q, k, v, *, layout: str = "HND", causal: bool = False, scale: Optional[float] = None, mask=None,
         return_lse: bool = False, **options):
    """SageAttention2/2++ forward, emulating the GPU numerics (slip_attn_sage): INT8 Q/K with
    scales per row group, FP8 E4M3 P~ and per-channel V, FP22 (sage2) or FP16 (sage2pp) inner
    accumulator per key tile. options: sage_params' keywords. Returns out, or (out, lse); lse is
    the true (smooth-K corrected) natural-log softmax denominator, [B, Hq, Nq]."""
    q, k, v = as_input(q, "q"), as_input(k, "k"), as_input(v, "v")
    mask = _sage_mask(mask)
    sp = sage_params(**options)
    out = np.empty_like(q)
    lse = np.empty(lse_shape(q, layout, False), dtype=np.float32) if return_lse else None
    p = attn_params(layout, causal, scale)
    tq, tk, tv, to = (tensor_from_numpy(a) for a in (q, k, v, out))
    (pm, _m), (pl, _l) = optional_tensor(mask), optional_tensor(lse)
    check(_fn("slip_attn_sage", _SAGE)(_c.byref(tq), _c.byref(tk), _c.byref(tv), pm, _c.byref(p), _c.byref(sp),
                                       _c.byref(to), pl))
    return (out, lse) if return_lse else out


def sage_block_sparse(q, k, v, block_mask, *, layout: str = "HND", causal: bool = False, scale: Optional[float] = None,
                      return_lse: bool = False, **options):
    """sage() on the (query tile, key tile) pairs block_mask keeps (slip_attn_sage_block_sparse):
    U8 or bool [B, Hq, ceil(Nq/block_q), ceil(Nk/block_k)], tiles of sage_params' block_q x block_k."""
    q, k, v = as_input(q, "q"), as_input(k, "k"), as_input(v, "v")
    bm = as_input(block_mask, "block_mask", (np.uint8, np.bool_))
    bm = bm.view(np.uint8) if bm.dtype == np.bool_ else bm
    sp = sage_params(**options)
    out = np.empty_like(q)
    lse = np.empty(lse_shape(q, layout, False), dtype=np.float32) if return_lse else None
    p = attn_params(layout, causal, scale)
    tq, tk, tv, tm, to = (tensor_from_numpy(a) for a in (q, k, v, bm, out))
    pl, _l = optional_tensor(lse)
    check(_fn("slip_attn_sage_block_sparse", _SAGE)(_c.byref(tq), _c.byref(tk), _c.byref(tv), _c.byref(tm), _c.byref(p),
                                                    _c.byref(sp), _c.byref(to), pl))
    return (out, lse) if return_lse else out


_LOWBIT = [_T, _T, _T, _T, _P(SlipAttnParams), _T]


def lowbit(q, k, v, block_mask=None, *, layout: str = "HND", scale: Optional[float] = None):
    """The CPU's fast low-bit attention (slip_attn_lowbit): INT8 Q/K per token after smooth-K, FP32
    softmax, BF16 P and V (AMX tiles where the CPU has them); block_mask (uint8/bool [B, Hq,
    ceil(Nq/128), ceil(Nk/64)]) makes it block-sparse. Not causal."""
    q, k, v = as_input(q, "q"), as_input(k, "k"), as_input(v, "v")
    out = np.empty_like(q)
    p = attn_params(layout, False, scale)
    tq, tk, tv, to = (tensor_from_numpy(a) for a in (q, k, v, out))
    bm = None if block_mask is None else as_input(block_mask, "block_mask", (np.uint8, np.bool_)).view(np.uint8)
    pb, _b = optional_tensor(bm)
    check(_fn("slip_attn_lowbit", _LOWBIT)(_c.byref(tq), _c.byref(tk), _c.byref(tv), pb, _c.byref(p), _c.byref(to)))
    return out


def sage_backward(q, k, v, out, dout, lse, *, layout: str = "HND", causal: bool = False,
                  scale: Optional[float] = None, mask=None, **options):
    """SageBwd (slip_attn_sage_backward): (dq, dk, dv) given the forward's out and lse. S, dV, dQ
    and dK in INT8 with per-block scales, dP = dO·Vᵀ in FP32; quantize=False runs it in FP32.
    dk, dv have k's and v's shapes (GQA: summed over each group's query heads)."""
    q, k, v = as_input(q, "q"), as_input(k, "k"), as_input(v, "v")
    out, dout, lse = as_input(out, "out"), as_input(dout, "dout"), as_input(lse, "lse")
    mask = _sage_mask(mask)
    sp = sage_params(**options)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    p = attn_params(layout, causal, scale)
    ts = [tensor_from_numpy(a) for a in (q, k, v, out, dout, lse)]
    pm, _m = optional_tensor(mask)
    tg = [tensor_from_numpy(a) for a in (dq, dk, dv)]
    check(_fn("slip_attn_sage_backward", _SAGE_BWD)(*(_c.byref(t) for t in ts), pm, _c.byref(p), _c.byref(sp),
                                                    *(_c.byref(t) for t in tg)))
    return dq, dk, dv
