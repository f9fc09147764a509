"""Ground truth of a rendered frame, shared by every backend.

Keypoint visibility comes from the depth test: a keypoint inside the image is
``VISIBLE`` (2) when its pixel shows this human (instance segmentation) and the
rendered surface there is no nearer than the keypoint minus a tolerance (joints
lie inside the body, so the tolerance is the local body half-thickness);
``OCCLUDED`` (1) otherwise, e.g. behind another person, behind the own body, or
just off the silhouette; ``NOT_LABELLED`` (0) outside the image or behind the
camera, or where the image shows nothing of the scene (``nan`` depth: outside the
field of view of a distorting lens).
"""

from __future__ import annotations

import math

import numpy as np

from hcgym.geometry import RadialDistortion, project
from hcgym.synthesis.builder import FACE_BOX_POINTS
from hcgym.types import FACE_LANDMARKS, NOT_LABELLED, OCCLUDED, VISIBLE, Frame, HumanTruth, MotionTruth

#: Depth-test tolerance per COCO keypoint (metres): surface points (face) are tight, joints looser.
KEYPOINT_TOLERANCE = np.array([0.03, 0.03, 0.03, 0.05, 0.05] + [0.09] * 2 + [0.06] * 2 + [0.05] * 2
                              + [0.12] * 2 + [0.08] * 2 + [0.07] * 2)
FACE_TOLERANCE = 0.03


def visibility(uv: np.ndarray, z: np.ndarray, depth: np.ndarray, tol: np.ndarray | float,
               segmentation: np.ndarray, instance: int) -> np.ndarray:
    """COCO visibility (0/1/2) of projected points of segmentation instance ``instance``."""
    h, w = depth.shape
    vis = np.full(len(uv), NOT_LABELLED, dtype=np.float64)
    ok = np.isfinite(uv).all(axis=1) & (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    if ok.any():
        cols = uv[ok, 0].astype(int)
        rows = uv[ok, 1].astype(int)
        surface = depth[rows, cols]
        tol_ok = np.broadcast_to(np.asarray(tol, dtype=np.float64), (len(uv),))[ok]
        mine = segmentation[rows, cols] == instance
        vis[ok] = np.where(np.isnan(surface), NOT_LABELLED,
                           np.where(mine & (surface >= z[ok] - tol_ok), VISIBLE, OCCLUDED))
    return vis


def frame_truth(frame: Frame, humans, lens: RadialDistortion | None = None) -> list[HumanTruth]:
    """Ground truth of every placed human (``HumanState`` list) in ``frame``.

    With a ``lens``, ``frame`` is the distorted image (its intrinsics those of the pinhole model the
    lens distorts) and every point is projected through the lens: keypoints, landmarks, the face box
    points and the mesh vertices of the amodal box.
    """
    k = frame.intrinsics.matrix
    w2c = frame.world_to_camera
    cam_pos = frame.camera_position
    out = []
    seg = frame.segmentation
    for i, h in enumerate(humans):
        t = h.transform
        to_world = lambda p: np.asarray(p) @ t[:3, :3].T + t[:3, 3]  # noqa: E731
        kp3 = to_world(h.keypoints)
        kp_uv, kp_z = project(kp3, w2c, k, lens)
        kp_vis = visibility(kp_uv, kp_z, frame.depth, KEYPOINT_TOLERANCE, seg, i + 1)
        fl3 = to_world(h.face_points(FACE_LANDMARKS))
        fl_uv, fl_z = project(fl3, w2c, k, lens)
        fl_vis = visibility(fl_uv, fl_z, frame.depth, FACE_TOLERANCE, seg, i + 1)
        box_uv, box_z = project(to_world(h.face_points(FACE_BOX_POINTS)), w2c, k, lens)
        face_box = None
        pts = np.concatenate([box_uv, fl_uv])
        if np.all(box_z > 0) and np.isfinite(pts).all():
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
            face_box = _face_box(x0, y0, x1, y1)
        verts = to_world(h.vertices)
        v_uv, v_z = project(verts, w2c, k, lens)
        front = (v_z > 0) & np.isfinite(v_uv).all(axis=1)
        amodal = None
        if front.any():
            amodal = np.concatenate([v_uv[front].min(0), v_uv[front].max(0)])
        mask = seg == i + 1
        pixels = int(mask.sum())
        bbox = None
        if pixels:
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            bbox = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)
        eyes = (fl3[0] + fl3[1]) / 2
        face_fwd = t[:3, :3] @ (np.array([0.0, -1.0, 0.0]) if h.posed is None else _head_forward(h.posed))
        to_cam = cam_pos - eyes
        yaw = math.degrees(math.atan2(np.cross(face_fwd[:2], to_cam[:2]), float(face_fwd[:2] @ to_cam[:2])))
        out.append(HumanTruth(
            id=i, avatar=h.avatar.key, identity=h.avatar.identity, bbox=bbox, bbox_amodal=amodal,
            face_box=face_box, keypoints=np.column_stack([kp_uv, kp_vis]), keypoints_3d=kp3,
            face_landmarks=np.column_stack([fl_uv, fl_vis]), face_landmarks_3d=fl3,
            distance=float(np.linalg.norm(to_cam)), face_yaw=yaw, pixels=pixels,
            motion=None if h.state is None else motion_truth(frame, h, i, lens),
        ))
    return out


#: Face-box calibration: the raw extent of the projected brow, chin, cheek and landmark points is
#: scaled (width, height) and shifted up (fraction of its height) to match where face detectors put
#: their boxes. Fitted on 20 random avatars at 1 m, yaw 0/+-20 degrees: dlib HOG boxes are
#: 1.23 x 1.17 the raw extent with the centre 0.136 h higher, MediaPipe full-range 1.22 x 1.16, 0.125 h.
FACE_BOX_SCALE = (1.23, 1.16)
FACE_BOX_SHIFT = -0.13


def _face_box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Calibrated face box from the raw extent of the projected face points."""
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + FACE_BOX_SHIFT * h
    hw, hh = FACE_BOX_SCALE[0] * w / 2, FACE_BOX_SCALE[1] * h / 2
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh], dtype=np.float64)


def _head_forward(posed) -> np.ndarray:
    """The face's forward direction (avatar frame): -y turned with the head bone (the gaze with the eyes
    looking straight ahead)."""
    from hcgym.synthesis.motion.face import gaze_direction

    return gaze_direction(posed, 0.0, 0.0)


#: Depth-test tolerance (metres) per NTU RGB+D joint (NTU_JOINTS order): how deep inside the body the joint
#: lies below the surface that shows it (hips and the spine base sit deepest), like KEYPOINT_TOLERANCE.
SKELETON_TOLERANCE = np.array([0.18, 0.16, 0.15, 0.12, 0.10, 0.06, 0.05, 0.05, 0.10, 0.06, 0.05, 0.05, 0.15, 0.08,
                               0.07, 0.06, 0.15, 0.08, 0.07, 0.06, 0.15, 0.03, 0.03, 0.03, 0.03])
#: Depth-test tolerance (metres) of the 21 hand keypoints.
HAND_TOLERANCE = 0.025


def motion_truth(frame: Frame, h, index: int, lens: RadialDistortion | None = None) -> MotionTruth:
    """Per-frame labels and moving-body ground truth of a person with a behaviour (``h.state`` set)."""
    from hcgym.synthesis.motion.skeleton import face68, hand_points, ntu_skeleton

    k, w2c = frame.intrinsics.matrix, frame.world_to_camera
    t = h.transform
    rot = t[:3, :3]

    def world(p: np.ndarray) -> np.ndarray:
        return np.asarray(p) @ rot.T + t[:3, 3]

    def image(p3: np.ndarray, tol) -> np.ndarray:
        uv, z = project(p3, w2c, k, lens)
        return np.column_stack([uv, visibility(uv, z, frame.depth, tol, frame.segmentation, index + 1)])

    st, posed = h.state, h.posed
    skel = world(ntu_skeleton(posed))
    hands = np.stack([world(hand_points(posed, side)) for side in ("left", "right")])
    f68 = world(face68(posed))
    from hcgym.synthesis.motion.face import gaze_direction

    gaze = rot @ gaze_direction(posed, *st.labels.get("eye_angles", (0.0, 0.0)))
    return MotionTruth(
        action=st.labels["action"], action_phase=float(st.labels["action_phase"]),
        upper_action=st.labels.get("upper_action"),
        expression=st.labels.get("expression", "neutral"), expression_intensity=float(st.labels.get("expression_intensity", 0.0)),
        facial_actions=np.asarray(st.facial, dtype=np.float64),
        gestures={"left": st.labels.get("gesture_left"), "right": st.labels.get("gesture_right")},
        talking=bool(st.labels.get("talking", False)), viseme=st.labels.get("viseme"),
        skeleton=image(skel, SKELETON_TOLERANCE), skeleton_3d=skel,
        hand_keypoints=np.stack([image(p, HAND_TOLERANCE) for p in hands]), hand_keypoints_3d=hands,
        face68=image(f68, FACE_TOLERANCE), face68_3d=f68,
        root_velocity=np.asarray(st.velocity, dtype=np.float64), gaze=gaze / max(np.linalg.norm(gaze), 1e-12),
    )
