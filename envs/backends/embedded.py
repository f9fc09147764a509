"""The embedded backend: PyBullet in DIRECT mode, rendered with its CPU TinyRenderer.

Runs on any machine (no GPU, no display). Humans are textured anny meshes
uploaded once per avatar; the floor carries a procedural texture; walls and
props are coloured primitives. TinyRenderer supports one directional light
(the world's first light) plus ambient light.
"""

from __future__ import annotations

import math

import numpy as np

from hcgym.envs.backends.base import CameraPose, SimBackend
from hcgym.errors import SpecError
from hcgym.types import CameraIntrinsics
from hcgym.worlds.spec import WorldSpec


class EmbeddedBackend(SimBackend):
    """PyBullet backend.

    Args:
        renderer: ``"tiny"`` (default: PyBullet's CPU TinyRenderer, bit-identical
            across machines) or ``"egl"`` (PyBullet's EGL plugin with hardware
            OpenGL where the machine has it; falls back to ``"tiny"`` if the
            plugin cannot load). ``"auto"`` tries EGL first.
        shadows: cast shadows from the directional light (slower).
    """

    name = "embedded"
    capabilities = frozenset({"intrinsics", "lighting", "add_human"})

    def __init__(self, renderer: str = "tiny", shadows: bool = False) -> None:
        super().__init__()
        if renderer not in ("tiny", "egl", "auto"):
            raise SpecError("renderer", f"unknown renderer {renderer!r} (allowed: auto, egl, tiny)")
        import pybullet as p

        self._p = p
        self._cid = p.connect(p.DIRECT)
        self._renderer = p.ER_TINY_RENDERER
        self.renderer_name = "tiny"
        if renderer in ("egl", "auto"):
            self._try_egl()
        self.shadows = shadows
        self._human_bodies: list[int] = []
        self._robot_bodies: dict[str, int] = {}
        self._shapes: dict[str, tuple[int, int]] = {}
        self._textures: dict[tuple[int, int], int] = {}
        self._seg_lut = np.zeros(1, dtype=np.int32)

    def _try_egl(self) -> None:
        import pkgutil

        p = self._p
        loader = pkgutil.get_loader("eglRenderer")
        try:
            plugin = p.loadPlugin(loader.get_filename(), "_eglRendererPlugin", physicsClientId=self._cid) \
                if loader else -1
        except Exception:  # pragma: no cover - depends on the machine's GL stack
            plugin = -1
        if plugin >= 0:  # pragma: no cover - needs EGL
            self._renderer = p.ER_BULLET_HARDWARE_OPENGL
            self.renderer_name = "egl"

    # ------------------------------------------------------------- hooks
    def _load(self, world: WorldSpec) -> None:
        p, cid = self._p, self._cid
        p.resetSimulation(physicsClientId=cid)
        self._shapes.clear()
        self._textures.clear()
        self._build_room(world)
        for prop in world.props:
            self._add_prop(prop)
        self._human_bodies = [self._add_human_body(i) for i in range(len(self.humans))]
        self._robot_bodies = {}
        for name, r in self.robots.items():
            if r.spec.body == "none":
                continue
            sx, sy, sz = r.spec.body_size
            vs = p.createVisualShape(p.GEOM_BOX, halfExtents=[sx / 2, sy / 2, sz / 2],
                                     rgbaColor=[0.15, 0.15, 0.17, 1], physicsClientId=cid)
            self._robot_bodies[name] = p.createMultiBody(baseMass=0, baseVisualShapeIndex=vs, physicsClientId=cid)
            self._move_robot(name)
        self._update_lut()

    def _add_human_body(self, index: int) -> int:
        p, cid = self._p, self._cid
        h = self.humans[index]
        vs, tex = self._avatar_shape(h.avatar)
        body = p.createMultiBody(baseMass=0, baseVisualShapeIndex=vs, basePosition=h.position.tolist(),
                                 baseOrientation=_yaw_quat(h.heading + 90.0), physicsClientId=cid)
        p.changeVisualShape(body, -1, textureUniqueId=tex, rgbaColor=[1, 1, 1, 1], physicsClientId=cid)
        return body

    def _add_human(self, index: int) -> None:
        self._human_bodies.append(self._add_human_body(index) if self.humans[index].visible else -1)
        self._update_lut()

    def _update_lut(self) -> None:
        bodies = [b for b in self._human_bodies if b >= 0]
        top = max([*bodies, *self._robot_bodies.values(), 0]) + 2
        lut = np.zeros(top + 1, dtype=np.int32)
        for i, b in enumerate(self._human_bodies):
            if b >= 0:
                lut[b + 1] = i + 1  # index with (body id + 1) so that -1 (nothing hit) maps to 0
        self._seg_lut = lut

    def _move_human(self, index: int) -> None:
        if index >= len(self._human_bodies) or self._human_bodies[index] < 0:
            return
        h = self.humans[index]
        self._p.resetBasePositionAndOrientation(self._human_bodies[index], h.position.tolist(),
                                                _yaw_quat(h.heading + 90.0), physicsClientId=self._cid)

    def _set_human_visible(self, index: int) -> None:
        """Hidden humans are removed from PyBullet (their mesh and texture stay loaded for re-adding)."""
        body = self._human_bodies[index]
        if self.humans[index].visible and body < 0:
            self._human_bodies[index] = self._add_human_body(index)
        elif not self.humans[index].visible and body >= 0:
            self._p.removeBody(body, physicsClientId=self._cid)
            self._human_bodies[index] = -1
        self._update_lut()

    def _move_robot(self, name: str) -> None:
        if name not in self._robot_bodies:
            return
        r = self.robots[name]
        self._p.resetBasePositionAndOrientation(self._robot_bodies[name], r.position.tolist(), _yaw_quat(r.yaw),
                                                physicsClientId=self._cid)

    def _render(self, intrinsics: CameraIntrinsics, pose: CameraPose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p, world = self._p, self._world()
        w, h = intrinsics.width, intrinsics.height
        eye = pose.position
        forward, down = pose.rotation[:, 2], pose.rotation[:, 1]
        view = p.computeViewMatrix(eye.tolist(), (eye + forward).tolist(), (-down).tolist(), physicsClientId=self._cid)
        proj = p.computeProjectionMatrixFOV(intrinsics.vfov_deg, w / h, intrinsics.near, intrinsics.far,
                                            physicsClientId=self._cid)
        light = self.light
        ldir = -np.asarray(light.direction, dtype=np.float64)
        ldir = ldir / np.linalg.norm(ldir) * 10.0
        _, _, rgba, zbuf, seg = p.getCameraImage(
            w, h, viewMatrix=view, projectionMatrix=proj, renderer=self._renderer,
            lightDirection=ldir.tolist(), lightColor=[min(1.0, c * light.intensity) for c in light.color],
            lightDistance=10.0, lightAmbientCoeff=self.ambient, lightDiffuseCoeff=1.0 - 0.5 * self.ambient,
            lightSpecularCoeff=0.05, shadow=int(self.shadows), physicsClientId=self._cid)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[..., :3].copy()
        seg = np.asarray(seg, dtype=np.int32).reshape(h, w)
        zbuf = np.asarray(zbuf, dtype=np.float64).reshape(h, w)
        near, far = intrinsics.near, intrinsics.far
        depth = (far * near / (far - (far - near) * zbuf)).astype(np.float32)
        empty = seg < 0
        depth[empty] = np.inf
        rgb[empty] = (np.asarray(world.background) * 255 + 0.5).astype(np.uint8)
        ids = np.clip(seg + 1, 0, len(self._seg_lut) - 1)
        return rgb, depth, self._seg_lut[ids]

    def close(self) -> None:
        if self._cid is not None and self._p.isConnected(physicsClientId=self._cid):
            self._p.disconnect(physicsClientId=self._cid)
        self._cid = None

    def __del__(self) -> None:  # best effort
        try:
            self.close()
        except Exception:
            pass

    # ---------------------------------------------------------- building
    def _avatar_shape(self, avatar) -> tuple[int, int]:
        if avatar.key not in self._shapes:
            p, m = self._p, avatar.mesh
            if self.renderer_name == "egl":  # the EGL plugin only renders meshes loaded from files
                vs = p.createVisualShape(p.GEOM_MESH, fileName=str(avatar.obj_path), physicsClientId=self._cid)
            else:
                vs = p.createVisualShape(p.GEOM_MESH, vertices=m["positions"].tolist(),
                                         indices=m["indices"].tolist(), uvs=m["uvs"].tolist(),
                                         normals=m["normals"].tolist(), physicsClientId=self._cid)
            if vs < 0:
                raise RuntimeError(f"PyBullet could not create the mesh of avatar {avatar.key}")
            self._shapes[avatar.key] = (vs, self._texture(avatar.texture_path))
        return self._shapes[avatar.key]

    def _texture(self, path) -> int:
        """Load a texture once per file (avatars that differ only in pose or expression share one PNG).

        PyBullet keeps every loaded texture until the process ends (about 12 MB per 2048x2048
        texture, also across ``resetSimulation`` and ``disconnect``), so sharing matters.
        """
        import os

        st = os.stat(path)
        key = (st.st_dev, st.st_ino)
        if key not in self._textures:
            self._textures[key] = self._p.loadTexture(str(path), physicsClientId=self._cid)
        return self._textures[key]

    def _build_room(self, world: WorldSpec) -> None:
        from hcgym.worlds.textures import floor_mesh, floor_texture, floor_uv

        p, cid, room = self._p, self._cid, world.room
        sx, sy = room.size
        u, v = floor_uv(room.floor, room.size)
        if self.renderer_name == "egl":
            vs = p.createVisualShape(p.GEOM_MESH, fileName=str(floor_mesh(room.size, (u, v))), physicsClientId=cid)
        else:
            verts = [[-sx / 2, -sy / 2, 0], [sx / 2, -sy / 2, 0], [sx / 2, sy / 2, 0], [-sx / 2, sy / 2, 0]]
            uvs = [[0, 0], [u, 0], [u, v], [0, v]]
            vs = p.createVisualShape(p.GEOM_MESH, vertices=verts, indices=[0, 1, 2, 0, 2, 3], uvs=uvs,
                                     normals=[[0, 0, 1]] * 4, physicsClientId=cid)
        floor = p.createMultiBody(baseMass=0, baseVisualShapeIndex=vs, physicsClientId=cid)
        tex = p.loadTexture(str(floor_texture(room.floor, room.size)), physicsClientId=cid)
        p.changeVisualShape(floor, -1, textureUniqueId=tex, rgbaColor=[1, 1, 1, 1], physicsClientId=cid)
        if not room.walls:
            return
        t, hgt = 0.1, room.wall_height
        color = [*room.wall.color, 1.0]
        for cx, cy, hx, hy in ((0, sy / 2 + t / 2, sx / 2 + t, t / 2), (0, -sy / 2 - t / 2, sx / 2 + t, t / 2),
                               (sx / 2 + t / 2, 0, t / 2, sy / 2), (-sx / 2 - t / 2, 0, t / 2, sy / 2)):
            wv = p.createVisualShape(p.GEOM_BOX, halfExtents=[hx, hy, hgt / 2], rgbaColor=color, physicsClientId=cid)
            p.createMultiBody(baseMass=0, baseVisualShapeIndex=wv, basePosition=[cx, cy, hgt / 2], physicsClientId=cid)

    def _add_prop(self, prop) -> None:
        p, cid = self._p, self._cid
        color = [*prop.color, 1.0]
        sx, sy, sz = prop.size
        if prop.shape == "box":
            vs = p.createVisualShape(p.GEOM_BOX, halfExtents=[sx / 2, sy / 2, sz / 2], rgbaColor=color,
                                     physicsClientId=cid)
            z = sz / 2
        elif prop.shape == "cylinder":
            vs = p.createVisualShape(p.GEOM_CYLINDER, radius=sx / 2, length=sz, rgbaColor=color, physicsClientId=cid)
            z = sz / 2
        else:
            vs = p.createVisualShape(p.GEOM_SPHERE, radius=sx / 2, rgbaColor=color, physicsClientId=cid)
            z = sx / 2
        x, y, z0 = prop.position
        p.createMultiBody(baseMass=0, baseVisualShapeIndex=vs, basePosition=[x, y, z0 + z],
                          baseOrientation=_yaw_quat(prop.yaw), physicsClientId=cid)


def _yaw_quat(deg: float) -> list[float]:
    a = math.radians(deg) / 2
    return [0.0, 0.0, math.sin(a), math.cos(a)]
