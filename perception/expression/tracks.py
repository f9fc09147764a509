"""Faces of a stream for the expression sensor: landmark sources per frame and face tracks with landmark buffers.

Landmark sources (what :class:`~hcgym.perception.expression.sensor.ExpressionSensor` runs on each sampled
frame; each returns face boxes (M, 4) ``[x0, y0, x1, y1]`` and landmarks (M, V, 2) in pixels):

* :func:`mesh_faces`: MediaPipe Face Mesh, refined (478 points), each frame on its own (static image mode, as
  the training data of :mod:`hcgym.synthesis.expression_data` was made), up to ``max_faces`` faces; the box
  is the extent of the 468 surface points; the landmarks are the vertices :data:`~hcgym.synthesis.
  expression_data.MESH51` (``mesh51``: the 51 that match dlib's points) or ``MESH_DENSE`` (``mesh``).
* :class:`DlibFaces`: dlib's HOG detector and 68-point shape predictor, each face *followed* as
  :func:`hcgym.synthesis.expression_data.dlib_track` follows the one face of a training clip: the next
  frame's box is the landmarks' box mapped to a detector-like box by the offsets measured at the face's
  detection; a face whose landmarks collapse or leave the image is let go. The detector (``upsample``,
  threshold ``threshold``) runs on the first frame, on frames where a face was let go or none is followed,
  and every ``detect_every``-th frame (to find faces that came into view); a detection overlapping a followed
  face (IoU >= ``match_iou``) is that face. The box is the extent of the 68 points; the landmarks are the 51
  without the jaw.

:class:`FaceTracks` links the faces of successive sampled frames by box IoU (greedy, larger faces first, at
``match_iou``) into tracks with ids. Each track buffers the landmarks of its last ``window`` sampled frames;
a sampled frame where a track's face is not found adds a missing frame, and the track ends after more than
``max_missing`` missing frames in a row. :meth:`FaceTrack.window` fills missing frames as
:func:`hcgym.synthesis.expression_data.fill_missing` does for the training clips (the last found frame
before, else the first after) and pads a buffer shorter than the window at the front with its first frame.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from hcgym.errors import SpecError

#: Landmark sources of the sensor and their number of points.
SOURCE_POINTS = {"mesh51": 51, "mesh": 145, "dlib": 51}


def mesh_faces(image: np.ndarray, source: str, max_faces: int, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Face Mesh faces of an RGB uint8 image: boxes (M, 4) and the ``source``'s landmarks (M, V, 2), pixels."""
    from hcgym.perception.face.mediapipe_models import face_mesh_points
    from hcgym.synthesis.expression_data import MESH51, MESH_DENSE

    mesh = face_mesh_points(image, max_faces=max_faces, refine=True, min_confidence=min_confidence)
    surface = mesh[:, :468, :2]
    boxes = np.concatenate([surface.min(axis=1), surface.max(axis=1)], axis=1).reshape(-1, 4)
    index = MESH51 if source == "mesh51" else MESH_DENSE
    return boxes, mesh[:, index, :2].reshape(len(mesh), len(index), 2)


@dataclass
class _Followed:
    box: np.ndarray       # detector-like box for the next frame
    offsets: np.ndarray   # the detector box in the eye frame of its landmarks (expression_data._eye_anchor)
    points: np.ndarray    # (68, 2) landmarks of the last frame


class DlibFaces:
    """dlib HOG faces followed from frame to frame (see the module docstring); ``reset()`` lets them all go."""

    def __init__(self, threshold: float = -0.8, upsample: int = 1, max_faces: int = 4, detect_every: int = 8,
                 match_iou: float = 0.3) -> None:
        self.threshold, self.upsample = float(threshold), int(upsample)
        self.max_faces, self.detect_every, self.match_iou = int(max_faces), int(detect_every), float(match_iou)
        self.reset()

    def reset(self) -> None:
        self.faces: list[_Followed] = []
        self.frames = 0
        #: Whether the detector ran on the last frame.
        self.detected = False

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (M, 4) and 51 landmarks (M, 51, 2) of the faces followed in ``image``, the next frame."""
        from hcgym.perception.face.dlib_models import landmarks68
        from hcgym.synthesis.expression_data import JAW, _eye_box, _lost

        self.frames += 1
        kept = []
        for face in self.faces:
            lm = landmarks68(image, face.box)
            if not _lost(lm, face.box, face.points, image.shape):
                face.points, face.box = lm, _eye_box(lm, face.offsets)
                kept.append(face)
        lost = len(kept) < len(self.faces)
        self.faces = kept
        self.detected = lost or not kept or (self.frames - 1) % self.detect_every == 0
        if self.detected:
            self._detect(image)
        points = np.asarray([f.points for f in self.faces], np.float64).reshape(-1, 68, 2)
        boxes = np.concatenate([points.min(axis=1), points.max(axis=1)], axis=1).reshape(-1, 4)
        return boxes, points[:, JAW:]

    def _detect(self, image: np.ndarray) -> None:
        from hcgym.geometry import box_iou
        from hcgym.perception.face.dlib_models import landmarks68, load
        from hcgym.synthesis.expression_data import _eye_anchor, _eye_box, _lost

        dets, scores, _ = load("hog").run(np.ascontiguousarray(image), self.upsample, self.threshold)
        for k in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
            if len(self.faces) >= self.max_faces:
                break
            d = dets[int(k)]
            box = np.array([d.left(), d.top(), d.right() + 1, d.bottom() + 1], dtype=np.float64)
            if any(box_iou(box, f.box) >= self.match_iou for f in self.faces):
                continue
            lm = landmarks68(image, box)
            if not _lost(lm, box, None, image.shape):
                offsets = _eye_anchor(lm, box)
                self.faces.append(_Followed(_eye_box(lm, offsets), offsets, lm))


@dataclass
class FaceTrack:
    """One face over sampled frames: ``id``, its last ``box`` and its landmark buffer (``window`` frames)."""

    id: int
    box: np.ndarray
    window_size: int
    points: deque = field(init=False)
    found: deque = field(init=False)
    missing: int = 0

    def __post_init__(self) -> None:
        self.points = deque(maxlen=self.window_size)
        self.found = deque(maxlen=self.window_size)

    def __len__(self) -> int:
        """Frames in the buffer (found or missing)."""
        return len(self.points)

    def add(self, points: np.ndarray | None) -> None:
        """The next sampled frame: the face's (V, 2) landmarks, or ``None`` where it was not found."""
        if points is None:
            self.points.append(np.zeros_like(self.points[-1]))
            self.found.append(False)
            self.missing += 1
        else:
            self.points.append(np.asarray(points, np.float32))
            self.found.append(True)
            self.missing = 0

    def window(self) -> np.ndarray:
        """(window, V, 2) float32: the buffer with missing frames filled, padded at the front with its first frame."""
        from hcgym.synthesis.expression_data import fill_missing

        pts = fill_missing(np.stack(self.points), np.asarray(self.found))
        pad = self.window_size - len(pts)
        return np.concatenate([np.repeat(pts[:1], pad, axis=0), pts]) if pad > 0 else pts


class FaceTracks:
    """Face tracks of a stream, linked by box IoU (see the module docstring)."""

    def __init__(self, window: int, match_iou: float = 0.3, max_missing: int = 4) -> None:
        if not 0 <= max_missing < window:
            raise SpecError("max_missing", f"expected 0 <= max_missing < the model's window ({window}), "
                                           f"got {max_missing!r}")
        self.window, self.match_iou, self.max_missing = int(window), float(match_iou), int(max_missing)
        self.reset()

    def reset(self) -> None:
        self.tracks: dict[int, FaceTrack] = {}
        self.next_id = 0

    def __getitem__(self, track_id: int) -> FaceTrack:
        return self.tracks[track_id]

    def update(self, boxes: np.ndarray, points: np.ndarray) -> list[int]:
        """The faces of the next sampled frame (boxes (M, 4), landmarks (M, V, 2)) -> the track id of each."""
        from hcgym.perception.bench_base import greedy_match

        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        ids = list(self.tracks)
        old = np.asarray([self.tracks[i].box for i in ids], np.float64).reshape(-1, 4)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        track_match, _, _, _ = greedy_match(boxes, area, old, np.zeros(len(ids), bool), self.match_iou)
        out: list[int | None] = [None] * len(boxes)
        for tid, m in zip(ids, track_match):
            track = self.tracks[tid]
            if m >= 0:
                track.box = boxes[m]
                track.add(points[m])
                out[m] = tid
            else:
                track.add(None)
                if track.missing > self.max_missing:
                    del self.tracks[tid]
        for m in range(len(boxes)):
            if out[m] is None:
                track = FaceTrack(self.next_id, boxes[m], self.window)
                track.add(points[m])
                self.tracks[track.id] = track
                out[m] = track.id
                self.next_id += 1
        return [int(i) for i in out]


__all__ = ["DlibFaces", "FaceTrack", "FaceTracks", "SOURCE_POINTS", "mesh_faces"]
