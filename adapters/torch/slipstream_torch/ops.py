"""torch.library custom ops over libslipstream, so the kernels compose with torch.compile
(fullgraph) and CUDA graphs: CUDA tensors go to the CUDA kernels (device pointers and the current
stream, no copies), CPU tensors to the native CPU kernels (through float32 numpy). Each op has a
fake implementation that only makes the outputs' shapes, which is what tracing needs.

    out, lse = torch.ops.slipstream.sage_attention(q, k, v, causal=False, scale=0.0)

Layout HND ([B, H, N, D]) or NHD ([B, N, H, D]); GQA when Hq is a multiple of Hk. On CUDA q, k, v
are bf16 or fp16 (out the same), head dim 64/128/256, compute capability 8.9+; on the CPU any
float dtype (computed in float32, out cast back). lse is float32 [B, Hq, Nq].
"""

from __future__ import annotations

import ctypes as _c
from typing import Optional

import numpy as np
import torch

from . import attention as _attn
from ._lib import SlipTensor, check

_DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.uint8: 7, torch.bool: 7}


def _cuda_desc(t: torch.Tensor) -> SlipTensor:
    """A descriptor over a CUDA tensor (its strides, the current stream). The caller keeps t alive."""
    if t.dtype not in _DTYPES:
        raise TypeError(f"expected one of {sorted(str(d) for d in _DTYPES)}, got {t.dtype}")
    d = SlipTensor()
    d.data = t.data_ptr()
    d.dtype = _DTYPES[t.dtype]
    d.device = 1
    d.device_index = t.device.index if t.device.index is not None else torch.cuda.current_device()
    d.ndim = t.dim()
    for i in range(t.dim()):
        d.shape[i] = t.shape[i]
        d.strides[i] = t.stride(i)
    d.stream = torch.cuda.current_stream(t.device).cuda_stream
    return d


def _lse_shape(q: torch.Tensor, layout: str) -> tuple:
    return (q.shape[0], q.shape[1], q.shape[2]) if layout == "HND" else (q.shape[0], q.shape[2], q.shape[1])


def _sage(q, k, v, block_mask, causal, scale, layout, granularity, smooth_k):
    lse = torch.empty(_lse_shape(q, layout), dtype=torch.float32, device=q.device)
    options = {"granularity": granularity, "smooth_k": smooth_k}
    if q.is_cuda:
        out = torch.empty_like(q)
        sp = _attn.sage_params(**options)
        p = _attn.attn_params(layout, causal, scale if scale > 0 else None)
        bm = block_mask.to(torch.uint8).contiguous() if block_mask is not None else None
        descs = [_cuda_desc(t) for t in (q, k, v, out, lse)]
        tq, tk, tv, to, tl = descs
        if bm is None:
            fn = _attn._fn("slip_attn_sage", _attn._SAGE)
            check(fn(_c.byref(tq), _c.byref(tk), _c.byref(tv), None, _c.byref(p), _c.byref(sp), _c.byref(to), _c.byref(tl)))
        else:
            tm = _cuda_desc(bm)
            fn = _attn._fn("slip_attn_sage_block_sparse", _attn._SAGE)
            check(fn(_c.byref(tq), _c.byref(tk), _c.byref(tv), _c.byref(tm), _c.byref(p), _c.byref(sp), _c.byref(to),
                     _c.byref(tl)))
        return out, lse
    arrays = [t.detach().float().contiguous().numpy() for t in (q, k, v)]
    kw = dict(layout=layout, causal=causal, scale=scale if scale > 0 else None, return_lse=True, **options)
    if block_mask is None:
        o, l = _attn.sage(*arrays, **kw)
    else:
        o, l = _attn.sage_block_sparse(*arrays, block_mask.detach().to(torch.uint8).contiguous().numpy(), **kw)
    return torch.from_numpy(o).to(q.dtype), lse.copy_(torch.from_numpy(np.ascontiguousarray(l)))


@torch.library.custom_op("slipstream::sage_attention", mutates_args=())
def sage_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float = 0.0,
                   layout: str = "HND", granularity: str = "thread", smooth_k: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """SageAttention2 (INT8 QK, FP8 PV); scale 0 = 1/sqrt(D). Returns (out, lse)."""
    return _sage(q, k, v, None, causal, scale, layout, granularity, smooth_k)


@sage_attention.register_fake
def _(q, k, v, causal=False, scale=0.0, layout="HND", granularity="thread", smooth_k=True):
    return torch.empty_like(q), q.new_empty(_lse_shape(q, layout), dtype=torch.float32)


@torch.library.custom_op("slipstream::sage_attention_block_sparse", mutates_args=())
def sage_attention_block_sparse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask: torch.Tensor,
                                causal: bool = False, scale: float = 0.0, layout: str = "HND",
                                granularity: str = "thread", smooth_k: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """sage_attention on the (128-query, 64-key) tile pairs block_mask [B, Hq, ceil(Nq/128), ceil(Nk/64)] keeps."""
    return _sage(q, k, v, block_mask, causal, scale, layout, granularity, smooth_k)


@sage_attention_block_sparse.register_fake
def _(q, k, v, block_mask, causal=False, scale=0.0, layout="HND", granularity="thread", smooth_k=True):
    return torch.empty_like(q), q.new_empty(_lse_shape(q, layout), dtype=torch.float32)


@torch.library.custom_op("slipstream::lowbit_attention", mutates_args=())
def lowbit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask: Optional[torch.Tensor] = None,
                     scale: float = 0.0, layout: str = "HND") -> torch.Tensor:
    """The CPU's fast low-bit attention (slip_attn_lowbit: INT8 QK, BF16 PV, AMX tiles), dense or on
    block_mask [B, Hq, ceil(Nq/128), ceil(Nk/64)]; not causal. CPU tensors only: on CUDA,
    sage_attention(_block_sparse) is the low-bit kernel."""
    if q.is_cuda:
        raise ValueError("slipstream::lowbit_attention runs on the CPU; on CUDA use slipstream::sage_attention")
    arrays = [t.detach().float().contiguous().numpy() for t in (q, k, v)]
    bm = None if block_mask is None else block_mask.detach().to(torch.uint8).contiguous().numpy()
    out = _attn.lowbit(*arrays, bm, layout=layout, scale=scale if scale > 0 else None)
    return torch.from_numpy(out).to(q.dtype)


@lowbit_attention.register_fake
def _(q, k, v, block_mask=None, scale=0.0, layout="HND"):
    return torch.empty_like(q)


@torch.library.custom_op("slipstream::sparse_predict", mutates_args=())
def sparse_predict(q: torch.Tensor, k: torch.Tensor, causal: bool = False, scale: float = 0.0, layout: str = "HND",
                   topk: float = 0.5, topp: float = 0.0, sim_threshold: float = -0.1, attention_sink: bool = False,
                   smooth_k: bool = True) -> torch.Tensor:
    """SpargeAttention2's block mask, uint8 [B, Hq, ceil(Nq/128), ceil(Nk/64)] (1 = compute), the
    input of sage_attention_block_sparse. Top-k and Top-p both on = the hybrid rule."""
    options = dict(topk=topk, topp=topp, sim_threshold=sim_threshold, attention_sink=attention_sink, smooth_k=smooth_k)
    if q.is_cuda:
        sp = _attn.sparse_params(**options)
        p = _attn.attn_params(layout, causal, scale if scale > 0 else None)
        b, hq, nq = _lse_shape(q, layout)
        nk = k.shape[2] if layout == "HND" else k.shape[1]
        mask = torch.empty(b, hq, -(-nq // sp.block_q), -(-nk // sp.block_k), dtype=torch.uint8, device=q.device)
        tq, tk, tm = (_cuda_desc(t) for t in (q, k, mask))
        check(_attn._fn("slip_attn_sparse_predict", _attn._PRED)(_c.byref(tq), _c.byref(tk), _c.byref(p), _c.byref(sp),
                                                                  _c.byref(tm), None))
        return mask
    mask, _ = _attn.sparse_predict(q.detach().float().contiguous().numpy(), k.detach().float().contiguous().numpy(),
                                   layout=layout, causal=causal, scale=scale if scale > 0 else None, **options)
    return torch.from_numpy(mask)


@sparse_predict.register_fake
def _(q, k, causal=False, scale=0.0, layout="HND", topk=0.5, topp=0.0, sim_threshold=-0.1, attention_sink=False,
      smooth_k=True):
    b, hq, nq = _lse_shape(q, layout)
    nk = k.shape[2] if layout == "HND" else k.shape[1]
    return q.new_empty((b, hq, -(-nq // 128), -(-nk // 64)), dtype=torch.uint8)
