"""bench/training-attention.md: the attention fine-tuning recipes of issue #8 on wan-mini, on the CPU.

    SLIPSTREAM_LIB=$PWD/build/Release/libslipstream.so .venv/bin/python bench/training/sparse_finetune.py \\
        --out bench/training-attention.md

Two recipes, one teacher (the shipped dense wan-mini, frozen) and one loss, velocity distillation:
L = ‖v_student(x_t, t, c) − v_teacher(x_t, t, c)‖², x_t = (1 − s)·x0 + s·ε on data.py's videos
(codec-encoded), s logit-normal as in train.py, 10% of contexts dropped to zero as in training
(classifier-free guidance samples the unconditional branch too).

a. SpargeAttention2: every block's self-attention runs block-sparse attention on the hybrid
   Top-k ∪ Top-p mask that attention.sparse_predict predicts from that forward's own q and k. Top-k
   is set to half the keep budget and Top-p is calibrated on the teacher's q, k (bisection) so the
   mean fraction of dropped tiles is the target, 90% or 95%.
b. SLA2: every self-attention is training.SLA2Attention (a learnt router's Top-k `critical` tiles
   in the softmax branch, the rest in the linear branch, mixed by α per head, linear branch
   projected); router, α and projection train.

Both recipes also train the self-attention weights (q, k, v, o, norm_q, norm_k of every block) and
freeze the rest: the approximation error sits in self-attention, and a frozen FFN, cross-attention
and modulation cannot drift from the teacher in a short, small-batch run.

Tiles: wan-mini's clips (8 frames of 64 x 64) are 512 tokens, 8 x 8 patches per frame. The native
tiles (128 queries x 64 keys) would leave 4 x 8 tiles per head, too coarse for 90-95% sparsity. We
keep the model's training resolution and scale the tiles with it: 32 x 16 tiles give 16 x 32 tiles
per head, half a frame per query tile and two patch rows per key tile, which is exactly the tiling
128 x 64 tiles give a 2048-token clip of 16 x 16 patches per frame (8 frames of 128 x 128). A
2048-token clip costs ~10x the CPU time per step and lies outside the sizes the model was trained
on; --size 128 --block-q 128 --block-k 64 runs the recipe that way. --native-check reports
the before-fine-tuning velocity error at that size too, to show the two tilings agree.

--data trajectories distils on the states the dense teacher visits while it samples instead of on
noised clips: sample.generate's Euler sampler (same step count and CFG as the PSNR evaluation) from
random data.py prompts and noise seeds other than the evaluation's, every x_i recorded with the
teacher's conditional and unconditional velocities as targets (one (state, branch) pair per
example). `--data noised trajectories --sparsity 0.9 --sla-steps 0` trains the 90% Sparge student
both ways and writes the comparison to bench/training-attention-trajectories.md:

    SLIPSTREAM_LIB=$PWD/build/Release/libslipstream.so .venv/bin/python bench/training/sparse_finetune.py \\
        --data noised trajectories --sparsity 0.9 --sla-steps 0
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "adapters" / "torch"))
sys.path.insert(0, str(ROOT / "models" / "wan-mini"))

import data  # noqa: E402
import sample  # noqa: E402
from codec import Codec  # noqa: E402
from model import HEAD_DIM, Attention, apply_rope  # noqa: E402
from prompts import PromptTable  # noqa: E402
from slipstream_torch import attention as A  # noqa: E402
from slipstream_torch.training.attention import SLA2Attention, block_sparse_attention  # noqa: E402

EVAL_PROMPTS = ("red circle right", "blue triangle up", "green square left", "yellow circle recolour",
                "green triangle down", "red square rotate", "blue circle left", "yellow triangle up")
TRAIN_SEED, VAL_SEED, CALIB_SEED = 11, 777, 5
# Trajectory data: prompts drawn from these seeds, noise seeds TRAJ_*_SEED * 1000 + j (the
# evaluation samples use seed + prompt index = 0, 1, ...).
TRAJ_TRAIN_SEED, TRAJ_VAL_SEED = 13, 779


# ---------------------------------------------------------------- students

class DenseKernel(nn.Module):
    """softmax(qkᵀ/√d)v on NHD tensors, as model.Attention computes it."""

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


class SpargeKernel(nn.Module):
    """Block-sparse attention on SpargeAttention2's hybrid mask, predicted per call from the detached
    q and k (the mask is not learnt). `mask` fixes the mask instead (a [nQb, nKb] bool, broadcast
    over batch and heads). Counts kept and total tiles for the realised sparsity."""

    def __init__(self, topk=0.0, topp=0.0, block_q=32, block_k=16, mask=None):
        super().__init__()
        self.topk, self.topp, self.block_q, self.block_k, self.mask = topk, topp, block_q, block_k, mask
        self.kept = self.total = 0

    def forward(self, q, k, v):
        if self.mask is None:
            qn, kn = (np.ascontiguousarray(t.detach().float().numpy()) for t in (q, k))
            mask, _ = A.sparse_predict(qn, kn, layout="NHD", block_q=self.block_q, block_k=self.block_k,
                                       topk=self.topk, topp=self.topp)
            mask = torch.from_numpy(mask)
        else:
            mask = self.mask.expand(q.shape[0], q.shape[2], *self.mask.shape)
        self.kept += int(mask.sum())
        self.total += mask.numel()
        return block_sparse_attention(q, k, v, mask, layout="NHD", block_q=self.block_q, block_k=self.block_k)


class CaptureKernel(DenseKernel):
    """Dense attention that keeps (q, k) for mask calibration."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, q, k, v):
        self.seen.append((q.detach().float().numpy().copy(), k.detach().float().numpy().copy()))
        return super().forward(q, k, v)


class KernelAttention(Attention):
    """wan-mini's self-attention (same weights and state-dict names) with the softmax attention
    replaced by `kernel(q, k, v)` on [B, L, heads, head_dim] tensors."""

    def __init__(self, dense: Attention, kernel: nn.Module):
        super().__init__(dense.q.in_features, dense.norm_q.eps)
        self.load_state_dict(dense.state_dict())
        self.kernel = kernel

    def forward(self, x, ctx=None, rope=None):
        assert ctx is None, "only self-attention is replaced"
        b, n = x.shape[:2]
        q = self.norm_q(self.q(x)).view(b, n, self.heads, HEAD_DIM)
        k = self.norm_k(self.k(x)).view(b, n, self.heads, HEAD_DIM)
        v = self.v(x).view(b, n, self.heads, HEAD_DIM)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return self.o(self.kernel(q, k, v).reshape(b, n, -1))


def make_student(teacher: nn.Module, make_kernel) -> nn.Module:
    """A copy of the teacher whose blocks' self-attention runs make_kernel()'s attention."""
    student = copy.deepcopy(teacher)
    for block in student.blocks:
        block.self_attn = KernelAttention(block.self_attn, make_kernel())
    return student


def kernels(model) -> list:
    return [getattr(blk.self_attn, "kernel", None) for blk in model.blocks]


def trainable_groups(student: nn.Module, lr: float, sla_lr: float) -> list:
    """Freezes the student but for its self-attention: q, k, v, o, norm_q, norm_k at lr, and an
    SLA2 kernel's router, α and projection at sla_lr (they start from a fixed init, not from
    trained weights). Returns AdamW parameter groups."""
    student.requires_grad_(False)
    attn, sla = [], []
    for block in student.blocks:
        for name, p in block.self_attn.named_parameters():
            (sla if name.startswith("kernel.") else attn).append(p)
    groups = [{"params": attn, "lr": lr}]
    if sla:
        groups.append({"params": sla, "lr": sla_lr})
    for g in groups:
        for p in g["params"]:
            p.requires_grad_(True)
    return groups


def export_sla2(student, path, critical: float) -> None:
    """The trained SLA2 kernels' inference parameters, per block, in slipstream_torch.sla2's file:
    what SlipstreamAttention's sparse-linear mode loads (the student's own attention weights,
    also fine-tuned, stay in the student)."""
    from slipstream_torch import sla2
    blocks = {i: sla2.from_module(k) for i, k in enumerate(kernels(student)) if isinstance(k, SLA2Attention)}
    if not blocks:
        raise SystemExit("--sla-out: the student has no SLA2 kernel")
    conf = kernels(student)[0].conf
    sla2.save(path, sla2.SLA2Config(critical, 0.0, conf["feature_map"], conf["block_q"], conf["block_k"]), blocks)


def sparge_sparsity(model) -> float:
    ks = [k for k in kernels(model) if isinstance(k, SpargeKernel)]
    kept, total = sum(k.kept for k in ks), sum(k.total for k in ks)
    return 1.0 - kept / total if total else float("nan")


def reset_counts(model):
    for k in kernels(model):
        if isinstance(k, SpargeKernel):
            k.kept = k.total = 0


# ---------------------------------------------------------------- data, calibration, training

def flow_batches(n, batch, seed, frames, size, codec, table, drop=0.1):
    """n batches (x_t, t, context, eps − x0), train.py's distribution; deterministic for a seed."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        video, (c, s, m) = data.batch(batch, g, frames, size)
        x0 = codec.encode(video)
        keep = (torch.rand(batch, generator=g) >= drop).float()
        ctx = table.context(c, s, m) * keep[:, None, None]
        sigma = torch.sigmoid(torch.randn(batch, generator=g))
        eps = torch.randn(x0.shape, generator=g)
        sb = sigma[:, None, None, None, None]
        out.append(((1 - sb) * x0 + sb * eps, sigma * 1000, ctx, eps - x0))
    return out


@torch.no_grad()
def teacher_trajectories(teacher, contexts, seeds, steps, cfg, frames, size, shift=1.0):
    """The states the dense teacher visits while sampling: sample.generate's loop (Euler, CFG,
    same noise for a seed) run for each (context [1, 8, D], seed), recording every state x_i with
    the teacher's velocities. Returns (batches, targets, finals): batches (x [2, ...], t [2],
    [context; 0] [2, 8, D], None), one per state, the conditional and unconditional branches
    exactly as the sampler calls the model; targets the teacher's [v_cond; v_uncond]; finals the
    sampled latents (equal to sample.generate's)."""
    batches, targets, finals = [], [], []
    sig = sample.sigmas(steps, shift)
    for context, seed in zip(contexts, seeds):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(1, 16, frames, size // 4, size // 4, generator=g)
        ctx = torch.cat([context, torch.zeros_like(context)])
        for i in range(steps):
            t = torch.full((2,), sig[i] * 1000.0)
            xx = torch.cat([x, x])
            v2 = teacher(xx, t, ctx)
            batches.append((xx, t, ctx, None))
            targets.append(v2)
            v_cond, v_uncond = v2.chunk(2)
            x = x + (sig[i + 1] - sig[i]) * (v_uncond + cfg * (v_cond - v_uncond))
        finals.append(x)
    return batches, targets, finals


def trajectory_data(teacher, table, n_traj, seed, a):
    """n_traj teacher trajectories from data.py prompts drawn with `seed`, noise seeds
    seed * 1000 + j."""
    g = torch.Generator().manual_seed(seed)
    c, s, m = data.sample_labels(n_traj, g)
    contexts = [table.context(c[j:j + 1], s[j:j + 1], m[j:j + 1]) for j in range(n_traj)]
    return teacher_trajectories(teacher, contexts, [seed * 1000 + j for j in range(n_traj)], a.sample_steps,
                                a.cfg, a.frames, a.size)


def split_branches(batches, targets, n, seed):
    """Batch-1 examples from two-branch trajectory batches: every (state, branch) pair, shuffled
    with `seed`, the first n (cycling if there are fewer)."""
    ex = [((xt[j:j + 1], t[j:j + 1], ctx[j:j + 1], None), vt[j:j + 1])
          for (xt, t, ctx, _), vt in zip(batches, targets) for j in range(xt.shape[0])]
    order = torch.randperm(len(ex), generator=torch.Generator().manual_seed(seed)).tolist()
    picked = [ex[order[i % len(ex)]] for i in range(n)]
    return [b for b, _ in picked], [v for _, v in picked]


@torch.no_grad()
def teacher_targets(teacher, batches):
    return [teacher(xt, t, ctx) for xt, t, ctx, _ in batches]


@torch.no_grad()
def calibrate_topp(teacher, batches, target, block_q, block_k, iters=24):
    """Top-k at half the keep budget, then the Top-p whose mean sparsity over the teacher's own
    (q, k), all layers, is `target` (bisection: sparsity falls as Top-p grows). Returns
    (topk, topp, sparsity reached)."""
    probe = make_student(teacher, CaptureKernel)
    for xt, t, ctx, _ in batches:
        probe(xt, t, ctx)
    pairs = [qk for kern in kernels(probe) for qk in kern.seen]
    topk = (1.0 - target) / 2

    def sparsity(topp):
        kept = total = 0
        for q, k in pairs:
            m, _ = A.sparse_predict(q, k, layout="NHD", block_q=block_q, block_k=block_k, topk=topk, topp=topp)
            kept, total = kept + int(m.sum()), total + m.size
        return 1.0 - kept / total

    lo, hi = 0.0, 1.0  # sparsity(lo) >= target >= sparsity(hi) once bracketed
    if sparsity(lo) < target:
        return topk, 0.0, sparsity(0.0)
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sparsity(mid) >= target else (lo, mid)
    return topk, lo, sparsity(lo)


def rate_factor(schedule: str, i: int, n: int) -> float:
    """The learning-rate multiplier of step i of n: 1 throughout ("none"), or half a cosine from 1
    down to 0 ("cosine"), so that the last steps no longer move a hard Top-k router's choices at the
    full rate."""
    if schedule == "none":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * i / n))
    raise ValueError(f"schedule {schedule!r}: expected 'none' or 'cosine'")


def distill(student, batches, targets, groups, log=print, name="", schedule="none"):
    """One AdamW step per batch on the velocity MSE against the teacher, at the schedule's rate
    (rate_factor); returns the losses."""
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.99), weight_decay=0.0)
    n = max(len(batches), 1)  # LambdaLR evaluates step 0 even when there are no steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: rate_factor(schedule, i, n))
    params = [p for g in groups for p in g["params"]]
    student.train()
    losses, t0 = [], time.time()
    for i, ((xt, t, ctx, _), vt) in enumerate(zip(batches, targets)):
        loss = F.mse_loss(student(xt, t, ctx), vt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (i + 1) % 10 == 0 or i + 1 == len(batches):
            log(f"  {name} step {i + 1:4d}  loss {np.mean(losses[-10:]):.5f}  {time.time() - t0:6.1f}s")
    student.eval()
    return losses


# ---------------------------------------------------------------- metrics

def psnr(a, b):
    """Frames in [-1, 1]: peak-to-peak 2."""
    mse = F.mse_loss(a, b).item()
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


@torch.no_grad()
def evaluate(model, val, val_targets, codec, table, a, dense_frames=None, traj=None):
    """Velocity MSE against the teacher and against eps − x0 (the flow loss) on fixed batches,
    the realised tile sparsity there, and the decoded samples (same prompts and noise as the
    dense model's) with their PSNR against the dense model's. With traj = (batches, targets) of
    teacher_trajectories also the velocity MSE on those states (both branches) and the MSE of
    the CFG-guided velocity v_u + cfg (v_c − v_u) the sampler steps with."""
    model.eval()
    reset_counts(model)
    mse = flow = 0.0
    for (xt, t, ctx, v), vt in zip(val, val_targets):
        out = model(xt, t, ctx)
        mse += F.mse_loss(out, vt).item() / len(val)
        flow += F.mse_loss(out, v).item() / len(val)
    sparsity = sparge_sparsity(model)
    traj_mse = guided_mse = None
    if traj is not None:
        traj_mse = guided_mse = 0.0
        guide = lambda v2: (lambda c, u: u + a.cfg * (c - u))(*v2.chunk(2))
        for (xt, t, ctx, _), vt in zip(*traj):
            out = model(xt, t, ctx)
            traj_mse += F.mse_loss(out, vt).item() / len(traj[0])
            guided_mse += F.mse_loss(guide(out), guide(vt)).item() / len(traj[0])
    frames = []
    for i, text in enumerate(EVAL_PROMPTS[:a.prompts]):
        z = sample.generate(model, table.encode_text(text), a.seed + i, a.sample_steps, a.cfg, 1.0, a.frames, a.size)
        frames.append(codec.decode(z).clamp(-1, 1))
    frames = torch.cat(frames)
    score = None if dense_frames is None else np.mean([psnr(f, d) for f, d in zip(frames, dense_frames)])
    return {"mse": mse, "flow": flow, "sparsity": sparsity, "psnr": score, "frames": frames,
            "traj_mse": traj_mse, "guided_mse": guided_mse}


def sla2_sparsity(critical, n_tokens, block_k):
    nkb = -(-n_tokens // block_k)
    return 1.0 - max(1, math.floor(critical * nkb)) / nkb


# ---------------------------------------------------------------- report

def loss_table(rows) -> list:
    """Markdown rows: each student's training-loss curve points and its seconds."""
    pts = {r["name"]: curve_points(r["losses"]) for r in rows}
    width = max(1, max(len(p) for p in pts.values()))
    lines = ["| student | " + " | ".join(f"point {i + 1}" for i in range(width)) + " | seconds |",
             "|---|" + "---|" * (width + 1)]
    for r in rows:
        cells = [f"step {s}: {v:.5f}" for s, v in pts[r["name"]]]
        cells += [""] * (width - len(cells))
        lines.append(f"| {r['name']} | " + " | ".join(cells) + f" | {r['seconds']:.0f} |")
    return lines


def curve_points(losses, points=5, window=10):
    """Mean train loss over `window` steps ending at evenly spaced steps (the first window, ...,
    the last): [(step, loss)]; none for a student that took no steps."""
    n = len(losses)
    if n == 0:
        return []
    ends = sorted({min(n, max(window, round(n * i / (points - 1)))) for i in range(points)})
    return [(e, float(np.mean(losses[max(0, e - window):e]))) for e in ends]


def fmt(x, spec=".5f"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return format(x, spec)


def write_report(path, a, rows, dense, setup, timings, native=None):
    n_tokens = a.frames * (a.size // 8) ** 2
    lines = [
        "<!-- generated by bench/training/sparse_finetune.py; do not edit by hand -->",
        "# Attention fine-tuning recipes on wan-mini (issue #8 item 2)",
        "",
        f"Generated {datetime.date.today().isoformat()} on the CPU ({platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, 1 torch thread), total {timings['total']:.0f} s. Reproduce:",
        "",
        "    SLIPSTREAM_LIB=$PWD/build/Release/libslipstream.so .venv/bin/python bench/training/sparse_finetune.py \\",
        "        " + shlex.join(a.argv),
        "",
        "**Setup.** Teacher: the shipped dense wan-mini (frozen). Students: the same weights with every",
        "block's self-attention replaced; loss: velocity distillation, the MSE between student and",
        "teacher velocities on noised latents of data.py's videos at logit-normal noise levels (as",
        "train.py), 10% of contexts unconditional. Trained: every block's self-attention weights (q, k, v,",
        "o, norm_q, norm_k; "
        f"{setup['attn_params']:,} of {setup['all_params']:,} parameters) at lr {a.lr:g}, plus SLA2's router, α and",
        f"projection at lr {a.sla_lr:g}; AdamW, batch {a.batch}, grad clip 1, "
        + ("no schedule." if a.schedule == "none" else "the rates decayed to 0 by half a cosine."),
        f"Clips: {a.frames} frames of {a.size} x {a.size} px = {n_tokens} tokens; tiles {a.block_q} queries x "
        f"{a.block_k} keys = {-(-n_tokens // a.block_q)} x {-(-n_tokens // a.block_k)} tiles per head, the tiling",
        "the native 128 x 64 tiles give a 2048-token clip (8 frames of 128 x 128; see the script's docstring).",
        "",
        "- SpargeAttention2: hybrid mask, Top-k at half the keep budget, Top-p calibrated on the teacher's",
        "  q, k (" + "; ".join(f"{s:.0%}: topk {c['topk']:.3f}, topp {c['topp']:.4f}" for s, c in setup["calib"].items())
        + "), predicted anew at every forward.",
        f"- SLA2: `SLA2Attention(critical={a.sla_critical:g})`: per query tile the router's top "
        f"{max(1, math.floor(a.sla_critical * -(-n_tokens // a.block_k)))} key tiles in the softmax branch, the",
        "  rest in the linear branch (softmax φ); init router = identity, α = 0.5, projection = identity.",
        f"- Metrics on {a.val} fixed held-out clips (seed {VAL_SEED}): **velocity MSE** against the teacher, the",
        "  **flow loss** (MSE against ε − x0, the training target), and the realised **tile sparsity**",
        "  (SLA2: tiles outside the softmax branch). **PSNR**: decoded frames sampled from the same noise",
        f"  and prompt as the dense model ({a.prompts} prompts, {a.sample_steps} Euler steps, CFG {a.cfg:g}), against the dense",
        "  model's frames, in [-1, 1] (peak-to-peak 2).",
        f"- **Step counts are small** ({a.steps} Sparge steps, {a.sla_steps} SLA2 steps, batch {a.batch}) to keep the",
        "  whole run near 15 minutes on the shared 2-core CPU; the papers fine-tune for hundreds to thousands",
        "  of steps at far larger batches.",
        "",
        "| student | tile sparsity | fine-tune steps | velocity MSE vs teacher | flow loss | PSNR vs dense (dB) |",
        "|---|---|---|---|---|---|",
        f"| dense (teacher) | 0% | — | 0 | {dense['flow']:.5f} | — |",
    ]
    for r in rows:
        for when in ("before", "after"):
            m = r[when]
            steps = "0" if when == "before" else str(len(r["losses"]))
            lines.append(f"| {r['name']}, {when} | {m['sparsity']:.1%} | {steps} | {m['mse']:.5f} | {m['flow']:.5f} | "
                         f"{fmt(m['psnr'], '.2f')} |")
    lines += ['', '**Reading.** Distillation lowers the velocity error on held-out noised clips at every setting, yet', "the sampled frames end further from the dense model's (lower PSNR): the loss is met on noised data, not", '(as far as these short runs show) on the states a 10-step CFG sampler visits. Distilling on the', "teacher's own sampling trajectories is the next recipe to try; PSNR near 13-16 dB says every sparse", 'sample is still far from the dense one.',
              "Distilling on the teacher's sampling trajectories (--data trajectories, 90% Sparge only) is",
              "compared in bench/training-attention-trajectories.md."]
    lines += ["", "**Training loss** (velocity MSE on the training batches, mean of the 10 steps ending at the step shown):", ""]
    lines += loss_table(rows)
    if native:
        lines += ["", f"**Native tiles, before fine-tuning** (--native-check): 8 frames of 128 x 128 = 2048 tokens, "
                  f"128 x 64 tiles, Top-p calibrated the same way, {native['val']} held-out clips:", "",
                  "| tiling | target | tile sparsity | velocity MSE vs teacher | flow loss (dense: "
                  f"{native['dense_flow']:.5f}) |", "|---|---|---|---|---|"]
        for row in native["rows"]:
            lines.append(f"| 2048 tokens, 128 x 64 | {row['target']:.0%} | {row['sparsity']:.1%} | {row['mse']:.5f} | "
                         f"{row['flow']:.5f} |")
        for r in rows:
            if r["name"].startswith("Sparge"):
                lines.append(f"| {n_tokens} tokens, {a.block_q} x {a.block_k} | {r['target']:.0%} | "
                             f"{r['before']['sparsity']:.1%} | {r['before']['mse']:.5f} | {r['before']['flow']:.5f} |")
    lines += ["", "Times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), ""]
    Path(path).write_text("\n".join(lines))


def write_trajectory_report(path, a, rows, dense, setup, timings):
    """The --data comparison: the same recipes distilled on noised clips and on teacher trajectories."""
    n_tokens = a.frames * (a.size // 8) ** 2
    lines = [
        "<!-- generated by bench/training/sparse_finetune.py; do not edit by hand -->",
        "# Attention distillation on wan-mini: noised clips vs the teacher's sampling trajectories",
        "",
        f"Generated {datetime.date.today().isoformat()} on the CPU ({platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, 1 torch thread), total {timings['total']:.0f} s. Reproduce:",
        "",
        "    SLIPSTREAM_LIB=$PWD/build/Release/libslipstream.so .venv/bin/python bench/training/sparse_finetune.py \\",
        "        " + shlex.join(a.argv),
        "",
        "Follow-up to bench/training-attention.md (its setup, tiles and metrics; its numbers come from the",
        "full run there, these from this run alone). There, velocity distillation on noised clips lowered",
        "the velocity error but the sampled frames moved further from the dense model's. Hypothesis: the",
        "student is trained on x_t = (1 − t) x0 + t ε, but the sampler feeds it the states of a CFG-guided",
        "trajectory. Here the same student is distilled on either data source, same step count:",
        "",
        f"- **noised**: as bench/training-attention.md ({a.steps} steps, batch {a.batch}, seed {TRAIN_SEED}).",
        f"- **trajectories**: the dense teacher samples {a.traj} clips (random data.py prompts, noise seeds "
        f"{TRAJ_TRAIN_SEED * 1000}+j;",
        f"  the evaluation uses seeds {a.seed}..{a.seed + a.prompts - 1}) with the evaluation's sampler: {a.sample_steps} "
        f"Euler steps, CFG {a.cfg:g}.",
        f"  Every state x_i gives two examples, conditional and unconditional context, with the teacher's",
        f"  velocity as target; {a.steps} of the {2 * a.traj * a.sample_steps} examples, shuffled, one per step (batch 1).",
        "- Metrics: velocity MSE on the held-out noised clips (as before); on "
        f"{a.traj_val} held-out teacher trajectories (prompt",
        f"  seed {TRAJ_VAL_SEED}, {a.traj_val * a.sample_steps} states x 2 branches): the **velocity MSE** of both "
        "branches and the **guided MSE**,",
        "  the MSE of v_u + cfg (v_c − v_u), the velocity the sampler actually steps with; PSNR of the",
        f"  sampled frames against the dense model's ({a.prompts} prompts, same noise).",
        "",
        "| student | data | tile sparsity | steps | velocity MSE, noised clips | velocity MSE, trajectories | "
        "guided MSE, trajectories | PSNR vs dense (dB) |",
        "|---|---|---|---|---|---|---|---|",
        f"| dense (teacher) | — | 0% | — | 0 | {fmt(dense['traj_mse'])} | {fmt(dense['guided_mse'])} | — |",
    ]
    seen = set()
    for r in rows:
        for when in ("before", "after"):
            if when == "before" and r["recipe"] in seen:
                continue
            m = r[when]
            data_cell = "—" if when == "before" else r["data"]
            steps = "0" if when == "before" else str(len(r["losses"]))
            lines.append(f"| {r['recipe']}, {when} | {data_cell} | {m['sparsity']:.1%} | {steps} | {m['mse']:.5f} | "
                         f"{fmt(m['traj_mse'])} | {fmt(m['guided_mse'])} | {fmt(m['psnr'], '.2f')} |")
        seen.add(r["recipe"])
    lines += ["", "**Reading** (from this run's numbers):", ""]
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        rs = {r["data"]: r for r in rows if r["recipe"] == recipe}
        b = next(iter(rs.values()))["before"]
        for src, r in rs.items():
            m = r["after"]
            lines.append(f"- {recipe}, {src}: PSNR {b['psnr']:.2f} -> {m['psnr']:.2f} dB "
                         f"({m['psnr'] - b['psnr']:+.2f}); velocity MSE on trajectories {fmt(b['traj_mse'])} -> "
                         f"{fmt(m['traj_mse'])}, guided {fmt(b['guided_mse'])} -> {fmt(m['guided_mse'])}; "
                         f"on noised clips {b['mse']:.5f} -> {m['mse']:.5f}.")
    lines += ["", f"Caveats: one run per data source (deterministic: the noised row repeats bench/training-attention.md's "
              f"numbers when those were made with the same settings), {a.steps} steps at batch 1, PSNR over "
              f"{a.prompts} prompts; the trajectory", "student trains on the very sampler and step count it is "
              "evaluated with (held-out prompts and noise, same schedule)."]
    lines += ["", "**Training loss** (mean of the 10 steps ending at the step shown):", ""]
    lines += loss_table(rows)
    lines += ["", "Times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), ""]
    Path(path).write_text("\n".join(lines))


# ---------------------------------------------------------------- main

def native_check(teacher, codec, table, a, log):
    """Before-fine-tuning velocity error at 2048 tokens with the native 128 x 64 tiles."""
    val = flow_batches(a.native_val, 1, VAL_SEED, 8, 128, codec, table, drop=0.0)
    calib = flow_batches(2, 1, CALIB_SEED, 8, 128, codec, table, drop=0.0)
    targets = teacher_targets(teacher, val)
    dense_flow = float(np.mean([F.mse_loss(vt, v).item() for (_, _, _, v), vt in zip(val, targets)]))
    rows = []
    for target in a.sparsity:
        topk, topp, _ = calibrate_topp(teacher, calib, target, 128, 64)
        st = make_student(teacher, lambda: SpargeKernel(topk, topp, 128, 64)).eval()
        with torch.no_grad():
            outs = [st(xt, t, ctx) for xt, t, ctx, _ in val]
        rows.append({"target": target, "sparsity": sparge_sparsity(st),
                     "mse": float(np.mean([F.mse_loss(o, vt).item() for o, vt in zip(outs, targets)])),
                     "flow": float(np.mean([F.mse_loss(o, b[3]).item() for o, b in zip(outs, val)]))})
        log(f"native tiles {target:.0%}: {rows[-1]}")
    return {"val": a.native_val, "dense_flow": dense_flow, "rows": rows}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="default bench/training-attention.md, with --data other than "
                   "noised alone bench/training-attention-trajectories.md")
    p.add_argument("--data", nargs="+", choices=("noised", "trajectories"), default=["noised"],
                   help="distillation data; several train each recipe once per source")
    p.add_argument("--traj", type=int, default=None,
                   help="teacher trajectories to distil on (default: steps / sample-steps, rounded up)")
    p.add_argument("--traj-val", type=int, default=2, help="held-out teacher trajectories for the metrics")
    p.add_argument("--weights", default=str(ROOT / "models" / "wan-mini"))
    p.add_argument("--steps", type=int, default=100, help="Sparge fine-tuning steps per sparsity")
    p.add_argument("--sla-steps", type=int, default=60, help="0 skips the SLA2 recipe")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--lr", type=float, default=2e-4, help="self-attention weights")
    p.add_argument("--sla-lr", type=float, default=5e-4,
                   help="SLA2 router, alpha, projection (at 2e-3 the loss swung and the velocity error "
                        "ended higher: bench/NOTES.md)")
    p.add_argument("--schedule", choices=("none", "cosine"), default="none",
                   help="learning-rate schedule of every recipe: constant, or decayed to 0 by half a cosine")
    p.add_argument("--sparsity", type=float, nargs="+", default=[0.90, 0.95])
    p.add_argument("--sla-critical", type=float, default=0.05)
    p.add_argument("--sla-out", default=None,
                   help="write the trained SLA2 router, α and projection here (slipstream_torch.sla2's safetensors)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--block-q", type=int, default=32)
    p.add_argument("--block-k", type=int, default=16)
    p.add_argument("--val", type=int, default=8, help="held-out clips for the velocity metrics")
    p.add_argument("--calib", type=int, default=4, help="clips for the Top-p calibration")
    p.add_argument("--prompts", type=int, default=8, help="PSNR prompts, of EVAL_PROMPTS (2 moved SLA2 rows by ~1.5 dB: bench/NOTES.md)")
    p.add_argument("--sample-steps", type=int, default=10)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--native-check", action="store_true")
    p.add_argument("--native-val", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)  # the reports' reproduce line, as given
    if not 1 <= a.prompts <= len(EVAL_PROMPTS):
        raise SystemExit(f"--prompts {a.prompts}: between 1 and {len(EVAL_PROMPTS)} (EVAL_PROMPTS)")
    only_noised = a.data == ["noised"]
    if a.out is None:
        a.out = str(ROOT / "bench" / ("training-attention.md" if only_noised else "training-attention-trajectories.md"))
    # On a busy 2-core machine torch's intra-op threads and libslipstream's pool contend: a dense
    # wan-mini forward measured 0.6 s with one torch thread and 8.6 s with two.
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t_start = time.time()
    timings = {}

    def log(msg):
        print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)

    teacher = sample.load_model(a.weights).requires_grad_(False)
    codec, table = Codec.load(), PromptTable()
    n_steps = max(a.steps, a.sla_steps)
    val = flow_batches(a.val, 1, VAL_SEED, a.frames, a.size, codec, table, drop=0.0)
    calib = flow_batches(a.calib, 1, CALIB_SEED, a.frames, a.size, codec, table, drop=0.0)
    t0 = time.time()
    sources, traj_val = {}, None
    if "noised" in a.data:
        train = flow_batches(n_steps, a.batch, TRAIN_SEED, a.frames, a.size, codec, table)
        sources["noised"] = (train, teacher_targets(teacher, train))
    val_targets = teacher_targets(teacher, val)
    timings["teacher targets"] = time.time() - t0
    if "trajectories" in a.data:
        assert a.batch == 1, "trajectory data trains at batch 1"
        t0 = time.time()
        a.traj = a.traj or -(-n_steps // a.sample_steps)
        tb, tt, _ = trajectory_data(teacher, table, a.traj, TRAJ_TRAIN_SEED, a)
        sources["trajectories"] = split_branches(tb, tt, n_steps, TRAJ_TRAIN_SEED)
        traj_val = trajectory_data(teacher, table, a.traj_val, TRAJ_VAL_SEED, a)[:2]
        timings["teacher trajectories"] = time.time() - t0
        log(f"teacher trajectories: {a.traj} train, {a.traj_val} held out, {timings['teacher trajectories']:.0f} s")
    dense = evaluate(teacher, val, val_targets, codec, table, a, traj=traj_val)
    log(f"dense: flow loss {dense['flow']:.5f}")
    n_tokens = a.frames * (a.size // 8) ** 2
    setup = {"all_params": sum(p.numel() for p in teacher.parameters()), "calib": {}}

    recipes = []
    t0 = time.time()
    for target in a.sparsity:
        topk, topp, reached = calibrate_topp(teacher, calib, target, a.block_q, a.block_k)
        setup["calib"][target] = {"topk": topk, "topp": topp}
        log(f"calibrated {target:.0%}: topk {topk:.3f} topp {topp:.4f} -> {reached:.3%} on the calibration clips")
        recipes.append((f"Sparge {target:.0%}", target, a.steps,
                        lambda topk=topk, topp=topp: SpargeKernel(topk, topp, a.block_q, a.block_k)))
    timings["calibration"] = time.time() - t0
    heads = teacher.blocks[0].self_attn.heads
    if a.sla_steps > 0:
            recipes.append((f"SLA2 critical {a.sla_critical:g}", sla2_sparsity(a.sla_critical, n_tokens, a.block_k),
                        a.sla_steps, lambda: SLA2Attention(heads, HEAD_DIM, critical=a.sla_critical,
                                                           block_q=a.block_q, block_k=a.block_k, layout="NHD")))

    rows = []
    for name, target, steps, make_kernel in recipes:
        before = None  # the untrained student is the same for every data source
        for src, (train, targets) in sources.items():
            label = name if only_noised else f"{name}, {src}"
            t0 = time.time()
            student = make_student(teacher, make_kernel)
            groups = trainable_groups(student, a.lr, a.sla_lr)
            setup["attn_params"] = sum(p.numel() for p in groups[0]["params"])
            if before is None:
                before = evaluate(student, val, val_targets, codec, table, a, dense["frames"], traj_val)
                log(f"{name} before: mse {before['mse']:.5f} psnr {before['psnr']:.2f}")
            t1 = time.time()
            losses = distill(student, train[:steps], targets[:steps], groups, log, label, a.schedule)
            seconds = time.time() - t1
            after = evaluate(student, val, val_targets, codec, table, a, dense["frames"], traj_val)
            log(f"{label} after: mse {after['mse']:.5f} traj {fmt(after['traj_mse'])} psnr {after['psnr']:.2f}")
            if a.sla_out and name.startswith("SLA2"):
                export_sla2(student, a.sla_out, a.sla_critical)
                log(f"wrote the SLA2 router, α and projection of {label} to {a.sla_out}")
            for m in (before, after):
                if math.isnan(m["sparsity"]):
                    m["sparsity"] = target
            rows.append({"name": label, "recipe": name, "data": src, "target": target, "before": before,
                         "after": after, "losses": losses, "seconds": seconds})
            timings[label] = time.time() - t0
    native = None
    if a.native_check:
        t0 = time.time()
        native = native_check(teacher, codec, table, a, log)
        timings["native check"] = time.time() - t0
    timings["total"] = time.time() - t_start
    if only_noised:
        write_report(a.out, a, rows, dense, setup, timings, native)
    else:
        write_trajectory_report(a.out, a, rows, dense, setup, timings)
    log(f"wrote {a.out}")
    return rows


if __name__ == "__main__":
    main()
