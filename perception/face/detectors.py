"""Face detector sensors: MediaPipe (short/full range, whole image or tiled), dlib HOG, dlib CNN (MMOD).

Each returns :class:`~hcgym.types.Detections` with boxes ``[x0, y0, x1, y1]``
in pixels. RetinaFace from a user-supplied InsightFace model pack lives in
:mod:`hcgym.perception.face.insightface`.
"""

from __future__ import annotations

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.base import Sensor
from hcgym.perception.face import dlib_models, mediapipe_models
from hcgym.types import Detections


class MediaPipeFaceDetector(Sensor):
    """MediaPipe 0.10.21 face detection; ``model="short"`` (<= 2 m) or ``"full"`` (<= 5 m).

    Keypoints (N, 6, 2): MediaPipe's right eye, left eye, nose tip, mouth centre, right ear, left ear
    (the person's sides).
    """

    def __init__(self, model: str = "full", min_confidence: float = 0.5) -> None:
        if model not in ("short", "full"):
            raise SpecError("model", f"unknown MediaPipe face model {model!r} (allowed: full, short)")
        self.model, self.min_confidence = model, float(min_confidence)
        self.name = f"face/mediapipe-{model}"

    def process(self, image: np.ndarray) -> Detections:
        boxes, scores, kps = mediapipe_models.detect_with_keypoints(image, self.model, self.min_confidence)
        return Detections(boxes, scores, kps)


class MediaPipeTiledFaceDetector(MediaPipeFaceDetector):
    """MediaPipe full range on the whole image and, for images larger than ``tile`` pixels, on overlapping
    ``tile`` x ``tile`` windows (:func:`~hcgym.perception.face.mediapipe_models.detect_tiled`).

    The default face detector of :class:`~hcgym.perception.face.pipeline.FacePipeline`: on frames up to
    ``tile`` pixels (the envs' 400x300) it is MediaPipe full range; on a real 1280x886 group photo it finds
    6 of 6 faces where the whole-image pass finds 3 (docs/face.md, "Detectors on real photos").
    """

    def __init__(self, model: str = "full", min_confidence: float = 0.5, tile: int = 480) -> None:
        super().__init__(model, min_confidence)
        if not isinstance(tile, int) or tile < 64:
            raise SpecError("tile", f"expected a window side in pixels >= 64, got {tile!r}")
        self.tile = tile
        self.name = "face/mediapipe-tiled" if model == "full" else f"face/mediapipe-{model}-tiled"

    def process(self, image: np.ndarray) -> Detections:
        return Detections(*mediapipe_models.detect_tiled(image, self.model, self.min_confidence, self.tile))


class DlibHogDetector(Sensor):
    """dlib's HOG + linear SVM frontal face detector (scores are SVM margins, > 0 means a face)."""

    def __init__(self, upsample: int = 1, threshold: float = 0.0) -> None:
        if upsample not in (0, 1, 2, 3):
            raise SpecError("upsample", f"expected 0-3, got {upsample!r}")
        self.upsample, self.threshold = int(upsample), float(threshold)
        self.name = "face/dlib-hog"

    def process(self, image: np.ndarray) -> Detections:
        boxes, scores = dlib_models.detect_hog(image, self.upsample)
        keep = scores >= self.threshold
        return Detections(boxes[keep], scores[keep])


class DlibMmodDetector(Sensor):
    """dlib's CNN (max-margin object detection) face detector from ``face-recognition-models``."""

    def __init__(self, upsample: int = 0) -> None:
        if upsample not in (0, 1, 2):
            raise SpecError("upsample", f"expected 0-2, got {upsample!r}")
        self.upsample = int(upsample)
        self.name = "face/dlib-mmod"

    def process(self, image: np.ndarray) -> Detections:
        boxes, scores = dlib_models.detect_mmod(image, self.upsample)
        return Detections(boxes, scores)
