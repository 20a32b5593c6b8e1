"""mAP@IoU for detections, the Pascal VOC (2010+) way: per class, detections of all images ranked
by score; each is a true positive when its best-overlapping ground truth of that class reaches the
IoU threshold and was not claimed by a higher-ranked detection (a second hit on a claimed box is a
false positive, as in VOC's devkit); AP is the area under the precision envelope (precision made
non-increasing from the right) over all recall points, not the 11-point approximation. mAP is the
mean over classes that have ground truth. Boxes are continuous (x0, y0, x1, y1), with no "+1".
"""

from __future__ import annotations

import numpy as np


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope; recall non-decreasing, both for the ranked detections."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    step = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[step + 1] - r[step]) * p[step + 1]))


def class_ap(detections, ground_truth, cls: int, iou_threshold: float = 0.5):
    """AP of one class, or None when no image has ground truth of that class.
    detections: per image (boxes (k, 4), scores (k,), classes (k,)); ground_truth: per image
    (boxes (n, 4), classes (n,))."""
    gts = [np.asarray(b, np.float64).reshape(-1, 4)[np.asarray(c).reshape(-1) == cls] for b, c in ground_truth]
    n_gt = sum(len(g) for g in gts)
    if n_gt == 0:
        return None
    ranked = []  # (score, image, box)
    for i, (boxes, scores, classes) in enumerate(detections):
        sel = np.asarray(classes).reshape(-1) == cls
        for box, s in zip(np.asarray(boxes, np.float64).reshape(-1, 4)[sel], np.asarray(scores).reshape(-1)[sel]):
            ranked.append((float(s), i, box))
    ranked.sort(key=lambda t: -t[0])  # stable: ties keep image order, as a stable argsort would
    claimed = [np.zeros(len(g), bool) for g in gts]
    tp = np.zeros(len(ranked))
    for k, (_, i, box) in enumerate(ranked):
        if len(gts[i]):
            iou = _iou(box, gts[i])
            j = int(np.argmax(iou))
            if iou[j] >= iou_threshold and not claimed[i][j]:
                claimed[i][j] = True
                tp[k] = 1
    ctp = np.cumsum(tp)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, len(ranked) + 1)
    return voc_ap(recall, precision)


def mean_ap(detections, ground_truth, num_classes: int, iou_threshold: float = 0.5):
    """(mAP, per-class AP list with None for classes without ground truth)."""
    if len(detections) != len(ground_truth):
        raise ValueError(f"expected one detection entry per image ({len(ground_truth)}), got {len(detections)}")
    aps = [class_ap(detections, ground_truth, c, iou_threshold) for c in range(num_classes)]
    present = [a for a in aps if a is not None]
    return (float(np.mean(present)) if present else 0.0), aps
