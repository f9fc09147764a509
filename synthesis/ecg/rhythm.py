"""Rhythms as R-peak trains: heart rate that follows activity, heart-rate variability, atrial fibrillation,
ectopic patterns, and the random numbers keyed so that a longer train has the same first beats.

Activity levels and the heart rate (:data:`~hcgym.synthesis.ecg.person.ACTIVITY_HR`, bpm):

=========  =========  ================================================================================
level      HR range   actions of the behaviour timeline (:mod:`hcgym.synthesis.motion.actions`)
=========  =========  ================================================================================
``rest``   60-80      idle, sit, sit_down, stand_up, turn, bow, stretch and every upper-body action but punch
``walk``   90-115     walk (slower than :data:`RUN_SPEED`), squat, kick, fall_down, punch
``run``    130-165    jump, walk at :data:`RUN_SPEED` or faster
=========  =========  ================================================================================

Time not covered by an activity entry is :data:`DEFAULT_LEVEL` (``rest``, motion 0). The heart rate follows the
level's target through a first-order lag, :data:`TAU_RISE_S` when rising and the slower :data:`TAU_FALL_S` when
falling; the motion level (0-1, scales motion artefacts) follows the entries' motion through :data:`MOTION_TAU_S`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from hcgym.errors import SpecError
from hcgym.synthesis.ecg.person import LEVELS, MORPH_KINDS, Person
from hcgym.synthesis.ecg.waves import beat_waves, f_waves, render

RHYTHMS: tuple[str, ...] = ("normal", "af", "other", "noisy")
#: What an "other" rhythm is (PhysioNet/CinC 2017 lumps every non-AF abnormal rhythm there).
OTHER_KINDS: tuple[str, ...] = ("bigeminy", "trigeminy", "frequent_pvc", "sinus_arrhythmia")
#: Motion level (0-1) of each activity level.
LEVEL_MOTION: dict[str, float] = {"rest": 0.0, "walk": 0.5, "run": 1.0}
#: Behaviour-timeline action -> (activity level, motion level 0-1). Every action of
#: :func:`hcgym.synthesis.motion.actions.actions` has an entry (a test holds the two together).
ACTION_ACTIVITY: dict[str, tuple[str, float]] = {
    "idle": ("rest", 0.0), "sit": ("rest", 0.0), "sit_down": ("rest", 0.15), "stand_up": ("rest", 0.2),
    "turn": ("rest", 0.15), "bow": ("rest", 0.15), "stretch": ("rest", 0.2),
    "walk": ("walk", 0.5), "squat": ("walk", 0.45), "kick": ("walk", 0.6), "fall_down": ("walk", 0.9),
    "jump": ("run", 1.0),
    "wave": ("rest", 0.15), "wave_both": ("rest", 0.2), "clap": ("rest", 0.2), "point": ("rest", 0.05),
    "arm_forward": ("rest", 0.05), "gesture_raise": ("rest", 0.05), "hands_on_hips": ("rest", 0.0),
    "cross_arms": ("rest", 0.0), "drink": ("rest", 0.05), "phone_call": ("rest", 0.0),
    "scratch_head": ("rest", 0.05), "raise_arms": ("rest", 0.15), "punch": ("walk", 0.4),
}
DEFAULT_LEVEL = "rest"
#: Walking speed (m/s) from which a timeline's ``walk`` counts as running (the walk-run transition lies near 2 m/s).
RUN_SPEED = 2.0
TAU_RISE_S = 25.0
TAU_FALL_S = 45.0
MOTION_TAU_S = 1.0
#: Step (s) of the heart-rate and motion-level controls (interpolated linearly between steps).
GRID_DT = 0.1
#: Shortest RR interval (s) the AV node lets through in atrial fibrillation.
AF_MIN_RR = 0.3
#: Depth factor of the breathing modulation in the ``sinus_arrhythmia`` kind of "other".
SINUS_ARRHYTHMIA_GAIN = 4.0
#: Share of beats that are PVCs in the ``frequent_pvc`` kind of "other" (never two in a row).
FREQUENT_PVC_SHARE = 0.25


class Draws:
    """Random numbers of item ``k`` (a beat, a noise block) from a generator keyed by ``(*key, k // chunk)``.

    Item ``k`` gets the same numbers however many items are drawn, so a stream's prefix does not depend on its
    length. ``draws(k)`` returns ``(normals (n_normal,), uniforms (n_uniform,))``.
    """

    def __init__(self, *key: int, n_normal: int = 8, n_uniform: int = 4, chunk: int = 256) -> None:
        self.key, self.n_normal, self.n_uniform, self.chunk = tuple(int(k) for k in key), n_normal, n_uniform, chunk
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        c, i = divmod(int(k), self.chunk)
        if c not in self._cache:
            rng = np.random.default_rng([*self.key, c])
            self._cache[c] = (rng.standard_normal((self.chunk, self.n_normal)), rng.random((self.chunk, self.n_uniform)))
        z, u = self._cache[c]
        return z[i], u[i]


# ------------------------------------------------------------------------------------------------ activity
@dataclass(frozen=True)
class ActivityEntry:
    start: float
    end: float
    level: int  #: index into LEVELS
    motion: float  #: 0-1


def activity_names() -> tuple[str, ...]:
    """Every name an activity entry may carry: the levels and the behaviour-timeline actions."""
    return (*LEVELS, *sorted(ACTION_ACTIVITY))


def parse_activity(activity: Any, duration: float | None) -> tuple[tuple[ActivityEntry, ...], float]:
    """Validate ``[(start_s, end_s, level_or_action), ...]`` and the duration (``None``: the last entry's end)."""
    if isinstance(activity, (str, bytes)) or not isinstance(activity, Sequence):
        raise SpecError("activity", f"expected a list of (start_s, end_s, level_or_action), got {type(activity).__name__}")
    entries = []
    for i, item in enumerate(activity):
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 3:
            raise SpecError(f"activity[{i}]", f"expected (start_s, end_s, level_or_action), got {item!r}")
        start, end, name = item
        if not all(_is_number(v) for v in (start, end)) or not 0 <= float(start) < float(end) < math.inf:
            raise SpecError(f"activity[{i}]", f"needs finite times with 0 <= start < end, got {start!r}, {end!r}")
        if name in LEVELS:
            level, motion = str(name), LEVEL_MOTION[str(name)]
        elif name in ACTION_ACTIVITY:
            level, motion = ACTION_ACTIVITY[name]
        else:
            raise SpecError(f"activity[{i}]", f"unknown level or action {name!r} (allowed: {', '.join(activity_names())})")
        entries.append(ActivityEntry(float(start), float(end), LEVELS.index(level), motion))
    if duration is None:
        if not entries:
            raise SpecError("duration", "give a duration or a non-empty activity list")
        duration = max(e.end for e in entries)
    if not _is_number(duration) or not 0 < float(duration) <= 86400.0:
        raise SpecError("duration", f"must be a number of seconds in (0, 86400], got {duration!r}")
    return tuple(entries), float(duration)


def activity_from_timeline(segments: Iterable[Any]) -> list[tuple[float, float, str]]:
    """Activity entries from behaviour-timeline segments (objects with ``action``, ``start``, ``end`` and
    optionally ``params``); a ``walk`` at :data:`RUN_SPEED` or faster counts as ``run``."""
    out = []
    for s in segments:
        name = str(s.action)
        speed = (getattr(s, "params", None) or {}).get("speed")
        if name == "walk" and speed is not None and float(speed) >= RUN_SPEED:
            name = "run"
        out.append((float(s.start), float(s.end), name))
    return out


def activity_grid(entries: Sequence[ActivityEntry], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Level index (n,) int and motion (n,) float on the control grid ``k * GRID_DT``; overlaps take the higher."""
    t = np.arange(n) * GRID_DT
    level = np.full(n, LEVELS.index(DEFAULT_LEVEL))
    motion = np.zeros(n)
    for e in entries:
        inside = (t >= e.start) & (t < e.end)
        level[inside] = np.maximum(level[inside], e.level)
        motion[inside] = np.maximum(motion[inside], e.motion)
    return level, motion


def first_order(target: np.ndarray, tau_up: float, tau_down: float) -> np.ndarray:
    """A first-order lag of ``target`` on the control grid, starting settled at ``target[0]`` (causal)."""
    out = np.empty(len(target))
    k_up, k_down = 1 - math.exp(-GRID_DT / tau_up), 1 - math.exp(-GRID_DT / tau_down)
    y = float(target[0])
    for i, x in enumerate(target.tolist()):
        out[i] = y
        y += (x - y) * (k_up if x > y else k_down)
    return out


# ------------------------------------------------------------------------------------------------ beats
@dataclass(frozen=True)
class BeatTrain:
    """R peaks of a rhythm: ``times`` (K,) s, ``rr`` (K,) the sinus (or mean AF) RR at each beat (s), ``kinds``
    (K,) ``""`` or an abnormal kind, ``af`` whether the atria fibrillate."""

    times: np.ndarray
    rr: np.ndarray
    kinds: np.ndarray
    af: bool


def beat_train(person: Person, rhythm: str, draws: Draws, hr_at: Callable[[float], float], *, t_start: float,
               t_end: float = math.inf, max_beats: int | None = None, subtype: str = "",
               abnormal_share: float = 0.0, forced: np.ndarray | None = None) -> BeatTrain:
    """Beats from ``t_start`` until ``t_end`` (exclusive) or ``max_beats``.

    Sinus rhythms ("normal", "noisy", "other"): RR = 60 / hr_at(t) times a breathing (RSA) and a 0.1 Hz (LF)
    modulation, plus jitter. "af": independent log-normal RR (the person's coefficient of variation, >= 0.3 s),
    no P waves. "other" adds the ``subtype`` pattern (:data:`OTHER_KINDS`). A PVC comes early (the person's
    coupling interval) and is followed by a full compensatory pause. With ``forced`` (K,) the kinds are given;
    otherwise each beat is abnormal with probability ``abnormal_share``, of one of the person's two kinds.
    """
    af = rhythm == "af"
    times, rrs, kinds = [], [], []
    t, k, kind = float(t_start), 0, _kind(person, rhythm, subtype, draws, 0, "", abnormal_share, forced)
    gain = SINUS_ARRHYTHMIA_GAIN if subtype == "sinus_arrhythmia" else 1.0
    ph = person.phases
    while t < t_end and (max_beats is None or k < max_beats):
        hr = float(hr_at(t))
        rr_s = 60.0 / hr
        z, _ = draws(k)
        times.append(t)
        rrs.append(rr_s / person.af_rate if af else rr_s)
        kinds.append(kind)
        nxt = _kind(person, rhythm, subtype, draws, k + 1, kind, abnormal_share, forced)
        if af:
            cv = person.af_cv
            rr = max(AF_MIN_RR, rr_s / person.af_rate * math.exp(cv * z[0] - cv * cv / 2))
        elif nxt == "pvc":
            rr = person.coupling * rr_s + 0.3 * person.jitter * z[0]
        elif kind == "pvc":
            rr = (2.0 - person.coupling) * rr_s + 0.3 * person.jitter * z[0]
        else:
            depth = gain * person.rsa * min(1.0, (70.0 / hr) ** 2)
            mod = depth * math.sin(2 * math.pi * person.resp_hz * t + ph[0]) + person.lf * math.sin(
                2 * math.pi * 0.1 * t + ph[1])
            rr = rr_s * (1 + mod) + person.jitter * z[0]
        t += rr
        k += 1
        kind = nxt
    return BeatTrain(np.asarray(times), np.asarray(rrs), np.asarray(kinds, dtype="<U16"), af)


def _kind(person: Person, rhythm: str, subtype: str, draws: Draws, k: int, prev: str, share: float,
          forced: np.ndarray | None) -> str:
    if forced is not None:
        return str(forced[k]) if k < len(forced) else ""
    _, u = draws(k)
    if rhythm == "other" and k > 0:
        if (subtype == "bigeminy" and k % 2 == 1) or (subtype == "trigeminy" and k % 3 == 2):
            return "pvc"
        if subtype == "frequent_pvc" and prev != "pvc" and u[2] < FREQUENT_PVC_SHARE:
            return "pvc"
    if u[0] < share:
        kind = person.kinds[int(u[1] * len(person.kinds))]
        return "" if kind == "pvc" and (prev == "pvc" or k == 0) else kind
    return ""


def label_beats(train: BeatTrain) -> np.ndarray:
    """Per-beat labels (K,): ``"pvc"``, ``"abnormal"`` (a morphological kind), ``"af"`` or ``"normal"``."""
    out = np.full(len(train.times), "af" if train.af else "normal", dtype="<U8")
    out[np.isin(train.kinds, MORPH_KINDS)] = "abnormal"
    out[train.kinds == "pvc"] = "pvc"
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def clean_ecg(person: Person, train: BeatTrain, draws: Draws, fs: float, n_samples: int,
              p_absent: np.ndarray | None = None) -> np.ndarray:
    """The noise-free ECG (n_samples,) float64 (mV) of ``train`` on samples ``n / fs``: every beat's waves (the
    beat's jitter from ``draws(k)``), without P where ``p_absent`` (default: AF beats and ``missing_p`` beats),
    plus f-waves in atrial fibrillation."""
    k = len(train.times)
    z = np.array([draws(i)[0][1:4] for i in range(k)]).reshape(k, 3)
    if p_absent is None:
        p_absent = np.full(k, train.af) | (train.kinds == "missing_p")
    amp, off, sig = beat_waves(person, train.rr, train.kinds, p_absent, z)
    out = render(train.times, amp, off, sig, fs, n_samples)
    if train.af:
        out += f_waves(person, n_samples, fs)
    return out
