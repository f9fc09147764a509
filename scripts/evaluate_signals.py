"""``hcgym evaluate sensor ID --world W`` for sensors that take a signal: the signal bench on the world's signals.

Reached from :mod:`hcgym.scripts.evaluate_sensor` when the sensor's input is an ECG window or microphone audio;
the protocol is :mod:`hcgym.perception.signal_bench`, the signals
:func:`hcgym.synthesis.world_signals.world_signals`.
"""

from __future__ import annotations

import argparse
from typing import Any

from hcgym.errors import SpecError

#: Fields of the bench's errors -> the options that set them.
OPTIONS = {"sensor_kwargs": "--sensor-arg", "onnx": "--onnx", "world": "--world", "duration": "--seconds",
           "seed": "--seed"}


def run(args: argparse.Namespace, spec: Any) -> int:
    """Score ``spec``'s sensor on ``args.world``'s signals; write ``results.json``, ``table.md``, the figures (and
    the keyword sweep's files with ``--rt60`` / ``--distance-scale``) into ``args.out``."""
    from hcgym.perception import signal_bench as sb
    from hcgym.perception.signal_bench_report import figures, sweep_figure, sweep_markdown, table_markdown
    from hcgym.report import json_bytes, write_files
    from hcgym.synthesis.world_signals import world_signals
    from hcgym.worlds import load_world

    for option, value in (("--camera", args.camera), ("--size", args.size), ("--cutoff", args.cutoff)):
        if value is not None:
            raise SpecError(option, f"{spec.id} takes {spec.input}, not frames: {option} does not apply")
    sweep = args.rt60 is not None or args.distance_scale is not None
    if sweep and (args.rt60 is None or args.distance_scale is None or sb.SIGNAL_INPUTS[spec.input] != "keywords"):
        raise SpecError("--rt60", "a sweep needs a keyword sensor and both --rt60 and --distance-scale")
    try:
        world = load_world(args.world)
    except SpecError as e:
        raise SpecError("--world", e.problem, e.source) from None
    try:
        config = sb.SignalConfig(sensor=spec.id, world=world.name, seed=args.seed, duration=args.seconds,
                                 sensor_kwargs=dict(args.sensor_arg),
                                 onnx=None if args.onnx is None else str(args.onnx))
        sensor = sb.make_signal_sensor(config, spec)
        signals = world_signals(world, duration=args.seconds, seed=args.seed)
        results = sb.run(config, signals, sensor=sensor, spec=spec)
        files: dict[str, bytes | str] = {"results.json": json_bytes(results), "table.md": table_markdown(results),
                                         **figures(results)}
        if sweep:
            s = sb.keyword_sweep(world, sensor, distance_scales=args.distance_scale, rt60s=args.rt60, seed=args.seed,
                                 duration=args.seconds)
            files.update({"sweep.json": json_bytes(s), "sweep.md": sweep_markdown(s), "sweep.png": sweep_figure(s)})
    except SpecError as e:
        raise SpecError(OPTIONS.get(e.field, "--" + e.field.replace("_", "-")), e.problem) from None
    write_files(args.out, files)
    m, lat, key = results["metrics"], results["latency_ms"], results["primary"]
    timing = f"latency median {lat['median']:.1f} ms, p90 {lat['p90']:.1f} ms per window" if lat else "not run"
    source = f" (ONNX {args.onnx})" if args.onnx is not None else ""
    print(f"[bench] {spec.id}{source} in {world.name}: {results['primary_label']} {m[key]}; {timing}; wrote "
          f"{args.out}/ ({', '.join(files)})", flush=True)
    return 0
