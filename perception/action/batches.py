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
