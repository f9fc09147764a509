"""The sensor bench on real pictures: a sensor run over a :class:`~hcgym.perception.bench_source.Source`
(photos, a video, the shipped real-image set), its outputs kept per image, and scored where COCO labels exist.

Scoring uses the bench's own scorers unchanged on :class:`~hcgym.types.Frame` s whose ground truth comes from
the labels (:func:`hcgym.perception.bench_source.humans_of`):

=========================  ==================================================================================
task (of the sensor)       scored on labelled images
=========================  ==================================================================================
person detection           recall and precision at IoU 0.5 at ``score_threshold``, false positives per
                           image, AP0.5 and AP0.5:0.95 (pycocotools) over every detection
person detection (NMS)     the same, on the candidates of the person detector (as the bench)
face detection             recall and precision at IoU ``face_iou``, false positives per image
face landmarks             their face boxes, as face detection (no real landmark labels)
anything else              not scored: outputs and latency only, with a note
=========================  ==================================================================================

Outputs: every image's sensor output (its native fields, JSON-ready) and, for boxes of a detector, the COCO
results list ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`` as the sensor returns them (its
default operating point). Protocol shape of :mod:`hcgym.report`: :func:`run` and :func:`table_markdown`;
the overlays (ground truth green, output red) come from :func:`hcgym.perception.bench.overlay_frames`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.bench_base import BenchConfig, Drawn, Scorer, rounded
from hcgym.perception.bench_source import ImageLabels, Source, labelled_frame
from hcgym.perception.registry import SensorSpec
from hcgym.types import Detections, Landmarks

#: Bench tasks scored on real labels, and the scorer each uses (landmark sensors: their boxes as faces).
SCORED_TASKS = ("person detection", "person detection (NMS)", "face detection", "face landmarks")


def native(value: Any, nd: int = 3) -> Any:
    """A sensor output as JSON: dataclasses as dicts of their fields, arrays as nested lists rounded to ``nd``
    decimals (NaN and infinities as ``None``)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: native(getattr(value, f.name), nd) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return native(value.tolist(), nd)
    if isinstance(value, (list, tuple)):
        return [native(v, nd) for v in value]
    if isinstance(value, dict):
        return {str(k): native(v, nd) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return round(float(value), nd) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def boxes_of(result: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(boxes (N, 4), scores (N,))`` of a result that holds boxes: ``Detections``, the kept boxes of an
    ``NmsResult``, the face boxes of ``Landmarks`` (score 1); ``None`` otherwise."""
    if isinstance(result, Detections):
        return np.asarray(result.boxes, np.float64).reshape(-1, 4), np.asarray(result.scores, np.float64).reshape(-1)
    if hasattr(result, "keep") and hasattr(result, "boxes"):
        keep = np.asarray(result.keep, int)
        return np.asarray(result.boxes, np.float64)[keep], np.asarray(result.scores, np.float64)[keep]
    if isinstance(result, Landmarks):
        boxes = np.asarray(result.boxes, np.float64).reshape(-1, 4)
        return boxes, np.ones(len(boxes))
    return None


def drawn_of(result: Any) -> Drawn:
    """What an unscored output shows on the overlay: its boxes and points."""
    found = boxes_of(result)
    boxes = found[0] if found is not None else getattr(result, "boxes", None)
    points = getattr(result, "points", None)
    return Drawn(pred_boxes=[] if boxes is None else list(np.asarray(boxes, np.float64).reshape(-1, 4)),
                 pred_points=[] if points is None else [np.asarray(p)[:, :2] for p in points])


def _scorer(config: BenchConfig, spec: SensorSpec, task: str) -> Scorer | None:
    from hcgym.perception.bench import task_for
    from hcgym.perception.bench_scorers import FaceDetectionScorer

    if task not in SCORED_TASKS:
        return None
    return FaceDetectionScorer(config, spec) if task == "face landmarks" else task_for(spec).scorer(config, spec)


def category(spec: SensorSpec, categories: dict[str, int]) -> int | None:
    """COCO category id of the sensor's boxes: ``person`` for person detectors and NMS, ``face`` for face
    detectors and landmark sensors (ids of the labels, else 1 and 2); ``None`` for other sensors."""
    if "person" in spec.kind or spec.output == "NmsResult":
        return categories.get("person", 1)
    if "face" in spec.kind and spec.output in ("Detections", "Landmarks"):
        return categories.get("face", 2)
    return None


def run(config: BenchConfig, source: Source, sensor: Any, spec: SensorSpec,
        labels: dict[str, ImageLabels] | None = None, limit: int | None = None,
        categories: dict[str, int] | None = None, on_image: Callable[[str, np.ndarray, Drawn], None] | None = None,
        progress: bool = True) -> dict[str, Any]:
    """Run ``sensor`` on every picture of ``source`` (at most ``limit``) and score it on the labelled ones.

    Args:
        config: thresholds of the scorers (``score_threshold``, ``face_iou``, ``min_pixels``, ...).
        labels: COCO labels by image name (:func:`~hcgym.perception.bench_source.read_coco`); with labels only
            the labelled pictures are run.
        categories: COCO category ids by name, for the results list (default person 1, face 2).
        on_image: called with ``(name, rgb, Drawn)`` after each picture (overlays are drawn and written as the
            pictures stream past, so a long video is never held in memory).

    Returns:
        ``{"config", "sensor", "source", "task", "scored", "frames", "labelled", "metrics", "notes",
        "latency_ms", "images", "detections"}``, JSON-ready.
    """
    from tqdm import tqdm

    from hcgym.perception.bench import task_for

    task = task_for(spec).name
    scorer = _scorer(config, spec, task)
    scored = scorer is not None and labels is not None
    cat = category(spec, categories or {})
    inputs = scorer.inputs if scorer is not None else (lambda frame: (frame,))
    images, dets, latencies = [], [], []
    k = 0
    for name, rgb in tqdm(source.items(limit), desc=f"{spec.id} on {source.kind}", unit="image", disable=not progress,
                          leave=False):
        lab = None if labels is None else labels.get(name)
        if labels is not None and lab is None:
            continue
        frame = labelled_frame(rgb, lab, index=k, fps=source.fps, name=name)
        args = inputs(frame)
        if not latencies:
            sensor(*args)  # warm-up: lazy model loading is not latency
        t0 = time.perf_counter()
        result = sensor(*args)
        latencies.append(1000.0 * (time.perf_counter() - t0))
        if scored:
            scored_result = result if task != "face landmarks" else Detections(*boxes_of(result), label="face")
            drawn = scorer.add(k, frame, scored_result)
        else:
            drawn = drawn_of(result)
        image_id = lab.image_id if lab is not None and lab.image_id is not None else k + 1
        images.append({"image_id": image_id, "file_name": name, "width": int(rgb.shape[1]),
                       "height": int(rgb.shape[0]), "labelled": lab is not None, "output": native(result)})
        found = boxes_of(result) if cat is not None else None
        for b, s in zip(*(found or ((), ()))):
            dets.append({"image_id": image_id, "category_id": cat, "score": round(float(s), 5),
                         "bbox": [round(float(b[0]), 2), round(float(b[1]), 2), round(float(b[2] - b[0]), 2),
                                  round(float(b[3] - b[1]), 2)]})
        if on_image is not None:
            on_image(name, rgb, drawn)
        k += 1
    if k == 0:
        raise SpecError("--source", "no picture to run on" + (" (none of the labelled images)" if labels else ""))
    notes: list[str] = []
    metrics: dict[str, Any] | None = None
    if scored:
        metrics = scorer.summary()
        fp = metrics.get("false_positives")
        metrics["false_positives_per_image"] = rounded(fp / k, 4) if fp is not None else None
        notes += scorer.notes
        if task == "face landmarks":
            notes.append("landmark positions have no real ground truth: the sensor's face boxes are scored as face "
                         "detection")
    elif labels is None:
        notes.append("no labels (--annotations): outputs and latency only")
    else:
        notes.append(f"{spec.id} ({task}) is not scored on real labels, which hold person and face boxes only: "
                     "outputs and latency only")
    lat = np.asarray(latencies)
    return {"config": dataclasses.asdict(config), "sensor": spec.as_dict(),
            "source": {"kind": source.kind, "path": str(source.path), "fps": source.fps},
            "task": task, "scored": scored, "frames": k, "labelled": sum(i["labelled"] for i in images),
            "metrics": metrics, "notes": notes,
            "latency_ms": {"median": round(float(np.median(lat)), 3), "p90": round(float(np.percentile(lat, 90)), 3),
                           "calls": int(lat.size)},
            "images": images, "detections": dets}


def table_markdown(results: dict[str, Any]) -> str:
    """``table.md``: the source, the metrics (when scored), latency and the notes."""
    from hcgym.report import markdown_table

    s, lat = results["source"], results["latency_ms"]
    lines = [f"# Sensor bench: {results['sensor']['id']} on {s['kind']} {s['path']}", "",
             f"Task: **{results['task']}**; {results['frames']} pictures, {results['labelled']} labelled; "
             f"{len(results['detections'])} boxes in the results.", ""]
    m = results["metrics"]
    if m:
        keys = [key for key, v in m.items() if not isinstance(v, (list, dict))]
        lines += markdown_table(keys, [[("-" if m[key] is None else f"{m[key]:.3f}" if isinstance(m[key], float)
                                         else str(m[key])) for key in keys]])
        lines.append("")
    lines += [f"Latency per call: median {lat['median']:.1f} ms, p90 {lat['p90']:.1f} ms ({lat['calls']} calls).", ""]
    if results["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    return "\n".join(lines)


__all__ = ["SCORED_TASKS", "boxes_of", "category", "drawn_of", "native", "run", "table_markdown"]
