"""HPID-like multi-view face sets: every person seen from a grid of pan/tilt angles, in two series.

The Head Pose Image Database (HPID, "Pointing'04"; OpenDR D3.2 section 2.4) holds 15 persons in 2 series,
each a grid of head poses (pan and tilt from -90 to +90 degrees in 15 degree steps). Here the person stands
still and the camera sits on a sphere around the head's centre (:data:`HEAD_CENTRE_BEHIND_EYES` behind the
eye midpoint) at a fixed distance, looking at it:

* ``pan``: the camera's azimuth from the front of the face, positive towards the person's left (the face
  then turns towards image-left);
* ``tilt``: the camera's elevation, positive above the head (looking down on the face).

The two series differ in light (direction, colour, ambient level) and expression (series 1 neutral, series 2
a mild expression), like HPID's two sessions.

:class:`MultiViewSet` holds the images in memory; :func:`render_multiview_set` renders one,
:func:`write_folder` / :func:`read_folder` store it as ``ROOT/<person>/<series>/<pan>/<tilt>.png`` (signed
integer degrees, e.g. ``person03/2/+45/-15.png``). :func:`read_folder` also reads the original HPID file
names (``PersonXX/personneXXSNN<tilt><pan>.jpg``) for users who hold that data.

Top layer of :mod:`hcgym.synthesis`: it drives a simulator backend directly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hcgym.errors import SpecError

#: Distance (metres, along the face's forward axis) from the eye midpoint back to the centre of the camera sphere.
HEAD_CENTRE_BEHIND_EYES = 0.08
#: Mild expressions of series 2 (name, intensity), assigned to persons in turn.
SERIES2_EXPRESSIONS = (("happy", 0.45), ("surprise", 0.35), ("sad", 0.45), ("angry", 0.35), ("disgust", 0.3))


@dataclass(frozen=True)
class SeriesLight:
    """The light of one series (see :meth:`hcgym.envs.backends.base.SimBackend.set_lighting`)."""

    direction: tuple[float, float, float]
    color: tuple[float, float, float]
    ambient: float


#: Series 1: neutral face, white light from the upper right of the person; series 2: warmer, from the left.
SERIES_LIGHTS = (SeriesLight((-0.3, 0.6, -0.8), (1.0, 1.0, 1.0), 0.5),
                 SeriesLight((0.5, 0.5, -0.7), (1.0, 0.9, 0.78), 0.38))


@dataclass(frozen=True)
class MultiViewSettings:
    """Camera grid and image format of a multi-view set (degrees, metres, pixels)."""

    pans: tuple[int, ...] = tuple(range(-90, 91, 15))
    tilts: tuple[int, ...] = tuple(range(-30, 31, 15))
    size: tuple[int, int] = (384, 288)  #: HPID's image size (width, height).
    hfov: float = 30.0  #: horizontal field of view: the face is about 130 pixels wide at 1 m.
    distance: float = 1.0

    def __post_init__(self) -> None:
        for name in ("pans", "tilts"):
            vals = getattr(self, name)
            if not vals or len(set(vals)) != len(vals) or any(abs(v) > 90 for v in vals):
                raise SpecError(name, f"expected distinct angles in [-90, 90] degrees, got {vals!r}")
        if self.size[0] < 32 or self.size[1] < 32:
            raise SpecError("size", f"expected at least 32x32 pixels, got {self.size!r}")
        if not 0 < self.hfov < 120:
            raise SpecError("hfov", f"expected 0 < hfov < 120 degrees, got {self.hfov!r}")
        if not self.distance > 0.2:
            raise SpecError("distance", f"expected more than 0.2 m, got {self.distance!r}")


@dataclass
class MultiViewSet:
    """Multi-view face images: ``images[p, s, i, j]`` is person ``p``, series ``s``, pan ``pans[i]``, tilt ``tilts[j]``.

    Attributes:
        images: (P, S, len(pans), len(tilts), H, W, 3) uint8 RGB (a missing view is all zeros, see ``present``).
        persons: P person labels.
        pans, tilts: the angle grid (degrees).
        present: (P, S, len(pans), len(tilts)) bool, which views exist.
        boxes: (P, S, len(pans), len(tilts), 4) ground-truth face boxes ``[x0, y0, x1, y1]`` (NaN: unknown;
            rendered sets have them, folders do not).
        meta: free-form provenance (avatar seeds, settings).
    """

    images: np.ndarray
    persons: list[str]
    pans: tuple[int, ...]
    tilts: tuple[int, ...]
    present: np.ndarray | None = None
    boxes: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.present is None:
            self.present = np.ones(self.images.shape[:4], dtype=bool)
        if self.boxes is None:
            self.boxes = np.full((*self.images.shape[:4], 4), np.nan)

    @property
    def n_series(self) -> int:
        return int(self.images.shape[1])

    def index(self, pan: int, tilt: int) -> tuple[int, int]:
        """Grid indices of (pan, tilt); raises :class:`SpecError` when the angle is not on the grid."""
        if pan not in self.pans:
            raise SpecError("pan", f"{pan} is not on the grid {list(self.pans)}")
        if tilt not in self.tilts:
            raise SpecError("tilt", f"{tilt} is not on the grid {list(self.tilts)}")
        return self.pans.index(pan), self.tilts.index(tilt)

    def image(self, person: int, series: int, pan: int, tilt: int) -> np.ndarray:
        i, j = self.index(pan, tilt)
        if not self.present[person, series, i, j]:
            raise SpecError("view", f"no image of person {self.persons[person]!r}, series {series + 1}, "
                                    f"pan {pan}, tilt {tilt}")
        return self.images[person, series, i, j]

    def box(self, person: int, series: int, pan: int, tilt: int) -> np.ndarray | None:
        """The ground-truth face box of a view, or ``None`` when unknown."""
        b = self.boxes[(person, series, *self.index(pan, tilt))]
        return None if not np.isfinite(b).all() else b

    def subset(self, persons: list[int]) -> "MultiViewSet":
        """The set restricted to some persons (by index)."""
        idx = list(persons)
        return MultiViewSet(self.images[idx], [self.persons[i] for i in idx], self.pans, self.tilts,
                            self.present[idx], self.boxes[idx], dict(self.meta))


# ------------------------------------------------------------------ rendering
def series_specs(seed: int, index: int = 0):
    """The avatar specs of series 1 (neutral) and 2 (a mild expression) of avatar ``seed``."""
    from hcgym.synthesis.avatar_spec import AvatarSpec

    base = AvatarSpec.random(int(seed))
    name, k = SERIES2_EXPRESSIONS[index % len(SERIES2_EXPRESSIONS)]
    return [base, base.with_(expression=name, expression_intensity=k)]


def head_centre(avatar) -> np.ndarray:
    """Centre of the camera sphere for an avatar at the origin facing -y (metres, avatar frame)."""
    eyes = (avatar.face_points["left_eye"] + avatar.face_points["right_eye"]) / 2
    return eyes + np.array([0.0, HEAD_CENTRE_BEHIND_EYES, 0.0])


def sphere_pose(avatar, pan: float, tilt: float, distance: float = 1.0):
    """The camera pose at (pan, tilt) degrees on the sphere around the head of an avatar at the origin facing -y."""
    from hcgym.envs.backends.base import CameraPose
    from hcgym.geometry import look_at_angles

    c = head_centre(avatar)
    az, el = math.radians(pan - 90.0), math.radians(tilt)
    eye = c + distance * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    return CameraPose.from_angles(eye, *look_at_angles(eye, c))


def backdrop_world(specs, settings: MultiViewSettings):
    """A plain world (floor coloured like the background) holding ``specs`` at the origin, facing -y."""
    from hcgym.worlds.spec import WorldSpec

    bg = [0.74, 0.76, 0.79]
    light = SERIES_LIGHTS[0]
    data = {
        "name": "multiview", "room": {"size": [12.0, 12.0], "walls": False, "floor": {"color": bg, "pattern": "plain"}},
        "lights": [{"direction": list(light.direction), "color": list(light.color)}], "ambient": light.ambient,
        "background": bg,
        "humans": [{"name": f"h{i}", "avatar": s.to_dict(), "position": [0.0, 0.0], "heading": -90}
                   for i, s in enumerate(specs)],
        "robots": [{"name": "cam", "body": "none", "position": [0.0, -1.0, 1.6],
                    "cameras": [{"name": "cam", "width": settings.size[0], "height": settings.size[1],
                                 "hfov": settings.hfov}]}],
    }
    return WorldSpec.from_dict(data, "multiview")


def render_views(sim, human: int, series: int, settings: MultiViewSettings, pans=None, tilts=None,
                 boxes: np.ndarray | None = None) -> np.ndarray:
    """(len(pans), len(tilts), H, W, 3) renders of human ``human`` of ``sim`` under series ``series``'s light.

    With ``boxes`` (len(pans), len(tilts), 4), the ground-truth face boxes are written into it.
    """
    from hcgym.types import CameraIntrinsics

    pans = settings.pans if pans is None else pans
    tilts = settings.tilts if tilts is None else tilts
    light = SERIES_LIGHTS[series % len(SERIES_LIGHTS)]
    sim.set_lighting(direction=light.direction, color=light.color, ambient=light.ambient)
    sim.show_only(sim.humans[human].name)
    intr = CameraIntrinsics.from_hfov(settings.size[0], settings.size[1], settings.hfov, 0.05, 20.0)
    avatar = sim.humans[human].avatar
    w, h = settings.size
    out = np.zeros((len(pans), len(tilts), h, w, 3), dtype=np.uint8)
    for i, pan in enumerate(pans):
        for j, tilt in enumerate(tilts):
            frame = sim.render(pose=sphere_pose(avatar, pan, tilt, settings.distance), intrinsics=intr,
                               ground_truth=boxes is not None)
            out[i, j] = frame.rgb
            if boxes is not None and frame.humans[human].face_box is not None:
                boxes[i, j] = frame.humans[human].face_box
    return out


def render_multiview_set(avatar_seeds, settings: MultiViewSettings = MultiViewSettings(),
                         progress: bool = False) -> MultiViewSet:
    """Render the HPID-like set of the given avatars (person label = ``avatar<seed>``). Deterministic."""
    from hcgym.envs.backends.embedded import EmbeddedBackend
    from hcgym.synthesis.builder import build_avatar

    seeds = [int(s) for s in avatar_seeds]
    w, h = settings.size
    images = np.zeros((len(seeds), 2, len(settings.pans), len(settings.tilts), h, w, 3), dtype=np.uint8)
    boxes = np.full((*images.shape[:4], 4), np.nan)
    it = list(enumerate(seeds))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="multi-view persons", unit="person")
    for p, seed in it:
        specs = series_specs(seed, p)
        for s in specs:
            build_avatar(s)
        with EmbeddedBackend() as sim:
            sim.load(backdrop_world(specs, settings))
            for series in range(2):
                images[p, series] = render_views(sim, series, series, settings, boxes=boxes[p, series])
    meta = {"avatar_seeds": seeds, "size": list(settings.size), "hfov": settings.hfov, "distance": settings.distance,
            "series2_expressions": [list(SERIES2_EXPRESSIONS[p % len(SERIES2_EXPRESSIONS)]) for p in range(len(seeds))]}
    return MultiViewSet(images, [f"avatar{s}" for s in seeds], tuple(settings.pans), tuple(settings.tilts),
                        boxes=boxes, meta=meta)


# ------------------------------------------------------------------ folders
def _angle(v: int) -> str:
    return f"{v:+d}" if v else "0"


def write_folder(data: MultiViewSet, root: str | Path) -> Path:
    """Write ``ROOT/<person>/<series>/<pan>/<tilt>.png`` (series from 1); each file via a temporary name."""
    import io

    from PIL import Image

    from hcgym.paths import atomic_write_bytes

    root = Path(root)
    for p, person in enumerate(data.persons):
        for s in range(data.n_series):
            for i, pan in enumerate(data.pans):
                for j, tilt in enumerate(data.tilts):
                    if not data.present[p, s, i, j]:
                        continue
                    buf = io.BytesIO()
                    Image.fromarray(data.images[p, s, i, j]).save(buf, format="PNG")
                    atomic_write_bytes(root / person / str(s + 1) / _angle(pan) / f"{_angle(tilt)}.png", buf.getvalue())
    return root


_HPID_NAME = re.compile(r"^personne(\d\d)(\d)(\d\d)([+-]\d+)([+-]\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
_INT = re.compile(r"^[+-]?\d+$")
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp")


def read_folder(root: str | Path, pans=None, tilts=None) -> MultiViewSet:
    """Read a multi-view folder: ``ROOT/<person>/<series>/<pan>/<tilt>.<png|jpg>`` or the original HPID layout
    (``ROOT/PersonXX/personneXX<series><nn><tilt><pan>.jpg``). Only views on the (pans, tilts) grid are kept
    (default: every angle found); images are resized to the size of the first one."""
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise SpecError("dataset", f"not a folder: {root}")
    found: dict[tuple[str, int, int, int], Path] = {}
    for person_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for f in sorted(person_dir.iterdir()):
            m = _HPID_NAME.match(f.name)
            if f.is_file() and m:
                found[(person_dir.name, int(m.group(2)), int(m.group(5)), int(m.group(4)))] = f
            elif f.is_dir() and f.name.isdigit():
                for pan_dir in (d for d in f.iterdir() if d.is_dir() and _INT.match(d.name)):
                    for img in pan_dir.iterdir():
                        if img.suffix.lower() in _IMAGE_EXT and _INT.match(img.stem):
                            found[(person_dir.name, int(f.name), int(pan_dir.name), int(img.stem))] = img
    if not found:
        raise SpecError("dataset", f"no multi-view images in {root} (expected <person>/<series>/<pan>/<tilt>.png "
                                   "or HPID's PersonXX/personneXX<series><nn><tilt><pan>.jpg)")
    persons = sorted({k[0] for k in found})
    series = sorted({k[1] for k in found})
    pans = tuple(sorted({k[2] for k in found})) if pans is None else tuple(int(p) for p in pans)
    tilts = tuple(sorted({k[3] for k in found})) if tilts is None else tuple(int(t) for t in tilts)
    first = next(iter(sorted(found.values())))
    w, h = Image.open(first).size
    images = np.zeros((len(persons), len(series), len(pans), len(tilts), h, w, 3), dtype=np.uint8)
    present = np.zeros(images.shape[:4], dtype=bool)
    for (person, s, pan, tilt), path in found.items():
        if pan not in pans or tilt not in tilts:
            continue
        im = Image.open(path).convert("RGB")
        if im.size != (w, h):
            im = im.resize((w, h))
        idx = (persons.index(person), series.index(s), pans.index(pan), tilts.index(tilt))
        images[idx] = np.asarray(im)
        present[idx] = True
    return MultiViewSet(images, persons, pans, tilts, present, meta={"folder": str(root), "series": series})


__all__ = ["MultiViewSet", "MultiViewSettings", "render_multiview_set", "render_views", "sphere_pose", "head_centre",
           "series_specs", "write_folder", "read_folder", "backdrop_world", "SERIES_LIGHTS"]
