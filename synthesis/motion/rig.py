"""Fast posing of one avatar: forward kinematics and linear blend skinning in numpy.

anny's full forward pass (phenotype blend shapes, rest skeleton, kinematics,
skinning) takes ~20 ms and needs the whole model in memory. Animation only
changes the pose and the 52 facial actions, so a :class:`Rig` keeps what one
identity's forward pass computes once (rest vertices, rest skeleton, facial
blend-shape deltas, skinning weights) and poses it in ~2 ms with numpy:

* facial actions are linear blend shapes on the rest vertices (they never move
  a bone), stored sparsely for the 3.5 k face vertices they touch;
* forward kinematics follows anny's ``local-ref`` parameterisation: each bone's
  delta is a rotation about its head in the world-aligned axes of the reference
  (A-)pose, composed down the chain (x = the avatar's left, y = backwards, z = up);
* skinning is anny's linear blend skinning with its sparse bone weights; normals
  are skinned with the blended rotations.

Rigs are built once per identity (phenotype and local changes) into
``$HCGYM_CACHE/rigs/<key>.npz`` and shared by every process; the identity-free
parts (topology, skinning weights, keypoint regressor) live in one ``template``
file beside them. Coordinates are the avatar frame of
:class:`~hcgym.synthesis.builder.Avatar`: metres, z up, facing -y, feet on z = 0
and the hip midpoint above the origin in the rest pose.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hcgym.paths import atomic_write_bytes, cache_dir
from hcgym.synthesis.labels import BONES, FACIAL_ACTIONS

RIG_VERSION = 1
_LOCK = threading.RLock()

#: Bone name -> index in :data:`~hcgym.synthesis.labels.BONES` (anny's bone order).
BONE_INDEX: dict[str, int] = {name: i for i, name in enumerate(BONES)}
#: Facial action name -> index in :data:`~hcgym.synthesis.labels.FACIAL_ACTIONS`.
FACIAL_INDEX: dict[str, int] = {name: i for i, name in enumerate(FACIAL_ACTIONS)}


@dataclass(frozen=True)
class RigTemplate:
    """What every rig shares: topology, skinning weights, keypoint regressor, skeleton structure."""

    faces: np.ndarray  #: (F, 3) int64 triangles over mesh vertices.
    split_vertex: np.ndarray  #: (S,) mesh vertex of each render vertex (see ``Avatar.mesh``).
    skin_index: np.ndarray  #: (V, K) bone indices per vertex.
    skin_weight: np.ndarray  #: (V, K) weights per vertex (rows sum to 1).
    parents: np.ndarray  #: (J,) parent bone index, -1 for the root.
    reference: np.ndarray  #: (J, 3, 3) reference (A-pose) bone orientations U.
    keypoint_weights: np.ndarray  #: (17, V) COCO keypoint regressor.
    levels: tuple[np.ndarray, ...]  #: bones by depth: each level's parents lie in the levels before.

    @functools.cached_property
    def skin_matrix(self):
        """(V, J) sparse skinning weight matrix."""
        import scipy.sparse as sp

        v, k = self.skin_index.shape
        return sp.csr_matrix((self.skin_weight.ravel(), (np.repeat(np.arange(v), k), self.skin_index.ravel())),
                             shape=(v, len(self.parents)))


@dataclass(frozen=True)
class Rig:
    """One identity's rest body, ready to pose. Build with :func:`rig_for`."""

    key: str
    template: RigTemplate
    rest_vertices: np.ndarray  #: (V, 3) float64 rest (A-pose, neutral face) vertices, avatar frame.
    rest_normals: np.ndarray  #: (V, 3) float32 unit normals of the rest vertices.
    rest_rotations: np.ndarray  #: (J, 3, 3) rest bone orientations R.
    rest_heads: np.ndarray  #: (J, 3) rest bone heads, avatar frame.
    facial_vertices: np.ndarray  #: (A,) the vertices any facial action moves.
    facial_basis: np.ndarray  #: (52, A, 3) float32 displacement of those vertices per unit facial action.

    @property
    def bone_names(self) -> tuple[str, ...]:
        return BONES

    @functools.cached_property
    def _skin_inputs(self) -> np.ndarray:
        """(V, 2, 3) float32 rest positions and rest normals."""
        return np.ascontiguousarray(np.stack([self.rest_vertices, self.rest_normals], 1), dtype=np.float32)

    @functools.cached_property
    def _skin32(self):
        return self.template.skin_matrix.astype(np.float32)

    @functools.cached_property
    def _facial_rows(self) -> np.ndarray:
        """(52, A * 3) float32 facial blend shapes, one row per facial action."""
        return np.ascontiguousarray(self.facial_basis.reshape(len(self.facial_basis), -1), dtype=np.float32)

    @functools.cached_property
    def _fk_constants(self) -> tuple[np.ndarray, np.ndarray]:
        u, r, h, parent = self.template.reference, self.rest_rotations, self.rest_heads, self.template.parents
        a = np.einsum("jab,jcb->jac", u, r)  # A_c = U_c R_c^T: rest -> reference orientation
        a[0] = np.eye(3)
        p = np.where(parent < 0, 0, parent)
        offsets = np.einsum("jab,jb->ja", a[p], h - h[p])
        offsets[0] = 0.0
        return np.transpose(u[p], (0, 2, 1)), offsets  # U_p^T and the reference head offsets q_c - q_p

    def bone_poses(self, rotations: np.ndarray, root: np.ndarray | None = None) -> np.ndarray:
        """(J, 4, 4) posed bone frames W (orientation + head) for (J, 3, 3) local-ref deltas.

        ``root`` (3,) translates the whole body (the root bone's delta translation), avatar frame.
        """
        u = self.template.reference
        upt, offsets = self._fk_constants
        m = rotations @ u  # M_c = D_c U_c
        k_rot = upt @ m
        k_t = np.einsum("jab,jb->ja", upt, offsets)
        w = np.zeros((len(u), 4, 4))
        w[:, 3, 3] = 1.0
        d0 = np.zeros(3) if root is None else np.asarray(root, dtype=np.float64)
        w[0, :3, :3] = u[0].T @ m[0]
        w[0, :3, 3] = self.rest_heads[0] + u[0].T @ d0  # identity deltas give the rest pose
        parent = self.template.parents
        for level in self.template.levels[1:]:
            wp = w[parent[level]]
            w[level, :3, :3] = wp[:, :3, :3] @ k_rot[level]
            w[level, :3, 3] = np.einsum("jab,jb->ja", wp[:, :3, :3], k_t[level]) + wp[:, :3, 3]
        return w

    def pose(self, rotations=None, facial=None, root=None) -> "PosedBody":
        """Pose the body.

        Args:
            rotations: local-ref bone deltas: (J, 3) rotation vectors in radians, (J, 3, 3) matrices, or a dict
                bone name -> rotation vector (radians) / 3x3 matrix; missing bones keep the rest pose.
            facial: (52,) facial action values in [0, 1] or a dict name -> value.
            root: (3,) translation of the whole body (avatar frame), e.g. the pelvis dropping in a squat.
        """
        rot = as_rotation_matrices(rotations)
        w = self.bone_poses(rot, root)
        # Skinning transforms T_c = W_c P_c^-1.
        t_rot = w[:, :3, :3] @ np.transpose(self.rest_rotations, (0, 2, 1))
        t = np.concatenate([t_rot, (w[:, :3, 3] - np.einsum("jab,jb->ja", t_rot, self.rest_heads))[:, :, None]], 2)
        coeffs = as_facial_vector(facial)
        x = self._skin_inputs
        if coeffs.any():  # facial blend shapes move the rest vertices of the face
            x = x.copy()
            x[self.facial_vertices, 0] += (coeffs.astype(np.float32) @ self._facial_rows).reshape(-1, 3)
        # Linear blend skinning in float32 (0.1 um here): positions and normals in one batched product.
        blend = (self._skin32 @ t.reshape(len(t), 12).astype(np.float32)).reshape(-1, 3, 4)
        y = np.matmul(blend[:, :, :3], x.transpose(0, 2, 1))  # (V, 3, 2): skinned position, skinned normal
        vertices = y[:, :, 0] + blend[:, :, 3]
        normals = y[:, :, 1]
        normals /= np.maximum(np.sqrt((normals * normals).sum(1, keepdims=True)), 1e-12)
        return PosedBody(self, vertices.astype(np.float64), normals, w, coeffs)


@dataclass
class PosedBody:
    """A posed body (avatar frame)."""

    rig: Rig
    vertices: np.ndarray  #: (V, 3) float64.
    normals: np.ndarray  #: (V, 3) float32.
    bones: np.ndarray  #: (J, 4, 4) posed bone frames (rotation + head).
    facial: np.ndarray  #: (52,) facial action values.

    @property
    def heads(self) -> np.ndarray:
        """(J, 3) bone heads."""
        return self.bones[:, :3, 3]

    def head(self, bone: str) -> np.ndarray:
        return self.bones[BONE_INDEX[bone], :3, 3]

    @property
    def keypoints(self) -> np.ndarray:
        """(17, 3) COCO keypoints (anny's regressor)."""
        return self.rig.template.keypoint_weights @ self.vertices

    def render_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(S, 3) float32 positions and normals in render-vertex order (``Avatar.mesh`` layout)."""
        sv = self.rig.template.split_vertex
        return self.vertices[sv].astype(np.float32), self.normals[sv]


def as_rotation_matrices(rotations) -> np.ndarray:
    """(J, 3, 3) local-ref deltas from rotation vectors (radians), matrices, a dict or ``None``."""
    from scipy.spatial.transform import Rotation

    n = len(BONES)
    if rotations is None:
        return np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    if isinstance(rotations, dict):
        out = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
        for name, r in rotations.items():
            if name not in BONE_INDEX:
                raise KeyError(f"unknown bone {name!r} (see hcgym.synthesis.labels.BONES)")
            r = np.asarray(r, dtype=np.float64)
            out[BONE_INDEX[name]] = r if r.shape == (3, 3) else Rotation.from_rotvec(r).as_matrix()
        return out
    r = np.asarray(rotations, dtype=np.float64)
    if r.shape == (n, 3):
        return Rotation.from_rotvec(r).as_matrix()
    if r.shape == (n, 3, 3):
        return r
    raise ValueError(f"rotations must be ({n}, 3) rotation vectors or ({n}, 3, 3) matrices, got {r.shape}")


def as_facial_vector(facial) -> np.ndarray:
    """(52,) facial action values from an array, a dict name -> value or ``None``."""
    out = np.zeros(len(FACIAL_ACTIONS))
    if facial is None:
        return out
    if isinstance(facial, dict):
        for name, v in facial.items():
            if name not in FACIAL_INDEX:
                raise KeyError(f"unknown facial action {name!r} (see hcgym.synthesis.labels.FACIAL_ACTIONS)")
            out[FACIAL_INDEX[name]] = v
        return out
    f = np.asarray(facial, dtype=np.float64).reshape(-1)
    if f.shape != out.shape:
        raise ValueError(f"facial must have {len(out)} values, got {f.size}")
    return f


# --------------------------------------------------------------------------- building and caching
def rig_key(spec) -> str:
    """Cache key of a rig: its identity's shape (phenotype and local changes) and the rig version."""
    shape = {"phenotype": {k: round(float(v), 6) for k, v in sorted(spec.phenotype.items())},
             "local_changes": {k: round(float(v), 6) for k, v in sorted(spec.local_changes.items())}}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16] + f"-r{RIG_VERSION}"


def rig_for(spec) -> Rig:
    """The :class:`Rig` of an :class:`~hcgym.synthesis.avatar_spec.AvatarSpec` (built once, cached on disk)."""
    return _rig(rig_key(spec), spec)


@functools.lru_cache(maxsize=64)
def _rig_cached(key: str) -> Rig | None:
    path = _root() / f"{key}.npz"
    if not path.exists():
        return None
    with np.load(path) as z:
        return Rig(key=key, template=rig_template(), **{k: z[k] for k in z.files})


def _rig(key: str, spec) -> Rig:
    rig = _rig_cached(key)
    if rig is None:
        with _LOCK:
            arrays = _build_rig_arrays(spec)
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            atomic_write_bytes(_root() / f"{key}.npz", buf.getvalue())
        _rig_cached.cache_clear()
        rig = _rig_cached(key)
    return rig


def _root() -> Path:
    return cache_dir() / "rigs"


@functools.lru_cache(maxsize=1)
def rig_template() -> RigTemplate:
    """The identity-free rig data (built from anny once, then read from the cache)."""
    path = _root() / f"template-r{RIG_VERSION}.npz"
    if not path.exists():
        with _LOCK:
            buf = io.BytesIO()
            np.savez(buf, **_build_template_arrays())
            atomic_write_bytes(path, buf.getvalue())
    with np.load(path) as z:
        a = {k: z[k] for k in z.files}
    parents = a["parents"]
    return RigTemplate(faces=a["faces"], split_vertex=a["split_vertex"], skin_index=a["skin_index"],
                       skin_weight=a["skin_weight"], parents=parents, reference=a["reference"],
                       keypoint_weights=a["keypoint_weights"], levels=_levels(parents))


def _levels(parents: np.ndarray) -> tuple[np.ndarray, ...]:
    depth = np.zeros(len(parents), dtype=int)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1  # anny lists parents before children
    return tuple(np.flatnonzero(depth == d) for d in range(depth.max() + 1))


def _build_template_arrays() -> dict[str, np.ndarray]:
    from hcgym.synthesis.anny_model import get_model, get_template

    m, t = get_model(), get_template()
    parents = np.asarray([int(p) for p in m.bone_parents], dtype=np.int64)
    if list(m.bone_labels) != list(BONES) or not all(parents[j] < j for j in range(1, len(parents))):
        raise RuntimeError("anny's skeleton differs from the one hcgym was written for (hcgym.synthesis.labels.BONES)")
    return {"faces": t.faces, "split_vertex": t.split_vertex,
            "skin_index": m.vertex_bone_indices.numpy().astype(np.int64),
            "skin_weight": m.vertex_bone_weights.numpy().astype(np.float64),
            "parents": parents, "reference": m.reference_bone_orientations.numpy().astype(np.float64),
            "keypoint_weights": t.keypoint_weights}


def _build_rig_arrays(spec) -> dict[str, np.ndarray]:
    import torch

    from hcgym.synthesis.anny_model import get_model
    from hcgym.synthesis.builder import vertex_normals

    m = get_model()
    tmpl = rig_template()
    ph = {k: torch.tensor([v], dtype=torch.float64) for k, v in spec.phenotype.items()} or None
    lc = {k: torch.tensor([v], dtype=torch.float64) for k, v in spec.local_changes.items()} or None
    _, php, lcp, fap = m.get_tensor_inputs(None, ph, lc, None)
    n = len(FACIAL_ACTIONS)
    with torch.no_grad():
        rest = m.get_rest_model(m._get_phenotype_blendshape_coefficients(php, lcp, fap))
        faces = m.get_rest_vertices(m._get_phenotype_blendshape_coefficients(
            php.expand(n, -1), lcp.expand(n, -1), torch.eye(n, dtype=torch.float64)))
    verts = rest["rest_vertices"][0].numpy()
    basis = faces.numpy() - verts[None]
    moved = np.flatnonzero(np.abs(basis).max(axis=(0, 2)) > 1e-9)
    # Avatar frame (as hcgym.synthesis.builder): feet on z = 0, hip midpoint above the origin.
    kp = tmpl.keypoint_weights @ verts
    hip = (kp[11] + kp[12]) / 2
    offset = np.array([hip[0], hip[1], verts[:, 2].min()])
    verts = verts - offset
    poses = rest["rest_bone_poses"][0].numpy()
    return {"rest_vertices": verts, "rest_normals": vertex_normals(verts, tmpl.faces).astype(np.float32),
            "rest_rotations": poses[:, :3, :3].copy(), "rest_heads": poses[:, :3, 3] - offset,
            "facial_vertices": moved, "facial_basis": basis[:, moved].astype(np.float32)}


@functools.lru_cache(maxsize=1)
def face_point_ids() -> dict[str, int]:
    """Template vertex of each named face point (``nose_tip``, ``mouth_left``, ``chin``, ...; see
    :attr:`hcgym.synthesis.anny_model.Template.face_points`), cached beside the rigs."""
    path = _root() / f"face-points-r{RIG_VERSION}.json"
    if not path.exists():
        from hcgym.synthesis.anny_model import get_template

        atomic_write_bytes(path, json.dumps(get_template().face_points, sort_keys=True).encode())
    return {k: int(v) for k, v in json.loads(path.read_text()).items()}
