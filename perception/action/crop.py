"""Video inputs of the X3D action models: a square crop around the person, resized, normalised RGB.

The training caches (:mod:`hcgym.synthesis.action_data`) crop each clip with one box, the union of the
person's boxes over the clip made square and enlarged by :data:`CROP_MARGIN` (:func:`square_box`), cut and
resized by :func:`crop_frames`; the models see ``(rgb / 255 - RGB_MEAN) / RGB_STD`` (:func:`normalise_rgb`).
The live sensor ``action/cox3d`` (:mod:`hcgym.perception.action.sensors`) uses the same functions per frame.
"""

from __future__ import annotations

import math

import numpy as np

#: The crop's side is the larger side of the union box times this.
CROP_MARGIN = 1.15
#: Mean and standard deviation of the normalised RGB the X3D models see (X3D / PyTorchVideo values).
RGB_MEAN, RGB_STD = 0.45, 0.225


def square_box(boxes: np.ndarray, margin: float = CROP_MARGIN) -> np.ndarray:
    """The integer square ``[x0, y0, x1, y1]`` around the union of (K, 4) boxes, sides times ``margin``."""
    lo, hi = boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)
    centre = (lo + hi) / 2.0
    side = max(1, math.ceil(float((hi - lo).max()) * margin))
    x0, y0 = (int(math.floor(c - side / 2.0)) for c in centre)
    return np.array([x0, y0, x0 + side, y0 + side], dtype=np.int64)


def crop_frames(frames: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) frames cut to ``box`` (black outside the frame) and resized to (T, size, size, 3)."""
    import cv2

    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = frames.shape[1:3]
    side = x1 - x0
    canvas = np.zeros((len(frames), side, side, 3), dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frames[:, sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in canvas])


def normalise_rgb(crop: np.ndarray) -> np.ndarray:
    """(3, S, S) float32 model input of one (S, S, 3) uint8 crop: ``(rgb / 255 - RGB_MEAN) / RGB_STD``, computed in
    float32 as the training batches are."""
    x = np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
    x -= np.float32(RGB_MEAN)
    x /= np.float32(RGB_STD)
    return x
