"""Random choices of the scene generator: people, cameras, placements, light and splits.

Pure numpy (no rendering). Every function takes a ``numpy.random.Generator``;
the generator of image ``i`` is :func:`image_rng` ``(seed, i)``, so an image
depends only on the seed, its index and the config, never on which worker or
shard renders it.

Conventions: metres and degrees; world z up; a person's placement is the feet
position on the ground (z = 0) and the heading it faces (0 = +x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hcgym.geometry import RadialDistortion
from hcgym.synthesis.avatar_spec import AvatarSpec
from hcgym.synthesis.expressions import EXPRESSIONS
from hcgym.types import CameraIntrinsics

#: Named poses and how often a variant uses them.
POSE_WEIGHTS: dict[str, float] = {"stand": 0.4, "a_pose": 0.15, "wave": 0.15, "point": 0.12, "arms_up": 0.1,
                                  "t_pose": 0.08}
#: Bone -> largest random extra rotation (degrees, per axis) added to the named pose.
POSE_JITTER: dict[str, float] = {"upperarm01.L": 20.0, "upperarm01.R": 20.0, "lowerarm01.L": 10.0,
                                 "lowerarm01.R": 10.0, "spine03": 6.0, "neck01": 10.0, "head": 10.0,
                                 "upperleg01.L": 8.0, "upperleg01.R": 8.0}
#: Height (above the feet) of the point that must project inside the image: about the pelvis.
VIEW_ANCHOR_HEIGHT = 0.9
#: Lift of the feet above the ground plane (avoids depth ties between soles and floor).
FEET_LIFT = 0.002
_SPLIT_STEP = 0.6180339887498949  # golden ratio conjugate
#: Step of the empty-image sequence: sqrt(2) - 1, rationally independent of the split step, so empty
#: images spread evenly over the splits.
_EMPTY_STEP = 0.41421356237309515


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of image (or item) ``index``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x5CE7E, int(index)]))


def identity_seed(seed: int, identity: int) -> int:
    """Avatar seed (:meth:`AvatarSpec.random`) of pool identity ``identity`` of dataset ``seed``."""
    return int(np.random.SeedSequence([int(seed), 0x1D, int(identity)]).generate_state(1)[0])


def split_of(index: int, fractions: tuple[float, float, float]) -> int:
    """Split (0 train, 1 val, 2 test) of image ``index``: a low-discrepancy sequence, so every prefix
    of the dataset keeps the fractions closely (and no split depends on the shard layout)."""
    u = (index * _SPLIT_STEP) % 1.0
    edge = 0.0
    for k, f in enumerate(fractions):
        edge += f
        if u < edge:
            return k
    return len(fractions) - 1


def is_empty(seed: int, index: int, fraction: float) -> bool:
    """Whether image ``index`` shows nobody: a low-discrepancy sequence with a seed-dependent start, so
    every prefix of the dataset holds ``fraction`` of empty images to within a few images (the error
    grows like the logarithm of the prefix length), and every split holds about that fraction too."""
    if fraction <= 0.0:
        return False
    start = np.random.SeedSequence([int(seed), 0xE3]).generate_state(1)[0] / 2.0 ** 32
    return (start + index * _EMPTY_STEP) % 1.0 < fraction


def variant_spec(seed: int, identity: int, variant: int) -> AvatarSpec:
    """Pose and expression variant ``variant`` of pool identity ``identity`` (same person, same clothes)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7A41, int(identity), int(variant)]))
    base = AvatarSpec.random(identity_seed(seed, identity))
    names = list(POSE_WEIGHTS)
    p = np.asarray([POSE_WEIGHTS[k] for k in names])
    pose = str(names[int(rng.choice(len(names), p=p / p.sum()))])
    jitter = {bone: tuple(round(float(x), 2) for x in rng.uniform(-a, a, 3)) for bone, a in POSE_JITTER.items()}
    exprs = list(EXPRESSIONS)
    expression = "neutral" if rng.random() < 0.3 else str(exprs[int(rng.integers(len(exprs)))])
    return base.with_(pose=pose, bone_rotations=jitter, expression=expression,
                      expression_intensity=round(float(rng.uniform(0.3, 1.0)), 3))


def sample_people(rng: np.random.Generator, humans: tuple[int, int], identities: int,
                  variants: int) -> list[tuple[int, int]]:
    """(identity, variant) of the people of one image: distinct identities, count in ``humans``."""
    k = int(rng.integers(humans[0], humans[1] + 1))
    ids = rng.choice(identities, size=k, replace=False)
    return [(int(i), int(rng.integers(variants))) for i in ids]


# ------------------------------------------------------------------ cameras
@dataclass(frozen=True)
class CameraSample:
    """A camera: ``position`` (3,) metres, ``yaw``/``pitch`` degrees, the pinhole model, an optional
    radial ``lens`` distortion (the image is the pinhole image seen through it) and a ``roll`` (degrees,
    about the viewing direction: positive turns the camera's right axis towards its down axis, so the scene
    turns anticlockwise in the image)."""

    position: tuple[float, float, float]
    yaw: float
    pitch: float
    intrinsics: CameraIntrinsics
    lens: RadialDistortion | None = None
    roll: float = 0.0

    @property
    def half_hfov(self) -> float:
        """Half the horizontal field of view (radians), of the lens where there is one."""
        if self.lens is None or self.lens.is_identity:
            return math.radians(self.intrinsics.hfov_deg) / 2
        r = float(self.lens.undistort_radius(np.array([self.intrinsics.width / (2.0 * self.intrinsics.fx)]))[0])
        return math.atan(r if math.isfinite(r) else self.lens.max_radius)

    def rotation(self) -> np.ndarray:
        """Camera-to-world rotation (columns: the camera's right, down and forward axes), rolled by ``roll``."""
        from hcgym.geometry import camera_rotation

        r = camera_rotation(self.yaw, self.pitch)
        if not self.roll:
            return r
        c, s = math.cos(math.radians(self.roll)), math.sin(math.radians(self.roll))
        return r @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def world_to_camera(self) -> np.ndarray:
        from hcgym.geometry import world_to_camera

        return world_to_camera(np.asarray(self.position), self.rotation())

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world points -> (N, 2) pixels and (N,) depths (``nan`` pixels behind the camera)."""
        from hcgym.geometry import project

        return project(points, self.world_to_camera(), self.intrinsics.matrix, self.lens)


@dataclass(frozen=True)
class Ground:
    """Where feet may go: ``half`` extents (x, y) of the walkable area around the origin (``None``:
    unbounded) and circular ``obstacles`` (x, y, radius) such as props."""

    half: tuple[float, float] | None = None
    obstacles: tuple[tuple[float, float, float], ...] = ()
    _table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table", np.asarray(self.obstacles, dtype=np.float64).reshape(-1, 3))

    def free(self, x: float, y: float, r: float) -> bool:
        """Whether a disc of radius ``r`` at ``(x, y)`` lies inside the area and clear of every obstacle."""
        if self.half is not None and (abs(x) > self.half[0] - r or abs(y) > self.half[1] - r):
            return False
        t = self._table
        return bool(np.all(np.hypot(x - t[:, 0], y - t[:, 1]) >= r + t[:, 2]))

    @property
    def far(self) -> float:
        """A far clipping distance (metres) that sees the whole area from anywhere in it (at least 80)."""
        return max(80.0, 2.0 * math.hypot(*self.half)) if self.half is not None else 80.0


def ground_of_world(world) -> Ground:
    """The walkable floor of a :class:`~hcgym.worlds.WorldSpec`: its room minus its props."""
    obstacles = tuple((p.position[0], p.position[1], math.hypot(p.size[0], p.size[1]) / 2 + 0.05)
                      for p in world.props)
    margin = 0.1 if world.room.walls else 0.0
    return Ground(half=(world.room.size[0] / 2 - margin, world.room.size[1] / 2 - margin), obstacles=obstacles)


def sample_camera(rng: np.random.Generator, ground: Ground, size: tuple[int, int], height: tuple[float, float],
                  pitch: tuple[float, float], hfov: tuple[float, float], min_view: float,
                  lens: RadialDistortion | None = None) -> CameraSample:
    """A camera standing on ``ground`` (clear of obstacles) that sees at least ``min_view`` metres of
    free floor straight ahead. ``hfov`` sets the focal length; a ``lens`` distorts that pinhole."""
    h = float(rng.uniform(*height))
    p = float(rng.uniform(*pitch))
    fov = float(rng.uniform(*hfov))
    intr = CameraIntrinsics.from_hfov(size[0], size[1], fov, near=0.05, far=ground.far)
    half = ground.half or (20.0, 20.0)
    for _ in range(64):
        x, y = (float(v) for v in rng.uniform(-0.8, 0.8, 2) * np.asarray(half))
        yaw = float(rng.uniform(-180.0, 180.0))
        ahead = (x + min_view * math.cos(math.radians(yaw)), y + min_view * math.sin(math.radians(yaw)))
        if ground.free(x, y, 0.4) and ground.free(*ahead, 0.3):
            return CameraSample((x, y, h), yaw, p, intr, lens)
    return CameraSample((0.0, 0.0, h), float(rng.uniform(-180.0, 180.0)), p, intr, lens)


# ---------------------------------------------------------------- placement
@dataclass(frozen=True)
class Placement:
    """Where one person stands: ``position`` (x, y, z) of the feet, ``heading`` degrees, and the
    ``radius`` of the vertical cylinder around the feet that bounds the whole body."""

    position: tuple[float, float, float]
    heading: float
    radius: float


def place_people(rng: np.random.Generator, radii: list[float], camera: CameraSample, ground: Ground,
                 distance: tuple[float, float], occlusion: float, gap: float,
                 feet_rows: tuple[float, float] | None = None, tries: int = 40,
                 anchor_height: float = VIEW_ANCHOR_HEIGHT, facing: float | None = None) -> list[Placement | None]:
    """Stand people of the given body ``radii`` on the ground in front of ``camera``.

    Constraints: feet on the ground plane inside ``ground``; bounding cylinders at least ``gap``
    apart (no interpenetration) and clear of the camera; the point ``anchor_height`` metres above the feet
    (default: the pelvis) projects inside the image; with
    ``feet_rows`` the feet project between those image rows. With probability ``occlusion`` a person
    is put right behind one already placed. Headings are uniform, or with ``facing`` (degrees) within
    that much of the direction to the camera. Returns one entry per radius, ``None`` where no spot was
    found in ``tries`` attempts.
    """
    w, h = camera.intrinsics.width, camera.intrinsics.height
    half_fov = camera.half_hfov
    cx, cy = camera.position[0], camera.position[1]
    yaw = math.radians(camera.yaw)
    placed: list[tuple[float, float, float, float, float]] = []  # x, y, r, bearing, distance
    out: list[Placement | None] = []
    lo, hi = math.log(distance[0]), math.log(distance[1])
    for r in radii:
        found = None
        for _ in range(tries):
            if placed and rng.random() < occlusion:
                ax, ay, ar, ab, ad = placed[int(rng.integers(len(placed)))]
                bearing = ab + float(rng.uniform(-1.0, 1.0)) * ar / max(ad, 1e-3)
                d = ad + ar + r + gap + float(rng.uniform(0.0, 1.5))
            else:
                bearing = float(rng.uniform(-0.9, 0.9)) * half_fov
                d = math.exp(float(rng.uniform(lo, hi)))
            x, y = cx + d * math.cos(yaw + bearing), cy + d * math.sin(yaw + bearing)
            if d < r + 0.6 or not ground.free(x, y, r):
                continue
            if any(math.hypot(x - px, y - py) < r + pr + gap for px, py, pr, _, _ in placed):
                continue
            uv, z = camera.project(np.array([[x, y, anchor_height], [x, y, 0.0]]))
            if not (z[0] > 0 and 0 <= uv[0, 0] < w and 0 <= uv[0, 1] < h):
                continue
            if feet_rows is not None and not (z[1] > 0 and feet_rows[0] <= uv[1, 1] <= feet_rows[1]):
                continue
            found = (x, y, bearing, d)
            break
        if found is None:
            out.append(None)
            continue
        x, y, bearing, d = found
        placed.append((x, y, r, bearing, d))
        if facing is None:
            heading = float(rng.uniform(-180, 180))
        else:
            heading = math.degrees(math.atan2(cy - y, cx - x)) + float(rng.uniform(-facing, facing))
            heading = (heading + 180.0) % 360.0 - 180.0
        out.append(Placement((round(x, 4), round(y, 4), FEET_LIFT), round(heading, 2), r))
    return out


# -------------------------------------------------------------------- light
@dataclass(frozen=True)
class LightSample:
    """Main light ``direction`` (from the light into the scene), ``color`` RGB in [0, 1], ``ambient``."""

    direction: tuple[float, float, float]
    color: tuple[float, float, float]
    intensity: float
    ambient: float


def sample_light(rng: np.random.Generator) -> LightSample:
    az, el = math.radians(rng.uniform(-180, 180)), math.radians(rng.uniform(35, 75))
    d = (math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), -math.sin(el))
    warm = float(rng.uniform(-0.1, 0.1))
    color = (1.0, min(1.0, 1.0 - abs(warm) * 0.5 + warm * 0.3), min(1.0, 1.0 - warm))
    return LightSample(tuple(round(v, 4) for v in d), tuple(round(v, 4) for v in color),  # type: ignore[arg-type]
                       round(float(rng.uniform(0.85, 1.1)), 3), round(float(rng.uniform(0.35, 0.65)), 3))
