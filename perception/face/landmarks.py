"""Face landmark sensors: dlib 68-point and MediaPipe face mesh (478 points, 3D)."""

from __future__ import annotations

import numpy as np

from hcgym.perception.base import Sensor
from hcgym.perception.face import dlib_models, mediapipe_models
from hcgym.types import Detections, Landmarks


class Dlib68Landmarks(Sensor):
    """dlib's 68-point shape predictor on given boxes, or on dlib HOG detections when none are given."""

    def __init__(self, upsample: int = 1) -> None:
        self.upsample = int(upsample)
        self.name = "face/dlib-68"

    def process(self, image: np.ndarray, detections: Detections | None = None) -> Landmarks:
        boxes = detections.boxes if detections is not None else dlib_models.detect_hog(image, self.upsample)[0]
        pts = [dlib_models.landmarks68(image, b) for b in boxes]
        return Landmarks(np.asarray(pts, dtype=np.float64).reshape(-1, 68, 2), np.asarray(boxes).reshape(-1, 4),
                         "dlib68")


class MediaPipeFaceMesh(Sensor):
    """MediaPipe face mesh with iris refinement: (N, 478, 3) points (x, y pixels; z relative depth)."""

    def __init__(self, max_faces: int = 4, refine: bool = True, min_confidence: float = 0.5) -> None:
        self.max_faces, self.refine, self.min_confidence = int(max_faces), bool(refine), float(min_confidence)
        self.name = "face/mediapipe-mesh"

    def process(self, image: np.ndarray) -> Landmarks:
        pts = mediapipe_models.face_mesh_points(image, self.max_faces, self.refine, self.min_confidence)
        boxes = np.concatenate([pts[:, :, :2].min(1), pts[:, :, :2].max(1)], axis=1) if len(pts) else \
            np.zeros((0, 4))
        return Landmarks(pts, boxes, "mediapipe478")
