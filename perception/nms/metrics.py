"""COCO AP of NMS outputs on a candidate set's ground truth (used by the NMS evaluation and training)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.nms.candidates import ImageCandidates

Detections = tuple[np.ndarray, np.ndarray]  # boxes (K, 4) xyxy, scores (K,)


def coco_ap(images: Sequence[ImageCandidates], detections: Sequence[Detections], max_dets: int) -> dict[str, float]:
    """``{"ap50", "ap"}`` (fractions) of ``detections[i]`` on image ``images[i]`` (ignored people as in
    :mod:`hcgym.perception.scoring`): the shared :func:`hcgym.perception.scoring.coco_ap` on the candidate set's ground truth.

    NaN when no image has a non-ignored person.
    """
    from hcgym.perception.scoring import coco_ap as coco_ap_percent

    if len(detections) != len(images):
        raise SpecError("detections", f"expected one entry per image ({len(images)}), got {len(detections)}")
    items = [{"width": im.width, "height": im.height, "boxes": im.gt_boxes, "ignore": im.gt_ignore} for im in images]
    r = coco_ap_percent(items, detections, max_dets)
    return {"ap50": r["ap50"] / 100.0, "ap": r["ap"] / 100.0}
