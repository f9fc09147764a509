"""Seq2Seq-NMS training targets: candidate labels (greedy matching to ground truth), the class weights
of eq. (12) and the weighted binary cross-entropy of eq. (11)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hcgym.errors import SpecError
from hcgym.perception.nms.seq2seq_features import pairwise_iou


def class_weights(gt_counts: Any, candidate_counts: Any, c: float = 0.1, max_dets: int | None = None,
                  start: int = 1) -> tuple[float, float]:
    """``(w0, w1)`` of eq. (12): ``P = sum G_m``, ``B = sum max(0, R_m - G_m)``, ``T = P + B``,
    ``w0 = (1 - c) T / B``, ``w1 = c T / P``. As in the reference code, counts are capped at
    ``max_dets`` and ``P``, ``B`` start at ``start`` (1; 0 gives the bare equation)."""
    g = np.asarray(gt_counts, dtype=np.int64)
    r = np.asarray(candidate_counts, dtype=np.int64)
    if max_dets is not None:
        g, r = np.minimum(g, max_dets), np.minimum(r, max_dets)
    p = start + int(g.sum())
    b = start + int(np.maximum(0, r - g).sum())
    if p <= 0 or b <= 0:
        raise SpecError("class_weights", f"need positives and background, got P = {p}, B = {b}")
    t = p + b
    return (1.0 - c) * t / b, c * t / p


def weighted_bce(p: torch.Tensor, y: torch.Tensor, w0: float, w1: float) -> torch.Tensor:
    """Eq. (11), summed over the candidates; ``p`` clamped to [0.001, 0.999]."""
    p = p.clamp(0.001, 0.999)
    return -(w1 * y * torch.log(p) + w0 * (1.0 - y) * torch.log(1.0 - p)).sum()


def match_labels(boxes: np.ndarray, order_scores: np.ndarray, gt_boxes: np.ndarray,
                 iou_threshold: float = 0.5) -> np.ndarray:
    """``(N,)`` 0/1 labels: greedy matching in order of ``order_scores`` (descending); a candidate is
    positive when its best IoU (> ``iou_threshold``, strict) is with a not-yet-matched ground truth."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    y = np.zeros(len(boxes))
    if len(gt) == 0 or len(boxes) == 0:
        return y
    iou = pairwise_iou(torch.as_tensor(np.concatenate([boxes, gt])))[: len(boxes), len(boxes):].numpy()
    taken = np.zeros(len(gt), bool)
    for i in np.argsort(-np.asarray(order_scores), kind="stable"):
        cand = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(cand))
        if cand[j] > iou_threshold:
            taken[j] = True
            y[i] = 1.0
    return y
