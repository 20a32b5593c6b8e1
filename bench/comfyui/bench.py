"""Slipstream's ComfyUI nodes inside ComfyUI itself: a random-weight Wan2.1 model (the 1.3B shape by
default) sampled through ComfyUI's own KSampler with and without our nodes, next to core's EasyCache;
per-step time and the output's difference from the unpatched run, into a markdown table.

    python3 bench/comfyui/bench.py --comfyui DIR --out bench/comfyui.md          # GPU machine
    python3 bench/comfyui/bench.py --comfyui DIR --out /tmp/c.md --quick         # a small CPU check

DIR is ComfyUI's public source (never committed; fetched into an ignored folder). Python packages
ComfyUI imports but the machine lacks are stubbed, and the table says which.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.abc
import importlib.machinery
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SHAPES = {  # Wan2.1 T2V 1.3B (ComfyUI's unet_config keys); 480p x 81 frames is a 21 x 60 x 104 latent
    "1.3b": dict(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30, latent=(21, 60, 104)),
    "quick": dict(dim=256, ffn_dim=512, num_heads=2, num_layers=2, latent=(3, 16, 16)),
}


class _Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports of the stubbed packages and any of their submodules give empty modules whose every
    attribute is a placeholder class: enough for ComfyUI's import-time references."""

    def __init__(self, roots):
        self.roots = set(roots)

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        mod = types.ModuleType(spec.name)
        mod.__path__ = []
        mod.__getattr__ = lambda attr: type(attr, (), {}) if not attr.startswith("__") else None
        return mod

    def exec_module(self, module):
        pass


def stub_missing(names):
    """Stubs for the packages ComfyUI imports at load time that this machine lacks (these runs
    never call them); returns their names."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - absent, or present but broken (a wheel for another torch)
            sys.modules.pop(name, None)
            missing.append(name)
    if missing:
        sys.meta_path.insert(0, _Stubs(missing))
    return missing


def load_comfyui(comfy_dir) -> list:
    """ComfyUI's source importable in this process, with our pack beside it: the packages it
    imports but this machine lacks stubbed (returned), the CPU chosen where there is no GPU."""
    stubbed = stub_missing(["torchsde", "torchaudio", "torchvision", "av", "kornia", "spandrel"])
    sys.path.insert(0, str(Path(comfy_dir).resolve()))
    sys.path.insert(0, str(ROOT / "adapters" / "comfyui"))
    import utils.install_util  # noqa: F401  ComfyUI's utils package, before comfy/utils.py can shadow it
    from comfy.cli_args import args as comfy_args
    comfy_args.cpu = not torch.cuda.is_available()
    return stubbed


def write_magnitude_masks(dit, path: Path, channels: float, heads: int):
    """Pruning masks for the bench: per block, the MLP channels with the smallest ||W_up row|| x
    ||W_down column|| and the self-attention heads with the smallest value/output weight norms
    removed (a baseline criterion; DDP would learn them)."""
    from safetensors.torch import save_file
    out = {}
    with torch.no_grad():
        for i, block in enumerate(dit.blocks):
            up, down = block.ffn[0].weight.float(), block.ffn[2].weight.float()
            score = up.norm(dim=1) * down.norm(dim=0)
            gate = torch.ones_like(score)
            gate[score.argsort()[: int(channels * score.numel())]] = 0
            out[f"blocks.{i}.ffn.channel_gate"] = gate.cpu()
            attn = block.self_attn
            n = attn.num_heads
            d = attn.v.weight.shape[0] // n
            hs = attn.v.weight.float().view(n, d, -1).norm(dim=(1, 2)) * attn.o.weight.float().view(-1, n, d).norm(dim=(0, 2))
            hg = torch.ones(n)
            hg[hs.argsort()[:heads].cpu()] = 0
            out[f"blocks.{i}.self_attn.head_gate"] = hg
    save_file(out, str(path))


def core_backends() -> str:
    """Which of core's optional attention backends could run here (sage, flash, xformers need
    their packages)."""
    import comfy.ldm.modules.attention as core
    have = sorted(core.REGISTERED_ATTENTION_FUNCTIONS)
    missing = [n for n in ("sage", "flash", "xformers") if n not in have]
    return f"registered {', '.join(have)}" + (f"; {', '.join(missing)} not installed" if missing else "")


def write_sla2_weights(path, shape) -> None:
    """SLA2 weights for every block with no training behind them (routers and projection near the
    identity, α = 0.5): what the sparse-linear mode costs, not what a trained file gives in quality
    (bench/training/sparse_finetune.py --sla-out makes those)."""
    from slipstream_torch import sla2
    heads, d = shape["num_heads"], shape["dim"] // shape["num_heads"]
    g = torch.Generator().manual_seed(0)
    eye = lambda s: torch.eye(d) + s * torch.randn(d, d, generator=g)  # noqa: E731
    w = sla2.SLA2Weights(eye(0.05), eye(0.05), torch.full((heads,), 0.5), torch.eye(d), torch.zeros(d))
    sla2.save(path, sla2.SLA2Config(0.05, 0.0, "softmax"), {i: w for i in range(shape["num_layers"])})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--comfyui", required=True, help="ComfyUI source folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--only", default=None, help="comma-separated variant name parts: run those (and the unpatched run) only")
    ap.add_argument("--profile", default=None, help="comma-separated variant name parts: profile those (and the unpatched run) instead of the table")
    a = ap.parse_args()
    shape = SHAPES["quick" if a.quick else "1.3b"]
    steps = a.steps or (4 if a.quick else 10)

    stubbed = load_comfyui(a.comfyui)
    cuda = torch.cuda.is_available()
    import comfy.model_management
    import comfy.model_patcher
    import comfy.sample
    import comfy.supported_models
    import comfyui_version
    from comfy_extras.nodes_easycache import EasyCacheNode
    from slipstream_comfy import nodes as ours

    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    unet_config = {"image_model": "wan2.1", "model_type": "t2v", "patch_size": (1, 2, 2), "in_dim": 16, "out_dim": 16,
                   "freq_dim": 256, "text_dim": 4096, "eps": 1e-6,
                   **{k: v for k, v in shape.items() if k != "latent"}}
    config = comfy.supported_models.WAN21_T2V(unet_config)
    config.set_inference_dtype(dtype, None)
    model = config.get_model({}, "", device=device)
    g = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for name, p in model.diffusion_model.named_parameters():
            # Wan's own initialisation: matrices (and the [1, 6, dim] modulations) N(0, 1/fan_in), norm
            # scales 1, biases 0. Zero norm scales would make q = k = 0: uniform attention, nothing to sparsify.
            if p.dim() > 1:
                value = torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5
            else:
                value = torch.ones(p.shape) if "norm" in name and name.endswith("weight") else torch.zeros(p.shape)
            p.copy_(value.to(p.dtype))
    model.diffusion_model.to(device)
    base = comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=torch.device("cpu"))

    t, h, w = shape["latent"]
    latent = torch.zeros(1, 16, t, h, w)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(1))
    positive = [[torch.randn(1, 64, 4096, generator=torch.Generator().manual_seed(2)), {}]]
    negative = [[torch.zeros(1, 64, 4096), {}]]

    def run(patcher, repeats=2):
        """The sampled latent and the mean seconds per step over repeats runs, after a warm-up run
        (ComfyUI loads each newly patched clone, and kernels load on first use: one-time costs)."""
        times = []
        for i in range(repeats + 1):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = comfy.sample.sample(patcher, noise, steps, 5.0, "euler", "simple", positive, negative, latent,
                                      seed=1, disable_pbar=True)
            if cuda:
                torch.cuda.synchronize()
            if i:
                times.append((time.perf_counter() - t0) / steps)
        return out.double(), sum(times) / max(1, len(times))  # float64: a float32 cosine of 10M values drifts past 1

    def profile(patcher, name):
        """Where one run's time goes: the GPU's busy time against the wall, and the top kernels."""
        from torch.profiler import ProfilerActivity, profile as torch_profile
        run(patcher, 0)
        with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            run(patcher, 0)
            wall = time.perf_counter() - t0
        events = prof.key_averages()
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.self_device_time_total for e in kernels) / 1e6
        print(f"\n## {name}: one run, wall {wall:.2f} s, kernels busy {busy:.2f} s", flush=True)
        print(events.table(sort_by="self_device_time_total", row_limit=14, max_name_column_width=70), flush=True)

    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    masks_path = Path(a.out).with_name("bench-masks.safetensors")
    calibration = Path(a.out).with_name("bench-calibration.json")
    write_magnitude_masks(model.diffusion_model, masks_path, channels=0.3, heads=2 if shape["num_heads"] > 2 else 1)
    sla_path = Path(a.out).with_name("bench-sla2.safetensors")
    write_sla2_weights(sla_path, shape)

    variants = [
        ("ComfyUI, no patches (PyTorch attention)", lambda m: m),
        ("SlipstreamAttention sparse (defaults)", lambda m: ours.apply_attention(m, {})),
        ("SlipstreamAttention low-bit", lambda m: ours.apply_attention(m, {"mode": "low-bit"})),
        ("SlipstreamDeltaCache (defaults)", lambda m: ours.apply_delta_cache(m, {})),
        ("Slipstream: attention sparse + delta cache", lambda m: ours.apply_delta_cache(ours.apply_attention(m, {}), {})),
        ("SlipstreamPrune (30% of MLP channels and 2 heads a block, by weight magnitude)",
         lambda m: ours.apply_prune(m, {"masks": str(masks_path)})),
        ("Slipstream: attention sparse + delta cache + prune",
         lambda m: ours.apply_prune(ours.apply_delta_cache(ours.apply_attention(m, {}), {}), {"masks": str(masks_path)})),
        ("SlipstreamMixedPrecision calibrate (records Γ and the NVFP4 error)",
         lambda m: ours.apply_mixed_precision(m, {"mode": "calibrate", "calibration": str(calibration)})),
        ("SlipstreamMixedPrecision DMPQ (W4A4/W4A8 emulated: no FP4 tensor cores here)",
         lambda m: ours.apply_mixed_precision(m, {"calibration": str(calibration)})),
        ("SlipstreamAttention sparse-linear (SLA2, 5% critical tiles; random near-identity router: timing only)",
         lambda m: ours.apply_attention(m, {"mode": "sparse-linear", "sla_weights": str(sla_path)})),
        ("core EasyCache (0.2, 0.15-0.95)", lambda m: EasyCacheNode.execute(m, 0.2, 0.15, 0.95, False).result[0]),
    ]
    def what_ran(patcher) -> str:
        """Our nodes' own statistics of the last run: attention sparsity, blocks skipped."""
        from slipstream_comfy.attention import SlipstreamAttention
        opts = patcher.model_options.get("transformer_options", {})
        notes = []
        override = opts.get("optimized_attention_override")
        if isinstance(override, SlipstreamAttention):
            s = override.stats.summary()
            notes.append(f"{s['attention_calls']} attention calls, sparsity {s['sparsity']:.0%}")
        from slipstream_comfy.prune import HeadNarrowing
        while override is not None:
            if isinstance(override, HeadNarrowing):
                notes.append(f"{override.narrowed} calls on kept heads")
            override = getattr(override, "previous", None)
        for fn in patcher.wrappers.get("outer_sample", {}).get("slipstream_mixed_precision", []):
            s = getattr(fn.__self__, "last_stats", None)
            if s:
                notes.append(", ".join(f"{n} {p}" for p, n in s["blocks_by_precision"].items() if n) + " block calls")
        for fn in patcher.wrappers.get("outer_sample", {}).get("slipstream_delta_cache", []):
            s = getattr(getattr(fn, "__self__", None), "last_stats", None)
            if s:
                total = s["blocks_computed"] + s["blocks_skipped"]
                notes.append(f"{s['blocks_skipped']}/{total} blocks skipped")
        return "; ".join(notes) or "-"

    rows, ref, t_ref = [], None, None
    if a.only:
        variants = [v for v in variants if v[0].startswith("ComfyUI") or any(part in v[0] for part in a.only.split(","))]
    if a.profile:
        for name, make in variants:
            if name.startswith("ComfyUI") or any(part in name for part in a.profile.split(",")):
                profile(make(base), name)
        return
    for name, make in variants:
        patched = make(base)
        out, per_step = run(patched)
        if ref is None:
            ref, t_ref = out, per_step
        rel = ((out - ref).norm() / ref.norm()).item()
        cos = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), 0).item()
        rows.append(f"| {name} | {per_step * 1000:.1f} | {t_ref / per_step:.2f}× | {rel:.3e} | {cos:.5f} | {what_ran(patched)} |")
        print(rows[-1], flush=True)

    dev = torch.cuda.get_device_name() if cuda else "CPU"
    lines = ["# ComfyUI: Slipstream's nodes inside ComfyUI", "",
             f"Generated by `bench/comfyui/bench.py{f' --steps {a.steps}' if a.steps else ''}"
             f"{f' --only {a.only}' if a.only else ''}`; do not edit by hand.", "",
             f"- ComfyUI {comfyui_version.__version__} (public source, not committed), torch {torch.__version__}, {dev}; "
             f"{datetime.date.today().isoformat()}",
             f"- Model: random-weight Wan2.1 T2V, dim {shape['dim']}, {shape['num_layers']} blocks, {shape['num_heads']} heads, "
             f"latent {t}x{h}x{w} ({t * (h // 2) * (w // 2)} tokens), {dtype}; KSampler euler/simple, {steps} steps, cfg 5",
             f"- Stubbed (imported by ComfyUI, missing here, not called by these runs): {', '.join(stubbed) or 'none'}",
             "- Time: mean of 2 runs after a warm-up run of the same variant. Difference: relative L2 and cosine of the sampled latent "
             "against the unpatched run (same seed).",
             f"- Not in this ComfyUI release, so not compared: core's sparse-attention node (added after 0.3.64). "
             f"Core's other attention backends on this machine: {core_backends()}.", "",
             "| variant | ms / step | speedup | rel L2 vs unpatched | cosine | what ran (last run) |",
             "|---|---:|---:|---:|---:|---|", *rows, ""]
    Path(a.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
