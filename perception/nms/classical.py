"""Classical (non-learned) NMS: greedy, Soft-NMS, Fast-NMS and Cluster-NMS with its S, D, W variants.

All are single-class, numpy (float64), and follow the conventions of :mod:`hcgym.perception.nms.base`:
candidates are processed by decreasing score (ties: lower input index first), a pair overlaps "too
much" when its IoU is strictly greater than the IoU threshold (as in ``torchvision.ops.nms`` and the
"IoU > 0.5" rows of the Seq2Seq-NMS tables), and a candidate is removed when its final score is
below the score threshold.
"""

from __future__ import annotations

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.nms.base import NmsMethod, NmsResult, centre_distance_ratio, iou_matrix, score_order, sort_keep


def _check_unit(value: float, field: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise SpecError(field, f"must be in [0, 1], got {value}")
    return value


def _check_positive(value: float, field: str) -> float:
    value = float(value)
    if not value > 0.0 or not np.isfinite(value):
        raise SpecError(field, f"must be a finite number > 0, got {value}")
    return value


def _hard_result(boxes: np.ndarray, scores: np.ndarray, kept_in_order: np.ndarray,
                 score_threshold: float) -> NmsResult:
    """Result of a method that only removes candidates: kept ones keep their input score."""
    kept = kept_in_order[scores[kept_in_order] >= score_threshold]
    final = np.zeros_like(scores)
    final[kept] = scores[kept]
    return NmsResult(sort_keep(kept, final), final, boxes)


class GreedyNMS(NmsMethod):
    """Greedy NMS: take the highest-scoring remaining box, remove every remaining box whose IoU with
    it is > ``iou_threshold``, repeat.

    Args:
        iou_threshold: suppression threshold (default 0.5; the paper's tables use 0.4, 0.5, 0.6).
        score_threshold: candidates scoring below it are dropped (default 0: keep all, as in the
            Seq2Seq-NMS evaluation, which thresholds nothing).
    """

    def __init__(self, iou_threshold: float = 0.5, score_threshold: float = 0.0) -> None:
        self.iou_threshold = _check_unit(iou_threshold, "iou_threshold")
        self.score_threshold = float(score_threshold)

    def _run(self, boxes: np.ndarray, scores: np.ndarray) -> NmsResult:
        order = score_order(scores)
        order = order[scores[order] >= self.score_threshold]
        iou = iou_matrix(boxes)
        suppressed = np.zeros(len(boxes), bool)
        kept = []
        for i in order:
            if suppressed[i]:
                continue
            kept.append(i)
            suppressed |= iou[i] > self.iou_threshold
        return _hard_result(boxes, scores, np.asarray(kept, np.int64), self.score_threshold)


def pre_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float | None, max_keep: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """The light pre-NMS every method gets (the seed applies greedy NMS at IoU 0.8 before comparing):
    candidates by score (descending, ties by index), through :class:`GreedyNMS` at ``iou_threshold``
    (``None``: none), at most ``max_keep``; returned as float32 ``(boxes, scores)``."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = score_order(scores) if iou_threshold is None else GreedyNMS(iou_threshold)(boxes, scores).keep
    order = order[:max_keep]
    return boxes[order], scores[order]


class SoftNMS(NmsMethod):
    """Soft-NMS (Bodla, Singh, Chellappa, Davis, ICCV 2017): instead of removing the boxes that
    overlap the selected box ``M``, decay their scores, then select again among all remaining boxes.

    * linear: ``s_i <- s_i * (1 - IoU(M, b_i))`` when ``IoU(M, b_i) > iou_threshold``, else unchanged;
    * gaussian: ``s_i <- s_i * exp(-IoU(M, b_i)^2 / sigma)`` for every remaining box.

    A box whose decayed score falls below ``score_threshold`` is removed (final score 0).
    Defaults are those of the authors' reference code: ``iou_threshold`` (N_t) 0.3, ``sigma`` 0.5,
    ``score_threshold`` 0.001. The comparison ``IoU > N_t`` also follows that code.
    """

    def __init__(self, method: str = "linear", iou_threshold: float = 0.3, sigma: float = 0.5,
                 score_threshold: float = 0.001) -> None:
        if method not in ("linear", "gaussian"):
            raise SpecError("method", f"unknown Soft-NMS decay {method!r} (allowed: gaussian, linear)")
        self.method = method
        self.iou_threshold = _check_unit(iou_threshold, "iou_threshold")
        self.sigma = _check_positive(sigma, "sigma")
        self.score_threshold = float(score_threshold)

    def _run(self, boxes: np.ndarray, scores: np.ndarray) -> NmsResult:
        order = score_order(scores)
        alive = order[scores[order] >= self.score_threshold]  # processing order, kept throughout
        current = scores.copy()
        final = np.zeros_like(scores)
        kept = []
        x0, y0, x1, y1 = (boxes[:, k] for k in range(4))
        area = (x1 - x0) * (y1 - y0)
        while len(alive):
            pos = int(np.argmax(current[alive]))  # first maximum: earliest in processing order
            m = alive[pos]
            kept.append(m)
            final[m] = current[m]
            alive = np.delete(alive, pos)
            if not len(alive):
                break
            iw = np.maximum(0.0, np.minimum(x1[m], x1[alive]) - np.maximum(x0[m], x0[alive]))
            ih = np.maximum(0.0, np.minimum(y1[m], y1[alive]) - np.maximum(y0[m], y0[alive]))
            inter = iw * ih
            union = area[m] + area[alive] - inter
            iou = np.zeros_like(inter)
            np.divide(inter, union, out=iou, where=union > 0)
            if self.method == "linear":
                weight = np.where(iou > self.iou_threshold, 1.0 - iou, 1.0)
            else:
                weight = np.exp(-(iou * iou) / self.sigma)
            current[alive] *= weight
            alive = alive[current[alive] >= self.score_threshold]
        # Selected scores never increase along the selection, so this sort only settles ties.
        return NmsResult(sort_keep(np.asarray(kept, np.int64), final), final, boxes)


class FastNMS(NmsMethod):
    """Fast-NMS (Bolya, Zhou, Xiao, Lee, YOLACT, ICCV 2019): with ``X`` the IoU matrix of the
    score-sorted boxes restricted to its strict upper triangle, keep box ``j`` iff
    ``max_i X[i, j] <= iou_threshold``. Already-suppressed boxes still suppress, so it removes at
    least as many boxes as greedy NMS.

    Args:
        iou_threshold: default 0.5 (YOLACT's).
        score_threshold: default 0 (keep all candidates).
    """

    def __init__(self, iou_threshold: float = 0.5, score_threshold: float = 0.0) -> None:
        self.iou_threshold = _check_unit(iou_threshold, "iou_threshold")
        self.score_threshold = float(score_threshold)

    def _run(self, boxes: np.ndarray, scores: np.ndarray) -> NmsResult:
        order = score_order(scores)
        x = np.triu(iou_matrix(boxes[order]), k=1)
        keep_sorted = x.max(axis=0) <= self.iou_threshold
        return _hard_result(boxes, scores, order[keep_sorted], self.score_threshold)


class ClusterNMS(NmsMethod):
    """Cluster-NMS and its variants (Zheng, Wang, Ren, Liu, Ye, Hu, Zuo, "Enhancing geometric factors
    in model learning and inference for object detection and instance segmentation", IEEE T-Cybern.
    2021, the CIoU paper).

    With ``X`` the strict upper triangle of the IoU matrix of the score-sorted boxes, iterate
    ``C <- diag(b) X`` where ``b_i = [max_k C[k, i] <= iou_threshold]``, starting from ``C = X``, until
    ``C`` stops changing; ``C`` then holds the rows of the boxes greedy NMS keeps. Plain Cluster-NMS
    keeps the boxes with ``b_i = 1`` and equals greedy NMS exactly. Variants:

    * **D** (``distance=True`` alone): Cluster-DIoU-NMS, the same iteration on
      ``DIoU = IoU - (rho^2 / c^2)^distance_beta`` instead of IoU (``distance_beta`` default 0.9, as
      in the authors' YOLACT code), so that boxes with distant centres survive.
    * **S** (``score_penalty=True``): no box is removed by overlap; every score is decayed by the
      kept boxes above it, ``s_j <- s_j * prod_i exp(-C[i, j]^2 / sigma)``, ``sigma`` = 0.2.
    * **S+D** (``score_penalty=True, distance=True``): the decay adds a centre-distance term,
      ``s_j <- s_j * prod_i min(exp(-C[i, j]^2 / sigma) + D[i, j] * [C[i, j] > 0], 1)`` with
      ``D = (rho^2 / c^2)^distance_beta`` (``distance_beta`` default 0.6, as in the authors' code);
      ``C`` is built on IoU.
    * **S+D+W** (``weighted=True`` too): the kept boxes' coordinates become the average
      ``b_i <- sum_j w_ij b_j / sum_j w_ij`` with ``w_ij = s_j * (C[i, j] * [C[i, j] > weight_iou] + [i = j])``
      (``s`` the decayed scores, ``weight_iou`` 0.8), i.e. each kept box is pulled towards the
      lower-scored boxes it overlaps by more than 0.8.

    With ``score_penalty`` a box is removed when its decayed score is below ``score_threshold``
    (default 0.01, the authors' code); without it ``score_threshold`` defaults to 0.
    ``rho`` is the distance between box centres and ``c`` the diagonal of the smallest enclosing box.
    """

    def __init__(self, iou_threshold: float = 0.5, score_penalty: bool = False, distance: bool = False,
                 weighted: bool = False, sigma: float = 0.2, distance_beta: float | None = None,
                 weight_iou: float = 0.8, score_threshold: float | None = None) -> None:
        if weighted and not (score_penalty and distance):
            raise SpecError("weighted", "weighted coordinates (W) are defined on top of S+D: "
                                        "set score_penalty=True and distance=True too")
        self.iou_threshold = _check_unit(iou_threshold, "iou_threshold")
        self.score_penalty = bool(score_penalty)
        self.distance = bool(distance)
        self.weighted = bool(weighted)
        self.sigma = _check_positive(sigma, "sigma")
        if distance_beta is None:
            distance_beta = 0.6 if score_penalty else 0.9
        self.distance_beta = _check_positive(distance_beta, "distance_beta")
        self.weight_iou = _check_unit(weight_iou, "weight_iou")
        if score_threshold is None:
            score_threshold = 0.01 if score_penalty else 0.0
        self.score_threshold = float(score_threshold)

    def _cluster(self, x: np.ndarray) -> np.ndarray:
        """Iterate ``C <- diag(b) X`` to its fixed point; return the final ``C``."""
        c = x
        for _ in range(len(x) + 1):  # converges in at most N iterations
            b = c.max(axis=0) <= self.iou_threshold
            nxt = x * b[:, None]
            if np.array_equal(nxt, c):
                break
            c = nxt
        return c

    def _run(self, boxes: np.ndarray, scores: np.ndarray) -> NmsResult:
        order = score_order(scores)
        sb, ss = boxes[order], scores[order]
        full = iou_matrix(sb)
        ratio = centre_distance_ratio(sb) if self.distance else None
        if self.distance and not self.score_penalty:
            x = np.triu(full - ratio ** self.distance_beta, k=1)
            c = self._cluster(x)
            return _hard_result(boxes, scores, order[c.max(axis=0) <= self.iou_threshold], self.score_threshold)
        c = self._cluster(np.triu(full, k=1))
        if not self.score_penalty:
            return _hard_result(boxes, scores, order[c.max(axis=0) <= self.iou_threshold], self.score_threshold)
        factor = np.exp(-(c ** 2) / self.sigma)
        if self.distance:
            factor = np.minimum(factor + (ratio ** self.distance_beta) * (c > 0), 1.0)
        decayed = ss * np.prod(factor, axis=0)
        alive = decayed >= self.score_threshold
        final = np.zeros_like(scores)
        final[order[alive]] = decayed[alive]
        out_boxes = boxes
        if self.weighted:
            eye = np.eye(len(sb))
            w = (c * (c > self.weight_iou) + eye) * decayed[None, :]
            total = w.sum(axis=1, keepdims=True)
            moved = np.divide(w @ sb, total, out=sb.copy(), where=total > 0)
            out_boxes = boxes.copy()
            out_boxes[order] = moved
        return NmsResult(sort_keep(order[alive], final), final, out_boxes)
