"""Shared pieces of the sensor bench (:mod:`hcgym.perception.bench`): the run's configuration, the breakdown
bands, ground-truth helpers (who is in view, how occluded, which faces count), greedy box matching and the
:class:`Scorer` contract every task implements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.registry import SensorSpec
from hcgym.types import VISIBLE, Frame

# ------------------------------------------------------------------ bands
INF = math.inf
#: (low, high, label) bands of each breakdown; a value v lies in the band with low <= v < high.
BANDS: dict[str, tuple[tuple[float, float, str], ...]] = {
    "distance": ((0, 2, "0-2 m"), (2, 4, "2-4 m"), (4, 8, "4-8 m"), (8, INF, "8+ m")),
    "yaw": tuple((a, a + 15, f"{a}-{a + 15} deg") for a in range(0, 90, 15)) + ((90, INF, "90+ deg"),),
    "occlusion": ((0, 0.25, "0-25 %"), (0.25, 0.5, "25-50 %"), (0.5, 0.75, "50-75 %"), (0.75, INF, "75-100 %")),
    "people": ((1, 2, "1"), (2, 3, "2"), (3, 5, "3-4"), (5, 9, "5-8"), (9, INF, "9+")),
}
#: Axis titles of the breakdowns.
BREAKDOWN_TITLES = {"distance": "distance to the camera", "yaw": "|face yaw|", "occlusion": "occlusion fraction",
                    "people": "people per frame"}
#: Where the faces a recognizer embeds come from (:attr:`BenchConfig.face_boxes`).
FACE_BOXES = ("truth", "sensor")
#: Joint names whose image points give the torso diameter (shoulder to opposite hip, both diagonals).
TORSO = (("left_shoulder", "right_hip"), ("right_shoulder", "left_hip"))


@dataclass(frozen=True)
class BenchConfig:
    """What one bench run scores.

    Attributes:
        sensor: registry id (``face/dlib-hog``).
        world, seconds, fps, seed, camera: where the frames come from (recorded in the results).
        sensor_kwargs: keyword arguments for :func:`hcgym.perception.make`.
        min_pixels: people (and their faces) with fewer visible pixels are ignored (neither hit nor miss).
        score_threshold: detections below it are left out of precision and recall (AP uses every one).
        face_iou: IoU at which a face box matches a ground-truth face.
        pck_alpha: PCK threshold as a fraction of the torso diameter (body) or the hand size (hands).
        onnx: run the ONNX Runtime sensor of this export (``X.onnx`` with ``X.onnx.json`` beside it, written by
            ``hcgym export``) in place of the registered one; its sidecar must name ``sensor``.
        cutoff: face recognition: the gallery's cut-off distance ``a`` (``None``: the value calibrated for the
            recognizer, :func:`hcgym.perception.face.models.recognizer_cutoff`).
        face_boxes: face recognition: embed the ground-truth face boxes (``"truth"``, isolating recognition from
            detection) or the faces the recognizer finds itself (``"sensor"``; always for recognizers that take
            no boxes).
    """

    sensor: str
    world: str = ""
    seconds: float = 10.0
    fps: float = 5.0
    seed: int = 0
    camera: str | None = None
    sensor_kwargs: dict[str, Any] = field(default_factory=dict)
    min_pixels: int = 100
    score_threshold: float = 0.3
    face_iou: float = 0.4
    pck_alpha: float = 0.2
    onnx: str | None = None
    cutoff: float | None = None
    face_boxes: str = "truth"
    #: How a face detection hits a ground-truth face: ``iou`` (IoU >= ``face_iou``) or ``centre`` (its box contains
    #: the centre of the ground-truth face box). Faces with fewer than ``face_min_landmarks`` of their 5 landmarks
    #: passing the depth test are ignore regions (3: frontal to near-profile faces; 1 scores profiles too).
    face_match: str = "iou"
    face_min_landmarks: int = 3

    def __post_init__(self) -> None:
        if self.face_match not in ("iou", "centre"):
            raise SpecError("face_match", f"expected iou or centre, got {self.face_match!r}")
        if not (isinstance(self.face_min_landmarks, int) and 0 <= self.face_min_landmarks <= 5):
            raise SpecError("face_min_landmarks", f"expected 0..5, got {self.face_min_landmarks!r}")
        if not isinstance(self.sensor, str) or "/" not in self.sensor:
            raise SpecError("sensor", f"expected a registry id 'task/name', got {self.sensor!r}")
        for name in ("score_threshold", "face_iou", "pck_alpha"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v <= 1 or (name == "score_threshold" and v == 0)):
                raise SpecError(name, f"expected a number in (0, 1], got {v!r}")
        if not isinstance(self.min_pixels, int) or self.min_pixels < 0:
            raise SpecError("min_pixels", f"expected a non-negative integer, got {self.min_pixels!r}")
        if self.cutoff is not None and not (isinstance(self.cutoff, (int, float)) and 0 < self.cutoff < math.inf):
            raise SpecError("cutoff", f"expected a positive distance, got {self.cutoff!r}")
        if self.face_boxes not in FACE_BOXES:
            raise SpecError("face_boxes", f"expected one of {', '.join(FACE_BOXES)}, got {self.face_boxes!r}")


# ------------------------------------------------------------------ ground truth helpers
def band_of(kind: str, value: float) -> str | None:
    """Label of the band of breakdown ``kind`` holding ``value`` (``None`` for NaN or below every band)."""
    if value is None or not math.isfinite(value) and value != INF:
        return None
    for lo, hi, label in BANDS[kind]:
        if lo <= value < hi:
            return label
    return None


def occlusion_fraction(h: Any, width: int, height: int) -> float:
    """Occluded share of a person's COCO keypoints inside the image (0 unoccluded ... 1 hidden): the occlusion
    of :mod:`hcgym.perception.scoring`'s ignore rule. (``1 - pixels / amodal box area`` would call an
    unoccluded standing person 50-65 % occluded, since a body fills only part of its box.) NaN when no
    keypoint lies in the image."""
    kp = np.asarray(h.keypoints, np.float64)
    inside = (kp[:, 2] > 0) & (kp[:, 0] >= 0) & (kp[:, 0] < width) & (kp[:, 1] >= 0) & (kp[:, 1] < height)
    return float((kp[inside, 2] < VISIBLE).mean()) if inside.any() else float("nan")


def visible_in_image(frame: Frame, points: np.ndarray) -> np.ndarray:
    """(K,) bool: which ``[u, v, visibility]`` points (K, 3) pass the depth test and lie inside the image."""
    w, h = frame.intrinsics.width, frame.intrinsics.height
    p = np.asarray(points, np.float64)
    return (p[:, 2] == VISIBLE) & (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)


def people_in_view(frame: Frame, min_pixels: int) -> int:
    """People in view with at least ``min_pixels`` visible pixels."""
    return sum(1 for h in frame.humans if h.bbox is not None and h.pixels >= min_pixels)


def subject(frame_index: int, frame: Frame, h: Any, min_pixels: int) -> dict[str, Any]:
    """The breakdown values of person ``h`` in ``frame``: one record of the bench."""
    occlusion = occlusion_fraction(h, frame.intrinsics.width, frame.intrinsics.height)
    return {"frame": frame_index, "person": h.id, "distance": round(float(h.distance), 4),
            "yaw": round(abs(float(h.face_yaw)), 3), "occlusion": rounded(occlusion, 4),
            "people": people_in_view(frame, min_pixels)}


def greedy_match(boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, ignore: np.ndarray, iou: float,
                 centre: bool = False) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Match detections to ground truth greedily by score (the rule of :func:`hcgym.perception.scoring.precision_at`).

    Returns ``(gt_match (G,) index of the matched detection or -1, det_match (N,) matched ground truth or -1,
    true positives, false positives)``; a detection whose best match is an ignored box counts as neither.
    With ``centre`` a detection may match the ground-truth boxes whose centre its box contains (``iou`` unused;
    the best IoU among them wins).
    """
    from hcgym.geometry import iou_matrix

    boxes, gt = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(gt, np.float64).reshape(-1, 4)
    ignore = np.asarray(ignore, bool).reshape(-1)
    gt_match, det_match = np.full(len(gt), -1), np.full(len(boxes), -1)
    if not len(boxes):
        return gt_match, det_match, 0, 0
    if not len(gt):
        return gt_match, det_match, 0, len(boxes)
    ious = iou_matrix(np.concatenate([boxes, gt]))[: len(boxes), len(boxes):]
    if centre:
        cx, cy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
        inside = ((boxes[:, :1] <= cx) & (cx <= boxes[:, 2:3]) & (boxes[:, 1:2] <= cy) & (cy <= boxes[:, 3:4]))
        ious, iou = np.where(inside, ious, -1.0), 0.0
    tp = fp = 0
    for d in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        cand = np.where((gt_match < 0) & ~ignore & (ious[d] >= iou))[0]
        if len(cand):
            g = int(cand[np.argmax(ious[d, cand])])
            gt_match[g], det_match[d] = d, g
            tp += 1
        elif not np.any(ignore & (ious[d] >= iou)):
            fp += 1
    return gt_match, det_match, tp, fp


def clip_box(box: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.array([np.clip(box[0], 0, w), np.clip(box[1], 0, h), np.clip(box[2], 0, w), np.clip(box[3], 0, h)],
                    np.float64)


def ratio(a: float, b: float) -> float | None:
    return None if b == 0 else round(float(a) / float(b), 4)


@dataclass
class Drawn:
    """What the overlay of one frame shows: ground truth (green) and sensor output (red)."""

    gt_boxes: list[np.ndarray] = field(default_factory=list)
    pred_boxes: list[np.ndarray] = field(default_factory=list)
    gt_points: list[np.ndarray] = field(default_factory=list)
    pred_points: list[np.ndarray] = field(default_factory=list)
    #: ``(box (4,), text, correct)``: a label written above a box (green when correct, red otherwise).
    labels: list[tuple[np.ndarray, str, bool]] = field(default_factory=list)


# ------------------------------------------------------------------ scorers
class Scorer:
    """Scores one task. Per frame ``inputs(frame)`` gives the arguments of the (timed) sensor call, ``None`` to
    skip the call, and ``add(k, frame, result) -> Drawn`` scores what it returned (``None`` when skipped);
    then :meth:`summary`.

    Each scored ground-truth subject becomes one record in ``self.records`` (its breakdown values from
    :func:`subject` plus the task's per-subject fields); :meth:`metrics` turns any subset of the records
    into the task's metrics, which gives the breakdown tables.
    """

    task = "latency only"
    #: The headline metric of the breakdowns (a key of :meth:`metrics`) and its axis label.
    primary: str | None = None
    primary_label = ""

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        self.config, self.spec = config, spec
        self.records: list[dict[str, Any]] = []
        self.notes: list[str] = []

    #: Whether the bench can call the sensor at all (``False``: not run, no latency).
    runnable = True

    def inputs(self, frame: Frame) -> tuple | None:
        """Arguments of the sensor call on ``frame`` (default: the frame alone)."""
        return (frame,)

    def add(self, k: int, frame: Frame, result: Any) -> Drawn:
        return Drawn()

    def extra(self) -> dict[str, Any]:
        """Task-specific results beside the metrics (e.g. a confusion matrix), JSON-ready."""
        return {}

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    def summary(self) -> dict[str, Any]:
        return self.metrics(self.records)


class LatencyScorer(Scorer):
    """Sensors whose output no task of the bench scores: latency only, with a note; sensors that do not take
    a frame are not run at all."""

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        super().__init__(config, spec)
        self.runnable = spec.input.startswith("rgb frame")
        if self.runnable:
            self.notes.append(f"{spec.id} is a {spec.kind} with output {spec.output}, which no task of the bench "
                              f"scores (hcgym.perception.bench.TASK_TABLE): only its latency per frame is measured")
        else:
            self.notes.append(f"{spec.id} takes '{spec.input}', not a frame, and no task of the bench makes its "
                              "inputs: it is not run (no latency)")



def rounded(v: float, nd: int = 3) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), nd)


def face_truth(frame: Frame, min_pixels: int, min_landmarks: int = 3) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Ground-truth faces of a frame: ``(people, boxes (G, 4), ignore (G,))``.

    A face is scored when its box lies (partly) in the image, at least ``min_landmarks`` (3) of its 5 landmarks
    pass the depth test (a frontal to profile face, not the back of a head) and its person has ``min_pixels`` visible
    pixels; other faces in the image are ignore regions (a detection there is neither hit nor false alarm).
    """
    w, h_img = frame.intrinsics.width, frame.intrinsics.height
    people, boxes, ignore = [], [], []
    for h in frame.humans:
        if h.face_box is None or h.bbox is None:
            continue
        b = clip_box(np.asarray(h.face_box, np.float64), w, h_img)
        if b[2] - b[0] <= 0 or b[3] - b[1] <= 0:
            continue
        seen = int((np.asarray(h.face_landmarks)[:, 2] == VISIBLE).sum())
        people.append(h)
        boxes.append(b)
        ignore.append(seen < min_landmarks or h.pixels < min_pixels)
    return people, np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(ignore, bool)

