"""SlipstreamPrune's hook: structured masks from a safetensors file applied to a Wan-style DiT.

The file holds, per transformer block i (any subset):
  blocks.{i}.self_attn.head_gate    F32 [num_heads]  self-attention heads
  blocks.{i}.ffn.channel_gate       F32 [ffn_dim]    MLP hidden channels
A gate of 0 removes the unit; any other value scales it (DDP keeps a kept unit's learned gate, a
plain mask is 1), the semantics `slipstream_torch.ddp` folds into weights for LLMs.

How it reaches the model, without copying or overwriting weights (LoRA and other packs still
apply to the originals):
- MLP channels: an object patch of `blocks.{i}.ffn` that runs the same Linear-GELU-Linear on the
  kept channels only (the first linear's kept rows, the second's kept columns), so the MLP costs
  what the kept fraction costs.
- Heads: an object patch of `blocks.{i}.self_attn.v` that scales each head's values by its gate, so
  a removed head's attention output is exactly zero whichever attention backend runs; plus a
  chained `optimized_attention_override` that hands the next backend only the kept heads (exact,
  because a zero-valued head contributes nothing) and puts zeros back in the removed heads' place.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F

from .patching import index_blocks, model_object, unwrap, wrapper

OVERRIDE = "optimized_attention_override"
_KEY = re.compile(r"^blocks\.(\d+)\.(self_attn\.head_gate|ffn\.channel_gate)$")


def load_masks(path, num_blocks: int, num_heads: int, ffn_dim: int, node: str = "SlipstreamPrune") -> dict:
    """{block: {"heads": gate [H], "channels": gate [F]}} from the file; errors name the file and the
    tensor (unknown names, wrong shapes, non-finite or negative gates, a block removed entirely)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise ValueError(f"{node}: cannot read masks {path}: {e}") from e
    out: dict = {}
    for name, t in tensors.items():
        m = _KEY.match(name)
        if not m:
            raise ValueError(f"{node}: {path}: unknown tensor {name!r} (expected blocks.<i>.self_attn.head_gate "
                             "or blocks.<i>.ffn.channel_gate)")
        block, kind = int(m.group(1)), m.group(2)
        want = num_heads if kind.startswith("self_attn") else ffn_dim
        if block >= num_blocks:
            raise ValueError(f"{node}: {path}: {name}: the model has {num_blocks} blocks")
        if t.dim() != 1 or t.shape[0] != want:
            raise ValueError(f"{node}: {path}: {name}: expected shape [{want}], got {list(t.shape)}")
        t = t.float()
        if not torch.isfinite(t).all() or (t < 0).any():
            raise ValueError(f"{node}: {path}: {name}: gates must be finite and non-negative")
        if not (t > 0).any():
            raise ValueError(f"{node}: {path}: {name}: removes every unit of block {block}")
        out.setdefault(block, {})["heads" if kind.startswith("self_attn") else "channels"] = t
    return out


def _weight_bias(linear: torch.nn.Module, x: torch.Tensor):
    """The weight and bias as the layer would use them on x: through ComfyUI's cast (which also
    applies weight patches such as LoRA in low-VRAM mode) where ComfyUI is loaded."""
    try:
        from comfy.ops import cast_bias_weight
    except ImportError:
        cast_bias_weight = None
    if cast_bias_weight is not None and hasattr(linear, "comfy_cast_weights"):
        w, b = cast_bias_weight(linear, x)[:2]
        return w, b
    b = linear.bias.to(device=x.device, dtype=x.dtype) if linear.bias is not None else None
    return linear.weight.to(device=x.device, dtype=x.dtype), b


_PLAIN_LINEARS = {"torch.nn.modules.linear.Linear", "comfy.ops.disable_weight_init.Linear", "comfy.ops.manual_cast.Linear"}


def _sliceable(linear: torch.nn.Module) -> bool:
    """A linear whose forward is x @ W.T + b on its (cast) weight, so rows can be sliced out of it;
    quantized layers (fp8 scaled, GGUF, ...) have forwards of their own and run whole."""
    cls = type(linear)
    return f"{cls.__module__}.{cls.__qualname__}" in _PLAIN_LINEARS and not hasattr(linear, "scale_weight")


@wrapper("original")
class PrunedFFN(torch.nn.Module):
    """Linear-GELU-Linear over the kept hidden channels of `ffn`, each scaled by its gate. A layer
    that cannot be sliced (a quantized one, or another node's wrapper) runs whole with its removed
    channels multiplied by 0 (same output, no saving). Its items "0", "1", "2" are the Sequential's,
    read and written through, so object patches under `ffn.0` land where the forward reads them
    whichever order the patches are applied in."""

    def __init__(self, ffn: torch.nn.Sequential, gate: torch.Tensor):
        super().__init__()
        self.original = ffn
        keep = torch.nonzero(gate > 0).flatten()
        self.register_buffer("keep", keep, persistent=False)
        self.register_buffer("gate", gate[keep], persistent=False)
        self.register_buffer("full_gate", gate, persistent=False)
        self.all_ones = bool((self.gate == 1).all())
    def __getattr__(self, name):
        if name in ("0", "1", "2"):
            return getattr(self._modules["original"], name)
        return super().__getattr__(name)

    def __setattr__(self, name, value):
        if name in ("0", "1", "2"):
            setattr(self._modules["original"], name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x):
        up, act, down = self.original[0], self.original[1], self.original[2]
        if not (_sliceable(up) and _sliceable(down)):
            return down(act(up(x)) * self.full_gate.to(device=x.device, dtype=x.dtype))
        keep = self.keep.to(x.device)
        w1, b1 = _weight_bias(up, x)
        w2, b2 = _weight_bias(down, x)
        h = act(F.linear(x, w1.index_select(0, keep), b1.index_select(0, keep) if b1 is not None else None))
        if not self.all_ones:
            h = h * self.gate.to(device=x.device, dtype=h.dtype)
        return F.linear(h, w2.index_select(1, keep), b2)


@wrapper("v")
class GatedValues(torch.nn.Module):
    """The value projection with each head's output channels scaled by the head's gate."""

    def __init__(self, v: torch.nn.Module, gate: torch.Tensor | None = None, head_dim: int = 0, scale: torch.Tensor | None = None):
        super().__init__()
        self.v = v
        self.register_buffer("scale", gate.repeat_interleave(head_dim) if scale is None else scale, persistent=False)

    def forward(self, x, *args, **kwargs):
        y = self.v(x, *args, **kwargs)
        return y * self.scale.to(device=y.device, dtype=y.dtype)


class HeadNarrowing:
    """The override: a self-attention call of a block with removed heads runs the next backend on
    the kept heads only. Other calls (cross-attention, masks, other shapes) pass through."""

    def __init__(self, kept: dict, num_heads: int):
        self.kept = kept  # block -> LongTensor of kept heads
        self.num_heads = num_heads
        self.previous = None
        self.narrowed = 0

    def __call__(self, func, *args, **kwargs):
        nxt = (lambda *a, **k: self.previous(func, *a, **k)) if self.previous is not None else func
        q, k, v = args[:3]
        heads = args[3] if len(args) > 3 else kwargs.get("heads")
        options = kwargs.get("transformer_options") or {}
        keep = self.kept.get(options.get("block_index"))
        if (keep is None or heads != self.num_heads or kwargs.get("skip_reshape") or kwargs.get("skip_output_reshape")
                or kwargs.get("mask") is not None or len(args) > 4 or k.shape != q.shape or q.dim() != 3):
            return nxt(*args, **kwargs)
        b, n, hd = q.shape
        d = hd // heads
        idx = keep.to(q.device)
        narrow = [t.view(b, n, heads, d).index_select(2, idx).reshape(b, n, -1) for t in (q, k, v)]
        rest = {key: val for key, val in kwargs.items() if key != "heads"}
        out = nxt(*narrow, idx.numel(), *args[4:], **rest) if len(args) > 3 else nxt(*narrow, heads=idx.numel(), **rest)
        self.narrowed += 1
        full = out.new_zeros(b, n, heads, d)
        full.index_copy_(2, idx, out.view(b, n, idx.numel(), d))
        return full.view(b, n, hd)


def install(patcher, masks: dict, key: str = "slipstream_prune"):
    """On a clone: the object patches of every masked block and the chained override."""
    dit = patcher.get_model_object("diffusion_model")
    blocks = getattr(dit, "blocks", None)
    if blocks is None:
        raise ValueError(f"SlipstreamPrune: {type(dit).__name__} has no Wan-style `blocks`")
    kept = {}
    num_heads = None
    for i, m in sorted(masks.items()):
        prefix = f"diffusion_model.blocks.{i}"
        if "channels" in m:
            ffn = model_object(patcher, f"{prefix}.ffn")
            if not (isinstance(ffn, torch.nn.Sequential) and len(ffn) == 3):
                raise ValueError(f"SlipstreamPrune: block {i}'s ffn is not Linear-GELU-Linear (another node replaced it?)")
            patcher.add_object_patch(f"{prefix}.ffn", PrunedFFN(ffn, m["channels"]))
        if "heads" in m:
            attn = model_object(patcher, f"{prefix}.self_attn")
            num_heads = attn.num_heads if hasattr(attn, "num_heads") else attn.heads
            head_dim = attn.q.weight.shape[0] // num_heads
            v = model_object(patcher, f"{prefix}.self_attn.v")
            patcher.add_object_patch(f"{prefix}.self_attn.v", GatedValues(v, m["heads"], head_dim))
            gate = m["heads"]
            if bool((gate == 0).any()):
                kept[i] = torch.nonzero(gate > 0).flatten()
    if kept:
        narrowing = HeadNarrowing(kept, num_heads)
        options = patcher.model_options.setdefault("transformer_options", {})
        narrowing.previous = options.get(OVERRIDE)
        options[OVERRIDE] = narrowing
        index_blocks(patcher, len(blocks))
    return patcher


def dims(diffusion_model) -> tuple:
    """(blocks, heads, ffn_dim) of a Wan-style DiT."""
    blocks = diffusion_model.blocks
    attn = unwrap(blocks[0].self_attn)
    heads = attn.num_heads if hasattr(attn, "num_heads") else attn.heads
    return len(blocks), heads, unwrap(blocks[0].ffn)[0].weight.shape[0]


def apply(patcher, path: Path):
    m = patcher.clone()
    masks = load_masks(path, *dims(m.get_model_object("diffusion_model")))
    return install(m, masks)
