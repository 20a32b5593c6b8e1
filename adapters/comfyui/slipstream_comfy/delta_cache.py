"""SlipstreamDeltaCache's hook: the Temporal Delta Cache (6Bit-Diffusion) per transformer block,
through ComfyUI's per-block replace entries (`patches_replace["dit"][("double_block", i)]`), each
chained to the entry another pack installed before it.

The policy is plugins/delta-cache/tdc.ts's, step for step: a block's residual delta = out - in is
cached when it runs; its per-step drift r (mean|delta - delta_prev| / mean|delta_prev| over the
steps between runs) is extrapolated from the last two, r^ = r1 + max(0, r1 - r2); reusing a delta
n steps old is predicted to add n * r^ * Gamma of relative error (Gamma = mean|delta| / mean|in|);
a block is skipped while the accumulated prediction stays <= threshold and it has been skipped
fewer than max_skips times in a row. State lives for one sampling run (an OUTER_SAMPLE wrapper
creates and frees it), one history per conditioning batch (ComfyUI's uuids).

Purified Delta Refresh (purify): while a block is recomputed, transformer_options carries
REFRESH = {"after_skip", "outlier_ratio", "precision"}; SlipstreamMixedPrecision's linears read it
(so a quantized block does not write its noise into the cache: linears whose input has
max|X|/mean|X| above outlier_ratio run at the high precision, and the first recompute after a
skip, whose routing Γ is stale, runs in INT8). Without that node nothing reads it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .attention import sampling_progress

REFRESH = "slipstream_refresh"


@dataclass
class _History:
    last_run_step: int = -1
    drift1: float | None = None
    drift2: float | None = None
    gamma: float = 0.0
    error: float = 0.0
    skipped: int = 0


class TemporalDeltaCache:
    """tdc.ts's TemporalDeltaCache. params: the delta-cache manifest's (threshold, maxSkips,
    warmupSteps, finalSteps, ...)."""

    def __init__(self, params: dict):
        self.params = params
        self.blocks: dict = {}
        self.step, self.steps = 0, 1

    def begin_call(self, step: int, steps: int):
        self.step, self.steps = step, steps

    def _history(self, block: int) -> _History:
        return self.blocks.setdefault(block, _History())

    def skip(self, block: int) -> bool:
        p = self.params
        if self.step < p["warmupSteps"] or self.step >= self.steps - p["finalSteps"]:
            return False
        h = self._history(block)
        if h.drift1 is None or h.drift2 is None or h.skipped >= p["maxSkips"]:
            return False
        predicted = h.drift1 + max(0.0, h.drift1 - h.drift2)
        error = h.error + (h.skipped + 1) * predicted * h.gamma
        if error > p["threshold"]:
            return False
        h.error = error
        h.skipped += 1
        return True

    def observe(self, block: int, delta_change, gamma: float):
        h = self._history(block)
        if delta_change is not None and h.last_run_step >= 0:
            drift = delta_change / max(1, self.step - h.last_run_step)
            h.drift2, h.drift1 = h.drift1, drift
        h.last_run_step = self.step
        h.gamma = gamma
        h.error = 0.0
        h.skipped = 0


@dataclass
class CacheStats:
    computed: int = 0
    skipped: int = 0
    refreshed_after_skip: int = 0  # computes that followed a skip of the same block
    seconds_computing: float = 0.0  # wall time of computed blocks: times skipped/computed = time saved
    per_step: dict = field(default_factory=dict)  # step -> [computed, skipped]

    def count(self, step: int, skipped: bool):
        if skipped:
            self.skipped += 1
        else:
            self.computed += 1
        self.per_step.setdefault(step, [0, 0])[1 if skipped else 0] += 1

    def summary(self) -> dict:
        saved = self.seconds_computing / self.computed * self.skipped if self.computed else 0.0
        return {"blocks_computed": self.computed, "blocks_skipped": self.skipped, "seconds_saved_estimate": saved,
                "refreshed_after_skip": self.refreshed_after_skip,
                "per_step": [[s, c, k] for s, (c, k) in sorted(self.per_step.items())]}


@dataclass
class _Run:
    params: dict
    cache_device: str | None
    policies: dict = field(default_factory=dict)  # conditioning key -> TemporalDeltaCache
    deltas: dict = field(default_factory=dict)    # (conditioning key, block) -> cached delta
    skipped_last: set = field(default_factory=set)  # (conditioning key, block) whose last call was a skip
    stats: CacheStats = field(default_factory=CacheStats)
    last_step: int = -1


class DeltaCache:
    """Holds the per-run state; `block(i, previous)` makes block i's replace entry."""

    def __init__(self, params: dict, cache_device: str = "same", verbose: bool = False, report=None, progress=None):
        self.params = params
        self.cache_device = None if cache_device == "same" else cache_device
        self.verbose = verbose
        self.report = report  # called with the run's stats when a run ends
        self.progress = progress  # called with a line of text as each step begins
        self.run: _Run | None = None
        self.last_stats: dict | None = None

    def outer_sample(self, executor, *args, **kwargs):
        self.run = _Run(self.params, self.cache_device)
        try:
            return executor(*args, **kwargs)
        finally:
            self.last_stats = self.run.stats.summary()
            self.run = None  # the cached deltas go with it
            if self.verbose:
                print(f"[Slipstream] delta cache: {self.last_stats}")
            if self.report:
                self.report(self.last_stats)

    def block(self, index, previous=None):
        """Block index's replace entry (index: a (kind, i) key, e.g. ("double_block", 3)). The
        residual of every stream the block returns and takes ("img", and "txt" for Flux's double
        blocks) is cached; the drift and Gamma are the image stream's."""
        def replace(args, extra):
            original = extra["original_block"]
            compute = (lambda a: previous(a, {"original_block": original})) if previous is not None else original
            run = self.run
            options = args.get("transformer_options") or {}
            progress = sampling_progress(options)
            if run is None or progress is None:
                return compute(args)
            steps = options["sample_sigmas"].numel() - 1
            key = tuple(options.get("uuids") or ()) or ("all",)
            policy = run.policies.setdefault(key, TemporalDeltaCache(run.params))
            policy.begin_call(round(progress * steps), steps)
            if self.progress and run.last_step != policy.step:
                run.last_step = policy.step
                st = run.stats
                self.progress(f"step {policy.step + 1}/{steps}: {st.skipped} of {st.skipped + st.computed} blocks skipped so far")
            x = args["img"]
            cached = run.deltas.get((key, index))
            if cached is not None and all(k in args and cached[k].shape == args[k].shape for k in cached) and policy.skip(index):
                run.stats.count(policy.step, True)
                run.skipped_last.add((key, index))
                return {k: args[k] + d.to(device=args[k].device, dtype=args[k].dtype) for k, d in cached.items()}
            after_skip = (key, index) in run.skipped_last
            run.skipped_last.discard((key, index))
            run.stats.refreshed_after_skip += after_skip
            t0 = time.perf_counter()
            if run.params.get("purify") and isinstance(args.get("transformer_options"), dict):
                options[REFRESH] = {"after_skip": after_skip, "outlier_ratio": run.params["outlierRatio"],
                                    "precision": run.params["purifyPrecision"]}
                try:
                    out = compute(args)
                finally:
                    options.pop(REFRESH, None)
            else:
                out = compute(args)
            deltas = {k: (v - args[k]).detach() for k, v in out.items()
                      if torch.is_tensor(v) and torch.is_tensor(args.get(k)) and v.shape == args[k].shape}
            delta = deltas["img"]
            change = None
            if cached is not None and cached["img"].shape == delta.shape:
                prev = cached["img"].to(device=delta.device, dtype=torch.float32)
                change = float((delta.float() - prev).abs().mean() / prev.abs().mean().clamp_min(1e-30))
            gamma = float(delta.float().abs().mean() / x.float().abs().mean().clamp_min(1e-30))
            policy.observe(index, change, gamma)
            run.deltas[(key, index)] = {k: d.to(run.cache_device) if run.cache_device else d for k, d in deltas.items()}
            run.stats.count(policy.step, False)
            run.stats.seconds_computing += time.perf_counter() - t0
            return out

        return replace


def block_keys(diffusion_model):
    """The per-block replace keys of a ComfyUI diffusion model: Wan-style `blocks` are
    ("double_block", i); Flux-style `double_blocks` and `single_blocks` are ("double_block", i)
    and ("single_block", i)."""
    keys = []
    if hasattr(diffusion_model, "blocks"):
        keys += [("double_block", i) for i in range(len(diffusion_model.blocks))]
    else:
        keys += [("double_block", i) for i in range(len(getattr(diffusion_model, "double_blocks", ())))]
        keys += [("single_block", i) for i in range(len(getattr(diffusion_model, "single_blocks", ())))]
    if not keys:
        raise ValueError(f"SlipstreamDeltaCache: {type(diffusion_model).__name__} has no transformer block list this "
                         "node knows (blocks, or double_blocks and single_blocks)")
    return keys


def install(patcher, cache: DeltaCache, keys, key: str = "slipstream_delta_cache"):
    """On a clone: the per-run wrapper and a replace entry per block key (block_keys()), each
    chained to the entry that was there."""
    patcher.add_wrapper_with_key("outer_sample", key, cache.outer_sample)
    dit = patcher.model_options.setdefault("transformer_options", {}).setdefault("patches_replace", {}).get("dit", {})
    for kind, i in keys:
        patcher.set_model_patch_replace(cache.block((kind, i), dit.get((kind, i))), "dit", kind, i)
    return cache
