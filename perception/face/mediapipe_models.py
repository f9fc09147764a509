"""MediaPipe 0.10.21 ``solutions`` face detection (models ship inside the wheel)."""

from __future__ import annotations

import functools

import numpy as np

from hcgym.errors import DependencyNotInstalled


@functools.lru_cache(maxsize=None)
def _detector(model: str, min_confidence: float):
    try:
        from mediapipe.python.solutions import face_detection
    except ImportError:  # pragma: no cover - mediapipe is a core dependency
        raise DependencyNotInstalled("mediapipe==0.10.21 is required: pip install mediapipe==0.10.21") from None
    return face_detection.FaceDetection(model_selection=1 if model == "full" else 0,
                                        min_detection_confidence=min_confidence)


def detect(rgb: np.ndarray, model: str = "full", min_confidence: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe faces in an RGB uint8 image: boxes (N, 4) ``[x0, y0, x1, y1]`` in pixels and scores (N,).

    ``model`` is ``"short"`` (within about 2 m) or ``"full"`` (up to about 5 m).
    """
    boxes, scores, _ = detect_with_keypoints(rgb, model, min_confidence)
    return boxes, scores


def detect_with_keypoints(rgb: np.ndarray, model: str = "full", min_confidence: float = 0.5):
    """Boxes (N, 4), scores (N,) and MediaPipe's 6 keypoints (N, 6, 2) in pixels."""
    if model not in ("short", "full"):
        raise ValueError(f"model must be 'short' or 'full', got {model!r}")
    h, w = rgb.shape[:2]
    res = _detector(model, float(min_confidence)).process(np.ascontiguousarray(rgb))
    boxes, scores, kps = [], [], []
    for d in res.detections or []:
        b = d.location_data.relative_bounding_box
        boxes.append([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
        scores.append(d.score[0])
        kps.append([[k.x * w, k.y * h] for k in d.location_data.relative_keypoints])
    return (np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores, dtype=np.float64),
            np.asarray(kps, dtype=np.float64).reshape(-1, 6, 2))


def tile_origins(length: int, tile: int) -> list[int]:
    """Starts of ``tile``-pixel windows covering ``length`` pixels, at most ``tile // 2`` apart (so every
    span of up to half a tile lies wholly inside one window); ``[0]`` when one window covers it all."""
    if length <= tile:
        return [0]
    n = int(np.ceil((length - tile) / (tile // 2))) + 1
    return np.linspace(0, length - tile, n).round().astype(int).tolist()


def detect_tiled(rgb: np.ndarray, model: str = "full", min_confidence: float = 0.5, tile: int = 480,
                 nms_iou: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe on the whole image and, when it is larger than ``tile`` pixels, on overlapping
    ``tile`` x ``tile`` windows: boxes (N, 4), scores (N,) and keypoints (N, 6, 2) in image pixels.

    MediaPipe sees its input at 192 (full range) or 128 (short range) pixels, so faces that are small
    against a large photo vanish; a window brings them back to a size it finds. A face cut by a window's
    inner edge is dropped (the window half a tile over holds it whole, or the whole-image pass finds it,
    being large); duplicates between passes are merged by non-maximum suppression (OpenCV's ``NMSBoxes``).
    """
    import cv2

    h, w = rgb.shape[:2]
    found = [detect_with_keypoints(rgb, model, min_confidence)]
    if max(h, w) > tile:
        for y in tile_origins(h, tile):
            for x in tile_origins(w, tile):
                b, s, k = detect_with_keypoints(rgb[y:y + tile, x:x + tile], model, min_confidence)
                th, tw = min(tile, h - y), min(tile, w - x)
                cut = (((b[:, 0] < 2) & (x > 0)) | ((b[:, 1] < 2) & (y > 0))
                       | ((b[:, 2] > tw - 2) & (x + tw < w)) | ((b[:, 3] > th - 2) & (y + th < h)))
                found.append((b[~cut] + [x, y, x, y], s[~cut], k[~cut] + [x, y]))
    boxes, scores, kps = (np.concatenate(parts) for parts in zip(*found))
    if len(found) == 1 or not len(boxes):
        return boxes, scores, kps
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, nms_iou), dtype=np.int64).reshape(-1)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return boxes[keep], scores[keep], kps[keep]


@functools.lru_cache(maxsize=None)
def _mesh(max_faces: int, refine: bool, min_confidence: float):
    from mediapipe.python.solutions import face_mesh

    return face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces, refine_landmarks=refine,
                              min_detection_confidence=min_confidence)


def face_mesh_points(rgb: np.ndarray, max_faces: int = 4, refine: bool = True,
                     min_confidence: float = 0.5) -> np.ndarray:
    """MediaPipe face mesh: (N, 478, 3) points, x and y in pixels, z in the same scale as x (relative)."""
    h, w = rgb.shape[:2]
    res = _mesh(int(max_faces), bool(refine), float(min_confidence)).process(np.ascontiguousarray(rgb))
    out = [[[p.x * w, p.y * h, p.z * w] for p in face.landmark] for face in (res.multi_face_landmarks or [])]
    n = 478 if refine else 468
    return np.asarray(out, dtype=np.float64).reshape(-1, n, 3)
