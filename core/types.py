"""Shared types: camera models, ground truth and the rendered :class:`Frame`.

Every layer of hcgym (backends, envs, sensors, dataset generator) exchanges
these dataclasses. Images are numpy arrays in **RGB order**; lengths are in
metres and angles in degrees unless a name says otherwise. Boxes are
``[x_min, y_min, x_max, y_max]`` in continuous pixel coordinates (see
:mod:`hcgym.geometry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The 17 COCO body keypoints, in COCO order.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

#: COCO skeleton as pairs of keypoint indices (0-based), for drawing.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
    (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

#: The five face landmarks, in the order of the ArcFace alignment template.
FACE_LANDMARKS: tuple[str, ...] = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")

#: COCO keypoint visibility flags.
NOT_LABELLED, OCCLUDED, VISIBLE = 0, 1, 2


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole camera: image size in pixels and focal lengths / principal point in pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    near: float = 0.03
    far: float = 60.0

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_deg: float, near: float = 0.03, far: float = 60.0) -> "CameraIntrinsics":
        """Square-pixel camera with horizontal field of view ``hfov_deg``."""
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, f, f, width / 2.0, height / 2.0, near, far)

    @property
    def matrix(self) -> np.ndarray:
        """3x3 intrinsic matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.width / (2.0 * self.fx)))

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.height / (2.0 * self.fy)))

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("width", "height", "fx", "fy", "cx", "cy", "near", "far")}


@dataclass
class HumanTruth:
    """Ground truth of one human in one rendered frame.

    Attributes:
        id: index of the human in the world spec (segmentation value is ``id + 1``).
        avatar: content hash of the avatar build.
        identity: identity label (the avatar's identity hash; equal for re-dressed or re-posed copies).
        bbox: visible extent from the segmentation mask, ``[x0, y0, x1, y1]``; ``None`` if not visible.
        bbox_amodal: extent of all projected mesh vertices (ignores occlusion).
        face_box: face box from projected 3D face points (brow to chin, cheek to cheek); ``None`` if behind the camera.
        keypoints: (17, 3) ``[u, v, visibility]`` in COCO order, visibility 0/1/2.
        keypoints_3d: (17, 3) world coordinates in metres.
        face_landmarks: (5, 3) ``[u, v, visibility]`` for :data:`FACE_LANDMARKS`.
        face_landmarks_3d: (5, 3) world coordinates.
        distance: metres from the camera centre to the midpoint of the eyes.
        face_yaw: degrees between the face's forward direction and the direction to the camera
            (0 = frontal, positive when the camera is on the person's left).
        pixels: number of visible pixels in the segmentation.
        motion: labels and moving-body truth of a person with a behaviour timeline (``None`` when static).
    """

    id: int
    avatar: str
    identity: str
    bbox: np.ndarray | None
    bbox_amodal: np.ndarray | None
    face_box: np.ndarray | None
    keypoints: np.ndarray
    keypoints_3d: np.ndarray
    face_landmarks: np.ndarray
    face_landmarks_3d: np.ndarray
    distance: float
    face_yaw: float
    pixels: int
    motion: "MotionTruth | None" = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (lists of floats, rounded to 0.01 px / 1 mm)."""

        def box(b: np.ndarray | None) -> list[float] | None:
            return None if b is None else [round(float(x), 2) for x in b]

        def pts(a: np.ndarray, nd: int) -> list[list[float]]:
            return [[round(float(x), nd) for x in row] for row in np.nan_to_num(a, nan=-1.0)]

        return {
            "id": self.id,
            "avatar": self.avatar,
            "identity": self.identity,
            "bbox": box(self.bbox),
            "bbox_amodal": box(self.bbox_amodal),
            "face_box": box(self.face_box),
            "keypoints": pts(self.keypoints, 2),
            "keypoints_3d": pts(self.keypoints_3d, 4),
            "face_landmarks": pts(self.face_landmarks, 2),
            "face_landmarks_3d": pts(self.face_landmarks_3d, 4),
            "distance": round(self.distance, 4),
            "face_yaw": round(self.face_yaw, 2),
            "pixels": self.pixels,
            **({} if self.motion is None else {"motion": self.motion.to_dict()}),
        }


@dataclass
class MotionTruth:
    """Per-frame labels and ground truth of a moving person.

    Image points are ``[u, v, visibility]`` with COCO visibility from the depth test; 3-D points are world
    coordinates in metres.

    Attributes:
        action: the whole-body action (``walk``, ``sit_down``, ``idle`` ...); ``action_phase`` its progress in [0, 1].
        upper_action: the upper-body action layered over it (``wave``, ``phone_call`` ...), or ``None``.
        expression: the dominant facial expression and its intensity in [0, 1].
        facial_actions: (52,) ARKit facial action values (order of ``hcgym.synthesis.labels.FACIAL_ACTIONS``).
        gestures: hand gesture per hand (``{"left": ..., "right": ...}``, ``None`` for a relaxed hand).
        talking: the mouth is speaking; ``viseme`` the current mouth shape class.
        skeleton, skeleton_3d: (25, 3) NTU RGB+D joints.
        hand_keypoints, hand_keypoints_3d: (2, 21, 3) MediaPipe hand points, left hand first.
        face68, face68_3d: (68, 3) face landmarks in the iBUG/dlib layout.
        root_velocity: (3,) velocity of the feet origin, m/s.
        gaze: (3,) unit gaze direction in the world.
    """

    action: str
    action_phase: float
    upper_action: str | None
    expression: str
    expression_intensity: float
    facial_actions: np.ndarray
    gestures: dict[str, str | None]
    talking: bool
    viseme: str | None
    skeleton: np.ndarray
    skeleton_3d: np.ndarray
    hand_keypoints: np.ndarray
    hand_keypoints_3d: np.ndarray
    face68: np.ndarray
    face68_3d: np.ndarray
    root_velocity: np.ndarray
    gaze: np.ndarray

    @property
    def label(self) -> str:
        """The action a viewer would name: the upper-body action when there is one, else the whole-body one."""
        return self.upper_action or self.action

    def to_dict(self) -> dict[str, Any]:
        def pts(a: np.ndarray, nd: int) -> list:
            return np.round(np.nan_to_num(np.asarray(a, dtype=np.float64), nan=-1.0), nd).tolist()

        return {
            "action": self.action, "action_phase": round(self.action_phase, 4), "upper_action": self.upper_action,
            "label": self.label, "expression": self.expression,
            "expression_intensity": round(self.expression_intensity, 4),
            "facial_actions": pts(self.facial_actions, 4), "gestures": dict(self.gestures),
            "talking": self.talking, "viseme": self.viseme,
            "skeleton": pts(self.skeleton, 2), "skeleton_3d": pts(self.skeleton_3d, 4),
            "hand_keypoints": pts(self.hand_keypoints, 2), "hand_keypoints_3d": pts(self.hand_keypoints_3d, 4),
            "face68": pts(self.face68, 2), "face68_3d": pts(self.face68_3d, 4),
            "root_velocity": pts(self.root_velocity, 4), "gaze": pts(self.gaze, 4),
        }


@dataclass
class Frame:
    """One rendered camera image with its ground truth.

    Attributes:
        rgb: (H, W, 3) uint8, **RGB** order.
        depth: (H, W) float32, z-depth along the optical axis in metres; ``inf`` where nothing was hit.
        segmentation: (H, W) int32 instance ids: 0 = background/static world, ``k + 1`` = human ``k``.
        intrinsics: the camera model.
        world_to_camera: (4, 4) extrinsics (OpenCV camera frame).
        camera: camera name in the world spec.
        time: simulation time in seconds.
        humans: ground truth per human in the world (also those outside the view).
    """

    rgb: np.ndarray
    depth: np.ndarray
    segmentation: np.ndarray
    intrinsics: CameraIntrinsics
    world_to_camera: np.ndarray
    camera: str = "camera"
    time: float = 0.0
    humans: list[HumanTruth] = field(default_factory=list)

    @property
    def camera_position(self) -> np.ndarray:
        """Camera centre in world coordinates (metres)."""
        r = self.world_to_camera[:3, :3]
        return -r.T @ self.world_to_camera[:3, 3]

    def ground_truth(self) -> dict[str, Any]:
        """JSON-friendly ground truth of the frame."""
        return {
            "camera": self.camera,
            "time": self.time,
            "intrinsics": self.intrinsics.to_dict(),
            "world_to_camera": [[round(float(x), 6) for x in row] for row in self.world_to_camera],
            "humans": [h.to_dict() for h in self.humans],
        }


# ---------------------------------------------------------------- sensor results
@dataclass
class Detections:
    """Boxes found by a detector sensor.

    Attributes:
        boxes: (N, 4) ``[x0, y0, x1, y1]`` pixels.
        scores: (N,) confidences in [0, 1] (detector-specific scale for dlib HOG margins).
        keypoints: optional (N, K, 2) pixel keypoints (e.g. the 5 face landmarks in image order:
            image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner;
            MediaPipe gives its own 6).
        label: what was detected (``"face"``, ``"person"``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray | None = None
    label: str = "face"

    def __len__(self) -> int:
        return int(len(self.boxes))


@dataclass
class Landmarks:
    """Per-face landmark sets: ``points`` (N, K, 2 or 3) pixels (z in pixel-like units for 3D meshes)."""

    points: np.ndarray
    boxes: np.ndarray
    scheme: str = "dlib68"  #: ``dlib68`` or ``mediapipe478``.

    def __len__(self) -> int:
        return int(len(self.points))


@dataclass
class Embeddings:
    """Face embeddings: ``vectors`` (N, D) for the faces in ``boxes`` (N, 4)."""

    vectors: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return int(len(self.vectors))


@dataclass
class FaceIdentity:
    """The answer of a gallery for one face (OpenDR D3.2 eq. 3-5).

    ``label`` is the nearest enrolled identity, or ``None`` ("unknown") when its distance ``d`` is at
    or beyond the cut-off ``a``; ``confidence`` is ``c = 1 - d / a`` (0 for unknown faces).
    """

    label: str | None
    distance: float
    confidence: float
    box: np.ndarray | None = None
    nearest: str | None = None  #: nearest label even when beyond the cut-off.


@dataclass
class Keypoints:
    """Keypoint sets found by a pose or hand sensor, one row per detected person or hand.

    Attributes:
        points: (N, K, 2) pixel coordinates in the sensor's own ``scheme``.
        scores: (N, K) per-point confidence (visibility/presence) in [0, 1].
        boxes: (N, 4) ``[x0, y0, x1, y1]`` around each set.
        scheme: the point layout: ``mediapipe33`` (MediaPipe Pose), ``mediapipe21`` (MediaPipe Hands),
            ``coco17`` ...; see :data:`KEYPOINT_SCHEMES`.
        sides: per set, ``"left"`` / ``"right"`` for hands (the person's own hand) or ``None``.
        world: optional (N, K, 3) metric coordinates the sensor estimates (MediaPipe world landmarks).
    """

    points: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    scheme: str
    sides: list[str | None] = field(default_factory=list)
    world: np.ndarray | None = None

    def __len__(self) -> int:
        return int(len(self.points))


#: Keypoint layouts of :class:`Keypoints`, and for each the ground-truth joints it can be scored on:
#: scheme -> {point index: NTU RGB+D joint name (``hcgym.synthesis.motion.skeleton.NTU_JOINTS``)}.
KEYPOINT_SCHEMES: dict[str, dict[int, str]] = {
    "mediapipe33": {11: "left_shoulder", 12: "right_shoulder", 13: "left_elbow", 14: "right_elbow",
                    15: "left_wrist", 16: "right_wrist", 23: "left_hip", 24: "right_hip", 25: "left_knee",
                    26: "right_knee", 27: "left_ankle", 28: "right_ankle"},
    "coco17": {5: "left_shoulder", 6: "right_shoulder", 7: "left_elbow", 8: "right_elbow", 9: "left_wrist",
               10: "right_wrist", 11: "left_hip", 12: "right_hip", 13: "left_knee", 14: "right_knee",
               15: "left_ankle", 16: "right_ankle"},
    "mediapipe21": {},  # hands: scored point for point against the 21 ground-truth hand points
}


@dataclass
class Classification:
    """A class label per subject (a face, a hand, a person, or the whole frame).

    Attributes:
        labels: (N,) predicted class names.
        scores: (N, C) class probabilities, columns in ``classes`` order.
        classes: the class names.
        boxes: (N, 4) the subjects' boxes, or ``None`` for a whole-frame label.
        uncertainty: per-subject uncertainty of a sampling model (Monte Carlo dropout), or ``None``:
            ``"entropy"`` (N,) predictive entropy of ``scores`` in nats, ``"variance"`` (N, C) variance of
            each class probability over the samples.
    """

    labels: list[str]
    scores: np.ndarray
    classes: tuple[str, ...]
    boxes: np.ndarray | None = None
    uncertainty: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class EcgReading:
    """What the ECG sensor reads in one window of a wearable ECG.

    Attributes:
        beats_t: (n,) float64 R-peak times in seconds from the window's start.
        beat_labels: (n,) ``"normal"`` or ``"abnormal"`` per beat; ``"unclassified"`` where the beat's cut (1.2
            median RR from its R peak) runs past the end of the window.
        beat_confidence: (n,) float64 probability of the beat's label (NaN when unclassified).
        rhythm: the window's rhythm (``normal``, ``af``, ``other``, ``noisy``), or ``None`` when the window is
            shorter than the rhythm model's input.
        rhythm_confidence: probability of ``rhythm`` (NaN when ``None``).
        heart_rate: beats per minute, 60 / the median RR interval (NaN with fewer than two beats).
    """

    beats_t: np.ndarray
    beat_labels: list[str]
    beat_confidence: np.ndarray
    rhythm: str | None
    rhythm_confidence: float
    heart_rate: float

    def __len__(self) -> int:
        return int(len(self.beats_t))


@dataclass
class KeywordReading:
    """Spoken words a keyword spotter found in a stretch of microphone audio, one row per utterance.

    Attributes:
        starts, ends: (n,) float64 seconds from the audio's start: the voiced span of each utterance.
        labels: (n,) the class of each (a keyword, ``unknown`` or ``silence``).
        confidences: (n,) float64 probability of the label (softmax maximum).
    """

    starts: np.ndarray
    ends: np.ndarray
    labels: list[str]
    confidences: np.ndarray

    def __len__(self) -> int:
        return int(len(self.labels))
