"""``hcgym evaluate detector``: the person detector on generated domains or on recordings.

Domain shift (OpenDR D3.2 §2.6, Table 12)::

    hcgym evaluate detector --domain field [--seed S] [--n-images K] [--finetune 10,50] --out DIR

generates, from the seed, an urban test set (``crowd_street``, the training domain), a field test
set (``field`` world: crop rows, small distant people, barrel distortion, posts and bales, about
20 % of the images with people) and a separate pool of field images for fine-tuning. It scores the
detector (greedy NMS at IoU 0.5) with AP0.5 and precision/recall at a score threshold on the urban
set and on the field set's "human only" (images with people) and "human + negative" (all) subsets,
then fine-tunes a copy on the first k pool images for every k of ``--finetune`` (mixed with
``--replay`` images of the urban training domain, so the detector does not forget it) and scores it
again.
Writes ``results.json``, ``table.md`` (beside the seed's Table 12) and ``domain_shift.png``.
``--domain urban`` scores the urban set only. The protocol is :mod:`hcgym.perception.detection.evaluation`,
the test sets :mod:`hcgym.synthesis.dataset.test_sets`.

Sim to real::

    hcgym evaluate detector --domain real [--detector NEW] [--baseline OLD] [--real COCO.json]
        [--sim-data DIR] --out DIR

scores the detector (and a baseline beside it) on annotated real photos (default: the shipped set of
:mod:`hcgym.perception.real_images`) and on simulated scenes (the ``val`` split of ``--sim-data``, a generated
folder, or the urban test set from the seed) at one fixed score threshold: recall at IoU 0.5, false positives
per image, AP; a per-image table. Writes ``results.json``, ``table.md``, ``sim2real.png`` (recall and false
positives against the threshold) and ``real_examples.png`` (:mod:`hcgym.perception.detection.sim2real`).

Any detector's output::

    hcgym evaluate detector --detections RESULTS.json --annotations COCO.json --out DIR

scores a COCO results file (``image_id``, ``bbox``, ``score``) against the ground truth with the same
target boxes and metrics (``summary.json``).

Recordings::

    hcgym evaluate detector --source VIDEO_OR_IMAGE_DIR [--annotations COCO.json] --out DIR

runs the sensor (a ``.pt`` checkpoint or an exported ``.onnx``, ``--detector``) on every frame
of a video or every image of a folder, writes overlays (``overlays/``), ``detections.json`` (COCO
results format) and, with ``--annotations``, AP0.5 and AP0.5:0.95 against them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hcgym.errors import SpecError
from hcgym.scripts import _args

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def register(targets: argparse._SubParsersAction) -> None:
    d = targets.add_parser("detector", help="person detector: field domain shift (§2.6) or recordings",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = d.add_mutually_exclusive_group(required=True)
    mode.add_argument("--domain", choices=("field", "urban", "real"),
                      help="generated-domain protocol (field, urban) or real photos beside simulated scenes (real)")
    mode.add_argument("--source", type=Path, help="a video file or a folder of images")
    mode.add_argument("--detections", type=Path,
                      help="a COCO results file of any detector, scored against --annotations (no images needed)")
    d.add_argument("--annotations", type=Path, default=None, help="COCO ground truth for --source images")
    d.add_argument("--detector", default="shipped", help="checkpoint (.pt), export (.onnx) or 'shipped'")
    d.add_argument("--nms", default="greedy_0.5", help="NMS method after the raw candidates")
    d.add_argument("--score-threshold", type=float, default=0.3,
                   help="detections drawn in overlays and counted by precision/recall")
    d.add_argument("--seed", type=_args.seed, default=0, help="generates the held-out sets (--domain)")
    d.add_argument("--n-images", type=_args.positive_int, default=400, help="field test images (--domain)")
    d.add_argument("--urban-images", type=_args.positive_int, default=200, help="urban test images (--domain)")
    d.add_argument("--finetune", type=_args.seed_range, default=[10, 50],
                   help="fine-tune on k field images for each k (comma-separated; 0 = none)")
    d.add_argument("--finetune-steps", type=_args.positive_int, default=300, help="optimiser steps per fine-tuning")
    d.add_argument("--finetune-lr", type=float, default=5e-4, help="peak learning rate of the fine-tuning")
    d.add_argument("--replay", type=int, default=100,
                   help="urban training-domain images mixed into every fine-tuning (0: field images only)")
    d.add_argument("--baseline", default=None,
                   help="--domain real: a second detector scored beside --detector (e.g. the model before retraining)")
    d.add_argument("--real", type=Path, default=None,
                   help="--domain real: COCO file of the real photos (default: the shipped real test set)")
    d.add_argument("--sim-data", type=Path, default=None,
                   help="--domain real: a generated scene folder whose val split is the simulated set "
                        "(default: the urban test set from --seed)")
    d.add_argument("--workers", type=_args.positive_int, default=2, help="processes generating the sets")
    d.add_argument("--every", type=_args.positive_int, default=1, help="use every n-th video frame (--source)")
    d.add_argument("--out", type=Path, default=Path("out/evaluate-detector"), help="output directory")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.score_threshold <= 1:
        raise SpecError("--score-threshold", f"expected 0-1, got {args.score_threshold}")
    from hcgym.perception import nms

    nms.make(args.nms)  # unknown names fail before any work
    if args.annotations is not None and args.source is None and args.detections is None:
        raise SpecError("--annotations", "only used with --source or --detections")
    if args.detections is not None:
        return run_detections(args)
    if args.source is not None:
        return run_source(args)
    if args.domain == "real":
        return run_real(args)
    for flag in ("baseline", "real", "sim_data"):
        if getattr(args, flag) is not None:
            raise SpecError("--" + flag.replace("_", "-"), "only used with --domain real")
    return run_domain(args)


def _flag(e: SpecError) -> SpecError:
    """The protocol's error with its field named as the command's option."""
    return SpecError("--" + e.field.replace("_", "-"), e.problem)


# ---------------------------------------------------------------- generated domains
def run_domain(args: argparse.Namespace) -> int:
    from hcgym.perception.detection import evaluation as ev
    from hcgym.perception.detection.sensor import load_detector
    from hcgym.report import write_report
    from hcgym.synthesis.dataset.test_sets import generate_test_set

    try:
        config = ev.DomainShiftConfig(domain=args.domain, seed=args.seed, n_images=args.n_images,
                                      urban_images=args.urban_images, finetune=tuple(args.finetune),
                                      finetune_steps=args.finetune_steps, finetune_lr=args.finetune_lr,
                                      replay=args.replay, nms=args.nms, score_threshold=args.score_threshold,
                                      detector=str(args.detector))
    except SpecError as e:
        raise _flag(e) from None
    detector = load_detector(args.detector)

    def make_set(name: str, family: str, n: int, seed: int, **overrides: Any) -> Path:
        out = args.out / "data" / name
        print(f"[evaluate] {family} set: {n} images, seed {seed} -> {out}", flush=True)
        return generate_test_set(out, family, n, seed, workers=args.workers, **overrides)

    try:
        results = ev.run(config, detector, make_set)
    except SpecError as e:
        raise _flag(e) from None
    write_report(args.out, results, ev.table_markdown(results), ev.figures(results))
    print(f"[evaluate] wrote {args.out}/results.json, table.md, domain_shift.png", flush=True)
    return 0


def run_real(args: argparse.Namespace) -> int:
    """The detector (and ``--baseline``) on real photos and simulated scenes, side by side."""
    from hcgym.perception.detection import sim2real
    from hcgym.perception.detection.sensor import load_detector
    from hcgym.perception.detection.training import load_split
    from hcgym.report import write_report
    from hcgym.synthesis.dataset.test_sets import generate_test_set

    if args.sim_data is not None and not (args.sim_data / "annotations" / "val.json").is_file():
        raise SpecError("--sim-data", f"{args.sim_data} has no annotations/val.json (an `hcgym generate` folder)")
    try:
        real = sim2real.load_real(args.real)
    except SpecError as e:
        raise _flag(e) from None
    names = ([args.baseline] if args.baseline is not None else []) + [args.detector]
    if len(set(names)) < len(names):
        raise SpecError("--baseline", f"is the same detector as --detector ({args.detector})")
    detectors = {str(n): load_detector(n) for n in names}
    if args.sim_data is not None:
        sim, sim_name = load_split(args.sim_data, "val"), f"val split of {args.sim_data}"
    else:
        from hcgym.perception.detection.evaluation import SET_SEEDS

        seed = SET_SEEDS["urban"] + args.seed
        folder = generate_test_set(args.out / "data" / f"urban_s{args.seed}_n{args.urban_images}", "urban",
                                   args.urban_images, seed, workers=args.workers)
        sim, sim_name = load_split(folder, "test"), f"urban test set (seed {seed})"
    results = sim2real.run(detectors, real, sim, args.score_threshold, nms=args.nms, sim_name=sim_name)
    results.update(real_annotations=str(args.real or "shipped real test set"), seed=args.seed)
    write_report(args.out, results, sim2real.table_markdown(results), sim2real.figures(results, real))
    for r in results["rows"]:
        print(f"[evaluate] {r['model']}: real recall {100 * r['real']['recall']:.1f} %, "
              f"{r['real']['fp_per_image']:.2f} FP / image @ {args.score_threshold}, real AP0.5 "
              f"{r['real']['ap50']:.1f}; sim AP0.5 {r['sim']['ap50']:.1f}", flush=True)
    print(f"[evaluate] wrote {args.out}/results.json, table.md, sim2real.png, real_examples.png", flush=True)
    return 0


# ---------------------------------------------------------------- recordings
def _frames(source: Path, every: int):
    """(name, RGB image) of every image in a folder (sorted) or every ``every``-th frame of a video."""
    import cv2

    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise SpecError("--source", f"{source} holds no images ({', '.join(IMAGE_EXTS)})")
        for p in files:
            bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SpecError("--source", f"cannot read image {p}")
            yield p.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return
    if not source.is_file():
        raise SpecError("--source", f"not found: {source}")
    if source.suffix.lower() not in VIDEO_EXTS:
        raise SpecError("--source", f"expected a folder of images or a video ({', '.join(VIDEO_EXTS)}), got {source.name}")
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise SpecError("--source", f"cannot open video {source}")
    k = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if k % every == 0:
                yield f"frame_{k:06d}.jpg", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            k += 1
    finally:
        cap.release()
    if k == 0:
        raise SpecError("--source", f"no frame could be read from {source}")


def run_detections(args: argparse.Namespace) -> int:
    """AP and precision/recall of a COCO results file against COCO ground truth (target-box rules)."""
    from hcgym.perception.detection.evaluation import score_results_file
    from hcgym.report import write_files

    if args.annotations is None:
        raise SpecError("--annotations", "--detections needs the ground truth (--annotations COCO.json)")
    try:
        summary = score_results_file(args.detections, args.annotations, args.score_threshold)
    except SpecError as e:
        raise (_flag(e) if e.field == "detections" else e) from None
    write_files(args.out, {"summary.json": json.dumps(summary, indent=1)})
    print(f"[evaluate] {args.detections.name}: AP0.5 {summary['ap50']:.1f}, AP0.5:0.95 {summary['ap']:.1f}, "
          f"precision/recall @ {args.score_threshold} {summary['precision']:.1f}/{summary['recall']:.1f} "
          f"on {summary['images']} images; wrote {args.out}/summary.json", flush=True)
    return 0


def run_source(args: argparse.Namespace) -> int:
    import itertools
    import shutil

    import cv2

    from hcgym.paths import atomic_dir
    from hcgym.perception.detection.evaluation import run_recordings
    from hcgym.perception.detection.sensor import load_detector
    from hcgym.perception.scoring import load_coco_boxes
    from hcgym.report import write_files

    gt_by_name: dict[str, dict[str, Any]] | None = None
    if args.annotations is not None:
        if not args.source.is_dir():
            raise SpecError("--annotations", "AP needs --source to be a folder of the annotated images")
        gt_by_name = {Path(it["file_name"]).name: it for it in load_coco_boxes(args.annotations)}
    frames = _frames(args.source, args.every)
    frames = itertools.chain([next(frames)], frames)  # a bad source fails here, before anything is replaced
    detector = load_detector(args.detector)
    args.out.mkdir(parents=True, exist_ok=True)
    if (args.out / "overlays").exists():
        shutil.rmtree(args.out / "overlays")
    with atomic_dir(args.out / "overlays") as tmp:
        def overlay(name: str, image) -> None:
            cv2.imwrite(str(Path(tmp) / (Path(name).stem + ".jpg")), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

        try:
            results, summary = run_recordings(frames, detector, args.nms, args.score_threshold, gt_by_name, overlay)
        except SpecError as e:
            if e.field != "annotations":
                raise
            raise SpecError("--annotations", f"{e.problem} in {args.source}") from None
    summary = {"source": str(args.source), "detector": str(args.detector), "nms": args.nms, **summary}
    write_files(args.out, {"detections.json": json.dumps(results), "summary.json": json.dumps(summary, indent=1)})
    extra = f"; AP0.5 {summary['ap50']:.1f}, AP0.5:0.95 {summary['ap']:.1f}" if "ap50" in summary else ""
    print(f"[evaluate] {summary['frames']} frames, {summary['ms_per_frame']:.1f} ms per frame; wrote "
          f"{args.out}/overlays, detections.json, summary.json{extra}", flush=True)
    return 0
