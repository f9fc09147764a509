"""Detection metrics on :mod:`.ground_truth` targets: COCO AP (pycocotools) and precision at a score.

Both take ``items`` (dicts with ``width``, ``height``, ``boxes`` (G, 4) and ``ignore`` (G,), as
:func:`~.ground_truth.load_coco_boxes` returns) and one ``(boxes, scores)`` pair of detections per item.
"""

from __future__ import annotations

from typing import Any

import numpy as np


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
    from hcgym.perception.nms.base import iou_matrix

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
