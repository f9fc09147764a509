"""World specifications: YAML files validated into dataclasses.

A world names a room (or open ground), props, lights, humans and robots with
cameras. Both simulator backends and the Webots exporter load the same
:class:`WorldSpec`. See ``docs/worlds.md`` for the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hcgym.errors import SpecError
from hcgym.synthesis.avatar_spec import AvatarSpec
from hcgym.synthesis.expressions import EXPRESSIONS
from hcgym.synthesis.poses import POSES
from hcgym.types import CameraIntrinsics
from hcgym.validate import Fields

PATTERNS = ("plain", "checker", "tiles", "stripes", "asphalt", "grass", "soil", "crop_rows")
#: Patterns laid out on a grid of ``tile_size`` (the others are noise).
PERIODIC_PATTERNS = ("checker", "tiles", "stripes", "soil", "crop_rows")
PROP_SHAPES = ("box", "cylinder", "sphere")
BODY_TYPES = ("drone", "wheeled", "none")
Color = tuple[float, float, float]


@dataclass(frozen=True)
class Surface:
    """Appearance of a floor or wall: a colour with a procedural pattern, or an image file."""

    color: Color = (0.6, 0.6, 0.6)
    pattern: str = "plain"
    secondary: Color = (0.45, 0.45, 0.45)
    tile_size: float = 1.0  #: metres per pattern period (``soil``: furrow spacing; ``crop_rows``: row spacing).
    texture: Path | None = None  #: optional image file (overrides the pattern).
    #: Metres covered by one copy of the image, repeated over the floor (``None``: one image over the
    #: whole floor). Keeps large floors sharp; a procedural pattern's period must divide it.
    repeat: float | None = field(default=None, repr=False)
    #: ``crop_rows``: share of the row spacing the plants cover (0.3 young crops, 0.8 a closing canopy).
    cover: float = field(default=0.35, repr=False)
    # (``repeat`` and ``cover`` stay out of the repr, which seeds the pattern noise: surfaces without
    # them keep the textures they had before the fields existed.)

    def period(self) -> float:
        """Metres after which the procedural pattern repeats across its stripes (rows, furrows, tiles)."""
        return 2 * self.tile_size if self.pattern in ("checker", "stripes") else self.tile_size


@dataclass(frozen=True)
class Acoustics:
    """How a room sounds to a robot's microphone (:mod:`hcgym.synthesis.world_signals`): at most one of ``rt60``
    (reverberation time, s), ``absorption`` (energy absorption of every wall, (0, 1]) or ``material`` (a
    pyroomacoustics wall material); none given: rt60 0.4 s inside walls, no reflections on open ground.
    ``noise_db``: background noise at the microphone, RMS in dB re full scale (``None``: none)."""

    rt60: float | None = None
    absorption: float | None = None
    material: str | None = None
    noise_db: float | None = None


@dataclass(frozen=True)
class Room:
    """A rectangular room centred on the origin. ``walls=False`` gives open ground of that size."""

    size: tuple[float, float] = (10.0, 10.0)
    wall_height: float = 3.0
    walls: bool = True
    floor: Surface = field(default_factory=Surface)
    wall: Surface = field(default_factory=lambda: Surface(color=(0.82, 0.81, 0.78)))
    acoustics: Acoustics = field(default_factory=Acoustics)


@dataclass(frozen=True)
class Light:
    """A directional light: ``direction`` points from the light into the scene."""

    direction: tuple[float, float, float] = (-0.4, -0.3, -1.0)
    color: Color = (1.0, 1.0, 1.0)
    intensity: float = 1.0


@dataclass(frozen=True)
class Prop:
    name: str
    shape: str
    size: tuple[float, float, float]  #: box: x, y, z extents; cylinder: diameter, -, height; sphere: diameter.
    position: tuple[float, float, float]  #: centre of the base on the floor.
    yaw: float = 0.0
    color: Color = (0.5, 0.4, 0.3)


@dataclass(frozen=True)
class Human:
    name: str
    avatar: AvatarSpec | None  #: ``None`` (``avatar: random`` in YAML): drawn from the load seed.
    position: tuple[float, float, float]  #: feet position (z = floor height).
    heading: float = 0.0  #: direction the person faces, degrees (0 = +x).
    overrides: dict[str, Any] = field(default_factory=dict)  #: pose/expression given beside the avatar.
    #: What the person does over time (path, body actions, expression, gesture, talk, gaze and head tracks);
    #: ``None``: they stand still in their avatar's pose (see :mod:`hcgym.synthesis.motion.timeline`).
    behaviour: Any = None
    heart: Heart | None = None  #: a wearable ECG on this person, or ``None``.


@dataclass(frozen=True)
class Heart:
    """A wearable ECG on a person: the settings of :func:`hcgym.synthesis.ecg.ecg_stream` (``rhythm`` one of
    normal, af, other, noisy; ``abnormal_share`` the chance of each beat being abnormal; ``snr_db`` the noise
    level, ``None`` clean; ``fs`` Hz)."""

    rhythm: str = "normal"
    abnormal_share: float = 0.0
    snr_db: float | None = 20.0
    fs: float = 250.0


@dataclass(frozen=True)
class CameraSpec:
    name: str
    width: int = 400
    height: int = 300
    hfov: float = 60.0  #: horizontal field of view, degrees.
    mount_position: tuple[float, float, float] = (0.0, 0.0, 0.0)  #: in the body frame (x forward, z up).
    mount_yaw: float = 0.0
    mount_pitch: float = 0.0
    near: float = 0.03
    far: float = 60.0

    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics.from_hfov(self.width, self.height, self.hfov, self.near, self.far)


@dataclass(frozen=True)
class Robot:
    name: str
    body: str = "drone"
    body_size: tuple[float, float, float] = (0.35, 0.35, 0.1)
    position: tuple[float, float, float] = (0.0, 0.0, 1.6)
    yaw: float = 0.0
    cameras: tuple[CameraSpec, ...] = ()
    microphone: tuple[float, float, float] = (0.0, 0.0, 0.0)  #: in the body frame (x forward, z up), metres.


@dataclass(frozen=True)
class WorldSpec:
    name: str
    room: Room
    lights: tuple[Light, ...]
    ambient: float
    background: Color
    props: tuple[Prop, ...]
    humans: tuple[Human, ...]
    robots: tuple[Robot, ...]
    source: str | None = None

    @property
    def animated(self) -> bool:
        """Whether any human moves over time (has a behaviour timeline)."""
        return any(h.behaviour is not None and h.behaviour.moves for h in self.humans)

    def camera(self, name: str | None = None) -> tuple[Robot, CameraSpec]:
        """(robot, camera) by camera name (``"robot/camera"`` or ``"camera"``); the first camera if ``None``."""
        for robot in self.robots:
            for cam in robot.cameras:
                if name is None or name in (cam.name, f"{robot.name}/{cam.name}"):
                    return robot, cam
        names = [f"{r.name}/{c.name}" for r in self.robots for c in r.cameras]
        raise SpecError("camera", f"no camera {name!r} in world {self.name!r} (cameras: {', '.join(names) or 'none'})",
                        self.source)

    def avatars(self, seed: int = 0) -> list[AvatarSpec]:
        """The avatar of every human; ``avatar: random`` humans are drawn from ``seed`` (>= 0)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise SpecError("seed", f"expected a non-negative integer, got {seed!r}", self.source)
        out = []
        for i, h in enumerate(self.humans):
            if h.avatar is not None:
                out.append(h.avatar)
            else:
                a = AvatarSpec.random(1_000_003 * int(seed) + i)
                out.append(a.with_(**h.overrides))
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None, base_dir: Path | None = None) -> "WorldSpec":
        return _parse_world(data, source, base_dir or Path("."))


def load_world(path: str | Path) -> WorldSpec:
    """Load and validate a world YAML file.

    ``path`` may also name a shipped world (``active_face_room`` or
    ``active_face_room.yaml``); see :func:`shipped_worlds`.
    """
    p = Path(path)
    if not p.exists():
        shipped = Path(__file__).parent / (p.name if p.suffix else p.name + ".yaml")
        if p.parent == Path(".") and shipped.exists():
            p = shipped
        else:
            raise SpecError("world", f"file not found: {path} (shipped worlds: {', '.join(shipped_worlds())})")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise SpecError("world", f"not valid YAML: {e}", str(p)) from None
    return WorldSpec.from_dict(data, str(p), p.parent)


def shipped_worlds() -> list[str]:
    """Names of the worlds that ship with hcgym."""
    return sorted(p.stem for p in Path(__file__).parent.glob("*.yaml"))


# ------------------------------------------------------------------ parsing
def _surface(data: Any, path: str, src: str | None, base: Path, default: Surface) -> Surface:
    f = Fields(data, path, src)
    tex = None
    if f.has("texture"):
        tex = base / f.string("texture")
        if not tex.is_file():
            raise f.error("texture", f"file not found: {tex}")
    s = Surface(
        color=f.color("color", default.color),
        pattern=f.string("pattern", default.pattern, PATTERNS),
        secondary=f.color("secondary", default.secondary),
        tile_size=f.number("tile_size", default.tile_size, lo=0.01, hi=100.0),
        texture=tex,
        repeat=f.number("repeat", lo=0.5, hi=1000.0) if f.has("repeat") else default.repeat,
        cover=f.number("cover", default.cover, lo=0.05, hi=1.0),
    )
    if s.repeat is not None and s.texture is None and s.pattern in PERIODIC_PATTERNS:
        copies = s.repeat / s.period()
        if abs(copies - round(copies)) > 1e-6:
            raise f.error("repeat", f"{s.repeat:g} must be a whole multiple of the {s.pattern} period "
                                    f"({s.period():g} m) so that the copies join seamlessly")
    f.done()
    return s


def _parse_world(data: Any, src: str | None, base: Path) -> WorldSpec:
    f = Fields(data, "", src)
    name = f.string("name", Path(src).stem if src else "world")

    room = Room()
    if f.has("room"):
        rf = Fields(f.raw("room"), "room", src)
        room = Room(
            size=rf.vector("size", 2, room.size, lo=0.5, hi=1000.0),  # type: ignore[arg-type]
            wall_height=rf.number("wall_height", room.wall_height, lo=0.1, hi=50.0),
            walls=rf.boolean("walls", True),
            floor=_surface(rf.raw("floor"), "room.floor", src, base, room.floor) if rf.has("floor") else room.floor,
            wall=_surface(rf.raw("wall"), "room.wall", src, base, room.wall) if rf.has("wall") else room.wall,
            acoustics=_acoustics(Fields(rf.raw("acoustics"), "room.acoustics", src)) if rf.has("acoustics")
            else room.acoustics,
        )
        rf.done()
    half = (room.size[0] / 2, room.size[1] / 2)

    def inside(fl: Fields, key: str, xy: tuple[float, ...]) -> None:
        if abs(xy[0]) > half[0] or abs(xy[1]) > half[1]:
            raise fl.error(key, f"({xy[0]:g}, {xy[1]:g}) lies outside the room "
                                f"(x in [{-half[0]:g}, {half[0]:g}], y in [{-half[1]:g}, {half[1]:g}])")

    lights = []
    for i, item in enumerate(_list(f, "lights", [{}])):
        lf = Fields(item, f"lights[{i}]", src)
        kind = lf.string("type", "directional", ("directional",))
        del kind
        lights.append(Light(direction=lf.vector("direction", 3, Light.direction),  # type: ignore[arg-type]
                            color=lf.color("color", Light.color), intensity=lf.number("intensity", 1.0, 0.0, 10.0)))
        if all(abs(c) < 1e-9 for c in lights[-1].direction):
            raise lf.error("direction", "must not be the zero vector")
        lf.done()
    if not lights:
        raise f.error("lights", "at least one light is required")

    props = []
    for i, item in enumerate(_list(f, "props", [])):
        pf = Fields(item, f"props[{i}]", src)
        shape = pf.string("shape", choices=PROP_SHAPES)
        size = pf.vector("size", (1, 3), lo=0.01, hi=100.0)
        size3 = size * 3 if len(size) == 1 else size
        pos = pf.vector("position", (2, 3))
        inside(pf, "position", pos)
        props.append(Prop(name=pf.string("name", f"prop{i}"), shape=shape, size=size3,  # type: ignore[arg-type]
                          position=_xyz(pos), yaw=pf.number("yaw", 0.0, -360.0, 360.0),
                          color=pf.color("color", Prop.color)))
        pf.done()

    humans = []
    for i, item in enumerate(_list(f, "humans", [])):
        hf = Fields(item, f"humans[{i}]", src)
        avatar = _avatar(hf, src, base)
        # Per-human shortcuts that override the avatar's pose and expression.
        over: dict[str, Any] = {}
        if hf.has("pose"):
            over["pose"] = hf.string("pose", choices=tuple(POSES))
        if hf.has("expression"):
            e = hf.raw("expression")
            if isinstance(e, dict):
                ef = Fields(e, hf.sub("expression"), src)
                over["expression"] = ef.string("expression", choices=tuple(EXPRESSIONS))
                over["expression_intensity"] = ef.number("expression_intensity", 1.0, 0.0, 1.0)
                ef.done()
            elif isinstance(e, list):
                pass  # an expression track over time: read with the behaviour below
            elif isinstance(e, str):
                over["expression"] = hf.string("expression", choices=tuple(EXPRESSIONS))
                over["expression_intensity"] = 1.0
            else:
                raise hf.error("expression", f"expected a name, {{expression: name, expression_intensity: x}} "
                                             f"or a list of timed expressions, got {e!r}")
        if over and avatar is not None:
            avatar = avatar.with_(**over)
        pos = hf.vector("position", (2, 3))
        inside(hf, "position", pos)
        from hcgym.synthesis.motion.timeline import parse_behaviour

        behaviour = parse_behaviour(hf, pos, inside)
        heart = _heart(Fields(hf.raw("heart"), hf.sub("heart"), src)) if hf.has("heart") else None
        humans.append(Human(name=hf.string("name", f"human{i}"), avatar=avatar, position=_xyz(pos),
                            heading=hf.number("heading", 0.0, -360.0, 360.0), overrides=over, behaviour=behaviour,
                            heart=heart))
        hf.done()

    robots = []
    for i, item in enumerate(_list(f, "robots", [])):
        rf = Fields(item, f"robots[{i}]", src)
        cams = []
        for j, citem in enumerate(_list(rf, "cameras", [{}])):
            cf = Fields(citem, f"robots[{i}].cameras[{j}]", src)
            mf = Fields(cf.raw("mount", {}), f"robots[{i}].cameras[{j}].mount", src)
            mount = (mf.vector("position", 3, (0.0, 0.0, 0.0), -10.0, 10.0), mf.number("yaw", 0.0, -360.0, 360.0),
                     mf.number("pitch", 0.0, -90.0, 90.0))
            mf.done()
            cam = CameraSpec(name=cf.string("name", f"camera{j}"), width=cf.integer("width", 400, 8, 8192),
                             height=cf.integer("height", 300, 8, 8192), hfov=cf.number("hfov", 60.0, 1.0, 170.0),
                             mount_position=mount[0], mount_yaw=mount[1], mount_pitch=mount[2],  # type: ignore[arg-type]
                             near=cf.number("near", 0.03, 0.001, 10.0), far=cf.number("far", 60.0, 0.1, 10000.0))
            if cam.far <= cam.near:
                raise cf.error("far", f"must be greater than near ({cam.near:g})")
            cams.append(cam)
            cf.done()
        pos = rf.vector("position", 3, (0.0, 0.0, 1.6))
        inside(rf, "position", pos)
        mic = Robot.microphone
        if rf.has("microphone"):
            mf = Fields(rf.raw("microphone"), rf.sub("microphone"), src)
            mic = mf.vector("mount", 3, mic, -10.0, 10.0)  # type: ignore[assignment]
            mf.done()
        robots.append(Robot(name=rf.string("name", f"robot{i}"), body=rf.string("body", "drone", BODY_TYPES),
                            body_size=rf.vector("body_size", 3, Robot.body_size, 0.01, 10.0),  # type: ignore[arg-type]
                            position=pos, yaw=rf.number("yaw", 0.0, -360.0, 360.0),  # type: ignore[arg-type]
                            cameras=tuple(cams), microphone=mic))
        rf.done()

    _unique(f, "humans", [h.name for h in humans])
    _unique(f, "robots", [r.name for r in robots])
    _unique(f, "props", [p.name for p in props])
    spec = WorldSpec(name=name, room=room, lights=tuple(lights), ambient=f.number("ambient", 0.45, 0.0, 1.0),
                     background=f.color("background", (0.72, 0.76, 0.80)), props=tuple(props),
                     humans=tuple(humans), robots=tuple(robots), source=src)
    f.done()
    return spec


def _acoustics(af: Fields) -> Acoustics:
    given = [k for k in ("rt60", "absorption", "material") if af.has(k)]
    if len(given) > 1:
        raise af.error(given[1], f"give one of rt60, absorption, material, not {' and '.join(given)}")
    material = None
    if af.has("material"):
        from hcgym.synthesis.speech.room import materials

        material = af.string("material", choices=materials())
    noise = af.raw("noise_db", None)
    out = Acoustics(rt60=af.number("rt60", lo=0.05, hi=3.0) if af.has("rt60") else None,
                    absorption=af.number("absorption", lo=1e-3, hi=1.0) if af.has("absorption") else None,
                    material=material, noise_db=None if noise is None else af.number("noise_db", lo=-150.0, hi=0.0))
    af.done()
    return out


def _heart(hf: Fields) -> Heart:
    from hcgym.synthesis.ecg.checks import FS_RANGE, SNR_RANGE
    from hcgym.synthesis.ecg.rhythm import RHYTHMS

    snr = hf.raw("snr_db", Heart.snr_db)
    out = Heart(rhythm=hf.string("rhythm", Heart.rhythm, RHYTHMS),
                abnormal_share=hf.number("abnormal_share", Heart.abnormal_share, 0.0, 1.0),
                snr_db=None if snr is None else hf.number("snr_db", snr, SNR_RANGE[0], SNR_RANGE[1]),
                fs=hf.number("fs", Heart.fs, *FS_RANGE))
    hf.done()
    return out


def _avatar(hf: Fields, src: str | None, base: Path) -> AvatarSpec | None:
    raw = hf.raw("avatar", "random")
    if raw == "random":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return AvatarSpec.random(raw)
    if isinstance(raw, str):  # a file written by `hcgym avatars` (avatar.json) or a YAML/JSON spec
        p = base / raw
        if not p.is_file():
            raise hf.error("avatar", f"file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise hf.error("avatar", f"{p} is not valid YAML/JSON: {e}") from None
        if isinstance(data, dict) and "spec" in data and "key" in data:
            data = data["spec"]
        return AvatarSpec.from_dict(data, "avatar", str(p))
    return AvatarSpec.from_dict(raw, hf.sub("avatar"), src)


def _list(f: Fields, key: str, default: list[Any]) -> list[Any]:
    value = f.raw(key, default)
    if value is None:
        return []
    if not isinstance(value, list):
        raise f.error(key, f"expected a list, got {type(value).__name__}")
    return value


def _unique(f: Fields, key: str, names: list[str]) -> None:
    seen = set()
    for i, n in enumerate(names):
        if n in seen:
            raise SpecError(f"{key}[{i}].name", f"duplicate name {n!r}", f.source)
        seen.add(n)


def _xyz(v: tuple[float, ...]) -> tuple[float, float, float]:
    return (v[0], v[1], v[2] if len(v) > 2 else 0.0)
