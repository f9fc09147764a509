"""Small geometry helpers shared by every layer.

Conventions (used everywhere in hcgym):

* World frame: metres, right-handed, **z up**. A heading/yaw of 0 degrees looks
  along +x, positive yaw turns counter-clockwise (towards +y).
* Camera frame: OpenCV, x right, y down, z forward (optical axis).
  Pitch is positive when the camera looks up.
* Pixel coordinates are continuous: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``,
  so its centre is ``(i + 0.5, j + 0.5)`` and ``floor(u)`` is its column index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def rot_z(deg: float) -> np.ndarray:
    """3x3 rotation about +z by ``deg`` degrees."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation vector (radians, axis * angle) to a 3x3 matrix."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    theta = float(np.linalg.norm(rotvec))
    if theta < 1e-12:
        return np.eye(3)
    k = rotvec / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * kx @ kx


def matrix_to_axis_angle(r: np.ndarray) -> tuple[np.ndarray, float]:
    """3x3 rotation matrix to (unit axis, angle in radians)."""
    angle = math.acos(max(-1.0, min(1.0, (np.trace(r) - 1.0) / 2.0)))
    if angle < 1e-9:
        return np.array([0.0, 0.0, 1.0]), 0.0
    if abs(angle - math.pi) < 1e-6:
        # Axis from the largest diagonal entry of (R + I) / 2.
        m = (r + np.eye(3)) / 2.0
        i = int(np.argmax(np.diag(m)))
        axis = m[:, i] / math.sqrt(m[i, i])
        return axis / np.linalg.norm(axis), angle
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return axis / np.linalg.norm(axis), angle


def camera_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Camera-to-world rotation; its columns are the camera x (right), y (down), z (forward) axes."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.cos(p) * math.cos(y), math.cos(p) * math.sin(y), math.sin(p)])
    right = np.array([math.sin(y), -math.cos(y), 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def look_at_angles(eye: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees of a camera at ``eye`` looking at ``target``."""
    d = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    yaw = math.degrees(math.atan2(d[1], d[0]))
    pitch = math.degrees(math.atan2(d[2], math.hypot(d[0], d[1])))
    return yaw, pitch


def world_to_camera(position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """4x4 world-to-camera transform from a camera position and camera-to-world rotation."""
    t = np.eye(4)
    t[:3, :3] = rotation.T
    t[:3, 3] = -rotation.T @ np.asarray(position, dtype=np.float64)
    return t


def project(points_world: np.ndarray, world_to_cam: np.ndarray, k: np.ndarray,
            lens: "RadialDistortion | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, 3) world points. Returns (N, 2) pixel coordinates and (N,) camera z (metres).

    Points behind the camera get ``nan`` pixel coordinates; with a ``lens``, so do points outside
    its field of view (see :meth:`RadialDistortion.distort`).
    """
    pts = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    cam = pts @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = cam[:, :2] / z[:, None]
        if lens is not None and not lens.is_identity:
            xy = lens.distort(xy)
        uv = xy @ k[:2, :2].T + k[:2, 2]
    uv[z <= 1e-6] = np.nan
    return uv, z


@dataclass(frozen=True)
class RadialDistortion:
    """Brown's radial lens distortion on normalised image coordinates ``(x, y) = ((u - cx) / fx,
    (v - cy) / fy)``: a pinhole point at radius ``r`` is imaged at ``r * (1 + k1 r^2 + k2 r^4)``
    (OpenCV's ``k1``, ``k2``). ``k1 < 0`` is barrel distortion (wide-angle and fisheye lenses: the
    edges are squeezed), ``k1 > 0`` pincushion.

    Where the polynomial stops growing (its derivative reaches zero at :attr:`max_radius`, e.g. at
    ``r = 1 / sqrt(-3 k1)`` for ``k2 = 0``), the model folds back on itself; rays beyond that radius
    are outside the lens' field of view.
    """

    k1: float = 0.0
    k2: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.k1 == 0.0 and self.k2 == 0.0

    @property
    def max_radius(self) -> float:
        """Smallest pinhole radius where ``d r_distorted / d r`` is zero (``inf`` if it never is)."""
        # 1 + 3 k1 s + 5 k2 s^2 = 0 with s = r^2 > 0.
        a, b = 5.0 * self.k2, 3.0 * self.k1
        if a == 0.0:
            roots = [-1.0 / b] if b != 0.0 else []
        else:
            disc = b * b - 4.0 * a
            roots = [] if disc < 0 else [(-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)]
        positive = [s for s in roots if s > 0]
        return math.sqrt(min(positive)) if positive else math.inf

    def radius(self, r: np.ndarray) -> np.ndarray:
        """Distorted radius of pinhole radius ``r`` (no field-of-view check)."""
        r2 = np.square(r)
        return r * (1.0 + self.k1 * r2 + self.k2 * r2 * r2)

    def distort(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) normalised pinhole points -> distorted points; ``nan`` beyond :attr:`max_radius`."""
        xy = np.asarray(xy, dtype=np.float64)
        r2 = np.sum(np.square(xy), axis=-1, keepdims=True)
        out = xy * (1.0 + self.k1 * r2 + self.k2 * r2 * r2)
        out[np.broadcast_to(r2 >= self.max_radius ** 2, out.shape)] = np.nan
        return out

    def undistort_radius(self, rd: np.ndarray, iterations: int = 40) -> np.ndarray:
        """Pinhole radius imaged at distorted radius ``rd`` (``nan`` where none is, beyond the fold).

        Newton's method kept inside a shrinking bracket ``[0, max_radius]`` (bisection where a step
        would leave it); exact to about 1e-10.
        """
        rd = np.asarray(rd, dtype=np.float64)
        top = self.max_radius
        hi = np.full(rd.shape, top if math.isfinite(top) else 1.0)
        if not math.isfinite(top):  # grow the bracket until it holds the root
            short = self.radius(hi) < np.where(np.isfinite(rd), rd, 0.0)
            while np.any(short):
                hi = np.where(short, hi * 2.0, hi)
                short = self.radius(hi) < np.where(np.isfinite(rd), rd, 0.0)
        lo = np.zeros(rd.shape)
        r = np.clip(rd, lo, hi)
        for _ in range(iterations):
            f = self.radius(r) - rd
            lo = np.where(f < 0, r, lo)
            hi = np.where(f > 0, r, hi)
            r2 = r * r
            slope = 1.0 + 3.0 * self.k1 * r2 + 5.0 * self.k2 * r2 * r2
            with np.errstate(divide="ignore", invalid="ignore"):
                step = r - f / slope
            r = np.where((step > lo) & (step < hi), step, (lo + hi) / 2)
        reachable = rd <= self.radius(np.asarray(top)) if math.isfinite(top) else np.ones(rd.shape, bool)
        return np.where(reachable, r, np.nan)

    def undistort(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) distorted normalised points -> pinhole points (``nan`` outside the field of view)."""
        xy = np.asarray(xy, dtype=np.float64)
        rd = np.hypot(xy[..., 0], xy[..., 1])
        r = self.undistort_radius(rd)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(rd > 0, r / rd, 1.0)
        return xy * scale[..., None]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes given as [x_min, y_min, x_max, y_max]."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """``(N, N)`` IoU, ``inter / (area_i + area_j - inter)``; 0 where the union is 0 (two empty boxes).

    In-place steps keep the number of ``N x N`` temporaries small (at N = 400 each is 1.3 MB, and
    fresh large allocations cost page faults that dominate the run time).
    """
    x0, y0, x1, y1 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
    area = (x1 - x0) * (y1 - y0)
    iw = np.minimum(x1[:, None], x1[None, :])
    iw -= np.maximum(x0[:, None], x0[None, :])
    np.maximum(iw, 0.0, out=iw)
    ih = np.minimum(y1[:, None], y1[None, :])
    ih -= np.maximum(y0[:, None], y0[None, :])
    np.maximum(ih, 0.0, out=ih)
    inter = iw
    inter *= ih
    union = np.add(area[:, None], area[None, :], out=ih)
    union -= inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out
