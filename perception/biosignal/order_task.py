"""A synthetic order-sensitive series task for the NBoF family (OpenDR D3.2 §5.3; reproduction plan §6.4).

Every series holds two short multichannel motifs, one in each half: class 0 has motif A in the first half and
motif B in the second, class 1 the reverse. Each motif starts at a uniformly drawn sample of its half, at least
``margin`` samples from the half's ends, so a window of ``margin`` samples or fewer never sees both motifs or a
motif and a series end; with Gaussian noise everywhere, the set of such windows has the same distribution in both
classes. A model that averages features of receptive field ``<= margin`` over time (plain NBoF) therefore cannot
tell the classes apart (accuracy at chance), while one that knows where in time a feature is (TNBoF's short
histogram, temporal attention) can.

The motifs are fixed (the same for every seed): Hann-windowed sine bursts of ``motif_length`` samples,
channel ``c`` of A at 2 cycles with phase ``c pi / C``, channel ``c`` of B at 3.5 cycles with phase ``-c pi / C``;
each instance is scaled by a random gain in [0.8, 1.2].
"""

from __future__ import annotations

import numpy as np

from hcgym.errors import SpecError


def _int(field: str, v: object, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise SpecError(field, f"expected an integer >= {low}, got {v!r}")
    return int(v)


def motifs(channels: int, motif_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Motifs A and B, each ``(channels, motif_length)`` float64 with peak amplitude <= 1."""
    t = np.arange(motif_length) / motif_length
    window = np.hanning(motif_length)
    c = np.arange(channels)[:, None] * np.pi / channels
    a = window * np.sin(2 * np.pi * 2.0 * t + c)
    b = window * np.sin(2 * np.pi * 3.5 * t - c)
    return a, b


def order_task(count: int, seed: int, *, length: int = 512, channels: int = 2, motif_length: int = 32,
               margin: int | None = None, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """``count`` series and labels: ``x`` ``(count, channels, length)`` float32, ``y`` ``(count,)`` int64 in
    {0, 1} (balanced: ``count // 2`` of class 0 in random order).

    Args:
        seed: every random choice (labels, positions, gains, noise) flows from it.
        margin: samples kept free between a motif and the ends of its half (default ``length // 8``).
        noise: standard deviation of the additive white Gaussian noise (motif peaks are about 1).
    """
    count, length = _int("count", count, 1), _int("length", length, 4)
    channels, motif_length = _int("channels", channels, 1), _int("motif_length", motif_length, 2)
    seed = _int("seed", seed, 0)
    margin = length // 8 if margin is None else _int("margin", margin, 0)
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise SpecError("noise", f"expected a standard deviation >= 0, got {noise!r}")
    half = length // 2
    slack = half - 2 * margin - motif_length
    if slack < 0:
        raise SpecError("motif_length", f"a motif of {motif_length} samples with margins of {margin} does not fit "
                        f"in a half of {half} samples")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(count) % 2).astype(np.int64)
    starts = margin + rng.integers(0, slack + 1, size=(count, 2))
    gains = rng.uniform(0.8, 1.2, size=(count, 2))
    x = rng.normal(0.0, noise, size=(count, channels, length))
    a, b = motifs(channels, motif_length)
    for i in range(count):
        first, second = (a, b) if y[i] == 0 else (b, a)
        s0, s1 = starts[i, 0], half + starts[i, 1]
        x[i, :, s0:s0 + motif_length] += gains[i, 0] * first
        x[i, :, s1:s1 + motif_length] += gains[i, 1] * second
    return x.astype(np.float32), y


__all__ = ["motifs", "order_task"]
