"""shapes-det: synthetic shape images and a tiny CenterNet-style detector for them.

Images are 64x64 RGB in [0, 1]: a noisy background with a colour gradient and 1-4 filled circles,
squares or triangles of random colours and sizes. Boxes are (x0, y0, x1, y1) in pixels, tight
around the drawn shape. The detector predicts, on a 16x16 grid (stride 4), a class heatmap, the
box size and the sub-cell centre offset, as CenterNet does; it has BatchNorm everywhere in the
backbone because the zero-shot synthesis in slipstream_torch.zsq matches BN statistics.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SIZE, STRIDE = 64, 4
GRID = SIZE // STRIDE
CLASSES = ("circle", "square", "triangle")
MIN_SIDE, MAX_SIDE = 8, 26  # pixels; the smallest still covers two grid cells
# Disjoint random streams: training pool, evaluation set, and the "real" calibration images.
TRAIN_SEED, EVAL_SEED, CALIB_SEED = 0, 1, 2


# --- data -----------------------------------------------------------------------------------------

def _shape_mask(kind: int, x0: float, y0: float, side: float, yy, xx):
    x1, y1 = x0 + side, y0 + side
    if kind == 0:
        r = side / 2
        return (xx - (x0 + r)) ** 2 + (yy - (y0 + r)) ** 2 <= r * r
    if kind == 1:
        return (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
    # Apex at the top centre, base at the bottom: |x - cx| grows linearly with depth.
    depth = (yy - y0) / side
    return (yy >= y0) & (yy <= y1) & (np.abs(xx - (x0 + side / 2)) <= depth * side / 2)


def make_image(rng: np.random.Generator):
    """One image (3, SIZE, SIZE) float32 and its labels: boxes (n, 4) float32, classes (n,) int64."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    base = rng.uniform(0.1, 0.9, 3).astype(np.float32)
    tilt = rng.uniform(-0.3, 0.3, (3, 2)).astype(np.float32)
    img = base[:, None, None] + tilt[:, :1, None] * (yy / SIZE - 0.5) + tilt[:, 1:, None] * (xx / SIZE - 0.5)
    boxes, classes = [], []
    for _ in range(int(rng.integers(1, 5))):
        for _try in range(10):  # keep shapes mostly apart so every box stays visible
            side = float(rng.uniform(MIN_SIDE, MAX_SIDE))
            x0, y0 = rng.uniform(0, SIZE - side, 2)
            box = np.array([x0, y0, x0 + side, y0 + side], np.float32)
            if all(box_iou(box[None], b[None])[0, 0] < 0.1 for b in boxes):
                break
        else:
            continue
        kind = int(rng.integers(0, len(CLASSES)))
        colour = rng.uniform(0, 1, 3).astype(np.float32)
        while np.abs(colour - base).max() < 0.35:  # a shape must differ from its background
            colour = rng.uniform(0, 1, 3).astype(np.float32)
        m = _shape_mask(kind, float(x0), float(y0), side, yy, xx)
        img = np.where(m[None], colour[:, None, None], img)
        boxes.append(box)
        classes.append(kind)
    img = img + rng.normal(0, rng.uniform(0.02, 0.12), img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32), np.stack(boxes), np.array(classes, np.int64)


def make_set(n: int, seed: int):
    """n images as a (n, 3, SIZE, SIZE) tensor and a list of (boxes, classes) numpy pairs."""
    rng = np.random.default_rng(seed)
    imgs, labels = [], []
    for _ in range(n):
        img, b, c = make_image(rng)
        imgs.append(img)
        labels.append((b, c))
    return torch.from_numpy(np.stack(imgs)), labels


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (n, 4) and (m, 4) boxes in continuous coordinates (no VOC "+1" pixel)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-12)


# --- model ----------------------------------------------------------------------------------------

def _cbr(cin, cout, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ShapesDet(nn.Module):
    """64x64 image -> (heatmap logits (B, C, 16, 16), size (B, 2, 16, 16), offset (B, 2, 16, 16))."""

    def __init__(self, num_classes: int = len(CLASSES), width: int = 32):
        super().__init__()
        w = width
        # Stride 2 from the first layer: the CPU budget (training in minutes on one core) buys
        # width at stride 4, not resolution; the dilated layer widens the view to ~47 px.
        self.backbone = nn.Sequential(_cbr(3, w // 2, 2), _cbr(w // 2, w, 2), _cbr(w, w), _cbr(w, w),
                                      _cbr(w, w, dilation=2))
        self.neck = nn.Sequential(nn.Conv2d(w, w, 3, 1, 1), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(w, num_classes + 4, 1)
        self.num_classes = num_classes
        with torch.no_grad():  # CenterNet's prior: start with heatmaps near 0.1 so focal loss is stable
            self.head.bias[:num_classes].fill_(-2.19)

    def forward(self, x):
        y = self.head(self.neck(self.backbone(x)))
        c = self.num_classes
        return y[:, :c], y[:, c:c + 2], y[:, c + 2:]


# --- targets, loss, decoding ----------------------------------------------------------------------

def encode_targets(labels, num_classes: int = len(CLASSES)):
    """CenterNet targets on the grid: Gaussian heatmaps (B, C, G, G), and at each centre cell the
    size in units of STRIDE (B, 2, G, G), the offset in cells (B, 2, G, G) and a mask (B, 1, G, G)."""
    b = len(labels)
    heat = np.zeros((b, num_classes, GRID, GRID), np.float32)
    size = np.zeros((b, 2, GRID, GRID), np.float32)
    off = np.zeros((b, 2, GRID, GRID), np.float32)
    mask = np.zeros((b, 1, GRID, GRID), np.float32)
    gy, gx = np.mgrid[0:GRID, 0:GRID].astype(np.float32)
    for i, (boxes, classes) in enumerate(labels):
        for box, c in zip(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes).reshape(-1)):
            cx, cy = (box[0] + box[2]) / 2 / STRIDE, (box[1] + box[3]) / 2 / STRIDE
            w, h = (box[2] - box[0]) / STRIDE, (box[3] - box[1]) / STRIDE
            ix, iy = min(int(cx), GRID - 1), min(int(cy), GRID - 1)
            sigma = max(0.25 * min(w, h), 0.5)  # a fraction of the object, as CenterNet's radius rule
            g = np.exp(-((gx - ix) ** 2 + (gy - iy) ** 2) / (2 * sigma * sigma))
            heat[i, int(c)] = np.maximum(heat[i, int(c)], g)
            size[i, :, iy, ix] = (w, h)
            off[i, :, iy, ix] = (cx - ix, cy - iy)
            mask[i, 0, iy, ix] = 1
    return tuple(torch.from_numpy(t) for t in (heat, size, off, mask))


def detection_loss(outputs, targets):
    """CenterNet's penalty-reduced focal loss on the heatmap plus L1 on size and offset at the
    centres (size weight 0.1 as in CenterNet), each normalised by the number of objects."""
    logits, size, off = outputs
    heat, tsize, toff, mask = targets
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = (heat >= 1 - 1e-6).float()
    n = pos.sum().clamp(min=1)
    focal = -(pos * (1 - p) ** 2 * torch.log(p) + (1 - pos) * (1 - heat) ** 4 * p ** 2 * torch.log(1 - p)).sum() / n
    l1 = lambda a, b: (mask * (a - b).abs()).sum() / n  # noqa: E731
    return focal + 0.1 * l1(size, tsize) + l1(off, toff)


@torch.no_grad()
def decode(outputs, top_k: int = 20, min_score: float = 0.01):
    """Per image, (boxes (k, 4), scores (k,), classes (k,)) numpy arrays: heatmap peaks (3x3 max),
    the k best above min_score."""
    logits, size, off = outputs
    heat = torch.sigmoid(logits)
    heat = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    b, c, g, _ = heat.shape
    scores, idx = heat.reshape(b, -1).topk(min(top_k, c * g * g))
    out = []
    for i in range(b):
        keep = scores[i] >= min_score
        s, k = scores[i][keep], idx[i][keep]
        cls, cell = k // (g * g), k % (g * g)
        iy, ix = cell // g, cell % g
        cx = (ix.float() + off[i, 0, iy, ix]) * STRIDE
        cy = (iy.float() + off[i, 1, iy, ix]) * STRIDE
        w, h = size[i, 0, iy, ix] * STRIDE, size[i, 1, iy, ix] * STRIDE
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        out.append((boxes.numpy(), s.numpy(), cls.numpy()))
    return out


@torch.no_grad()
def detect(model, images, batch: int = 128, **decode_options):
    model.eval()
    dets = []
    for i in range(0, len(images), batch):
        dets += decode(model(images[i:i + batch]), **decode_options)
    return dets


def distill_loss(student_out, teacher_out):
    """Output distillation for the detector: the teacher's heatmap probabilities as soft targets
    (binary cross-entropy, the sigmoid analogue of KL distillation), and its size and offset where
    it sees an object (L1 weighted by its peak class probability)."""
    s_logits, s_size, s_off = student_out
    t_logits, t_size, t_off = teacher_out
    t_heat = torch.sigmoid(t_logits)
    w = t_heat.amax(1, keepdim=True)
    reg = (w * ((s_size - t_size).abs() + (s_off - t_off).abs())).sum() / w.sum().clamp(min=1)
    return F.binary_cross_entropy_with_logits(s_logits, t_heat) + reg
