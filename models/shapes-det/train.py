"""Train shapes-det on the CPU: `python models/shapes-det/train.py [--out DIR]`.

A pool of synthetic images (regenerated from TRAIN_SEED, so nothing is stored) with horizontal
flips, Adam with a cosine schedule, one thread (faster than two on a shared 2-core machine).
Writes model.safetensors, metrics.json (held-out mAP@0.5) and loss.csv into --out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import map_eval  # noqa: E402
import shapes  # noqa: E402


def flip(images, labels):
    boxes = [np.stack([shapes.SIZE - b[:, 2], b[:, 1], shapes.SIZE - b[:, 0], b[:, 3]], 1) for b, _ in labels]
    return images.flip(-1), [(b, c) for b, (_, c) in zip(boxes, labels)]


def train(steps: int, pool: int, batch: int, lr: float, width: int, seed: int = 0, log=print):
    torch.manual_seed(seed)
    images, labels = shapes.make_set(pool, shapes.TRAIN_SEED)
    model = shapes.ShapesDet(width=width)
    opt = torch.optim.Adam(model.parameters(), lr, weight_decay=1e-5)
    rng = np.random.default_rng(seed)
    rows, t0 = [], time.time()
    for step in range(steps):
        for g in opt.param_groups:  # cosine to 5% with a short warm-up
            g["lr"] = lr * min(1.0, (step + 1) / 50) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        idx = rng.choice(pool, batch, replace=False)
        x, y = images[idx], [labels[i] for i in idx]
        if rng.random() < 0.5:
            x, y = flip(x, y)
        model.train()
        loss = shapes.detection_loss(model(x), shapes.encode_targets(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        rows.append((step, loss.item(), time.time() - t0))
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step} loss {float(loss):.4f} {time.time() - t0:.0f}s")
    return model, rows


def evaluate(model, n: int = 500):
    images, labels = shapes.make_set(n, shapes.EVAL_SEED)
    return map_eval.mean_ap(shapes.detect(model, images), labels, len(shapes.CLASSES))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--pool", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--eval", type=int, default=500)
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    model, rows = train(a.steps, a.pool, a.batch, a.lr, a.width)
    train_s = time.time() - t0
    m, aps = evaluate(model, a.eval)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"),
              metadata={"width": str(a.width), "classes": ",".join(shapes.CLASSES)})
    with open(out / "loss.csv", "w") as f:
        f.write("step,loss,seconds\n" + "".join(f"{s},{l:.5f},{t:.1f}\n" for s, l, t in rows))
    metrics = {"map50": m, "ap50": dict(zip(shapes.CLASSES, aps)), "eval_images": a.eval, "steps": a.steps,
               "batch": a.batch, "pool": a.pool, "width": a.width, "train_seconds": round(train_s, 1),
               "params": sum(p.numel() for p in model.parameters())}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics))


def load(path=None, width: int | None = None):
    """The committed detector, in eval mode."""
    from safetensors import safe_open
    path = Path(path or Path(__file__).resolve().parent / "model.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    model = shapes.ShapesDet(width=width or int(meta.get("width", 32)))
    model.load_state_dict(state)
    return model.eval()


if __name__ == "__main__":
    main()
