"""PyTorch's side of the FP32 baseline comparison: the training script's own wan-mini model
(models/wan-mini/model.py, FP32 on this CPU) sampling with the same sampler and steps as the
native runtime (Euler, CFG in one batch of 2, 30 steps, 8×16×16 latents = 512 tokens).

    .venv/bin/python bench/diffusion_torch.py --threads 2 [--steps 30]

Prints one JSON line: median seconds per model call (B=2) and per video, torch's version and
threads. `npm run bench -- diffusion` runs it beside the native runtime. Never asserts.
"""

import argparse
import json
import statistics
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
    p.add_argument("--videos", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = sample.load_model(ROOT / "models" / "wan-mini")
    ctx = PromptTable().encode_text("red circle right")
    x = torch.randn(2, 16, 8, 16, 16)
    t = torch.tensor([500.0, 500.0])
    c2 = torch.cat([ctx, torch.zeros_like(ctx)])
    with torch.no_grad():
        for _ in range(3):
            model(x, t, c2)  # warm-up: allocator, thread pool
        calls = []
        for _ in range(15):
            s = time.perf_counter()
            model(x, t, c2)
            calls.append(time.perf_counter() - s)
        videos = []
        for i in range(a.videos):
            s = time.perf_counter()
            sample.generate(model, ctx, seed=i, steps=a.steps)
            videos.append(time.perf_counter() - s)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "call_s": statistics.median(calls), "video_s": statistics.median(videos), "steps": a.steps,
    }))


if __name__ == "__main__":
    main()
