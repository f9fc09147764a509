"""``hcgym evaluate sensor ID``: the sensor bench, one registered sensor scored in a world over time.

    hcgym evaluate sensor face/dlib-hog --world greeting [--seconds 10] [--fps 5] [--seed 0]
                                        [--camera NAME] [--size WxH] [--sensor-arg KEY=VALUE] --out DIR
    hcgym evaluate sensor face/dlib --world plaza [--cutoff A] [--face-boxes truth|sensor] --out DIR
    hcgym evaluate sensor person/centernet --world plaza --onnx exports/person_centernet.onnx --out DIR
    hcgym evaluate sensor biosignal/ecg --world heart_monitor --out DIR          # signal sensors: the signal bench
    hcgym evaluate sensor speech/keywords --world voice_commands [--rt60 0.2,0.5,0.9 --distance-scale 0.5,1,2]

renders the world (frame ``k`` at time ``k / fps``; static worlds render one frame per step too), runs the
sensor on every frame and scores it against the ground truth by its task (person or face detection, NMS on
the person detector's candidates, face landmarks, face recognition in a gallery of the world's people,
classification, body or hand keypoints; other sensors are timed only). ``--onnx`` runs the ONNX Runtime
sensor of an ``hcgym export`` file instead. Writes ``results.json``, ``table.md``, ``vs_distance.png``,
``vs_yaw.png``, ``vs_occlusion.png``, ``vs_people.png`` (``confusion.png`` for classifiers) and
``overlay.mp4`` (ground truth green, sensor output red) into ``--out``. An unknown sensor, world or camera,
a sensor whose task needs ground truth the world lacks, a sensor that needs a user file it was not given,
or an ``--onnx`` file that is missing or not an export of ID stops with one message before anything is
written. The protocol is :mod:`hcgym.perception.bench`, the frames :mod:`hcgym.synthesis.bench_frames`.

Sensors that take a signal (the ECG sensor's ``ecg window``, the keyword sensor's ``microphone audio``) are scored
by the signal bench (:mod:`hcgym.perception.signal_bench`) on the world's signals
(:func:`hcgym.synthesis.world_signals.world_signals`: every wearer's ECG, the robot's microphone), over the
world's whole duration unless ``--seconds`` is given; ``--onnx``, ``--sensor-arg`` and ``--seed`` act as for
frame sensors. It writes ``results.json``, ``table.md``, ``confusion.png`` and ``vs_<breakdown>.png``; with
``--rt60`` and ``--distance-scale`` a keyword sensor is also scored on the world made again for every pair
(:func:`~hcgym.perception.signal_bench.keyword_sweep`: ``sweep.json``, ``sweep.md``, ``sweep.png``).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from hcgym.errors import SpecError
from hcgym.scripts import _args


def _float_list(text: str) -> list[float]:
    """``"0.2,0.5"`` -> ``[0.2, 0.5]``: positive finite numbers separated by commas."""
    try:
        values = [_args.positive_float(v) for v in text.split(",") if v.strip()]
    except argparse.ArgumentTypeError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected positive numbers separated by commas, got {text!r}")
    return values


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
    s.add_argument("--world", default=None, help="a shipped world name or a world YAML file (required unless "
                                                  "--source is given)")
    s.add_argument("--seconds", type=_args.positive_float, default=None,
                   help="simulated seconds (default 10; signal sensors: the world's whole duration)")
    s.add_argument("--fps", type=_args.positive_float, default=5.0, help="frames per simulated second")
    s.add_argument("--seed", type=_args.seed, default=0, help="load seed of the world (random avatars)")
    s.add_argument("--camera", default=None, help="camera name (robot/camera or camera; default: the first)")
    s.add_argument("--size", type=_args.size, default=None, help="render WxH instead of the camera's size")
    s.add_argument("--sensor-arg", type=sensor_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument of the sensor (repeatable), e.g. upsample=2")
    s.add_argument("--onnx", type=Path, default=None, metavar="FILE.onnx",
                   help="score the ONNX Runtime sensor of this export (hcgym export; sidecar FILE.onnx.json beside it)")
    s.add_argument("--cutoff", type=_args.positive_float, default=None,
                   help="face recognition: the gallery's cut-off distance a of c = 1 - d / a (default: calibrated)")
    s.add_argument("--face-boxes", choices=("truth", "sensor"), default="truth",
                   help="face recognition: embed the ground-truth face boxes (default) or the recognizer's own")
    s.add_argument("--rt60", type=_float_list, default=None, metavar="S,S,...",
                   help="keyword sensors: also sweep these room RT60s (s), with --distance-scale")
    s.add_argument("--distance-scale", type=_float_list, default=None, metavar="F,F,...",
                   help="keyword sensors: also sweep these factors on every talker's distance, with --rt60")
    s.add_argument("--out", type=Path, default=Path("out/evaluate-sensor"), help="output directory")
    from hcgym.scripts import sensor_source, sensor_sweep

    sensor_sweep.add_arguments(s)
    sensor_source.add_arguments(s)
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch: ``--source`` (real footage), ``--sweep`` (a grid of scenes) or one world over time."""
    if getattr(args, "source", None) is not None:
        from hcgym.scripts import sensor_source

        return sensor_source.run(args)
    if getattr(args, "sweep", None) is not None:
        from hcgym.scripts import sensor_sweep

        return sensor_sweep.run(args)
    if args.world is None:
        raise SpecError("--world", "required (a shipped world name or a world YAML file), unless --source is given")
    from hcgym.perception.registry import spec as spec_of
    from hcgym.perception.signal_bench import is_signal_sensor

    try:
        spec = spec_of(args.id)
    except SpecError as e:
        raise SpecError("ID", e.problem) from None
    if is_signal_sensor(spec):
        from hcgym.scripts import evaluate_signals

        return evaluate_signals.run(args, spec)
    if args.rt60 is not None or args.distance_scale is not None:
        raise SpecError("--rt60", f"sweeps of RT60 and distance are for keyword sensors, not {args.id}")
    return run_world(args)


def run_world(args: argparse.Namespace) -> int:
    """One world over time: the bench on ``--seconds`` of frames at ``--fps``."""
    from hcgym.perception import bench
    from hcgym.perception.registry import spec as spec_of
    from hcgym.report import write_files
    from hcgym.synthesis.bench_frames import enrolment_frames, iter_world_frames
    from hcgym.worlds import load_world

    try:
        spec = spec_of(args.id)
    except SpecError as e:
        raise SpecError("ID", e.problem) from None
    try:
        world = load_world(args.world)
    except SpecError as e:
        raise SpecError("--world", e.problem, e.source) from None
    seconds = 10.0 if args.seconds is None else args.seconds
    with _options():
        config = bench.BenchConfig(sensor=args.id, world=world.name, seconds=seconds, fps=args.fps,
                                   seed=args.seed, camera=args.camera, sensor_kwargs=dict(args.sensor_arg),
                                   onnx=None if args.onnx is None else str(args.onnx), cutoff=args.cutoff,
                                   face_boxes=args.face_boxes, **_args.scoring_options(args))
        frames = iter_world_frames(world, seconds, args.fps, args.seed, args.camera, size=args.size)
        bench.check_world(spec, world.animated, world.name)
        sensor = bench.make_sensor(config, spec) if bench.runs(spec) else None
    try:
        with _options():
            gallery = (bench.enrol(sensor, spec, enrolment_frames(world, args.seed), config)
                       if bench.task_for(spec).needs_gallery else None)
            results = bench.run(config, frames, progress=True, sensor=sensor, spec=spec, keep_overlay=True,
                                gallery=gallery)
    finally:
        getattr(sensor, "close", lambda: None)()
    files = bench_files(results, args.fps)
    write_files(args.out, files)
    m, lat = results["metrics"], results["latency_ms"]
    key = results["primary"]
    head = f"{results['primary_label']} {m[key]}" if key and m.get(key) is not None else results["task"]
    timing = f"latency median {lat['median']:.1f} ms, p90 {lat['p90']:.1f} ms" if lat else "not run"
    source = f" (ONNX {args.onnx})" if args.onnx is not None else ""
    print(f"[bench] {args.id}{source} in {world.name}: {results['frames']} frames, {head}; {timing}; wrote "
          f"{args.out}/ ({', '.join(files)})", flush=True)
    return 0


#: BenchConfig fields -> the options that set them (for error messages).
OPTIONS = {"sensor_kwargs": "--sensor-arg", "onnx": "--onnx", "cutoff": "--cutoff", "face_boxes": "--face-boxes",
           "world": "--world", "gallery": "ID"}


@contextlib.contextmanager
def _options():
    """Re-raise a :class:`SpecError` of the bench under the option that caused it (``sensor_kwargs`` ->
    ``--sensor-arg``, ``seconds`` -> ``--seconds``)."""
    try:
        yield
    except SpecError as e:
        raise SpecError(OPTIONS.get(e.field, "--" + e.field.replace("_", "-")), e.problem) from None


def bench_files(results: dict[str, Any], fps: float) -> dict[str, bytes | str]:
    """The files of one bench run: ``results.json``, ``table.md``, the figures and ``overlay.mp4``."""
    import tempfile

    from hcgym.perception import bench
    from hcgym.report import json_bytes
    from hcgym.video import VideoWriter

    files: dict[str, bytes | str] = {"results.json": json_bytes(results), "table.md": bench.table_markdown(results),
                                     **bench.figures(results)}
    images = bench.overlay_frames(results)
    if images:
        with tempfile.TemporaryDirectory(prefix="hcgym-bench-") as tmp:
            h, w = images[0].shape[:2]
            with VideoWriter(Path(tmp) / "overlay.mp4", fps, (w, h)) as writer:
                for img in images:
                    writer.write(img)
            files["overlay.mp4"] = (Path(tmp) / "overlay.mp4").read_bytes()
    return files
