"""Optional InsightFace model packs (user supplied; nothing is downloaded).

* :class:`RetinaFaceDetector`: the RetinaFace/SCRFD detector ONNX of a pack (``det_10g.onnx``,
  ``det_500m.onnx``, ...): 3 strides (8, 16, 32), 2 anchors per location, outputs scores,
  box distances and 5 keypoints per anchor, decoded here with numpy.
* :class:`InsightFaceAnalysis`: detector + ArcFace recognizer of a pack (the work of InsightFace's
  ``FaceAnalysis``), read directly with onnxruntime, so the ``insightface`` package is not needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hcgym.errors import DependencyNotInstalled, SpecError
from hcgym.perception.base import Sensor
from hcgym.types import Detections, Embeddings

PACK_HINT = ("download an InsightFace model pack such as buffalo_l "
             "(https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip) "
             "and unzip it so that ROOT/models/buffalo_l/ holds det_10g.onnx and w600k_r50.onnx")


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, by descending score."""
    order = np.argsort(-scores)
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        ious = inter / np.maximum(area(boxes[i]) + area(boxes[rest]) - inter, 1e-9)
        order = rest[ious <= iou]
    return np.asarray(keep, dtype=np.int64)


class RetinaFaceDetector(Sensor):
    """RetinaFace/SCRFD detector from an InsightFace pack file.

    Args:
        model_path: the detector ``.onnx``.
        input_size: network input (width, height); images are scaled to fit and padded.
        threshold: score threshold; ``nms_iou``: NMS overlap.
    """

    strides = (8, 16, 32)
    anchors = 2

    def __init__(self, model_path: str | Path, input_size: tuple[int, int] = (640, 640), threshold: float = 0.5,
                 nms_iou: float = 0.4, threads: int = 1) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise DependencyNotInstalled(f"RetinaFace detector not found: {path}; {PACK_HINT}")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        n_out = len(self.session.get_outputs())
        if n_out not in (6, 9):
            raise DependencyNotInstalled(f"{path} does not look like a RetinaFace/SCRFD detector "
                                         f"({n_out} outputs; expected 6 or 9)")
        self.use_kps = n_out == 9
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.threshold, self.nms_iou = float(threshold), float(nms_iou)
        self.name = "face/retinaface"

    def process(self, image: np.ndarray) -> Detections:
        import cv2

        w_in, h_in = self.input_size
        h, w = image.shape[:2]
        scale = min(w_in / w, h_in / h)
        nw, nh = int(round(w * scale)), int(round(h * scale))
        canvas = np.zeros((h_in, w_in, 3), dtype=np.float32)
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh)).astype(np.float32)
        blob = ((canvas - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outs = self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})
        boxes, scores, kps = self.decode(outs, w_in, h_in)
        boxes /= scale
        kps /= scale
        keep = nms(boxes, scores, self.nms_iou) if len(boxes) else np.zeros(0, dtype=np.int64)
        return Detections(boxes[keep], scores[keep], kps[keep] if self.use_kps else None)

    def decode(self, outs: list[np.ndarray], w_in: int, h_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Network outputs -> boxes (N, 4), scores (N,), keypoints (N, 5, 2) in input pixels."""
        n = len(self.strides)
        outs = [o[0] if o.ndim == 3 else o for o in outs]  # drop a batch axis if present
        all_b, all_s, all_k = [], [], []
        for i, s in enumerate(self.strides):
            scores = outs[i].reshape(-1)
            dist = outs[i + n].reshape(-1, 4) * s
            gh, gw = h_in // s, w_in // s
            centres = (np.stack(np.mgrid[:gh, :gw][::-1], axis=-1).reshape(-1, 2) * s).astype(np.float32)
            centres = np.repeat(centres, self.anchors, axis=0)
            pos = scores >= self.threshold
            c = centres[pos]
            d = dist[pos]
            all_b.append(np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], 1))
            all_s.append(scores[pos])
            if self.use_kps:
                k = outs[i + 2 * n].reshape(-1, 10)[pos] * s
                all_k.append((k.reshape(-1, 5, 2) + c[:, None, :]))
            else:
                all_k.append(np.zeros((int(pos.sum()), 5, 2), dtype=np.float32))
        return (np.concatenate(all_b).astype(np.float64), np.concatenate(all_s).astype(np.float64),
                np.concatenate(all_k).astype(np.float64))


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
    """Detect (RetinaFace/SCRFD), align (5 points) and embed (ArcFace) with a user-supplied pack."""

    def __init__(self, root: str | Path, pack: str = "buffalo_l", det_size: tuple[int, int] = (640, 640),
                 threshold: float = 0.5) -> None:
        from hcgym.perception.face.recognizers import ArcFaceOnnxRecognizer

        if root is None:
            raise SpecError("root", f"the InsightFace sensor needs root= a model folder; {PACK_HINT}")
        det, rec = find_pack(root, pack)
        self.detector = RetinaFaceDetector(det, det_size, threshold)
        self.recognizer = ArcFaceOnnxRecognizer(rec)
        self.name = "face/insightface"

    def process(self, image: np.ndarray) -> Embeddings:
        return self.recognizer.process(image, self.detector.process(image))
