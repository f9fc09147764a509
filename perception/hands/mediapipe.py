"""MediaPipe Hands (``mediapipe.solutions.hands``, 0.10.21; the models ship inside the wheel) as a sensor.

Up to ``max_num_hands`` hands per image: 21 points each in MediaPipe's hand order (``mediapipe21``: wrist,
then thumb, index, middle, ring and pinky from base to tip), the hand's metric world landmarks, and its
side. MediaPipe labels handedness as if the image were mirrored (a selfie camera), so in an ordinary
camera image its "Left" is the person's own right hand: the sensor flips the label, and ``sides`` is the
person's own hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hcgym.errors import DependencyNotInstalled, SpecError
from hcgym.perception.pose.mediapipe import MediaPipeGraphSensor, boxes_of, check_confidence, empty_keypoints
from hcgym.types import Keypoints

#: Points of the ``mediapipe21`` scheme.
NUM_POINTS = 21
SCHEME = "mediapipe21"
#: MediaPipe's handedness label -> the person's own hand (MediaPipe assumes a mirrored image).
OWN_SIDE = {"Left": "right", "Right": "left"}


def _solution() -> Any:
    try:
        from mediapipe.python.solutions import hands
    except ImportError:  # pragma: no cover - mediapipe is a core dependency
        raise DependencyNotInstalled("mediapipe==0.10.21 is required: pip install mediapipe==0.10.21") from None
    return hands


class MediaPipeHands(MediaPipeGraphSensor):
    """MediaPipe Hands: ``sensor(frame_or_rgb) -> Keypoints`` (scheme ``mediapipe21``), one row per hand.

    ``points`` (N, 21, 2) pixels, ``scores`` (N, 21) the hand's detection (handedness) score repeated,
    ``boxes`` (N, 4) around the points (clipped to the image), ``sides`` the person's own hand
    (``"left"``/``"right"``, MediaPipe's mirrored label flipped) and ``world`` (N, 21, 3) metric landmarks
    (metres, origin at the hand's centre). No hand: 0 rows.

    Args:
        static_image_mode: ``True`` (default) runs the palm detector on every image; ``False`` tracks the
            hands over consecutive calls (:meth:`reset` between streams).
        max_num_hands: at most this many hands (default 2).
        model_complexity: 0 (lite) or 1 (full, default).
        min_detection_confidence: the palm detector's threshold in [0, 1].

    Making the sensor loads MediaPipe's graph and nothing else; :meth:`close` frees it (also ``with``).
    """

    def __init__(self, static_image_mode: bool = True, max_num_hands: int = 2, model_complexity: int = 1,
                 min_detection_confidence: float = 0.5) -> None:
        if model_complexity not in (0, 1) or isinstance(model_complexity, bool):
            raise SpecError("model_complexity", f"expected 0 (lite) or 1 (full), got {model_complexity!r}")
        if not isinstance(max_num_hands, (int, np.integer)) or isinstance(max_num_hands, bool) or max_num_hands < 1:
            raise SpecError("max_num_hands", f"expected a whole number >= 1, got {max_num_hands!r}")
        if not isinstance(static_image_mode, (bool, np.bool_)):
            raise SpecError("static_image_mode", f"expected True or False, got {static_image_mode!r}")
        self.static_image_mode = bool(static_image_mode)
        self.max_num_hands = int(max_num_hands)
        self.model_complexity = int(model_complexity)
        self.min_detection_confidence = check_confidence(min_detection_confidence, "min_detection_confidence")
        self.name = "hands/mediapipe"
        self._graph: Any = _solution().Hands(static_image_mode=self.static_image_mode,
                                             max_num_hands=self.max_num_hands,
                                             model_complexity=self.model_complexity,
                                             min_detection_confidence=self.min_detection_confidence)

    def process(self, image: np.ndarray) -> Keypoints:
        """The hands in RGB uint8 ``image``."""
        h, w = image.shape[:2]
        res = self._live().process(image)
        found = res.multi_hand_landmarks or []
        if not found:
            return empty_keypoints(NUM_POINTS, SCHEME)
        points = np.array([[[p.x * w, p.y * h] for p in hand.landmark] for hand in found], dtype=np.float64)
        labels = [c.classification[0] for c in res.multi_handedness]
        scores = np.repeat(np.array([[c.score] for c in labels], dtype=np.float64), NUM_POINTS, axis=1)
        sides: list[str | None] = [OWN_SIDE.get(c.label) for c in labels]
        world = None
        if res.multi_hand_world_landmarks:
            world = np.array([[[p.x, p.y, p.z] for p in hand.landmark] for hand in res.multi_hand_world_landmarks],
                             dtype=np.float64)
        return Keypoints(points, np.clip(scores, 0.0, 1.0), boxes_of(points, w, h), SCHEME, sides, world)

    def reset(self) -> None:
        """Forget tracked hands (only matters with ``static_image_mode=False``)."""
        self._live().reset()
