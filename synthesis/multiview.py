"""HPID-like multi-view face sets: every person seen from a grid of pan/tilt angles, in two series.

The Head Pose Image Database (HPID, "Pointing'04"; OpenDR D3.2 section 2.4) holds 15 persons in 2 series,
each a grid of head poses (pan and tilt from -90 to +90 degrees in 15 degree steps). Here the person stands
still and the camera sits on a sphere around the head's centre (:attr:`Avatar.head_centre
<hcgym.synthesis.builder.Avatar.head_centre>`) at a fixed distance, looking at it
(:func:`hcgym.camera.orbit_pose`, the convention of README "Conventions"):

* ``pan``: the camera's azimuth from the front of the face, positive towards the person's left (the face
  then turns towards image-left);
* ``tilt``: the camera's elevation, positive above the head (looking down on the face).

The two series differ in light (direction, colour, ambient level) and expression (series 1 neutral, series 2
a mild expression), like HPID's two sessions.

:class:`MultiViewSet` holds the images in memory; :func:`render_multiview_set` renders one,
:func:`write_folder` / :func:`read_folder` store it in the one multi-view folder format,
``ROOT/<person>/<series>/<pan>/<tilt>.png`` (signed integer degrees, e.g. ``person03/2/+45/-15.png``) with an
``index.json`` of face boxes; ``hcgym generate --mode multiview`` writes the same format.
:func:`read_folder` also reads the original HPID file names (``PersonXX/personneXXSNN<tilt><pan>.jpg``,
whose tilt is the head's and is negated) for users who hold that data.

Top layer of :mod:`hcgym.synthesis`: it drives a simulator backend directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hcgym.errors import SpecError
from hcgym.worlds.spec import CameraSpec

#: Name of the world camera multi-view images are rendered with.
MULTIVIEW_CAMERA = "multiview"
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


def camera_spec(settings: MultiViewSettings) -> CameraSpec:
    """The world camera multi-view images are rendered with."""
    return CameraSpec(MULTIVIEW_CAMERA, settings.size[0], settings.size[1], settings.hfov, near=0.05, far=20.0)


def multiview_world(specs, settings: MultiViewSettings):
    """The seamless studio backdrop (floor coloured like the background) holding ``specs`` at the origin."""
    from hcgym.worlds.studio import studio_world

    light = SERIES_LIGHTS[0]
    return studio_world(specs, cameras=(camera_spec(settings),), light=light.direction, light_color=light.color,
                        ambient=light.ambient, floor=None, name="multiview")


def iter_views(sim, human: int, series: int, settings: MultiViewSettings, pans=None, tilts=None,
               ground_truth: bool = False):
    """Yield ``(i, j, frame)`` for pan ``pans[i]`` and tilt ``tilts[j]`` of human ``human`` of ``sim`` (a world
    from :func:`multiview_world`) under series ``series``'s light; the camera orbits the head centre."""
    from hcgym.camera import orbit_pose

    pans = settings.pans if pans is None else pans
    tilts = settings.tilts if tilts is None else tilts
    light = SERIES_LIGHTS[series % len(SERIES_LIGHTS)]
    sim.set_lighting(direction=light.direction, color=light.color, ambient=light.ambient)
    sim.show_only(sim.humans[human].name)
    centre = sim.humans[human].avatar.head_centre
    for i, pan in enumerate(pans):
        for j, tilt in enumerate(tilts):
            pose = orbit_pose(centre, pan, tilt, settings.distance)
            yield i, j, sim.render(MULTIVIEW_CAMERA, pose=pose, ground_truth=ground_truth)


def render_views(sim, human: int, series: int, settings: MultiViewSettings, pans=None, tilts=None,
                 boxes: np.ndarray | None = None) -> np.ndarray:
    """(len(pans), len(tilts), H, W, 3) renders of :func:`iter_views`.

    With ``boxes`` (len(pans), len(tilts), 4), the ground-truth face boxes are written into it.
    """
    pans = settings.pans if pans is None else pans
    tilts = settings.tilts if tilts is None else tilts
    w, h = settings.size
    out = np.zeros((len(pans), len(tilts), h, w, 3), dtype=np.uint8)
    for i, j, frame in iter_views(sim, human, series, settings, pans, tilts, ground_truth=boxes is not None):
        out[i, j] = frame.rgb
        if boxes is not None and frame.humans[human].face_box is not None:
            boxes[i, j] = frame.humans[human].face_box
    return out


def render_multiview_set(avatar_seeds, settings: MultiViewSettings = MultiViewSettings(),
                         progress: bool = False) -> MultiViewSet:
    """Render the HPID-like set of the given avatars (person label = ``avatar<seed>``). Deterministic."""
    from hcgym.envs.backends import make_backend
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
        with make_backend("embedded") as sim:
            sim.load(multiview_world(specs, settings))
            for series in range(2):
                images[p, series] = render_views(sim, series, series, settings, boxes=boxes[p, series])
    meta = {"avatar_seeds": seeds, "size": list(settings.size), "hfov": settings.hfov, "distance": settings.distance,
            "series2_expressions": [list(SERIES2_EXPRESSIONS[p % len(SERIES2_EXPRESSIONS)]) for p in range(len(seeds))]}
    return MultiViewSet(images, [f"avatar{s}" for s in seeds], tuple(settings.pans), tuple(settings.tilts),
                        boxes=boxes, meta=meta)


# ------------------------------------------------------------------ folders
def angle_name(v: int) -> str:
    """Folder/file name of an angle: ``+15``, ``0``, ``-15``."""
    return f"{v:+d}" if v else "0"


def view_path(person: str, series: int, pan: int, tilt: int, fmt: str = "png") -> str:
    """The relative path of one view in the multi-view folder format (``series`` counts from 1)."""
    return f"{person}/{series}/{angle_name(pan)}/{angle_name(tilt)}.{fmt}"


def write_folder(data: MultiViewSet, root: str | Path) -> Path:
    """Write ``ROOT/<person>/<series>/<pan>/<tilt>.png`` (series from 1) and ``ROOT/index.json`` (grid, face
    boxes); each file via a temporary name."""
    import io
    import json

    from PIL import Image

    from hcgym.paths import atomic_write_bytes

    root = Path(root)
    images = []
    for p, person in enumerate(data.persons):
        for s in range(data.n_series):
            for i, pan in enumerate(data.pans):
                for j, tilt in enumerate(data.tilts):
                    if not data.present[p, s, i, j]:
                        continue
                    buf = io.BytesIO()
                    Image.fromarray(data.images[p, s, i, j]).save(buf, format="PNG")
                    rel = view_path(person, s + 1, pan, tilt)
                    atomic_write_bytes(root / rel, buf.getvalue())
                    box = data.boxes[p, s, i, j]
                    images.append({"file": rel, "person": person, "series": s + 1, "pan": pan, "tilt": tilt,
                                   "face_box": [round(float(v), 2) for v in box] if np.isfinite(box).all() else None})
    index = {"format": INDEX_FORMAT, "pans": list(data.pans), "tilts": list(data.tilts), "images": images}
    atomic_write_bytes(root / "index.json", json.dumps(index, separators=(",", ":")).encode())
    return root


#: ``format`` of a multi-view folder's ``index.json``.
INDEX_FORMAT = "hcgym-multiview-1"
_HPID_NAME = re.compile(r"^personne(\d\d)(\d)(\d\d)([+-]\d+)([+-]\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
_INT = re.compile(r"^[+-]?\d+$")
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp")


def _scan(root: Path) -> dict[tuple[str, int, int, int], Path]:
    """Every view under ``root``: (person, series, pan, tilt) -> file, in the camera convention."""
    found: dict[tuple[str, int, int, int], Path] = {}
    for person_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for f in sorted(person_dir.iterdir()):
            m = _HPID_NAME.match(f.name)
            if f.is_file() and m:  # HPID names the head's tilt (up > 0): the camera is below, tilt < 0
                found[(person_dir.name, int(m.group(2)), int(m.group(5)), -int(m.group(4)))] = f
            elif f.is_dir() and f.name.isdigit():
                for pan_dir in (d for d in f.iterdir() if d.is_dir() and _INT.match(d.name)):
                    for img in pan_dir.iterdir():
                        if img.suffix.lower() in _IMAGE_EXT and _INT.match(img.stem):
                            found[(person_dir.name, int(f.name), int(pan_dir.name), int(img.stem))] = img
    return found


def _index_boxes(root: Path) -> dict[Path, list[float]]:
    """Face boxes by file from ``ROOT/index.json`` (the folders hcgym writes), if there is one."""
    import json

    path = root / "index.json"
    if not path.is_file():
        return {}
    try:
        images = json.loads(path.read_text())["images"]
        return {(root / im["file"]).resolve(): im["face_box"] for im in images if im.get("face_box") is not None}
    except (ValueError, KeyError, TypeError) as e:
        raise SpecError("dataset", f"{path} is not a multi-view index ({e})") from e


def read_folder(root: str | Path, pans=None, tilts=None) -> MultiViewSet:
    """Read a multi-view folder. Layouts:

    * ``ROOT/<person>/<series>/<pan>/<tilt>.<png|jpg>`` (:func:`write_folder`, ``hcgym generate --mode multiview``,
      whose output folder may also be given: its ``multiview/`` subfolder is read), with an optional
      ``index.json`` holding face boxes;
    * the original HPID layout ``ROOT/PersonXX/personneXX<series><nn><tilt><pan>.jpg``, where the tilt is the
      head's (positive: looking up) and is converted to the camera convention (positive: camera above).

    Only views on the (pans, tilts) grid are kept (default: every angle found); images are resized to the size
    of the first one.
    """
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise SpecError("dataset", f"not a folder: {root}")
    if (root / "multiview" / "index.json").is_file():
        root = root / "multiview"
    found = _scan(root)
    if not found:
        raise SpecError("dataset", f"no multi-view images in {root} (expected <person>/<series>/<pan>/<tilt>.png "
                                   "or HPID's PersonXX/personneXX<series><nn><tilt><pan>.jpg)")
    known = _index_boxes(root)
    persons = sorted({k[0] for k in found})
    series = sorted({k[1] for k in found})
    pans = tuple(sorted({k[2] for k in found})) if pans is None else tuple(int(p) for p in pans)
    tilts = tuple(sorted({k[3] for k in found})) if tilts is None else tuple(int(t) for t in tilts)
    first = next(iter(sorted(found.values())))
    w, h = Image.open(first).size
    images = np.zeros((len(persons), len(series), len(pans), len(tilts), h, w, 3), dtype=np.uint8)
    present = np.zeros(images.shape[:4], dtype=bool)
    boxes = np.full((*images.shape[:4], 4), np.nan)
    for (person, s, pan, tilt), path in found.items():
        if pan not in pans or tilt not in tilts:
            continue
        im = Image.open(path).convert("RGB")
        idx = (persons.index(person), series.index(s), pans.index(pan), tilts.index(tilt))
        box = known.get(path.resolve())
        if box is not None:
            boxes[idx] = np.asarray(box, dtype=np.float64) * np.tile([w / im.size[0], h / im.size[1]], 2)
        if im.size != (w, h):
            im = im.resize((w, h))
        images[idx] = np.asarray(im)
        present[idx] = True
    return MultiViewSet(images, persons, pans, tilts, present, boxes, meta={"folder": str(root), "series": series})


__all__ = ["INDEX_FORMAT", "MULTIVIEW_CAMERA", "MultiViewSet", "MultiViewSettings", "SERIES_LIGHTS", "camera_spec",
           "iter_views", "multiview_world", "read_folder", "render_multiview_set", "render_views", "series_specs",
           "view_path", "write_folder"]
