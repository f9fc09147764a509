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
``--domain urban`` scores the urban set only.

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
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.scripts import _args

#: Seed's Table 12 ("precision at 0.5 IoU" on the Robotti field data; human only / human + negative).
PAPER_TABLE12 = [("SSD", "WIDER", 43.7, 26.2), ("SSD", "VOC", 53.5, 42.2), ("SSD", "COCO", 78.3, 68.0),
                 ("SSD - MobileNet", "VOC", 40.8, 18.8), ("SSD - MobileNet", "COCO", 60.7, 42.3),
                 ("CenterNet", "VOC", 43.4, 28.6), ("CenterNet", "COCO", 63.1, 54.8),
                 ("YOLOv3", "VOC", 63.4, 60.9), ("YOLOv3", "COCO", 78.9, 74.7)]
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def register(targets: argparse._SubParsersAction) -> None:
    d = targets.add_parser("detector", help="person detector: field domain shift (§2.6) or recordings",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = d.add_mutually_exclusive_group(required=True)
    mode.add_argument("--domain", choices=("field", "urban"), help="generated-domain protocol")
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
    d.add_argument("--workers", type=_args.positive_int, default=2, help="processes generating the sets")
    d.add_argument("--every", type=_args.positive_int, default=1, help="use every n-th video frame (--source)")
    d.add_argument("--out", type=Path, default=Path("out/evaluate-detector"), help="output directory")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "replay", 0) < 0:
        raise SpecError("--replay", f"expected >= 0, got {args.replay}")
    if getattr(args, "finetune_lr", 1.0) <= 0:
        raise SpecError("--finetune-lr", f"expected > 0, got {args.finetune_lr}")
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
    return run_domain(args)


# ---------------------------------------------------------------- generated domains
def scene_settings(domain: str) -> tuple[str, Any]:
    """World and :class:`SceneSettings` of the ``urban`` and ``field`` test domains."""
    from hcgym.synthesis.dataset import SceneSettings

    if domain == "urban":
        return "crowd_street", SceneSettings(humans=(1, 6), identities=48, occlusion=0.3, distance=(2.0, 14.0),
                                             splits=(0.0, 0.0, 1.0))
    return "field", SceneSettings(humans=(1, 4), identities=48, occlusion=0.1, distance=(5.0, 40.0),
                                  hfov=(70.0, 100.0), camera_height=(1.5, 3.0), camera_pitch=(-15.0, 0.0),
                                  splits=(0.0, 0.0, 1.0), empty_fraction=0.8, distortion=(-0.2, 0.03))


def generate_set(out: Path, domain: str, n: int, seed: int, workers: int, **overrides: Any) -> Path:
    """Generate (or reuse) a 384x288 test set of ``domain`` in ``out`` (all images in the test split)."""
    from hcgym.synthesis.dataset import GenerateConfig, generate

    world, scene = scene_settings(domain)
    scene = replace(scene, **overrides)
    cfg = GenerateConfig(out=out, n=n, seed=seed, world=world, size=(384, 288), scene=scene, workers=workers)
    print(f"[evaluate] {domain} set: {n} images, seed {seed} -> {out}", flush=True)
    generate(cfg, progress=True)
    return out


def _load(folder: Path, split: str = "test") -> list[dict[str, Any]]:
    from hcgym.perception.detection.training import load_split

    return load_split(folder, split)


def score(detector: Any, items: list[dict[str, Any]], nms_name: str, threshold: float) -> dict[str, Any]:
    """AP0.5, AP0.5:0.95, precision/recall at ``threshold`` and ms per image of a detector on items."""
    from hcgym.perception.detection.metrics import coco_ap, precision_at
    from hcgym.perception.detection.training import detect_all

    t0 = time.perf_counter()
    dets = detect_all(detector, items, nms_name)
    ms = 1000 * (time.perf_counter() - t0) / max(len(items), 1)
    return {**coco_ap(items, dets), **precision_at(items, dets, threshold), "ms": round(ms, 2),
            "images": len(items), "people": int(sum((~it["ignore"]).sum() for it in items))}


def run_domain(args: argparse.Namespace) -> int:
    import copy

    from hcgym.paths import atomic_write_bytes
    from hcgym.perception.detection.sensor import PersonDetector, load_detector

    detector = load_detector(args.detector)
    if not isinstance(detector, PersonDetector) and args.finetune and any(args.finetune):
        raise SpecError("--detector", "fine-tuning needs a PyTorch checkpoint, not an ONNX export")
    data = args.out / "data"
    s = args.seed
    urban = _load(generate_set(data / f"urban_s{s}_n{args.urban_images}", "urban", args.urban_images,
                               10_000 + s, args.workers))
    results: dict[str, Any] = {"domain": args.domain, "seed": s, "detector": str(args.detector),
                               "fingerprint": detector.fingerprint, "nms": args.nms,
                               "score_threshold": args.score_threshold, "replay": args.replay,
                               "finetune_steps": args.finetune_steps, "finetune_lr": args.finetune_lr, "rows": []}

    def evaluate(name: str, det: Any, k: int) -> None:
        row = {"model": name, "finetune_images": k, "urban": score(det, urban, args.nms, args.score_threshold)}
        if args.domain == "field":
            row["human_only"] = score(det, with_people, args.nms, args.score_threshold)
            row["human_negative"] = score(det, field, args.nms, args.score_threshold)
        results["rows"].append(row)
        print(f"[evaluate] {name}: " + ", ".join(f"{key} AP0.5 {row[key]['ap50']:.1f}" for key in
                                                ("urban", "human_only", "human_negative") if key in row), flush=True)

    field = with_people = pool = replay = []
    if args.domain == "field":
        field = _load(generate_set(data / f"field_s{s}_n{args.n_images}", "field", args.n_images, 20_000 + s,
                                   args.workers))
        with_people = [it for it in field if len(it["boxes"])]
        if not any((~it["ignore"]).any() for it in with_people):
            raise SpecError("--n-images", f"the {len(field)} field images hold no visible person; use more images")
        ks = sorted({k for k in args.finetune if k > 0})
        if ks:
            pool = _load(generate_set(data / f"field_pool_s{s}_n{max(ks)}", "field", max(ks), 30_000 + s,
                                      args.workers, empty_fraction=0.5))
            if args.replay:
                replay = _load(generate_set(data / f"urban_replay_s{s}_n{args.replay}", "urban", args.replay,
                                            40_000 + s, args.workers, humans=(1, 40), occlusion=0.5))
    evaluate("pretrained", detector, 0)
    for k in sorted({k for k in args.finetune if k > 0}) if args.domain == "field" else []:
        from hcgym.perception.detection.training import DetectorTrainConfig, train_detector

        # the k field images, repeated to balance the replayed urban images (half of every epoch)
        items = pool[:k] * max(1, -(-len(replay) // k)) + replay
        batch = min(8, len(items))
        epochs = max(1, -(-args.finetune_steps // max(1, len(items) // batch)))
        cfg = DetectorTrainConfig(epochs=epochs, batch_size=batch, lr=args.finetune_lr, warmup=10, seed=s, threads=2)
        print(f"[evaluate] fine-tuning on {k} field images + {len(replay)} replayed urban images "
              f"({epochs} epochs of {len(items) // batch} steps)", flush=True)
        tuned = train_detector(items, cfg, model=copy.deepcopy(detector.model), progress=False,
                               log=lambda *_: None).model
        evaluate(f"fine-tuned k={k}", PersonDetector(model=tuned, nms=args.nms), k)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "results.json", json.dumps(results, indent=1).encode())
    atomic_write_bytes(args.out / "table.md", domain_table(results).encode())
    domain_figure(results, args.out / "domain_shift.png")
    print(f"[evaluate] wrote {args.out}/results.json, table.md, domain_shift.png", flush=True)
    return 0


def domain_table(results: dict[str, Any]) -> str:
    """Markdown: our rows (AP0.5 and precision per subset) and the seed's Table 12 below."""
    field = results["domain"] == "field"
    head = "| model | fine-tuned on | urban AP0.5 |"
    sep = "|---|---|---|"
    if field:
        head += " field human only AP0.5 | field human + negative AP0.5 | precision / recall @ {t} (human only) | precision / recall @ {t} (human + negative) |".format(t=results["score_threshold"])
        sep += "---|---|---|---|"
    lines = [f"Person detector `{results['detector']}` ({results['fingerprint']}), NMS `{results['nms']}`, "
             f"seed {results['seed']}. AP in percent (COCO AP at IoU 0.5, 100 detections per image).", "",
             head + " ms / image |", sep + "---|"]
    for r in results["rows"]:
        replay = f" + {results['replay']} urban (replay)" if results.get("replay") else ""
        cells = [r["model"], f"{r['finetune_images']} field images{replay}" if r["finetune_images"] else "-",
                 f"{r['urban']['ap50']:.1f}"]
        if field:
            cells += [f"{r['human_only']['ap50']:.1f}", f"{r['human_negative']['ap50']:.1f}",
                      f"{r['human_only']['precision']:.1f} / {r['human_only']['recall']:.1f}",
                      f"{r['human_negative']['precision']:.1f} / {r['human_negative']['recall']:.1f}"]
        cells.append(f"{r['urban']['ms']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    if field:
        r0 = results["rows"][0]
        lines += ["", f"Sets: urban {r0['urban']['images']} images ({r0['urban']['people']} people), field "
                      f"{r0['human_negative']['images']} images of which {r0['human_only']['images']} hold people "
                      f"({r0['human_only']['people']} people).", "",
                  "Seed's Table 12 (Robotti field data, \"precision at 0.5 IoU\", pretrained detectors, no fine-tuning):",
                  "", "| method | trained on | human only | human + negative |", "|---|---|---|---|"]
        lines += [f"| {m} | {d} | {a} | {b} |" for m, d, a, b in PAPER_TABLE12]
    return "\n".join(lines) + "\n"


def domain_figure(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("urban", "urban"), ("human_only", "field: human only"), ("human_negative", "field: human + negative")]
    keys = [k for k in keys if k[0] in results["rows"][0]]
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=110)
    width = 0.8 / len(results["rows"])
    for j, r in enumerate(results["rows"]):
        xs = np.arange(len(keys)) + (j - (len(results["rows"]) - 1) / 2) * width
        vals = [r[k]["ap50"] for k, _ in keys]
        ax.bar(xs, vals, width, label=r["model"])
        for x, v in zip(xs, vals):
            ax.text(x, v + 1, f"{v:.0f}", ha="center", fontsize=7)
    ax.set_xticks(np.arange(len(keys)), [label for _, label in keys])
    ax.set_ylabel("AP0.5 (%)")
    ax.set_ylim(0, 105)
    ax.set_title("person detector: urban -> field domain shift")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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


def draw(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
    """Detections (green, with scores) and optional ground truth (white) drawn on a copy of the image."""
    import cv2

    out = image.copy()
    for b in (gt if gt is not None else []):
        cv2.rectangle(out, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (255, 255, 255), 1)
    for b, s in zip(boxes, scores):
        cv2.rectangle(out, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (40, 220, 40), 2)
        cv2.putText(out, f"{s:.2f}", (int(b[0]), max(10, int(b[1]) - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (40, 220, 40), 1, cv2.LINE_AA)
    return out


def run_detections(args: argparse.Namespace) -> int:
    """AP and precision/recall of a COCO results file against COCO ground truth (target-box rules)."""
    from hcgym.paths import atomic_write_bytes
    from hcgym.perception.detection.ground_truth import load_coco_boxes
    from hcgym.perception.detection.metrics import coco_ap, precision_at
    from hcgym.perception.nms.candidates import CocoResultsDetector

    if args.annotations is None:
        raise SpecError("--annotations", "--detections needs the ground truth (--annotations COCO.json)")
    if not args.detections.is_file():
        raise SpecError("--detections", f"not found: {args.detections}")
    items = load_coco_boxes(args.annotations)
    try:
        results = CocoResultsDetector(args.detections)
    except SpecError as e:
        raise SpecError("--detections", e.problem) from None
    dets = [results.candidates(None, max_candidates=10 ** 9, pre_nms_iou=None, key=it["id"]) for it in items]
    if not any(len(b) for b, _ in dets):
        raise SpecError("--detections", f"no detection in {args.detections} belongs to an image of {args.annotations}")
    summary = {"detections": str(args.detections), "annotations": str(args.annotations), "images": len(items),
               "people": int(sum((~it["ignore"]).sum() for it in items)),
               "detections_matched_to_images": int(sum(len(b) for b, _ in dets)),
               **coco_ap(items, dets), **precision_at(items, dets, args.score_threshold),
               "score_threshold": args.score_threshold}
    atomic_write_bytes(args.out / "summary.json", json.dumps(summary, indent=1).encode())
    print(f"[evaluate] {args.detections.name}: AP0.5 {summary['ap50']:.1f}, AP0.5:0.95 {summary['ap']:.1f}, "
          f"precision/recall @ {args.score_threshold} {summary['precision']:.1f}/{summary['recall']:.1f} "
          f"on {len(items)} images; wrote {args.out}/summary.json", flush=True)
    return 0


def run_source(args: argparse.Namespace) -> int:
    import itertools
    import shutil

    import cv2

    from hcgym.paths import atomic_dir, atomic_write_bytes
    from hcgym.perception import nms as nms_lib
    from hcgym.perception.detection.ground_truth import load_coco_boxes
    from hcgym.perception.detection.metrics import coco_ap
    from hcgym.perception.detection.sensor import load_detector

    gt_by_name: dict[str, dict[str, Any]] | None = None
    if args.annotations is not None:
        if not args.source.is_dir():
            raise SpecError("--annotations", "AP needs --source to be a folder of the annotated images")
        gt_by_name = {Path(it["file_name"]).name: it for it in load_coco_boxes(args.annotations)}
    frames = _frames(args.source, args.every)
    frames = itertools.chain([next(frames)], frames)  # a bad source fails here, before anything is replaced
    detector = load_detector(args.detector)
    method = nms_lib.make(args.nms)
    records, results, items, dets = [], [], [], []
    t_total, n = 0.0, 0
    args.out.mkdir(parents=True, exist_ok=True)
    if (args.out / "overlays").exists():
        shutil.rmtree(args.out / "overlays")
    with atomic_dir(args.out / "overlays") as tmp:
        for name, image in frames:
            t0 = time.perf_counter()
            boxes, scores = detector.candidates(image, 100)
            r = method(boxes, scores, image)
            t_total += time.perf_counter() - t0
            n += 1
            b, s = r.boxes[r.keep], r.scores[r.keep]
            shown = s >= args.score_threshold
            gt = gt_by_name.get(name) if gt_by_name is not None else None
            overlay = draw(image, b[shown], s[shown], None if gt is None else gt["boxes"])
            cv2.imwrite(str(Path(tmp) / (Path(name).stem + ".jpg")), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            records.append({"file_name": name, "detections": int(shown.sum())})
            image_id = gt["id"] if gt is not None else n
            results += [{"image_id": image_id, "file_name": name, "category_id": 1, "score": float(sc),
                         "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]}
                        for (x0, y0, x1, y1), sc in zip(b, s)]
            if gt is not None:
                items.append(gt)
                dets.append((b, s))
    summary: dict[str, Any] = {"source": str(args.source), "detector": str(args.detector), "nms": args.nms,
                               "frames": n, "ms_per_frame": round(1000 * t_total / max(n, 1), 2),
                               "score_threshold": args.score_threshold, "frames_detail": records}
    if gt_by_name is not None:
        if not items:
            raise SpecError("--annotations", f"none of its file names match the images in {args.source}")
        summary.update(coco_ap(items, dets), annotated_frames=len(items))
    atomic_write_bytes(args.out / "detections.json", json.dumps(results).encode())
    atomic_write_bytes(args.out / "summary.json", json.dumps(summary, indent=1).encode())
    extra = f"; AP0.5 {summary['ap50']:.1f}, AP0.5:0.95 {summary['ap']:.1f}" if "ap50" in summary else ""
    print(f"[evaluate] {n} frames, {summary['ms_per_frame']:.1f} ms per frame; wrote {args.out}/overlays, "
          f"detections.json, summary.json{extra}", flush=True)
    return 0
