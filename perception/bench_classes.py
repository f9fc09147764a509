"""Classification in the sensor bench: accuracy and a confusion matrix against the motion ground truth.

The label a :class:`~hcgym.types.Classification` sensor is scored on follows from its ``kind``
(:func:`label_source`):

* ``action``: each moving person in view (box ``HumanTruth.bbox``), true label ``MotionTruth.label`` (the
  upper-body action when there is one, else the body's);
* ``expression``: each visible face of a moving person (box ``face_box``), ``MotionTruth.expression``;
* ``gesture``: each hand of a moving person with a visible point (the box of its 21 points),
  ``MotionTruth.gestures[side]``, ``"none"`` for a relaxed hand.

Predictions with boxes are matched to the subjects greedily by IoU (:data:`MATCH_IOU`; faces at
``face_iou``); a whole-frame label (``boxes=None``) is the label of the frame's largest subject, and only
that subject is scored in that frame. Unmatched subjects count as wrong (column ``missed`` of the
confusion matrix).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hcgym.perception.bench_base import (
    BenchConfig,
    Drawn,
    Scorer,
    clip_box,
    face_truth,
    greedy_match,
    ratio,
    subject,
    visible_in_image,
)
from hcgym.perception.registry import SensorSpec
from hcgym.types import Frame

#: Words of a sensor's ``kind`` naming the label it gives, in the order they are looked for.
LABEL_SOURCES = ("action", "expression", "gesture")
#: IoU at which a predicted box matches a subject (``None``: the config's ``face_iou``).
MATCH_IOU: dict[str, float | None] = {"action": 0.5, "expression": None, "gesture": 0.3}
#: The ground truth of each label source, in words.
TRUTH = {"action": "MotionTruth.label", "expression": "MotionTruth.expression",
         "gesture": "MotionTruth.gestures[side] ('none' for a relaxed hand)"}
#: Column of the confusion matrix for subjects the sensor gave no label.
MISSED = "missed"


def label_source(spec: SensorSpec) -> str | None:
    """``action``, ``expression`` or ``gesture``: what a classification sensor labels (``None``: none of them)."""
    return next((w for w in LABEL_SOURCES if w in spec.kind), None)


def classification_truth(frame: Frame, source: str, min_pixels: int) -> list[tuple[Any, np.ndarray, str, str | None]]:
    """Subjects of a frame: ``(person, box (4,), true label, hand side or None)`` (see the module docstring)."""
    w, h_img = frame.intrinsics.width, frame.intrinsics.height
    out: list[tuple[Any, np.ndarray, str, str | None]] = []
    if source == "expression":
        people, boxes, ignore = face_truth(frame, min_pixels)
        return [(h, b, h.motion.expression, None) for h, b, i in zip(people, boxes, ignore)
                if not i and h.motion is not None]
    for h in frame.humans:
        if h.motion is None or h.bbox is None or h.pixels < min_pixels:
            continue
        if source == "action":
            out.append((h, clip_box(np.asarray(h.bbox, np.float64), w, h_img), h.motion.label, None))
            continue
        for s, side in enumerate(("left", "right")):
            pts = np.asarray(h.motion.hand_keypoints[s], np.float64)
            if visible_in_image(frame, pts).any():
                box = np.array([*pts[:, :2].min(0), *pts[:, :2].max(0)])
                out.append((h, clip_box(box, w, h_img), h.motion.gestures.get(side) or "none", side))
    return out


class ClassificationScorer(Scorer):
    """Class labels against the motion ground truth: accuracy and a confusion matrix."""

    task = "classification"
    primary, primary_label = "accuracy", "accuracy"

    def __init__(self, config: BenchConfig, spec: SensorSpec) -> None:
        super().__init__(config, spec)
        self.source = label_source(spec) or "action"
        iou = MATCH_IOU[self.source]
        self.iou = config.face_iou if iou is None else iou
        self.classes: list[str] = []

    def add(self, k: int, frame: Frame, result: Any) -> Drawn:
        subjects = classification_truth(frame, self.source, self.config.min_pixels)
        labels = [str(v) for v in result.labels]
        for c in getattr(result, "classes", ()):
            if str(c) not in self.classes:
                self.classes.append(str(c))
        pred: list[str | None] = [None] * len(subjects)
        drawn = Drawn(gt_boxes=[b for _, b, _, _ in subjects])
        if result.boxes is None:
            if subjects:
                g = int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for _, b, _, _ in subjects]))
                subjects, pred = [subjects[g]], [labels[0] if labels else None]
        else:
            boxes = np.asarray(result.boxes, np.float64).reshape(-1, 4)
            gm, *_ = greedy_match(boxes, np.ones(len(boxes)), np.asarray([b for _, b, _, _ in subjects]).reshape(-1, 4),
                                  np.zeros(len(subjects), bool), self.iou)
            pred = [labels[m] if m >= 0 else None for m in gm]
            drawn.pred_boxes = list(boxes)
        for (h, box, true, side), p in zip(subjects, pred):
            rec = {**subject(k, frame, h, self.config.min_pixels), "true": true, "predicted": p,
                   "correct": p == true}
            if side is not None:
                rec["side"] = side
            self.records.append(rec)
            drawn.labels.append((box, f"{p or '-'} ({true})", p == true))
        return drawn

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"subjects": len(records), "classified": ratio(sum(r["predicted"] is not None for r in records),
                                                              len(records)),
                "accuracy": ratio(sum(r["correct"] for r in records), len(records))}

    def summary(self) -> dict[str, Any]:
        self.notes.append(f"true labels: {TRUTH[self.source]}; subjects the sensor gave no label count as wrong "
                          f"(column {MISSED} of the confusion matrix)")
        return self.metrics(self.records)

    def extra(self) -> dict[str, Any]:
        return {"confusion": confusion(self.records, self.classes)}


def confusion(records: list[dict[str, Any]], classes: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"labels": L, "columns": L + ["missed"], "matrix": (len(L), len(L) + 1) counts}``: rows the true
    label, columns the predicted one. ``L``: the sensor's classes, then other labels met, sorted."""
    met = {r["true"] for r in records} | {r["predicted"] for r in records if r["predicted"] is not None}
    labels = list(classes) + sorted(met - set(classes))
    index = {c: i for i, c in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels) + 1), int)
    for r in records:
        matrix[index[r["true"]], len(labels) if r["predicted"] is None else index[r["predicted"]]] += 1
    rows = [i for i, c in enumerate(labels) if matrix[i].sum() or matrix[:, i].sum()]
    return {"labels": [labels[i] for i in rows], "columns": [labels[i] for i in rows] + [MISSED],
            "matrix": matrix[np.ix_(rows, rows + [len(labels)])].tolist()}


def confusion_markdown(conf: dict[str, Any]) -> list[str]:
    """Lines of the confusion matrix as a markdown table (rows: true label)."""
    from hcgym.report import markdown_table

    return markdown_table(["true \\ predicted", *conf["columns"]],
                          [[label, *(str(v) for v in row)] for label, row in zip(conf["labels"], conf["matrix"])])


def confusion_png(conf: dict[str, Any], title: str) -> bytes:
    """``confusion.png``: counts, each row shaded by its share of the row's subjects."""
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    m = np.asarray(conf["matrix"], float).reshape(len(conf["labels"]), len(conf["columns"]))
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    size = 1.6 + 0.45 * len(conf["columns"])
    fig, ax = plt.subplots(figsize=(size + 1.2, 1.4 + 0.4 * len(conf["labels"])), dpi=100)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(conf["columns"])), conf["columns"], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(conf["labels"])), conf["labels"], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


__all__ = ["ClassificationScorer", "LABEL_SOURCES", "MATCH_IOU", "TRUTH", "classification_truth", "confusion",
           "confusion_markdown", "confusion_png", "label_source"]
