"""Non-maximum suppression for single-class (person) detection, one interface for every method.

>>> from hcgym.perception import nms
>>> method = nms.make("greedy_0.5")
>>> result = method(boxes, scores)      # boxes (N, 4) xyxy pixels, scores (N,)
>>> result.keep                         # indices into the input, by final score, descending
>>> result.scores                       # (N,) final scores, 0 for removed candidates

``seq2seq`` (Seq2Seq-NMS, :mod:`hcgym.perception.nms.seq2seq`) needs ``image`` and torch; it loads
the shipped checkpoint unless ``checkpoint=PATH`` (or ``None``: untrained) is given.

Training and evaluation live beside the methods: :mod:`~hcgym.perception.nms.candidates` (cached
detector candidates), :mod:`~hcgym.perception.nms.simulate` (a ground-truth-driven detector simulator
for tests), :mod:`~hcgym.perception.nms.training` (``hcgym train seq2seq-nms``) and
:mod:`~hcgym.perception.nms.evaluation` (``hcgym evaluate nms``).

``nms.list_methods()`` lists the registered names; ``nms.make(name, **kwargs)`` overrides the
defaults (``iou_threshold``, ``score_threshold``, ``sigma``, ...). Definitions and defaults are in
the docstrings of :mod:`hcgym.perception.nms.classical` and in ``docs/detection.md``.
"""

from __future__ import annotations

from typing import Any

from hcgym.errors import SpecError
from hcgym.perception.nms.base import NmsMethod, NmsResult, centre_distance_ratio, iou_matrix, validate
from hcgym.perception.nms.classical import ClusterNMS, FastNMS, GreedyNMS, SoftNMS

__all__ = ["ClusterNMS", "FastNMS", "GreedyNMS", "NmsMethod", "NmsResult", "SoftNMS", "centre_distance_ratio",
           "iou_matrix", "list_methods", "make", "nms", "validate"]

#: name -> (class, default keyword arguments)
_METHODS: dict[str, tuple[type[NmsMethod] | str, dict[str, Any]]] = {
    "greedy_0.4": (GreedyNMS, {"iou_threshold": 0.4}),
    "greedy_0.5": (GreedyNMS, {"iou_threshold": 0.5}),
    "greedy_0.6": (GreedyNMS, {"iou_threshold": 0.6}),
    "soft_linear": (SoftNMS, {"method": "linear"}),
    "soft_gaussian": (SoftNMS, {"method": "gaussian"}),
    "fast": (FastNMS, {}),
    "cluster": (ClusterNMS, {}),
    "cluster_s": (ClusterNMS, {"score_penalty": True}),
    "cluster_d": (ClusterNMS, {"distance": True}),
    "cluster_sd": (ClusterNMS, {"score_penalty": True, "distance": True}),
    "cluster_sdw": (ClusterNMS, {"score_penalty": True, "distance": True, "weighted": True}),
    "seq2seq": ("Seq2SeqNMS", {"checkpoint": "shipped"}),  # torch; imported on first use
}


def list_methods() -> list[str]:
    """Registered NMS method names, in registration order (greedy, soft, fast, cluster, seq2seq)."""
    return list(_METHODS)


def make(name: str, **kwargs: Any) -> NmsMethod:
    """Create the NMS method registered as ``name``; ``kwargs`` override its defaults."""
    if name not in _METHODS:
        raise SpecError("method", f"unknown NMS method {name!r} (available: {', '.join(_METHODS)})")
    cls, defaults = _METHODS[name]
    if isinstance(cls, str):
        from hcgym.perception.nms import seq2seq
        cls = getattr(seq2seq, cls)
    method = cls(**{**defaults, **kwargs})
    method.name = name
    return method


def nms(boxes: Any, scores: Any, image: Any = None, method: str = "greedy_0.5", **kwargs: Any) -> NmsResult:
    """One-shot call: ``make(method, **kwargs)(boxes, scores, image)``."""
    return make(method, **kwargs)(boxes, scores, image)
