"""Person boxes that detectors are trained on and scored against, from the generator's COCO files.

The generator writes, per person, the box of the visible pixels (``bbox``) and the extent of the
whole projected body (``bbox_amodal``). Crowd detection (CrowdHuman, the seed's Seq2Seq-NMS tables)
scores full-body boxes, because that is where neighbours overlap and NMS has to decide; so a person's
target box is ``bbox_amodal`` clipped to the image.

A person almost completely hidden by others, or too small to resolve, is marked *ignore*: a
detection on it is neither a true nor a false positive, and missing it is not a miss (COCO
``iscrowd`` regions). Rules (documented in ``docs/detection.md``):

* fewer visible pixels than ``min_fill`` (8 %) of the clipped full-body box (a standing person fills
  roughly 35-50 % of it), or
* ``occlusion`` (occluded share of the in-image keypoints) of at least ``max_occlusion`` (0.85), or
* a clipped box lower than ``min_height`` (12) pixels.
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
