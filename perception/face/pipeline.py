"""Whole-image face recognition: detector -> embedder -> gallery, with the face recognition confidence (FRC).

:class:`FacePipeline` embeds the face nearest the image centre (the one a robot looks at) with a registered
detector and recognizer, caching embeddings by image content so that an agent and an env asking about the
same image pay once. :class:`FaceRecognizer` adds a :class:`~hcgym.perception.face.gallery.Gallery`:

* :meth:`FaceRecognizer.identify`: the nearest enrolled identity (closed set, like the seed's nearest-neighbour
  recogniser), its distance and the gallery's confidence ``c = 1 - d / a`` (0 beyond the cut-off ``a``);
* :meth:`FaceRecognizer.confidence`: the FRC that OpenDR D3.2 section 2.4 compares between views,
  ``1 - d / a`` *without* the clip at 0, so that two views beyond the cut-off still compare by distance
  (any decreasing function of ``d`` orders views the same way); ``-inf`` when no face is found.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from hcgym.perception.base import as_image
from hcgym.types import Detections


class FacePipeline:
    """Embedding of the face nearest the image centre.

    Args:
        detector: registered face detector id (default ``face/mediapipe-tiled``: MediaPipe full range, which finds
            faces up to profile views, also on overlapping windows of images larger than 480 pixels, so that it
            holds on real photos; on 400x300 frames it is ``face/mediapipe-full``).
        recognizer: registered embedding sensor id (default ``face/dlib``, the 128-d ResNet of the seed's [41]).
        cache_size: embeddings kept, keyed by a hash of the image bytes (they never change a result; 0 keeps
            none and hashes nothing).
    """

    def __init__(self, detector: str = "face/mediapipe-tiled", recognizer: str = "face/dlib", cache_size: int = 8192) -> None:
        import hcgym.perception as hp

        self.detector_id, self.recognizer_id = detector, recognizer
        self.detector = hp.make(detector)
        self.recognizer = hp.make(recognizer)
        self._cache: OrderedDict[bytes, tuple[np.ndarray | None, np.ndarray | None]] = OrderedDict()
        self.cache_size = int(cache_size)
        self.calls = 0  #: embeddings computed (cache misses).

    @staticmethod
    def _key(image: np.ndarray) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        h.update(repr(image.shape).encode())
        h.update(image.tobytes())
        return h.digest()

    def embed(self, image, keypoints: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(embedding (D,), box (4,)) of the face nearest the centre of an RGB image or
        :class:`~hcgym.types.Frame`, or (None, None) when none is found.

        With ``keypoints=False`` the recognizer aligns the face itself instead of using the detector's five
        points (how the active face recognition envs were calibrated).
        """
        img = as_image(image)
        key = self._key(img) + (b"" if keypoints else b"/own-landmarks") if self.cache_size > 0 else None
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        self.calls += 1
        det = self.detector(img)
        out: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        if len(det):
            centre = np.array([img.shape[1] / 2, img.shape[0] / 2])
            k = int(np.argmin(np.linalg.norm((det.boxes[:, :2] + det.boxes[:, 2:]) / 2 - centre, axis=1)))
            kp = None if det.keypoints is None or not keypoints else det.keypoints[k:k + 1]
            emb = self.recognizer(img, Detections(det.boxes[k:k + 1], det.scores[k:k + 1], kp))
            if len(emb):
                out = (np.asarray(emb.vectors[0], dtype=np.float64), np.asarray(det.boxes[k], dtype=np.float64))
        if key is not None:
            self._cache[key] = out
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out


@dataclass(frozen=True)
class Recognition:
    """One image's answer: ``label`` the nearest identity (``None``: no face), its ``distance``, the gallery
    ``confidence`` (0 beyond the cut-off) and the unclipped ``frc``."""

    label: str | None
    distance: float
    confidence: float
    frc: float


class FaceRecognizer:
    """A :class:`FacePipeline` with a gallery: closed-set identification and the FRC of an image."""

    def __init__(self, pipeline: FacePipeline, gallery) -> None:
        self.pipeline, self.gallery = pipeline, gallery

    def recognise(self, image: np.ndarray) -> Recognition:
        vec, box = self.pipeline.embed(image)
        if vec is None:
            return Recognition(None, float("inf"), 0.0, float("-inf"))
        who = self.gallery.identify(vec, box)
        return Recognition(who.nearest, float(who.distance), float(who.confidence),
                           1.0 - float(who.distance) / self.gallery.cutoff)

    def confidence(self, image: np.ndarray | None) -> float:
        """The FRC of an image (``-inf`` for ``None`` or when no face is found)."""
        if image is None:
            return float("-inf")
        return self.recognise(image).frc


__all__ = ["FacePipeline", "FaceRecognizer", "Recognition"]
