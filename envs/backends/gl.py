"""An OpenGL scene renderer on a headless EGL context (moderngl), for the embedded backend.

:class:`GLScene` holds meshes (vertex arrays, an optional texture, a colour, a 4x4 transform and an
instance id) and renders a camera into RGB, metric z-depth and instance segmentation, the three images
of a :class:`~hcgym.types.Frame`. Meshes can be *dynamic*: their vertices are rewritten in place
(:meth:`GLScene.update_mesh`), which skinned, moving people need every frame and PyBullet cannot do
without leaking memory.

The shading copies PyBullet's TinyRenderer (the embedded backend's default renderer), so a scene looks
alike under both: ``colour = ambient * c + (diffuse * max(n.l, 0) + specular * max(r_z, 0)^2) * c * light``
with ``c`` the texel times the mesh colour, ``n`` the world normal, ``l`` the unit vector towards the
light and ``r`` the reflection of ``l`` about ``n`` (TinyRenderer takes the specular term from the world
z of ``r``), truncated to 8 bits. Differences: textures are sampled with mipmaps and linear filtering
(TinyRenderer takes the nearest texel), primitives are tessellated differently, no shadows.

Needs ``libEGL`` and an OpenGL 3.3 driver (Mesa's llvmpipe on CPU-only machines, or a GPU driver);
:func:`gl_available` says whether this process can create a context, and why not.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from hcgym.camera import CameraPose
from hcgym.errors import DependencyNotInstalled, SpecError
from hcgym.types import CameraIntrinsics

__all__ = ["GLScene", "box_mesh", "cylinder_mesh", "gl_available", "sphere_mesh"]

_AVAILABLE: tuple[bool, str] | None = None

#: Frame-buffer sizes kept per scene; the least recently used one is released beyond this.
_MAX_FRAMEBUFFERS = 8

_VERTEX_SHADER = """
#version 330
uniform mat4 u_mvp;      // clip from model coordinates
uniform vec4 u_zrow;     // third row of camera-from-model: the camera z of a vertex
uniform mat3 u_normal;   // world normals from model normals (inverse transpose)
in vec3 in_pos;
in vec3 in_nrm;
in vec2 in_uv;
out vec3 v_nrm;
out vec2 v_uv;
out float v_z;
void main() {
    vec4 p = vec4(in_pos, 1.0);
    gl_Position = u_mvp * p;
    v_z = dot(u_zrow, p);
    v_nrm = u_normal * in_nrm;
    v_uv = in_uv;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform sampler2D u_tex;
uniform vec3 u_color;
uniform float u_instance;
uniform vec3 u_light_dir;    // unit vector towards the light, world frame
uniform vec3 u_light_color;
uniform vec3 u_coeffs;       // ambient, diffuse, specular coefficients
in vec3 v_nrm;
in vec2 v_uv;
in float v_z;
layout(location = 0) out vec4 f_color;
layout(location = 1) out vec2 f_aux;
void main() {
    vec3 n = normalize(v_nrm);
    float nl = dot(n, u_light_dir);
    float diffuse = max(nl, 0.0);
    vec3 r = normalize(2.0 * nl * n - u_light_dir);
    float specular = max(r.z, 0.0) * max(r.z, 0.0);
    vec3 c = texture(u_tex, v_uv).rgb * u_color;
    vec3 v = u_coeffs.x * c + (u_coeffs.y * diffuse + u_coeffs.z * specular) * c * u_light_color;
    f_color = vec4(min(floor(v * 255.0), 255.0) / 255.0, 1.0);   // TinyRenderer truncates
    f_aux = vec2(u_instance, v_z);
}
"""


def _moderngl():
    try:
        import moderngl
    except ImportError as e:  # pragma: no cover - moderngl is a dependency
        raise DependencyNotInstalled(f"the gl renderer needs moderngl (pip install moderngl): {e}") from e
    return moderngl


def _create_context():
    return _moderngl().create_standalone_context(backend="egl")


def gl_available() -> tuple[bool, str]:
    """Whether this process can create a headless OpenGL 3.3 context through EGL, and why not.

    Tried once per process (the answer is cached); the reason is empty when it can.
    """
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            ctx = _create_context()
            try:
                ok = ctx.version_code >= 330
                why = "" if ok else f"OpenGL {ctx.version_code // 100}.{ctx.version_code % 100 // 10} < 3.3"
            finally:
                ctx.release()
            _AVAILABLE = (ok, why)
        except Exception as e:  # missing libEGL, no driver, no moderngl, ...
            _AVAILABLE = (False, f"{type(e).__name__}: {e}".strip())
    return _AVAILABLE


# ----------------------------------------------------------------- primitive meshes
def box_mesh(half_extents) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box centred on the origin: ``positions`` (24, 3), ``normals`` (24, 3), ``indices`` (36,), flat faces."""
    h = np.asarray(half_extents, dtype=np.float64).reshape(3)
    pos, nrm, idx = [], [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            n = np.zeros(3)
            n[axis] = sign
            u, v = np.roll(np.eye(3), -axis - 1, axis=0)[:2]  # two axes spanning the face
            if sign < 0:
                u, v = v, u  # keep the winding counter-clockwise seen from outside
            c = n * h
            base = len(pos)
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                pos.append(c + a * u * h + b * v * h)
                nrm.append(n)
            idx += [base, base + 1, base + 2, base, base + 2, base + 3]
    return np.asarray(pos, np.float32), np.asarray(nrm, np.float32), np.asarray(idx, np.int32)


def cylinder_mesh(radius: float, length: float, segments: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cylinder along z centred on the origin (PyBullet's ``GEOM_CYLINDER``): smooth side, flat caps."""
    a = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1)
    hz = length / 2
    side = np.concatenate([ring * radius + [0, 0, -hz], ring * radius + [0, 0, hz]])
    pos, nrm, idx = [side], [np.concatenate([ring, ring])], []
    i = np.arange(segments)
    j = (i + 1) % segments
    idx.append(np.stack([i, j, j + segments, i, j + segments, i + segments], axis=1).ravel())
    for z, sign in ((hz, 1.0), (-hz, -1.0)):
        base = sum(len(p) for p in pos)
        cap = np.concatenate([[[0.0, 0.0, z]], ring * radius + [0, 0, z]])
        pos.append(cap)
        nrm.append(np.tile([0.0, 0.0, sign], (segments + 1, 1)))
        tri = np.stack([np.zeros(segments, int), 1 + i, 1 + j], axis=1) if sign > 0 else \
            np.stack([np.zeros(segments, int), 1 + j, 1 + i], axis=1)
        idx.append(base + tri.ravel())
    return (np.concatenate(pos).astype(np.float32), np.concatenate(nrm).astype(np.float32),
            np.concatenate(idx).astype(np.int32))


def sphere_mesh(radius: float, rings: int = 16, segments: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UV sphere centred on the origin with smooth normals."""
    theta = np.linspace(0.0, np.pi, rings + 1)  # from the north pole
    phi = np.linspace(0.0, 2 * np.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    n = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1).reshape(-1, 3)
    r, s = np.meshgrid(np.arange(rings), np.arange(segments), indexing="ij")
    a = (r * (segments + 1) + s).ravel()
    b, c, d = a + segments + 1, a + 1, a + segments + 2
    idx = np.stack([a, b, d, a, d, c], axis=1).ravel()
    return (n * radius).astype(np.float32), n.astype(np.float32), idx.astype(np.int32)


def projection_matrix(intrinsics: CameraIntrinsics) -> np.ndarray:
    """4x4 clip-from-camera matrix of a pinhole camera with OpenCV axes (x right, y down, z forward).

    A camera point maps to the continuous pixel ``(fx x / z + cx, fy y / z + cy)`` with rows counted from the
    top (pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``); window rows are bottom-up, so images read back
    from OpenGL are flipped. Depth maps ``near .. far`` to ``-1 .. 1``.
    """
    w, h = intrinsics.width, intrinsics.height
    n, f = intrinsics.near, intrinsics.far
    return np.array([
        [2 * intrinsics.fx / w, 0.0, 2 * intrinsics.cx / w - 1, 0.0],
        [0.0, -2 * intrinsics.fy / h, 1 - 2 * intrinsics.cy / h, 0.0],
        [0.0, 0.0, (f + n) / (f - n), -2 * f * n / (f - n)],
        [0.0, 0.0, 1.0, 0.0]])


def _current(method):
    """Run ``method`` with the scene's context current (several scenes, or other GL users, can share a thread)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.ctx is None:
            raise RuntimeError("GLScene: used after release()")
        with self.ctx:
            return method(self, *args, **kwargs)

    return wrapper


class _Geometry:
    """Vertex buffers and their vertex array; shared by static meshes with the same key."""

    def __init__(self, ctx, program, positions, normals, uvs, indices, dynamic: bool) -> None:
        self.count, self.n_vertices, self.dynamic, self.refs = len(indices), len(positions), dynamic, 0
        self.pos = ctx.buffer(positions, dynamic=dynamic)
        self.nrm = ctx.buffer(normals, dynamic=dynamic)
        self.uv = ctx.buffer(uvs)
        self.ibo = ctx.buffer(indices)
        self.vao = ctx.vertex_array(program, [(self.pos, "3f", "in_pos"), (self.nrm, "3f", "in_nrm"),
                                              (self.uv, "2f", "in_uv")],
                                    index_buffer=self.ibo, index_element_size=4)

    def release(self) -> None:
        for obj in (self.vao, self.pos, self.nrm, self.uv, self.ibo):
            obj.release()


class _Mesh:
    __slots__ = ("geometry", "geometry_key", "texture_key", "color", "transform", "instance", "visible")

    def __init__(self, geometry, geometry_key, texture_key, color, transform, instance, visible) -> None:
        self.geometry, self.geometry_key, self.texture_key = geometry, geometry_key, texture_key
        self.color, self.transform, self.instance, self.visible = color, transform, instance, visible


class GLScene:
    """Meshes rendered with OpenGL on a standalone EGL context.

    Use as a context manager or call :meth:`release`. Not thread-safe; one scene per thread.

    Raises:
        RuntimeError: when no EGL/OpenGL 3.3 context can be created (see :func:`gl_available`).
    """

    def __init__(self) -> None:
        ok, why = gl_available()
        if not ok:
            raise RuntimeError(f"no OpenGL context through EGL: {why}")
        mgl = _moderngl()
        self._mgl = mgl
        self.ctx = _create_context()
        with self.ctx:
            self._program = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
            self._program["u_tex"].value = 0
            self._white = self.ctx.texture((1, 1), 3, b"\xff\xff\xff")
        self._meshes: dict[int, _Mesh] = {}
        self._next = 1
        self._geometries: dict[object, _Geometry] = {}
        self._textures: dict[object, list] = {}  # key -> [texture, refs]
        self._framebuffers: dict[tuple[int, int], object] = {}

    # ------------------------------------------------------------- meshes
    @_current
    def add_mesh(self, positions, normals, indices, uvs=None, texture=None, color=(1.0, 1.0, 1.0),
                 transform=None, instance: int = 0, dynamic: bool = False, key=None, visible: bool = True) -> int:
        """Add a triangle mesh; returns its handle.

        Args:
            positions: (N, 3) vertex positions in the mesh frame (metres).
            normals: (N, 3) vertex normals.
            indices: (M,) vertex indices, three per triangle, counter-clockwise seen from the front.
            uvs: (N, 2) texture coordinates (``v`` up: ``v = 0`` is the image's bottom row), or ``None``.
            texture: an image file, an (H, W, 3) uint8 array or ``None`` (plain ``color``). Files are
                loaded once (keyed by device and inode) and freed when no mesh uses them.
            color: RGB in 0..1, multiplied with the texture.
            transform: (4, 4) mesh-to-world transform (identity if ``None``).
            instance: segmentation value of the mesh's pixels (0 = background-class scenery).
            dynamic: the vertices will change (:meth:`update_mesh`).
            key: static meshes with the same key share their vertex buffers (the arrays of the first one).
            visible: draw the mesh (see :meth:`set_visible`).
        """
        geometry_key = ("key", key) if key is not None and not dynamic else ("mesh", self._next)
        geometry = self._geometries.get(geometry_key)
        if geometry is None:
            pos = _vectors(positions, "positions", 3)
            nrm = _vectors(normals, "normals", 3, len(pos))
            idx = np.ascontiguousarray(indices, dtype=np.int32).reshape(-1)
            if len(idx) % 3 or (len(idx) and (idx.min() < 0 or idx.max() >= len(pos))):
                raise SpecError("indices", f"need triangles (a multiple of 3 indices) into {len(pos)} vertices")
            uv = np.zeros((len(pos), 2), np.float32) if uvs is None else _vectors(uvs, "uvs", 2, len(pos))
            geometry = _Geometry(self.ctx, self._program, pos, nrm, uv, idx, bool(dynamic))
            self._geometries[geometry_key] = geometry
        geometry.refs += 1
        try:
            texture_key = self._texture(texture)
        except BaseException:
            self._drop_geometry(geometry_key)
            raise
        handle = self._next
        self._next += 1
        self._meshes[handle] = _Mesh(geometry, geometry_key, texture_key, _color(color), _matrix(transform),
                                     float(instance), bool(visible))
        return handle

    @_current
    def update_mesh(self, handle: int, positions, normals) -> None:
        """Rewrite the vertices of a dynamic mesh (same vertex count and order as when it was added)."""
        g = self._mesh(handle).geometry
        if not g.dynamic:
            raise SpecError("handle", f"mesh {handle} was added with dynamic=False; its vertices cannot change")
        g.pos.write(_vectors(positions, "positions", 3, g.n_vertices))
        g.nrm.write(_vectors(normals, "normals", 3, g.n_vertices))

    def is_dynamic(self, handle: int) -> bool:
        return self._mesh(handle).geometry.dynamic

    def set_transform(self, handle: int, transform) -> None:
        """Place a mesh with a (4, 4) mesh-to-world transform."""
        self._mesh(handle).transform = _matrix(transform)

    def set_visible(self, handle: int, visible: bool) -> None:
        self._mesh(handle).visible = bool(visible)

    @_current
    def remove(self, handle: int) -> None:
        """Remove a mesh; its buffers and texture are freed when no other mesh uses them."""
        self._remove(handle)

    @_current
    def clear(self) -> None:
        """Remove every mesh (contexts, programs and frame buffers stay)."""
        for handle in list(self._meshes):
            self._remove(handle)

    def __len__(self) -> int:
        return len(self._meshes)

    # ------------------------------------------------------------- render
    @_current
    def render(self, intrinsics: CameraIntrinsics, pose: CameraPose, light_direction=(-0.4, -0.3, -1.0),
               light_color=(1.0, 1.0, 1.0), intensity: float = 1.0, ambient: float = 0.5,
               background=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render the visible meshes from ``pose`` with ``intrinsics``.

        Light as the embedded backend's TinyRenderer: one directional light travelling along
        ``light_direction`` (world frame), colour ``min(1, light_color * intensity)``, ambient coefficient
        ``ambient``, diffuse ``1 - ambient / 2``, specular 0.05.

        Returns:
            RGB (H, W, 3) uint8 (``background`` where nothing was hit), z-depth (H, W) float32 metres
            along the optical axis (``inf`` where nothing was hit) and segmentation (H, W) int32 (the
            meshes' ``instance``, 0 where nothing was hit); rows top-down.
        """
        from hcgym.geometry import world_to_camera

        w, h = int(intrinsics.width), int(intrinsics.height)
        if w <= 0 or h <= 0:
            raise SpecError("intrinsics", f"image size must be positive, got {w}x{h}")
        d = -np.asarray(light_direction, dtype=np.float64).reshape(3)
        if not np.linalg.norm(d) > 0:
            raise SpecError("light_direction", "must not be the zero vector")
        mgl, prog = self._mgl, self._program
        fbo = self._framebuffer(w, h)
        fbo.use()
        ctx = self.ctx
        ctx.enable(mgl.DEPTH_TEST | mgl.CULL_FACE)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        prog["u_light_dir"].value = tuple(float(x) for x in d / np.linalg.norm(d))
        prog["u_light_color"].value = tuple(min(1.0, float(c) * float(intensity)) for c in light_color)
        prog["u_coeffs"].value = (float(ambient), 1.0 - 0.5 * float(ambient), 0.05)
        view_proj = projection_matrix(intrinsics) @ world_to_camera(pose.position, pose.rotation)
        w2c_z = world_to_camera(pose.position, pose.rotation)[2]
        for m in self._meshes.values():
            if not m.visible:
                continue
            t = m.transform
            prog["u_mvp"].write((view_proj @ t).astype(np.float32).T.tobytes())
            prog["u_zrow"].write((w2c_z @ t).astype(np.float32).tobytes())
            prog["u_normal"].write(np.linalg.inv(t[:3, :3]).astype(np.float32).tobytes())  # (M^-T)^T
            prog["u_color"].value = m.color
            prog["u_instance"].value = m.instance
            (self._white if m.texture_key is None else self._textures[m.texture_key][0]).use(location=0)
            m.geometry.vao.render(mgl.TRIANGLES)
        rgb = np.frombuffer(fbo.read(components=4, attachment=0, dtype="f1"), np.uint8).reshape(h, w, 4)
        aux = np.frombuffer(fbo.read(components=2, attachment=1, dtype="f4"), np.float32).reshape(h, w, 2)
        rgb = np.ascontiguousarray(rgb[::-1, :, :3])
        aux = aux[::-1]
        depth = np.ascontiguousarray(aux[..., 1])
        empty = depth <= 0.0
        depth[empty] = np.inf
        rgb[empty] = (np.clip(np.asarray(background, dtype=np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)
        seg = np.rint(aux[..., 0]).astype(np.int32)
        return rgb, depth, seg

    # ------------------------------------------------------------- lifetime
    def release(self) -> None:
        """Free every mesh, texture, frame buffer and the context."""
        if self.ctx is None:
            return
        with self.ctx:
            for handle in list(self._meshes):
                self._remove(handle)
            for fbo in self._framebuffers.values():
                _release_framebuffer(fbo)
            self._framebuffers.clear()
            self._white.release()
            self._program.release()
        self.ctx.release()
        self.ctx = None

    def __enter__(self) -> "GLScene":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # best effort
        try:
            self.release()
        except Exception:
            pass

    # ------------------------------------------------------------- internals
    def _remove(self, handle: int) -> None:
        m = self._meshes.pop(handle, None)
        if m is None:
            raise SpecError("handle", f"no mesh {handle}")
        self._drop_geometry(m.geometry_key)
        self._drop_texture(m.texture_key)

    def _mesh(self, handle: int) -> _Mesh:
        if handle not in self._meshes:
            raise SpecError("handle", f"no mesh {handle}")
        return self._meshes[handle]

    def _drop_geometry(self, key) -> None:
        g = self._geometries[key]
        g.refs -= 1
        if g.refs <= 0:
            g.release()
            del self._geometries[key]

    def _texture(self, texture):
        """Key of ``texture`` in the texture cache (loaded on first use), ``None`` for no texture."""
        if texture is None:
            return None
        if isinstance(texture, (str, os.PathLike)):
            st = os.stat(texture)
            key = ("file", st.st_dev, st.st_ino)
            if key not in self._textures:
                from PIL import Image

                with Image.open(Path(texture)) as im:
                    image = np.asarray(im.convert("RGB"))
                self._textures[key] = [self._upload(image), 0]
        else:
            image = np.asarray(texture)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
                raise SpecError("texture", f"need an image file or an (H, W, 3) uint8 array, got "
                                           f"{image.dtype} {image.shape}")
            key = ("array", self._next)
            self._textures[key] = [self._upload(image), 0]
        self._textures[key][1] += 1
        return key

    def _upload(self, image: np.ndarray):
        mgl = self._mgl
        h, w = image.shape[:2]
        tex = self.ctx.texture((w, h), 3, np.ascontiguousarray(image[::-1]).tobytes())  # v = 0 is the bottom row
        tex.build_mipmaps()
        tex.filter = (mgl.LINEAR_MIPMAP_LINEAR, mgl.LINEAR)
        tex.repeat_x = tex.repeat_y = True
        return tex

    def _drop_texture(self, key) -> None:
        if key is None:
            return
        entry = self._textures[key]
        entry[1] -= 1
        if entry[1] <= 0:
            entry[0].release()
            del self._textures[key]

    def _framebuffer(self, w: int, h: int):
        fbo = self._framebuffers.pop((w, h), None)
        if fbo is None:
            ctx = self.ctx
            fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer((w, h), 4, dtype="f1"),
                                                     ctx.renderbuffer((w, h), 2, dtype="f4")],
                                  depth_attachment=ctx.depth_renderbuffer((w, h)))
            while len(self._framebuffers) >= _MAX_FRAMEBUFFERS:
                _release_framebuffer(self._framebuffers.pop(next(iter(self._framebuffers))))
        self._framebuffers[(w, h)] = fbo  # most recently used last
        return fbo


def _release_framebuffer(fbo) -> None:
    attachments = [*fbo.color_attachments, fbo.depth_attachment]
    fbo.release()
    for a in attachments:
        if a is not None:
            a.release()


def _vectors(a, name: str, dim: int, n: int | None = None) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim or (n is not None and len(arr) != n):
        want = f"({n if n is not None else 'N'}, {dim})"
        raise SpecError(name, f"need a {want} array, got shape {arr.shape}")
    return arr


def _matrix(transform) -> np.ndarray:
    if transform is None:
        return np.eye(4)
    t = np.asarray(transform, dtype=np.float64)
    if t.shape != (4, 4) or not np.isfinite(t).all():
        raise SpecError("transform", f"need a finite (4, 4) matrix, got shape {t.shape}")
    return t.copy()


def _color(color) -> tuple[float, float, float]:
    c = np.asarray(color, dtype=np.float64).reshape(-1)
    if c.size < 3:
        raise SpecError("color", f"need r, g, b in 0..1, got {color!r}")
    return tuple(float(x) for x in np.clip(c[:3], 0.0, 1.0))
