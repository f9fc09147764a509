"""dlib face models shipped by ``face-recognition-models`` (offline, no downloads).

The models package imports ``pkg_resources`` at import time, which recent
setuptools no longer ship, so its ``models/`` folder is located with
:func:`importlib.util.find_spec` and dlib is called directly.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from hcgym.errors import DependencyNotInstalled

MODEL_FILES = {
    "shape68": "shape_predictor_68_face_landmarks.dat",
    "shape5": "shape_predictor_5_face_landmarks.dat",
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
    "mmod": "mmod_human_face_detector.dat",
}


def models_dir() -> Path:
    """Folder holding the dlib ``.dat`` models of the ``face-recognition-models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyNotInstalled("dlib face models missing: pip install face-recognition-models dlib-bin")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _dlib():
    try:
        import dlib
    except ImportError:  # pragma: no cover - dlib is a core dependency
        raise DependencyNotInstalled("dlib is missing: pip install dlib-bin") from None
    return dlib


@functools.lru_cache(maxsize=None)
def load(name: str):
    """A dlib model by short name: ``hog``, ``mmod``, ``shape5``, ``shape68``, ``resnet``."""
    dlib = _dlib()
    if name == "hog":
        return dlib.get_frontal_face_detector()
    path = models_dir() / MODEL_FILES[name]
    if not path.is_file():
        raise DependencyNotInstalled(f"dlib model file missing: {path} (reinstall face-recognition-models)")
    if name == "mmod":
        return dlib.cnn_face_detection_model_v1(str(path))
    if name in ("shape5", "shape68"):
        return dlib.shape_predictor(str(path))
    return dlib.face_recognition_model_v1(str(path))


def detect_hog(rgb: np.ndarray, upsample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """dlib HOG faces in an RGB uint8 image: boxes (N, 4) ``[x0, y0, x1, y1]`` and scores (N,)."""
    dets, scores, _ = load("hog").run(np.ascontiguousarray(rgb), upsample, 0.0)
    boxes = np.array([[d.left(), d.top(), d.right() + 1, d.bottom() + 1] for d in dets], dtype=np.float64)
    return boxes.reshape(-1, 4), np.asarray(scores, dtype=np.float64)


def detect_mmod(rgb: np.ndarray, upsample: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """dlib CNN (MMOD) faces: boxes (N, 4) and detection confidences (N,)."""
    dets = load("mmod")(np.ascontiguousarray(rgb), upsample)
    boxes = np.array([[d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1] for d in dets],
                     dtype=np.float64)
    return boxes.reshape(-1, 4), np.array([d.confidence for d in dets], dtype=np.float64)


def landmarks68(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(68, 2) dlib landmarks of the face in ``box``."""
    dlib = _dlib()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    shape = load("shape68")(np.ascontiguousarray(rgb), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], dtype=np.float64)


def embed(rgb: np.ndarray, box: np.ndarray, jitter: int = 1) -> np.ndarray:
    """128-d dlib ResNet embedding of the face in ``box`` (5-point alignment, 150x150 chip)."""
    dlib = _dlib()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    img = np.ascontiguousarray(rgb)
    shape = load("shape5")(img, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.asarray(load("resnet").compute_face_descriptor(img, shape, jitter), dtype=np.float64)
