"""Scenario sweeps of the sensor bench: a grid of studio scenes, every cell scored by the bench's own scorers.

The grid varies where a face is relative to the camera. ``--sweep`` text: axes separated by commas, each
``name=start:stop:step`` (stop included), ``name=v1,v2,...`` (a list) or ``name=v``::

    distance=1:10:1,yaw=-90:90:15        10 x 13 cells
    distance=2,yaw=0,45,90,pitch=-20:20:10

=========  ====  =========================================================================  =======  ==========
axis       unit  meaning                                                                    default  allowed
=========  ====  =========================================================================  =======  ==========
distance   m     camera to the face centre                                                  1        0.3 .. 50
yaw        deg   face yaw relative to the camera (0 facing it, + camera on the person's     0        -180 .. 180
                 left: ``HumanTruth.face_yaw``)
pitch      deg   camera elevation above the face (+ looks down at it)                       0        -60 .. 60
=========  ====  =========================================================================  =======  ==========

Scene of a cell: the studio world (:func:`hcgym.worlds.studio.studio_world`: plain floor and backdrop, one
light) holding ``per_cell`` avatars, by default the held-out identities of the seed
(:func:`hcgym.synthesis.face_sets.held_out_identities`, disjoint from every training range) and the same in
every cell, so cells differ by their grid values only. Each avatar is shown alone in one frame, seen by a
camera (640x480, horizontal field of view 60 degrees by default) ``distance`` m from its face centre at
``yaw`` and ``pitch``, aimed at the face (:func:`hcgym.camera.orbit_pose`; pitch 0 puts the camera at the
height of the face). The frames carry the ground truth (``Frame.humans``), and every sensor of the sweep is
scored on the same frames by :func:`hcgym.perception.bench.run` unchanged.

Jobs: the cells in chunks (:class:`SweepJob`), run by :func:`run_sweep_job` on the dataset generator's
engines (:func:`hcgym.synthesis.dataset.engines.run`: in this process, a local process pool or Ray). A worker
process loads the studio once and keeps it for its next jobs. A cell's frames and metrics depend only on the
config and its grid values, never on the engine, the workers or the chunking; latency is measured wherever
the job ran. Top layer of synthesis: it drives a backend and sensors, never an env.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.types import VISIBLE, Frame


@dataclass(frozen=True)
class Axis:
    """One grid axis: ``name``, ``unit``, what it means, allowed ``low`` .. ``high`` and its ``default``."""

    name: str
    unit: str
    meaning: str
    low: float
    high: float
    default: float


#: The grid axes, in the order their defaults are listed.
AXES: dict[str, Axis] = {a.name: a for a in (
    Axis("distance", "m", "camera to the face centre", 0.3, 50.0, 1.0),
    Axis("yaw", "deg", "face yaw relative to the camera (0 facing it, + camera on the person's left)",
         -180.0, 180.0, 0.0),
    Axis("pitch", "deg", "camera elevation above the face (+ looks down at it)", -60.0, 60.0, 0.0),
)}
#: Most cells a sweep may have.
MAX_CELLS = 5000
#: Cells per job (fewer when that leaves a worker without a job).
CELLS_PER_JOB = 10
#: The studio camera's name.
CAMERA = "cam"
Grid = tuple[tuple[str, tuple[float, ...]], ...]


# ------------------------------------------------------------------ the grid
def _number(text: str, axis: Axis) -> float:
    try:
        v = float(text)
    except ValueError:
        raise SpecError("--sweep", f"{axis.name}: expected a number, got {text.strip()!r}") from None
    if not math.isfinite(v):
        raise SpecError("--sweep", f"{axis.name}: expected a finite number, got {text.strip()!r}")
    return v


def _axis_values(axis: Axis, parts: list[str]) -> tuple[float, ...]:
    """Values of one axis from ``start:stop:step`` or a list of numbers."""
    if len(parts) == 1 and ":" in parts[0]:
        bits = parts[0].split(":")
        if len(bits) != 3:
            raise SpecError("--sweep", f"{axis.name}: a range is start:stop:step, got {parts[0]!r}")
        start, stop, step = (_number(b, axis) for b in bits)
        if step <= 0 or stop < start:
            raise SpecError("--sweep", f"{axis.name}: a range needs step > 0 and stop >= start, got {parts[0]!r}")
        n = int(math.floor((stop - start) / step + 1e-9)) + 1
        if n > MAX_CELLS:
            raise SpecError("--sweep", f"{axis.name}: {n} values; a sweep has at most {MAX_CELLS} cells")
        values = tuple(round(start + k * step, 6) for k in range(n))
    else:
        if any(":" in p for p in parts):
            raise SpecError("--sweep", f"{axis.name}: give either one range start:stop:step or a list of numbers")
        values = tuple(_number(p, axis) for p in parts)
    bad = [v for v in values if not axis.low <= v <= axis.high]
    if bad:
        raise SpecError("--sweep", f"{axis.name} must lie in [{axis.low:g}, {axis.high:g}] {axis.unit}, got {bad[0]:g}")
    if len(set(values)) != len(values):
        raise SpecError("--sweep", f"{axis.name}: a value is listed twice")
    return values


def parse_sweep(text: str) -> Grid:
    """``"distance=1:10:1,yaw=-90:90:15"`` -> ``(("distance", (1.0, ..., 10.0)), ("yaw", (-90.0, ..., 90.0)))``.

    Axes keep the order given (the first one runs down the rows of the tables and heat maps). Bad text raises
    one :class:`SpecError` for ``--sweep`` naming the problem.
    """
    example = "e.g. distance=1:10:1,yaw=-90:90:15 or yaw=0,45,90"
    if not isinstance(text, str) or not text.strip():
        raise SpecError("--sweep", f"expected grid axes, {example}")
    axes: list[tuple[str, list[str]]] = []
    for token in text.split(","):
        name, sep, value = token.partition("=")
        name = name.strip()
        if sep:
            if name not in AXES:
                raise SpecError("--sweep", f"unknown axis {name!r} (axes: {', '.join(AXES)})")
            if any(n == name for n, _ in axes):
                raise SpecError("--sweep", f"axis {name!r} is given twice")
            if not value.strip():
                raise SpecError("--sweep", f"axis {name!r} has no values ({example})")
            axes.append((name, [value.strip()]))
        elif axes and name:
            axes[-1][1].append(name)  # one more value of the axis before
        else:
            raise SpecError("--sweep", f"expected name=values, got {token.strip()!r} ({example})")
    grid = tuple((name, _axis_values(AXES[name], parts)) for name, parts in axes)
    cells = math.prod(len(v) for _, v in grid)
    if cells > MAX_CELLS:
        raise SpecError("--sweep", f"{cells} cells; a sweep has at most {MAX_CELLS}")
    return grid


def format_sweep(grid: Grid) -> str:
    """The grid as ``--sweep`` text (lists; ``parse_sweep(format_sweep(g)) == g``)."""
    return ",".join(f"{name}=" + ",".join(f"{v:g}" for v in values) for name, values in grid)


# ------------------------------------------------------------------ the run's settings
@dataclass(frozen=True)
class SweepConfig:
    """What one sweep renders and scores.

    Attributes:
        sensors: registry ids, each scored on the same frames.
        grid: :func:`parse_sweep` of the ``--sweep`` text.
        per_cell: avatars (frames) per cell.
        seed: draws the held-out identities.
        identities: avatar seeds (:meth:`~hcgym.synthesis.AvatarSpec.random`) to use instead of the held-out
            ones (``per_cell`` of them).
        size: (width, height) pixels of the camera.
        hfov: horizontal field of view, degrees.
        sensor_kwargs: keyword arguments of the sensor (one sensor only).
        bench: :class:`~hcgym.perception.bench.BenchConfig` fields of the scoring (``score_threshold``,
            ``face_iou``, ``min_pixels``, ...).
    """

    sensors: tuple[str, ...]
    grid: Grid
    per_cell: int = 12
    seed: int = 0
    identities: tuple[int, ...] = ()
    size: tuple[int, int] = (640, 480)
    hfov: float = 60.0
    sensor_kwargs: dict[str, Any] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse bad settings with one :class:`SpecError` naming the command-line option."""
        from hcgym.perception import bench
        from hcgym.perception.registry import spec as spec_of

        if not self.sensors:
            raise SpecError("ID", "give at least one registered sensor id")
        if len(set(self.sensors)) != len(self.sensors):
            raise SpecError("ID", "a sensor is listed twice")
        if self.sensor_kwargs and len(self.sensors) > 1:
            raise SpecError("--sensor-arg", "applies to one sensor: give a single ID with --sensor-arg")
        if self.bench.get("onnx") and len(self.sensors) > 1:
            raise SpecError("--onnx", "an export is one sensor's: give a single ID with --onnx")
        if not isinstance(self.per_cell, int) or not 1 <= self.per_cell <= 1000:
            raise SpecError("--per-cell", f"expected 1..1000 avatars per cell, got {self.per_cell!r}")
        if self.identities and len(self.identities) != self.per_cell:
            raise SpecError("--identities", f"{len(self.identities)} identities for {self.per_cell} per cell")
        if len(set(self.avatar_seeds())) != self.per_cell:
            raise SpecError("--identities", "an identity is listed twice")
        w, h = self.size
        if not (isinstance(w, int) and isinstance(h, int) and w >= 8 and h >= 8):
            raise SpecError("--size", f"expected width and height of at least 8 pixels, got {self.size!r}")
        if not (isinstance(self.hfov, (int, float)) and 1.0 <= self.hfov <= 170.0):
            raise SpecError("--hfov", f"expected a horizontal field of view in [1, 170] degrees, got {self.hfov!r}")
        if not self.grid:
            raise SpecError("--sweep", "a sweep needs at least one axis")
        for sid in self.sensors:
            try:
                spec = spec_of(sid)
            except SpecError as e:
                raise SpecError("ID", e.problem) from None
            task = bench.task_for(spec)
            if not bench.runs_on_frames(spec):
                raise SpecError("ID", f"{sid} takes '{spec.input}', not a frame: a sweep has nothing to run it on")
            if task.needs_motion or getattr(task, "needs_gallery", False):
                why = "moving people (behaviour timelines)" if task.needs_motion else "a gallery of the people"
                raise SpecError("ID", f"{sid} ({task.name}) is scored against {why}, which a sweep's studio "
                                      "scenes do not have: sweep it in a world with hcgym evaluate sensor --world")
            self.try_sensor(sid, spec)

    def bench_config(self, sensor: str) -> Any:
        """The :class:`~hcgym.perception.bench.BenchConfig` of ``sensor`` in every cell."""
        from hcgym.perception.bench import BenchConfig

        try:
            return BenchConfig(sensor=sensor, world="studio sweep", seed=self.seed, camera=CAMERA,
                               sensor_kwargs=dict(self.sensor_kwargs), **self.bench)
        except SpecError as e:
            raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
        except TypeError as e:
            raise SpecError("bench", f"not a setting of the bench: {e}") from None

    def try_sensor(self, sensor: str, spec: Any) -> None:
        """Make (and close) the sensor once: bad keyword arguments or ONNX files are refused before rendering."""
        from hcgym.perception.bench import make_sensor

        config = self.bench_config(sensor)
        try:
            made = make_sensor(config, spec)
        except SpecError as e:
            raise SpecError({"sensor_kwargs": "--sensor-arg"}.get(e.field, "--" + e.field), e.problem) from None
        close = getattr(made, "close", None)
        if callable(close):
            close()

    def avatar_seeds(self) -> tuple[int, ...]:
        """The avatar seeds of every cell."""
        if self.identities:
            return tuple(int(s) for s in self.identities)
        from hcgym.synthesis.face_sets import held_out_identities

        return tuple(held_out_identities(self.seed, self.per_cell))

    def cells(self) -> list[dict[str, float]]:
        """Every cell's axis values (all axes, defaults for those not swept), the first axis slowest."""
        import itertools

        names = [n for n, _ in self.grid]
        out = []
        for combo in itertools.product(*(v for _, v in self.grid)):
            values = {a.name: a.default for a in AXES.values()}
            values.update(zip(names, combo))
            out.append(values)
        return out


# ------------------------------------------------------------------ the jobs
@dataclass(frozen=True)
class SweepJob:
    """Cells ``cells`` (indices into :meth:`SweepConfig.cells`) of a sweep, for one worker."""

    index: int
    cells: tuple[int, ...]
    config: SweepConfig


@dataclass
class SweepPart:
    """What a job returns: one entry per cell (``index``, ``values``, ``truth`` and per-sensor ``scores``), or the
    ``error`` (field, problem) of a :class:`SpecError` a scorer raised (handed back as data: it stops the run in
    the driver, whichever process the job ran in)."""

    index: int
    cells: list[dict[str, Any]]
    error: tuple[str, str] | None = None


_STUDIO: dict[str, Any] = {}  # this process's loaded studio: {"key": ..., "sim": backend}


def studio(config: SweepConfig) -> Any:
    """The loaded studio of ``config`` in this process (kept for the next job: PyBullet keeps every texture
    it loads until the process ends, so each worker loads the avatars once)."""
    key = (config.avatar_seeds(), tuple(config.size), float(config.hfov))
    if _STUDIO.get("key") != key:
        close_studio()
        from hcgym.envs.backends import make_backend
        from hcgym.synthesis.avatar_spec import AvatarSpec
        from hcgym.worlds.spec import CameraSpec
        from hcgym.worlds.studio import studio_world

        w, h = config.size
        world = studio_world([AvatarSpec.random(s) for s in key[0]], cameras=(CameraSpec(CAMERA, w, h, config.hfov),))
        sim = make_backend("embedded", world=world)
        sim.load(world)
        _STUDIO.update(key=key, sim=sim)
    return _STUDIO["sim"]


def close_studio() -> None:
    """Release this process's studio (if any)."""
    sim = _STUDIO.pop("sim", None)
    _STUDIO.pop("key", None)
    if sim is not None:
        sim.close()


def cell_frames(sim: Any, values: dict[str, float]) -> list[Frame]:
    """One frame per avatar of the studio, each shown alone, seen from the cell's ``values``."""
    from hcgym.camera import orbit_pose

    frames = []
    for h in sim.humans:
        sim.show_only(h.name)
        pose = orbit_pose(h.avatar.face_centre, values["yaw"], values["pitch"], values["distance"])
        frames.append(sim.render(CAMERA, pose=pose))
    return frames


def cell_truth(frames: list[Frame]) -> dict[str, Any]:
    """What the cell's frames show of the faces: mean distance (m), mean signed face yaw (deg), median face box
    width (px) and mean number of the 5 face landmarks passing the depth test."""
    shown = [next(h for h in f.humans if h.bbox is not None) for f in frames if any(h.bbox is not None
                                                                                   for h in f.humans)]
    if not shown:
        return {"people": 0}
    widths = [float(h.face_box[2] - h.face_box[0]) for h in shown if h.face_box is not None]
    return {"people": len(shown), "distance_m": round(float(np.mean([h.distance for h in shown])), 3),
            "face_yaw_deg": round(float(np.mean([h.face_yaw for h in shown])), 2),
            "face_px": round(float(np.median(widths)), 1) if widths else None,
            "landmarks_visible": round(float(np.mean([(np.asarray(h.face_landmarks)[:, 2] == VISIBLE).sum()
                                                      for h in shown])), 2)}


def run_sweep_job(job: SweepJob) -> SweepPart:
    """Render the job's cells and score every sensor on each (the function every engine runs)."""
    try:
        return _score_cells(job)
    except SpecError as e:
        return SweepPart(job.index, [], (e.field, e.problem))


def _score_cells(job: SweepJob) -> SweepPart:
    from hcgym.perception import bench
    from hcgym.perception.registry import spec as spec_of

    config = job.config
    sim = studio(config)
    specs = {sid: spec_of(sid) for sid in config.sensors}
    configs = {sid: config.bench_config(sid) for sid in config.sensors}
    sensors = {sid: bench.make_sensor(configs[sid], specs[sid]) for sid in config.sensors}
    all_values = config.cells()
    out = []
    try:
        for k in job.cells:
            frames = cell_frames(sim, all_values[k])
            scores = {}
            for sid in config.sensors:
                res = bench.run(configs[sid], frames, progress=False, sensor=sensors[sid], spec=specs[sid])
                scores[sid] = {key: res[key] for key in ("metrics", "latency_ms", "notes", "records")}
            out.append({"index": k, "values": all_values[k], "truth": cell_truth(frames), "scores": scores})
    finally:
        for s in sensors.values():
            close = getattr(s, "close", None)
            if callable(close):
                close()
    return SweepPart(job.index, out)


def plan_jobs(config: SweepConfig, workers: int) -> list[SweepJob]:
    """The cells in chunks of at most :data:`CELLS_PER_JOB`, at least one chunk per worker where possible."""
    n = len(config.cells())
    size = max(1, min(CELLS_PER_JOB, math.ceil(n / max(1, workers))))
    return [SweepJob(j, tuple(range(a, min(a + size, n))), config) for j, a in enumerate(range(0, n, size))]


__all__ = ["AXES", "Axis", "CELLS_PER_JOB", "SweepConfig", "SweepJob", "SweepPart", "cell_frames", "cell_truth",
           "close_studio", "format_sweep", "parse_sweep", "plan_jobs", "run_sweep_job", "studio"]
