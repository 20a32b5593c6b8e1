"""PyTorch's side of the FP32 baseline comparison: the training script's own wan-mini model
(models/wan-mini/model.py, FP32 on this CPU) sampling with the same sampler and steps as the
native runtime (Euler, CFG in one batch of 2, 30 steps, 8×16×16 latents = 512 tokens).

    .venv/bin/python bench/diffusion_torch.py --threads 2 [--steps 30]

A peer process, so that `npm run bench -- diffusion` can interleave its measurements with the
native runtime's on a machine whose speed drifts: it answers one JSON line per request line,
    {"op": "info"}                 -> {"torch": version, "threads": n}
    {"op": "calls", "n": 15}       -> {"seconds": [...]}  n timed model calls (B=2), after warm-up
    {"op": "video", "seed": i, "prompt": "red circle right"} -> {"seconds": s}  one whole sampling run
and exits at end of input. Never asserts.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models" / "wan-mini"))
import sample  # noqa: E402
from prompts import PromptTable  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--steps", type=int, default=30)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = sample.load_model(ROOT / "models" / "wan-mini")
    table = PromptTable()
    ctx = table.encode_text("red circle right")
    x = torch.randn(2, 16, 8, 16, 16)
    t = torch.tensor([500.0, 500.0])
    c2 = torch.cat([ctx, torch.zeros_like(ctx)])
    with torch.no_grad():
        for _ in range(3):
            model(x, t, c2)  # warm-up: allocator, thread pool
        for line in sys.stdin:
            req = json.loads(line)
            if req["op"] == "info":
                out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
            elif req["op"] == "calls":
                calls = []
                for _ in range(int(req["n"])):
                    s = time.perf_counter()
                    model(x, t, c2)
                    calls.append(time.perf_counter() - s)
                out = {"seconds": calls}
            elif req["op"] == "video":
                s = time.perf_counter()
                sample.generate(model, table.encode_text(req["prompt"]), seed=int(req["seed"]), steps=a.steps)
                out = {"seconds": time.perf_counter() - s}
            else:
                out = {"error": f"unknown op {req['op']!r}"}
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
