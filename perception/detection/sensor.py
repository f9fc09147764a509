"""The person detector sensor: :class:`PersonDetector` (torch or, exported, ONNX Runtime).

>>> from hcgym.perception.detection import load_detector
>>> det = load_detector()                         # the shipped model (or a checkpoint path)
>>> dets = det(image)                             # Detections after NMS (default greedy, IoU 0.5)
>>> boxes, scores = det.candidates(image, 400)    # raw candidates for NMS studies
>>> det.export_onnx("person.onnx"); onnx_det = OnnxSensor("person.onnx")   # same calls, ONNX Runtime
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.base import OnnxSensor, TorchSensor
from hcgym.perception.detection.centernet import CenterNetConfig, decode, letterbox
from hcgym.types import Detections

MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED = MODELS_DIR / "person_centernet.pt"


def save_checkpoint(model: Any, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the weights and config of a :class:`~.centernet.CenterNet` (atomically).

    The file holds tensors and plain values only (``{"config": dict, "state_dict": tensors, **extra}``),
    so :func:`load_model` reads it with ``torch.load(weights_only=True)``; ``extra`` must be JSON data.
    """
    import torch

    from hcgym.paths import atomic_write_bytes

    try:
        json.dumps(extra or {})
    except (TypeError, ValueError) as e:
        raise SpecError("extra", f"checkpoint metadata must be JSON data ({e})") from None
    buf = io.BytesIO()
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), **(extra or {})}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


#: How to turn a trusted checkpoint of another format into one :func:`load_model` reads.
CONVERT_HINT = ("If you made it or trust where it comes from, convert it once with "
                "`python -c \"from hcgym.perception.detection.sensor import convert_checkpoint; "
                "convert_checkpoint('OLD.pt', 'NEW.pt', trusted=True)\"` and pass NEW.pt.")


def load_tensors(path: Path, field: str, what: str, hint: str = CONVERT_HINT, device: str = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain values, never arbitrary Python objects.

    A file that holds other pickled objects is refused with a :class:`SpecError` on ``field`` (unpickling
    it could run code) that ends with ``hint``; an unreadable one is reported as not being a ``what``.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise SpecError(field, f"{path} is not a {what} ({type(e).__name__}: {e})") from None
        raise SpecError(field, f"{path} is refused: it holds pickled Python objects besides tensors and plain "
                               f"values, and loading it could run code. {hint}") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file gets one message
        raise SpecError(field, f"{path} is not a {what} ({type(e).__name__}: {e})") from None


def load_model(path: str | Path, field: str = "detector") -> Any:
    """A :class:`~.centernet.CenterNet` from a checkpoint written by :func:`save_checkpoint`.

    Read with ``weights_only=True``; anything else is a :class:`SpecError` on ``field``.
    """
    from hcgym.perception.detection.centernet import CenterNet

    path = Path(path)
    if not path.is_file():
        raise SpecError(field, f"checkpoint not found: {path}")
    ckpt = load_tensors(path, field, "person-detector checkpoint")
    try:
        model = CenterNet(CenterNetConfig.from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["state_dict"])
    except Exception as e:  # noqa: BLE001 - any other content gets one message
        raise SpecError(field, f"{path} is not a person-detector checkpoint ({type(e).__name__}: {e})") from None
    return model.eval()


def convert_checkpoint(src: str | Path, dst: str | Path, *, trusted: bool = False) -> Path:
    """Re-save a detector checkpoint that holds pickled objects (a pickled ``CenterNet``, or a dict with
    ``config`` and ``state_dict`` plus other objects) in the format of :func:`save_checkpoint`.

    Unpickling ``src`` runs whatever code it names, so this only runs when the caller states
    ``trusted=True`` for a file they made or trust. Only the config and weights are kept.
    """
    import torch

    from hcgym.perception.detection.centernet import CenterNet

    if trusted is not True:
        raise SpecError("trusted", "convert_checkpoint unpickles the file, which can run code: pass trusted=True "
                                   "only for a checkpoint you made or trust")
    src = Path(src)
    if not src.is_file():
        raise SpecError("src", f"checkpoint not found: {src}")
    obj = torch.load(src, map_location="cpu", weights_only=False)  # the caller trusts this file
    if isinstance(obj, CenterNet):
        return save_checkpoint(obj, dst)
    try:
        config = obj["config"]
        model = CenterNet(CenterNetConfig.from_dict(config.to_dict() if hasattr(config, "to_dict") else dict(config)))
        model.load_state_dict(obj["state_dict"])
    except Exception as e:  # noqa: BLE001
        raise SpecError("src", f"{src} holds no person-detector config and weights ({type(e).__name__}: {e})") from None
    return save_checkpoint(model, dst)


class PersonDetector(TorchSensor):
    """Single-class person detector (:mod:`~.centernet`) as a sensor.

    ``detector(image)`` returns :class:`~hcgym.types.Detections` (``label="person"``) after the NMS
    method ``nms`` (any name of :func:`hcgym.perception.nms.list_methods`; default ``greedy_0.5``)
    and the score threshold. :meth:`candidates` returns the raw candidates before any NMS but the
    light pre-NMS that every method gets (greedy at IoU 0.8, as in the Seq2Seq-NMS evaluation).

    Args:
        checkpoint: checkpoint path; ``None`` = the shipped model.
        model: an in-memory :class:`~.centernet.CenterNet` instead of a checkpoint (training).
        score_threshold: detections below it are dropped by :meth:`process` (not by :meth:`candidates`).
        nms: NMS method applied by :meth:`process`.
        max_candidates: candidates passed to the NMS by :meth:`process`.
    """

    name = "person/centernet"
    onnx_input_names = ("image",)
    onnx_output_names = ("maps",)

    def __init__(self, checkpoint: str | Path | None = None, model: Any = None, score_threshold: float = 0.3,
                 nms: str = "greedy_0.5", max_candidates: int = 100, input_size: tuple[int, int] | None = None
                 ) -> None:
        from hcgym.perception import nms as nms_lib

        if model is None and input_size is not None and checkpoint is None:  # rebuilt for ONNX: no weights needed
            from hcgym.perception.detection.centernet import CenterNet

            model = CenterNet(CenterNetConfig(input_size=tuple(input_size)))
        self.model = model if model is not None else load_model(checkpoint or _shipped())
        self.model.eval()
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.score_threshold = float(score_threshold)
        self.max_candidates = int(max_candidates)
        self.nms_name = nms
        self._nms = nms_lib.make(nms)

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.model.config.input_size)

    @property
    def fingerprint(self) -> str:
        """Hash of the weights (16 hex digits): cache keys of candidate files."""
        h = hashlib.sha256()
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def config(self) -> dict[str, Any]:
        return {"score_threshold": self.score_threshold, "nms": self.nms_name,
                "max_candidates": self.max_candidates, "input_size": list(self.input_size)}

    def example_input(self) -> np.ndarray:
        w, h = self.input_size
        return np.zeros((1, 3, h, w), np.float32)

    def preprocess(self, image: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, Any]:
        canvas, scale, left, top = letterbox(image, self.input_size)
        x = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        return x, (scale, left, top, image.shape[1], image.shape[0])

    def postprocess(self, outputs: list[np.ndarray], context: Any) -> np.ndarray:
        """The raw output maps ``(5, h, w)`` with the letterbox context (see :meth:`candidates`)."""
        return outputs[0][0], context

    def maps(self, image: np.ndarray) -> tuple[np.ndarray, Any]:
        """Output maps ``(5, H/4, W/4)`` of the letterboxed image and the letterbox context."""
        x, ctx = self.preprocess(image)
        return self.postprocess(self.run_model(x), ctx)

    def candidates(self, image: Any, max_candidates: int = 400, pre_nms_iou: float | None = 0.8
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Raw candidates: boxes ``(N, 4)`` float32 ``[x0, y0, x1, y1]`` image pixels, scores ``(N,)``.

        The top cells of the heatmap (4 x ``max_candidates`` of them) go through greedy NMS at
        ``pre_nms_iou`` (``None``: none), and the best ``max_candidates`` are returned, by score
        descending. Boxes are clipped to the image.
        """
        from hcgym.perception.base import as_image
        from hcgym.perception.nms.classical import pre_nms

        image = as_image(image)
        if int(max_candidates) < 1:
            raise SpecError("max_candidates", f"expected >= 1, got {max_candidates}")
        maps, (scale, left, top, w, h) = self.maps(image)
        boxes, scores = decode(maps, top_k=4 * int(max_candidates) if pre_nms_iou is not None else int(max_candidates))
        boxes = (boxes - np.array([left, top, left, top], np.float32)) / scale
        boxes = np.clip(boxes, 0, np.array([w, h, w, h], np.float32))
        return pre_nms(boxes, scores, pre_nms_iou, int(max_candidates))

    def process(self, image: np.ndarray, **kwargs: Any) -> Detections:
        boxes, scores = self.candidates(image, self.max_candidates)
        result = self._nms(boxes, scores, image)
        keep = result.keep[result.scores[result.keep] >= self.score_threshold]
        return Detections(boxes=result.boxes[keep].astype(np.float32), scores=result.scores[keep].astype(np.float32),
                          label="person")


def _shipped() -> Path:
    if not SHIPPED.is_file():
        raise SpecError("detector", f"no shipped person detector at {SHIPPED}; train one with "
                                    "`hcgym train detector` and pass its path")
    return SHIPPED


def load_detector(path: str | Path | None = None, **kwargs: Any) -> PersonDetector | OnnxSensor:
    """The shipped detector (``None`` or ``"shipped"``), a checkpoint (``.pt``) or an export (``.onnx``)."""
    if path is None or str(path) == "shipped":
        return PersonDetector(None, **kwargs)
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxSensor(path)
    return PersonDetector(path, **kwargs)
