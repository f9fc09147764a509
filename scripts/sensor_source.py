"""``hcgym evaluate sensor ID --source SRC``: the sensor bench on real pictures.

    hcgym evaluate sensor person/centernet --source real --out DIR
    hcgym evaluate sensor face/mediapipe-full --source photos/ [--annotations coco.json] --out DIR
    hcgym evaluate sensor pose/mediapipe --source clip.mp4 [--max-frames 300] --out DIR

``SRC`` is ``real`` (the shipped real-image set with its labels, :mod:`hcgym.perception.real_images`;
write ``./real`` for a folder of that name), a folder of photos (``.jpg``, ``.jpeg``, ``.png``, sorted by
name), one photo, or a video file OpenCV reads. ``--annotations`` gives COCO labels (categories ``person``
and/or ``face``; ``images[].file_name`` relative to the folder, ``frame_000012`` for frame 12 of a video):
then only the labelled pictures are run, and person and face detectors are scored
(:mod:`hcgym.perception.bench_real`). ``--score-threshold``, ``--face-iou``, ``--face-match`` and
``--face-min-landmarks`` set the scorers as in a sweep.

Writes into ``--out``: ``results.json`` (the sensor's output per picture, the COCO results list of its boxes,
the metrics where labels exist, latency), ``table.md``, and the overlays (ground truth green, output red):
``overlays/<name>.jpg`` per photo or ``overlay.mp4`` for a video. Refused with one message before anything
is written: a missing or unreadable source, a folder without photos, an ``--annotations`` file that is not
COCO or names images, image ids or categories that do not exist or sizes that are not the pictures', a
sensor that takes no picture, and
``--source`` together with ``--world``, ``--sweep``, ``--camera`` or ``--size``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hcgym.errors import SpecError
from hcgym.scripts import _args

#: BenchConfig / make_sensor fields -> the options that set them (for error messages).
OPTIONS = {"sensor_kwargs": "--sensor-arg", "onnx": "--onnx", "score_threshold": "--score-threshold",
           "face_iou": "--face-iou", "face_match": "--face-match", "face_min_landmarks": "--face-min-landmarks"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this mode's options to ``hcgym evaluate sensor``."""
    g = parser.add_argument_group("real pictures (--source)")
    g.add_argument("--source", default=None, metavar="SRC",
                   help="run on real pictures instead of a world: 'real' (the shipped real-image set), a folder of "
                        "photos, one photo or a video file")
    g.add_argument("--annotations", type=Path, default=None, metavar="COCO.json",
                   help="COCO labels of the pictures (person and/or face boxes; file_name relative to the folder, "
                        "frame_000012 for video frame 12): score the labelled pictures")
    g.add_argument("--max-frames", type=_args.positive_int, default=None, metavar="N",
                   help="run on the first N pictures or video frames only")


def _check_args(args: argparse.Namespace) -> None:
    for option, value in (("--world", args.world), ("--sweep", getattr(args, "sweep", None)),
                          ("--camera", args.camera), ("--size", args.size)):
        if value is not None:
            raise SpecError("--source", f"runs on real pictures and cannot be combined with {option}: leave out "
                                        f"{option}")


def _config(args: argparse.Namespace, fps: float):
    from hcgym.perception.bench import BenchConfig
    from hcgym.scripts._args import scoring_options

    scoring = scoring_options(args)
    try:
        return BenchConfig(sensor=args.id, sensor_kwargs=dict(args.sensor_arg), seconds=0.0, fps=fps,
                           onnx=None if args.onnx is None else str(args.onnx), **scoring)
    except SpecError as e:
        raise SpecError(OPTIONS.get(e.field, "--" + e.field.replace("_", "-")), e.problem) from None


def overlay_names(names: list[str]) -> dict[str, str]:
    """``overlays/<stem>.jpg`` per photo name (``<name with dots as _>.jpg`` where two names share a stem)."""
    stems = [Path(n).stem for n in names]
    return {n: f"overlays/{s if stems.count(s) == 1 else n.replace('.', '_')}.jpg" for n, s in zip(names, stems)}


def run(args: argparse.Namespace) -> int:
    """Check everything, run the sensor over the source, write the results and overlays."""
    from hcgym.perception import bench, bench_real
    from hcgym.perception.bench_source import check_sizes, open_source, read_coco
    from hcgym.perception.registry import spec as spec_of
    from hcgym.report import json_bytes, write_files
    from hcgym.scripts.sensor_sweep import _check_out

    _check_args(args)
    try:
        spec = spec_of(args.id)
    except SpecError as e:
        raise SpecError("ID", e.problem) from None
    if not bench.runs_on_frames(spec) and spec.output != "NmsResult":
        raise SpecError("ID", f"{spec.id} takes '{spec.input}', not a picture: it cannot run on --source")
    _check_out(Path(args.out))
    source = open_source(args.source)
    annotations = args.annotations or source.annotations
    labels = read_coco(annotations, source.names) if annotations is not None else None
    if labels is not None:
        check_sizes(source, labels)
    categories = ({c["name"]: c["id"] for c in json.loads(Path(annotations).read_text())["categories"]
                   if isinstance(c, dict) and "name" in c} if annotations is not None else {})
    config = _config(args, source.fps)
    try:
        sensor = bench.make_sensor(config, spec)
    except SpecError as e:
        raise SpecError(OPTIONS.get(e.field, e.field), e.problem) from None
    files: dict[str, bytes | str] = {}
    try:
        results = _run(args, config, source, sensor, spec, labels, categories, files)
    finally:
        getattr(sensor, "close", lambda: None)()
    files = {"results.json": json_bytes(results), "table.md": bench_real.table_markdown(results), **files}
    write_files(args.out, files)
    m = results["metrics"]
    head = (", ".join(f"{k} {m[k]}" for k in ("recall", "precision", "false_positives_per_image", "ap50") if k in m)
            if m else "not scored")
    lat = results["latency_ms"]
    print(f"[bench] {args.id} on {source.kind} {source.path}: {results['frames']} pictures "
          f"({results['labelled']} labelled), {head}; latency median {lat['median']:.1f} ms; wrote {args.out}/ "
          f"({', '.join(list(files)[:3])}{', ...' if len(files) > 3 else ''})", flush=True)
    return 0


def _run(args: argparse.Namespace, config: Any, source: Any, sensor: Any, spec: Any, labels: Any,
         categories: dict[str, int], files: dict[str, bytes | str]) -> dict[str, Any]:
    """The run, drawing each overlay as it comes: JPEG bytes into ``files`` for photos, frames into
    ``overlay.mp4`` for a video (written through a temporary name, renamed when the run ends)."""
    import contextlib

    import cv2

    from hcgym.perception import bench, bench_real
    from hcgym.video import VideoWriter

    names = overlay_names(source.names)
    with contextlib.ExitStack() as stack:
        writer: list[VideoWriter] = []

        def on_image(name: str, rgb: Any, drawn: Any) -> None:
            img = bench.overlay_frames({"_overlay": [(rgb, drawn)]})[0]
            if source.kind != "video":
                ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
                files[names[name]] = jpg.tobytes()
                return
            if not writer:
                writer.append(stack.enter_context(VideoWriter(Path(args.out) / "overlay.mp4", source.fps,
                                                              (img.shape[1], img.shape[0]))))
            writer[0].write(img)

        results = bench_real.run(config, source, sensor, spec, labels, args.max_frames, categories, on_image)
    if writer:
        results["overlay"] = "overlay.mp4"
    else:
        results["overlays"] = sorted(files)
    return results
