"""Face recognition in the sensor bench: a gallery of the world's people, rank-1 identification and the
confidence of OpenDR D3.2 eq. (3)-(5).

* **Gallery** (:func:`enrol`): one embedding per identity from a clean frontal portrait of each person
  (:func:`hcgym.synthesis.bench_frames.enrolment_frames`: neutral face, studio light, 1 m, 400x300), in a
  :class:`~hcgym.perception.face.gallery.Gallery` labelled by ``HumanTruth.identity``, with the cut-off ``a``
  calibrated for the recognizer (:func:`hcgym.perception.face.models.recognizer_cutoff`) or given.
* **Queries** (:class:`RecognitionScorer`): the faces of :func:`~hcgym.perception.bench_base.face_truth`
  (visible, not turned away, person large enough). A recognizer that takes face boxes embeds the
  ground-truth boxes (``face_boxes="truth"``, the default: recognition isolated from detection); with
  ``face_boxes="sensor"``, or for a recognizer that takes no boxes, it finds the faces itself and its boxes
  are matched to the ground truth at IoU ``face_iou``.
* **Metrics**: rank-1 (the nearest enrolled identity is the person's, whatever the distance), identified
  (rank-1 and within the cut-off, ``FaceIdentity.label``), the mean confidence ``c = 1 - d / a`` (0 at or
  beyond ``a``) of correct and of wrong answers; faces without an embedding count as wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.bench_base import BenchConfig, Drawn, Scorer, face_truth, greedy_match, ratio, rounded, subject
from hcgym.perception.registry import SensorSpec, resolve
from hcgym.types import Detections, Frame

#: Task code the scorer uses, loaded by name (the perception package imports no task package).
GALLERY = "hcgym.perception.face.gallery:Gallery"
RECOGNIZER_CUTOFF = "hcgym.perception.face.models:recognizer_cutoff"


def takes_boxes(spec: SensorSpec) -> bool:
    """Whether the recognizer can be given face boxes (its ``input`` names them)."""
    return "face boxes" in spec.input


def uses_truth_boxes(config: BenchConfig, spec: SensorSpec) -> bool:
    """Whether the recognizer embeds the ground-truth face boxes (else the faces it finds itself)."""
    return config.face_boxes == "truth" and takes_boxes(spec)


def face_inputs(config: BenchConfig, spec: SensorSpec, frame: Frame, boxes: np.ndarray) -> tuple:
    """Arguments of the recognizer call: ``(frame, Detections(boxes))`` with ground-truth boxes (N, 4), else
    ``(frame,)``."""
    if uses_truth_boxes(config, spec):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return frame, Detections(boxes, np.ones(len(boxes)), label="face")
    return (frame,)


def match_faces(result: Any, gt: np.ndarray, ignore: np.ndarray, iou: float) -> np.ndarray:
    """(G,) index of the embedding whose box matches each ground-truth face (greedy at ``iou``), -1 for none."""
    boxes = np.asarray(getattr(result, "boxes", np.zeros((0, 4))), np.float64).reshape(-1, 4)
    n = min(len(boxes), len(getattr(result, "vectors", ())))
    gm, *_ = greedy_match(boxes[:n], np.ones(n), gt, ignore, iou)
    return gm


def gallery_cutoff(config: BenchConfig, spec: SensorSpec) -> tuple[float, bool]:
    """``(cut-off a, L2-normalise embeddings)`` of the recognizer: the calibrated pair, ``config.cutoff`` over
    its ``a``; recognizers without a calibrated cut-off need ``config.cutoff`` (their embeddings are
    L2-normalised, like every recognizer's but dlib's)."""
    try:
        a, normalize = resolve(RECOGNIZER_CUTOFF)(spec.id)
    except SpecError as e:
        if config.cutoff is None:
            raise SpecError("cutoff", f"{e.problem} (the distance a of the paper's confidence c = 1 - d / a)") from None
        return float(config.cutoff), True
    return (float(config.cutoff) if config.cutoff is not None else a), normalize


def enrol(sensor: Any, spec: SensorSpec, frames: Iterable[Frame], config: BenchConfig) -> Any:
    """A :class:`~hcgym.perception.face.gallery.Gallery` of the recognizer ``sensor``: one embedding per
    enrolment frame (one person in view each, :func:`hcgym.synthesis.bench_frames.enrolment_frames`),
    labelled with that person's ``identity``; the face comes from the ground-truth box or the sensor's own
    detection as the queries' (:attr:`BenchConfig.face_boxes`). A portrait without an embedding is left out
    (its person's faces then count as wrong); none at all raises a :class:`SpecError`."""
    Gallery = resolve(GALLERY)  # noqa: N806 (a class)
    cutoff, normalize = gallery_cutoff(config, spec)  # before anything is rendered
    gallery = Gallery(cutoff, recognizer=spec.id, normalize=normalize)
    portraits = 0
    for frame in frames:
        portraits += 1
        people, gt, ig = face_truth(frame, config.min_pixels)
        if not len(people):
            continue
        g = int(np.argmax([h.pixels for h in people]))
        result = sensor(*face_inputs(config, spec, frame, gt[g:g + 1]))
        m = match_faces(result, gt[g:g + 1], np.zeros(1, bool), config.face_iou)[0]
        if m >= 0:
            gallery.enroll(people[g].identity, np.asarray(result.vectors, np.float64)[m:m + 1])
    if not len(gallery):
        raise SpecError("gallery", f"{spec.id} gave no embedding for any of the {portraits} enrolment portraits")
    return gallery


class RecognitionScorer(Scorer):
    """Face embeddings identified in a gallery of the world's people (see the module docstring)."""

    task = "face recognition"
    primary, primary_label = "rank1", "rank-1"

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        super().__init__(config, spec)
        self.gallery: Any = None
        self._faces: tuple[list, np.ndarray, np.ndarray] = ([], np.zeros((0, 4)), np.zeros(0, bool))

    def inputs(self, frame: Frame) -> tuple | None:
        self._faces = people, gt, ig = face_truth(frame, self.config.min_pixels)
        if uses_truth_boxes(self.config, self.spec):
            return face_inputs(self.config, self.spec, frame, gt[~ig]) if (~ig).any() else None
        return (frame,)

    def add(self, k: int, frame: Frame, result: Any) -> Drawn:
        people, gt, ig = self._faces
        drawn = Drawn()
        if result is None:
            return drawn
        vectors = np.asarray(result.vectors, np.float64)
        match = match_faces(result, gt, ig, self.config.face_iou)
        drawn.pred_boxes = list(np.asarray(result.boxes, np.float64).reshape(-1, 4))
        for g, h in enumerate(people):
            if ig[g]:
                continue
            rec = {**subject(k, frame, h, self.config.min_pixels), "identity": h.identity,
                   "enrolled": h.identity in self.gallery.labels, "found": bool(match[g] >= 0), "predicted": None,
                   "correct": False, "identified": False, "embedding_distance": None, "confidence": None}
            if match[g] >= 0:
                who = self.gallery.identify(vectors[match[g]])
                rec.update(predicted=who.nearest, correct=who.nearest == h.identity, identified=who.label == h.identity,
                           embedding_distance=rounded(who.distance, 5), confidence=rounded(who.confidence, 5))
            self.records.append(rec)
            drawn.gt_boxes.append(gt[g])
            text = "-" if rec["predicted"] is None else f"{rec['predicted'][:6]} {rec['confidence']:.2f}"
            drawn.labels.append((gt[g], text, rec["correct"]))
        return drawn

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        found = [r for r in records if r["found"]]
        right = [r["confidence"] for r in found if r["correct"]]
        wrong = [r["confidence"] for r in found if not r["correct"]]
        mean = lambda v: rounded(float(np.mean(v)), 4) if v else None  # noqa: E731
        return {"faces": len(records), "embedded": ratio(len(found), len(records)),
                "rank1": ratio(len(right), len(records)), "identified": ratio(sum(r["identified"] for r in records),
                                                                               len(records)),
                "confidence": mean(right + wrong), "confidence_correct": mean(right), "confidence_wrong": mean(wrong)}

    def summary(self) -> dict[str, Any]:
        how = ("the ground-truth face boxes" if uses_truth_boxes(self.config, self.spec)
               else "the faces the recognizer finds itself, matched to the ground truth at IoU "
                    f"{self.config.face_iou}")
        self.notes.append(f"queries: {how}; gallery: one frontal portrait per person (neutral face, studio light, "
                          f"1 m), {len(self.gallery.labels)} identities; confidence c = 1 - d / a with a = "
                          f"{self.gallery.cutoff:g} (OpenDR D3.2 eq. 4-5; 0 at or beyond a); rank-1 takes the nearest "
                          "identity whatever its distance, identified only within a")
        missing = sorted({r["identity"][:12] for r in self.records if not r["enrolled"]})
        if missing:
            self.notes.append(f"no enrolment embedding for {', '.join(missing)}: their faces count as wrong")
        return self.metrics(self.records)

    def extra(self) -> dict[str, Any]:
        g = self.gallery
        return {"gallery": {"identities": list(g.labels), "cutoff": g.cutoff, "normalize": g.normalize,
                            "face_boxes": "truth" if uses_truth_boxes(self.config, self.spec) else "sensor"}}


__all__ = ["RecognitionScorer", "enrol", "face_inputs", "gallery_cutoff", "match_faces", "takes_boxes",
           "uses_truth_boxes"]
