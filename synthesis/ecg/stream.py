"""A wearable ECG over time for a person whose activity is known: heart rate follows the activity, motion
artefacts follow the motion, and every beat, rhythm window and noise level is labelled.

Streams are chunkable: every random number is keyed by a beat index or a noise block, every filter is causal, and
the heart rate and motion level are causal lags, so with the same ``seed`` and ``activity`` a stream of any length
equals the first seconds of a longer one sample for sample (both at least
:data:`~hcgym.synthesis.ecg.noise.POWER_INIT_S` long: the noise gain starts from the clean power of those seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from hcgym.synthesis.ecg import checks
from hcgym.synthesis.ecg.noise import (
    MOTION_GAIN,
    NOISY_SNR_DB,
    NOISY_SNR_RANGE,
    bursts,
    motion_noise,
    running_power,
    snr_db_of,
    stationary_noise,
)
from hcgym.synthesis.ecg.person import draw_person, person_rng
from hcgym.synthesis.ecg.rhythm import (
    GRID_DT,
    MOTION_TAU_S,
    OTHER_KINDS,
    RHYTHMS,
    TAU_FALL_S,
    TAU_RISE_S,
    Draws,
    activity_grid,
    beat_train,
    clean_ecg,
    first_order,
    label_beats,
    parse_activity,
)

#: Length (s) of the labelled rhythm windows, as the PhysioNet/CinC 2017 segments.
WINDOW_S = 30.0
_STREAM_TAG = 31


@dataclass(frozen=True)
class Beats:
    """R peaks of a stream: ``times`` (K,) float64 s, ``labels`` (K,) ``"normal"``, ``"abnormal"``, ``"pvc"`` or
    ``"af"``, ``kinds`` (K,) ``""`` or the abnormal kind
    (:data:`~hcgym.synthesis.ecg.person.ABNORMAL_KINDS`)."""

    times: np.ndarray
    labels: np.ndarray
    kinds: np.ndarray

    def __len__(self) -> int:
        return len(self.times)


@dataclass(frozen=True)
class ECGSegment:
    """One rhythm window ``[start, end)`` s: its label (:data:`~hcgym.synthesis.ecg.rhythm.RHYTHMS`; "noisy" also
    where the window's SNR is below :data:`~hcgym.synthesis.ecg.noise.NOISY_SNR_DB`), its beats, how many of
    them are abnormal or PVCs, and its measured SNR (dB; inf when clean)."""

    start: float
    end: float
    label: str
    abnormal_beats: int
    beats: int
    snr_db: float


@dataclass(frozen=True)
class ECGStream:
    """``signal`` (T,) float32 mV (clean + noise), ``clean`` (T,) float32 the noise-free ECG, ``fs`` Hz, ``t``
    (T,) float64 s, ``beats``, ``heart_rate`` (T,) float32 bpm (60 / the RR interval the sample lies in),
    ``motion_level`` (T,) float32 in [0, 1], ``segments`` (30 s windows), ``meta`` (seed, rhythm, "other" kind,
    noise level, the person's heart rate per activity level)."""

    signal: np.ndarray
    clean: np.ndarray
    fs: float
    t: np.ndarray
    beats: Beats
    heart_rate: np.ndarray
    motion_level: np.ndarray
    segments: tuple[ECGSegment, ...]
    meta: dict[str, Any] = field(default_factory=dict)


def ecg_stream(activity: Sequence[tuple[float, float, str]], seed: int, *, fs: float = 250,
               rhythm: str = "normal", abnormal_share: float = 0.0, snr_db: float | None = None,
               duration: float | None = None) -> ECGStream:
    """The ECG of the person keyed by ``seed`` doing ``activity``.

    Args:
        activity: ``[(start_s, end_s, level_or_action), ...]``: an activity level (``rest``, ``walk``, ``run``) or
            a behaviour-timeline action (:data:`~hcgym.synthesis.ecg.rhythm.ACTION_ACTIVITY`); gaps are rest,
            overlaps take the higher level and motion.
        seed: the person and every random choice.
        fs: sampling rate, 125-500 Hz.
        rhythm: one of :data:`~hcgym.synthesis.ecg.rhythm.RHYTHMS`; "other" picks its kind from the seed.
        abnormal_share: chance of each beat being abnormal (of the person's two kinds; PVCs are labelled "pvc").
        snr_db: stationary noise at this SNR against the running clean power, with motion artefacts on top that
            grow with the motion level; ``None``: clean (a "noisy" stream is always noisy).
        duration: seconds; default the end of the last activity entry.
    """
    entries, duration = parse_activity(activity, duration)
    seed = checks.seed(seed)
    fs = checks.fs(fs)
    rhythm = checks.choice(rhythm, "rhythm", RHYTHMS)
    share = checks.share(abnormal_share, "abnormal_share")
    snr = checks.snr(snr_db)
    if snr is not None and snr[0] != snr[1]:
        raise checks.SpecError("snr_db", f"a stream takes one SNR (dB) or None, got {snr_db!r}")

    n = int(round(duration * fs))
    person = draw_person(person_rng(seed, _STREAM_TAG))
    rec = person_rng(seed, _STREAM_TAG, 1).random(4)
    subtype = OTHER_KINDS[int(rec[0] * len(OTHER_KINDS))] if rhythm == "other" else ""
    n_grid = int(math.ceil((duration + 3.0) / GRID_DT)) + 1
    level, motion_target = activity_grid(entries, n_grid)
    tg = np.arange(n_grid) * GRID_DT
    hr_grid = first_order(person.hr_levels[level], TAU_RISE_S, TAU_FALL_S)
    motion_grid = first_order(motion_target, MOTION_TAU_S, MOTION_TAU_S)
    draws = Draws(seed, _STREAM_TAG, 2)
    train = beat_train(person, rhythm, draws, lambda t: np.interp(t, tg, hr_grid),
                       t_start=-(0.5 + rec[1]) * 60 / hr_grid[0], t_end=duration + 1.0, subtype=subtype,
                       abnormal_share=share)
    clean = clean_ecg(person, train, draws, fs, n)
    t = np.arange(n) / fs
    motion = np.interp(t, tg, motion_grid)

    target = None
    if rhythm == "noisy":
        drawn = NOISY_SNR_RANGE[0] + rec[2] * (NOISY_SNR_RANGE[1] - NOISY_SNR_RANGE[0])
        target = drawn if snr is None else min(snr[0], drawn)
    elif snr is not None:
        target = snr[0]
    noise = np.zeros(n)
    if target is not None:
        raw = stationary_noise(person, n, fs, (seed, _STREAM_TAG, 3)) \
            + MOTION_GAIN * motion_noise(person, motion, fs, (seed, _STREAM_TAG, 4))
        if rhythm == "noisy":
            raw += 3.0 * bursts((seed, _STREAM_TAG, 5), n, fs, WINDOW_S)
        noise = np.sqrt(running_power(clean, fs) / 10 ** (target / 10)) * raw

    labels = label_beats(train)
    idx = np.clip(np.searchsorted(train.times, t, side="right") - 1, 0, len(train.times) - 2)
    heart_rate = 60.0 / np.diff(train.times)[idx]
    inside = (train.times >= 0) & (train.times < duration)
    beats = Beats(train.times[inside], labels[inside], train.kinds[inside])
    segments = tuple(_window(s, min(s + WINDOW_S, duration), beats, clean, noise, fs, rhythm)
                     for s in np.arange(0.0, duration, WINDOW_S))
    meta = {"seed": seed, "rhythm": rhythm, "subtype": subtype, "snr_db": target, "abnormal_share": share,
            "duration": duration, "hr_levels": person.hr_levels.tolist(), "person_kinds": list(person.kinds)}
    return ECGStream((clean + noise).astype(np.float32), clean.astype(np.float32), fs, t, beats,
                     heart_rate.astype(np.float32), motion.astype(np.float32), segments, meta)


def _window(start: float, end: float, beats: Beats, clean: np.ndarray, noise: np.ndarray, fs: float,
            rhythm: str) -> ECGSegment:
    a, b = int(round(start * fs)), int(round(end * fs))
    snr = snr_db_of(clean[a:b], noise[a:b])
    sel = (beats.times >= start) & (beats.times < end)
    label = "noisy" if rhythm == "noisy" or snr < NOISY_SNR_DB else rhythm
    return ECGSegment(float(start), float(end), label, int(np.isin(beats.labels[sel], ("abnormal", "pvc")).sum()),
                      int(sel.sum()), snr)
