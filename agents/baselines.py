"""Baselines of OpenDR D3.2 section 2.2: a static camera and a rule-based active agent."""

from __future__ import annotations

from typing import Any

import numpy as np

from hcgym.agents.base import Agent

STAY, FORWARD, BACKWARD, ARC_LEFT, ARC_RIGHT = range(5)


class StaticAgent(Agent):
    """Never moves: runs the face pipeline (stay) at every step."""

    name = "static"

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        return STAY


class RuleBasedAgent(Agent):
    """The paper's rule-based agent: detect the face, centre it, approach while the confidence rises.

    * No face in the observation: stay (nothing to act on).
    * A face whose nose is off the eye midpoint (the face is seen from the side): arc towards the
      frontal view (setup 2 only).
    * A frontal face: alternate *stay* (to read the confidence) and *forward* while the confidence
      improves; after ``patience`` readings without a new best (or when the face is lost), step
      back to where the best confidence was read and stay there.

    The detector runs on the observation, so the agent asks for observations large enough for it
    (:meth:`observation_size`, the paper's 400x300). ``yaw_threshold`` is the nose offset, in eye
    distances, that triggers an arc.
    """

    name = "rule"
    #: (width, height) of the observations the agent needs: its face detector must see the face.
    OBS_SIZE = (400, 300)

    def observation_size(self) -> tuple[int, int]:
        """(width, height) of the observations to give this agent."""
        return self.OBS_SIZE

    def __init__(self, detector: str = "face/mediapipe-full", one_axis: bool = False,
                 yaw_threshold: float = 0.25, patience: int = 4) -> None:
        import hcgym.perception as hp

        self.detector = hp.make(detector)
        self.one_axis = bool(one_axis)
        self.yaw_threshold = float(yaw_threshold)
        self.patience = int(patience)
        self.reset()

    def reset(self) -> None:
        self._best = -1.0
        self._since_best = 0  # forward moves made since the best reading
        self._misses = 0
        self._back = 0  # backward moves still to make
        self._done = False
        self._measure_next = True

    def _face_offset(self, obs: np.ndarray) -> float | None:
        det = self.detector(np.ascontiguousarray(obs[..., :3]))
        if not len(det) or det.keypoints is None:
            return None
        centre = np.array([obs.shape[1] / 2, obs.shape[0] / 2])
        mid = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
        k = int(np.argmin(np.linalg.norm(mid - centre, axis=1)))
        kp = det.keypoints[k]  # MediaPipe: right eye, left eye, nose tip, mouth, right ear, left ear
        eyes = (kp[0] + kp[1]) / 2
        span = max(abs(kp[1, 0] - kp[0, 0]), 1e-6)
        return float((kp[2, 0] - eyes[0]) / span)

    def _finish(self) -> int:
        self._back = self._since_best
        self._done = True
        return self.act_back()

    def act_back(self) -> int:
        if self._back > 0:
            self._back -= 1
            return BACKWARD
        return STAY

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        if self._done:
            return self.act_back()
        offset = self._face_offset(observation)
        if offset is None:
            return self._finish() if self._best > 0 else STAY
        if not self.one_axis and abs(offset) > self.yaw_threshold:
            # Nose left of the eyes in the image: the person faces image-left; arc to see them frontally.
            return ARC_RIGHT if offset < 0 else ARC_LEFT
        if self._measure_next:
            self._measure_next = False
            return STAY
        self._measure_next = True
        conf = float(info.get("confidence", 0.0))
        if conf > self._best:
            self._best, self._since_best, self._misses = conf, 0, 0
        else:
            self._misses += 1
            if self._misses >= self.patience and self._best > 0:
                return self._finish()
        self._since_best += 1
        return FORWARD
