"""Scoring person detections: the target boxes of the generator's COCO files and the detection metrics.

Shared by every task that scores people (the person detector, the NMS studies, the sensor bench), so none
of them imports another to score.

Target boxes. The generator writes, per person, the box of the visible pixels (``bbox``) and the extent
of the whole projected body (``bbox_amodal``). Crowd detection (CrowdHuman, the seed's Seq2Seq-NMS tables)
scores full-body boxes, because that is where neighbours overlap and NMS has to decide; so a person's
target box is ``bbox_amodal`` clipped to the image.

A person almost completely hidden by others, or too small to resolve, is marked *ignore*: a
detection on it is neither a true nor a false positive, and missing it is not a miss (COCO
``iscrowd`` regions). Rules (documented in ``docs/detection.md``):

* fewer visible pixels than ``min_fill`` (8 %) of the clipped full-body box (a standing person fills
  roughly 35-50 % of it), or
* ``occlusion`` (occluded share of the in-image keypoints) of at least ``max_occlusion`` (0.85), or
* a clipped box lower than ``min_height`` (12) pixels.

Metrics. :func:`coco_ap` (pycocotools) and :func:`precision_at` take ``items`` (dicts with ``width``,
``height``, ``boxes`` (G, 4) and ``ignore`` (G,), as :func:`load_coco_boxes` returns) and one
``(boxes, scores)`` pair of detections per item.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

MIN_FILL = 0.08
MAX_OCCLUSION = 0.85
MIN_HEIGHT = 12.0


def person_boxes(annotations: Iterable[dict[str, Any]], width: int, height: int, min_fill: float = MIN_FILL,
                 max_occlusion: float = MAX_OCCLUSION, min_height: float = MIN_HEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """Target boxes ``(G, 4)`` float32 ``[x0, y0, x1, y1]`` and ignore flags ``(G,)`` bool of one image.

    ``annotations`` are the image's COCO annotations (generator format: ``bbox_amodal`` and
    ``occlusion`` are used when present, a plain COCO file falls back to ``bbox``). Boxes that clip
    to nothing are dropped.
    """
    boxes, ignore = [], []
    for ann in annotations:
        x, y, w, h = ann.get("bbox_amodal") or ann["bbox"]
        x0, y0 = float(np.clip(x, 0, width)), float(np.clip(y, 0, height))
        x1, y1 = float(np.clip(x + w, 0, width)), float(np.clip(y + h, 0, height))
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            continue
        fill = float(ann.get("area", (x1 - x0) * (y1 - y0))) / ((x1 - x0) * (y1 - y0))
        hidden = (fill < min_fill or float(ann.get("occlusion", 0.0)) >= max_occlusion
                  or (y1 - y0) < min_height or bool(ann.get("iscrowd", 0)))
        boxes.append((x0, y0, x1, y1))
        ignore.append(hidden)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(ignore, bool)


def load_coco_boxes(path: Any) -> list[dict[str, Any]]:
    """Every image of a COCO file as ``{"id", "file_name", "width", "height", "boxes", "ignore"}``.

    Images keep the file's order; ``boxes``/``ignore`` come from :func:`person_boxes`.
    """
    import json
    from pathlib import Path

    from hcgym.errors import SpecError

    path = Path(path)
    if not path.is_file():
        raise SpecError("annotations", f"COCO file not found: {path}")
    try:
        data = json.loads(path.read_text())
        images, anns = data["images"], data.get("annotations", [])
    except (ValueError, KeyError, TypeError) as e:
        raise SpecError("annotations", f"{path} is not a COCO file with 'images' ({e})") from None
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in anns:
        by_image.setdefault(int(a["image_id"]), []).append(a)
    out = []
    for img in images:
        boxes, ignore = person_boxes(by_image.get(int(img["id"]), []), int(img["width"]), int(img["height"]))
        out.append({"id": int(img["id"]), "file_name": img["file_name"], "width": int(img["width"]),
                    "height": int(img["height"]), "boxes": boxes, "ignore": ignore})
    return out


def coco_ap(items: list[dict[str, Any]], detections: list[tuple[np.ndarray, np.ndarray]], max_dets: int = 100
            ) -> dict[str, float]:
    """COCO AP0.5 and AP0.5:0.95 (percent; NaN without any non-ignored person) of detections against the
    items' target boxes.

    Ignored people are ``iscrowd`` regions (matching them is neither a hit nor a false positive);
    ``maxDets`` is ``[max_dets]``, as in the OpenDR NMS evaluation. Images without any detection or
    person count too (a false positive on an empty image lowers AP).
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for k, (it, (boxes, scores)) in enumerate(zip(items, detections)):
        images.append({"id": k + 1, "width": it["width"], "height": it["height"]})
        for b, ig in zip(it["boxes"], it["ignore"]):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": k + 1, "category_id": 1, "bbox": [float(b[0]), float(b[1]), w, h],
                         "area": w * h, "iscrowd": int(ig)})
        for b, s in zip(boxes, scores):
            dets.append({"image_id": k + 1, "category_id": 1, "score": float(s),
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    if not any(not a["iscrowd"] for a in anns):  # AP is undefined without a person to find
        return {"ap50": float("nan"), "ap": float("nan")}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        if not dets:
            return {"ap50": 0.0, "ap": 0.0}
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [int(max_dets)]
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, 0, 0, 0]  # (iou thresholds, recall points)

    def mean(p: np.ndarray) -> float:
        p = p[p > -1]
        return float(p.mean() * 100) if p.size else 0.0

    return {"ap50": mean(prec[0]), "ap": mean(prec)}


def precision_at(items: list[dict[str, Any]], detections: list[tuple[np.ndarray, np.ndarray]],
                 score_threshold: float = 0.3, iou: float = 0.5) -> dict[str, float]:
    """Precision and recall (percent) of the detections scoring at least ``score_threshold``.

    Detections are matched greedily by score to unmatched people at IoU >= ``iou``; a detection
    whose best match is an ignored person is left out of both counts.
    """
    from hcgym.geometry import iou_matrix

    tp = fp = n_gt = 0
    for it, (boxes, scores) in zip(items, detections):
        keep = np.asarray(scores) >= score_threshold
        boxes = np.asarray(boxes, np.float64)[keep]
        order = np.argsort(-np.asarray(scores)[keep], kind="stable")
        gt, ig = np.asarray(it["boxes"], np.float64), np.asarray(it["ignore"], bool)
        n_gt += int((~ig).sum())
        if not len(boxes):
            continue
        if not len(gt):
            fp += len(boxes)
            continue
        ious = iou_matrix(np.concatenate([boxes, gt]))[: len(boxes), len(boxes):]
        used = np.zeros(len(gt), bool)
        for d in order:
            cand = np.where(~used & ~ig & (ious[d] >= iou))[0]
            if len(cand):
                used[cand[np.argmax(ious[d, cand])]] = True
                tp += 1
            elif np.any(ig & (ious[d] >= iou)):
                continue
            else:
                fp += 1
    return {"precision": round(100.0 * tp / max(tp + fp, 1), 2), "recall": round(100.0 * tp / max(n_gt, 1), 2)}
