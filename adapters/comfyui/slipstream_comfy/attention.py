"""SlipstreamAttention's hook: an `optimized_attention_override` that runs self-attention through
libslipstream's low-bit kernels (SageAttention2's INT8 QK / FP8 PV on CUDA; on the CPU the AMX
kernel slip_attn_lowbit, INT8 QK / BF16 PV), dense or block-sparse on SpargeAttention2's predicted
mask, or as SLA2 sparse-linear attention from trained per-block weights (slipstream_torch.sla2),
and hands every call it does not take to the override installed before it (or to ComfyUI's own
backend).

It declines: masks, cross-attention, `low_precision_attention=False`, fewer than min_tokens tokens,
the first dense_blocks blocks, steps outside [start_percent, end_percent), and what the kernels do
not take (on CUDA: bf16/fp16 with head dim 64, 128 or 256); sparse-linear also declines blocks its
weights file lacks and heads or head dims the weights were not trained for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import kernels  # noqa: F401  (registers torch.ops.slipstream; puts slipstream_torch on the path)
from .patching import index_blocks
from slipstream_torch import sla2  # noqa: E402

OVERRIDE = "optimized_attention_override"

_inside = threading.local()


def sampling_progress(options: dict):
    """Progress through sampling in [0, 1] from ComfyUI's transformer_options (the current sigma's
    place in sample_sigmas), or None outside a sampler."""
    sigmas, schedule = options.get("sigmas"), options.get("sample_sigmas")
    if sigmas is None or schedule is None or schedule.numel() < 2:
        return None
    s = float(sigmas.flatten()[0])
    sched = schedule.flatten().tolist()
    step = min(range(len(sched)), key=lambda i: abs(sched[i] - s))
    return step / (len(sched) - 1)


@dataclass
class AttentionStats:
    calls: int = 0       # attention calls we ran
    declined: int = 0    # calls handed on
    kept: float = 0.0    # sum over sparse calls of the fraction of tile pairs computed (a device tensor)
    sparse_calls: int = 0
    per_step: dict = field(default_factory=dict)  # step -> [sum of kept fractions, sparse calls]

    def sparse(self, step, kept: float):
        self.kept += kept
        self.sparse_calls += 1
        if step is not None:
            acc = self.per_step.setdefault(step, [0.0, 0])
            acc[0] += kept
            acc[1] += 1

    def summary(self) -> dict:
        return {"attention_calls": self.calls, "attention_declined": self.declined,
                "sparsity": 1.0 - float(self.kept) / self.sparse_calls if self.sparse_calls else 0.0,
                "per_step": [[s, 1.0 - float(k) / n] for s, (k, n) in sorted(self.per_step.items())]}


@dataclass
class SlipstreamAttention:
    """The override. params: the sparse-attention manifest's (topk, topp, startPercent, endPercent,
    denseBlocks, precision); mode "sparse", "low-bit" (dense SageAttention) or "sparse-linear"
    (SLA2; sla = (SLA2Config, {block index: SLA2Weights}) from slipstream_torch.sla2.load)."""
    params: dict
    mode: str = "sparse"
    min_tokens: int = 0
    sla: object = None
    previous: object = None
    stats: AttentionStats = field(default_factory=AttentionStats)
    report: object = None  # called with a run's stats when the run ends

    def __call__(self, func, *args, **kwargs):
        if getattr(_inside, "active", False):  # an override we chained called back into us
            return func(*args, **kwargs)
        _inside.active = True
        try:
            out = self._attend(args, kwargs)
            if out is None:
                self.stats.declined += 1
                return self.previous(func, *args, **kwargs) if self.previous is not None else func(*args, **kwargs)
            self.stats.calls += 1
            return out
        finally:
            _inside.active = False

    def _attend(self, args, kwargs):
        q, k, v = args[:3]
        heads = args[3] if len(args) > 3 else kwargs["heads"]  # Wan passes heads= by keyword
        mask = kwargs.get("mask", args[4] if len(args) > 4 else None)
        if mask is not None or kwargs.get("low_precision_attention", True) is False:
            return None
        options = kwargs.get("transformer_options") or {}
        p = self.params
        if options.get("block_index", p["denseBlocks"]) < p["denseBlocks"]:
            return None
        progress = sampling_progress(options)
        if progress is not None and not (p["startPercent"] <= progress < p["endPercent"] or progress == p["endPercent"] == 1.0):
            return None
        skip_reshape = kwargs.get("skip_reshape", False)
        if skip_reshape:  # [B, H, N, D]
            b, h, n, d = q.shape
            layout = "HND"
            q4, k4, v4 = q, k, v
        else:  # [B, N, H * D]
            b, n, hd = q.shape
            h, d = heads, hd // heads
            layout = "NHD"
            q4, k4, v4 = (t.view(t.shape[0], t.shape[1], h, d) for t in (q, k, v))
        if k.shape != q.shape or v.shape != q.shape or n < max(1, self.min_tokens) or d > 256:
            return None
        if q.is_cuda and (q.dtype not in (torch.bfloat16, torch.float16) or d not in (64, 128, 256)):
            return None
        scale = float(kwargs.get("scale") or 0.0)
        if self.mode == "sparse-linear":
            config, blocks = self.sla
            w = blocks.get(options.get("block_index"))
            if w is None or w.heads != h or w.head_dim != d:
                return None
            if w.alpha.device != q.device:  # moved once, not at every call
                w = blocks[options["block_index"]] = w.to(q.device)
            out, route = sla2.attention(q4, k4, v4, w, config, scale=scale or None, layout=layout, return_route=True)
            steps = options["sample_sigmas"].numel() - 1 if progress is not None else None
            self.stats.sparse(round(progress * steps) if steps else None, (route == 2).float().mean())
        elif self.mode == "low-bit":
            if p["precision"] != "int8":
                return None  # full-precision dense attention is what ComfyUI already runs
            out = (torch.ops.slipstream.sage_attention(q4, k4, v4, False, scale, layout)[0] if q.is_cuda
                   else torch.ops.slipstream.lowbit_attention(q4, k4, v4, None, scale, layout))
        else:
            block_mask = torch.ops.slipstream.sparse_predict(q4, k4, False, scale, layout, topk=p["topk"], topp=p["topp"])
            steps = options["sample_sigmas"].numel() - 1 if progress is not None else None
            # kept fraction left on the device: reading it here would stall the CPU once per call
            self.stats.sparse(round(progress * steps) if steps else None, block_mask.float().mean())
            if p["precision"] == "int8" and q.is_cuda:
                out = torch.ops.slipstream.sage_attention_block_sparse(q4, k4, v4, block_mask, False, scale, layout)[0]
            elif p["precision"] == "int8":
                out = torch.ops.slipstream.lowbit_attention(q4, k4, v4, block_mask, scale, layout)
            else:
                out = _masked_attention(q4, k4, v4, block_mask, layout, scale)
        if kwargs.get("skip_output_reshape", False):
            return out if layout == "HND" else out.transpose(1, 2)
        return (out.transpose(1, 2) if layout == "HND" else out).reshape(b, n, h * d)


def _masked_attention(q, k, v, block_mask, layout, scale):
    """Full-precision attention on the kept (128-query, 64-key) tiles: the reference path (precision fp32)."""
    if layout == "NHD":
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    n, nk = q.shape[2], k.shape[2]
    keep = block_mask.bool().repeat_interleave(128, 2)[:, :, :n].repeat_interleave(64, 3)[..., :nk]
    out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=keep.to(q.device),
                                         scale=scale or None).to(q.dtype)
    return out.transpose(1, 2) if layout == "NHD" else out


def install(patcher, override: SlipstreamAttention, key: str = "slipstream_attention"):
    """On a clone: our override on top of whatever was installed, and re-installed at every
    ON_PREPARE_STATE in case a later node replaced the override without chaining it (the one it
    installed is then chained under ours); its statistics start afresh with each sampling run
    and go to override.report when the run ends."""
    options = patcher.model_options.setdefault("transformer_options", {})
    override.previous = options.get(OVERRIDE)
    options[OVERRIDE] = override

    def reinstall(p, timestep=None, model_options=None, *args, **kwargs):
        # The sampler runs on its own copy of the options (model_options), not p.model_options.
        for options in (p.model_options, model_options):
            if not isinstance(options, dict):
                continue
            opts = options.setdefault("transformer_options", {})
            current = opts.get(OVERRIDE)
            if current is not override:
                if current is not None:
                    override.previous = current
                opts[OVERRIDE] = override

    def outer_sample(executor, *args, **kwargs):
        override.stats = AttentionStats()  # one run's
        try:
            return executor(*args, **kwargs)
        finally:
            if override.report:
                override.report(override.stats.summary())

    patcher.add_callback_with_key("on_prepare_state", key, reinstall)
    patcher.add_wrapper_with_key("outer_sample", key, outer_sample)
    index_wan_blocks(patcher)
    return override


def index_wan_blocks(patcher):
    """dense_blocks and per-block SLA2 weights need the block index (patching.index_blocks); for
    Wan-style models (one `blocks` list), Flux's double/single blocks keep ComfyUI's own."""
    try:
        blocks = getattr(patcher.get_model_object("diffusion_model"), "blocks", None)
    except (AttributeError, KeyError):
        return
    if blocks is not None:
        index_blocks(patcher, len(blocks))
