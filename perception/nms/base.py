"""The NMS interface shared by every method: input checks, the result type and box geometry.

Boxes are ``(N, 4)`` float arrays ``[x0, y0, x1, y1]`` in pixels with ``x0 <= x1`` and
``y0 <= y1`` (zero-width or zero-height boxes are allowed and overlap nothing); scores are
``(N,)`` non-negative confidences. Every method processes the candidates in order of
decreasing score, ties broken by the lower input index (a stable sort).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.geometry import iou_matrix  # noqa: F401 - the pairwise IoU every method uses


@dataclass(frozen=True)
class NmsResult:
    """What an NMS method returns for ``N`` candidates.

    Attributes:
        keep: ``(K,)`` int64 indices into the input of the candidates that survive, sorted by
            final score, descending (ties in processing order: input score, then input index).
        scores: ``(N,)`` float64 final score of every candidate: the input score for hard
            methods, the rescored value for Soft-NMS and the Cluster-NMS S variants, and 0 for
            every candidate that was removed.
        boxes: ``(N, 4)`` float64 final coordinates of every candidate: the input boxes, except
            for Cluster-NMS with weighted coordinates (W), which moves kept boxes.
    """

    keep: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.keep)


def _as_float_array(value: Any, field: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise SpecError(field, f"expected an array of numbers, got {type(value).__name__} ({e})") from None
    return arr


def validate(boxes: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert the NMS inputs; raise :class:`~hcgym.errors.SpecError` naming the problem.

    Returns ``(boxes (N, 4) float64, scores (N,) float64)``, fresh copies.
    """
    b = _as_float_array(boxes, "boxes")
    s = _as_float_array(scores, "scores")
    if b.ndim == 1 and b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise SpecError("boxes", f"expected shape (N, 4) with [x0, y0, x1, y1] rows, got {tuple(b.shape)}")
    if s.ndim != 1:
        raise SpecError("scores", f"expected shape (N,), got {tuple(s.shape)}")
    if len(s) != len(b):
        raise SpecError("scores", f"expected {len(b)} scores (one per box), got {len(s)}")
    bad = ~np.isfinite(b).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SpecError(f"boxes[{i}]", f"not finite: {b[i].tolist()} (NaN or inf in {int(bad.sum())} boxes)")
    bad = ~np.isfinite(s)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SpecError(f"scores[{i}]", f"not finite: {s[i]} (NaN or inf in {int(bad.sum())} scores)")
    if (s < 0).any():
        i = int(np.flatnonzero(s < 0)[0])
        raise SpecError(f"scores[{i}]", f"negative score {s[i]} (scores must be >= 0)")
    for axis, (lo, hi) in (("x", (0, 2)), ("y", (1, 3))):
        bad = b[:, hi] < b[:, lo]
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SpecError(f"boxes[{i}]", f"{axis}1 < {axis}0 in {b[i].tolist()} (boxes are [x0, y0, x1, y1] "
                                           f"with x0 <= x1 and y0 <= y1; {int(bad.sum())} such boxes)")
    return b.copy(), s.copy()


def score_order(scores: np.ndarray) -> np.ndarray:
    """Processing order: decreasing score, ties by lower index."""
    return np.argsort(-scores, kind="stable")


def centre_distance_ratio(boxes: np.ndarray) -> np.ndarray:
    """``(N, N)`` DIoU distance term ``rho^2 / c^2``: squared centre distance over the squared diagonal
    of the smallest box enclosing both (Zheng et al., AAAI 2020); 0 where ``c`` is 0."""
    x0, y0, x1, y1 = (boxes[:, k] for k in range(4))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rho2 = (cx[:, None] - cx[None, :]) ** 2 + (cy[:, None] - cy[None, :]) ** 2
    cw = np.maximum(x1[:, None], x1[None, :]) - np.minimum(x0[:, None], x0[None, :])
    ch = np.maximum(y1[:, None], y1[None, :]) - np.minimum(y0[:, None], y0[None, :])
    c2 = cw ** 2 + ch ** 2
    out = np.zeros_like(rho2)
    np.divide(rho2, c2, out=out, where=c2 > 0)
    return out


def sort_keep(candidates: np.ndarray, final_scores: np.ndarray) -> np.ndarray:
    """``candidates`` (input indices, in processing order) sorted by final score, descending, stably."""
    candidates = np.asarray(candidates, dtype=np.int64)
    return candidates[np.argsort(-final_scores[candidates], kind="stable")]


class NmsMethod(ABC):
    """One NMS method: ``method(boxes, scores, image=None) -> NmsResult``.

    ``image`` is accepted by every method so that appearance-based methods (Seq2Seq-NMS) share
    the interface; the classical methods ignore it.
    """

    name: str = ""
    #: whether ``image`` is required (appearance-based methods)
    requires_image: bool = False

    def __call__(self, boxes: Any, scores: Any, image: Any = None) -> NmsResult:
        b, s = validate(boxes, scores)
        if len(b) == 0:
            return NmsResult(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 4)))
        return self._run(b, s)

    nms = __call__

    @abstractmethod
    def _run(self, boxes: np.ndarray, scores: np.ndarray) -> NmsResult:
        """Run on validated, non-empty float64 inputs."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "name")
        return f"{type(self).__name__}({params})"
