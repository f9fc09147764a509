"""MediaPipe Pose (``mediapipe.solutions.pose``, 0.10.21; the models ship inside the wheel) as a sensor.

One person per image: 33 points in MediaPipe's BlazePose order (``mediapipe33``; "left" is the person's
own left, as MediaPipe gives it), their visibility, and MediaPipe's metric world landmarks (metres, origin
between the hips). By default the sensor tracks: each call is the next frame of one stream and MediaPipe
looks for the person near where it last was; :meth:`MediaPipePose.reset` starts a new stream, and
``static_image_mode=True`` runs the detector on every image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import DependencyNotInstalled, SpecError
from hcgym.perception.base import Sensor
from hcgym.types import Keypoints

#: Points of the ``mediapipe33`` scheme.
NUM_POINTS = 33
SCHEME = "mediapipe33"


def _solution() -> Any:
    try:
        from mediapipe.python.solutions import pose
    except ImportError:  # pragma: no cover - mediapipe is a core dependency
        raise DependencyNotInstalled("mediapipe==0.10.21 is required: pip install mediapipe==0.10.21") from None
    return pose


#: The landmark model of each ``model_complexity``; only ``full`` ships inside the mediapipe wheel.
LANDMARK_MODELS = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}


def landmark_model_path(model_complexity: int) -> Path:
    """Where MediaPipe looks for the pose landmark model of ``model_complexity`` (inside its package)."""
    import mediapipe

    return Path(mediapipe.__file__).parent / "modules" / "pose_landmark" / LANDMARK_MODELS[model_complexity]


def boxes_of(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4) ``[x0, y0, x1, y1]`` around each of the (N, K, 2) point sets, clipped to the image."""
    if not len(points):
        return np.zeros((0, 4))
    lo, hi = points.min(axis=1), points.max(axis=1)
    box = np.concatenate([lo, hi], axis=1)
    return np.clip(box, 0.0, [width, height, width, height])


def empty_keypoints(num_points: int, scheme: str) -> Keypoints:
    """A :class:`~hcgym.types.Keypoints` with no rows (nothing found), shaped for ``num_points`` points."""
    return Keypoints(np.zeros((0, num_points, 2)), np.zeros((0, num_points)), np.zeros((0, 4)), scheme, [],
                     np.zeros((0, num_points, 3)))


def check_confidence(value: float, option: str) -> float:
    """``value`` as a float in [0, 1], or a :class:`SpecError` naming ``option``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SpecError(option, f"expected a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise SpecError(option, f"expected a number in [0, 1], got {value!r}")
    return v


class MediaPipeGraphSensor(Sensor):
    """A sensor around one MediaPipe solution graph (``self._graph``): closable, usable with ``with``."""

    _graph: Any = None

    @property
    def closed(self) -> bool:
        return self._graph is None

    def _live(self) -> Any:
        if self._graph is None:
            raise RuntimeError(f"{self.name} is closed; make a new sensor")
        return self._graph

    def close(self) -> None:
        """Free MediaPipe's graph; closing twice is harmless, calling a closed sensor an error."""
        if self._graph is not None:
            graph, self._graph = self._graph, None
            graph.close()

    def __enter__(self) -> "MediaPipeGraphSensor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MediaPipePose(MediaPipeGraphSensor):
    """MediaPipe Pose: ``sensor(frame_or_rgb) -> Keypoints`` (scheme ``mediapipe33``).

    A found person is one row: ``points`` (1, 33, 2) pixels, ``scores`` (1, 33) MediaPipe's visibility,
    ``boxes`` (1, 4) around the points (clipped to the image), ``sides`` ``[None]`` and ``world``
    (1, 33, 3) metric landmarks. Nobody found: 0 rows.

    Args:
        static_image_mode: ``False`` (default) tracks the person over consecutive calls (one video
            stream; :meth:`reset` between streams); ``True`` treats every image on its own.
        model_complexity: 0 (lite), 1 (full, default) or 2 (heavy). Only ``full`` ships with mediapipe;
            the others must be placed in its package first (the sensor never downloads anything:
            :class:`~hcgym.errors.DependencyNotInstalled` says where).
        min_detection_confidence: the person detector's threshold in [0, 1].

    Making the sensor loads MediaPipe's graph and nothing else; :meth:`close` frees it (also ``with``).
    """

    def __init__(self, static_image_mode: bool = False, model_complexity: int = 1,
                 min_detection_confidence: float = 0.5) -> None:
        if model_complexity not in (0, 1, 2) or isinstance(model_complexity, bool):
            raise SpecError("model_complexity", f"expected 0 (lite), 1 (full) or 2 (heavy), got {model_complexity!r}")
        if not isinstance(static_image_mode, (bool, np.bool_)):
            raise SpecError("static_image_mode", f"expected True or False, got {static_image_mode!r}")
        self.static_image_mode = bool(static_image_mode)
        self.model_complexity = int(model_complexity)
        self.min_detection_confidence = check_confidence(min_detection_confidence, "min_detection_confidence")
        self.name = "pose/mediapipe"
        pose = _solution()
        model = landmark_model_path(self.model_complexity)
        if not model.is_file():  # MediaPipe would download it into its package: refuse instead
            raise DependencyNotInstalled(
                f"model_complexity={self.model_complexity} needs {model.name}, which the mediapipe wheel does not "
                f"ship; put it at {model} (from https://storage.googleapis.com/mediapipe-assets/{model.name}) "
                "or use model_complexity=1 (shipped)")
        self._graph: Any = pose.Pose(static_image_mode=self.static_image_mode,
                                            model_complexity=self.model_complexity,
                                            min_detection_confidence=self.min_detection_confidence)

    def process(self, image: np.ndarray) -> Keypoints:
        """The person in RGB uint8 ``image`` (the next frame of the stream when tracking)."""
        h, w = image.shape[:2]
        res = self._live().process(image)
        if res.pose_landmarks is None:
            return empty_keypoints(NUM_POINTS, SCHEME)
        lm = np.array([[p.x * w, p.y * h, p.visibility] for p in res.pose_landmarks.landmark], dtype=np.float64)
        points = lm[None, :, :2]
        world = None
        if res.pose_world_landmarks is not None:
            world = np.array([[[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark]], dtype=np.float64)
        return Keypoints(points, np.clip(lm[None, :, 2], 0.0, 1.0), boxes_of(points, w, h), SCHEME, [None], world)

    def reset(self) -> None:
        """Forget the tracked person: the next call is the first frame of a new stream."""
        self._live().reset()
