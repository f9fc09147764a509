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
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Provenance codes of :attr:`SynthesizedView.source`.
KEPT, RENDERED, MIRRORED, INPAINTED = 0, 1, 2, 3
#: Depth of the head's rotation centre behind the eye midpoint, in inter-ocular distances (about 8 cm for
#: a 6.6 cm inter-ocular distance: the centre of the env's camera sphere).
HEAD_CENTRE_DEPTH = 1.2
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


__all__ = ["SynthesizedView", "ViewSynthesizer", "synthesize_view", "rasterize", "rotate_points", "view_rotation",
           "head_centre", "face_yaw", "face_landmarks", "fit_reference_mesh", "mesh_points", "topology", "MeshTopology"]
