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
face detection         ``Detections`` of a ``face`` detector: ``HumanTruth.face_box`` of visible faces,
                       greedy matching at IoU ``face_iou`` (0.4: the ground-truth box runs brow to chin,
                       detectors draw their own conventions), recall and precision.
face landmarks         ``Landmarks``: faces matched as above; ``dlib68`` points scored by NME (mean point
                       error / inter-ocular distance between the outer eye corners 36 and 45) against
                       ``MotionTruth.face68``; ``mediapipe478`` has no ground-truth correspondence and is
                       scored as a face detector only.
body keypoints         ``Keypoints`` of a body scheme (``mediapipe33``, ``coco17``;
                       :data:`hcgym.types.KEYPOINT_SCHEMES`): PCK@0.2 of the torso diameter (as
                       :mod:`hcgym.synthesis.motion_fidelity`) and MPJPE in pixels over the visible mapped
                       joints. Ground truth: the NTU skeleton of moving people (``MotionTruth.skeleton``),
                       the COCO keypoints (``HumanTruth.keypoints``) of static people; both carry the 12
                       mapped joints (shoulders, elbows, wrists, hips, knees, ankles).
hand keypoints         ``Keypoints`` of scheme ``mediapipe21``: hands matched by side and proximity to
                       ``MotionTruth.hand_keypoints``, PCK@0.2 of the hand size (longer side of the hand's
                       point box), MPJPE in pixels, detection rate. Needs moving people.
anything else          latency only, with a note saying what the bench does not score yet.
=====================  ===============================================================================

Every sensor: latency per frame (median and 90th percentile, ms; one untimed warm-up call on the first
frame). Breakdowns of the task's metric by distance band, |face yaw| band (15 degrees), occlusion
fraction (:func:`occlusion_fraction`: the occluded share of the in-image keypoints) and people per frame
(people in view with at least ``min_pixels`` visible pixels).

Protocol shape of :mod:`hcgym.report`: :func:`run`, :func:`table_markdown`, :func:`figures`; and
:func:`overlay_frames` for the overlay video (ground truth green, sensor output red).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.registry import SensorSpec
from hcgym.types import COCO_KEYPOINTS, KEYPOINT_SCHEMES, VISIBLE, Frame

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

    def __post_init__(self) -> None:
        if not isinstance(self.sensor, str) or "/" not in self.sensor:
            raise SpecError("sensor", f"expected a registry id 'task/name', got {self.sensor!r}")
        for name in ("score_threshold", "face_iou", "pck_alpha"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v <= 1 or (name == "score_threshold" and v == 0)):
                raise SpecError(name, f"expected a number in (0, 1], got {v!r}")
        if not isinstance(self.min_pixels, int) or self.min_pixels < 0:
            raise SpecError("min_pixels", f"expected a non-negative integer, got {self.min_pixels!r}")


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


def people_in_view(frame: Frame, min_pixels: int) -> int:
    """People in view with at least ``min_pixels`` visible pixels."""
    return sum(1 for h in frame.humans if h.bbox is not None and h.pixels >= min_pixels)


def subject(frame_index: int, frame: Frame, h: Any, min_pixels: int) -> dict[str, Any]:
    """The breakdown values of person ``h`` in ``frame``: one record of the bench."""
    occlusion = occlusion_fraction(h, frame.intrinsics.width, frame.intrinsics.height)
    return {"frame": frame_index, "person": h.id, "distance": round(float(h.distance), 4),
            "yaw": round(abs(float(h.face_yaw)), 3), "occlusion": _round(occlusion, 4),
            "people": people_in_view(frame, min_pixels)}


def greedy_match(boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, ignore: np.ndarray, iou: float
                 ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Match detections to ground truth greedily by score (the rule of :func:`hcgym.perception.scoring.precision_at`).

    Returns ``(gt_match (G,) index of the matched detection or -1, det_match (N,) matched ground truth or -1,
    true positives, false positives)``; a detection whose best match is an ignored box counts as neither.
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


def _clip(box: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.array([np.clip(box[0], 0, w), np.clip(box[1], 0, h), np.clip(box[2], 0, w), np.clip(box[3], 0, h)],
                    np.float64)


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else round(float(a) / float(b), 4)


@dataclass
class Drawn:
    """What the overlay of one frame shows: ground truth (green) and sensor output (red)."""

    gt_boxes: list[np.ndarray] = field(default_factory=list)
    pred_boxes: list[np.ndarray] = field(default_factory=list)
    gt_points: list[np.ndarray] = field(default_factory=list)
    pred_points: list[np.ndarray] = field(default_factory=list)


# ------------------------------------------------------------------ scorers
class Scorer:
    """Scores one task. ``add(k, frame, result) -> Drawn`` per frame, then :meth:`summary`.

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

    def add(self, k: int, frame: Frame, result: Any) -> Drawn:
        return Drawn()

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    def summary(self) -> dict[str, Any]:
        return self.metrics(self.records)


class LatencyScorer(Scorer):
    """Sensors the bench does not score yet: latency only, with a note."""

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        super().__init__(config, spec)
        self.notes.append(f"{spec.id} is a {spec.kind} with output {spec.output}: scoring it needs inputs the "
                          f"bench does not provide yet (e.g. a gallery of identities or candidate boxes); only "
                          f"its latency per frame is measured")


class PersonDetectionScorer(Scorer):
    """Person boxes against the amodal ground-truth boxes (:mod:`hcgym.perception.scoring` rules)."""

    task = "person detection"
    primary, primary_label = "recall", "recall"

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        super().__init__(config, spec)
        self.items: list[dict[str, Any]] = []
        self.dets: list[tuple[np.ndarray, np.ndarray]] = []
        self.tp = self.fp = 0

    def add(self, k: int, frame: Frame, result: Any) -> Drawn:
        from hcgym.perception.scoring import person_boxes

        w, h_img = frame.intrinsics.width, frame.intrinsics.height
        boxes, ignore, people = [], [], []
        for h in frame.humans:
            if h.bbox is None or h.bbox_amodal is None:
                continue
            x0, y0, x1, y1 = (float(v) for v in h.bbox_amodal)
            occl = np.nan_to_num(occlusion_fraction(h, w, h_img), nan=0.0)
            b, ig = person_boxes([{"bbox_amodal": [x0, y0, x1 - x0, y1 - y0], "area": float(h.pixels),
                                   "occlusion": occl}], w, h_img)
            if not len(b):
                continue
            boxes.append(b[0])
            ignore.append(bool(ig[0]) or h.pixels < self.config.min_pixels)
            people.append(h)
        gt = np.asarray(boxes, np.float64).reshape(-1, 4)
        ig = np.asarray(ignore, bool)
        pb = np.asarray(result.boxes, np.float64).reshape(-1, 4)
        ps = np.asarray(result.scores, np.float64).reshape(-1)
        self.items.append({"width": w, "height": h_img, "boxes": gt, "ignore": ig})
        self.dets.append((pb, ps))
        keep = ps >= self.config.score_threshold
        gm, _, tp, fp = greedy_match(pb[keep], ps[keep], gt, ig, 0.5)
        self.tp, self.fp = self.tp + tp, self.fp + fp
        for g, h in enumerate(people):
            if not ig[g]:
                self.records.append({**subject(k, frame, h, self.config.min_pixels), "found": bool(gm[g] >= 0)})
        return Drawn(gt_boxes=[b for b, i in zip(gt, ig) if not i], pred_boxes=list(pb[keep]))

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"people": len(records), "recall": _ratio(sum(r["found"] for r in records), len(records))}

    def summary(self) -> dict[str, Any]:
        from hcgym.perception.scoring import coco_ap

        ap = coco_ap(self.items, self.dets) if self.items else {"ap50": float("nan"), "ap": float("nan")}
        return {**self.metrics(self.records), "ap50": _round(ap["ap50"]), "ap": _round(ap["ap"]),
                "precision": _ratio(self.tp, self.tp + self.fp), "true_positives": self.tp,
                "false_positives": self.fp, "detections": int(sum(len(d[0]) for d in self.dets))}


def _round(v: float, nd: int = 3) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), nd)


def face_truth(frame: Frame, min_pixels: int) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Ground-truth faces of a frame: ``(people, boxes (G, 4), ignore (G,))``.

    A face is scored when its box lies (partly) in the image, at least 3 of its 5 landmarks pass the depth
    test (a frontal to profile face, not the back of a head) and its person has ``min_pixels`` visible
    pixels; other faces in the image are ignore regions (a detection there is neither hit nor false alarm).
    """
    w, h_img = frame.intrinsics.width, frame.intrinsics.height
    people, boxes, ignore = [], [], []
    for h in frame.humans:
        if h.face_box is None or h.bbox is None:
            continue
        b = _clip(np.asarray(h.face_box, np.float64), w, h_img)
        if b[2] - b[0] <= 0 or b[3] - b[1] <= 0:
            continue
        seen = int((np.asarray(h.face_landmarks)[:, 2] == VISIBLE).sum())
        people.append(h)
        boxes.append(b)
        ignore.append(seen < 3 or h.pixels < min_pixels)
    return people, np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(ignore, bool)


class FaceDetectionScorer(Scorer):
    """Face boxes against ``HumanTruth.face_box`` of visible faces."""

    task = "face detection"
    primary, primary_label = "recall", "recall"

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        super().__init__(config, spec)
        self.tp = self.fp = self.n_det = 0

    def match(self, k: int, frame: Frame, boxes: np.ndarray, scores: np.ndarray) -> tuple[list, np.ndarray, np.ndarray, Drawn]:
        """Match face boxes of one frame; returns (scored people, their gt boxes, matched detection or -1, drawn)."""
        people, gt, ig = face_truth(frame, self.config.min_pixels)
        keep = scores >= self.config.score_threshold
        boxes, scores = boxes[keep], scores[keep]
        gm, _, tp, fp = greedy_match(boxes, scores, gt, ig, self.config.face_iou)
        self.tp, self.fp, self.n_det = self.tp + tp, self.fp + fp, self.n_det + len(boxes)
        scored = [(h, g, int(gm[i])) for i, (h, g) in enumerate(zip(people, gt)) if not ig[i]]
        drawn = Drawn(gt_boxes=[g for _, g, _ in scored], pred_boxes=list(boxes))
        return scored, boxes, np.asarray([m for *_, m in scored], int), drawn

    def add(self, k: int, frame: Frame, result: Any) -> Drawn:
        boxes = np.asarray(result.boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(result.scores, np.float64).reshape(-1)
        scored, _, _, drawn = self.match(k, frame, boxes, scores)
        for h, _, m in scored:
            self.records.append({**subject(k, frame, h, self.config.min_pixels), "found": m >= 0})
        return drawn

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"faces": len(records), "recall": _ratio(sum(r["found"] for r in records), len(records))}

    def summary(self) -> dict[str, Any]:
        return {**self.metrics(self.records), "precision": _ratio(self.tp, self.tp + self.fp),
                "true_positives": self.tp, "false_positives": self.fp, "detections": self.n_det}


class LandmarkScorer(FaceDetectionScorer):
    """Face landmark sets: faces matched by box; ``dlib68`` NME against ``MotionTruth.face68``."""

    task = "face landmarks"
    primary, primary_label = "nme", "NME (inter-ocular)"

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        super().__init__(config, spec)
        self.schemes: set[str] = set()
        self.checked = False

    def add(self, k: int, frame: Frame, result: Any) -> Drawn:
        scheme = getattr(result, "scheme", "")
        self.schemes.add(scheme)
        if scheme == "dlib68" and not self.checked:
            self.checked = True
            if not any(h.motion is not None for h in frame.humans):
                raise SpecError("world", f"{self.spec.id} gives 68 dlib landmarks, scored against the face68 "
                                         "points of moving people (MotionTruth), and this world has none: use a "
                                         "world with behaviour timelines (greeting, plaza, living_room)")
        boxes = np.asarray(result.boxes, np.float64).reshape(-1, 4)
        pts = np.asarray(result.points, np.float64)
        scored, _, match, drawn = self.match(k, frame, boxes, np.ones(len(boxes)))
        for (h, _, m) in scored:
            nme = float("nan")
            if m >= 0 and scheme == "dlib68" and h.motion is not None:
                gt = np.asarray(h.motion.face68, np.float64)[:, :2]
                iod = float(np.linalg.norm(gt[36] - gt[45]))
                if iod > 0:
                    nme = float(np.linalg.norm(pts[m, :, :2] - gt, axis=1).mean() / iod)
                drawn.gt_points.append(gt)
            self.records.append({**subject(k, frame, h, self.config.min_pixels), "found": m >= 0,
                                 "nme": _round(nme, 5)})
        if scheme == "dlib68":
            drawn.pred_points.extend(pts[:, :, :2])
        return drawn

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().metrics(records)
        nme = [r["nme"] for r in records if r.get("nme") is not None]
        return {**out, "scored_faces": len(nme), "nme": _round(float(np.mean(nme)), 5) if nme else None,
                "nme_median": _round(float(np.median(nme)), 5) if nme else None}

    def summary(self) -> dict[str, Any]:
        if "mediapipe478" in self.schemes:
            self.notes.append("mediapipe478 landmarks have no ground-truth correspondence (the simulator "
                              "gives the 68-point dlib layout): scored as a face detector only")
        return {**super().summary(), "schemes": sorted(self.schemes)}


def _torso(points: dict[str, np.ndarray]) -> float:
    return 0.5 * sum(float(np.linalg.norm(points[a][:2] - points[b][:2])) for a, b in TORSO)


class KeypointScorer(Scorer):
    """``Keypoints``: body schemes by PCK and MPJPE over the mapped joints, ``mediapipe21`` hands per hand."""

    task = "keypoints"
    primary, primary_label = "pck", "PCK"

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        super().__init__(config, spec)
        self.schemes: set[str] = set()
        self.checked = False
        self.n_sets = 0

    # -- ground truth
    def body_truth(self, h: Any, scheme: str) -> tuple[np.ndarray, np.ndarray, float] | None:
        """``(scheme indices (J,), ground truth [u, v, visibility] (J, 3), torso diameter)`` of a person:
        the NTU skeleton of a moving person, else the COCO keypoints."""
        mapping = KEYPOINT_SCHEMES[scheme]
        if h.motion is not None:
            from hcgym.synthesis.motion.skeleton import NTU_JOINTS

            source, names = np.asarray(h.motion.skeleton, np.float64), NTU_JOINTS
        else:
            source, names = np.asarray(h.keypoints, np.float64), COCO_KEYPOINTS
        by_name = {n: source[names.index(n)] for n in set(mapping.values()) | {j for p in TORSO for j in p}}
        idx = np.asarray(sorted(mapping), int)
        gt = np.stack([by_name[mapping[i]] for i in idx])
        return idx, gt, _torso(by_name)

    def add(self, k: int, frame: Frame, result: Any) -> Drawn:
        scheme = getattr(result, "scheme", "")
        if scheme not in KEYPOINT_SCHEMES:
            raise SpecError("scheme", f"{self.spec.id} returned keypoints of scheme {scheme!r}; the bench scores "
                                      f"{', '.join(KEYPOINT_SCHEMES)} (hcgym.types.KEYPOINT_SCHEMES)")
        self.schemes.add(scheme)
        self.n_sets += len(result)
        if scheme == "mediapipe21":
            return self.add_hands(k, frame, result)
        return self.add_body(k, frame, result, scheme)

    def _inside(self, frame: Frame, gt: np.ndarray) -> np.ndarray:
        w, h = frame.intrinsics.width, frame.intrinsics.height
        return (gt[:, 2] == VISIBLE) & (gt[:, 0] >= 0) & (gt[:, 0] < w) & (gt[:, 1] >= 0) & (gt[:, 1] < h)

    def _score(self, k: int, frame: Frame, h: Any, subjects: list[tuple[np.ndarray, np.ndarray, float]],
               preds: np.ndarray, drawn: Drawn, side: str | None = None, sides: list | None = None) -> None:
        """Greedy assignment of prediction sets to ground-truth sets by mean normalised error (< 1), then PCK."""
        cost = np.full((len(subjects), len(preds)), np.inf)
        for g, (idx, gt, scale) in enumerate(subjects):
            vis = self._inside(frame, gt)
            if not vis.any() or scale <= 0:
                continue
            for p in range(len(preds)):
                if sides is not None and sides[p] is not None and side is not None and sides[p] != side[g]:
                    continue
                cost[g, p] = float(np.linalg.norm(preds[p][idx][vis, :2] - gt[vis, :2], axis=1).mean() / scale)
        match = np.full(len(subjects), -1)
        used: set[int] = set()
        for flat in np.argsort(cost, axis=None, kind="stable"):
            g, p = divmod(int(flat), max(len(preds), 1))
            if not np.isfinite(cost[g, p]) or cost[g, p] >= 1.0:
                break
            if match[g] < 0 and p not in used:
                match[g] = p
                used.add(p)
        for g, (idx, gt, scale) in enumerate(subjects):
            vis = self._inside(frame, gt)
            if not vis.any() or scale <= 0:
                continue
            rec = {**subject(k, frame, h[g] if isinstance(h, list) else h, self.config.min_pixels),
                   "found": bool(match[g] >= 0), "joints": int(vis.sum()), "correct": 0, "error_px": None}
            if side is not None:
                rec["side"] = side[g]
            if match[g] >= 0:
                err = np.linalg.norm(preds[match[g]][idx][vis, :2] - gt[vis, :2], axis=1)
                rec["correct"] = int((err < self.config.pck_alpha * scale).sum())
                rec["error_px"] = round(float(err.sum()), 4)
            self.records.append(rec)
            drawn.gt_points.append(gt[vis, :2])

    def add_body(self, k: int, frame: Frame, result: Any, scheme: str) -> Drawn:
        people = [h for h in frame.humans if h.bbox is not None and h.pixels >= self.config.min_pixels]
        subjects = [self.body_truth(h, scheme) for h in people]
        preds = np.asarray(result.points, np.float64)
        drawn = Drawn(pred_points=[p[:, :2] for p in preds])
        self._score(k, frame, people, subjects, preds, drawn)
        return drawn

    def add_hands(self, k: int, frame: Frame, result: Any) -> Drawn:
        if not self.checked:
            self.checked = True
            if not any(h.motion is not None for h in frame.humans):
                raise SpecError("world", f"{self.spec.id} finds hands, scored against the hand points of moving "
                                         "people (MotionTruth), and this world has none: use a world with "
                                         "behaviour timelines (greeting, plaza, living_room)")
        people, subjects, sides = [], [], []
        for h in frame.humans:
            if h.motion is None or h.bbox is None or h.pixels < self.config.min_pixels:
                continue
            for s, name in enumerate(("left", "right")):
                gt = np.asarray(h.motion.hand_keypoints[s], np.float64)
                size = float(max(np.ptp(gt[:, 0]), np.ptp(gt[:, 1])))
                people.append(h)
                subjects.append((np.arange(21), gt, size))
                sides.append(name)
        preds = np.asarray(result.points, np.float64)
        pred_sides = list(result.sides) if len(getattr(result, "sides", []) or []) == len(preds) else None
        drawn = Drawn(pred_points=[p[:, :2] for p in preds])
        self._score(k, frame, people, subjects, preds, drawn, side=sides, sides=pred_sides)
        return drawn

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        joints = sum(r["joints"] for r in records)
        found = [r for r in records if r["found"]]
        found_joints = sum(r["joints"] for r in found)
        return {"subjects": len(records), "detection_rate": _ratio(len(found), len(records)),
                "pck": _ratio(sum(r["correct"] for r in records), joints), "joints": joints,
                "mpjpe_px": _round(sum(r["error_px"] for r in found) / found_joints, 3) if found_joints else None}

    def summary(self) -> dict[str, Any]:
        out = {**self.metrics(self.records), "schemes": sorted(self.schemes), "keypoint_sets": self.n_sets}
        if any(s != "mediapipe21" for s in self.schemes):
            self.notes.append("body keypoints: PCK counts every visible mapped joint of every person in view "
                              "(people the sensor misses score 0); MPJPE averages over detected people. Ground "
                              "truth: the NTU skeleton of moving people, the COCO keypoints of static people")
        if "mediapipe21" in self.schemes:
            self.notes.append("hands: PCK relative to the hand size (longer side of the 21 ground-truth points' "
                              "box); both hands of every moving person in view with a visible point are subjects")
        return out


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
    """

    name: str
    matches: Callable[[SensorSpec], bool]
    scorer: type[Scorer]
    truth: str
    needs_motion: bool = False


def _is_hands(s: SensorSpec) -> bool:
    return s.task in ("hand", "hands") or "hand" in s.kind


#: First match wins; a sensor matching no row is timed only (:class:`LatencyScorer`).
TASK_TABLE: tuple[BenchTask, ...] = (
    BenchTask("person detection", lambda s: s.output == "Detections" and "person" in s.kind, PersonDetectionScorer,
              "HumanTruth.bbox_amodal of people in view (scoring.person_boxes rules)"),
    BenchTask("face detection", lambda s: s.output == "Detections" and "face" in s.kind, FaceDetectionScorer,
              "HumanTruth.face_box of visible faces"),
    BenchTask("face landmarks", lambda s: s.output == "Landmarks", LandmarkScorer,
              "MotionTruth.face68 (dlib68); face boxes only (mediapipe478)"),
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


def check_world(spec: SensorSpec, animated: bool, world: str = "") -> None:
    """Refuse, before anything is rendered, a sensor whose task needs moving people in a world without any."""
    task = task_for(spec)
    if task.needs_motion and not animated:
        raise SpecError("world", f"{spec.id} ({task.name}) is scored against {task.truth}, which only moving "
                                 f"people have, and world {world!r} has none: use a world with behaviour "
                                 "timelines (greeting, plaza, living_room)")


# ------------------------------------------------------------------ the protocol
def run(config: BenchConfig, frames: Iterable[Frame], progress: bool = True, sensor: Any = None,
        spec: SensorSpec | None = None, keep_overlay: bool = False) -> dict[str, Any]:
    """Run the sensor on every frame and score it (see the module docstring).

    Args:
        config: the run.
        frames: frames with ground truth, in time order.
        sensor: an already made sensor (default: ``hcgym.perception.make(config.sensor, **config.sensor_kwargs)``).
        spec: its :class:`SensorSpec` (default: the registry's spec of ``config.sensor``).
        keep_overlay: keep the frames and what to draw on them under ``_overlay`` (for :func:`overlay_frames`).

    Returns:
        ``{"config", "task", "frames", "metrics", "breakdown", "latency_ms", "notes", "records"}`` (JSON-ready;
        ``_overlay`` when asked). Latency varies between runs; every other key is a function of the frames.
    """
    from tqdm import tqdm

    from hcgym.perception.registry import make
    from hcgym.perception.registry import spec as spec_of

    spec = spec or spec_of(config.sensor)
    task = task_for(spec)
    scorer = task.scorer(config, spec)
    on_frames = runs_on_frames(spec)
    if not on_frames:
        scorer.notes = [f"{spec.id} takes '{spec.input}', not a frame: the bench does not run it yet (no latency)"]
    elif sensor is None:
        sensor = make(config.sensor, **config.sensor_kwargs)
    latencies: list[float] = []
    overlay: list[tuple[np.ndarray, Drawn]] = []
    n = 0
    for k, frame in enumerate(tqdm(frames, desc=f"bench {spec.id}", unit="frame", disable=not progress, leave=False)):
        drawn = Drawn()
        if on_frames:
            if k == 0:
                sensor(frame)  # warm-up: lazy model loading is not latency
            t0 = time.perf_counter()
            result = sensor(frame)
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
    cfg = asdict(config)
    results: dict[str, Any] = {
        "config": cfg, "sensor": spec.as_dict(), "task": task.name, "truth": task.truth, "frames": n,
        "metrics": metrics, "primary": scorer.primary, "primary_label": scorer.primary_label,
        "breakdown": breakdown, "notes": scorer.notes,
        "latency_ms": ({"median": round(float(np.median(lat)), 3), "p90": round(float(np.percentile(lat, 90)), 3),
                        "calls": int(lat.size)} if lat.size else None),
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
    m = results["metrics"]
    if m:
        lines += markdown_table(list(m), [[_fmt(v) if not isinstance(v, list) else ", ".join(v) for v in m.values()]])
        lines.append("")
    lat = results["latency_ms"]
    lines += [f"Latency per frame: median {lat['median']:.1f} ms, p90 {lat['p90']:.1f} ms ({lat['calls']} calls)."
              if lat else "Latency: not measured.", ""]
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
    (bars labelled with the subjects in each); none for latency-only sensors."""
    from hcgym.report import png_bytes, pyplot

    key, label = results["primary"], results["primary_label"]
    if key is None:
        return {}
    plt = pyplot()
    out = {}
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
    output in red (boxes and points)."""
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
        out.append(img)
    return out


__all__ = ["BANDS", "BenchConfig", "BenchTask", "LATENCY_ONLY", "TASK_TABLE", "check_world", "figures",
           "greedy_match", "overlay_frames", "run", "table_markdown", "task_for"]
