"""Face recognizer (embedding) sensors.

* :class:`DlibResNetRecognizer`: dlib's 128-d ResNet ("Deep Face Recognition", the method of
  OpenDR D3.2 section 2.4), aligned with dlib's 5-point predictor.
* :class:`ArcFaceOnnxRecognizer`: any ONNX model in the ArcFace format (1x3x112x112 RGB input, one
  embedding output), loaded from a path and run by the ``insightface`` package (``ArcFaceONNX``), aligned
  with InsightFace's ``norm_crop`` (:func:`~hcgym.perception.face.align.norm_crop`).

Both return :class:`~hcgym.types.Embeddings`; without given detections they run their default
detector (dlib HOG) first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hcgym.errors import DependencyNotInstalled
from hcgym.perception.base import Sensor, onnx_session
from hcgym.perception.face import dlib_models
from hcgym.perception.face.align import INSIGHTFACE_HINT, five_from_dlib68, norm_crop
from hcgym.types import Detections, Embeddings


class DlibResNetRecognizer(Sensor):
    """dlib 128-d face embeddings (distance < ~0.6 = same person for real faces; see docs/face.md)."""

    dim = 128

    def __init__(self, upsample: int = 1, jitter: int = 1) -> None:
        self.upsample, self.jitter = int(upsample), int(jitter)
        self.name = "face/dlib"

    def process(self, image: np.ndarray, detections: Detections | None = None) -> Embeddings:
        boxes = detections.boxes if detections is not None else dlib_models.detect_hog(image, self.upsample)[0]
        vecs = [dlib_models.embed(image, b, self.jitter) for b in boxes]
        return Embeddings(np.asarray(vecs, dtype=np.float64).reshape(-1, self.dim), np.asarray(boxes).reshape(-1, 4))


def five_points(image: np.ndarray, detections: Detections | None, upsample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) and image-order five points (N, 5, 2): from the detections' 5 keypoints when they
    have them, else from dlib's 68 landmarks on the boxes (HOG detections when none are given)."""
    if detections is None:
        detections = Detections(*dlib_models.detect_hog(image, upsample))
    if detections.keypoints is not None and detections.keypoints.shape[1] == 5:
        return detections.boxes, detections.keypoints
    five = [five_from_dlib68(dlib_models.landmarks68(image, b)) for b in detections.boxes]
    return detections.boxes, np.asarray(five, dtype=np.float64).reshape(-1, 5, 2)


def insightface_zoo():
    """``insightface.model_zoo`` (SCRFD, ArcFaceONNX), or :class:`DependencyNotInstalled` with the install hint."""
    try:
        from insightface import model_zoo
    except ImportError:
        raise DependencyNotInstalled(f"insightface is missing: {INSIGHTFACE_HINT}") from None
    return model_zoo


class ArcFaceOnnxRecognizer(Sensor):
    """An ArcFace-format ONNX recognizer from a file (InsightFace ``w600k_r50.onnx`` and alike), run by
    ``insightface.model_zoo.ArcFaceONNX`` on chips aligned by InsightFace's ``norm_crop``.

    InsightFace picks the input normalisation from the graph: ``(x - 127.5) / 127.5`` on RGB, or raw pixels
    for packs converted from MXNet (their first nodes subtract and scale).
    """

    def __init__(self, model_path: str | Path, threads: int = 1) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise DependencyNotInstalled(
                f"ArcFace ONNX model not found: {path}. Pass model_path= an ArcFace-format recognizer "
                "(112x112 RGB input, one embedding output), e.g. w600k_r50.onnx from InsightFace's buffalo_l "
                "pack (github.com/deepinsight/insightface, python-package model zoo), or export one with "
                "hcgym (see docs/face.md).")
        zoo = insightface_zoo()
        session = onnx_session(path, threads)
        shape = session.get_inputs()[0].shape
        if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or len(session.get_outputs()) != 1:
            raise DependencyNotInstalled(f"{path} is not in the ArcFace format: input shape {shape} "
                                         "(expected N x 3 x S x S and one output)")
        self.model = zoo.ArcFaceONNX(model_file=str(path), session=session)
        self.size = int(shape[2]) if isinstance(shape[2], int) else 112
        self.dim = int(session.get_outputs()[0].shape[-1])
        self.path = path
        self.name = "face/arcface-onnx"

    def embed_aligned(self, chips: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB aligned chips -> (N, D) embeddings."""
        x = np.asarray(chips, dtype=np.float32).transpose(0, 3, 1, 2)
        return np.asarray(self.model.forward(np.ascontiguousarray(x)), dtype=np.float64)

    def process(self, image: np.ndarray, detections: Detections | None = None) -> Embeddings:
        boxes, five = five_points(image, detections)
        if not len(boxes):
            return Embeddings(np.zeros((0, self.dim)), np.zeros((0, 4)))
        chips = np.stack([norm_crop(image, f, self.size) for f in five])
        return Embeddings(self.embed_aligned(chips), np.asarray(boxes).reshape(-1, 4))
