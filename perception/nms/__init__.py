"""Non-maximum suppression for single-class (person) detection, one interface for every method.

>>> from hcgym.perception import nms
>>> method = nms.make("greedy_0.5")
>>> result = method(boxes, scores)      # boxes (N, 4) xyxy pixels, scores (N,)
>>> result.keep                         # indices into the input, by final score, descending
>>> result.scores                       # (N,) final scores, 0 for removed candidates

``seq2seq`` (Seq2Seq-NMS, :mod:`hcgym.perception.nms.seq2seq`) needs ``image`` and torch; it loads
the shipped checkpoint unless ``checkpoint=PATH`` (or ``None``: untrained) is given. ``seq2seq-onnx``
answers the same calls with the shipped ONNX export of that checkpoint on ONNX Runtime (``path=`` another
export of ``hcgym export nms/seq2seq``).

Training and evaluation live beside the methods: :mod:`~hcgym.perception.nms.candidates` (cached
detector candidates), :mod:`~hcgym.perception.nms.simulate` (a ground-truth-driven detector simulator
for tests), :mod:`~hcgym.perception.nms.training` (``hcgym train seq2seq-nms``) and
:mod:`~hcgym.perception.nms.evaluation` (``hcgym evaluate nms``).

Every method is registered in the one sensor registry as ``nms/<name>``, a post-processor
(``hcgym.perception.make("nms/greedy_0.5")``; ``hcgym sensors nms/`` lists them). ``nms.list_methods()``
lists the names; ``nms.make(name, **kwargs)``, the same registry call, overrides the defaults
(``iou_threshold``, ``score_threshold``, ``sigma``, ...). Definitions and defaults are in the
docstrings of :mod:`hcgym.perception.nms.classical` and in ``docs/detection.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hcgym.errors import SpecError
from hcgym.perception.nms.base import NmsMethod, NmsResult, centre_distance_ratio, iou_matrix, validate
from hcgym.perception.nms.classical import ClusterNMS, FastNMS, GreedyNMS, SoftNMS
from hcgym.perception.registry import make as _make
from hcgym.perception.registry import register, registry

__all__ = ["ClusterNMS", "FastNMS", "GreedyNMS", "NmsMethod", "NmsResult", "SoftNMS", "centre_distance_ratio",
           "iou_matrix", "list_methods", "make", "nms", "register_all", "validate"]

#: Registry ids of NMS methods are ``PREFIX + name``.
PREFIX = "nms/"


def register_all() -> None:
    """Register every NMS method as a post-processor ``nms/<name>`` (called by the registry on its first
    look-up), in :func:`list_methods` order."""
    post = {"kind": "nms post-processor", "input": "boxes + scores [+ image]", "output": "NmsResult"}
    c = "hcgym.perception.nms.classical:"
    register("nms/greedy_0.4", c + "GreedyNMS", **post, description="greedy NMS, IoU > 0.4",
             kwargs={"iou_threshold": 0.4})
    register("nms/greedy_0.5", c + "GreedyNMS", **post, description="greedy NMS, IoU > 0.5",
             kwargs={"iou_threshold": 0.5})
    register("nms/greedy_0.6", c + "GreedyNMS", **post, description="greedy NMS, IoU > 0.6",
             kwargs={"iou_threshold": 0.6})
    register("nms/soft_linear", c + "SoftNMS", **post, description="Soft-NMS, linear decay",
             kwargs={"method": "linear"})
    register("nms/soft_gaussian", c + "SoftNMS", **post, description="Soft-NMS, Gaussian decay",
             kwargs={"method": "gaussian"})
    register("nms/fast", c + "FastNMS", **post, description="Fast-NMS (YOLACT)")
    register("nms/cluster", c + "ClusterNMS", **post, description="Cluster-NMS (equals greedy)")
    register("nms/cluster_s", c + "ClusterNMS", **post, description="Cluster-NMS with score penalty (S)",
             kwargs={"score_penalty": True})
    register("nms/cluster_d", c + "ClusterNMS", **post, description="Cluster-DIoU-NMS (D)",
             kwargs={"distance": True})
    register("nms/cluster_sd", c + "ClusterNMS", **post, description="Cluster-NMS, S+D",
             kwargs={"score_penalty": True, "distance": True})
    register("nms/cluster_sdw", c + "ClusterNMS", **post, description="Cluster-NMS, S+D+W (weighted boxes)",
             kwargs={"score_penalty": True, "distance": True, "weighted": True})
    register("nms/seq2seq", "hcgym.perception.nms.seq2seq:Seq2SeqNMS", kind="nms post-processor",
             input="boxes + scores + image", output="NmsResult", kwargs={"checkpoint": "shipped"}, onnx=True,
             description="Seq2Seq-NMS, torch (shipped, or checkpoint=); hcgym export nms/seq2seq")
    models = Path(__file__).resolve().parent / "models"  # the shipped export of the shipped checkpoint
    register("nms/seq2seq-onnx", "hcgym.perception.export:shipped_onnx", kind="nms post-processor",
             input="boxes + scores + image", output="NmsResult",
             kwargs={"sensor": "nms/seq2seq", "path": str(models / "seq2seq_nms.onnx"),
                     "source": str(models / "seq2seq_nms.pt")},
             description="Seq2Seq-NMS, its shipped ONNX export on ONNX Runtime (path=, threads=)")


def list_methods() -> list[str]:
    """Registered NMS method names, in registration order (greedy, soft, fast, cluster, seq2seq, seq2seq-onnx)."""
    return [k[len(PREFIX):] for k in registry if k.startswith(PREFIX)]


def make(name: str, **kwargs: Any) -> NmsMethod:
    """The NMS method registered as ``nms/<name>`` (:func:`hcgym.perception.make`); ``kwargs`` override its
    defaults."""
    if PREFIX + name not in registry:
        raise SpecError("method", f"unknown NMS method {name!r} (available: {', '.join(list_methods())})")
    return _make(PREFIX + name, **kwargs)


def nms(boxes: Any, scores: Any, image: Any = None, method: str = "greedy_0.5", **kwargs: Any) -> NmsResult:
    """One-shot call: ``make(method, **kwargs)(boxes, scores, image)``."""
    return make(method, **kwargs)(boxes, scores, image)
