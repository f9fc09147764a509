"""The face mesh of view synthesis: the MediaPipe face-mesh topology (``face_mesh_topology.json``), mesh
points from landmarks, and z-buffer rasterisation of a triangle mesh (orthographic, image axes).
See :mod:`hcgym.synthesis.views` for the method.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_TOPOLOGY_FILE = Path(__file__).with_name("face_mesh_topology.json")


@dataclass(frozen=True)
class MeshTopology:
    """The MediaPipe face mesh as a triangle mesh (see ``face_mesh_topology.json`` for its derivation).

    Points are the 478 MediaPipe landmarks (468 mesh + 10 iris) and a 479th, the mouth centre (the mean of
    the inner lip loop ``mouth``).

    Attributes:
        triangles: (852 + 52, 3) point indices: the 468-point surface, then the caps closing the eyes (fans
            around the iris centres 468 and 473) and the mouth (a fan around point 478). Oriented so that a face
            seen from the front has positive signed area ``cross(p1 - p0, p2 - p0)`` in image coordinates
            (x right, y down).
        mirror: (479,) index of each point's left/right counterpart (an involution).
        oval: (36,) the face outline, in order.
        mouth: (20,) the inner lip loop.
        reference: (478, 3) a frontal mesh (with the iris points): origin at the eye midpoint, inter-ocular
            distance 1, x right, y down, z away from the camera.
        detector_keypoints: (6, 3) where MediaPipe face detection's keypoints (right eye, left eye, nose tip,
            mouth centre, right ear, left ear) lie in the reference frame (calibrated on renders).
    """

    triangles: np.ndarray
    mirror: np.ndarray
    oval: np.ndarray
    mouth: np.ndarray
    reference: np.ndarray
    detector_keypoints: np.ndarray


@functools.lru_cache(maxsize=1)
def topology() -> MeshTopology:
    """The shipped face-mesh topology (loaded once)."""
    data = json.loads(_TOPOLOGY_FILE.read_text())
    arr = {k: np.asarray(data[k], dtype=np.int64) for k in ("triangles", "caps", "mirror", "oval", "mouth")}
    return MeshTopology(np.concatenate([arr["triangles"], arr["caps"]]), arr["mirror"], arr["oval"], arr["mouth"],
                        np.asarray(data["reference"], dtype=np.float64),
                        np.asarray(data["detector_keypoints"], dtype=np.float64))


def mesh_points(landmarks: np.ndarray) -> np.ndarray:
    """(479, 3) mesh points from MediaPipe landmarks (478, 3) (or 468 without iris: eye centres estimated)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape[0] < 468 or lm.shape[1] != 3:
        from hcgym.errors import SpecError

        raise SpecError("landmarks", f"expected MediaPipe face mesh points (478, 3) or (468, 3), got {lm.shape}")
    topo = topology()
    pts = np.zeros((479, 3))
    pts[:468] = lm[:468]
    if lm.shape[0] >= 478:
        pts[468:478] = lm[468:478]
    else:
        for centre in (468, 473):  # the fan centre of each eye cap: the mean of its rim
            rim = np.unique(topo.triangles[topo.triangles[:, 2] == centre][:, :2])
            pts[centre:centre + 5] = lm[rim].mean(0)
    pts[478] = lm[topo.mouth].mean(0)
    return pts


def rasterize(vertices: np.ndarray, triangles: np.ndarray, shape: tuple[int, int],
              cull_back: bool | np.ndarray = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer rasterisation of a triangle mesh projected orthographically onto the image plane.

    Args:
        vertices: (N, 3) x, y in pixels (continuous: pixel (i, j) has its centre at (i + 0.5, j + 0.5)),
            z depth (smaller = nearer).
        triangles: (F, 3) vertex indices.
        shape: (height, width) of the image.
        cull_back: skip triangles with negative signed area (seen from behind); a (F,) bool array says it per
            triangle.

    Returns:
        triangle index per pixel (H, W) int64 (-1: nothing), barycentric coordinates (H, W, 3) and depth (H, W)
        (``inf`` where nothing is drawn).
    """
    h, w = shape
    v = np.asarray(vertices, dtype=np.float64)
    tri = np.asarray(triangles, dtype=np.int64)
    p0, p1, p2 = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
    area = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    cull = np.broadcast_to(np.asarray(cull_back, dtype=bool), area.shape)
    keep = np.where(cull, area > 1e-9, np.abs(area) > 1e-9)
    idx = np.nonzero(keep)[0]
    xs = np.stack([p0[idx, 0], p1[idx, 0], p2[idx, 0]], 1)
    ys = np.stack([p0[idx, 1], p1[idx, 1], p2[idx, 1]], 1)
    # Pixel centres inside each triangle's bounding box.
    x0 = np.clip(np.ceil(xs.min(1) - 0.5), 0, w).astype(np.int64)
    x1 = np.clip(np.floor(xs.max(1) - 0.5), -1, w - 1).astype(np.int64)
    y0 = np.clip(np.ceil(ys.min(1) - 0.5), 0, h).astype(np.int64)
    y1 = np.clip(np.floor(ys.max(1) - 0.5), -1, h - 1).astype(np.int64)
    bw, bh = np.maximum(x1 - x0 + 1, 0), np.maximum(y1 - y0 + 1, 0)
    n = bw * bh
    tri_id = np.full((h, w), -1, dtype=np.int64)
    bary = np.zeros((h, w, 3))
    depth = np.full((h, w), np.inf)
    if not n.sum():
        return tri_id, bary, depth
    owner = np.repeat(np.arange(len(idx)), n)
    local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    px = x0[owner] + local % bw[owner]
    py = y0[owner] + local // bw[owner]
    cx, cy = px + 0.5, py + 0.5
    f = idx[owner]
    a = area[f]
    # Barycentric coordinates of the pixel centre.
    l1 = ((cx - p0[f, 0]) * (p2[f, 1] - p0[f, 1]) - (cy - p0[f, 1]) * (p2[f, 0] - p0[f, 0])) / a
    l2 = ((p1[f, 0] - p0[f, 0]) * (cy - p0[f, 1]) - (p1[f, 1] - p0[f, 1]) * (cx - p0[f, 0])) / a
    l0 = 1.0 - l1 - l2
    eps = -1e-9
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    px, py, f, l0, l1, l2 = px[inside], py[inside], f[inside], l0[inside], l1[inside], l2[inside]
    z = l0 * p0[f, 2] + l1 * p1[f, 2] + l2 * p2[f, 2]
    # Z-buffer: per pixel, keep the nearest fragment (ties: the lowest triangle index, deterministic).
    flat = py * w + px
    order = np.lexsort((f, z, flat))
    flat, first = flat[order], np.ones(len(order), dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    sel = order[first]
    fy, fx = py[sel], px[sel]
    tri_id[fy, fx] = f[sel]
    bary[fy, fx] = np.stack([l0[sel], l1[sel], l2[sel]], 1)
    depth[fy, fx] = z[sel]
    return tri_id, bary, depth
