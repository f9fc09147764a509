"""Facial view synthesis from one image (OpenDR D3.2 section 2.4): imagine the view after a pan/tilt move.

The method, in the spirit of Rotate-and-Render (the seed's [179]) without its
neural parts, CPU only:

1. **Fit a 3D face.** MediaPipe face mesh gives 478 landmarks (x, y in pixels,
   z in the same scale, smaller = nearer). With their fixed topology
   (:func:`topology`: 852 surface triangles plus caps over the eyes and mouth)
   they form a dense triangle mesh whose texture is the image itself (each
   vertex's texture coordinate is its pixel position). Beyond about 60 degrees
   of yaw MediaPipe's own detector fails; :func:`face_landmarks` then retries on
   a crop around the full-range detection, and finally poses a reference mesh on
   that detection's six keypoints (:func:`fit_reference_mesh`).
2. **Rotate** the mesh about the head's centre by the camera move: the camera
   orbits the head by ``pan`` degrees (positive: towards the person's left, so
   the face turns towards image-left) and ``tilt`` degrees (positive: the
   camera rises and looks down). The centre is a fixed point of a reference
   head (:data:`HEAD_CENTRE_DEPTH` inter-ocular distances behind the eyes)
   placed on the landmarks by a similarity (Procrustes) fit.
3. **Re-render** the rotated mesh with a z-buffer (:func:`rasterize`): every
   covered pixel gets its triangle and barycentric coordinates, hence its
   3D point on the source mesh.
4. **Texture and fill.** A pixel whose source point was visible in the source
   (triangle facing the camera within :data:`MIN_COS`, not behind the source
   z-buffer, not just behind an occluding silhouette) samples the source image
   there. Otherwise it takes the mirror point (the left/right counterpart on
   the face, ``topology().mirror``) when that one was visible (mirror
   symmetry). What remains, and the part of the old face that the new face no
   longer covers, is inpainted (``cv2.inpaint``, Telea).

The output has the size of the input, with a mask of the synthesised pixels
(mirrored or inpainted: nothing of the source shows there) and a per-pixel
provenance map. Outside the face and the old face region, pixels are the
source's (background and hair do not move; the face recogniser only looks at
the face).

Top layer of :mod:`hcgym.synthesis` (uses a perception sensor, MediaPipe); it
imports no env and no agent.

The mesh (topology, rasterisation) is in :mod:`~hcgym.synthesis.views_mesh`, the face fit and pose
(landmarks, reference mesh, yaw, head centre, rotation) in :mod:`~hcgym.synthesis.views_fit`; this
module synthesises the view and re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcgym.synthesis.views_fit import (
    CROP_MIN_CONFIDENCE,
    HEAD_CENTRE_DEPTH,
    KEYPOINT_WEIGHTS,
    _centre_of,
    _reference_fit,
    _yaw_of,
    euler_rotation,
    face_landmarks,
    face_yaw,
    fit_reference_mesh,
    head_centre,
    rotate_points,
    similarity_fit,
    view_rotation,
)
from hcgym.synthesis.views_mesh import MeshTopology, mesh_points, rasterize, topology

#: Provenance codes of :attr:`SynthesizedView.source`.
KEPT, RENDERED, MIRRORED, INPAINTED = 0, 1, 2, 3
#: Source triangles seen more obliquely than this cosine are treated as unseen (about 72 degrees).
MIN_COS = 0.3
#: The mirror point is used instead of a visible point when it was seen this much more frontally (cosine);
#: ``inf`` (the default): only points unseen in the source take their mirror point's texture.
MIRROR_PREFERENCE = float("inf")
#: Width (inter-ocular distances) of the band around the source face that is inpainted where the new face
#: does not cover it.
STALE_BAND = 0.12
#: Radius (inter-ocular distances) of the band behind occluding silhouettes whose texture is not trusted.
SILHOUETTE_BAND = 0.15


@dataclass
class SynthesizedView:
    """A synthesised view.

    Attributes:
        image: (H, W, 3) uint8 RGB, the size of the source.
        mask: (H, W) bool, pixels synthesised without a direct source pixel (mirrored or inpainted).
        source: (H, W) uint8 provenance: 0 kept from the source, 1 re-rendered from visible source texture,
            2 mirrored, 3 inpainted.
        face: (H, W) bool, pixels covered by the rotated face mesh.
        landmarks: (479, 3) the rotated mesh points (:func:`mesh_points`) in the new view (pixels; z relative).
        pan, tilt: the camera move in degrees.
        source_yaw, yaw: the face's estimated yaw (:func:`face_yaw`, degrees) in the source and in the new view.
    """

    image: np.ndarray
    mask: np.ndarray
    source: np.ndarray
    face: np.ndarray
    landmarks: np.ndarray
    pan: float
    tilt: float
    source_yaw: float = float("nan")
    yaw: float = float("nan")

    @property
    def turns_toward_camera(self) -> bool:
        """Whether the move turns the face toward the camera (smaller estimated ``|yaw|`` than the source's)."""
        return abs(self.yaw) < abs(self.source_yaw)


def _bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample (H, W, C) ``image`` at continuous pixel coordinates ``xy`` (N, 2) (edge-clamped)."""
    h, w = image.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, w - 1)
    y = np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    img = image.astype(np.float64)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _cosines(corners: np.ndarray) -> np.ndarray:
    """(F,) cosine between the normal of triangles (F, 3, 3) and the view axis (negative: seen from behind)."""
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    n = np.cross(e1, e2)  # n_z = the signed projected (doubled) area
    return n[:, 2] / np.maximum(np.linalg.norm(n, axis=1), 1e-12)


def _visible(points: np.ndarray, front: np.ndarray, zbuf: np.ndarray, near: np.ndarray, tolerance: float,
             margin: float) -> np.ndarray:
    """Whether source-mesh points (N, 3) on front-facing triangles (``front`` (N,) bool) are unoccluded.

    ``near`` is the z-buffer min-filtered over a small disc: a point with a much nearer surface close by
    (within ``margin`` in depth) lies next to an occluding silhouette, where the fitted mesh and the image
    disagree by a few pixels, so its texture is not trusted either.
    """
    h, w = zbuf.shape
    ix = np.clip(np.floor(points[:, 0]).astype(np.int64), 0, w - 1)
    iy = np.clip(np.floor(points[:, 1]).astype(np.int64), 0, h - 1)
    inside = (points[:, 0] >= 0) & (points[:, 0] < w) & (points[:, 1] >= 0) & (points[:, 1] < h)
    z = points[:, 2]
    return front & inside & (z <= zbuf[iy, ix] + tolerance) & (z <= near[iy, ix] + margin)


# ------------------------------------------------------------------ synthesis
def synthesize_view(image: np.ndarray, pan: float = 0.0, tilt: float = 0.0, landmarks: np.ndarray | None = None,
                    inpaint_radius: float = 3.0, mirror: bool = True, min_cos: float = MIN_COS) -> SynthesizedView | None:
    """The view of ``image``'s face after the camera orbits the head by (pan, tilt) degrees.

    Args:
        image: (H, W, 3) uint8 RGB.
        pan, tilt: camera move in degrees (see :func:`view_rotation`).
        landmarks: (478, 3) MediaPipe face mesh of ``image`` (default: found with :func:`face_landmarks`).
        inpaint_radius: radius of ``cv2.inpaint`` (Telea) for the holes.
        mirror: fill points unseen in the source from their mirror points (else inpaint them).
        min_cos: a source triangle seen more obliquely than this (cosine between its normal and the view axis)
            counts as unseen: its texture is stretched and bleeds across the silhouette.

    Returns:
        a :class:`SynthesizedView`, or ``None`` when no face mesh is found.
    """
    import cv2

    img = np.ascontiguousarray(image)
    if landmarks is None:
        landmarks = face_landmarks(img)
        if landmarks is None:
            return None
    topo = topology()
    src = mesh_points(landmarks)
    h, w = img.shape[:2]
    tris = topo.triangles
    s_fit, r_fit, t_fit = _reference_fit(src)  # one fit gives the rotation centre and both yaws
    dst = rotate_points(src, pan, tilt, _centre_of(s_fit, r_fit, t_fit))
    tri_id, bary, _ = rasterize(dst, tris, (h, w))
    src_tri, _, src_z = rasterize(src, tris, (h, w))
    cos_self = _cosines(src[tris])
    cos_mirror = _cosines(src[topo.mirror[tris]][:, ::-1])  # a mirrored triangle has the opposite winding
    scale = float(np.linalg.norm(src[33] - src[263])) or 1.0
    tol = 0.04 * scale  # depth tolerance of the visibility test, about 3 mm
    r = max(1, int(round(SILHOUETTE_BAND * scale)))
    finite = np.where(np.isfinite(src_z), src_z, 1e9).astype(np.float32)
    near = cv2.erode(finite, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))).astype(np.float64)
    margin = 0.3 * scale
    face = tri_id >= 0
    ys, xs = np.nonzero(face)
    f = tri_id[ys, xs]
    b = bary[ys, xs]
    pts = np.einsum("nk,nkd->nd", b, src[tris[f]])
    vis = _visible(pts, cos_self[f] > min_cos, src_z, near, tol, margin)
    use_mirror = np.zeros_like(vis)
    mpts = pts
    if mirror:
        mpts = np.einsum("nk,nkd->nd", b, src[topo.mirror[tris[f]]])
        mvis = _visible(mpts, cos_mirror[f] > min_cos, src_z, near, tol, margin)
        # Mirror symmetry: take the counterpart when the point itself was unseen, or seen much worse.
        use_mirror = mvis & (~vis | (cos_mirror[f] > cos_self[f] + MIRROR_PREFERENCE))
    own = vis & ~use_mirror
    out = img.astype(np.float64).copy()
    prov = np.zeros((h, w), dtype=np.uint8)
    out[ys[own], xs[own]] = _bilinear(img, pts[own])
    prov[ys[own], xs[own]] = RENDERED
    out[ys[use_mirror], xs[use_mirror]] = _bilinear(img, mpts[use_mirror])
    prov[ys[use_mirror], xs[use_mirror]] = MIRRORED
    holes = face & (prov == KEPT)
    # Where the new face does not cover the old one, a stale face would show: inpaint it, with a band around
    # it (the fitted mesh is a little smaller than the face in the image).
    rb = max(1, int(round(STALE_BAND * scale)))
    old = cv2.dilate((src_tri >= 0).astype(np.uint8),
                     cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rb + 1, 2 * rb + 1))) > 0
    holes |= old & ~face
    out8 = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if holes.any():
        out8 = cv2.inpaint(out8, holes.astype(np.uint8), inpaint_radius, cv2.INPAINT_TELEA)
        prov[holes] = INPAINTED
    mask = (prov == MIRRORED) | (prov == INPAINTED)
    # dst is src rotated about the centre, so its reference fit is the source's, rotated: R_dst = V R.
    return SynthesizedView(out8, mask, prov, face, dst, float(pan), float(tilt), _yaw_of(r_fit),
                           _yaw_of(view_rotation(pan, tilt) @ r_fit))


class ViewSynthesizer:
    """Synthesise views with one face-mesh fit per image (what the agent does per real image).

    ``views(image, [(pan, tilt), ...])`` returns a list of :class:`SynthesizedView` (``None`` entries when no
    face mesh is found); ``last_ms`` holds the milliseconds per view of the last call (mesh fit shared).
    The fit of the last image is kept, so one view at a time (``synth(image, pan, tilt)``) costs one fit too.
    """

    def __init__(self, inpaint_radius: float = 3.0, mirror: bool = True) -> None:
        self.inpaint_radius, self.mirror = float(inpaint_radius), bool(mirror)
        self.last_ms = float("nan")
        self._fit_key: bytes | None = None
        self._fit: np.ndarray | None = None

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """:func:`face_landmarks` of ``image``, reused while the same image comes again."""
        import hashlib

        img = np.ascontiguousarray(image)
        key = hashlib.blake2b(repr(img.shape).encode() + img.tobytes(), digest_size=16).digest()
        if key != self._fit_key:
            self._fit_key, self._fit = key, face_landmarks(img)
        return self._fit

    def views(self, image: np.ndarray, offsets) -> list[SynthesizedView | None]:
        import time

        t0 = time.perf_counter()
        offsets = list(offsets)
        lm = self.landmarks(image)
        out = [None if lm is None else synthesize_view(image, p, t, lm, self.inpaint_radius, self.mirror)
               for p, t in offsets]
        self.last_ms = 1000.0 * (time.perf_counter() - t0) / max(len(offsets), 1)
        return out

    def __call__(self, image: np.ndarray, pan: float = 0.0, tilt: float = 0.0) -> SynthesizedView | None:
        return self.views(image, [(pan, tilt)])[0]


__all__ = [
    "SynthesizedView", "ViewSynthesizer", "synthesize_view", "rasterize", "rotate_points", "view_rotation",
    "head_centre", "face_yaw", "face_landmarks", "fit_reference_mesh", "mesh_points", "topology", "MeshTopology",
    "similarity_fit", "euler_rotation", "KEPT", "RENDERED", "MIRRORED", "INPAINTED", "HEAD_CENTRE_DEPTH", "MIN_COS",
    "MIRROR_PREFERENCE", "STALE_BAND", "SILHOUETTE_BAND", "CROP_MIN_CONFIDENCE", "KEYPOINT_WEIGHTS",
]
