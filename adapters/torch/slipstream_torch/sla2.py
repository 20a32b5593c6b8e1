"""SLA2 sparse-linear attention for inference, in torch on any device, and the file its trained
parameters travel in.

slip_sla_forward (slipstream.h) is the definition and runs in FP32 on the CPU; this is the same
function written for a GPU pipeline (ComfyUI's SlipstreamAttention in mode sparse-linear):
  - the route: R = softmax(scale·(q̄ Wqᵀ)(k̄ Wkᵀ)ᵀ) per block_q-query block over block_k-key
    blocks (k̄ after smooth-K); per row the max(1, floor(critical·nKb)) highest blocks are critical, the
    floor(negligible·nKb) lowest of the rest negligible, the others marginal;
  - Oˢ, softmax attention on the critical blocks: on CUDA with 128 x 64 blocks libslipstream's
    block-sparse SageAttention2 kernel (INT8 QK, FP8 PV), otherwise exact FP32;
  - Oˡ, linear attention on the marginal blocks: H_I = Σ_b φ(K_b)ᵀV_b and z_I = Σ_b φ(K_b) over
    query block I's marginal blocks b, Oˡ_i = φ(q_i)ᵀH_I / (φ(q_i)·z_I), as a product of the route
    with per-block sums (O(N·D²), no N² term);
  - O = α_h·Oˢ + (1 − α_h)·(Oˡ·Wpᵀ + bp).

The file (safetensors; `save`/`load`): per transformer block i the tensors
`blocks.<i>.router_wq`, `router_wk` [D, D], `alpha` [H] (α itself, in (0, 1)), `proj_w` [D, D],
`proj_b` [D], and in its metadata the route's settings (critical, negligible, feature_map,
block_q, block_k: the tiles the router was trained on). The
SLA2 fine-tune (bench/training/sparse_finetune.py --sla-out) writes it from trained
training.SLA2Attention modules (`from_module`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

FORMAT = "slipstream-sla2/1"
FEATURE_MAPS = ("softmax", "elu", "relu")
_KEY = re.compile(r"^blocks\.(\d+)\.(router_wq|router_wk|alpha|proj_w|proj_b)$")


@dataclass
class SLA2Config:
    critical: float = 0.05
    negligible: float = 0.0
    feature_map: str = "softmax"
    block_q: int = 128  # slip_sla_forward's defaults, and the CUDA block-sparse kernel's tiles
    block_k: int = 64

    def check(self, where: str) -> None:
        if not 0.0 < self.critical <= 1.0:
            raise ValueError(f"{where}: expected critical in (0, 1], got {self.critical}")
        if not 0.0 <= self.negligible <= 1.0 - self.critical:
            raise ValueError(f"{where}: expected negligible in [0, 1 - critical], got {self.negligible}")
        if self.block_q < 1 or self.block_k < 1:
            raise ValueError(f"{where}: expected positive block_q and block_k, got {self.block_q}, {self.block_k}")
        if self.feature_map not in FEATURE_MAPS:
            raise ValueError(f"{where}: expected feature_map one of {', '.join(FEATURE_MAPS)}, got {self.feature_map!r}")


@dataclass
class SLA2Weights:
    """One attention layer's SLA2 parameters (float32): router_wq, router_wk, proj_w [D, D],
    alpha [H], proj_b [D]."""
    router_wq: torch.Tensor
    router_wk: torch.Tensor
    alpha: torch.Tensor
    proj_w: torch.Tensor
    proj_b: torch.Tensor

    @property
    def heads(self) -> int:
        return self.alpha.shape[0]

    @property
    def head_dim(self) -> int:
        return self.proj_w.shape[0]

    def to(self, device) -> "SLA2Weights":
        return SLA2Weights(*(t.to(device) for t in (self.router_wq, self.router_wk, self.alpha, self.proj_w, self.proj_b)))


def from_module(module) -> SLA2Weights:
    """The inference parameters of a trained training.SLA2Attention (α = sigmoid of its logit)."""
    with torch.no_grad():
        return SLA2Weights(module.router_wq.detach().float().cpu(), module.router_wk.detach().float().cpu(),
                           module.alpha.detach().float().cpu(), module.proj_w.detach().float().cpu(),
                           module.proj_b.detach().float().cpu())


def save(path, config: SLA2Config, blocks: dict) -> None:
    """Writes {block index: SLA2Weights} to path (through a temporary name: never a partial file)."""
    from safetensors.torch import save_file

    config.check(str(path))
    tensors = {}
    for i, w in sorted(blocks.items()):
        for name in ("router_wq", "router_wk", "alpha", "proj_w", "proj_b"):
            tensors[f"blocks.{int(i)}.{name}"] = getattr(w, name).detach().float().cpu().clone().contiguous()
    meta = {"format": FORMAT, "critical": repr(config.critical), "negligible": repr(config.negligible),
            "feature_map": config.feature_map, "block_q": str(config.block_q), "block_k": str(config.block_k)}
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path, where: str = "SLA2") -> tuple[SLA2Config, dict]:
    """(config, {block index: SLA2Weights}) from a file `save` wrote; errors name the file and the
    tensor (unknown names, a block missing a tensor, shapes that disagree, non-finite values, α
    outside (0, 1))."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (OSError, SafetensorError) as e:
        raise ValueError(f"{where}: cannot read SLA2 weights {path}: {e}") from e
    if meta.get("format") != FORMAT:
        raise ValueError(f"{where}: {path}: expected metadata format {FORMAT!r}, got {meta.get('format')!r}")
    try:
        config = SLA2Config(float(meta["critical"]), float(meta["negligible"]), meta["feature_map"],
                            int(meta["block_q"]), int(meta["block_k"]))
    except (KeyError, ValueError) as e:
        raise ValueError(f"{where}: {path}: metadata needs critical, negligible, feature_map, block_q and block_k "
                         f"({e})") from e
    config.check(f"{where}: {path}")
    parts: dict = {}
    for name, t in tensors.items():
        m = _KEY.match(name)
        if not m:
            raise ValueError(f"{where}: {path}: unknown tensor {name!r} (expected blocks.<i>.router_wq, router_wk, "
                             "alpha, proj_w or proj_b)")
        t = t.float()
        if not torch.isfinite(t).all():
            raise ValueError(f"{where}: {path}: {name}: non-finite values")
        parts.setdefault(int(m.group(1)), {})[m.group(2)] = t
    blocks = {}
    for i, p in sorted(parts.items()):
        missing = [n for n in ("router_wq", "router_wk", "alpha", "proj_w", "proj_b") if n not in p]
        if missing:
            raise ValueError(f"{where}: {path}: block {i} lacks {', '.join(f'blocks.{i}.{n}' for n in missing)}")
        d = p["proj_w"].shape[0] if p["proj_w"].dim() == 2 else -1
        for n, shape in (("router_wq", [d, d]), ("router_wk", [d, d]), ("proj_w", [d, d]), ("proj_b", [d])):
            if list(p[n].shape) != shape:
                raise ValueError(f"{where}: {path}: blocks.{i}.{n}: expected shape {shape}, got {list(p[n].shape)}")
        a = p["alpha"]
        if a.dim() != 1 or not ((a > 0) & (a < 1)).all():
            raise ValueError(f"{where}: {path}: blocks.{i}.alpha: expected a vector of values in (0, 1)")
        blocks[i] = SLA2Weights(p["router_wq"], p["router_wk"], a, p["proj_w"], p["proj_b"])
    return config, blocks


def pool(x: torch.Tensor, block: int) -> torch.Tensor:
    """Means of `block`-token blocks along dim 2 (the last block may be short)."""
    b, h, n, d = x.shape
    nb = -(-n // block)
    sums = F.pad(x, (0, 0, 0, nb * block - n)).reshape(b, h, nb, block, d).sum(3)
    counts = torch.full((nb,), float(block), dtype=x.dtype, device=x.device)
    counts[-1] = n - (nb - 1) * block
    return sums / counts.view(1, 1, nb, 1)


def router_logits(q: torch.Tensor, k: torch.Tensor, router_wq: torch.Tensor, router_wk: torch.Tensor, block_q: int,
                  block_k: int, scale: float, smooth_k: bool = True) -> torch.Tensor:
    """scale·(q̄ Wqᵀ)(k̄ Wkᵀ)ᵀ, [B, Hq, nQb, nKb], whose row softmax is SLA2's router R (q, k:
    [B, H, N, D]; k may have fewer heads dividing Hq; k̄ after smooth-K). Differentiable in the
    router weights, which training.sla2_router_scores uses."""
    if smooth_k:
        k = k - k.mean(dim=2, keepdim=True)
    qp = pool(q, block_q) @ router_wq.transpose(0, 1)
    kp = pool(k, block_k).repeat_interleave(q.shape[1] // k.shape[1], dim=1) @ router_wk.transpose(0, 1)
    return (qp @ kp.transpose(-1, -2)) * scale


def route(q: torch.Tensor, k: torch.Tensor, w: SLA2Weights, config: SLA2Config, scale: float) -> torch.Tensor:
    """uint8 [B, H, nQb, nKb]: 2 critical, 1 marginal, 0 negligible (q, k: [B, H, N, D], HND)."""
    # softmax is monotone: the Top-k of R is the Top-k of its logits
    logits = router_logits(q.float(), k.float(), w.router_wq.to(q.device), w.router_wk.to(q.device), config.block_q,
                           config.block_k, scale)
    nkb = logits.shape[-1]
    n_crit = max(1, math.floor(config.critical * nkb))
    n_negl = min(math.floor(config.negligible * nkb), nkb - n_crit)
    order = logits.argsort(dim=-1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(nkb, device=order.device).expand_as(order))
    out = torch.ones_like(logits, dtype=torch.uint8)
    out[rank < n_crit] = 2
    out[rank >= nkb - n_negl] = 0
    return out


def feature(x: torch.Tensor, feature_map: str) -> torch.Tensor:
    """φ over the last (feature) dimension."""
    if feature_map == "softmax":
        return torch.softmax(x, dim=-1)
    if feature_map == "elu":
        return F.elu(x) + 1.0
    return torch.relu(x)


def _critical_attention(q, k, v, critical: torch.Tensor, scale: float, bq: int, bk: int) -> torch.Tensor:
    """Softmax attention over the critical (bq x bk) tiles, [B, H, N, D] in q's dtype."""
    d = q.shape[-1]
    if q.is_cuda and q.dtype in (torch.bfloat16, torch.float16) and d in (64, 128, 256) and (bq, bk) == (128, 64):
        from . import ops  # noqa: F401  (registers torch.ops.slipstream)
        return torch.ops.slipstream.sage_attention_block_sparse(q, k, v, critical.to(torch.uint8), False, scale,
                                                                "HND")[0]
    n, nk = q.shape[2], k.shape[2]
    keep = critical.bool().repeat_interleave(bq, 2)[:, :, :n].repeat_interleave(bk, 3)[..., :nk]
    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=keep, scale=scale).to(q.dtype)


def _linear_attention(q, k, v, marginal: torch.Tensor, feature_map: str, bq: int, bk: int) -> torch.Tensor:
    """Oˡ in FP32, [B, H, N, D]: per query block, linear attention over its marginal key blocks."""
    b, h, n, d = q.shape
    nk = k.shape[2]
    nqb, nkb = marginal.shape[-2:]
    fk = feature(k.float(), feature_map)
    fk = F.pad(fk, (0, 0, 0, nkb * bk - nk)).reshape(b, h, nkb, bk, d)  # padded keys weigh 0
    vb = F.pad(v.float(), (0, 0, 0, nkb * bk - nk)).reshape(b, h, nkb, bk, d)
    m = marginal.float()
    kv = torch.einsum("bhjtd,bhjte->bhjde", fk, vb)           # per key block: φ(K_b)ᵀ V_b
    z = fk.sum(3)                                              # per key block: Σ φ(k)
    # Per query block, over its marginal blocks: a dense [nQb, nKb] x [nKb, D²] product (2·nQb·nKb·D²
    # FLOP, 0.2 TFLOP a head-batch at 32k tokens), on CUDA on bf16 tensor cores with FP32
    # accumulation (the route is 0/1, exact in bf16; the sums round to 2^-9 relative).
    if kv.is_cuda:
        kv_i = torch.einsum("bhij,bhjde->bhide", m.bfloat16(), kv.bfloat16()).float()
    else:
        kv_i = torch.einsum("bhij,bhjde->bhide", m, kv)
    z_i = torch.einsum("bhij,bhjd->bhid", m, z)
    fq = F.pad(feature(q.float(), feature_map), (0, 0, 0, nqb * bq - n)).reshape(b, h, nqb, bq, d)
    num = fq @ kv_i
    den = (fq * z_i.unsqueeze(3)).sum(-1, keepdim=True)
    out = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))
    return out.reshape(b, h, nqb * bq, d)[:, :, :n]


def attention(q, k, v, w: SLA2Weights, config: SLA2Config, *, scale: Optional[float] = None,
              layout: str = "HND", routes: Optional[torch.Tensor] = None, return_route: bool = False):
    """SLA2 of q, k, v ([B, H, N, D] for HND, [B, N, H, D] for NHD; k, v may have fewer heads
    dividing H), out like q; with return_route also the route map used. routes: a route map to
    use instead of the router's."""
    if layout == "NHD":
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    h, d = q.shape[1], q.shape[-1]
    if w.heads != h or w.head_dim != d:
        raise ValueError(f"SLA2 weights for {w.heads} heads of dim {w.head_dim}, got q with {h} heads of dim {d}")
    if k.shape[1] != h:
        k, v = (t.repeat_interleave(h // t.shape[1], dim=1) for t in (k, v))
    scale = scale or 1.0 / math.sqrt(d)
    w = w.to(q.device)
    r = routes if routes is not None else route(q, k, w, config, scale)
    bq, bk = config.block_q, config.block_k
    o_s = _critical_attention(q, k, v, r == 2, scale, bq, bk).float()
    o_l = _linear_attention(q, k, v, r == 1, config.feature_map, bq, bk) @ w.proj_w.t() + w.proj_b
    a = w.alpha.view(1, -1, 1, 1)
    out = (a * o_s + (1.0 - a) * o_l).to(q.dtype)
    out = out.transpose(1, 2) if layout == "NHD" else out
    return (out, r) if return_route else out
