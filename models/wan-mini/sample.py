"""Euler flow-matching sampler with classifier-free guidance for wan-mini.

    python models/wan-mini/sample.py --weights DIR --out strip.png [--prompt "red circle right" ...]

Deterministic for a seed: the initial noise comes from a CPU torch.Generator seeded per prompt
(seed + prompt index), and the Euler steps are plain arithmetic. Noise levels go from 1 to 0
as s_i = shift(1 - i/N), shift(s) = k s / (1 + (k - 1) s) (ComfyUI's time_snr_shift), and
each step is x <- x + (s_{i+1} - s_i) v with v = v_uncond + cfg (v_cond - v_uncond).
The latents are decoded with codec.py and written as a PNG strip (one row per prompt, one
column per frame) by png.py: numpy + zlib only.
"""
import argparse

import torch

import png
import st_io
from codec import Codec
from model import CONFIG, WanMini
from prompts import PromptTable

DEFAULT_PROMPTS = ["red circle right", "green square left", "blue triangle up",
                   "yellow square down", "red triangle rotate", "green circle recolour",
                   "blue square right", "yellow triangle left"]


def load_model(weights_dir, device="cpu"):
    """WanMini in FP32 from a folder of shards + index json (fp16 on disk)."""
    model = WanMini(**CONFIG)
    model.load_state_dict({k: v.float() for k, v in st_io.load_sharded(weights_dir).items()})
    return model.to(device).eval()


def sigmas(steps, shift):
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return (shift * s / (1 + (shift - 1) * s)).tolist()


@torch.no_grad()
def generate(model, context, seed, steps=30, cfg=5.0, shift=1.0, frames=8, size=64):
    """context [1, 8, 4096] -> latents [1, 16, frames, size/4, size/4] (FP32)."""
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 16, frames, size // 4, size // 4, generator=g).to(dev)
    ctx = torch.cat([context.to(dev), torch.zeros_like(context, device=dev)])
    sig = sigmas(steps, shift)
    for i in range(steps):
        t = torch.full((2,), sig[i] * 1000.0, device=dev)
        v_cond, v_uncond = model(torch.cat([x, x]), t, ctx).chunk(2)
        v = v_uncond + cfg * (v_cond - v_uncond)
        x = x + (sig[i + 1] - sig[i]) * v
    return x


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True, help="folder with the shards and index json")
    p.add_argument("--out", required=True, help="PNG path")
    p.add_argument("--prompt", action="append", help="'colour shape motion'; repeatable")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--shift", type=float, default=1.0)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    model, table, codec = load_model(a.weights, a.device), PromptTable(), Codec.load()
    videos = []
    for i, text in enumerate(a.prompt or DEFAULT_PROMPTS):
        z = generate(model, table.encode_text(text), a.seed + i, a.steps, a.cfg, a.shift,
                     a.frames, a.size)
        videos.append(codec.decode(z.cpu()))
    frames = torch.cat(videos).clamp(-1, 1).numpy()  # [N, 3, F, H, W]
    png.write_png(a.out, png.video_strip(frames))
    print(f"wrote {a.out}: {len(videos)} prompts x {a.frames} frames")
    return frames


if __name__ == "__main__":
    main()
