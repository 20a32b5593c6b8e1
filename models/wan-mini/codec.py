"""The project's deterministic latent codec: pixels <-> 16-channel latents, 4x spatial.

Each 4x4 RGB patch (48 values, ordered channel, row, column) maps linearly to 16 latent
channels; frames are coded independently (no temporal compression):

    z = E (p - mean)        encode, E = W^T / s      (16 x 48)
    p = D z + mean          decode, D = s W          (48 x 16)

W holds the top-16 principal directions of patches of generated videos (PCA in float64,
fixed seed, each column's sign fixed so its largest-magnitude entry is positive) and s is
one scalar that gives the latents unit mean square. W is orthonormal, so E D = I:
encode(decode(z)) = z exactly, and decode(encode(x)) is the orthogonal projection of each
patch onto the 16-dim affine subspace (idempotent; it never moves a patch that already lies
in it). The decoder is one 48x16 matrix and a bias per patch: trivial in C++ or TypeScript.

`python codec.py` refits and rewrites codec.safetensors (committed; the fit is deterministic).
"""
import os

import torch

import data
import st_io

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "codec.safetensors")
PATCH, CHANNELS = 4, 16


def patchify(video):
    """[B, 3, F, H, W] -> [B, F, H/4, W/4, 48] (order c, py, px)."""
    b, c, f, h, w = video.shape
    x = video.reshape(b, c, f, h // PATCH, PATCH, w // PATCH, PATCH)
    return x.permute(0, 2, 3, 5, 1, 4, 6).reshape(b, f, h // PATCH, w // PATCH, c * PATCH * PATCH)


def unpatchify(p):
    b, f, hp, wp, _ = p.shape
    x = p.reshape(b, f, hp, wp, 3, PATCH, PATCH).permute(0, 4, 1, 2, 5, 3, 6)
    return x.reshape(b, 3, f, hp * PATCH, wp * PATCH)


class Codec:
    def __init__(self, tensors):
        self.encoder = tensors["encoder"].float()  # [16, 48]
        self.decoder = tensors["decoder"].float()  # [48, 16]
        self.mean = tensors["mean"].float()  # [48]

    @classmethod
    def load(cls, path=PATH):
        return cls(st_io.load_file(path))

    def encode(self, video):
        """[B, 3, F, H, W] in [-1, 1] -> latents [B, 16, F, H/4, W/4]."""
        enc, mean = self.encoder.to(video.device), self.mean.to(video.device)
        z = (patchify(video.float()) - mean) @ enc.T
        return z.permute(0, 4, 1, 2, 3).contiguous()

    def decode(self, z):
        """latents [B, 16, F, h, w] -> [B, 3, F, 4h, 4w] (not clamped)."""
        dec, mean = self.decoder.to(z.device), self.mean.to(z.device)
        return unpatchify(z.float().permute(0, 2, 3, 4, 1) @ dec.T + mean)


def fit(videos=512, seed=1234):
    """PCA of all patches of `videos` generated videos (deterministic for the seed)."""
    g = torch.Generator().manual_seed(seed)
    cov = torch.zeros(48, 48, dtype=torch.float64)
    total = torch.zeros(48, dtype=torch.float64)
    n = 0
    for _ in range(videos // 64):
        v, _ = data.batch(64, g)
        p = patchify(v).reshape(-1, 48).double()
        total += p.sum(0)
        cov += p.T @ p
        n += p.shape[0]
    mean = total / n
    cov = cov / n - torch.outer(mean, mean)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    w = evecs[:, -CHANNELS:].flip(1)  # [48, 16], strongest first
    idx = w.abs().argmax(0)
    w = w * torch.sign(w[idx, torch.arange(CHANNELS)])[None]
    scale = evals[-CHANNELS:].sum().div(CHANNELS).sqrt()  # unit mean square latents
    explained = (evals[-CHANNELS:].sum() / evals.sum()).item()
    tensors = {"encoder": (w.T / scale).float(), "decoder": (w * scale).float(), "mean": mean.float()}
    meta = {"format": "wan-mini-codec-1", "patch": "4x4", "patch_order": "c,py,px",
            "channels": str(CHANNELS), "pixel_range": "[-1,1]", "fit_videos": str(videos),
            "fit_seed": str(seed), "scale": f"{scale.item():.6f}",
            "explained_variance": f"{explained:.6f}"}
    return tensors, meta


if __name__ == "__main__":
    tensors, meta = fit()
    st_io.save_file(tensors, PATH, meta)
    codec = Codec(tensors)
    v, _ = data.batch(16, torch.Generator().manual_seed(99))
    err = codec.decode(codec.encode(v)) - v
    psnr = 10 * torch.log10(4 / err.pow(2).mean())  # peak-to-peak 2 in [-1, 1]
    print(f"wrote {PATH}: explained variance {meta['explained_variance']}, "
          f"scale {meta['scale']}, round-trip PSNR on held-out videos {psnr:.2f} dB")
