"""The embedded backend: PyBullet in DIRECT mode rendered with its CPU TinyRenderer, or OpenGL on EGL.

Runs on any machine (no GPU, no display). Humans are textured anny meshes
uploaded once per avatar; the floor carries a procedural texture; walls and
props are coloured primitives. Both renderers use one directional light
(the world's first light) plus ambient light, with TinyRenderer's shading.

Renderers (``renderer=``): ``"tiny"`` (PyBullet's TinyRenderer, identical bytes on
every machine), ``"gl"`` (:class:`hcgym.envs.backends.gl.GLScene`: OpenGL through
EGL, no PyBullet; meshes whose vertices change every frame without leaking),
``"egl"`` (PyBullet's EGL plugin) and ``"auto"`` (``"gl"`` for worlds with moving
meshes when EGL works, else ``"tiny"``).
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np

from hcgym.envs.backends.base import CameraPose, SimBackend
from hcgym.errors import SpecError
from hcgym.types import CameraIntrinsics
from hcgym.worlds.spec import WorldSpec

log = logging.getLogger(__name__)

#: Messages already logged or warned in this process (each is said once).
_SAID: set[str] = set()

RENDERERS = ("auto", "tiny", "gl", "egl")


def _say_once(message: str, warn: bool = False) -> None:
    if message in _SAID:
        return
    _SAID.add(message)
    if warn:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    log.info(message)


class EmbeddedBackend(SimBackend):
    """PyBullet / OpenGL backend.

    Args:
        renderer: ``"auto"`` (default): ``"gl"`` when ``animated`` and an OpenGL context can be made
            through EGL (:func:`~hcgym.envs.backends.gl.gl_available`), else ``"tiny"``, so static worlds
            keep their TinyRenderer bytes. ``"tiny"``: PyBullet's CPU TinyRenderer, bit-identical across
            machines. ``"gl"``: OpenGL on a headless EGL context (moderngl; Mesa llvmpipe on CPU-only
            machines), no PyBullet; falls back to ``"tiny"`` with a warning if no context can be made.
            ``"egl"``: PyBullet's EGL plugin (hardware OpenGL where the machine has it; falls back to
            ``"tiny"`` if the plugin cannot load). :attr:`renderer_name` says which one is used.
        shadows: cast shadows from the directional light (TinyRenderer and PyBullet's EGL only; slower).
        animated: the world has meshes that change every frame (people moving their bodies,
            :meth:`_deform_human`); picks ``"gl"`` under ``"auto"``.
    """

    name = "embedded"
    capabilities = frozenset({"intrinsics", "lighting", "add_human"})

    def __init__(self, renderer: str = "auto", shadows: bool = False, animated: bool = False) -> None:
        super().__init__()
        if renderer not in RENDERERS:
            raise SpecError("renderer", f"unknown renderer {renderer!r} (allowed: {', '.join(RENDERERS)})")
        self.shadows, self.animated = bool(shadows), bool(animated)
        self._p, self._cid, self._scene = None, None, None
        self._human_bodies: list[int] = []
        self._robot_bodies: dict[str, int] = {}
        self._shapes: dict[str, tuple[int, int]] = {}
        self._textures: dict[tuple[int, int], int] = {}
        self._seg_lut = np.zeros(1, dtype=np.int32)
        self._posed: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # human index -> deformed mesh
        self._gl_humans: list[int | None] = []
        self._gl_robots: dict[str, int] = {}
        self.renderer_name = "tiny"
        why = "renderer='tiny'"
        if renderer in ("gl", "auto"):
            from hcgym.envs.backends.gl import gl_available

            ok, reason = gl_available() if renderer == "gl" or self.animated else (False, "")
            if ok:
                self.renderer_name, why = "gl", f"renderer={renderer!r}" + (", animated world" if renderer == "auto" else "")
            elif renderer == "gl" or self.animated:
                why = f"renderer={renderer!r} but no OpenGL context through EGL ({reason})"
                _say_once(f"EmbeddedBackend: {why}; using PyBullet's TinyRenderer instead (needs libEGL and Mesa or a "
                          f"GPU driver, and moderngl). Moving meshes then leak memory in PyBullet.", warn=True)
            else:
                why = "renderer='auto', static world"
        if self.renderer_name == "gl":
            from hcgym.envs.backends.gl import GLScene

            self._scene = GLScene()
            if self.shadows:
                _say_once("EmbeddedBackend: the gl renderer draws no shadows (shadows=True is ignored)", warn=True)
        else:
            import pybullet as p

            self._p = p
            self._cid = p.connect(p.DIRECT)
            self._renderer = p.ER_TINY_RENDERER
            if renderer == "egl":
                self._try_egl()
                why = "renderer='egl'" if self.renderer_name == "egl" else \
                    "renderer='egl' but PyBullet's EGL plugin did not load"
        _say_once(f"EmbeddedBackend renders with {self.renderer_name!r} ({why})")

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
        self._posed = {}
        if self._scene is not None:
            self._gl_load(world)
            return
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
        if index in self._posed:
            vs, tex = self._posed_shape(index)
        else:
            vs, tex = self._avatar_shape(h.avatar)
        body = p.createMultiBody(baseMass=0, baseVisualShapeIndex=vs, basePosition=h.position.tolist(),
                                 baseOrientation=_yaw_quat(h.heading + 90.0), physicsClientId=cid)
        p.changeVisualShape(body, -1, textureUniqueId=tex, rgbaColor=[1, 1, 1, 1], physicsClientId=cid)
        return body

    def _add_human(self, index: int) -> None:
        if self._scene is not None:
            self._gl_humans.append(self._gl_add_human(index) if self.humans[index].visible else None)
            return
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
        if self._scene is not None:
            if index < len(self._gl_humans) and self._gl_humans[index] is not None:
                self._scene.set_transform(self._gl_humans[index], self.humans[index].transform)
            return
        if index >= len(self._human_bodies) or self._human_bodies[index] < 0:
            return
        h = self.humans[index]
        self._p.resetBasePositionAndOrientation(self._human_bodies[index], h.position.tolist(),
                                                _yaw_quat(h.heading + 90.0), physicsClientId=self._cid)

    def _set_human_visible(self, index: int) -> None:
        """Hidden humans are removed from the renderer (PyBullet keeps their mesh and texture loaded for
        re-adding; the gl renderer frees them and loads them again when they are shown)."""
        visible = self.humans[index].visible
        if self._scene is not None:
            handle = self._gl_humans[index]
            if visible and handle is None:
                self._gl_humans[index] = self._gl_add_human(index)
            elif not visible and handle is not None:
                self._scene.remove(handle)
                self._gl_humans[index] = None
            return
        body = self._human_bodies[index]
        if visible and body < 0:
            self._human_bodies[index] = self._add_human_body(index)
        elif not visible and body >= 0:
            self._p.removeBody(body, physicsClientId=self._cid)
            self._human_bodies[index] = -1
        self._update_lut()

    def _deform_human(self, index: int) -> None:
        """The posed mesh of human ``index`` changed: show ``self.humans[index].render_mesh()``.

        ``render_mesh()`` returns ``positions, normals``, (S, 3) each in the avatar frame, in the vertex
        order of ``avatar.mesh["positions"]``. The gl renderer rewrites the human's vertex buffers; PyBullet
        cannot change a mesh, so TinyRenderer gets a new visual shape, which PyBullet keeps until the
        process ends (3-10 MB each time: use the gl renderer for long animations).
        """
        h = self.humans[index]
        positions, normals = h.render_mesh()
        n = len(h.avatar.mesh["positions"])
        positions = np.ascontiguousarray(positions, dtype=np.float32)
        normals = np.ascontiguousarray(normals, dtype=np.float32)
        for name, a in (("positions", positions), ("normals", normals)):
            if a.shape != (n, 3):
                raise SpecError(f"humans[{index}].render_mesh()", f"{name} must be ({n}, 3) like the avatar's "
                                                                   f"mesh, got {a.shape}")
        self._posed[index] = (positions, normals)
        if self._scene is not None:
            handle = self._gl_humans[index] if index < len(self._gl_humans) else None
            if handle is None:
                return  # hidden: shown with this mesh when it becomes visible
            if self._scene.is_dynamic(handle):
                self._scene.update_mesh(handle, positions, normals)
            else:  # first deformation: the human gets its own vertex buffers (added first: the texture stays)
                self._gl_humans[index] = self._gl_add_human(index)
                self._scene.remove(handle)
            return
        if self.renderer_name == "egl":
            raise SpecError("renderer", "PyBullet's EGL plugin renders meshes from files only and cannot show "
                                        "deformed humans; use renderer='gl' (or 'tiny')")
        _say_once("EmbeddedBackend: deforming a human with PyBullet's TinyRenderer creates a new visual shape "
                  "each time, which PyBullet keeps until the process ends (3-7 MB per frame); "
                  "use renderer='gl' for animations (needs OpenGL through EGL: libEGL and Mesa or a GPU driver)",
                  warn=True)
        body = self._human_bodies[index] if index < len(self._human_bodies) else -1
        if body >= 0:
            self._p.removeBody(body, physicsClientId=self._cid)
            self._human_bodies[index] = self._add_human_body(index)
            self._update_lut()

    def _move_robot(self, name: str) -> None:
        if self._scene is not None:
            if name in self._gl_robots:
                r = self.robots[name]
                self._scene.set_transform(self._gl_robots[name], _placement(r.position, r.yaw))
            return
        if name not in self._robot_bodies:
            return
        r = self.robots[name]
        self._p.resetBasePositionAndOrientation(self._robot_bodies[name], r.position.tolist(), _yaw_quat(r.yaw),
                                                physicsClientId=self._cid)

    def _render(self, intrinsics: CameraIntrinsics, pose: CameraPose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        world = self._world()
        light = self.light
        if self._scene is not None:
            return self._scene.render(intrinsics, pose, light_direction=light.direction, light_color=light.color,
                                      intensity=light.intensity, ambient=self.ambient, background=world.background)
        p = self._p
        w, h = intrinsics.width, intrinsics.height
        eye = pose.position
        forward, down = pose.rotation[:, 2], pose.rotation[:, 1]
        view = p.computeViewMatrix(eye.tolist(), (eye + forward).tolist(), (-down).tolist(), physicsClientId=self._cid)
        proj = p.computeProjectionMatrixFOV(intrinsics.vfov_deg, w / h, intrinsics.near, intrinsics.far,
                                            physicsClientId=self._cid)
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
        if self._scene is not None:
            self._scene.release()
            self._scene = None
        if self._cid is not None and self._p.isConnected(physicsClientId=self._cid):
            self._p.disconnect(physicsClientId=self._cid)
        self._cid = None

    def __del__(self) -> None:  # best effort
        try:
            self.close()
        except Exception:
            pass

    # -------------------------------------------------------- gl renderer
    def _gl_load(self, world: WorldSpec) -> None:
        from hcgym.envs.backends.gl import box_mesh, cylinder_mesh, sphere_mesh
        from hcgym.worlds.textures import floor_texture, floor_uv

        scene, room = self._scene, world.room
        scene.clear()
        sx, sy = room.size
        u, v = floor_uv(room.floor, room.size)
        scene.add_mesh(np.array([[-sx / 2, -sy / 2, 0], [sx / 2, -sy / 2, 0], [sx / 2, sy / 2, 0],
                                 [-sx / 2, sy / 2, 0]]), np.tile([0.0, 0.0, 1.0], (4, 1)), [0, 1, 2, 0, 2, 3],
                       uvs=[[0, 0], [u, 0], [u, v], [0, v]], texture=floor_texture(room.floor, room.size))
        if room.walls:
            t, hgt = 0.1, room.wall_height
            for cx, cy, hx, hy in ((0, sy / 2 + t / 2, sx / 2 + t, t / 2), (0, -sy / 2 - t / 2, sx / 2 + t, t / 2),
                                   (sx / 2 + t / 2, 0, t / 2, sy / 2), (-sx / 2 - t / 2, 0, t / 2, sy / 2)):
                scene.add_mesh(*box_mesh([hx, hy, hgt / 2]), color=room.wall.color,
                               transform=_placement((cx, cy, hgt / 2), 0.0))
        for prop in world.props:
            px, py, pz = prop.size
            if prop.shape == "box":
                mesh, z = box_mesh([px / 2, py / 2, pz / 2]), pz / 2
            elif prop.shape == "cylinder":
                mesh, z = cylinder_mesh(px / 2, pz), pz / 2
            else:
                mesh, z = sphere_mesh(px / 2), px / 2
            x, y, z0 = prop.position
            scene.add_mesh(*mesh, color=prop.color, transform=_placement((x, y, z0 + z), prop.yaw))
        self._gl_humans = [self._gl_add_human(i) if h.visible else None for i, h in enumerate(self.humans)]
        self._gl_robots = {}
        for name, r in self.robots.items():
            if r.spec.body == "none":
                continue
            bx, by, bz = r.spec.body_size
            self._gl_robots[name] = scene.add_mesh(*box_mesh([bx / 2, by / 2, bz / 2]), color=(0.15, 0.15, 0.17))
            self._move_robot(name)

    def _gl_add_human(self, index: int) -> int:
        """Add human ``index`` to the GL scene: the avatar's mesh shared by key, or its own (dynamic) buffers
        once it was deformed."""
        h = self.humans[index]
        m = h.avatar.mesh
        posed = self._posed.get(index)
        positions, normals = posed if posed is not None else (m["positions"], m["normals"])
        return self._scene.add_mesh(positions, normals, m["indices"], uvs=m["uvs"], texture=h.avatar.texture_path,
                                    transform=h.transform, instance=index + 1, dynamic=posed is not None,
                                    key=None if posed is not None else ("avatar", h.avatar.key))

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

    def _posed_shape(self, index: int) -> tuple[int, int]:
        """A new PyBullet visual shape of human ``index``'s deformed mesh (PyBullet never frees it)."""
        p, h = self._p, self.humans[index]
        m, (positions, normals) = h.avatar.mesh, self._posed[index]
        vs = p.createVisualShape(p.GEOM_MESH, vertices=positions.tolist(), indices=m["indices"].tolist(),
                                 uvs=m["uvs"].tolist(), normals=normals.tolist(), physicsClientId=self._cid)
        if vs < 0:
            raise RuntimeError(f"PyBullet could not create the deformed mesh of human {h.name!r}")
        return vs, self._texture(h.avatar.texture_path)

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


def _placement(position, yaw_deg: float) -> np.ndarray:
    """4x4 transform: rotation ``yaw_deg`` about z, then translation to ``position``."""
    from hcgym.geometry import rot_z

    t = np.eye(4)
    t[:3, :3] = rot_z(yaw_deg)
    t[:3, 3] = np.asarray(position, dtype=np.float64).reshape(3)
    return t


def _yaw_quat(deg: float) -> list[float]:
    a = math.radians(deg) / 2
    return [0.0, 0.0, math.sin(a), math.cos(a)]
