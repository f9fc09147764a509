"""Skeleton inputs of the GCN action models: MediaPipe Pose mapped to NTU RGB+D, lifted to the camera frame
and normalised as ST-GCN pipelines do, for a whole clip (training data) or frame by frame (a live stream).

* :data:`MEDIAPIPE_TO_NTU` (25, 33): MediaPipe's 33 points to the 25 NTU joints (:data:`NTU_JOINTS` order);
  the twelve limb joints of :data:`hcgym.types.KEYPOINT_SCHEMES` one to one, the others as weighted
  combinations of neighbouring landmarks along segments (:func:`mediapipe_weights`);
* :func:`lift`: MediaPipe's hip-centred metric landmarks moved into the camera frame (metres, x right, y down,
  z forward) by the translation that best projects them onto their image points;
* :func:`camera_joints`: one MediaPipe person -> (25, 3) NTU joints in the camera frame (map of the lift);
* :func:`normalise`: a clip of joints minus ``spine_mid`` of its first valid frame, divided by the mean torso
  length (``spine_base`` to ``spine_shoulder``) over its valid frames, zeros on invalid frames;
* :class:`StreamNormaliser`: the same, causally: frame ``t`` is normalised with what frames ``0..t`` give,
  so it equals ``normalise(joints[:t + 1], valid[:t + 1])[0][t]``.

:mod:`hcgym.synthesis.action_data` builds the training caches with these functions; the action sensors
(:mod:`hcgym.perception.action.sensors`) run them on live frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hcgym.synthesis.motion.skeleton import NTU_JOINTS
from hcgym.types import KEYPOINT_SCHEMES

#: Index of ``spine_mid``, the joint a clip is centred on.
SPINE = NTU_JOINTS.index("spine_mid")
#: ``(spine_base, spine_shoulder)``: the torso whose mean length is a clip's scale.
TORSO = (NTU_JOINTS.index("spine_base"), NTU_JOINTS.index("spine_shoulder"))
#: Smallest visibility weight of a landmark in :func:`lift` (hidden landmarks still count a little).
MIN_LIFT_WEIGHT = 0.05


def mediapipe_weights() -> dict[str, dict[int, float]]:
    """NTU joint -> {MediaPipe Pose point index: weight} (weights sum to 1).

    The fractions along each segment were fitted (least squares, then rounded) to the ground-truth joints
    on 960 frames of 32 action clips (``hcgym generate --mode clips --labels actions --n 32 --seed 0``),
    MediaPipe run on the frames as :func:`hcgym.synthesis.action_data.prepare` runs it.
    """
    out: dict[str, dict[int, float]] = {name: {i: 1.0} for i, name in KEYPOINT_SCHEMES["mediapipe33"].items()}
    out.update({
        "spine_base": {23: 0.5, 24: 0.5},                                    # between the hips
        "spine_mid": {23: 1 / 3, 24: 1 / 3, 11: 1 / 6, 12: 1 / 6},           # a third of the way up
        "spine_shoulder": {11: 0.575, 12: 0.575, 23: -0.075, 24: -0.075},    # 1.15 torsos up from the hips
        "neck": {11: 0.15, 12: 0.15, 7: 0.35, 8: 0.35},                      # 0.7 of the way to the ears
        "head": {7: 0.375, 8: 0.375, 0: 0.25},                               # ears, a quarter to the nose
    })
    for side, wrist, pinky, index, thumb, heel, toe in (("left", 15, 17, 19, 21, 29, 31),
                                                         ("right", 16, 18, 20, 22, 30, 32)):
        out[f"{side}_hand"] = {wrist: 0.3, pinky: 0.35, index: 0.35}       # 0.7 of wrist to knuckles
        out[f"{side}_hand_tip"] = {wrist: -1.4, pinky: 1.2, index: 1.2}    # 2.4 x wrist to knuckles
        out[f"{side}_thumb"] = {wrist: -1.0, thumb: 2.0}                   # twice wrist to thumb point
        out[f"{side}_foot"] = {heel: 0.1, toe: 0.9}                        # near the toe point
    return out


def _mapping() -> np.ndarray:
    m = np.zeros((len(NTU_JOINTS), 33))
    for name, weights in mediapipe_weights().items():
        for i, v in weights.items():
            m[NTU_JOINTS.index(name), i] = v
    return m


#: MediaPipe Pose (``mediapipe33``) to NTU RGB+D joints, as (25, 33) weights: ``ntu = MEDIAPIPE_TO_NTU @ points``.
MEDIAPIPE_TO_NTU: np.ndarray = _mapping()


def lift(world: np.ndarray, pixels: np.ndarray, weight: np.ndarray, camera: dict[str, float]) -> np.ndarray:
    """MediaPipe's hip-centred metric landmarks (K, 3) in the camera frame: plus the translation ``t`` that
    best projects them onto their image points (K, 2) with the pinhole ``camera`` (fx, fy, cx, cy), in the
    weighted least-squares sense of ``fx (X + tx) = (u - cx) (Z + tz)`` and the same in y."""
    fx, fy, cx, cy = (float(camera[k]) for k in ("fx", "fy", "cx", "cy"))
    du, dv = pixels[:, 0] - cx, pixels[:, 1] - cy
    k = len(world)
    a = np.zeros((2 * k, 3))
    a[:k, 0], a[:k, 2] = fx, -du
    a[k:, 1], a[k:, 2] = fy, -dv
    b = np.concatenate([du * world[:, 2] - fx * world[:, 0], dv * world[:, 2] - fy * world[:, 1]])
    sw = np.sqrt(np.concatenate([weight, weight]))
    t = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)[0]
    return world + t


def camera_joints(world: np.ndarray, pixels: np.ndarray, visibility: np.ndarray, camera: dict[str, Any]) -> np.ndarray:
    """(25, 3) NTU joints in the camera frame (metres) of one MediaPipe person: its world landmarks (33, 3)
    lifted with its image points (33, 2) (weights: the visibility (33,), at least :data:`MIN_LIFT_WEIGHT`) and
    mapped by :data:`MEDIAPIPE_TO_NTU`. ``camera``: ``fx, fy, cx, cy`` in pixels."""
    score = np.clip(visibility, 0.0, 1.0)
    return MEDIAPIPE_TO_NTU @ lift(world, pixels, np.maximum(score, MIN_LIFT_WEIGHT), camera)


def torso_lengths(joints: np.ndarray) -> np.ndarray:
    """(...) ``spine_base`` to ``spine_shoulder`` distances of (..., 25, 3) joints."""
    return np.linalg.norm(joints[..., TORSO[1], :] - joints[..., TORSO[0], :], axis=-1)


def _scale(mean_torso: float) -> float:
    return mean_torso if mean_torso > 1e-6 else 1.0


def normalise(joints: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ST-GCN style normalisation of (T, 25, 3) joints: minus ``spine_mid`` of the first valid frame, divided by
    the mean torso length over the valid frames. Returns the joints (zeros on invalid frames) and
    ``[cx, cy, cz, scale]`` (zeros when no frame is valid)."""
    out = np.zeros_like(joints, dtype=np.float64)
    if not valid.any():
        return out, np.zeros(4)
    centre = joints[int(np.flatnonzero(valid)[0]), SPINE]
    scale = _scale(float(torso_lengths(joints[valid]).mean()))
    out[valid] = (joints[valid] - centre) / scale
    return out, np.array([*centre, scale])


class StreamNormaliser:
    """:func:`normalise` for a stream, one frame at a time, using only the frames seen so far.

    ``normaliser(joints)`` with (25, 3) camera-frame joints, or ``None`` where nobody was found, returns the
    (25, 3) float64 normalised frame: minus ``spine_mid`` of the first frame with joints since :meth:`reset`,
    divided by the mean torso length over every frame with joints since then (this frame included); zeros
    for ``None`` (and nothing found yet), as the training clips have zeros where MediaPipe found nobody.

    The difference from a training clip: there the scale is the mean over the whole clip, future frames
    included, and the centre is the first frame of each 40-frame clip; here frame ``t`` gets the mean over
    frames ``0..t`` and the centre stays that of the first frame since the reset (earlier frames are already
    in the continual model's state and are not revised).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the centre and the scale: the next frame with joints starts a new stream."""
        self.centre: np.ndarray | None = None
        self._torso_sum = 0.0
        self.frames = 0

    @property
    def scale(self) -> float:
        """The current scale: the mean torso length so far (1 before any frame with joints)."""
        return _scale(self._torso_sum / self.frames) if self.frames else 1.0

    def __call__(self, joints: np.ndarray | None) -> np.ndarray:
        if joints is None:
            return np.zeros((len(NTU_JOINTS), 3))
        joints = np.asarray(joints, np.float64)
        if self.centre is None:
            self.centre = joints[SPINE].copy()
        self._torso_sum += float(torso_lengths(joints))
        self.frames += 1
        return (joints - self.centre) / self.scale
