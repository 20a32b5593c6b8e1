"""Deterministic synthetic videos: one coloured shape moving, rotating or changing colour.

A prompt is (colour, shape, motion), e.g. "red circle right". Videos are rendered on the
device in one vectorized pass (no PIL): each pixel's signed distance to the shape, in the
shape's own rotated frame, gives a 1-pixel anti-aliased mask. Per-sample parameters (prompt,
size, position, start angle) come from a CPU torch.Generator, so a seed gives the same videos
on CPU and CUDA (up to float rounding).

Output: [B, 3, F, H, W] in [-1, 1], background a dark blue-grey.
"""
import math

import torch

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow")
# right/left/up/down: move SPEED per frame; rotate: a quarter turn clockwise over the clip
# (a circle looks static, by construction); recolour: fade to the next colour in COLOURS.
MOTIONS = ("right", "left", "up", "down", "rotate", "recolour")
RGB = torch.tensor([[0.90, 0.15, 0.15], [0.15, 0.80, 0.20], [0.20, 0.35, 0.95], [0.95, 0.85, 0.15]])
BACKGROUND = torch.tensor([0.08, 0.08, 0.11])
SPEED = 0.055  # translation per frame as a fraction of the frame size (3.5 px at 64)


def prompt_text(colour, shape, motion):
    return f"{COLOURS[colour]} {SHAPES[shape]} {MOTIONS[motion]}"


def parse_prompt(text):
    """'red circle right' -> (colour, shape, motion) indices; errors name what is allowed."""
    words = text.split()
    if len(words) != 3:
        raise ValueError(f"expected 'colour shape motion' for prompt, got {text!r}")
    out = []
    for word, vocab, what in zip(words, (COLOURS, SHAPES, MOTIONS), ("colour", "shape", "motion")):
        if word not in vocab:
            raise ValueError(f"expected one of {vocab} for {what}, got {word!r}")
        out.append(vocab.index(word))
    return tuple(out)


def sample_labels(batch, generator):
    """Uniform random (colour, shape, motion) labels, [B] int64 each."""
    c = torch.randint(len(COLOURS), (batch,), generator=generator)
    s = torch.randint(len(SHAPES), (batch,), generator=generator)
    m = torch.randint(len(MOTIONS), (batch,), generator=generator)
    return c, s, m


def render(colour, shape, motion, generator, frames=8, size=64, device="cpu"):
    """Render [B, 3, F, size, size] videos for label tensors of shape [B]."""
    b = colour.shape[0]
    u = torch.rand(b, 4, generator=generator)  # per-sample randomness, drawn on CPU
    radius = size * (0.13 + 0.07 * u[:, 0])  # circumradius in pixels
    lo, hi = radius + 2, size - radius - 2  # keep the whole shape inside the frame
    # Translations move a fixed SPEED per frame from a random start, not margin to margin:
    # Wan's attention sees only relative positions (RoPE, no absolute embedding), so a motion
    # that is "the same shape, shifted by v each frame" is learnable; "starts at the margin"
    # would need the absolute position and came out incoherent in a first training run.
    travel = SPEED * size * (frames - 1)
    start = lo + (hi - lo - travel).clamp(min=0) * u[:, 1]
    across = lo + (hi - lo) * u[:, 2]  # position on the axis that does not move
    tau = torch.linspace(0, 1, frames)[None]  # [1, F] clip time
    step = SPEED * size * torch.arange(frames, dtype=torch.float32)[None]
    fwd, back = start[:, None] + step, (hi - start + lo)[:, None] - step
    m = motion[:, None]
    static_x = (lo + (hi - lo) * u[:, 1])[:, None].expand(b, frames)
    cx = torch.where(m == 0, fwd, torch.where(m == 1, back, static_x))
    cy = torch.where(m == 3, fwd, torch.where(m == 2, back, across[:, None].expand(b, frames)))
    cx = torch.where((m == 2) | (m == 3), across[:, None].expand(b, frames), cx)  # image y grows downwards
    angle0 = torch.where(motion == 4, 2 * math.pi * u[:, 3], torch.zeros(b))
    angle = angle0[:, None] + torch.where(m == 4, 0.5 * math.pi * tau, torch.zeros_like(tau))
    mix = torch.where(m == 5, tau, torch.zeros_like(tau))[..., None]  # [B, F, 1]
    rgb = (1 - mix) * RGB[colour][:, None] + mix * RGB[(colour + 1) % len(COLOURS)][:, None]

    cx, cy, angle, radius, rgb, shape = (v.to(device) for v in (cx, cy, angle, radius, rgb, shape))
    coords = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    dx = coords[None, None, None, :] - cx[..., None, None]  # [B, F, 1, W]
    dy = coords[None, None, :, None] - cy[..., None, None]  # [B, F, H, 1]
    ca, sa = torch.cos(angle)[..., None, None], torch.sin(angle)[..., None, None]
    px, py = ca * dx + sa * dy, -sa * dx + ca * dy  # pixel in the shape's frame
    r = radius[:, None, None, None]
    d_circle = torch.sqrt(px * px + py * py) - r
    d_square = torch.maximum(px.abs(), py.abs()) - 0.75 * r
    # Equilateral triangle: three half-planes at inradius r/2, one vertex pointing up.
    d_tri = torch.full_like(d_circle, -1e9)
    for k in range(3):
        phi = math.pi / 2 + 2 * math.pi * k / 3 + math.pi  # outward normals of the edges
        d_tri = torch.maximum(d_tri, math.cos(phi) * px - math.sin(phi) * py - 0.5 * r)
    s = shape[:, None, None, None]
    dist = torch.where(s == 0, d_circle, torch.where(s == 1, d_square, d_tri))
    mask = (0.5 - dist).clamp(0, 1)[:, None]  # [B, 1, F, H, W], 1-pixel anti-aliasing
    fg = rgb.permute(0, 2, 1)[..., None, None]  # [B, 3, F, 1, 1]
    bg = BACKGROUND.to(device)[None, :, None, None, None]
    return (bg + mask * (fg - bg)) * 2 - 1


def batch(n, generator, frames=8, size=64, device="cpu"):
    """n random videos and their labels; same generator state -> same batch."""
    c, s, m = sample_labels(n, generator)
    return render(c, s, m, generator, frames, size, device), (c, s, m)
