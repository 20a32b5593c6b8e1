"""NVFP4 quantization-aware fine-tuning of qwen3-mini with slipstream_torch.training.NVFP4Linear
(TetraJet-v2's numerics, papers.md 2.1): every linear of the decoder layers (not the embeddings or
the tied lm_head) trains in NVFP4, three runs from the same weights and batches: plain NVFP4 QAT,
+ OsciReset, + OsciReset + OutControl. Held-out perplexity uses train.py's windows (seed 1234; the
first --ppl-batches of its 40 batches). Writes the section "NVFP4 QAT of qwen3-mini" of
bench/training.md (other sections are kept) and a loss CSV beside it:

    SLIPSTREAM_LIB=$PWD/build/Release/libslipstream.so .venv/bin/python models/qwen3-mini/qat.py \\
        --corpus models/qwen3-mini/corpus [--device cuda]

On a GPU (--device cuda) the same runs take larger batches and more steps in minutes; the held-out
perplexity then runs in bf16 autocast as train.py's does there.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import math
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "adapters" / "torch"))
from slipstream_torch.training import NVFP4Linear, OsciReset, OutControl  # noqa: E402

SECTION = "## NVFP4 QAT of qwen3-mini"


def _train_module():
    """train.py as a module of its own name (models/wan-mini has a train.py too)."""
    spec = importlib.util.spec_from_file_location("qwen3_mini_train", HERE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_nvfp4(model, seed: int) -> int:
    """Swaps the decoder layers' nn.Linear for NVFP4Linear on their device (torch-generator draws)."""
    n = 0
    for layer in model.model.layers:
        for name, child in list(layer.named_modules()):
            for attr, lin in list(child.named_children()):
                if isinstance(lin, torch.nn.Linear):
                    setattr(child, attr, NVFP4Linear.from_linear(lin, seed=seed + n, exact_draws=False))
                    n += 1
    return n


def run(base, cfg, args, train_ids, valid_ids, tr, log, device):
    model = copy.deepcopy(base)
    to_nvfp4(model, seed=1000)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    s = args.steps
    # the paper's schedule (of 50,500 iterations: OutControl calibrates at 501-550, OsciReset every
    # 400 from 35,000 with a 50-step window) shrunk to this run's length
    osc = OsciReset(model, threshold=args.osci_threshold, window=max(2, s // 8), every=max(3, s // 4), start=s // 2,
                    reset=cfg["osci"])
    ctl = OutControl(model, start=max(1, s // 20), window=max(1, s // 10), fraction=0.1) if cfg["out"] else None
    g = torch.Generator().manual_seed(args.seed + 1)  # the same batches in every run
    losses, t0 = [], time.time()
    for step in range(s):
        if ctl:
            ctl.step(step)
        x = tr.windows(train_ids, args.batch, args.seq, g).to(device)
        loss = tr.next_token_loss(model, x)
        tr.descend(model, opt, loss)
        osc.step(step)
        losses.append(loss.item())
        log(f"{cfg['name']}: step {step} loss {losses[-1]:.4f} ({time.time() - t0:.0f} s)")
    secs = time.time() - t0
    ppl = tr.perplexity(model, valid_ids, args.seq_eval, device, batches=args.ppl_batches)
    return {"losses": losses, "ppl": ppl, "osc": osc.history, "secs": secs,
            "outliers": sum(int(m.outlier_mask.sum()) for m in osc.layers if m.outlier_mask is not None)}


def write_section(path: Path, text: str):
    old = path.read_text() if path.exists() else "# Training benchmarks\n"
    pattern = re.compile(re.escape(SECTION) + r".*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main(argv=None):
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(HERE / "corpus"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "training.md"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--seq-eval", type=int, default=256, help="train.py's held-out window length")
    ap.add_argument("--ppl-batches", type=int, default=4, help="of train.py's 40 batches of 16 windows")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--osci-threshold", type=float, default=8.0)
    ap.add_argument("--train-lines", type=int, default=20000, help="training lines tokenized (a seeded sample)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU run")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    tr = _train_module()
    tok = AutoTokenizer.from_pretrained(HERE)
    corpus = Path(a.corpus)
    lines = corpus.joinpath("train.txt").read_text().splitlines()
    pick = torch.randperm(len(lines), generator=torch.Generator().manual_seed(a.seed))[: a.train_lines].tolist()
    train_ids = tr.encode(tok, [lines[i] for i in pick])
    valid_ids = tr.encode(tok, corpus.joinpath("valid.txt").read_text().splitlines())
    base = Qwen3ForCausalLM.from_pretrained(HERE, dtype=torch.float32).to(device)
    log = lambda m: print(m, flush=True)  # noqa: E731
    t0 = time.time()
    ppl_fp32 = tr.perplexity(base, valid_ids, a.seq_eval, device, batches=a.ppl_batches)
    ptq = copy.deepcopy(base)
    n_lin = to_nvfp4(ptq, seed=1000)
    ppl_ptq = tr.perplexity(ptq, valid_ids, a.seq_eval, device, batches=a.ppl_batches)
    log(f"FP32 {ppl_fp32:.3f}, NVFP4 before QAT {ppl_ptq:.3f} ({time.time() - t0:.0f} s)")
    del ptq
    configs = [{"name": "NVFP4 QAT", "osci": False, "out": False},
               {"name": "+ OsciReset", "osci": True, "out": False},
               {"name": "+ OsciReset + OutControl", "osci": True, "out": True}]
    results = [run(base, c, a, train_ids, valid_ids, tr, log, device) for c in configs]
    total = time.time() - t0

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    csv = out.with_name("training-qat-loss.csv")
    csv.write_text("step," + ",".join(c["name"] for c in configs) + "\n" + "".join(
        f"{i}," + ",".join(f"{r['losses'][i]:.4f}" for r in results) + "\n" for i in range(a.steps)))
    s = a.steps
    win, every = max(2, s // 8), max(3, s // 4)
    rows = [f"| FP32 (the committed bf16 weights) | - | {ppl_fp32:.3f} | - | - |",
            f"| NVFP4 forward, no training | - | {ppl_ptq:.3f} | - | - |"]
    for c, r in zip(configs, results):
        first, last = sum(r["losses"][:5]) / 5, sum(r["losses"][-5:]) / 5
        osc = ", ".join(f"{n} at {it}" for it, n in r["osc"]) or "none"
        verb = "reset" if c["osci"] else "counted, not reset"
        rows.append(f"| {c['name']} | {first:.3f} → {last:.3f} | {r['ppl']:.3f} | {osc} ({verb}) | "
                    f"{r['outliers'] or '-'} |")
    marks = sorted(set([0, s // 4, s // 2, 3 * s // 4, s - 1]))
    curve = ["| step | " + " | ".join(c["name"] for c in configs) + " |", "|---" * (len(configs) + 1) + "|"]
    curve += [f"| {i} | " + " | ".join(f"{r['losses'][i]:.3f}" for r in results) + " |" for i in marks]
    scale_note = (f"A smoke-scale run: {s} steps can show the recipe working end to end, not the paper's gains "
                  f"(it trains 50,500 steps)." if s < 2000 else f"{s} steps against the paper's 50,500.")
    if device.type == "cuda":
        where = f"**{torch.cuda.get_device_name(device)}** (torch {torch.__version__}; held-out perplexity in bf16 autocast)"
    else:
        where = (f"**{platform.machine()} CPU, {a.threads} thread{'s' if a.threads > 1 else ''} (a 2-core VM shared with other "
                 f"jobs)**")
    text = f"""{SECTION}

Generated by `models/qwen3-mini/qat.py` (do not edit by hand). qwen3-mini (8.4M parameters) with its
{n_lin} decoder linears replaced by `slipstream_torch.training.NVFP4Linear` (TetraJet-v2 numerics:
NVFP4_TJ2 forward, nearest-even, bit-identical to the native codec; backward GEMMs with stochastic
rounding after a 16-point random Hadamard transform; draws from torch's generator); embeddings and
the tied lm_head stay FP32. Fine-tuned from the committed weights for **{s} steps** of {a.batch} x {a.seq}
tokens (AdamW lr {a.lr}, no warmup, grad-clip 1.0), the same batches in each run, on {where},
{total / 60:.1f} min in all. {scale_note}

- Held-out perplexity: train.py's windows (seed 1234), the first {a.ppl_batches} of its 40 batches of 16 x {a.seq_eval}
  tokens ({a.ppl_batches * 16} windows; the model card's 12.51 uses all 640, in bf16 on a GPU).
- OsciReset: threshold {a.osci_threshold:g} on D_q / D_w, {win}-step windows ending every {every} steps from step
  {s // 2} (paper: threshold 8, 50-step windows every 400 from 35,000 of 50,500); weights counted in all three
  runs, reset only where named.
- OutControl: per-channel L2 norms of the inputs over steps {max(1, s // 20)}-{max(1, s // 20) + max(1, s // 10) - 1}, then
  the top 10% of input channels (round(0.1 K)) of every linear go MXFP8 in the forward and dW GEMMs.
- Loss: mean of the first and of the last 5 steps; every step in `bench/training-qat-loss.csv`.

| run | training loss | held-out ppl | oscillating weights (window end step) | MXFP8 channels |
|---|---|---|---|---|
{chr(10).join(rows)}

Training loss by step:

{chr(10).join(curve)}
"""
    write_section(out, text)
    log(f"wrote {out} and {csv} ({total:.0f} s)")


if __name__ == "__main__":
    main()
