"""Autograd over the native attention kernels (issue #8): SageBwd, block-sparse, SLA2.

    out = sage_attention(q, k, v)                               # SageAttention2 fwd, SageBwd bwd
    out = block_sparse_attention(q, k, v, block_mask)           # SpargeAttention2 tiles 128 x 64
    sla = SLA2Attention(num_heads=2, head_dim=64); out = sla(q, k, v)

q [B, Hq, Nq, D] (HND) or [B, Nq, Hq, D] (NHD); k, v [B, Hk, Nk, D] likewise, Hq a multiple of
Hk. Any float dtype and device: the CPU kernels run in float32 (numpy through ctypes) and results
come back in q's dtype and device. The forward/backward split per method:

- Sage: native slip_attn_sage forward (INT8 QK, FP8 PV emulation) saving out and lse; native
  slip_attn_sage_backward (SageBwd: INT8 S, dV, dQ, dK with per-block scales; dP in FP32).
- Block-sparse: native slip_attn_block_sparse forward (FP32). The library has no block-sparse
  backward, so the backward is written here in torch: the exact softmax-attention gradient with
  the kept tiles expanded to a token mask (dense-masked math, not tile skipping: it costs a
  dense backward). float64 inputs run the forward in torch too, so gradcheck applies.
- SLA2: native slip_sla_route_predict + slip_sla_forward, native slip_sla_backward for q, k, v,
  alpha, proj_w, proj_b. The route is a hard Top-k with no gradient; the router learns through a
  straight-through estimator (see SLA2Attention).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from .. import attention as _attn
from .. import sla2
from .._lib import SlipstreamError

__all__ = ["SageAttentionFunction", "sage_attention", "BlockSparseAttentionFunction", "block_sparse_attention",
           "SLA2Attention", "sla2_router_scores"]

_BAD = "SLIP_STATUS_INVALID_ARGUMENT"


# ---------------------------------------------------------------- checks and conversions

def _fail(message: str, code: str = _BAD):
    raise SlipstreamError(code, message)


def _check_tensor(t, name: str, ndim: int):
    if not isinstance(t, torch.Tensor):
        _fail(f"expected a torch.Tensor for {name}, got {type(t).__name__}")
    if not t.is_floating_point():
        _fail(f"expected a floating-point tensor for {name}, got {t.dtype}", "SLIP_STATUS_DTYPE_MISMATCH")
    if t.dim() != ndim:
        _fail(f"expected a {ndim}-D tensor for {name}, got shape {tuple(t.shape)}")
    # The native calls would name a NaN too, but only after a float32 copy; torch's own path
    # (float64, the block-sparse backward) would otherwise return NaN gradients silently.
    if not bool(torch.isfinite(t.detach()).all()):
        _fail(f"expected finite values in {name}, found NaN or Inf", "SLIP_STATUS_NON_FINITE")


def _check_qkv(q, k, v, layout: str) -> None:
    if layout not in _attn.LAYOUTS:
        _fail(f"expected one of {sorted(_attn.LAYOUTS)} for layout, got {layout!r}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(t, name, 4)
    h_ax, n_ax = (1, 2) if layout == "HND" else (2, 1)
    if k.shape != v.shape:
        _fail(f"expected v of k's shape {tuple(k.shape)}, got {tuple(v.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
        _fail(f"expected k with q's batch {q.shape[0]} and head dim {q.shape[3]}, got shape {tuple(k.shape)}")
    if k.shape[h_ax] == 0 or q.shape[h_ax] % k.shape[h_ax]:
        _fail(f"expected k's heads ({k.shape[h_ax]}) to divide q's ({q.shape[h_ax]}) in layout {layout}")
    if q.shape[n_ax] == 0 or k.shape[n_ax] == 0:
        _fail(f"expected non-empty sequences, got q {tuple(q.shape)} and k {tuple(k.shape)}")


def _np32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


def _like(a: np.ndarray, ref: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(a).to(device=ref.device, dtype=ref.dtype)


def _hnd(x: torch.Tensor, layout: str) -> torch.Tensor:
    return x if layout == "HND" else x.transpose(1, 2)


def _scale(scale: Optional[float], d: int) -> float:
    return float(scale) if scale else 1.0 / math.sqrt(d)


def _repeat_kv(x: torch.Tensor, hq: int) -> torch.Tensor:
    """[B, Hk, N, D] to [B, Hq, N, D]: query head h reads kv head h // (Hq / Hk)."""
    return x if x.shape[1] == hq else x.repeat_interleave(hq // x.shape[1], dim=1)


def _sum_groups(x: torch.Tensor, hk: int) -> torch.Tensor:
    b, hq, n, d = x.shape
    return x if hq == hk else x.reshape(b, hk, hq // hk, n, d).sum(dim=2)


# ---------------------------------------------------------------- SageAttention2 forward + SageBwd

class SageAttentionFunction(torch.autograd.Function):
    """apply(q, k, v, causal, scale, layout, options): SageAttention2 forward (native, quantized),
    SageBwd backward (native). options: a dict of attention.sage_params keywords (variant,
    granularity, smooth_k, block_q, block_k, warp_q, quantize) shared by both passes."""

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, scale: Optional[float], layout: str, options: Optional[dict]):
        options = dict(options or {})
        q32, k32, v32 = _np32(q), _np32(k), _np32(v)
        out, lse = _attn.sage(q32, k32, v32, layout=layout, causal=causal, scale=scale, return_lse=True, **options)
        # The backward's D = rowsum(dO * out) must see the forward's own out (quantized), in
        # float32 even for half inputs, or dS would not sum to zero per row.
        ctx.arrays = (q32, k32, v32, out, lse)
        ctx.conf = (causal, scale, layout, options)
        ctx.refs = tuple(torch.empty(0, dtype=t.dtype, device=t.device) for t in (q, k, v))
        return _like(out, q)

    @staticmethod
    def backward(ctx, dout):
        q32, k32, v32, out, lse = ctx.arrays
        causal, scale, layout, options = ctx.conf
        options = {k: val for k, val in options.items() if k != "smooth_q"}  # forward-only (see the C API)
        dq, dk, dv = _attn.sage_backward(q32, k32, v32, out, _np32(dout), lse, layout=layout, causal=causal,
                                         scale=scale, **options)
        grads = [_like(g, ref) if n else None for g, ref, n in zip((dq, dk, dv), ctx.refs, ctx.needs_input_grad)]
        return (*grads, None, None, None, None)


def sage_attention(q, k, v, causal: bool = False, scale: Optional[float] = None, layout: str = "HND",
                   **options) -> torch.Tensor:
    """softmax(scale·QKᵀ)V with SageAttention2's INT8/FP8 forward and SageBwd's INT8 backward.
    options: attention.sage_params keywords (quantize=False gives the same tiling in FP32)."""
    _check_qkv(q, k, v, layout)
    return SageAttentionFunction.apply(q, k, v, bool(causal), scale, layout, options)


# ---------------------------------------------------------------- block-sparse (exact math on kept tiles)

def _token_mask(block_mask: torch.Tensor, nq: int, nk: int, bq: int, bk: int, causal: bool) -> torch.Tensor:
    """Bool [B, Hq, Nq, Nk]: the kept tiles, and causality per token (bottom-right aligned)."""
    m = block_mask.to(torch.bool).repeat_interleave(bq, dim=2)[:, :, :nq].repeat_interleave(bk, dim=3)[..., :nk]
    if causal:
        i = torch.arange(nq, device=m.device).unsqueeze(1)
        j = torch.arange(nk, device=m.device).unsqueeze(0)
        m = m & (j <= i + (nk - nq))
    return m


def _masked_forward(q, k, v, allowed, scale):
    """HND: (out, lse) of attention restricted to `allowed`; rows with nothing allowed give 0, -inf."""
    s = (q @ _repeat_kv(k, q.shape[1]).transpose(-1, -2)) * scale
    s = s.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - torch.where(torch.isinf(lse), torch.zeros_like(lse), lse).unsqueeze(-1))
    return p @ _repeat_kv(v, q.shape[1]), lse


def _masked_backward(q, k, v, out, lse, dout, allowed, scale):
    """The softmax-attention gradient with P recomputed from lse (FlashAttention's backward):
    dV = Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O)), dQ = s·dS K, dK = s·dSᵀ Q."""
    hq, hk = q.shape[1], k.shape[1]
    kr, vr = _repeat_kv(k, hq), _repeat_kv(v, hq)
    s = (q @ kr.transpose(-1, -2)) * scale
    safe = torch.where(torch.isinf(lse), torch.full_like(lse, float("inf")), lse)  # dead rows: P = 0
    p = torch.exp(s - safe.unsqueeze(-1)).masked_fill(~allowed, 0.0)
    dv = p.transpose(-1, -2) @ dout
    dp = dout @ vr.transpose(-1, -2)
    ds = p * (dp - (dout * out).sum(dim=-1, keepdim=True))
    dq = (ds @ kr) * scale
    dk = (ds.transpose(-1, -2) @ q) * scale
    return dq, _sum_groups(dk, hk), _sum_groups(dv, hk)


class BlockSparseAttentionFunction(torch.autograd.Function):
    """apply(q, k, v, block_mask, causal, scale, layout, block_q, block_k): attention on the
    (query tile, key tile) pairs block_mask keeps ([B, Hq, ceil(Nq/block_q), ceil(Nk/block_k)],
    bool or uint8; no gradient). Forward native FP32 (float64 inputs: torch), backward torch."""

    @staticmethod
    def forward(ctx, q, k, v, block_mask, causal: bool, scale: Optional[float], layout: str, block_q: int,
                block_k: int):
        d = q.shape[-1]
        qh, kh, vh = _hnd(q, layout), _hnd(k, layout), _hnd(v, layout)
        if q.dtype == torch.float64:
            allowed = _token_mask(block_mask, qh.shape[2], kh.shape[2], block_q, block_k, causal)
            out_h, lse = _masked_forward(qh, kh, vh, allowed, _scale(scale, d))
            out = out_h if layout == "HND" else out_h.transpose(1, 2)
        else:
            bm = np.ascontiguousarray(block_mask.detach().to("cpu", torch.uint8).numpy())
            o, lse_np, _ = _attn.block_sparse(_np32(q), _np32(k), _np32(v), bm, block_q=block_q, block_k=block_k,
                                              layout=layout, causal=causal, scale=scale, return_lse=True)
            # The backward's rowsum(dO * out) takes the float32 out, not one rounded to q's dtype.
            out, lse = torch.from_numpy(o).to(q.device), torch.from_numpy(lse_np).to(q.device)
        ctx.save_for_backward(q, k, v, out, lse, block_mask)
        ctx.conf = (causal, scale, layout, block_q, block_k)
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse, block_mask = ctx.saved_tensors
        causal, scale, layout, bq, bk = ctx.conf
        work = torch.float64 if q.dtype == torch.float64 else torch.float32
        qh, kh, vh, oh, gh = (_hnd(t, layout).to(work) for t in (q, k, v, out, dout))
        allowed = _token_mask(block_mask.to(qh.device), qh.shape[2], kh.shape[2], bq, bk, causal)
        dq, dk, dv = _masked_backward(qh, kh, vh, oh, lse.to(work), gh, allowed, _scale(scale, q.shape[-1]))
        back = [None if t is None else (t if layout == "HND" else t.transpose(1, 2)) for t in (dq, dk, dv)]
        need = ctx.needs_input_grad
        grads = [g.to(ref.dtype) if n else None for g, ref, n in zip(back, (q, k, v), need[:3])]
        return (*grads, None, None, None, None, None, None)


def block_sparse_attention(q, k, v, block_mask=None, causal: bool = False, scale: Optional[float] = None,
                           layout: str = "HND", block_q: int = 128, block_k: int = 64, **predict_options):
    """Attention on the kept (block_q x block_k) tiles. block_mask None: SpargeAttention2's
    prediction (attention.sparse_predict with predict_options: topk, topp, ...) on the detached
    q and k, as the paper's mask is predicted, not learned."""
    _check_qkv(q, k, v, layout)
    if block_mask is None:
        block_mask, _ = _attn.sparse_predict(_np32(q), _np32(k), layout=layout, causal=causal, scale=scale,
                                             block_q=block_q, block_k=block_k, **predict_options)
        block_mask = torch.from_numpy(block_mask)
    if not isinstance(block_mask, torch.Tensor):
        block_mask = torch.as_tensor(np.asarray(block_mask))
    hq, nq = (q.shape[1], q.shape[2]) if layout == "HND" else (q.shape[2], q.shape[1])
    nk = k.shape[2] if layout == "HND" else k.shape[1]
    want = (q.shape[0], hq, -(-nq // block_q), -(-nk // block_k))
    if tuple(block_mask.shape) != want:
        _fail(f"expected block_mask of shape {want} (tiles of {block_q} x {block_k}), got {tuple(block_mask.shape)}")
    if block_mask.dtype not in (torch.bool, torch.uint8):
        _fail(f"expected a bool or uint8 tensor for block_mask, got {block_mask.dtype}", "SLIP_STATUS_DTYPE_MISMATCH")
    return BlockSparseAttentionFunction.apply(q, k, v, block_mask, bool(causal), scale, layout, block_q, block_k)


# ---------------------------------------------------------------- SLA2

def sla2_router_scores(q, k, router_wq, router_wk, *, block_q: int = 128, block_k: int = 64,
                       scale: Optional[float] = None, smooth_k: bool = True, layout: str = "HND") -> torch.Tensor:
    """SLA2's soft router, differentiable in torch: R = softmax(scale·(q̄ Wqᵀ)(k̄ Wkᵀ)ᵀ) per
    query-block row, [B, Hq, nQb, nKb] (k̄ after smooth-K): the scores whose per-row Top-k is the
    native route (slip_sla_route_predict)."""
    qh, kh = _hnd(q, layout), _hnd(k, layout)
    logits = sla2.router_logits(qh, kh, router_wq, router_wk, block_q, block_k, _scale(scale, qh.shape[-1]), smooth_k)
    return torch.softmax(logits, dim=-1)


def sla2_relaxed(q, k, v, critical, keep, alpha, proj_w, proj_b, *, block_q: int, block_k: int,
                 scale: Optional[float], feature_map: str) -> torch.Tensor:
    """SLA2's output (HND) with the critical/marginal choice relaxed to a weight c in [0, 1] per
    tile: the softmax branch weighs a tile's keys by c, the linear branch by keep·(1 − c) (keep:
    not negligible). At c = (route == CRITICAL) this is slip_sla_forward's function; its
    gradient in c is what the router's straight-through estimator passes on. Dense O(N²)."""
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    kr, vr = _repeat_kv(k, hq), _repeat_kv(v, hq)
    expand = lambda t: t.repeat_interleave(block_q, dim=2)[:, :, :nq].repeat_interleave(block_k, dim=3)[..., :nk]
    c, kept = expand(critical), expand(keep.to(q.dtype))
    s = (q @ kr.transpose(-1, -2)) * _scale(scale, q.shape[-1])
    # The row max over all keys (not only critical ones) keeps exp finite for any c.
    w = c * torch.exp(s - s.amax(dim=-1, keepdim=True).detach())
    o_s = (w @ vr) / w.sum(dim=-1, keepdim=True)
    a = (sla2.feature(q, feature_map) @ sla2.feature(kr, feature_map).transpose(-1, -2)) * kept * (1.0 - c)
    den = a.sum(dim=-1, keepdim=True)
    o_l = torch.where(den > 0, (a @ vr) / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))
    o_l = o_l @ proj_w.transpose(0, 1)
    if proj_b is not None:
        o_l = o_l + proj_b
    al = alpha.view(1, -1, 1, 1)
    return al * o_s + (1.0 - al) * o_l


class _SLA2Function(torch.autograd.Function):
    """apply(q, k, v, alpha, proj_w, proj_b, scores, route, conf): native forward and backward
    with the route fixed; `scores` (router soft scores or None) gets the straight-through
    gradient ∂L/∂c of sla2_relaxed at the hard route."""

    @staticmethod
    def forward(ctx, q, k, v, alpha, proj_w, proj_b, scores, route: np.ndarray, conf: dict):
        arrays = [_np32(t) for t in (q, k, v, alpha, proj_w)]
        b32 = _np32(proj_b) if proj_b is not None else None
        out = _attn.sla_forward(arrays[0], arrays[1], arrays[2], route, arrays[3], arrays[4], b32,
                                layout=conf["layout"], scale=conf["scale"], **conf["options"])
        ctx.arrays, ctx.b32, ctx.route, ctx.conf = arrays, b32, route, conf
        ctx.refs = (q, k, v, alpha, proj_w, proj_b)
        return _like(out, q)

    @staticmethod
    def backward(ctx, dout):
        q32, k32, v32, a32, w32 = ctx.arrays
        conf, route, need = ctx.conf, ctx.route, ctx.needs_input_grad
        go = _np32(dout)
        g = _attn.sla_backward(q32, k32, v32, route, a32, w32, ctx.b32, go, layout=conf["layout"],
                               scale=conf["scale"], **conf["options"])
        names = ("dq", "dk", "dv", "dalpha", "dproj_w", "dproj_b")
        grads = [_like(g[n], ref) if (need[i] and ref is not None) else None
                 for i, (n, ref) in enumerate(zip(names, ctx.refs))]
        dscores = None
        if need[6]:
            lay = conf["layout"]
            t = lambda a: _hnd(torch.from_numpy(a), lay)
            r = torch.from_numpy(route).to(torch.int64)
            crit = (r == 2).to(torch.float32).requires_grad_(True)
            with torch.enable_grad():
                o = sla2_relaxed(t(q32), t(k32), t(v32), crit, r != 0, torch.from_numpy(a32), torch.from_numpy(w32),
                                 None if ctx.b32 is None else torch.from_numpy(ctx.b32),
                                 block_q=conf["block_q"], block_k=conf["block_k"], scale=conf["scale"],
                                 feature_map=conf["feature_map"])
                (dc,) = torch.autograd.grad((o * _hnd(torch.from_numpy(go), lay)).sum(), crit)
            dscores = dc.to(device=dout.device, dtype=ctx.conf["scores_dtype"])
        return (*grads, dscores, None, None)


class SLA2Attention(torch.nn.Module):
    """SLA2 sparse-linear attention with its trainable parts (arXiv 2602.12675):
    O = α_h·Oˢ + (1 − α_h)·(Oˡ·Wpᵀ + bp), α_h = sigmoid(alpha_logit[h]), and a router
    R = softmax(scale·(q̄ Wqᵀ)(k̄ Wkᵀ)ᵀ) whose per-row Top-k (the `critical` fraction) picks the
    softmax branch's tiles, the rest going to the linear branch (`negligible` skips some).

    Initialisation: Wq = Wk = I (the training-free router), Wp = I and bp = 0 (the linear branch
    estimates the non-critical part's output directly, SLA2's P = P_sparse + P_rest reading; SLA's
    zero-initialised Proj would start the mix at α·Oˢ), α = alpha_init.

    Gradients: q, k, v, α, Wp, bp from the native backward with the route fixed. The route is a
    hard Top-k, flat in Wq and Wk; the router learns through a straight-through estimator: the
    hard critical mask M is treated as M + R − stop_grad(R), so ∂L/∂R = ∂L/∂c, the gradient of the
    loss in a per-tile critical weight c (sla2_relaxed: c moves a tile's keys between the softmax
    and linear branches) at c = M. That gradient is computed in torch on dense scores (O(N²)),
    only when the router weights require grad. Our research notes describe SLA2's router as a
    Top-k over learnably projected pooled Q̄, K̄ but not its exact estimator; this is our reading.
    R is computed from detached q and k, so the estimator trains the router and nothing upstream.
    Not causal (SLA2's kernels are not)."""

    def __init__(self, num_heads: int, head_dim: int, *, critical: float = 0.05, negligible: float = 0.0,
                 feature_map: str = "softmax", block_q: int = 128, block_k: int = 64, smooth_k: bool = True,
                 alpha_init: float = 0.5, scale: Optional[float] = None, layout: str = "HND"):
        super().__init__()
        if not 0.0 < alpha_init < 1.0:
            _fail(f"expected alpha_init in (0, 1), got {alpha_init}")
        if feature_map not in _attn.FEATURE_MAPS:
            _fail(f"expected one of {sorted(_attn.FEATURE_MAPS)} for feature_map, got {feature_map!r}")
        if layout not in _attn.LAYOUTS:
            _fail(f"expected one of {sorted(_attn.LAYOUTS)} for layout, got {layout!r}")
        self.num_heads, self.head_dim = int(num_heads), int(head_dim)
        self.conf = {"layout": layout, "scale": scale, "block_q": int(block_q), "block_k": int(block_k),
                     "feature_map": feature_map, "smooth_k": bool(smooth_k),
                     "options": {"block_q": int(block_q), "block_k": int(block_k), "critical": float(critical),
                                 "negligible": float(negligible), "feature_map": feature_map,
                                 "smooth_k": bool(smooth_k)}}
        eye = torch.eye(self.head_dim)
        self.router_wq = torch.nn.Parameter(eye.clone())
        self.router_wk = torch.nn.Parameter(eye.clone())
        self.alpha_logit = torch.nn.Parameter(torch.full((self.num_heads,), math.log(alpha_init / (1 - alpha_init))))
        self.proj_w = torch.nn.Parameter(eye.clone())
        self.proj_b = torch.nn.Parameter(torch.zeros(self.head_dim))

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_logit)

    def route(self, q, k) -> np.ndarray:
        """The native hard route (uint8 [B, Hq, nQb, nKb]: 0 negligible, 1 marginal, 2 critical)."""
        c = self.conf
        r, _ = _attn.sla_route(_np32(q), _np32(k), router_wq=_np32(self.router_wq), router_wk=_np32(self.router_wk),
                               layout=c["layout"], scale=c["scale"], **c["options"])
        return r

    def forward(self, q, k, v) -> torch.Tensor:
        c = self.conf
        _check_qkv(q, k, v, c["layout"])
        hq = q.shape[1] if c["layout"] == "HND" else q.shape[2]
        if hq != self.num_heads or q.shape[-1] != self.head_dim:
            _fail(f"expected q with {self.num_heads} heads of dim {self.head_dim}, got shape {tuple(q.shape)} "
                  f"in layout {c['layout']}")
        route = self.route(q, k)
        scores = None
        if torch.is_grad_enabled() and (self.router_wq.requires_grad or self.router_wk.requires_grad):
            w = self.router_wq.dtype
            scores = sla2_router_scores(q.detach().to(w), k.detach().to(w), self.router_wq, self.router_wk, block_q=c["block_q"],
                                        block_k=c["block_k"], scale=c["scale"], smooth_k=c["smooth_k"],
                                        layout=c["layout"])
        conf = {**c, "scores_dtype": self.router_wq.dtype}
        return _SLA2Function.apply(q, k, v, self.alpha, self.proj_w, self.proj_b, scores, route, conf)
