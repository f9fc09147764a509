"""Scorers of the sensor bench for boxes and points: person and face detection, face landmarks, body and hand
keypoints (see the task table in :mod:`hcgym.perception.bench`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.bench_base import (
    TORSO,
    BenchConfig,
    Drawn,
    Scorer,
    face_truth,
    greedy_match,
    occlusion_fraction,
    ratio,
    rounded,
    subject,
    visible_in_image,
)
from hcgym.perception.registry import SensorSpec
from hcgym.types import COCO_KEYPOINTS, KEYPOINT_SCHEMES, Frame


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
        return {"people": len(records), "recall": ratio(sum(r["found"] for r in records), len(records))}

    def summary(self) -> dict[str, Any]:
        from hcgym.perception.scoring import coco_ap

        ap = coco_ap(self.items, self.dets) if self.items else {"ap50": float("nan"), "ap": float("nan")}
        return {**self.metrics(self.records), "ap50": rounded(ap["ap50"]), "ap": rounded(ap["ap"]),
                "precision": ratio(self.tp, self.tp + self.fp), "true_positives": self.tp,
                "false_positives": self.fp, "detections": int(sum(len(d[0]) for d in self.dets))}


class FaceDetectionScorer(Scorer):
    """Face boxes against ``HumanTruth.face_box`` of visible faces."""

    task = "face detection"
    primary, primary_label = "recall", "recall"

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        super().__init__(config, spec)
        self.tp = self.fp = self.n_det = 0

    def match(self, k: int, frame: Frame, boxes: np.ndarray, scores: np.ndarray) -> tuple[list, np.ndarray, np.ndarray, Drawn]:
        """Match face boxes of one frame; returns (scored people, their gt boxes, matched detection or -1, drawn)."""
        people, gt, ig = face_truth(frame, self.config.min_pixels, self.config.face_min_landmarks)
        keep = scores >= self.config.score_threshold
        boxes, scores = boxes[keep], scores[keep]
        gm, _, tp, fp = greedy_match(boxes, scores, gt, ig, self.config.face_iou,
                                     centre=self.config.face_match == "centre")
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
        return {"faces": len(records), "recall": ratio(sum(r["found"] for r in records), len(records))}

    def summary(self) -> dict[str, Any]:
        return {**self.metrics(self.records), "precision": ratio(self.tp, self.tp + self.fp),
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
                                 "nme": rounded(nme, 5)})
        if scheme == "dlib68":
            drawn.pred_points.extend(pts[:, :, :2])
        return drawn

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().metrics(records)
        nme = [r["nme"] for r in records if r.get("nme") is not None]
        return {**out, "scored_faces": len(nme), "nme": rounded(float(np.mean(nme)), 5) if nme else None,
                "nme_median": rounded(float(np.median(nme)), 5) if nme else None}

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

    def _score(self, k: int, frame: Frame, h: Any, subjects: list[tuple[np.ndarray, np.ndarray, float]],
               preds: np.ndarray, drawn: Drawn, side: str | None = None, sides: list | None = None) -> None:
        """Greedy assignment of prediction sets to ground-truth sets by mean normalised error (< 1), then PCK."""
        cost = np.full((len(subjects), len(preds)), np.inf)
        for g, (idx, gt, scale) in enumerate(subjects):
            vis = visible_in_image(frame, gt)
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
            vis = visible_in_image(frame, gt)
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
        return {"subjects": len(records), "detection_rate": ratio(len(found), len(records)),
                "pck": ratio(sum(r["correct"] for r in records), joints), "joints": joints,
                "mpjpe_px": rounded(sum(r["error_px"] for r in found) / found_joints, 3) if found_joints else None}

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



class NmsScorer(PersonDetectionScorer):
    """An NMS post-processor on the raw candidates of the person detector, scored as person detection.

    Per frame the detector (:data:`hcgym.perception.nms.candidates.PERSON_DETECTOR`) gives its candidates
    before NMS (:meth:`~hcgym.perception.detection.sensor.PersonDetector.candidates`: after the light pre-NMS
    at IoU 0.8, the detector's own ``max_candidates``), outside the timed call; the sensor's call
    ``method(boxes, scores, image)`` is what the latency measures. Every kept box with its final score is a
    detection (AP uses them all; precision and recall those at ``score_threshold``, where the detector's own
    output stops), so ``nms/greedy_0.5`` scores the recall and precision of ``person/centernet``.
    """

    task = "person detection (NMS on detector candidates)"

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        from hcgym.perception.registry import make, resolve

        super().__init__(config, spec)
        # the NMS family's candidate detector, by name: the perception package imports no task package
        self.detector_id = resolve("hcgym.perception.nms.candidates:PERSON_DETECTOR")
        self.detector = make(self.detector_id)
        self.n_candidates = 0

    def inputs(self, frame: Frame) -> tuple:
        boxes, scores = self.detector.candidates(frame.rgb, self.detector.max_candidates)
        self.n_candidates += len(scores)
        return boxes, scores, frame.rgb

    def add(self, k: int, frame: Frame, result: Any) -> Drawn:
        from hcgym.types import Detections

        keep = np.asarray(result.keep, int)
        dets = Detections(np.asarray(result.boxes, np.float64)[keep], np.asarray(result.scores, np.float64)[keep],
                          label="person")
        return super().add(k, frame, dets)

    def summary(self) -> dict[str, Any]:
        self.notes.append(f"candidates: {self.detector_id} before NMS (pre-NMS at IoU 0.8, at most "
                          f"{self.detector.max_candidates} per frame, {self.n_candidates} in all); latency is the NMS "
                          "call only")
        return {**super().summary(), "candidates": self.n_candidates}
