"""Training and evaluation inputs of the action models from cached clip arrays (numpy in, torch out).

The arrays are those of an action-data cache (:mod:`hcgym.synthesis.action_data`): ``rgb`` (N, T, S, S, 3)
uint8 person crops and skeletons (N, T, 25, 3) float32, normalised per clip. Video is normalised here,
per batch, so a whole split never has to exist as float32 (1144 clips of 40 frames at 112x112 would be
6.9 GB).

* :func:`video_batch`: (B, 3, F, S, S) float32, ``(rgb / 255 - mean) / std``; training draws a random
  window of ``F`` consecutive frames per clip, evaluation takes the centre window;
* :func:`skeleton_batch`: (B, 3, T, 25, 1) float32; training rotates each clip about the vertical axis
  (the camera's y) by up to :data:`ROTATE_DEG` degrees and scales it by :data:`SCALE`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Skeleton augmentation: rotation about the vertical axis (degrees, either way) and scale range.
ROTATE_DEG = 15.0
SCALE = (0.9, 1.1)


def window_starts(n: int, total: int, frames: int, rng: np.random.Generator | None) -> np.ndarray:
    """Start frame of a ``frames``-long window in each of ``n`` clips of ``total`` frames (random, or centred
    when ``rng`` is ``None``)."""
    if not 1 <= frames <= total:
        from hcgym.errors import SpecError

        raise SpecError("frames", f"expected 1-{total} frames (the cached clip length), got {frames}")
    if rng is None:
        return np.full(n, (total - frames) // 2, np.int64)
    return rng.integers(0, total - frames + 1, n)


def video_batch(rgb: np.ndarray, idx: np.ndarray, frames: int, rng: np.random.Generator | None,
                mean: float, std: float, starts: np.ndarray | None = None) -> Any:
    """(B, 3, frames, S, S) float32 tensor of the clips ``idx`` of ``rgb`` (N, T, S, S, 3) uint8, windows
    from ``starts`` (default: :func:`window_starts`)."""
    import torch

    starts = window_starts(len(idx), rgb.shape[1], frames, rng) if starts is None else starts
    clips = np.stack([rgb[i, s:s + frames] for i, s in zip(idx, starts)])
    x = torch.from_numpy(np.ascontiguousarray(clips.transpose(0, 4, 1, 2, 3))).float().div_(255.0)
    return x.sub_(mean).div_(std)


def skeleton_batch(skeleton: np.ndarray, idx: np.ndarray, rng: np.random.Generator | None,
                   frames: int | None = None, starts: np.ndarray | None = None) -> Any:
    """(B, 3, T, 25, 1) float32 tensor of the clips ``idx`` of ``skeleton`` (N, T, 25, 3); with ``frames``
    a window of them (from ``starts``, default random / centred as :func:`window_starts`); augmented
    (rotation and scale) when ``rng`` is given."""
    import torch

    s = skeleton[idx]
    if frames is not None:
        starts = window_starts(len(idx), s.shape[1], frames, rng) if starts is None else starts
        s = np.stack([c[a:a + frames] for c, a in zip(s, starts)])
    s = s.astype(np.float32, copy=True)
    if rng is not None:
        for k in range(len(s)):
            a = math.radians(float(rng.uniform(-ROTATE_DEG, ROTATE_DEG)))
            rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], np.float32)
            s[k] = (s[k] @ rot.T) * np.float32(rng.uniform(*SCALE))
    return torch.from_numpy(np.ascontiguousarray(s.transpose(0, 3, 1, 2)[..., None]))


def downsample(rgb: np.ndarray, size: int) -> np.ndarray:
    """(N, T, S, S, 3) uint8 clips area-averaged to (N, T, size, size, 3) uint8 (``S`` a multiple of ``size``);
    clip by clip, so no float copy of the whole set is made."""
    s = int(rgb.shape[2])
    if size == s:
        return rgb
    if size < 1 or s % size:
        from hcgym.errors import SpecError

        raise SpecError("size", f"expected a divisor of the cached crop size {s}, got {size}")
    f = s // size
    out = np.empty((*rgb.shape[:2], size, size, 3), np.uint8)
    for i in range(len(rgb)):
        c = rgb[i].reshape(rgb.shape[1], size, f, size, f, 3).astype(np.uint16).sum((2, 4))
        out[i] = ((c + (f * f) // 2) // (f * f)).astype(np.uint8)
    return out


def model_batch(kind: str, idx: np.ndarray, rng: np.random.Generator | None, *, labels: np.ndarray,
                rgb: np.ndarray | None = None, skeleton: np.ndarray | None = None, frames: int | None = None,
                mean: float = 0.45, std: float = 0.225) -> tuple[tuple, Any]:
    """``(inputs, labels)`` of the clips ``idx`` for a model of ``kind`` (:data:`.training.KINDS`).

    ``x3d``: a ``frames`` window of ``rgb``; ``stgcn``/``agcn``: the whole ``skeleton`` clip (N, 3, T, 25, 1);
    ``tcn``: a ``frames`` window of it (N, 3, frames, 25); ``mmtm``: the same window of both. Windows are random
    with ``rng`` (and skeletons augmented), centred without.
    """
    import torch

    y = torch.from_numpy(labels[idx].astype(np.int64))
    if kind == "x3d":
        return (video_batch(rgb, idx, frames, rng, mean, std),), y
    if kind == "mmtm":
        starts = window_starts(len(idx), rgb.shape[1], frames, rng)
        video = video_batch(rgb, idx, frames, None, mean, std, starts)
        return (video, skeleton_batch(skeleton, idx, rng, frames, starts)[..., 0]), y
    if kind == "tcn":
        return (skeleton_batch(skeleton, idx, rng, frames)[..., 0],), y
    return (skeleton_batch(skeleton, idx, rng),), y


def accuracy(model: Any, batch: Any, idx: np.ndarray, chunk: int = 32) -> float:
    """Top-1 accuracy (%) of ``model`` (eval mode, no grad) on the clips ``idx``; ``batch(idx)`` gives
    ``(inputs, labels)`` (centred windows, no augmentation)."""
    import torch

    if not len(idx):
        return float("nan")
    correct = 0
    with torch.no_grad():
        for k in range(0, len(idx), chunk):
            inputs, y = batch(idx[k:k + chunk])
            correct += int((model(*inputs).argmax(1) == y).sum())
    return 100.0 * correct / len(idx)
