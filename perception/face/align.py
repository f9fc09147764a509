"""Five-point face alignment to the ArcFace 112x112 template (written once, shared by recognizers).

Five points are given in **image order**: image-left eye, image-right eye, nose
tip, image-left mouth corner, image-right mouth corner (for a frontal face the
image-left eye is the person's right eye).
"""

from __future__ import annotations

import numpy as np

#: InsightFace/ArcFace reference points for a 112x112 crop, image order.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst`` (Umeyama)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    r = u @ sign @ vt
    var = (s ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ sign) / var) if var > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = mu_d - scale * r @ mu_s
    return m


def align_face(image: np.ndarray, five: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp the face with landmarks ``five`` (5, 2) to a ``size`` x ``size`` RGB chip (ArcFace template)."""
    import cv2

    dst = ARCFACE_TEMPLATE * (size / 112.0)
    m = similarity_transform(five, dst)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def five_from_dlib68(points: np.ndarray) -> np.ndarray:
    """Image-order five points from dlib's 68 landmarks (eye centres, nose tip, mouth corners)."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def five_from_mediapipe478(points: np.ndarray) -> np.ndarray:
    """Image-order five points from MediaPipe face mesh (iris centres 468/473, nose tip 1, mouth 61/291)."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    eyes = [p[468], p[473]] if len(p) > 473 else [p[33:134].mean(0), p[263:362].mean(0)]
    five = np.stack([*eyes, p[1], p[61], p[291]])
    if five[0, 0] > five[1, 0]:  # keep image order
        five[[0, 1]] = five[[1, 0]]
    if five[3, 0] > five[4, 0]:
        five[[3, 4]] = five[[4, 3]]
    return five
