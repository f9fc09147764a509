"""MediaPipe 0.10.21 ``solutions`` face detection (models ship inside the wheel)."""

from __future__ import annotations

import functools

import numpy as np

from hcgym.errors import DependencyNotInstalled


@functools.lru_cache(maxsize=None)
def _detector(model: str, min_confidence: float):
    try:
        from mediapipe.python.solutions import face_detection
    except ImportError:  # pragma: no cover - mediapipe is a core dependency
        raise DependencyNotInstalled("mediapipe==0.10.21 is required: pip install mediapipe==0.10.21") from None
    return face_detection.FaceDetection(model_selection=1 if model == "full" else 0,
                                        min_detection_confidence=min_confidence)


def detect(rgb: np.ndarray, model: str = "full", min_confidence: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe faces in an RGB uint8 image: boxes (N, 4) ``[x0, y0, x1, y1]`` in pixels and scores (N,).

    ``model`` is ``"short"`` (within about 2 m) or ``"full"`` (up to about 5 m).
    """
    if model not in ("short", "full"):
        raise ValueError(f"model must be 'short' or 'full', got {model!r}")
    h, w = rgb.shape[:2]
    res = _detector(model, float(min_confidence)).process(np.ascontiguousarray(rgb))
    boxes, scores = [], []
    for d in res.detections or []:
        b = d.location_data.relative_bounding_box
        boxes.append([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
        scores.append(d.score[0])
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores, dtype=np.float64)
