"""Fit and pose the 3D face of view synthesis: MediaPipe landmarks (with the crop and reference-mesh
fallbacks for turned faces), similarity fits of the reference mesh (yaw, head centre) and the camera
move's rotation. See :mod:`hcgym.synthesis.views` for the method.
"""

from __future__ import annotations

import math

import numpy as np

from hcgym.synthesis.views_mesh import topology

#: Depth of the head's rotation centre behind the eye midpoint, in inter-ocular distances (about 8 cm for
#: a 6.6 cm inter-ocular distance: the centre of the env's camera sphere).
HEAD_CENTRE_DEPTH = 1.2


# ------------------------------------------------------------------ geometry
def view_rotation(pan: float, tilt: float) -> np.ndarray:
    """3x3 rotation taking points (relative to the orbit centre) from the old camera's axes to the new one's.

    Axes are the image's: x right, y down, z away from the camera. The camera first orbits ``pan`` degrees
    about the vertical axis (positive: towards image-right, i.e. the person's left for a frontal face), then
    rises ``tilt`` degrees (positive: looks down on the face).
    """
    p, t = math.radians(pan), math.radians(tilt)
    rp = np.array([[math.cos(p), 0.0, math.sin(p)], [0.0, 1.0, 0.0], [-math.sin(p), 0.0, math.cos(p)]])
    rt = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(t), -math.sin(t)], [0.0, math.sin(t), math.cos(t)]])
    return rt @ rp


def rotate_points(points: np.ndarray, pan: float, tilt: float, centre: np.ndarray) -> np.ndarray:
    """(N, 3) points seen from a camera that orbited ``centre`` by (pan, tilt) degrees (orthographic view)."""
    c = np.asarray(centre, dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) - c) @ view_rotation(pan, tilt).T + c


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares 3D similarity ``dst ~ s R src + t`` (Umeyama): (s, R (3, 3), t (3,))."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2, 2] = -1
    r = u @ d @ vt
    s = float(np.trace(np.diag(sig) @ d) / max((a ** 2).sum() / len(src), 1e-12))
    return s, r, mu_d - s * r @ mu_s


def _reference_fit(points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) taking the reference mesh onto 468+ mesh points."""
    return similarity_fit(topology().reference[:468], np.asarray(points, dtype=np.float64)[:468])


def _yaw_of(r: np.ndarray) -> float:
    return math.degrees(math.atan2(r[0, 2], r[2, 2]))


def face_yaw(points: np.ndarray) -> float:
    """The face's yaw (degrees, 0 = frontal) from 468+ mesh points: the rotation of a similarity fit of the
    reference mesh, about the image's vertical axis. Profiles saturate at about 50-60 degrees (MediaPipe's
    meshes flatten there), but the sign and the order of nearby yaws are reliable."""
    return _yaw_of(_reference_fit(points)[1])


def _centre_of(s: float, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    return s * r @ np.array([0.0, 0.0, HEAD_CENTRE_DEPTH]) + t


def head_centre(points: np.ndarray) -> np.ndarray:
    """The head's rotation centre for 468 mesh points (pixels): the reference centre mapped by a similarity."""
    return _centre_of(*_reference_fit(points))


# ------------------------------------------------------------------ landmarks
def face_landmarks(image: np.ndarray, fallback: bool = True) -> np.ndarray | None:
    """(478, 3) face mesh of the face nearest the image centre, or ``None`` if no face is found.

    MediaPipe face mesh first. Its own face detector gives up beyond about 60 degrees of yaw; then (with
    ``fallback``) MediaPipe full-range face detection finds the face, the face mesh runs again on a crop
    around it, and if that fails too, the reference mesh is posed on the detection's six keypoints
    (:func:`fit_reference_mesh`): a generic face shape, textured from the image like a fitted one.
    """
    from hcgym.perception.face import mediapipe_models

    h, w = image.shape[:2]
    centre = np.array([w / 2, h / 2])
    pts = mediapipe_models.face_mesh_points(image, max_faces=4, refine=True)
    if len(pts):
        return pts[int(np.argmin(np.linalg.norm(pts[:, :, :2].mean(1) - centre, axis=1)))]
    if not fallback:
        return None
    boxes, _, kps = mediapipe_models.detect_with_keypoints(image, "full")
    if not len(boxes):
        return None
    k = int(np.argmin(np.linalg.norm((boxes[:, :2] + boxes[:, 2:]) / 2 - centre, axis=1)))
    mesh = _mesh_on_crop(image, boxes[k])
    return mesh if mesh is not None else fit_reference_mesh(kps[k])


def _mesh_on_crop(image: np.ndarray, box: np.ndarray, scale: float = 1.5, size: int = 192) -> np.ndarray | None:
    """Face mesh on a square crop around a detection box (its detector then finds more turned faces)."""
    import cv2

    from hcgym.perception.face import mediapipe_models

    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * scale
    if side < 8:
        return None
    f = size / side
    m = np.array([[f, 0.0, size / 2 - f * cx], [0.0, f, size / 2 - f * cy]])
    crop = cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    pts = mediapipe_models.face_mesh_points(crop, max_faces=1, refine=True, min_confidence=CROP_MIN_CONFIDENCE)
    if not len(pts):
        return None
    out = pts[0].copy()
    out[:, 0] = (out[:, 0] - m[0, 2]) / f
    out[:, 1] = (out[:, 1] - m[1, 2]) / f
    out[:, 2] = out[:, 2] / f
    return out


#: Detection confidence of the face mesh on a crop (the crop is known to hold a face).
CROP_MIN_CONFIDENCE = 0.2


#: Weights of the six detector keypoints in :func:`fit_reference_mesh` (the ear points are the least precise).
KEYPOINT_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0, 0.5, 0.5])


def euler_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation (image axes) of a head turned ``yaw`` about the vertical, then ``pitch``, then ``roll`` (degrees)."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0.0, math.sin(y)], [0.0, 1.0, 0.0], [-math.sin(y), 0.0, math.cos(y)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(p), -math.sin(p)], [0.0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0.0], [math.sin(r), math.cos(r), 0.0], [0.0, 0.0, 1.0]])
    return ry @ rx @ rz


def fit_reference_mesh(keypoints: np.ndarray) -> np.ndarray:
    """(478, 3) reference mesh posed (scaled orthographic projection) on MediaPipe detection's 6 keypoints (6, 2).

    Least squares over yaw, pitch, roll, scale and image translation, started from five yaws (-80..80);
    the best fit wins.
    """
    from scipy.optimize import least_squares

    topo = topology()
    x3 = topo.detector_keypoints
    kp = np.asarray(keypoints, dtype=np.float64)[:, :2]
    wts = KEYPOINT_WEIGHTS[:, None]

    def residual(q: np.ndarray) -> np.ndarray:
        proj = q[3] * (x3 @ euler_rotation(*q[:3]).T)[:, :2] + q[4:6]
        return ((proj - kp) * wts).ravel()

    s0 = max(float(np.linalg.norm(kp[0] - kp[1])), 1.0)
    best = None
    for yaw in (-80.0, -40.0, 0.0, 40.0, 80.0):
        fit = least_squares(residual, np.array([yaw, 0.0, 0.0, s0, *kp[2]]))
        if best is None or fit.cost < best.cost:
            best = fit
    q = best.x
    pts = q[3] * (topo.reference @ euler_rotation(*q[:3]).T)
    pts[:, :2] += q[4:6]
    return pts
