"""Person detection: the :class:`PersonDetector` sensor (a small CenterNet in torch, exportable to ONNX),
its training on generated scenes and its target boxes.

>>> from hcgym.perception.detection import load_detector
>>> det = load_detector()                       # the shipped model
>>> people = det(image)                         # Detections(label="person") after greedy NMS
>>> boxes, scores = det.candidates(image, 400)  # raw candidates, for NMS studies
"""

from hcgym.perception.detection.ground_truth import load_coco_boxes, person_boxes
from hcgym.perception.detection.sensor import PersonDetector, load_detector

__all__ = ["PersonDetector", "load_coco_boxes", "load_detector", "person_boxes"]
