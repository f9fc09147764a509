"""Procedural landmark sequences of the seven expressions (tests and benchmarks, no rendering).

A 51-point neutral template in the :data:`~.graph.DLIB51` layout (units of the inter-ocular distance, nose
tip at the origin, y down), per-class apex displacements loosely following FACS (happy: mouth corners up and
out; surprise: brows up, eyes wide, jaw drop; angry: brows down and together, lips pressed; sad: inner brows
up, mouth corners down; fear: brows up and together, eyes wide, mouth stretched; disgust: nose wrinkle,
upper lip raised), ramped from neutral to apex over the frames, on a per-subject face (shape variation,
size, position, in-plane rotation) with landmark jitter. Class order: ``list(EXPRESSIONS)``.
"""

from __future__ import annotations

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.expression.graph import DLIB51
from hcgym.synthesis.expressions import EXPRESSIONS

#: Class names in label order.
CLASSES: tuple[str, ...] = tuple(EXPRESSIONS)

# 51-layout index groups (dlib index - 17)
_BROW_R, _BROW_L = np.arange(0, 5), np.arange(5, 10)
_NOSTRILS = np.arange(14, 19)
_EYE_R, _EYE_L = np.arange(19, 25), np.arange(25, 31)
_MOUTH = np.arange(31, 51)
_CORNERS = np.array([31, 37, 43, 47])        # dlib 48, 54, 60, 64
_UPPER_LIP = np.array([32, 33, 34, 35, 36, 44, 45, 46])
_LOWER_LIP = np.array([38, 39, 40, 41, 42, 48, 49, 50])
_EYE_TOP = np.array([20, 21, 26, 27])
_EYE_BOTTOM = np.array([23, 24, 29, 30])
_INNER_BROW = np.array([3, 4, 5, 6])


def template51() -> np.ndarray:
    """(51, 2) float64 neutral face: eye centres at (+-0.5, 0), nose tip (index 13) at (0, 0.55)."""
    bx = np.linspace(-0.85, -0.15, 5)
    brow_r = np.stack([bx, -0.35 - 0.12 * np.sin(np.linspace(0.3, 2.8, 5))], 1)
    brow_l = brow_r[::-1] * [-1, 1]
    bridge = np.stack([np.zeros(4), [-0.05, 0.15, 0.35, 0.55]], 1)
    nostrils = np.stack([[-0.2, -0.1, 0.0, 0.1, 0.2], [0.65, 0.68, 0.7, 0.68, 0.65]], 1)
    eye_r = np.array([[-0.65, 0], [-0.55, -0.06], [-0.45, -0.06], [-0.35, 0], [-0.45, 0.06], [-0.55, 0.06]])
    eye_l = np.array([[0.35, 0], [0.45, -0.06], [0.55, -0.06], [0.65, 0], [0.55, 0.06], [0.45, 0.06]])
    outer = np.array([[-0.4, 1.05], [-0.25, 0.97], [-0.1, 0.93], [0, 0.94], [0.1, 0.93], [0.25, 0.97], [0.4, 1.05],
                      [0.25, 1.15], [0.1, 1.19], [0, 1.2], [-0.1, 1.19], [-0.25, 1.15]])
    inner = np.array([[-0.3, 1.05], [-0.1, 1.02], [0, 1.02], [0.1, 1.02], [0.3, 1.05], [0.1, 1.08], [0, 1.08],
                      [-0.1, 1.08]])
    return np.concatenate([brow_r, brow_l, bridge, nostrils, eye_r, eye_l, outer, inner]).astype(np.float64)


def _side(t: np.ndarray) -> np.ndarray:
    """-1 left of the midline, +1 right of it, 0 on it (per point)."""
    return np.sign(np.round(t[:, 0], 6))


def apex_displacements(t: np.ndarray | None = None) -> np.ndarray:
    """(7, 51, 2) apex displacement of each class from the template ``t`` (default :func:`template51`)."""
    t = template51() if t is None else t
    s = _side(t)
    d = np.zeros((len(CLASSES), len(t), 2))
    c = {name: i for i, name in enumerate(CLASSES)}
    brows = np.r_[_BROW_R, _BROW_L]
    # happy: corners up and out, upper lip up a little, lower lids up (cheek raise)
    d[c["happy"], _CORNERS] += np.c_[0.1 * s[_CORNERS], np.full(4, -0.1)]
    d[c["happy"], _UPPER_LIP, 1] -= 0.03
    d[c["happy"], _EYE_BOTTOM, 1] -= 0.03
    # sad: inner brows up, outer brows down, corners down
    d[c["sad"], _INNER_BROW, 1] -= 0.1
    d[c["sad"], [0, 9], 1] += 0.04
    d[c["sad"], _CORNERS, 1] += 0.09
    # angry: brows down and together, lids narrowed, lips pressed
    d[c["angry"], brows, 1] += 0.09
    d[c["angry"], _INNER_BROW, 0] -= 0.07 * s[_INNER_BROW]
    d[c["angry"], _EYE_TOP, 1] += 0.03
    d[c["angry"], _UPPER_LIP, 1] += 0.03
    d[c["angry"], _LOWER_LIP, 1] -= 0.04
    # surprise: brows up, eyes wide, jaw drop, mouth narrower
    d[c["surprise"], brows, 1] -= 0.14
    d[c["surprise"], _EYE_TOP, 1] -= 0.04
    d[c["surprise"], _LOWER_LIP, 1] += 0.3
    d[c["surprise"], _CORNERS] += np.c_[-0.06 * s[_CORNERS], np.full(4, 0.12)]
    # fear: brows up and together, eyes wide, mouth stretched sideways, small jaw drop
    d[c["fear"], brows, 1] -= 0.08
    d[c["fear"], _INNER_BROW, 0] -= 0.05 * s[_INNER_BROW]
    d[c["fear"], _EYE_TOP, 1] -= 0.04
    d[c["fear"], _CORNERS] += np.c_[0.12 * s[_CORNERS], np.full(4, 0.03)]
    d[c["fear"], _LOWER_LIP, 1] += 0.1
    # disgust: nose wrinkle, upper lip raised, brows down, lower lids up
    d[c["disgust"], _NOSTRILS, 1] -= 0.05
    d[c["disgust"], _UPPER_LIP, 1] -= 0.1
    d[c["disgust"], brows, 1] += 0.05
    d[c["disgust"], _EYE_BOTTOM, 1] -= 0.03
    return d


def ramp(frames: int) -> np.ndarray:
    """(T,) expression intensity per frame: 0 at frame 0; T <= 4: the CK+ protocol (first frame, then three
    apex frames 0.9, 0.95, 1.0); longer: a smooth onset over the first 60 % of the clip, then the apex."""
    if frames <= 4:
        return np.array([0.0, 0.9, 0.95, 1.0])[:frames] if frames > 1 else np.zeros(1)
    u = np.clip(np.arange(frames) / (0.6 * (frames - 1)), 0, 1)
    return u * u * (3 - 2 * u)


def toy_sequences(per_class: int, frames: int = 4, seed: int = 0, subjects: int = 20, first_subject: int = 0,
                  jitter: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labelled landmark sequences: ``x`` (N, T, 51, 2) float32 pixels, ``y`` (N,) int64, ``subject`` (N,).

    ``N = 7 * per_class``; subjects ``first_subject .. first_subject + subjects - 1`` (each subject's face
    shape comes from its id alone, so disjoint id ranges give identity-wise splits). ``jitter``: landmark
    noise per frame in units of the inter-ocular distance.
    """
    for name, v in (("per_class", per_class), ("frames", frames), ("subjects", subjects)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(name, f"must be a positive integer, got {v!r}")
    rng = np.random.default_rng(seed)
    base, disp, r = template51(), apex_displacements(), ramp(frames)
    n = len(CLASSES) * per_class
    y = np.repeat(np.arange(len(CLASSES)), per_class)
    subject = first_subject + rng.integers(0, subjects, n)
    x = np.empty((n, frames, DLIB51.num_points, 2), dtype=np.float32)
    for k in range(n):
        face = _subject_face(base, int(subject[k]))
        intensity = rng.uniform(0.6, 1.0)
        shape = face[None] + intensity * r[:, None, None] * disp[y[k]][None] * rng.uniform(0.85, 1.15, (1, 1, 2))
        shape = shape + rng.normal(0, jitter, shape.shape)
        angle = np.deg2rad(rng.uniform(-10, 10)) + np.deg2rad(rng.normal(0, 1.0, (frames, 1, 1)))
        cos, sin = np.cos(angle), np.sin(angle)
        rot = np.concatenate([cos * shape[..., :1] - sin * shape[..., 1:], sin * shape[..., :1] + cos * shape[..., 1:]], -1)
        size = rng.uniform(30, 70)
        centre = rng.uniform(80, 144, 2) + rng.normal(0, 1.0, (frames, 1, 2))
        x[k] = (rot * size + centre).astype(np.float32)
    order = rng.permutation(n)
    return x[order], y[order].astype(np.int64), subject[order].astype(np.int64)


def _subject_face(base: np.ndarray, subject: int) -> np.ndarray:
    """The neutral face of one subject: eye spacing, eye size, nose length, mouth width and brow height vary."""
    g = np.random.default_rng([7919, subject])
    f = base.copy()
    f[:, 0] *= g.uniform(0.92, 1.08)                       # face width
    f[_MOUTH, 0] *= g.uniform(0.85, 1.15)                  # mouth width
    f[_MOUTH, 1] += g.uniform(-0.08, 0.08)                 # mouth height
    f[_NOSTRILS, 1] += g.uniform(-0.06, 0.06)              # nose length
    f[np.r_[_BROW_R, _BROW_L], 1] += g.uniform(-0.06, 0.06)
    for eye in (_EYE_R, _EYE_L):
        centre = f[eye].mean(0)
        f[eye] = centre + (f[eye] - centre) * g.uniform(0.85, 1.2)
    return f
