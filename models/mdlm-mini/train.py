"""Trains mdlm-mini: a ~2M-parameter bidirectional transformer, as a masked diffusion LM, on GCIDE entries
(models/qwen3-mini/corpus, qwen3-mini's tokenizer), on the CPU in a few minutes. Writes model.safetensors,
config.json and metrics.json into --out (default: this folder).

    .venv/bin/python models/mdlm-mini/train.py

The loss is LLaDA's: t ~ U(eps, 1], every token masked with probability t, cross-entropy on the masked tokens
weighted by 1/t (the negative ELBO per token), i.e. slipstream_torch.training.vrpo.elbo with one draw.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "adapters" / "torch"))

import mdlm  # noqa: E402
from slipstream_torch.training import vrpo  # noqa: E402


def encode_split(tok, c: mdlm.Config, split: str) -> torch.Tensor:
    return torch.tensor([mdlm.encode(tok, c, p, r)[0] for p, r in mdlm.entries(mdlm.CORPUS / f"{split}.txt")])


@torch.no_grad()
def held_out_loss(model, data: torch.Tensor, c: mdlm.Config, n: int = 256, k: int = 4) -> float:
    """Negative ELBO per token on the first n held-out entries, k discrete-schedule draws each, fixed seed."""
    g = torch.Generator().manual_seed(7)
    x = data[:n]
    draw = vrpo.draw_masks(torch.ones_like(x, dtype=torch.bool), k, 1, generator=g, schedule="discrete")
    total = torch.cat([-vrpo.elbo(model, x[i:i + 64], vrpo.MaskDraw(draw.mask[i:i + 64], draw.weight[i:i + 64], k, 1),
                                  c.mask_id) for i in range(0, n, 64)])
    return total.mean().item() / c.max_len


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    # one thread: on a shared 2-core machine a second OpenMP thread mostly waits for the first
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    tok = mdlm.tokenizer()
    c = mdlm.Config(eos_id=tok.token_to_id("<|endoftext|>"))
    train, valid = encode_split(tok, c, "train"), encode_split(tok, c, "valid")
    model = mdlm.MDLM(c)
    params = sum(p.numel() for p in model.parameters())
    print(f"{params / 1e6:.2f}M parameters, {len(train)} training / {len(valid)} held-out entries", flush=True)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warm = 50
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    g = torch.Generator().manual_seed(1)
    every = torch.ones(args.batch, c.max_len, dtype=torch.bool)
    log, start = [], time.time()
    before = held_out_loss(model, valid, c)
    for step in range(1, args.steps + 1):
        model.train()
        x = train[torch.randint(0, len(train), (args.batch,), generator=g)]
        draw = vrpo.draw_masks(every, 1, 1, generator=g)
        loss = -vrpo.elbo(model, x, draw, c.mask_id).mean() / c.max_len
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps:
            model.eval()
            ev = held_out_loss(model, valid, c)
            log.append({"step": step, "train_loss": round(loss.item(), 4), "held_out_nelbo_per_token": round(ev, 4),
                        "seconds": round(time.time() - start, 1)})
            print(log[-1], flush=True)
    model.eval()
    mdlm.save(model, args.out)
    (args.out / "metrics.json").write_text(json.dumps({
        "parameters": params, "steps": args.steps, "batch": args.batch, "seq_len": c.max_len, "lr": args.lr,
        "train_entries": len(train), "held_out_entries": len(valid),
        "held_out_nelbo_per_token_init": round(before, 4), "log": log}, indent=1) + "\n")


if __name__ == "__main__":
    main()
