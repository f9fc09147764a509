"""Person detection: the :class:`PersonDetector` sensor (a small CenterNet in torch, exportable to ONNX),
its training on generated scenes and its target boxes. Registered as ``person/centernet``.

>>> import hcgym.perception as hp
>>> det = hp.make("person/centernet")           # the shipped model (checkpoint=PATH, nms=NAME, ...)
>>> people = det(image)                         # Detections(label="person") after greedy NMS
>>> boxes, scores = det.candidates(image, 400)  # raw candidates, for NMS studies
>>> from hcgym.perception.detection import load_detector
>>> load_detector("person.onnx")                # "shipped", a .pt checkpoint or an ONNX export

Importing this package does not import torch: :class:`PersonDetector` loads on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hcgym.perception.registry import make, register
from hcgym.perception.scoring import load_coco_boxes, person_boxes

__all__ = ["DETECTOR", "PersonDetector", "load_coco_boxes", "load_detector", "person_boxes", "register_all"]

#: Registry id of the person detector.
DETECTOR = "person/centernet"


def register_all() -> None:
    """Register the person detector (called by the registry on its first look-up)."""
    register(DETECTOR, "hcgym.perception.detection.sensor:PersonDetector", kind="person detector",
             input="rgb frame", output="Detections", onnx=True,
             description="CenterNet person detector + NMS (shipped, or checkpoint=; nms=NAME)")
    models = Path(__file__).resolve().parent / "models"  # the shipped export of the shipped checkpoint
    register(DETECTOR + "-onnx", "hcgym.perception.export:shipped_onnx", kind="person detector", input="rgb frame",
             output="Detections", kwargs={"sensor": DETECTOR, "path": str(models / "person_centernet.onnx"),
                                          "source": str(models / "person_centernet.pt")},
             description="the shipped person detector's ONNX export on ONNX Runtime (path=, threads=, nms=NAME)")


def load_detector(path: str | Path | None = None, **kwargs: Any) -> Any:
    """``person/centernet`` from the registry: the shipped model (``None`` or ``"shipped"``), a checkpoint
    (``.pt``; ``kwargs`` as for :class:`PersonDetector`) or an ONNX export (``.onnx``, run by ONNX Runtime;
    its sidecar must name ``person/centernet``)."""
    if path is None or str(path) == "shipped":
        return make(DETECTOR, **kwargs)
    if Path(path).suffix == ".onnx":
        from hcgym.perception.base import OnnxSensor

        return OnnxSensor(path, sensor=DETECTOR)
    return make(DETECTOR, checkpoint=path, **kwargs)


def __getattr__(name: str) -> Any:  # lazy: the sensor needs torch
    if name == "PersonDetector":
        from hcgym.perception.detection.sensor import PersonDetector

        return PersonDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
