"""Zero-shot quantization: W8A8 fake quantization calibrated with real or synthesised inputs, and
distillation QAT, after the task-specific zero-shot QAT recipe for detectors (papers.md section 3).

- W8A8: Conv2d/Linear weights per output channel, activations (each layer's input) per tensor
  with a static scale from calibration. Weights go through fakequant.int8_rows, which is bit
  identical to the native INT8 codec at "row" granularity; activations use the native codec's
  operation order (scale = amax / 127 in float32, one float32 division, round half to even, clamp
  to [-127, 127], multiply), so with the calibration amax equal to the tensor's own amax they equal
  slip_quantize + slip_dequantize at "tensor" granularity bit for bit (test_zsq.py checks both).
  Rounding passes gradients straight through; activation scales are learnable (LSQ) in QAT.
- Stage I, synthesis: sample box/category labels from a prior (one box per image, as the paper's
  one-box labels), optimise images from noise so the frozen full-precision model detects them,
  with BatchNorm-statistics matching and a total-variation prior; optionally the paper's adaptive
  box sampler (the model's own confident detections become targets after a warm-up, targets it
  never finds are dropped).
- Stage II, distillation QAT: the quantized model learns the full-precision model's outputs and
  per-layer features on the synthetic images; no labels.
- Generic collectors of calibration inputs for a diffusion model (its own sampling trajectory)
  and an LLM (its own generations).
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import fakequant

QMAX = 127.0  # the native INT8 codec's symmetric range


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        return torch.round(t)  # half to even, like the codec's rint

    @staticmethod
    def backward(ctx, g):
        return g


class _WeightInt8(torch.autograd.Function):
    """Per-output-channel INT8 of a weight through fakequant.int8_rows; straight-through gradient."""

    @staticmethod
    def forward(ctx, w):
        return fakequant.int8_rows(w.reshape(w.shape[0], -1)).reshape(w.shape).to(w.dtype)

    @staticmethod
    def backward(ctx, g):
        return g


def int8_weight(w: torch.Tensor) -> torch.Tensor:
    return _WeightInt8.apply(w)


def int8_static(x: torch.Tensor, scale: torch.Tensor, qmax: float = QMAX) -> torch.Tensor:
    """x through symmetric INT8 (or a narrower signed range, qmax = 2^(bits-1) - 1) with a given
    float32 scale and back."""
    return torch.clamp(_RoundSTE.apply(x / scale), -qmax, qmax) * scale


def _grad_scale(s: torch.Tensor, k: float) -> torch.Tensor:
    return (s - s * k).detach() + s * k  # value s, gradient times k (LSQ's step-size scaling)


class ActQuant(nn.Module):
    """Static per-tensor INT8 of a layer input. "observe" records amax and passes x through;
    "quant" fake-quantizes with scale = amax / 127 (float32), learnable afterwards. bits < 8 is
    a stress setting outside the native codecs (same arithmetic, qmax = 2^(bits-1) - 1)."""

    def __init__(self, bits: int = 8):
        super().__init__()
        self.qmax = float(2 ** (bits - 1) - 1)
        self.mode = "observe"
        self.register_buffer("amax", torch.zeros((), dtype=torch.float32))
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float32))

    def freeze(self):
        with torch.no_grad():
            a = self.amax.float()
            self.scale.copy_(a / self.qmax if float(a) > 0 else torch.tensor(fakequant._ZERO_SCALE_F32))
        self.mode = "quant"

    def forward(self, x):
        if self.mode == "observe":
            with torch.no_grad():
                self.amax.copy_(torch.maximum(self.amax, x.detach().abs().amax().float()))
            return x
        s = self.scale
        if self.training:  # LSQ: 1 / sqrt(elements x qmax) keeps the step size's updates in scale
            s = _grad_scale(s, 1.0 / math.sqrt(x[0].numel() * self.qmax))
        return int8_static(x, s.abs().clamp_min(1e-12), self.qmax)


class W8A8Conv2d(nn.Module):
    def __init__(self, conv: nn.Conv2d, act_bits: int = 8):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone()) if conv.bias is not None else None
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        if conv.padding_mode != "zeros":
            raise ValueError(f"W8A8Conv2d: expected padding_mode 'zeros', got {conv.padding_mode!r}")
        self.act = ActQuant(act_bits)

    def forward(self, x):
        return F.conv2d(self.act(x), int8_weight(self.weight), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class W8A8Linear(nn.Module):
    def __init__(self, linear: nn.Linear, act_bits: int = 8):
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().clone())
        self.bias = nn.Parameter(linear.bias.detach().clone()) if linear.bias is not None else None
        self.act = ActQuant(act_bits)

    def forward(self, x):
        return F.linear(self.act(x), int8_weight(self.weight), self.bias)


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    out = copy.deepcopy(conv)
    with torch.no_grad():
        k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        out.weight.copy_(conv.weight * k.reshape(-1, 1, 1, 1))
        b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        out.bias = nn.Parameter(bn.bias + (b - bn.running_mean) * k)
    return out


def quantize_w8a8(model: nn.Module, fold_bn: bool = True, act_bits: int = 8) -> nn.Module:
    """A W8A8 copy of model (model is not touched). With fold_bn, a BatchNorm2d that directly
    follows a Conv2d in the same container is folded into it first, as an INT8 deployment would.
    The copy's `zsq_features` maps each quantized layer to the module of model whose output it
    reproduces (the BN after a folded conv), for feature distillation. act_bits < 8: see ActQuant."""
    q = copy.deepcopy(model)
    q.zsq_features = {}

    def visit(parent: nn.Module, prefix: str):
        names = list(parent._modules)
        for i, name in enumerate(names):
            child, full = parent._modules[name], prefix + name
            if isinstance(child, nn.Conv2d):
                nxt = names[i + 1] if i + 1 < len(names) else None
                source = full
                if fold_bn and nxt is not None and isinstance(parent._modules[nxt], nn.BatchNorm2d):
                    child = _fold(child, parent._modules[nxt])
                    parent._modules[nxt] = nn.Identity()
                    source = prefix + nxt
                parent._modules[name] = W8A8Conv2d(child, act_bits)
                q.zsq_features[full] = source
            elif isinstance(child, nn.Linear):
                parent._modules[name] = W8A8Linear(child, act_bits)
                q.zsq_features[full] = full
            elif child is not None and not isinstance(child, nn.Identity):
                visit(child, full + ".")

    visit(q, "")
    return q


def act_quantizers(qmodel: nn.Module):
    return [m for m in qmodel.modules() if isinstance(m, ActQuant)]


@torch.no_grad()
def calibrate(qmodel: nn.Module, batches, forward: Optional[Callable] = None) -> nn.Module:
    """Record each activation's amax over the batches, then fix the scales (amax / 127: the
    codec's own statistic, so one batch reproduces its dynamic scale). Returns qmodel, in eval."""
    acts = act_quantizers(qmodel)
    for a in acts:
        a.mode = "observe"
        a.amax.zero_()
    qmodel.eval()
    for x in batches:
        forward(qmodel, x) if forward else qmodel(x)
    for a in acts:
        a.freeze()
    return qmodel


# --- Stage I: task-specific calibration-set synthesis -------------------------------------------

def sample_box_labels(n: int, image_size: int, num_classes: int, *, min_side: float, max_side: float,
                      boxes_per_image: int = 1, generator: Optional[torch.Generator] = None):
    """The task prior without data: per image, boxes_per_image boxes with a uniform category, a
    side uniform in [min_side, max_side] pixels and a uniform position inside the image (the
    paper's one-box labels with boxes_per_image = 1). Returns [(boxes (k, 4), classes (k,))]."""
    labels = []
    for _ in range(n):
        side = min_side + (max_side - min_side) * torch.rand(boxes_per_image, generator=generator)
        x0 = (image_size - side) * torch.rand(boxes_per_image, generator=generator)
        y0 = (image_size - side) * torch.rand(boxes_per_image, generator=generator)
        boxes = torch.stack([x0, y0, x0 + side, y0 + side], 1)
        labels.append((boxes.numpy(), torch.randint(num_classes, (boxes_per_image,), generator=generator).numpy()))
    return labels


def _box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter).clamp(min=1e-12)


def resample_boxes(labels, detections, initial_count, image_size, *, min_conf=0.2, iou_gate=0.35,
                   area_range=(0.01, 0.85), max_targets=None):
    """One round of the paper's adaptive box sampling: a confident detection (> min_conf) that
    overlaps no current target (IoU < iou_gate) and has a normalised area in area_range becomes a
    target; an initial target that no detection overlaps is dropped (one target always stays).
    Initial targets come first in each image's list. max_targets (not in the paper) caps the
    targets per image: a prior on object counts, which stops a model that fires on noise from
    turning every early false positive into a target. Returns (labels, initial counts)."""
    out, counts = [], []
    for (boxes, classes), (dboxes, dscores, dclasses), n0 in zip(labels, detections, initial_count):
        b, c = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.as_tensor(classes).reshape(-1)
        db, ds, dc = (torch.as_tensor(dboxes, dtype=torch.float32).reshape(-1, 4), torch.as_tensor(dscores).reshape(-1),
                      torch.as_tensor(dclasses).reshape(-1))
        keep = torch.ones(len(b), dtype=torch.bool)
        if len(db):
            matched = _box_iou(b, db).amax(1) >= iou_gate
            keep[:n0] = matched[:n0]
        if not keep.any():
            keep[0] = True
        counts.append(int(keep[:n0].sum()))
        b, c = b[keep], c[keep]
        area = ((db[:, 2] - db[:, 0]) * (db[:, 3] - db[:, 1])) / float(image_size * image_size)
        for j in torch.argsort(ds, descending=True, stable=True).tolist():
            if max_targets is not None and len(b) >= max_targets:
                break
            if ds[j] <= min_conf or not (area_range[0] < area[j] < area_range[1]):
                continue
            if len(b) and _box_iou(db[j:j + 1], b).max() >= iou_gate:
                continue
            b, c = torch.cat([b, db[j:j + 1]]), torch.cat([c, dc[j:j + 1].to(c.dtype)])
        out.append((b.numpy(), c.numpy()))
    return out, counts


class _BNStats:
    """BatchNorm-statistics matching (DeepInversion's r_feature): distance of each BN input's batch
    mean and variance from the running ones."""

    def __init__(self, model):
        self.losses, self.hooks = [], []
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                self.hooks.append(m.register_forward_hook(self._hook))

    def _hook(self, m, inputs, _out):
        x = inputs[0]
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
        self.losses.append(torch.norm(mean - m.running_mean, 2) + torch.norm(var - m.running_var, 2))

    def close(self):
        for h in self.hooks:
            h.remove()


def synthesize(model: nn.Module, labels, *, task_loss: Callable, encode_targets: Callable, image_shape,
               steps: int = 2500, lr: float = 0.2, w_task: float = 0.5, w_bn: float = 0.01, first_bn: float = 2.0,
               w_tv: float = 5e-4, detect: Optional[Callable] = None, warmup: float = 0.32, resample_every: int = 1,
               max_targets: Optional[int] = None,
               generator: Optional[torch.Generator] = None, log: Optional[Callable] = None):
    """Images (n, *image_shape) in [0, 1] that the frozen model detects as labels, optimised from
    uniform noise with Adam (cosine lr): w_task * task_loss + w_bn * BN matching (the first BN
    weighted first_bn times) + w_tv * squared total variation (the paper's weights and lr).
    With detect(model, images) -> [(boxes, scores, classes)], the labels are resampled each step
    every resample_every steps after the first `warmup` fraction (the paper: every step after 800
    of 2,500), capped at max_targets per image (resample_boxes). Returns (images, labels, objective per step)."""
    was_training = model.training
    model.eval()  # BN must use (and be compared with) its running statistics
    n = len(labels)
    x = torch.rand((n, *image_shape), generator=generator).requires_grad_(True)
    opt = torch.optim.Adam([x], lr, betas=(0.5, 0.9))
    n0 = [len(c) for _, c in labels]
    targets, history, bn = encode_targets(labels), [], _BNStats(model)
    try:
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            if detect is not None and step >= warmup * steps and step % resample_every == 0:
                with torch.no_grad():
                    labels, n0 = resample_boxes(labels, detect(model, x.detach()), n0, image_shape[-1],
                                                max_targets=max_targets)
                targets = encode_targets(labels)
            bn.losses.clear()
            out = model(x)
            tv = ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean() + ((x[..., 1:] - x[..., :-1]) ** 2).mean()
            r_bn = sum(l * (first_bn if i == 0 else 1.0) for i, l in enumerate(bn.losses)) if bn.losses else 0.0
            loss = w_task * task_loss(out, targets) + w_bn * r_bn + w_tv * tv
            # autograd.grad, not backward: the model's parameters get no .grad (it stays untouched).
            (x.grad,) = torch.autograd.grad(loss, [x])
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
            history.append(loss.item())
            if log and (step % 50 == 0 or step == steps - 1):
                log(f"synthesize step {step} objective {loss.item():.4f}")
    finally:
        bn.close()
        model.train(was_training)
    return x.detach(), labels, history


# --- Stage II: distillation QAT ------------------------------------------------------------------

def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _flat(out[k])]
    return [t for o in out for t in _flat(o)]


def mse_outputs(student_out, teacher_out):
    return sum(F.mse_loss(s, t) for s, t in zip(_flat(student_out), _flat(teacher_out)))


def distill_qat(qmodel: nn.Module, teacher: nn.Module, images: torch.Tensor, *, steps: int, batch: int = 32,
                lr: float = 1e-4, w_feat: float = 1.0, w_out: float = 0.1, output_loss: Callable = mse_outputs,
                generator: Optional[torch.Generator] = None, log: Optional[Callable] = None):
    """Fine-tune qmodel (from quantize_w8a8, calibrated) towards the frozen teacher on images:
    w_feat * MSE between each quantized layer's output and the teacher module it reproduces
    (qmodel.zsq_features) + w_out * output_loss(student, teacher); the paper's 1.0 / 0.1 weights
    (its 0.04 detection loss on synthetic labels is left out: no labels here). Weights and
    activation scales learn through straight-through rounding; the teacher gets no gradient and
    keeps its parameters. Returns the loss per step."""
    was_training = teacher.training
    teacher.eval()
    pairs = getattr(qmodel, "zsq_features", {})
    s_mods, t_mods = dict(qmodel.named_modules()), dict(teacher.named_modules())
    feats: dict = {"s": {}, "t": {}}
    hooks = []
    for sname, tname in pairs.items():
        # Clones: an in-place activation after the layer would otherwise change what was kept.
        hooks.append(s_mods[sname].register_forward_hook(lambda m, i, o, k=sname: feats["s"].__setitem__(k, o.clone())))
        hooks.append(t_mods[tname].register_forward_hook(lambda m, i, o, k=sname: feats["t"].__setitem__(k, o.clone())))
    params = [p for p in qmodel.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr)
    history = []
    try:
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            idx = torch.randperm(len(images), generator=generator)[:batch]
            x = images[idx]
            with torch.no_grad():
                t_out = teacher(x)
            qmodel.train()
            s_out = qmodel(x)
            feat = sum(F.mse_loss(feats["s"][k], feats["t"][k]) for k in pairs) if pairs else 0.0
            loss = w_feat * feat + w_out * output_loss(s_out, t_out)
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(loss.item())
            if log and (step % 50 == 0 or step == steps - 1):
                log(f"distill step {step} loss {loss.item():.5f}")
    finally:
        for h in hooks:
            h.remove()
        qmodel.eval()
        teacher.train(was_training)
    return history


# --- other model kinds: the model's own outputs as calibration inputs ----------------------------

def diffusion_calibration_inputs(sample_fn: Callable, num_trajectories: int, *, steps_per_trajectory=None,
                                 generator: Optional[torch.Generator] = None):
    """Calibration inputs of a diffusion denoiser taken from its own sampling: sample_fn(callback,
    generator) runs one trajectory from noise and calls callback(step, t, x, **extra) with the
    denoiser's input at each step. With steps_per_trajectory = k, only k steps evenly spaced
    along the trajectory are kept (activation ranges drift with t, so every part of the schedule
    must be represented, as Q-Diffusion's time-step-aware calibration argues). Returns a list of
    {"x", "t", "step", **extra} with detached clones."""
    out = []
    for _ in range(num_trajectories):
        seen = []
        sample_fn(lambda step, t, x, **extra: seen.append({"x": x.detach().clone(), "t": t, "step": step, **extra}),
                  generator)
        if steps_per_trajectory is not None and len(seen) > steps_per_trajectory:
            k = steps_per_trajectory
            picks = sorted({round(i * (len(seen) - 1) / max(k - 1, 1)) for i in range(k)})
            seen = [seen[i] for i in picks]
        out += seen
    return out


def llm_calibration_inputs(generate_fn: Callable, num_sequences: int, *, vocab_size: int, max_new_tokens: int,
                           first_tokens=None, generator: Optional[torch.Generator] = None):
    """Calibration sequences an LLM writes itself (LLM-QAT's data-free recipe): the first token
    drawn uniformly from first_tokens (default: the whole vocabulary), the rest from
    generate_fn(prefix (1, t) LongTensor, max_new_tokens, generator) -> (1, t + m) LongTensor,
    which should sample rather than decode greedily, so the set covers the model's distribution.
    Returns num_sequences LongTensors (length <= 1 + max_new_tokens)."""
    pool = torch.arange(vocab_size) if first_tokens is None else torch.as_tensor(first_tokens, dtype=torch.long)
    seqs = []
    for _ in range(num_sequences):
        first = pool[torch.randint(len(pool), (1,), generator=generator)].reshape(1, 1)
        seq = generate_fn(first, max_new_tokens, generator)
        if seq.dim() != 2 or seq.shape[0] != 1 or not torch.equal(seq[:, :1], first):
            raise ValueError(f"llm_calibration_inputs: expected generate_fn to return (1, t) tokens starting with the "
                             f"prefix, got shape {tuple(seq.shape)}")
        seqs.append(seq[0, : 1 + max_new_tokens].detach().clone())
    return seqs
