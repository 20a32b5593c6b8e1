"""wan-mini: a ~10M-parameter video DiT with Wan2.1's architecture and state-dict names.

Names, shapes and forward math follow Wan2.1 t2v as ComfyUI's `comfy/ldm/wan/model.py`
implements it, so ComfyUI's Wan detection (dim from head.modulation, heads = dim/128,
ffn_dim from blocks.0.ffn.0, in_dim from patch_embedding, out_dim = head.head rows / 4,
num_layers by counting blocks) loads these weights unchanged. The code is our own.

Facts this file relies on (checked against ComfyUI's source):
  * norm1, norm2 and the head's norm are LayerNorm without affine (no state-dict entry);
    norm3 (cross-attention norm) is LayerNorm with weight and bias.
  * norm_q / norm_k are RMSNorm over the whole projected width (dim, not head_dim), with weight.
  * blocks.{i}.modulation is (1, 6, dim); head.modulation is (1, 2, dim).
  * Time: sinusoidal of width 256 ([cos, sin], base 10000) -> Linear, SiLU, Linear -> e;
    e -> SiLU, Linear(dim, 6 dim) -> e0. Blocks use modulation + e0; the head uses
    head.modulation + e (the embedding *before* time_projection).
  * Block: x += g0 * SA(LN(x)(1+s0)+b0); x += CA(norm3(x), text); x += g1 * FFN(LN(x)(1+s1)+b1),
    chunk order (shift, scale, gate, shift, scale, gate). FFN uses tanh-GELU; text_embedding too.
  * 3-D RoPE over (frame, row, col) of the patch grid: head_dim 128 split into
    44/42/42 channels (d - 4(d//6), 2(d//6), 2(d//6)), theta 10000, rotating adjacent pairs
    (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos). Cross-attention has no RoPE.
  * The model's timestep input is sigma * 1000 (ComfyUI's flow model_sampling multiplier).
  * Unpatchify: head output channels are ordered (pt, ph, pw, c).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# The shipped configuration. dim/128 heads is what ComfyUI infers, so head_dim must be 128.
CONFIG = dict(dim=256, ffn_dim=1024, num_layers=8, in_dim=16, out_dim=16, text_dim=4096,
              freq_dim=256, patch_size=(1, 2, 2), eps=1e-6)
HEAD_DIM = 128


def sinusoidal_embedding(dim, t):
    """[B] timesteps (0..1000) -> [B, dim] as Wan: cat(cos, sin), frequencies 10000^(-i/half)."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, device=t.device, dtype=torch.float64) / half)
    ang = t.to(torch.float64)[:, None] * freqs[None]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=1).float()


def rope_axes(head_dim):
    """Wan's split of the head dim over (frames, height, width)."""
    d6 = head_dim // 6
    return (head_dim - 4 * d6, 2 * d6, 2 * d6)


def rope_cos_sin(grid, head_dim, device, theta=10000.0):
    """cos/sin tables [L, head_dim/2] for a (F, H, W) patch grid, row-major token order."""
    f, h, w = grid
    pos = torch.stack(torch.meshgrid(torch.arange(f), torch.arange(h), torch.arange(w),
                                     indexing="ij"), dim=-1).reshape(-1, 3).to(torch.float64)
    angles = []
    for axis, d in enumerate(rope_axes(head_dim)):
        omega = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        angles.append(pos[:, axis:axis + 1] * omega[None])
    ang = torch.cat(angles, dim=1)
    return torch.cos(ang).float().to(device), torch.sin(ang).float().to(device)


def apply_rope(x, cos, sin):
    """x [B, L, heads, head_dim]; rotates adjacent pairs in fp32 (as ComfyUI does)."""
    xf = x.float().unflatten(-1, (-1, 2))
    x0, x1 = xf[..., 0], xf[..., 1]
    c, s = cos[None, :, None], sin[None, :, None]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2).type_as(x)


class Attention(nn.Module):
    """Wan's self/cross attention: q,k,v,o linears, RMSNorm (affine) on q and k over dim."""

    def __init__(self, dim, eps):
        super().__init__()
        self.heads = dim // HEAD_DIM
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = nn.RMSNorm(dim, eps=eps, elementwise_affine=True)
        self.norm_k = nn.RMSNorm(dim, eps=eps, elementwise_affine=True)

    def forward(self, x, ctx=None, rope=None):
        src = x if ctx is None else ctx
        b, lq, lk = x.shape[0], x.shape[1], src.shape[1]
        q = self.norm_q(self.q(x)).view(b, lq, self.heads, HEAD_DIM)
        k = self.norm_k(self.k(src)).view(b, lk, self.heads, HEAD_DIM)
        v = self.v(src).view(b, lk, self.heads, HEAD_DIM)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.o(y.transpose(1, 2).reshape(b, lq, -1))


class Block(nn.Module):
    def __init__(self, dim, ffn_dim, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.self_attn = Attention(dim, eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=True)
        self.cross_attn = Attention(dim, eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)  # Wan's init

    def forward(self, x, e0, ctx, rope):
        # e0: [B, 6, dim]; chunks are (shift, scale, gate) for self-attention, then for the FFN.
        m = (self.modulation + e0).type_as(x).unbind(1)
        m = [t[:, None] for t in m]
        x = x + m[2] * self.self_attn(self.norm1(x) * (1 + m[1]) + m[0], rope=rope)
        x = x + self.cross_attn(self.norm3(x), ctx=ctx)
        return x + m[5] * self.ffn(self.norm2(x) * (1 + m[4]) + m[3])


class Head(nn.Module):
    def __init__(self, dim, out_dim, patch_size, eps):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.head = nn.Linear(dim, out_dim * math.prod(patch_size))
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim ** 0.5)

    def forward(self, x, e):
        shift, scale = (self.modulation + e[:, None]).type_as(x).unbind(1)
        return self.head(self.norm(x) * (1 + scale[:, None]) + shift[:, None])


class WanMini(nn.Module):
    def __init__(self, dim=256, ffn_dim=1024, num_layers=8, in_dim=16, out_dim=16,
                 text_dim=4096, freq_dim=256, patch_size=(1, 2, 2), eps=1e-6):
        super().__init__()
        assert dim % HEAD_DIM == 0, "ComfyUI infers heads = dim / 128"
        self.dim, self.freq_dim, self.out_dim, self.patch_size = dim, freq_dim, out_dim, patch_size
        self.patch_embedding = nn.Conv3d(in_dim, dim, kernel_size=patch_size, stride=patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"),
                                            nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 6))
        self.blocks = nn.ModuleList(Block(dim, ffn_dim, eps) for _ in range(num_layers))
        self.head = Head(dim, out_dim, patch_size, eps)
        self._init_weights()

    def _init_weights(self):
        # Xavier linears and zero biases as Wan; additionally the time projection and the
        # output linear start at zero (adaLN-Zero, from DiT) so a fresh model predicts v = 0
        # and every block starts as a small perturbation: stabler for a short training run.
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        for mod in (self.time_projection[1], self.head.head):
            nn.init.zeros_(mod.weight)
            nn.init.zeros_(mod.bias)

    def forward(self, x, t, context, hidden_out=None):
        """x [B, 16, F, H, W] latents; t [B] = sigma * 1000; context [B, Lc, 4096].

        Returns the velocity prediction [B, 16, F, H, W]. If `hidden_out` is a list, the
        tokens after the patch embedding and after each block are appended (for fixtures).
        """
        b, _, f, h, w = x.shape
        pf, ph, pw = self.patch_size
        assert f % pf == 0 and h % ph == 0 and w % pw == 0, "latent size must divide the patch"
        grid = (f // pf, h // ph, w // pw)
        # The residual stream stays fp32 under autocast (Wan keeps it fp32 too); linears
        # still run in bf16 because autocast casts their inputs.
        x = self.patch_embedding(x).float().flatten(2).transpose(1, 2)  # [B, L, dim]
        e = self.time_embedding(sinusoidal_embedding(self.freq_dim, t).to(x.dtype))
        e0 = self.time_projection(e).unflatten(1, (6, self.dim))
        ctx = self.text_embedding(context)
        rope = rope_cos_sin(grid, HEAD_DIM, x.device)
        if hidden_out is not None:
            hidden_out.append(x)
        for block in self.blocks:
            x = block(x, e0, ctx, rope)
            if hidden_out is not None:
                hidden_out.append(x)
        x = self.head(x, e)  # [B, L, pf*ph*pw*c]
        x = x.view(b, *grid, pf, ph, pw, self.out_dim)
        x = torch.einsum("bfhwpqrc->bcfphqwr", x)
        return x.reshape(b, self.out_dim, f, h, w)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    m = WanMini(**CONFIG)
    print(f"wan-mini: {count_params(m):,} parameters")
    for k, v in m.state_dict().items():
        print(k, tuple(v.shape))
