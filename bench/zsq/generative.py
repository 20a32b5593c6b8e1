"""Zero-shot W8A8 calibration of the project's two generative models (issue #8): static activation
ranges from real data vs from the model's own outputs (an LLM's generations, a diffusion model's
sampling trajectories) vs a random control. Writes bench/zsq-generative.md (do not edit it by hand).

    SLIPSTREAM_LIB=$PWD/build/Release/libslipstream.so .venv/bin/python bench/zsq/generative.py

CPU, one thread. W8A8 is slipstream_torch.zsq's fake quantization (per-output-channel INT8 weights,
per-tensor static INT8 layer inputs, scale = calibration amax / 127).
- qwen3-mini: every nn.Linear inside the decoder layers (embeddings and the tied lm_head stay FP32);
  scored by held-out perplexity on the first --ppl-batches batches of train.py's windows.
- wan-mini: every nn.Linear inside the DiT blocks (patch/text/time embeddings and the head stay
  FP32); scored by PSNR of the sampled latents and decoded frames against the FP32 model's samples
  from the same noise (sample.py's Euler + CFG sampler).
Needs models/qwen3-mini/corpus/{train,valid}.txt (git-ignored; models/qwen3-mini/corpus.py).
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
QWEN = ROOT / "models" / "qwen3-mini"
WAN = ROOT / "models" / "wan-mini"
sys.path.insert(0, str(ROOT / "adapters" / "torch"))
from slipstream_torch import zsq  # noqa: E402

LLM_PROMPTS = ["Water", "The act of", "A small", "To make", "Light"]
WAN_PROMPTS = ["red circle right", "green square left", "blue triangle up"]  # sample.py's first three


def log(s):
    print(s, flush=True)


# --- qwen3-mini ----------------------------------------------------------------------------------

def _import_qwen_train():
    sys.path.insert(0, str(QWEN))
    import train as qwen_train  # models/qwen3-mini/train.py: windows() and perplexity()
    sys.path.remove(str(QWEN))
    sys.modules.pop("train", None)  # wan-mini has a train.py too
    return qwen_train


def quantize_qwen(fp):
    q = copy.deepcopy(fp)
    q.model.layers = zsq.quantize_w8a8(fp.model.layers)  # decoder linears only
    return q


def run_llm(a, rows, info):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    qt = _import_qwen_train()
    tok = AutoTokenizer.from_pretrained(QWEN)
    fp = AutoModelForCausalLM.from_pretrained(QWEN, dtype=torch.float32).eval()
    vocab = fp.config.vocab_size
    valid_lines = (QWEN / "corpus" / "valid.txt").read_text().splitlines()
    valid_ids = qt.encode(tok, valid_lines)
    train_lines = (QWEN / "corpus" / "train.txt").read_text().splitlines()
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(train_lines), generator=g)[: a.train_lines].tolist()
    train_ids = qt.encode(tok, [train_lines[i] for i in pick])
    seq, n = a.llm_seq, a.llm_calib
    cpu = torch.device("cpu")

    def ppl(model):
        t0 = time.time()
        p = qt.perplexity(model, valid_ids, qt_seq, cpu, batches=a.ppl_batches, batch=16)
        return p, time.time() - t0

    qt_seq = 256  # train.py's --seq: the same windows as the model card's perplexity

    # (a) real corpus text: windows of the training split
    real = [w for w in qt.windows(train_ids, n, seq - 1, g)]  # seq tokens each
    # (b) the model's own generations from a few short prompts (temperature 1, top-p 0.95)
    prompt_ids = {}
    for p in LLM_PROMPTS:
        ids = tok(p)["input_ids"]
        prompt_ids.setdefault(ids[0], ids)

    def generate(prefix, max_new, generator):
        ids = torch.tensor([prompt_ids[int(prefix[0, 0])]])
        torch.manual_seed(int(torch.randint(2 ** 31, (1,), generator=generator)))  # HF samples from the global RNG
        # Sampling stops at <|endoftext|>, which separates entries in the corpus too: keep the EOS and
        # sample on from the whole sequence until it holds 1 + max_new tokens.
        while ids.shape[1] < 1 + max_new:
            cfg = GenerationConfig(do_sample=True, temperature=1.0, top_p=0.95, top_k=0,
                                   max_new_tokens=1 + max_new - ids.shape[1], pad_token_id=tok.eos_token_id)
            ids = fp.generate(ids, generation_config=cfg)
        return ids

    t0 = time.time()
    gen = zsq.llm_calibration_inputs(generate, n, vocab_size=vocab, max_new_tokens=seq - 1,
                                     first_tokens=sorted(prompt_ids), generator=g)
    info["llm_generation_s"] = time.time() - t0
    info["llm_sample_text"] = tok.decode(gen[0][:48]).replace("\n", " ").replace("|", "/")
    # (c) control: uniform random token ids
    rand = [torch.randint(vocab, (seq,), generator=g) for _ in range(n)]

    p, s = ppl(fp)
    rows.append(("qwen3-mini", "FP32", "-", p, s, None))
    log(f"qwen3-mini FP32 ppl {p:.3f} ({s:.1f} s)")
    for name, calib, what in (("W8A8, real calibration", real, f"{n} train-split windows of {seq} tokens"),
                              ("W8A8, own generations (zero-shot)", gen,
                               f"{n} sampled sequences of {seq} tokens from {len(prompt_ids)} short prompts"),
                              ("W8A8, random tokens (control)", rand, f"{n} sequences of {seq} uniform token ids")):
        q = zsq.calibrate(quantize_qwen(fp), [torch.stack(calib)], forward=lambda m, x: m(x))
        ratio = amax_ratio(q, info, "llm")
        p, s = ppl(q)
        rows.append(("qwen3-mini", name, what, p, s, ratio))
        log(f"qwen3-mini {name} ppl {p:.3f} ({s:.1f} s)")
    info["llm_windows"] = a.ppl_batches * 16


def amax_ratio(q, info, key):
    """Each activation's calibrated amax over the real-data calibration's (the first one calibrated):
    (median, min, max) across layers; < 1 means tighter ranges that clip what real inputs reach."""
    amax = torch.stack([a.amax for a in zsq.act_quantizers(q)])
    ref = info.setdefault(f"{key}_real_amax", amax)
    r = amax / ref
    return float(r.median()), float(r.min()), float(r.max())


# --- wan-mini ------------------------------------------------------------------------------------

def psnr(a, b, peak):
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(peak * peak / mse)


def run_wan(a, rows, info):
    sys.path.insert(0, str(WAN))
    import data
    from codec import Codec
    from prompts import PromptTable
    from sample import load_model, sigmas

    fp = load_model(WAN)
    table, codec = PromptTable(), Codec.load()

    @torch.no_grad()
    def sample(model, context, noise, callback=None):
        # sample.generate's Euler + CFG loop, with a hook on the denoiser's inputs
        x, ctx = noise.clone(), torch.cat([context, torch.zeros_like(context)])
        sig = sigmas(a.wan_steps, 1.0)
        for i in range(a.wan_steps):
            xin, t = torch.cat([x, x]), torch.full((2,), sig[i] * 1000.0)
            if callback is not None:
                callback(i, t, xin, context=ctx)
            v_cond, v_uncond = model(xin, t, ctx).chunk(2)
            x = x + (sig[i + 1] - sig[i]) * (v_uncond + a.cfg * (v_cond - v_uncond))
        return x

    def noise(seed):
        return torch.randn(1, 16, 8, 16, 16, generator=torch.Generator().manual_seed(seed))

    def fwd(m, d):
        m(d["x"], d["t"], d["context"])

    g = torch.Generator().manual_seed(0)
    n_traj, k = a.wan_traj, a.wan_calib_steps
    n_inputs = n_traj * k  # calibration forward calls, each a cond + uncond pair (batch 2)
    # (a) real noised training clips (data.py), the flow-matching inputs of train.py
    real = []
    for _ in range(n_inputs):
        video, (c, s, m) = data.batch(1, g)
        x0 = codec.encode(video)
        sigma = torch.sigmoid(torch.randn(1, generator=g))
        xt = (1 - sigma) * x0 + sigma * torch.randn(x0.shape, generator=g)
        ctx = table.context(c, s, m)
        real.append({"x": torch.cat([xt, xt]), "t": (sigma * 1000).repeat(2), "context": torch.cat([ctx, torch.zeros_like(ctx)])})
    # (b) the model's own sampling trajectories: random prompts, fresh noise, k evenly spaced steps
    t0 = time.time()

    def sample_fn(callback, generator):
        c, s, m = data.sample_labels(1, generator)
        z = torch.randn(1, 16, 8, 16, 16, generator=generator)
        sample(fp, table.context(c, s, m), z, lambda step, t, x, **extra: callback(step, t, x, **extra))

    traj = zsq.diffusion_calibration_inputs(sample_fn, n_traj, steps_per_trajectory=k, generator=g)
    info["wan_trajectory_s"] = time.time() - t0
    # (c) control: Gaussian noise latents at uniform random t, random prompts
    gauss = []
    for _ in range(n_inputs):
        c, s, m = data.sample_labels(1, g)
        ctx = table.context(c, s, m)
        x = torch.randn(1, 16, 8, 16, 16, generator=g)
        gauss.append({"x": torch.cat([x, x]), "t": (torch.rand(1, generator=g) * 1000).repeat(2),
                      "context": torch.cat([ctx, torch.zeros_like(ctx)])})

    t0 = time.time()
    ref = [sample(fp, table.encode_text(p), noise(i)) for i, p in enumerate(WAN_PROMPTS)]
    ref_px = [codec.decode(z).clamp(-1, 1) for z in ref]
    info["wan_sample_s"] = (time.time() - t0) / len(WAN_PROMPTS)
    lat_peak = max(float(z.max() - z.min()) for z in ref)
    info["wan_latent_peak"] = lat_peak
    rows.append(("wan-mini", "FP32", "-", None, None, None))
    for name, calib, what in (("W8A8, real calibration", real, f"{n_inputs} noised training clips (logit-normal sigma)"),
                              ("W8A8, own trajectories (zero-shot)", traj,
                               f"{n_traj} sampling trajectories x {k} evenly spaced steps"),
                              ("W8A8, Gaussian noise (control)", gauss, f"{n_inputs} N(0, 1) latents at uniform t")):
        q = copy.deepcopy(fp)
        q.blocks = zsq.quantize_w8a8(fp.blocks)
        zsq.calibrate(q, calib, forward=fwd)
        ratio = amax_ratio(q, info, "wan")
        lat, px = [], []
        for i, p in enumerate(WAN_PROMPTS):
            z = sample(q, table.encode_text(p), noise(i))
            lat.append(psnr(z, ref[i], lat_peak))
            px.append(psnr(codec.decode(z).clamp(-1, 1), ref_px[i], 2.0))
        rows.append(("wan-mini", name, what, (lat, px), None, ratio))
        log(f"wan-mini {name}: latent PSNR {lat}, frame PSNR {px}")
    sys.path.remove(str(WAN))


# --- report --------------------------------------------------------------------------------------

def fr(r):
    return "-" if r is None else f"{r[0]:.2f} ({r[1]:.2f}-{r[2]:.2f})"


def render(rows, info, a):
    L = [
        "# Zero-shot W8A8 calibration of the generative models (generated by `bench/zsq/generative.py`; do not edit by hand)",
        "",
        "Issue #8's zero-shot calibration for a user with no data: static activation ranges taken from the model's",
        "own generations (LLM) or its own sampling trajectories (diffusion), against ranges from real data and a",
        "random-input control. W8A8 is `slipstream_torch.zsq`: per-output-channel INT8 weights (`fakequant.int8_rows`,",
        "the native INT8 codec's `row` numerics) and per-tensor static INT8 layer inputs (scale = calibration amax / 127,",
        "the codec's `tensor` numerics), applied by `zsq.quantize_w8a8` / `zsq.calibrate`; the model-output inputs come",
        "from `zsq.llm_calibration_inputs` and `zsq.diffusion_calibration_inputs`.",
        "",
        "## qwen3-mini (8.4M-parameter Qwen3, GCIDE dictionary text)",
        "",
        "W8A8 on every linear of the 8 decoder layers (q/k/v/o, gate/up/down); token embeddings and the tied `lm_head`",
        f"stay FP32. Held-out perplexity on the first {info['llm_windows']} of `models/qwen3-mini/train.py`'s 640 held-out",
        "windows of 256 tokens (same seed, same windows for every row; the model card's 12.51 is over all 640).",
        "",
        "| configuration | calibration data | held-out perplexity | amax / real amax: median (min-max) | eval s |",
        "|---|---|---|---|---|",
    ]
    for model, name, what, v, s, r in rows:
        if model == "qwen3-mini":
            L.append(f"| {name} | {what} | **{v:.3f}** | {fr(r)} | {s:.1f} |")
    L += [
        "",
        f"Generations: temperature 1, top-p 0.95, no top-k, from the prompts {', '.join(repr(p) for p in LLM_PROMPTS)}"
        f" (one drawn per sequence through `llm_calibration_inputs`' first token); {info['llm_generation_s']:.1f} s.",
        f"The start of one: `{info['llm_sample_text']}`",
        "",
        "## wan-mini (10M-parameter Wan2.1-format video DiT)",
        "",
        "W8A8 on every linear of the 8 DiT blocks (self/cross-attention q/k/v/o, FFN); patch, text and time",
        f"embeddings, the time projection and the head stay FP32. Euler sampler, {a.wan_steps} steps, CFG {a.cfg}, shift 1",
        f"(`models/wan-mini/sample.py`'s loop), prompts {', '.join(repr(p) for p in WAN_PROMPTS)} with seeds",
        f"0-{len(WAN_PROMPTS) - 1}: each quantized model starts from the same noise as the FP32 model and is scored by PSNR",
        f"against the FP32 sample: latents (peak = the FP32 latents' max - min, {info['wan_latent_peak']:.2f}) and",
        "decoded frames (`codec.py`, clamped to [-1, 1], peak 2). Every calibration set is "
        f"{a.wan_traj * a.wan_calib_steps} forward calls of a cond + uncond pair (as the sampler calls the model).",
        "",
        "| configuration | calibration data | latent PSNR dB (mean) | per prompt | frame PSNR dB (mean) | per prompt "
        "| amax / real amax: median (min-max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, name, what, v, _, r in rows:
        if model != "wan-mini":
            continue
        if v is None:
            L.append(f"| {name} | {what} | reference | - | reference | - | - |")
            continue
        lat, px = v
        f = lambda xs: ", ".join(f"{x:.1f}" for x in xs)  # noqa: E731
        L.append(f"| {name} | {what} | **{sum(lat) / len(lat):.2f}** | {f(lat)} | **{sum(px) / len(px):.2f}** | {f(px)} | {fr(r)} |")
    L += [
        "",
        f"Trajectories: random prompts from the 72-prompt vocabulary, fresh noise, the FP32 sampler's own inputs;"
        f" {info['wan_trajectory_s']:.1f} s for {a.wan_traj}. One {a.wan_steps}-step sample takes"
        f" {info['wan_sample_s']:.1f} s here.",
        "",
        f"Budget (CPU, 1 thread, shared 2-core machine, {platform.machine()}, torch {torch.__version__}):"
        f" total {info['total_s']:.0f} s for this script. LLM calibration {a.llm_calib} sequences of {a.llm_seq} tokens;"
        f" {a.train_lines} random training lines tokenised for the real windows. Small budgets: one seed,"
        f" {len(WAN_PROMPTS)} diffusion prompts, a subset of the held-out windows; the spread across seeds was not"
        " measured, so differences of a few hundredths of perplexity or a fraction of a dB are not established.",
        "",
    ]
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ppl-batches", type=int, default=10, help="batches of 16 held-out windows (train.py has 40)")
    ap.add_argument("--llm-calib", type=int, default=8)
    ap.add_argument("--llm-seq", type=int, default=256)
    ap.add_argument("--train-lines", type=int, default=4000)
    ap.add_argument("--wan-steps", type=int, default=20, help="sample.py uses 30")
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--wan-traj", type=int, default=2)
    ap.add_argument("--wan-calib-steps", type=int, default=8)
    ap.add_argument("--only", choices=["llm", "wan"], help="run one half and print; writes no report")
    ap.add_argument("--out", default=str(ROOT / "bench" / "zsq-generative.md"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t0 = time.time()
    rows, info = [], {}
    if a.only != "wan":
        run_llm(a, rows, info)
    if a.only != "llm":
        run_wan(a, rows, info)
    info["total_s"] = time.time() - t0
    log(f"total {info['total_s']:.1f} s")
    if a.only is None:
        Path(a.out).write_text(render(rows, info, a))
        log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
