"""Face recognizer (embedding) sensors.

* :class:`DlibResNetRecognizer`: dlib's 128-d ResNet ("Deep Face Recognition", the method of
  OpenDR D3.2 section 2.4), aligned with dlib's 5-point predictor.
* :class:`ArcFaceOnnxRecognizer`: any ONNX model in the ArcFace format (1x3x112x112 RGB input
  normalised as ``(x - 127.5) / 127.5``, one embedding output), loaded from a path, aligned with
  :func:`~hcgym.perception.face.align.align_face`.

Both return :class:`~hcgym.types.Embeddings`; without given detections they run their default
detector (dlib HOG) first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hcgym.errors import DependencyNotInstalled
from hcgym.perception.base import Sensor
from hcgym.perception.face import dlib_models
from hcgym.perception.face.align import align_face, five_from_dlib68
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


class ArcFaceOnnxRecognizer(Sensor):
    """An ArcFace-format ONNX recognizer from a file (InsightFace ``w600k_r50.onnx`` and alike)."""

    def __init__(self, model_path: str | Path, input_mean: float = 127.5, input_std: float = 127.5,
                 threads: int = 1) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise DependencyNotInstalled(
                f"ArcFace ONNX model not found: {path}. Pass model_path= an ArcFace-format recognizer "
                "(112x112 RGB input, one embedding output), e.g. w600k_r50.onnx from InsightFace's buffalo_l "
                "pack (github.com/deepinsight/insightface, python-package model zoo), or export one with "
                "hcgym (see docs/face.md).")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        shape = inp.shape
        if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
            raise DependencyNotInstalled(f"{path} is not in the ArcFace format: input shape {shape} "
                                         "(expected N x 3 x S x S)")
        self.size = int(shape[2]) if isinstance(shape[2], int) else 112
        self.input_name = inp.name
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.mean, self.std = float(input_mean), float(input_std)
        self.path = path
        self.name = "face/arcface-onnx"

    def embed_aligned(self, chips: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB aligned chips -> (N, D) embeddings."""
        x = (np.asarray(chips, dtype=np.float32).transpose(0, 3, 1, 2) - self.mean) / self.std
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0].astype(np.float64)

    def process(self, image: np.ndarray, detections: Detections | None = None) -> Embeddings:
        boxes, five = five_points(image, detections)
        if not len(boxes):
            return Embeddings(np.zeros((0, self.dim)), np.zeros((0, 4)))
        chips = np.stack([align_face(image, f, self.size) for f in five])
        return Embeddings(self.embed_aligned(chips), np.asarray(boxes).reshape(-1, 4))
