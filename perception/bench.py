"""The sensor bench: any registered sensor scored against the ground truth of rendered frames.

The bench consumes an iterable of :class:`~hcgym.types.Frame` s with their ground truth (``frame.humans``;
:func:`hcgym.synthesis.bench_frames.iter_world_frames` renders them from a world over time) and never
drives a simulator itself. What it scores follows from the sensor's :class:`SensorSpec` (``kind`` and
``output``) through :data:`TASK_TABLE`; a new sensor whose output type is in the table is scored without
any change here.

=====================  ===============================================================================
task                   scored
=====================  ===============================================================================
person detection       ``Detections`` of a ``person`` detector: target boxes and ignore rules of
                       :mod:`hcgym.perception.scoring` (``bbox_amodal`` clipped to the image), AP0.5 and
                       AP0.5:0.95 (pycocotools), precision and recall at ``score_threshold``, greedy
                       matching at IoU 0.5.
NMS                    ``NmsResult`` of a post-processor, run on the raw candidates of the person detector
                       (``person/centernet``) of each frame and scored as person detection
                       (:class:`~hcgym.perception.bench_scorers.NmsScorer`); latency is the NMS call only.
face detection         ``Detections`` of a ``face`` detector: ``HumanTruth.face_box`` of visible faces,
                       greedy matching at IoU ``face_iou`` (0.4: the ground-truth box runs brow to chin,
                       detectors draw their own conventions), recall and precision.
face landmarks         ``Landmarks``: faces matched as above; ``dlib68`` points scored by NME (mean point
                       error / inter-ocular distance between the outer eye corners 36 and 45) against
                       ``MotionTruth.face68``; ``mediapipe478`` has no ground-truth correspondence and is
                       scored as a face detector only.
face recognition       ``Embeddings``: identified in a gallery of the world's people (:func:`enrol`); rank-1,
                       identified within the cut-off, the confidence ``c = 1 - d / a`` of correct and wrong
                       answers (:mod:`hcgym.perception.bench_identity`).
classification         ``Classification`` of a kind naming ``action``, ``expression`` or ``gesture``:
                       accuracy and a confusion matrix against ``MotionTruth`` (needs moving people;
                       :mod:`hcgym.perception.bench_classes`).
body keypoints         ``Keypoints`` of a body scheme (``mediapipe33``, ``coco17``;
                       :data:`hcgym.types.KEYPOINT_SCHEMES`): PCK@0.2 of the torso diameter (as
                       :mod:`hcgym.synthesis.motion_fidelity`) and MPJPE in pixels over the visible mapped
                       joints. Ground truth: the NTU skeleton of moving people (``MotionTruth.skeleton``),
                       the COCO keypoints (``HumanTruth.keypoints``) of static people; both carry the 12
                       mapped joints (shoulders, elbows, wrists, hips, knees, ankles).
hand keypoints         ``Keypoints`` of scheme ``mediapipe21``: hands matched by side and proximity to
                       ``MotionTruth.hand_keypoints``, PCK@0.2 of the hand size (longer side of the hand's
                       point box), MPJPE in pixels, detection rate. Needs moving people.
anything else          latency only (frame sensors), with a note saying that no task scores its output.
=====================  ===============================================================================

Every sensor: latency per call (median and 90th percentile, ms; one untimed warm-up call first, after which a
sensor with a ``reset()`` (a stateful, continual one) is reset). Breakdowns
of the task's metric by distance band, |face yaw| band (15 degrees), occlusion fraction
(:func:`~hcgym.perception.bench_base.occlusion_fraction`: the occluded share of the in-image keypoints) and
people per frame (people in view with at least ``min_pixels`` visible pixels).

:func:`make_sensor` makes the sensor (or the ONNX Runtime sensor of an export, ``BenchConfig.onnx``) before
any frame is rendered, refusing with one :class:`SpecError` a sensor that needs a user file it was not
given. Protocol shape of :mod:`hcgym.report`: :func:`run`, :func:`table_markdown`, :func:`figures`; and
:func:`overlay_frames` for the overlay video (ground truth green, sensor output red).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hcgym.errors import HcgymError, SpecError
from hcgym.perception.bench_base import (
    BANDS,
    BREAKDOWN_TITLES,
    BenchConfig,
    Drawn,
    LatencyScorer,
    Scorer,
    band_of,
    greedy_match,
    occlusion_fraction,
)
from hcgym.perception.bench_classes import ClassificationScorer, confusion_markdown, confusion_png, label_source
from hcgym.perception.bench_identity import RecognitionScorer, enrol
from hcgym.perception.bench_scorers import (
    FaceDetectionScorer,
    KeypointScorer,
    LandmarkScorer,
    NmsScorer,
    PersonDetectionScorer,
)
from hcgym.perception.registry import SensorSpec
from hcgym.types import Frame


# ------------------------------------------------------------------ the task table
@dataclass(frozen=True)
class BenchTask:
    """One row of :data:`TASK_TABLE`: which sensors it scores and how.

    Attributes:
        name: the task's name in the report.
        matches: predicate on the sensor's :class:`SensorSpec` (``kind``, ``output``, ``id``).
        scorer: the :class:`Scorer` class.
        truth: the ground truth it scores against, in words.
        needs_motion: whether it can only be scored on worlds with moving people (``MotionTruth``).
        needs_gallery: whether :func:`run` needs a gallery of the world's people (:func:`enrol`).
    """

    name: str
    matches: Callable[[SensorSpec], bool]
    scorer: type[Scorer]
    truth: str
    needs_motion: bool = False
    needs_gallery: bool = False


def _is_hands(s: SensorSpec) -> bool:
    return s.task in ("hand", "hands") or "hand" in s.kind


#: First match wins; a sensor matching no row is timed only (:class:`LatencyScorer`).
TASK_TABLE: tuple[BenchTask, ...] = (
    BenchTask("person detection", lambda s: s.output == "Detections" and "person" in s.kind, PersonDetectionScorer,
              "HumanTruth.bbox_amodal of people in view (scoring.person_boxes rules)"),
    BenchTask("person detection (NMS)", lambda s: s.output == "NmsResult", NmsScorer,
              "HumanTruth.bbox_amodal of people in view (scoring.person_boxes rules); candidates of "
              "person/centernet"),
    BenchTask("face detection", lambda s: s.output == "Detections" and "face" in s.kind, FaceDetectionScorer,
              "HumanTruth.face_box of visible faces"),
    BenchTask("face landmarks", lambda s: s.output == "Landmarks", LandmarkScorer,
              "MotionTruth.face68 (dlib68); face boxes only (mediapipe478)"),
    BenchTask("face recognition", lambda s: s.output == "Embeddings", RecognitionScorer,
              "HumanTruth.identity of visible faces, gallery of frontal portraits", needs_gallery=True),
    BenchTask("classification", lambda s: s.output == "Classification" and label_source(s) is not None,
              ClassificationScorer, "MotionTruth labels (action, expression or hand gesture by the sensor's kind)",
              needs_motion=True),
    BenchTask("hand keypoints", lambda s: s.output == "Keypoints" and _is_hands(s), KeypointScorer,
              "MotionTruth.hand_keypoints", needs_motion=True),
    BenchTask("body keypoints", lambda s: s.output == "Keypoints", KeypointScorer,
              "MotionTruth.skeleton (moving people) or HumanTruth.keypoints (static people)"),
)
LATENCY_ONLY = BenchTask("latency only", lambda s: True, LatencyScorer, "none")


def task_for(spec: SensorSpec) -> BenchTask:
    """The :data:`TASK_TABLE` row that scores ``spec`` (:data:`LATENCY_ONLY` when none does)."""
    return next((t for t in TASK_TABLE if t.matches(spec)), LATENCY_ONLY)


def runs_on_frames(spec: SensorSpec) -> bool:
    """Whether the sensor is called on a frame (``input`` begins with ``rgb frame``)."""
    return spec.input.startswith("rgb frame")


def runs(spec: SensorSpec) -> bool:
    """Whether the bench calls the sensor: a task of :data:`TASK_TABLE` scores it (and makes its inputs), or it
    takes a frame (latency only)."""
    return task_for(spec) is not LATENCY_ONLY or runs_on_frames(spec)


def check_world(spec: SensorSpec, animated: bool, world: str = "") -> None:
    """Refuse, before anything is rendered, a sensor whose task needs moving people in a world without any."""
    task = task_for(spec)
    if task.needs_motion and not animated:
        raise SpecError("world", f"{spec.id} ({task.name}) is scored against {task.truth}, which only moving "
                                 f"people have, and world {world!r} has none: use a world with behaviour "
                                 "timelines (greeting, plaza, living_room)")


# ------------------------------------------------------------------ making the sensor
def _required_arguments(spec: SensorSpec, given: dict[str, Any]) -> list[str]:
    """Parameters of the sensor's entry point without a default that neither the registry nor ``given`` set."""
    import inspect

    from hcgym.perception.registry import resolve

    try:
        params = inspect.signature(resolve(spec.entry_point)).parameters.values()
    except (TypeError, ValueError):  # no signature to read: the call itself will tell
        return []
    return [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in spec.kwargs and p.name not in given]


def _onnx_sensor(config: BenchConfig, spec: SensorSpec, kwargs: dict[str, Any]) -> Any:
    """The :class:`~hcgym.perception.base.OnnxSensor` of ``config.onnx``; keyword arguments must be ``threads``
    or keys of the sidecar's config (which they override)."""
    from pathlib import Path

    from hcgym.perception.base import OnnxSensor, read_sidecar

    path = Path(config.onnx)
    sidecar = path.with_suffix(path.suffix + ".json")
    try:
        if kwargs and path.is_file() and sidecar.is_file():
            known = set(read_sidecar(sidecar, spec.id)[2]) | {"threads"}
            if set(kwargs) - known:
                raise SpecError("sensor_kwargs", f"{', '.join(sorted(set(kwargs) - known))}: not a setting of the "
                                                 f"export {path.name} (its sidecar's config: {', '.join(sorted(known))})")
        return OnnxSensor(path, sensor=spec.id, **kwargs)
    except SpecError as e:  # a config the overrides break is the keyword arguments' fault
        raise SpecError("sensor_kwargs" if e.field in ("sensor_kwargs", "config") else "onnx", e.problem) from None
    except Exception as e:  # noqa: BLE001 - ONNX Runtime refusing the file gets one message
        raise SpecError("onnx", f"{config.onnx} is not an ONNX model ONNX Runtime can load "
                                f"({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})") from None


def make_sensor(config: BenchConfig, spec: SensorSpec) -> Any:
    """The sensor of a run: ``hcgym.perception.make(config.sensor, **config.sensor_kwargs)``, or with
    ``config.onnx`` the :class:`~hcgym.perception.base.OnnxSensor` of that export (keyword arguments:
    ``threads`` and overrides of the sidecar's config). Refuses with one :class:`SpecError` (field
    ``sensor_kwargs`` or ``onnx``) a sensor that needs a user-supplied file it was not given (a model pack,
    an ONNX model), a missing or unreadable file, an export of another sensor, or keyword arguments the
    sensor does not take."""
    from hcgym.perception.registry import make

    kwargs = dict(config.sensor_kwargs)
    if config.onnx is not None:
        return _onnx_sensor(config, spec, kwargs)
    missing = _required_arguments(spec, kwargs)
    if missing:
        what = ", ".join(f"{m}=PATH" for m in missing)
        raise SpecError("sensor_kwargs", f"{spec.id} needs a user-supplied file that hcgym does not ship: pass "
                                         f"{what} (--sensor-arg {missing[0]}=PATH); {spec.description}")
    try:
        return make(spec.id, **kwargs)
    except HcgymError as e:
        raise SpecError("sensor_kwargs", str(e)) from None
    except TypeError as e:
        raise SpecError("sensor_kwargs", f"{spec.id} does not take these arguments: {e}") from None


# ------------------------------------------------------------------ the protocol
def run(config: BenchConfig, frames: Iterable[Frame], progress: bool = True, sensor: Any = None,
        spec: SensorSpec | None = None, keep_overlay: bool = False, gallery: Any = None) -> dict[str, Any]:
    """Run the sensor on every frame and score it (see the module docstring).

    Args:
        config: the run.
        frames: frames with ground truth, in time order.
        sensor: an already made sensor (default: :func:`make_sensor`).
        spec: its :class:`SensorSpec` (default: the registry's spec of ``config.sensor``).
        keep_overlay: keep the frames and what to draw on them under ``_overlay`` (for :func:`overlay_frames`).
        gallery: face recognition: the :class:`~hcgym.perception.face.gallery.Gallery` of the people in the
            frames (:func:`enrol`, with this sensor); required for recognizers.

    Returns:
        ``{"config", "sensor", "task", "truth", "frames", "metrics", "primary", "breakdown", "notes",
        "latency_ms", "onnx", "records"}`` and the task's extras (``gallery``, ``confusion``), JSON-ready
        (``_overlay`` when asked). Latency varies between runs; every other key is a function of the frames.
    """
    from tqdm import tqdm

    from hcgym.perception.registry import spec as spec_of

    spec = spec or spec_of(config.sensor)
    task = task_for(spec)
    scorer = task.scorer(config, spec)
    if task.needs_gallery:
        if gallery is None:
            raise SpecError("gallery", f"{spec.id} ({task.name}) is scored against a gallery of the people in the "
                                       "frames: enrol them first (hcgym.perception.bench.enrol)")
        scorer.gallery = gallery
    if runs(spec) and sensor is None:
        sensor = make_sensor(config, spec)
    latencies: list[float] = []
    overlay: list[tuple[np.ndarray, Drawn]] = []
    n = 0
    for k, frame in enumerate(tqdm(frames, desc=f"bench {spec.id}", unit="frame", disable=not progress, leave=False)):
        drawn = Drawn()
        if scorer.runnable:
            args, result = scorer.inputs(frame), None
            if args is not None:
                if not latencies:
                    sensor(*args)  # warm-up: lazy model loading is not latency
                    if callable(getattr(sensor, "reset", None)):
                        sensor.reset()  # a stateful (continual) sensor starts again from the first frame
                t0 = time.perf_counter()
                result = sensor(*args)
                latencies.append(1000.0 * (time.perf_counter() - t0))
            drawn = scorer.add(k, frame, result)
        if keep_overlay:
            overlay.append((frame.rgb, drawn))
        n += 1
    if n == 0:
        raise SpecError("frames", "no frame to score")
    metrics = scorer.summary()
    breakdown = {}
    if scorer.primary is not None:
        for kind in BANDS:
            rows = []
            for lo, _hi, label in BANDS[kind]:
                sub = [r for r in scorer.records if band_of(kind, r[kind]) == label]
                if sub:
                    rows.append({"band": label, "low": lo, "n": len(sub), **scorer.metrics(sub)})
            breakdown[kind] = rows
    lat = np.asarray(latencies)
    onnx = None
    if config.onnx is not None:
        onnx = {"path": str(config.onnx), "sensor": spec.id, "fingerprint": getattr(sensor, "fingerprint", None)}
        scorer.notes.append(f"ran the ONNX Runtime export {config.onnx} of {spec.id} (not the PyTorch sensor)")
    results: dict[str, Any] = {
        "config": asdict(config), "sensor": spec.as_dict(), "task": task.name, "truth": task.truth, "frames": n,
        "metrics": metrics, "primary": scorer.primary, "primary_label": scorer.primary_label,
        "breakdown": breakdown, "notes": scorer.notes,
        "latency_ms": ({"median": round(float(np.median(lat)), 3), "p90": round(float(np.percentile(lat, 90)), 3),
                        "calls": int(lat.size)} if lat.size else None),
        "onnx": onnx, **scorer.extra(),
        "records": scorer.records,
    }
    if keep_overlay:
        results["_overlay"] = overlay
    return results


# ------------------------------------------------------------------ report
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def table_markdown(results: dict[str, Any]) -> str:
    """``table.md``: the headline metrics, latency, the four breakdowns and the notes."""
    from hcgym.report import markdown_table

    c = results["config"]
    lines = [f"# Sensor bench: {c['sensor']} in {c['world'] or 'frames'}", "",
             f"Task: **{results['task']}** (ground truth: {results['truth']}); {results['frames']} frames "
             f"({c['seconds']} s at {c['fps']} fps, seed {c['seed']}, camera {c['camera'] or 'first'}).", ""]
    if results.get("onnx"):
        lines += [f"Ran from ONNX: `{results['onnx']['path']}` (ONNX Runtime, export of {results['onnx']['sensor']}).", ""]
    m = results["metrics"]
    if m:
        lines += markdown_table(list(m), [[_fmt(v) if not isinstance(v, list) else ", ".join(v) for v in m.values()]])
        lines.append("")
    lat = results["latency_ms"]
    lines += [f"Latency per call: median {lat['median']:.1f} ms, p90 {lat['p90']:.1f} ms ({lat['calls']} calls)."
              if lat else "Latency: not measured.", ""]
    if results.get("confusion"):
        lines += ["## Confusion matrix", ""] + confusion_markdown(results["confusion"]) + [""]
    for kind, rows in results["breakdown"].items():
        if not rows:
            continue
        keys = [k for k in rows[0] if k not in ("band", "low", "n")]
        lines += [f"## By {BREAKDOWN_TITLES[kind]}", ""]
        lines += markdown_table(["band", *keys], [[r["band"], *(_fmt(r[k]) for k in keys)] for r in rows])
        lines.append("")
    if results["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    return "\n".join(lines)


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """``vs_distance.png``, ``vs_yaw.png``, ``vs_occlusion.png``, ``vs_people.png``: the task's metric per band
    (bars labelled with the subjects in each), and ``confusion.png`` for classifiers; none for latency-only
    sensors."""
    from hcgym.report import png_bytes, pyplot

    key, label = results["primary"], results["primary_label"]
    if key is None:
        return {}
    plt = pyplot()
    out = {}
    if results.get("confusion"):
        out["confusion.png"] = confusion_png(results["confusion"], f"{results['config']['sensor']}: confusion matrix "
                                                                   f"({results['metrics'].get('subjects')} subjects)")
    for kind, rows in results["breakdown"].items():
        fig, ax = plt.subplots(figsize=(4.8, 3.0), dpi=100)
        vals = [r.get(key) for r in rows]
        x = np.arange(len(rows))
        ax.bar(x, [np.nan if v is None else v for v in vals], color="tab:red")
        for xi, r, v in zip(x, rows, vals):
            ax.text(xi, 0 if v is None else v, f"n={r['n']}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, [r["band"] for r in rows], fontsize=7)
        ax.set_xlabel(BREAKDOWN_TITLES[kind])
        ax.set_ylabel(label)
        if key != "nme":
            ax.set_ylim(0, 1.05)
        ax.set_title(f"{results['config']['sensor']}: {label} vs {BREAKDOWN_TITLES[kind]}", fontsize=8)
        fig.tight_layout()
        out[f"vs_{kind}.png"] = png_bytes(fig)
    return out


def overlay_frames(results: dict[str, Any]) -> list[np.ndarray]:
    """The frames kept by ``run(..., keep_overlay=True)`` with the ground truth in green and the sensor's
    output in red (boxes and points); labels of recognizers and classifiers above the ground-truth box, green
    when right, red when wrong."""
    import cv2

    out = []
    for rgb, d in results.get("_overlay", []):
        img = np.ascontiguousarray(rgb.copy())
        for boxes, color in ((d.gt_boxes, (0, 200, 0)), (d.pred_boxes, (230, 0, 0))):
            for b in boxes:
                x0, y0, x1, y1 = (int(round(float(v))) for v in b[:4])
                cv2.rectangle(img, (x0, y0), (x1, y1), color, 1)
        for pts, color in ((d.gt_points, (0, 200, 0)), (d.pred_points, (230, 0, 0))):
            for p in pts:
                for u, v in np.asarray(p).reshape(-1, 2):
                    if np.isfinite(u) and np.isfinite(v):
                        cv2.circle(img, (int(round(u)), int(round(v))), 1, color, -1)
        for box, text, correct in d.labels:
            x0, y0 = int(round(float(box[0]))), max(8, int(round(float(box[1]))) - 2)
            cv2.putText(img, text, (x0, y0), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 200, 0) if correct else (230, 0, 0), 1,
                        cv2.LINE_AA)
        out.append(img)
    return out


__all__ = ["BANDS", "BenchConfig", "BenchTask", "LATENCY_ONLY", "TASK_TABLE", "check_world", "enrol", "figures",
           "greedy_match", "make_sensor", "occlusion_fraction", "overlay_frames", "run", "runs", "runs_on_frames",
           "table_markdown", "task_for"]

