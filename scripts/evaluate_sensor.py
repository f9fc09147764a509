"""``hcgym evaluate sensor ID``: the sensor bench, one registered sensor scored in a world over time.

    hcgym evaluate sensor face/dlib-hog --world greeting [--seconds 10] [--fps 5] [--seed 0]
                                        [--camera NAME] [--size WxH] [--sensor-arg KEY=VALUE] --out DIR

renders the world (frame ``k`` at time ``k / fps``; static worlds render one frame per step too), runs the
sensor on every frame and scores it against the ground truth by its task (person or face detection, face
landmarks, body or hand keypoints; other sensors are timed only). Writes ``results.json``, ``table.md``,
``vs_distance.png``, ``vs_yaw.png``, ``vs_occlusion.png``, ``vs_people.png`` and ``overlay.mp4`` (ground
truth green, sensor output red) into ``--out``. An unknown sensor, world or camera, or a sensor whose task
needs ground truth the world lacks, stops with one message before anything is written. The protocol is
:mod:`hcgym.perception.bench`, the frames :mod:`hcgym.synthesis.bench_frames`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hcgym.errors import SpecError
from hcgym.scripts import _args


def sensor_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with the value read as YAML (``upsample=2`` -> ("upsample", 2))."""
    import yaml

    key, sep, value = text.partition("=")
    if not (sep and key.strip().isidentifier()):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (a keyword argument of the sensor), got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``sensor`` target to ``hcgym evaluate``."""
    s = targets.add_parser("sensor", help="the sensor bench: a registered sensor scored in a world over time",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("id", metavar="ID", help="registered sensor id (see `hcgym sensors`)")
    s.add_argument("--world", required=True, help="a shipped world name or a world YAML file")
    s.add_argument("--seconds", type=_args.positive_float, default=10.0, help="simulated seconds")
    s.add_argument("--fps", type=_args.positive_float, default=5.0, help="frames per simulated second")
    s.add_argument("--seed", type=_args.seed, default=0, help="load seed of the world (random avatars)")
    s.add_argument("--camera", default=None, help="camera name (robot/camera or camera; default: the first)")
    s.add_argument("--size", type=_args.size, default=None, help="render WxH instead of the camera's size")
    s.add_argument("--sensor-arg", type=sensor_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument of the sensor (repeatable), e.g. upsample=2")
    s.add_argument("--out", type=Path, default=Path("out/evaluate-sensor"), help="output directory")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tempfile

    from hcgym.perception import bench
    from hcgym.perception.registry import spec as spec_of
    from hcgym.report import json_bytes, write_files
    from hcgym.synthesis.bench_frames import iter_world_frames
    from hcgym.video import VideoWriter
    from hcgym.worlds import load_world

    try:
        spec = spec_of(args.id)
    except SpecError as e:
        raise SpecError("ID", e.problem) from None
    try:
        world = load_world(args.world)
    except SpecError as e:
        raise SpecError("--world", e.problem, e.source) from None
    try:
        config = bench.BenchConfig(sensor=args.id, world=world.name, seconds=args.seconds, fps=args.fps,
                                   seed=args.seed, camera=args.camera, sensor_kwargs=dict(args.sensor_arg))
        frames = iter_world_frames(world, args.seconds, args.fps, args.seed, args.camera, size=args.size)
        bench.check_world(spec, world.animated, world.name)
    except SpecError as e:
        raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
    try:
        results = bench.run(config, frames, progress=True, spec=spec, keep_overlay=True)
    except SpecError as e:
        if e.field != "world":
            raise
        raise SpecError("--world", e.problem) from None
    files: dict[str, bytes | str] = {"results.json": json_bytes(results), "table.md": bench.table_markdown(results),
                                     **bench.figures(results)}
    images = bench.overlay_frames(results)
    if images:
        with tempfile.TemporaryDirectory(prefix="hcgym-bench-") as tmp:
            h, w = images[0].shape[:2]
            with VideoWriter(Path(tmp) / "overlay.mp4", args.fps, (w, h)) as writer:
                for img in images:
                    writer.write(img)
            files["overlay.mp4"] = (Path(tmp) / "overlay.mp4").read_bytes()
    write_files(args.out, files)
    m, lat = results["metrics"], results["latency_ms"]
    key = results["primary"]
    head = f"{results['primary_label']} {m[key]}" if key and m.get(key) is not None else results["task"]
    timing = f"latency median {lat['median']:.1f} ms, p90 {lat['p90']:.1f} ms" if lat else "not run"
    print(f"[bench] {args.id} in {world.name}: {results['frames']} frames, {head}; {timing}; wrote {args.out}/ "
          f"({', '.join(files)})", flush=True)
    return 0
