"""Structured pruning masks for Qwen3/Llama-style PyTorch models: DDP (deterministic differentiable
pruning, arXiv 2603.08065, as its authors' code implements it; ../shared/research/vllm.md §3.2),
and the baselines it is compared with (magnitude, Wanda-style, and hard-concrete L0 gates trained by
the same loop: DDPConfig(method="hard-concrete")).

Units are whole GQA groups of attention heads (a KV head with its query heads: q/k/v rows and the
o_proj input columns of the group, so vLLM can serve what is left) and MLP intermediate channels
(gate/up rows, down_proj input columns). The model's weights stay frozen; only the mask logits z and
the Lagrange multipliers train.

  gate      g = ReLU(z) forward, identity backward (straight-through); it multiplies the unit's output
  score     s = clamp((zeta - gamma) * sigmoid(2.4/m * (g - m)) + gamma, 0, 1), clamp straight-through,
            gamma = -0.1, zeta = 1.1, m = 0.5 - 0.4 sqrt(progress): the soft l0 of a unit
  penalty   per unit type, with expected sparsity s_hat = 1 - mean(s) against target t:
            l1 (s_hat - t) + l2 (s_hat - t)^2 + l3 mean(s (1 - s)); the lambdas ascend
  loss      CE + penalty (+ r tau^2 KL(teacher || student), the teacher the unmasked model)
  deploy    ReLU(z) with the N - ceil(N (1 - t)) smallest zeroed across all layers; kept units keep
            their value, folded into o_proj columns / up_proj rows
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GAMMA, ZETA = -0.1, 1.1


def _layers(model):
    inner = getattr(model, "model", model)
    return inner.layers


def _shape(model):
    cfg = model.config
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return len(_layers(model)), heads, kv, head_dim, cfg.intermediate_size


def relu_ste(z):
    return z + (torch.relu(z) - z).detach()


def clamp_ste(x, lo, hi):
    return x + (x.clamp(lo, hi) - x).detach()


def score(z, progress: float):
    """DDP's soft l0 of each unit at training progress in [0, 1]."""
    m = 0.5 - 0.4 * math.sqrt(min(max(progress, 0.0), 1.0))
    return clamp_ste((ZETA - GAMMA) * torch.sigmoid((2.4 / m) * (relu_ste(z) - m)) + GAMMA, 0.0, 1.0)


@contextmanager
def gated(model, heads=None, channels=None):
    """Runs model with per-unit gates: heads [L, KV] scales each GQA group's attention output
    (o_proj's input columns), channels [L, I] each MLP intermediate channel (down_proj's input)."""
    n_layers, n_heads, n_kv, head_dim, _ = _shape(model)
    handles = []
    for i, layer in enumerate(_layers(model)):
        if heads is not None:
            def pre_o(mod, args, i=i):
                x = args[0]
                g = heads[i].to(x.dtype).repeat_interleave(n_heads // n_kv * head_dim)
                return (x * g,) + args[1:]
            handles.append(layer.self_attn.o_proj.register_forward_pre_hook(pre_o))
        if channels is not None:
            def pre_down(mod, args, i=i):
                return (args[0] * channels[i].to(args[0].dtype),) + args[1:]
            handles.append(layer.mlp.down_proj.register_forward_pre_hook(pre_down))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


BETA = 2.0 / 3.0  # hard-concrete temperature (Louizos et al.)


def hard_concrete_sample(log_alpha):
    """A stochastic hard-concrete gate per unit (training)."""
    u = torch.rand_like(log_alpha).clamp(1e-6, 1 - 1e-6)
    s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + log_alpha) / BETA)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def hard_concrete_l0(log_alpha):
    """P(gate != 0) per unit: the expected l0 of a hard-concrete gate."""
    return torch.sigmoid(log_alpha - BETA * math.log(-GAMMA / ZETA))


def keep_count(n: int, target: float) -> int:
    """Units kept of n at sparsity target: ceil(n (1 - t)), at least one."""
    return max(1, math.ceil(n * (1.0 - target) - 1e-9))


def top_units(values: torch.Tensor, target: float) -> torch.Tensor:
    """values with all but the ceil(N (1 - t)) largest (over every layer) set to 0."""
    flat = values.flatten()
    keep = keep_count(flat.numel(), target)
    out = torch.zeros_like(flat)
    idx = torch.topk(flat, keep).indices
    out[idx] = flat[idx]
    return out.view_as(values)


@dataclass
class DDPConfig:
    target: float = 0.2            # sparsity of each unit type
    steps: int = 1000
    lr_z: float = 2e-2
    lr_l13: float = 2e-2
    lr_l2: float = 4e-1
    warmup: int = 100
    distill: float = 2.0           # r (0: no KL)
    temperature: float = 1.0       # tau
    heads: bool = True
    channels: bool = True
    method: str = "ddp"            # or "hard-concrete": Louizos et al.'s stochastic L0 gates (the baseline)


class DDP:
    """The mask logits of one model and the training loop that learns them."""

    def __init__(self, model, config: DDPConfig = DDPConfig(), seed: int = 0):
        self.model, self.config = model, config
        n_layers, _, n_kv, _, inter = _shape(model)
        g = torch.Generator().manual_seed(seed)
        dev = next(model.parameters()).device
        self.z = {}
        if config.heads:
            self.z["heads"] = (1.0 + 0.01 * torch.randn(n_layers, n_kv, generator=g)).to(dev).requires_grad_()
        if config.channels:
            self.z["channels"] = (1.0 + 0.01 * torch.randn(n_layers, inter, generator=g)).to(dev).requires_grad_()
        # (lambda_1, lambda_2, lambda_3) per unit type, each its own tensor: lambda_2 has its own rate.
        self.lambdas = {k: tuple(torch.zeros((), device=dev, requires_grad=True) for _ in range(3)) for k in self.z}
        for p in model.parameters():
            p.requires_grad_(False)

    def penalty(self, progress: float):
        total, stats = 0.0, {}
        for kind, z in self.z.items():
            s = hard_concrete_l0(z) if self.config.method == "hard-concrete" else score(z, progress)
            s_hat = 1.0 - s.mean()
            l1, l2, l3 = self.lambdas[kind]
            gap = s_hat - self.config.target
            total = total + l1 * gap + l2 * gap * gap + l3 * (s * (1 - s)).mean()
            stats[kind] = (float(s_hat.detach()), float((s * (1 - s)).mean().detach()))
        return total, stats

    def train(self, batches, log=None):
        """batches: an iterable of token id tensors [B, T], cycled for config.steps steps."""
        c = self.config
        opt_z = torch.optim.AdamW(list(self.z.values()), lr=c.lr_z, weight_decay=0.0)
        l13 = [t for k in self.lambdas for j, t in enumerate(self.lambdas[k]) if j != 1]
        l2 = [self.lambdas[k][1] for k in self.lambdas]
        opt_l = torch.optim.AdamW([{"params": l13, "lr": c.lr_l13}, {"params": l2, "lr": c.lr_l2}], weight_decay=0.0,
                                  maximize=True)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt_z, lambda s: min(1.0, (s + 1) / max(1, c.warmup)) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / c.steps))))
        batches = list(batches)
        history = []
        for step in range(c.steps):
            ids = batches[step % len(batches)]
            progress = step / max(1, c.steps - 1)
            teacher = None
            if c.distill > 0:
                with torch.no_grad():
                    teacher = self.model(ids).logits
            gate = hard_concrete_sample if c.method == "hard-concrete" else relu_ste
            with gated(self.model, gate(self.z["heads"]) if "heads" in self.z else None,
                       gate(self.z["channels"]) if "channels" in self.z else None):
                logits = self.model(ids).logits
            ce = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
            loss = ce
            if teacher is not None:
                t = c.temperature
                loss = loss + c.distill * t * t * F.kl_div(F.log_softmax(logits.float() / t, -1),
                                                             F.log_softmax(teacher.float() / t, -1),
                                                             log_target=True, reduction="batchmean") / logits.shape[1]
            pen, stats = self.penalty(progress)
            opt_z.zero_grad()
            opt_l.zero_grad()
            (loss + pen).backward()
            opt_z.step()
            opt_l.step()
            sched.step()
            history.append({"step": step, "ce": float(ce.detach()), **{f"{k}_sparsity": v[0] for k, v in stats.items()},
                            **{f"{k}_binary_gap": v[1] for k, v in stats.items()}})
            if log:
                log(history[-1])
        return history

    def deployment_gates(self) -> dict:
        """ReLU(z) (hard-concrete: its deterministic gate) with all but the top ceil(N (1 - t)) units
        of each type (across layers) at 0."""
        with torch.no_grad():
            if self.config.method == "hard-concrete":
                return {k: top_units((torch.sigmoid(z) * (ZETA - GAMMA) + GAMMA).clamp(0, 1), self.config.target)
                        for k, z in self.z.items()}
            return {k: top_units(torch.relu(z), self.config.target) for k, z in self.z.items()}


def fold(model, gates: dict):
    """Multiplies the gates into the weights in place: o_proj input columns per GQA group, up_proj
    rows per channel (a zero gate zeroes the unit). The folded model computes what gated() does."""
    n_layers, n_heads, n_kv, head_dim, _ = _shape(model)
    with torch.no_grad():
        for i, layer in enumerate(_layers(model)):
            if "heads" in gates:
                g = gates["heads"][i].repeat_interleave(n_heads // n_kv * head_dim)
                layer.self_attn.o_proj.weight.mul_(g.to(layer.self_attn.o_proj.weight.dtype)[None, :])
            if "channels" in gates:
                layer.mlp.up_proj.weight.mul_(gates["channels"][i].to(layer.mlp.up_proj.weight.dtype)[:, None])
                if layer.mlp.up_proj.bias is not None:
                    layer.mlp.up_proj.bias.mul_(gates["channels"][i])


def magnitude_gates(model, target: float) -> dict:
    """Baseline: a unit's weight norm (q/k/v rows and o_proj columns of a group; gate/up rows and
    down_proj column of a channel), the largest kept across layers; binary gates."""
    n_layers, n_heads, n_kv, head_dim, _ = _shape(model)
    per = n_heads // n_kv
    heads, channels = [], []
    with torch.no_grad():
        for layer in _layers(model):
            a = layer.self_attn
            q = a.q_proj.weight.float().view(n_kv, per * head_dim, -1).pow(2).sum((1, 2))
            k = a.k_proj.weight.float().view(n_kv, head_dim, -1).pow(2).sum((1, 2))
            v = a.v_proj.weight.float().view(n_kv, head_dim, -1).pow(2).sum((1, 2))
            o = a.o_proj.weight.float().view(-1, n_kv, per * head_dim).pow(2).sum((0, 2))
            heads.append((q + k + v + o).sqrt())
            m = layer.mlp
            channels.append((m.gate_proj.weight.float().pow(2).sum(1) + m.up_proj.weight.float().pow(2).sum(1)
                             + m.down_proj.weight.float().pow(2).sum(0)).sqrt())
    return {"heads": (top_units(torch.stack(heads), target) > 0).float(),
            "channels": (top_units(torch.stack(channels), target) > 0).float()}


def wanda_gates(model, batches, target: float) -> dict:
    """Baseline (Wanda-sp): a unit's sum of |W| times the norm of the input feature it reads, over the
    linears that read its output (o_proj for a group, down_proj for a channel)."""
    n_layers, n_heads, n_kv, head_dim, _ = _shape(model)
    norms = {}
    handles = []
    for i, layer in enumerate(_layers(model)):
        for name, mod in (("o", layer.self_attn.o_proj), ("down", layer.mlp.down_proj)):
            def hook(m, args, key=(i, name)):
                x = args[0].detach().float().flatten(0, -2)
                norms[key] = norms.get(key, 0) + x.pow(2).sum(0)
            handles.append(mod.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            for ids in batches:
                model(ids)
    finally:
        for h in handles:
            h.remove()
    heads, channels = [], []
    with torch.no_grad():
        for i, layer in enumerate(_layers(model)):
            o = layer.self_attn.o_proj.weight.float().abs() * norms[(i, "o")].sqrt()[None, :]
            heads.append(o.view(o.shape[0], n_kv, -1).sum((0, 2)))
            d = layer.mlp.down_proj.weight.float().abs() * norms[(i, "down")].sqrt()[None, :]
            channels.append(d.sum(0))
    return {"heads": (top_units(torch.stack(heads), target) > 0).float(),
            "channels": (top_units(torch.stack(channels), target) > 0).float()}


def save_masks(path: str, gates: dict, n_layers: int):
    """The gates as safetensors, one tensor per layer and unit type (F32; 0 = pruned):
    model.layers.{i}.self_attn.kv_group_gate [KV] and model.layers.{i}.mlp.channel_gate [I];
    written to a temporary name, then renamed."""
    from safetensors.torch import save_file

    tensors = {}
    for i in range(n_layers):
        if "heads" in gates:
            tensors[f"model.layers.{i}.self_attn.kv_group_gate"] = gates["heads"][i].detach().float().cpu().contiguous()
        if "channels" in gates:
            tensors[f"model.layers.{i}.mlp.channel_gate"] = gates["channels"][i].detach().float().cpu().contiguous()
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        save_file(tensors, tmp, metadata={"format": "slipstream-ddp-masks/1"})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
