"""Person detection: ground-truth boxes from generated datasets (more to come)."""

from hcgym.perception.detection.ground_truth import load_coco_boxes, person_boxes

__all__ = ["load_coco_boxes", "person_boxes"]
