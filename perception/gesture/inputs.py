"""Inputs of the gesture classifiers: the hand crop, its channels, and a Kinect-like depth noise model.

The training data (:mod:`hcgym.synthesis.gesture_data`) and a live sensor prepare an RGB-D frame the same way:

* :func:`hand_box`: the square integer-pixel box ``[x0, y0, x1, y1]`` around 21 hand keypoints (ground truth or
  MediaPipe Hands): the centre of their extent, side :data:`HAND_MARGIN` times the larger extent, optionally
  jittered (training), moved inside the image;
* :func:`crop_rgbd`: the box cut from the frame and resized to ``S x S``: RGB by area averaging when
  shrinking and bilinearly when enlarging (:func:`hcgym.perception.action.crop.crop_frames`), depth by the
  nearest pixel, so no depth between a finger and the wall behind it is invented and holes stay 0;
* :func:`channels`: ``(N, C, S, S)`` float32 model inputs of a modality (``rgb``, ``depth`` or ``rgbd``,
  early fusion = the 4 channels stacked): RGB ``(rgb / 255 - RGB_MEAN) / RGB_STD`` (ImageNet statistics, as
  the OpenDR learner) and one depth channel, :func:`depth_channel`.

Depth channel (``depth_mode``):

* ``"relative"`` (default): ``clip((z - z_ref) / DEPTH_SCALE, -1, 1)`` with ``z_ref`` the median depth of the
  readings in the central half of the crop (the hand: the box is centred on it), holes (0 = no reading) at
  +1. The hand lies near 0 at any distance, its relief (a few cm) spans about +-0.2, whatever is more than
  :data:`DEPTH_SCALE` behind it (the body, the wall, clutter) is +1 and anything nearer -1: the channel
  separates the hand from a background of the same colour without depending on how far the person stands.
* ``"absolute"``: ``z / DEPTH_MAX`` in [0, 1] (0 = no reading), like a 16-bit depth image divided by its
  range (the OpenDR learner divides millimetres by 65535); the hand's value then changes with its distance;
* ``"metres"``: the depth itself (0 = no reading), for pipelines that normalise or augment metric depth.

:func:`kinect_depth` is the depth camera's noise model (applied to metric depth at the sensor's own
resolution): lateral noise and holes at depth discontinuities, random dropouts, axial noise
``sigma(z) = 0.0012 + 0.0019 (z - 0.4)^2`` m (Nguyen, Izadi and Lovell 2012), millimetre quantisation and the
0.5-4.5 m working range.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.action.crop import crop_frames, square_box

#: The crop's side is the keypoints' larger extent times this.
HAND_MARGIN = 1.5
#: Smallest crop side in pixels (a hand a few pixels wide still gets a crop of some context).
MIN_SIDE = 16
#: ImageNet mean and standard deviation of the RGB channels.
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)
#: ``relative`` depth: metres per unit (and the clip range, +-1 unit).
DEPTH_SCALE = 0.25
#: ``absolute`` depth: metres mapped to 1 (the far end of the noise model's range).
DEPTH_MAX = 4.5
DEPTH_MODES = ("relative", "absolute", "metres")
MODALITIES = {"rgb": 3, "depth": 1, "rgbd": 4}
#: Kinect-like noise: working range (metres), axial noise sigma(z) = a + b (z - c)^2 (metres).
KINECT_RANGE = (0.5, 4.5)
KINECT_AXIAL = (0.0012, 0.0019, 0.4)


def hand_box(points_uv: np.ndarray, image_size: tuple[int, int] | None = None, margin: float = HAND_MARGIN,
             rng: np.random.Generator | None = None, shift: float = 0.1,
             scale: tuple[float, float] = (0.9, 1.15)) -> np.ndarray:
    """The square crop ``[x0, y0, x1, y1]`` (int64, pixels, ``x1 - x0 == y1 - y0``) around hand keypoints.

    Args:
        points_uv: (K, 2) pixel coordinates (NaN rows are ignored).
        image_size: (W, H): the box is moved inside the image (and shrunk to fit it); ``None``: left as is.
        margin: the side is the points' larger extent times ``margin`` (at least :data:`MIN_SIDE`).
        rng: with a generator, the box is jittered (training): its centre moves by up to ``shift`` of the
            side in x and y and its side is multiplied by a factor in ``scale``.
    """
    p = np.asarray(points_uv, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if not len(p):
        raise SpecError("points_uv", "no finite keypoint to put a box around")
    lo, hi = p.min(axis=0), p.max(axis=0)
    centre = (lo + hi) / 2.0
    side = max(float(MIN_SIDE), float((hi - lo).max()) * float(margin))
    if rng is not None:
        centre = centre + rng.uniform(-shift, shift, 2) * side
        side *= float(rng.uniform(*scale))
    if image_size is not None:
        side = min(side, float(min(image_size)))
    box = square_box(np.array([[*(centre - side / 2.0), *(centre + side / 2.0)]]), margin=1.0)
    if image_size is not None:
        w, h = image_size
        s = int(box[2] - box[0])
        if s > min(w, h):
            s = int(min(w, h))
        x0 = int(np.clip(box[0], 0, w - s))
        y0 = int(np.clip(box[1], 0, h - s))
        box = np.array([x0, y0, x0 + s, y0 + s], dtype=np.int64)
    return box


def crop_rgbd(rgb: np.ndarray, depth: np.ndarray, box, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``box`` out of an (H, W, 3) uint8 image and its (H, W) depth (metres; 0, NaN or inf = no reading) and
    resize both to ``size x size``: ((S, S, 3) uint8, (S, S) float32 metres with 0 for no reading). Outside the
    frame the crop is black and has no depth."""
    import cv2

    x0, y0, x1, y1 = (int(v) for v in box)
    side = x1 - x0
    if side <= 0 or y1 - y0 != side:
        raise SpecError("box", f"need a square box with positive side, got {[x0, y0, x1, y1]}")
    out_rgb = crop_frames(np.asarray(rgb, dtype=np.uint8)[None], np.array([x0, y0, x1, y1]), int(size))[0]
    d = np.asarray(depth, dtype=np.float32)
    h, w = d.shape
    canvas = np.zeros((side, side), dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = d[sy0:sy1, sx0:sx1]
    canvas[~np.isfinite(canvas) | (canvas < 0)] = 0.0
    out_depth = cv2.resize(canvas, (int(size), int(size)), interpolation=cv2.INTER_NEAREST)
    return out_rgb, out_depth


def resample_depth(depth: np.ndarray, side: int) -> np.ndarray:
    """(S, S) depth resized to (side, side) by the nearest pixel (the crop's size back at sensor resolution)."""
    import cv2

    return cv2.resize(np.asarray(depth, dtype=np.float32), (int(side), int(side)), interpolation=cv2.INTER_NEAREST)


# ----------------------------------------------------------------------------- channels
def rgb_channels(rgb: np.ndarray, normalised: bool = True) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float32 ``(rgb / 255 - RGB_MEAN) / RGB_STD`` (``normalised``) or
    ``rgb / 255``."""
    x = np.ascontiguousarray(np.asarray(rgb).transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
    if normalised:
        x -= np.asarray(RGB_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
        x /= np.asarray(RGB_STD, dtype=np.float32).reshape(1, 3, 1, 1)
    return x


def reference_depth(depth: np.ndarray) -> np.ndarray:
    """(N,) the median reading in the central half (side/4 .. 3 side/4) of each (N, S, S) crop, metres; the median
    of the whole crop where the centre has no reading, NaN where the crop has none."""
    d = np.asarray(depth, dtype=np.float32)
    s = d.shape[-1]
    valid = np.where(d > 0, d, np.nan)
    centre = valid[:, s // 4: s - s // 4, s // 4: s - s // 4].reshape(len(d), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN
        ref = np.nanmedian(centre, axis=1)
        missing = ~np.isfinite(ref)
        if missing.any():
            ref[missing] = np.nanmedian(valid[missing].reshape(int(missing.sum()), -1), axis=1)
    return ref.astype(np.float32)


def depth_channel(depth: np.ndarray, mode: str = "relative") -> np.ndarray:
    """(N, S, S) metres (0 = no reading) -> (N, 1, S, S) float32 depth channel (module docstring)."""
    if mode not in DEPTH_MODES:
        raise SpecError("depth_mode", f"unknown depth mode {mode!r} (allowed: {', '.join(DEPTH_MODES)})")
    d = np.asarray(depth, dtype=np.float32)
    if mode == "metres":
        x = np.where(d > 0, d, 0.0).astype(np.float32)
    elif mode == "absolute":
        x = np.clip(d / np.float32(DEPTH_MAX), 0.0, 1.0)
    else:
        ref = reference_depth(d)
        ref = np.where(np.isfinite(ref), ref, 0.0).astype(np.float32)
        x = np.clip((d - ref[:, None, None]) / np.float32(DEPTH_SCALE), -1.0, 1.0)
        x[d <= 0] = 1.0
    return np.ascontiguousarray(x[:, None], dtype=np.float32)


def channels(rgb: np.ndarray, depth: np.ndarray, modality: str, depth_mode: str = "relative",
             normalised: bool = True) -> np.ndarray:
    """(N, C, S, S) float32 inputs of ``modality`` (``rgb`` 3, ``depth`` 1, ``rgbd`` 4 channels: R, G, B, D) from
    (N, S, S, 3) uint8 crops and their (N, S, S) depth in metres; RGB as :func:`rgb_channels` (``normalised``),
    depth as :func:`depth_channel` (``depth_mode``)."""
    if modality not in MODALITIES:
        raise SpecError("modality", f"unknown modality {modality!r} (allowed: {', '.join(MODALITIES)})")
    parts = []
    if modality in ("rgb", "rgbd"):
        parts.append(rgb_channels(rgb, normalised))
    if modality in ("depth", "rgbd"):
        parts.append(depth_channel(depth, depth_mode))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


# ----------------------------------------------------------------------------- depth camera noise
def kinect_sigma(z: np.ndarray) -> np.ndarray:
    """Axial noise standard deviation (metres) at depth ``z`` (metres): ``0.0012 + 0.0019 (z - 0.4)^2``."""
    a, b, c = KINECT_AXIAL
    return a + b * (np.asarray(z, dtype=np.float64) - c) ** 2


def kinect_depth(depth: np.ndarray, rng: np.random.Generator, edge_hole: float = 0.25, edge_shift: float = 0.3,
                 dropout: float = 0.003, blobs: float = 1.0) -> np.ndarray:
    """A Kinect-like reading of exact metric ``depth`` (H, W) at the sensor's own resolution (one pixel = one
    sensor pixel); 0, NaN or inf = nothing there. Returns (H, W) float32 metres, 0 = no reading.

    In this order: at depth discontinuities (a pixel whose depth differs from a 4-neighbour's by more than 2 cm +
    3 % of the larger one: the last pixel on either side) a pixel is lost with probability ``edge_hole`` (mixed and
    shadowed pixels) or
    takes the depth of a neighbour up to 2 pixels away with probability ``edge_shift`` (lateral noise of about a
    pixel); every pixel drops out with probability ``dropout`` and a Poisson(``blobs``) number of elliptic holes
    of 1-5 pixels radius is cut; the rest gets Gaussian axial noise of :func:`kinect_sigma`, is rounded to
    millimetres and kept only within :data:`KINECT_RANGE`.
    """
    import cv2

    z = np.asarray(depth, dtype=np.float64).copy()
    if z.ndim != 2:
        raise SpecError("depth", f"need an (H, W) depth map, got shape {z.shape}")
    z[~np.isfinite(z) | (z < 0)] = 0.0
    h, w = z.shape
    valid = z > 0
    pad = np.pad(z, 1, mode="edge")
    jump = np.zeros_like(z)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        jump = np.maximum(jump, np.abs(pad[dy:dy + h, dx:dx + w] - z))
    band = (jump > 0.02 + 0.03 * z) & valid
    u = rng.random((h, w))
    out = z.copy()
    shift = band & (u >= edge_hole) & (u < edge_hole + edge_shift)
    if shift.any():
        ys, xs = np.nonzero(shift)
        oy = np.clip(ys + rng.integers(-2, 3, len(ys)), 0, h - 1)
        ox = np.clip(xs + rng.integers(-2, 3, len(xs)), 0, w - 1)
        out[ys, xs] = z[oy, ox]
    out[band & (u < edge_hole)] = 0.0
    out[rng.random((h, w)) < dropout] = 0.0
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.poisson(blobs))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    out[mask > 0] = 0.0
    keep = out > 0
    out[keep] += rng.normal(0.0, 1.0, int(keep.sum())) * kinect_sigma(out[keep])
    out = np.round(out * 1000.0) / 1000.0
    out[(out < KINECT_RANGE[0]) | (out > KINECT_RANGE[1])] = 0.0
    return out.astype(np.float32)


def kinect_crops(depth: np.ndarray, boxes: np.ndarray, rngs) -> np.ndarray:
    """:func:`kinect_depth` on (N, S, S) depth crops at the sensor's resolution: crop ``i`` is resampled to its box
    side (``boxes`` (N, 4) in frame pixels; a non-finite box keeps S), read by the noise model with ``rngs[i]``
    and resampled back to S (nearest pixel)."""
    d = np.asarray(depth, dtype=np.float32)
    out = np.empty_like(d)
    s = d.shape[-1]
    for i in range(len(d)):
        width = float(boxes[i][2] - boxes[i][0])
        side = max(1, int(round(width))) if math.isfinite(width) else s
        out[i] = resample_depth(kinect_depth(resample_depth(d[i], side), rngs[i]), s)
    return out
