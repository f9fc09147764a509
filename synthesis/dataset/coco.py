"""COCO ``person`` annotations from rendered ground truth, and the final per-split JSON files.

Standard fields (``bbox``, ``area``, ``segmentation`` as RLE with ``counts`` a string,
``iscrowd``, ``keypoints``, ``num_keypoints``) follow the COCO keypoint format, so
``pycocotools`` reads the files as they are. Extra fields per annotation:

* ``face_box``: ``[x, y, w, h]`` pixels (the calibrated box of :mod:`hcgym.envs.backends.truth`) or ``null``;
* ``face_landmarks``: 5 x ``[u, v, visibility]`` (eyes, nose tip, mouth corners; the person's left first);
* ``identity`` (hash of the person's identity) and ``identity_id`` (index in the dataset's identity pool);
* ``avatar``: key into the file's top-level ``avatars`` table, which holds each avatar's full spec;
* ``keypoints_3d``: 17 x ``[x, y, z]`` world metres (the image's ``camera.world_to_camera`` maps
  them to the OpenCV camera frame); ``bbox_amodal`` (all projected mesh vertices, ignores
  occlusion) as ``[x, y, w, h]``; ``placement`` (feet position, heading, body radius);
  ``distance`` (metres, camera to eyes); ``occlusion`` (fraction of the in-image keypoints
  that are occluded) and ``truncated`` (the body extends past the image border).

Images carry ``camera`` (intrinsics, 4x4 ``world_to_camera``, height, pitch, yaw, hfov, and
``distortion`` ``[k1, k2]`` for a distorting lens), ``light`` and ``background``. Pixel coordinates are continuous (pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)``), boxes come from the masks, so ``bbox == maskUtils.toBbox(segmentation)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hcgym.types import COCO_KEYPOINTS, COCO_SKELETON, NOT_LABELLED, OCCLUDED, HumanTruth

PERSON_CATEGORY: dict[str, Any] = {
    "id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_KEYPOINTS),
    "skeleton": [[a + 1, b + 1] for a, b in COCO_SKELETON],
}
#: Annotation ids are ``image_id * ANN_PER_IMAGE + k + 1`` (stable whatever the shard layout).
ANN_PER_IMAGE = 1000


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) bool mask -> COCO RLE ``{"size": [H, W], "counts": str}``."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(x) for x in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _xywh(box: np.ndarray | None, nd: int = 2) -> list[float] | None:
    if box is None or not np.all(np.isfinite(box)):
        return None
    x0, y0, x1, y1 = (float(v) for v in box)
    return [round(x0, nd), round(y0, nd), round(x1 - x0, nd), round(y1 - y0, nd)]


def _keypoints(kp: np.ndarray) -> tuple[list[float], int]:
    flat: list[float] = []
    labelled = 0
    for u, v, vis in kp:
        if int(vis) == NOT_LABELLED or not (np.isfinite(u) and np.isfinite(v)):
            flat += [0, 0, 0]
        else:
            flat += [round(float(u), 2), round(float(v), 2), int(vis)]
            labelled += 1
    return flat, labelled


def person_annotation(ann_id: int, image_id: int, truth: HumanTruth, mask: np.ndarray, identity_id: int,
                      placement: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """One COCO annotation for a person whose visible pixels are ``mask`` (H, W) bool (non-empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    bbox = [int(cols[0]), int(rows[0]), int(cols[-1] + 1 - cols[0]), int(rows[-1] + 1 - rows[0])]
    flat, labelled = _keypoints(truth.keypoints)
    vis = truth.keypoints[:, 2]
    occluded = int((vis == OCCLUDED).sum())
    amodal = truth.bbox_amodal
    truncated = bool(amodal is not None and (amodal[0] < 0 or amodal[1] < 0 or amodal[2] > width
                                             or amodal[3] > height))
    lm = np.nan_to_num(truth.face_landmarks, nan=0.0)
    landmarks = [[round(float(u), 2), round(float(v), 2), int(s)] if s > 0 else [0, 0, 0] for u, v, s in lm]
    return {
        "id": int(ann_id), "image_id": int(image_id), "category_id": 1,
        "bbox": bbox, "area": int(mask.sum()), "segmentation": encode_mask(mask), "iscrowd": 0,
        "keypoints": flat, "num_keypoints": labelled,
        "face_box": _xywh(truth.face_box), "face_landmarks": landmarks,
        "identity": truth.identity, "identity_id": int(identity_id), "avatar": truth.avatar,
        "keypoints_3d": [[round(float(x), 4) for x in p] for p in truth.keypoints_3d],
        "bbox_amodal": _xywh(amodal), "placement": placement,
        "distance": round(float(truth.distance), 3),
        "occlusion": round(occluded / labelled, 4) if labelled else 0.0, "truncated": truncated,
    }


def coco_file(images: list[dict], annotations: list[dict], avatars: dict[str, Any],
              description: str, config: dict[str, Any]) -> dict[str, Any]:
    """A complete COCO dictionary (``avatars`` restricted to those the annotations use)."""
    used = sorted({a["avatar"] for a in annotations})
    return {
        "info": {"description": description, "version": "1.0", "contributor": "hcgym generate"},
        "licenses": [],
        "categories": [PERSON_CATEGORY],
        "images": images,
        "annotations": annotations,
        "avatars": {k: avatars[k] for k in used},
        "config": config,
    }
