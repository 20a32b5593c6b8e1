"""SlipstreamMixedPrecision's hook: 6Bit-Diffusion's DMPQ on a Wan-style DiT.

Every linear of every transformer block runs with NVFP4 weights behind a blocked Hadamard rotation
(x W^T = (x H)(W H)^T), and its activations, per block and step, either NVFP4 (the block was stable
at the previous step: Γ ≤ threshold) or INT8 per token (volatile, or no Γ yet: the safe side).
Γ is the block's relative residual, mean|out - in| / mean|in|, as the embedded runtime defines it.

Numerics are slipstream_torch.fakequant's, bit-identical to the native codecs: the values are the
ones a W4A4 / W4A8 kernel computes on, the products run in the activations' dtype. On GPUs with
FP4 tensor cores a kernel would run them; on Hopper and on the CPU this is an emulation for
quality (and a calibration tool), not a speedup.

Calibrate mode runs every block twice per step (NVFP4 activations, then the reference without
activation quantization, which it keeps), records (Γ of the previous step, the NVFP4 relative
error), fits E ≈ αΓ + β at the end of the run and writes the threshold (target − β)/α into a
calibration file (slipstream-profile/1's dmpq section, the embedded runtime's format).

With a SlipstreamDeltaCache node whose purify is on, a block the cache recomputes runs PDR
(delta_cache.REFRESH): linears whose input has max|X|/mean|X| above the outlier ratio at the high
precision (bf16: BF16 activations and weight values, FP32 sums; full: FP32), and every linear in
INT8 on the first recompute after a skip.

Hooks: an object patch per linear (the original module stays underneath: LoRA and ComfyUI's weight
casting still apply), a chained per-block replace entry that sets the route and measures Γ, and an
OUTER_SAMPLE wrapper that scopes the state to one run.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .patching import linears, model_object, wrapper
from .prune import GatedValues, _weight_bias
from .delta_cache import REFRESH, block_keys
from . import kernels  # noqa: F401  (puts slipstream_torch on the path)
from slipstream_torch import fakequant

ACTIVATIONS = ("nvfp4", "int8", "full")


@dataclass
class _Run:
    gamma: dict = field(default_factory=dict)     # block -> Γ at the previous step
    route: dict = field(default_factory=dict)     # block -> activation precision for this call
    weights: dict = field(default_factory=dict)   # id(linear) -> quantized rotated weight
    counts: dict = field(default_factory=lambda: {a: 0 for a in ACTIVATIONS})
    per_step: dict = field(default_factory=dict)  # step -> {precision: block calls}
    samples: list = field(default_factory=list)   # calibrate: (Γ_{t-1}, E_rel)
    options: dict = field(default_factory=dict)   # block -> the transformer_options of its running call
    pdr: dict = field(default_factory=lambda: {"int8_after_skip": 0, "high_precision": 0})  # linear calls


class DMPQ:
    """One node's state: routing parameters, the current run, the calibration output."""

    def __init__(self, params: dict, mode: str = "apply", calibration: Path | None = None, target_error: float = 0.0,
                 gamma_threshold: float | None = None, report=None):
        self.params = params
        self.mode = mode
        self.calibration = calibration
        self.target_error = target_error
        self.gamma_threshold = gamma_threshold
        self.report = report
        self.run: _Run | None = None
        self.forced = threading.local()  # calibrate: the precision both passes force
        self.last_stats: dict | None = None
        self.last_profile: dict | None = None
        self.last_samples: list = []

    # ---- routing
    def choose(self, block: int) -> str:
        route = self.params["route"]
        if route in ("bf16", "full"):
            return "full"
        if route != "dmpq":
            return route
        g = self.run.gamma.get(block)
        return "int8" if g is None or g > self.gamma_threshold else "nvfp4"

    def precision(self, block: int) -> str:
        forced = getattr(self.forced, "value", None)
        if forced is not None:
            return forced
        if self.run is None:
            return "full"
        return self.run.route.get(block, "full")

    def purified(self, block: int, x: torch.Tensor, precision: str) -> str:
        """PDR's precision for one linear call of a block the delta cache is recomputing."""
        run = self.run
        refresh = (run.options.get(block) or {}).get(REFRESH) if run is not None else None
        if refresh is None or getattr(self.forced, "value", None) is not None:
            return precision
        if refresh["after_skip"]:
            run.pdr["int8_after_skip"] += 1
            return "int8"
        a = x.detach().abs().float()
        if float(a.max()) > refresh["outlier_ratio"] * float(a.mean()):
            run.pdr["high_precision"] += 1
            return "pdr-" + refresh["precision"]
        return precision

    # ---- hooks
    def outer_sample(self, executor, *args, **kwargs):
        self.run = _Run()
        try:
            out = executor(*args, **kwargs)
            if self.mode == "calibrate":
                self.last_profile = self._write_calibration()
            return out
        finally:
            run, self.run = self.run, None
            self.last_samples = run.samples
            self.last_stats = {"blocks_by_precision": run.counts, "samples": len(run.samples), "pdr_linear_calls": run.pdr,
                               "per_step": [[s, c] for s, c in sorted(run.per_step.items())]}
            if self.report:
                self.report(self.last_stats)

    def block(self, index: int, previous=None):
        def replace(args, extra):
            original = extra["original_block"]
            compute = (lambda a: previous(a, {"original_block": original})) if previous is not None else original
            run = self.run
            if run is None:  # outside a sampling run (ComfyUI's own previews): untouched
                return compute(args)
            x = args["img"]
            step = _step(args.get("transformer_options") or {})
            run.options[index] = args.get("transformer_options")  # where the delta cache marks a refresh
            if self.mode == "calibrate":
                self.forced.value = "nvfp4"
                try:
                    low = compute(args)["img"]
                finally:
                    self.forced.value = "full"
                try:
                    out = compute(args)
                finally:
                    self.forced.value = None
                ref = out["img"]
                e_rel = float((low.float() - ref.float()).abs().mean() / ref.float().abs().mean().clamp_min(1e-30))
                if index in run.gamma:
                    run.samples.append((run.gamma[index], e_rel))
                precision = "full"
            else:
                precision = run.route[index] = self.choose(index)
                out = compute(args)
            run.counts[precision] += 1
            if step is not None:  # None: called outside a sampler's schedule
                run.per_step.setdefault(step, {a: 0 for a in ACTIVATIONS})[precision] += 1
            y = out["img"]
            run.gamma[index] = float((y.float() - x.float()).abs().mean() / x.float().abs().mean().clamp_min(1e-30))
            run.options.pop(index, None)
            return out

        return replace

    def weight(self, linear, w: torch.Tensor, hb: int) -> torch.Tensor:
        """The linear's NVFP4, Hadamard-rotated weight in w's dtype, quantized once per run."""
        cache = self.run.weights if self.run is not None else {}
        key = (id(linear), w.data_ptr(), w.dtype)
        if key not in cache:
            cache[key] = fakequant.nvfp4(fakequant.hadamard(w.float(), hb)).to(w.dtype)
        return cache[key]

    # ---- calibration
    def _write_calibration(self) -> dict:
        run = self.run
        if len(run.samples) < 2:
            raise ValueError("SlipstreamMixedPrecision: calibrate needs at least two sampling steps (Γ comes from the previous step)")
        g = torch.tensor([s[0] for s in run.samples], dtype=torch.float64)
        e = torch.tensor([s[1] for s in run.samples], dtype=torch.float64)
        gm, em = g.mean(), e.mean()
        var = ((g - gm) ** 2).sum()
        alpha = float(((g - gm) * (e - em)).sum() / var) if var > 0 else 0.0
        beta = float(em - alpha * gm)
        ss_res = float(((e - (alpha * g + beta)) ** 2).sum())
        ss_tot = float(((e - em) ** 2).sum())
        r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
        target = self.target_error if self.target_error > 0 else float(e.median())
        # A non-increasing fit carries no routing signal: the median Γ routes half and half.
        threshold = max(0.0, (target - beta) / alpha) if alpha > 0 else float(g.median())
        profile = {
            "format": "slipstream-profile/1",
            "model": "comfyui",
            "sampler": {"solver": "comfyui", "steps": max(1, len(run.per_step)), "shift": 1.0, "cfg": 1.0},
            "prompts": ["(the ComfyUI workflow's)"],
            "dmpq": {"alpha": alpha, "beta": beta, "r2": r2, "targetError": target, "gammaThreshold": threshold,
                     "samples": len(run.samples)},
        }
        write_json_atomic(self.calibration, profile)
        return profile


def _step(options: dict):
    sigmas, schedule = options.get("sigmas"), options.get("sample_sigmas")
    if sigmas is None or schedule is None:
        return None
    s = float(sigmas.flatten()[0])
    sched = schedule.flatten().tolist()
    return min(range(len(sched)), key=lambda i: abs(sched[i] - s))


def write_json_atomic(path: Path, data: dict):
    """The whole file or nothing: a temp file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_threshold(path: Path, node: str = "SlipstreamMixedPrecision") -> float:
    """dmpq.gammaThreshold of a calibration file; errors name the file and the field."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"{node}: cannot read calibration {path}: {e} (run the node in calibrate mode, or `slipstream calibrate`)") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{node}: {path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    if not isinstance(data, dict) or data.get("format") != "slipstream-profile/1":
        raise ValueError(f"{node}: {path}: expected format \"slipstream-profile/1\"")
    t = (data.get("dmpq") or {}).get("gammaThreshold")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not (t >= 0) or t == float("inf"):
        raise ValueError(f"{node}: {path}: expected dmpq.gammaThreshold a finite number >= 0, got {t!r}")
    return float(t)


@wrapper("linear")
class QuantLinear(torch.nn.Module):
    """A block's linear under DMPQ: NVFP4 rotated weights, activations at the block's precision."""

    def __init__(self, linear: torch.nn.Module, state: DMPQ, block: int, hadamard_block: int):
        super().__init__()
        self.linear = linear
        self.state = state
        self.block = block
        self.hb = hadamard_block

    # Model code reads a linear's weight for shapes and dtypes: the original's.
    @property
    def weight(self):
        return self.linear.weight

    @property
    def bias(self):
        return self.linear.bias

    @property
    def in_features(self):
        return self.linear.in_features

    @property
    def out_features(self):
        return self.linear.out_features

    def forward(self, x):
        precision = self.state.purified(self.block, x, self.state.precision(self.block))
        w, b = _weight_bias(self.linear, x)
        wq = self.state.weight(self.linear, w, self.hb)
        xr = fakequant.hadamard(x.float(), self.hb)
        if precision == "nvfp4":
            xr = fakequant.nvfp4(xr)
        elif precision == "int8":
            xr = fakequant.int8_rows(xr)
        elif precision.startswith("pdr-"):  # PDR's high precision: FP32 sums of BF16 (pdr-bf16) or FP32 operands
            xh, wh = (xr.bfloat16().float(), wq.bfloat16().float()) if precision == "pdr-bf16" else (xr, wq.float())
            return F.linear(xh, wh, None if b is None else b.float()).to(x.dtype)
        return F.linear(xr.to(x.dtype), wq, b)


def install(patcher, state: DMPQ, key: str = "slipstream_mixed_precision"):
    """On a clone: a QuantLinear object patch for every linear of every block whose input width
    takes the rotation and NVFP4 blocks, the chained block entries and the run wrapper."""
    dit = patcher.get_model_object("diffusion_model")
    keys = block_keys(dit)
    if any(kind != "double_block" for kind, _ in keys):
        raise ValueError("SlipstreamMixedPrecision: supports Wan-style models (one `blocks` list) for now")
    hb = state.params["hadamardBlock"]
    quantized = 0
    for _, i in keys:
        for name, linear in list(linears(dit.blocks[i])):
            k = linear.in_features
            if k % 16 or (hb and k % hb):
                continue  # the rotation block or NVFP4's 16 does not divide it: stays as it is
            path = f"diffusion_model.blocks.{i}.{name}"
            current = model_object(patcher, path)
            if isinstance(current, GatedValues):  # Prune's gate stays on the outside, on our output
                patch = GatedValues(QuantLinear(current.v, state, i, hb), scale=current.scale)
            else:
                patch = QuantLinear(current, state, i, hb)
            patcher.add_object_patch(path, patch)
            quantized += 1
    if not quantized:
        raise ValueError(f"SlipstreamMixedPrecision: no linear's input width is a multiple of {max(16, hb)}")
    patcher.add_wrapper_with_key("outer_sample", key, state.outer_sample)
    replace = patcher.model_options.setdefault("transformer_options", {}).setdefault("patches_replace", {}).get("dit", {})
    for kind, i in keys:
        patcher.set_model_patch_replace(state.block(i, replace.get((kind, i))), "dit", kind, i)
    return state
