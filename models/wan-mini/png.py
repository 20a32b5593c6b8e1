"""A tiny PNG writer (zlib + struct), so previews need neither PIL nor imageio."""
import struct
import zlib

import numpy as np


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png(path, rgb):
    """rgb: uint8 array [H, W, 3]. Writes an 8-bit truecolour PNG without filtering."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1)  # filter 0
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(_chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)))
        f.write(_chunk(b"IEND", b""))


def video_strip(videos, gap=2):
    """videos: float array [N, 3, F, H, W] in [-1, 1] -> uint8 grid, one row per video."""
    n, _, f, h, w = videos.shape
    img = np.full((n * (h + gap) - gap, f * (w + gap) - gap, 3), 255, np.uint8)
    pix = np.clip((videos + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    for i in range(n):
        for j in range(f):
            img[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = \
                pix[i, :, j].transpose(1, 2, 0)
    return img
