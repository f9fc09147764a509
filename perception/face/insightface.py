"""Optional InsightFace model packs, run by the ``insightface`` package (user supplied; nothing is downloaded).

* :class:`RetinaFaceDetector`: the RetinaFace/SCRFD detector ONNX of a pack (``det_10g.onnx``,
  ``det_500m.onnx``, ...), decoded by ``insightface.model_zoo.SCRFD`` (strides, anchors, box distances,
  5 keypoints, NMS).
* :class:`InsightFaceAnalysis`: detector + ArcFace recognizer of a pack (the work of InsightFace's
  ``FaceAnalysis``, without its model download): SCRFD, ``norm_crop`` alignment, ``ArcFaceONNX``.

Images are RGB here; InsightFace's models take BGR, so they are flipped on the way in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hcgym.errors import DependencyNotInstalled, SpecError
from hcgym.perception.base import Sensor, onnx_session
from hcgym.perception.face.recognizers import ArcFaceOnnxRecognizer, insightface_zoo
from hcgym.types import Detections, Embeddings

PACK_HINT = ("download an InsightFace model pack such as buffalo_l "
             "(https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip) "
             "and unzip it so that ROOT/models/buffalo_l/ holds det_10g.onnx and w600k_r50.onnx")


class RetinaFaceDetector(Sensor):
    """RetinaFace/SCRFD detector from an InsightFace pack file.

    Args:
        model_path: the detector ``.onnx`` (6 or 9 outputs: 3 strides; 10 or 15: 5 strides).
        input_size: network input (width, height); images are scaled to fit and padded. A model with a
            fixed input size uses its own.
        threshold: score threshold; ``nms_iou``: NMS overlap.
    """

    def __init__(self, model_path: str | Path, input_size: tuple[int, int] = (640, 640), threshold: float = 0.5,
                 nms_iou: float = 0.4, threads: int = 1) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise DependencyNotInstalled(f"RetinaFace detector not found: {path}; {PACK_HINT}")
        zoo = insightface_zoo()
        session = onnx_session(path, threads)
        n_out = len(session.get_outputs())
        if n_out not in (6, 9, 10, 15):
            raise DependencyNotInstalled(f"{path} does not look like a RetinaFace/SCRFD detector "
                                         f"({n_out} outputs; expected 6, 9, 10 or 15)")
        self.model = zoo.SCRFD(model_file=str(path), session=session)
        self.model.det_thresh, self.model.nms_thresh = float(threshold), float(nms_iou)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.name = "face/retinaface"

    def process(self, image: np.ndarray) -> Detections:
        det, kps = self.model.detect(np.ascontiguousarray(image[:, :, ::-1]), input_size=self.input_size)
        kps = None if kps is None else np.asarray(kps, dtype=np.float64).reshape(-1, 5, 2)
        return Detections(np.asarray(det[:, :4], dtype=np.float64), np.asarray(det[:, 4], dtype=np.float64), kps)


def find_pack(root: str | Path, pack: str = "buffalo_l") -> tuple[Path, Path]:
    """(detector, recognizer) ONNX files of a pack under ``root`` (``root/models/pack``, ``root/pack`` or ``root``)."""
    root = Path(root).expanduser()
    for folder in (root / "models" / pack, root / pack, root):
        if folder.is_dir():
            onnx = sorted(folder.glob("*.onnx"))
            det = [p for p in onnx if p.name.startswith(("det", "scrfd", "retinaface"))]
            rec = [p for p in onnx if p not in det and any(k in p.name for k in ("w600k", "r50", "r100", "arcface",
                                                                                 "glint", "mbf", "rec"))]
            if det and rec:
                return det[0], rec[0]
    raise DependencyNotInstalled(f"no InsightFace model pack {pack!r} under {root}: {PACK_HINT.replace('ROOT', str(root))}")


class InsightFaceAnalysis(Sensor):
    """Detect (RetinaFace/SCRFD), align (InsightFace's 5-point ``norm_crop``) and embed (ArcFace) with a
    user-supplied pack."""

    def __init__(self, root: str | Path, pack: str = "buffalo_l", det_size: tuple[int, int] = (640, 640),
                 threshold: float = 0.5) -> None:
        if root is None:
            raise SpecError("root", f"the InsightFace sensor needs root= a model folder; {PACK_HINT}")
        det, rec = find_pack(root, pack)
        self.detector = RetinaFaceDetector(det, det_size, threshold)
        self.recognizer = ArcFaceOnnxRecognizer(rec)
        self.name = "face/insightface"

    def process(self, image: np.ndarray) -> Embeddings:
        return self.recognizer.process(image, self.detector.process(image))
