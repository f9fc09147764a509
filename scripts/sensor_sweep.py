"""``hcgym evaluate sensor ID --sweep AXES``: the sensor bench over a grid of studio scenes.

    hcgym evaluate sensor face/mediapipe-full --sweep distance=1:10:1,yaw=-90:90:15 [--per-cell 12]
        [--engine local|ray] [--workers N] [--seed N] [--size WxH] [--hfov DEG] --out DIR

Axes are separated by commas: ``name=start:stop:step`` (stop included), ``name=v1,v2,...`` or ``name=v``;
names ``distance`` (m, camera to face centre), ``yaw`` (deg, face yaw relative to the camera, 0 facing it)
and ``pitch`` (deg, camera above the face). ``ID`` may list several sensors separated by commas: every
cell is rendered once and each sensor scored on the same frames. Each cell shows ``--per-cell`` held-out
avatars of ``--seed`` (or ``--identities``), one per frame. Writes ``results.json``, ``table.md`` and
``sweep.png`` (a heat map per sensor) into ``--out``. A sweep builds its own scene, so ``--world`` and
``--camera`` are refused and ``--seconds``/``--fps`` are not used. The protocol is
:mod:`hcgym.synthesis.bench_sweep` (grid, scene, jobs) and :mod:`hcgym.synthesis.bench_sweep_report`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hcgym.errors import SpecError
from hcgym.scripts import _args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this mode's options to ``hcgym evaluate sensor``."""
    g = parser.add_argument_group("scenario sweep (--sweep)")
    g.add_argument("--sweep", default=None, metavar="AXES",
                   help="score over a grid of studio scenes instead of a world, e.g. distance=1:10:1,yaw=-90:90:15 "
                        "(axes distance m, yaw deg, pitch deg; start:stop:step with stop included, or v1,v2,...)")
    g.add_argument("--per-cell", type=_args.positive_int, default=12,
                   help="avatars per cell, held-out identities drawn from --seed (default 12)")
    g.add_argument("--identities", type=_args.seed_range, default=None, metavar="SEEDS",
                   help="avatar seeds to use instead, e.g. 1000-1011 (sets --per-cell)")
    g.add_argument("--hfov", type=_args.positive_float, default=60.0, help="horizontal field of view, degrees")
    g.add_argument("--engine", default="local", help="local (this process or a process pool) or ray")
    g.add_argument("--workers", type=_args.positive_int, default=1, help="worker processes or local Ray CPUs")
    g.add_argument("--ray-address", default=None, help="address of an existing Ray cluster (--engine ray)")
    g.add_argument("--score-threshold", type=_args.finite, default=None,
                   help="detections below it are not counted (default: the bench's 0.3; 0 keeps every detection)")
    g.add_argument("--face-iou", type=_args.finite, default=None, help="IoU of a face match (default: the bench's)")
    g.add_argument("--face-match", default=None, metavar="RULE",
                   help="iou (the bench's default) or centre: a face counts as found when a detection's box "
                        "contains the centre of its ground-truth box")
    g.add_argument("--face-min-landmarks", type=int, default=None, metavar="N",
                   help="faces with fewer of their 5 landmarks visible are not scored (default: the bench's 3; "
                        "1 scores profiles)")


def _check_out(out: Path) -> None:
    """Refuse an output path that cannot be written, before any work."""
    if out.exists() and not out.is_dir():
        raise SpecError("--out", f"{out} exists and is not a folder")
    probe = out
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise SpecError("--out", f"cannot write in {probe}")


def config_from(args: argparse.Namespace):
    """The :class:`~hcgym.synthesis.bench_sweep.SweepConfig` of the arguments (checked)."""
    from hcgym.synthesis.bench_sweep import SweepConfig, parse_sweep
    from hcgym.synthesis.dataset.config import ENGINES

    if args.world is not None:
        raise SpecError("--world", "a sweep renders its own studio scene in every cell: leave out --world")
    if args.camera is not None:
        raise SpecError("--camera", "a sweep places its own camera in every cell: leave out --camera")
    if args.engine not in ENGINES:
        raise SpecError("--engine", f"unknown engine {args.engine!r} (allowed: {', '.join(ENGINES)})")
    if args.ray_address and args.engine != "ray":
        raise SpecError("--ray-address", "only with --engine ray")
    from hcgym.scripts._args import scoring_options

    bench = scoring_options(args)
    if getattr(args, "onnx", None) is not None:
        bench["onnx"] = str(args.onnx)
    identities = tuple(args.identities or ())
    config = SweepConfig(sensors=tuple(s.strip() for s in args.id.split(",")), grid=parse_sweep(args.sweep),
                         per_cell=len(identities) or args.per_cell, seed=args.seed, identities=identities,
                         size=tuple(args.size or (640, 480)), hfov=args.hfov, sensor_kwargs=dict(args.sensor_arg),
                         bench=bench)
    config.check()
    _check_out(Path(args.out))
    return config


def run(args: argparse.Namespace) -> int:
    """Run the sweep and write ``results.json``, ``table.md`` and ``sweep.png``."""
    from hcgym.report import json_bytes, write_files
    from hcgym.synthesis import bench_sweep_report as report

    config = config_from(args)
    try:
        results = report.run(config, args.engine, args.workers, args.ray_address, progress=True)
    except SpecError as e:
        if e.field in ("world", "scheme"):  # a scorer that needs what studio scenes lack
            raise SpecError("ID", e.problem) from None
        raise
    files: dict[str, bytes | str] = {"results.json": json_bytes(results), "table.md": report.table_markdown(results),
                                     **report.figures(results)}
    write_files(args.out, files)
    heads = []
    for x in results["sensors"]:
        v = x["metrics"].get(x["primary"]) if x["primary"] else None
        heads.append(f"{x['id']} {x['primary_label']} {v}" if v is not None else f"{x['id']} ({x['task']})")
    r = results["run"]
    print(f"[sweep] {results['sweep']['cells']} cells x {config.per_cell} avatars in {r['seconds']:.0f} s "
          f"({r['engine']}, {r['workers']} worker(s)): {'; '.join(heads)}; wrote {args.out}/ ({', '.join(files)})",
          flush=True)
    return 0
