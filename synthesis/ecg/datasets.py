"""Labelled ECG sets: single heartbeats cut as in Kachuee et al. 2018 (the MIT-BIH/PTB heartbeat sets) and 30 s
rhythm segments of the PhysioNet/CinC 2017 AF challenge's four classes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from hcgym.synthesis.ecg import checks
from hcgym.synthesis.ecg.noise import (
    MOTION_GAIN,
    NOISY_SNR_DB,
    NOISY_SNR_RANGE,
    bursts,
    motion_noise,
    snr_db_of,
    snr_scale,
    stationary_noise,
)
from hcgym.synthesis.ecg.person import ABNORMAL_KINDS, draw_person, person_rng
from hcgym.synthesis.ecg.rhythm import OTHER_KINDS, RHYTHMS, Draws, beat_train, clean_ecg

BEAT_CLASSES: tuple[str, ...] = ("normal", "abnormal")
#: Beats per person when ``people`` is not given.
BEATS_PER_PERSON = 200
#: Kachuee et al.: the nominal beat period is the median RR of each 10 s chunk; a beat is 1.2 of it from its R.
CHUNK_S = 10.0
WINDOW_RR = 1.2
#: Activity level of a beat-set person's recording: rest, walk, run (so the heart rates span 60-165 bpm).
BEAT_LEVEL_P = (0.7, 0.2, 0.1)
#: PhysioNet/CinC 2017 training-set class shares (normal, AF, other, noisy), for ``rhythm_dataset(shares=...)``.
CINC2017_SHARES = (0.59, 0.09, 0.28, 0.03)
_BEAT_TAG, _RHYTHM_TAG = 17, 23


@dataclass(frozen=True)
class BeatSet:
    """Heartbeats: ``x`` (N, length) float32 in [0, 1] (zero-padded), ``y`` (N,) int64 index into
    :data:`BEAT_CLASSES`, ``kind`` (N,) ``"normal"`` or the abnormal kind, ``person`` (N,) int64 person id (rows
    grouped by person in ``people`` order: shuffle before a random split), ``meta`` the arguments and counts."""

    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray
    person: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class RhythmSet:
    """Rhythm segments: ``x`` (N, fs * seconds) float32 (mV), ``y`` (N,) int64 index into
    :data:`~hcgym.synthesis.ecg.rhythm.RHYTHMS`, ``meta`` with per-segment arrays ``subtype`` (the "other" kind),
    ``hr`` (mean bpm) and ``snr_db`` (measured; inf when clean)."""

    x: np.ndarray
    y: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)


def beat_dataset(count: int, seed: int, *, snr_db: float | tuple[float, float] | None = None,
                 abnormal_share: float = 0.17, fs: float = 125, length: int = 187,
                 people: Iterable[int] | None = None, kinds: Sequence[str] | None = None) -> BeatSet:
    """``count`` heartbeats of simulated people, a share of them abnormal.

    Each person (key ``(seed, person)``: disjoint ``people`` ranges hold out identities) records a continuous ECG
    at ``fs`` at one activity level; ``snr_db`` (a number, or a ``(low, high)`` range drawn per person) adds the
    stationary noise mix to the whole recording before cutting. Beats are cut as Kachuee et al. 2018 did: from
    each R peak a window of 1.2 x the median RR of its 10 s chunk, min-max normalised to [0, 1] and zero-padded (or
    cut) to ``length``. Exactly ``round(abnormal_share * count)`` beats are abnormal, each of one of its person's
    two kinds among ``kinds`` (default :data:`~hcgym.synthesis.ecg.person.ABNORMAL_KINDS`), placed so the window
    shows it: ``missing_p`` removes the P wave inside the window (that of the next beat), the others change the
    beat whose R starts the window.
    """
    count = checks.integer(count, "count", 1, 10_000_000)
    seed = checks.seed(seed)
    snr = checks.snr(snr_db)
    share = checks.share(abnormal_share, "abnormal_share")
    fs = checks.fs(fs)
    length = checks.integer(length, "length", 16, 4096)
    ids = checks.people(people, max(1, -(-count // BEATS_PER_PERSON)))
    allowed = checks.choices(kinds, "kinds", ABNORMAL_KINDS)

    per = [count // len(ids) + (i < count % len(ids)) for i in range(len(ids))]
    abnormal = np.zeros(count, dtype=bool)
    abnormal[np.random.default_rng([seed, _BEAT_TAG]).permutation(count)[: int(round(share * count))]] = True
    xs, kind_out, who, truncated = [], [], [], 0
    start = 0
    for pid, n in zip(ids, per):
        if n == 0:
            continue
        x, kd, cut = _person_beats(seed, pid, n, abnormal[start:start + n], allowed, snr, fs, length)
        start += n
        xs.append(x)
        kind_out.append(kd)
        who.append(np.full(n, pid, dtype=np.int64))
        truncated += cut
    kind = np.concatenate(kind_out)
    meta = {"seed": seed, "fs": fs, "length": length, "snr_db": snr_db, "abnormal_share": share,
            "people": list(ids), "kinds": list(allowed), "classes": list(BEAT_CLASSES), "truncated": truncated,
            "counts": {k: int(np.sum(kind == k)) for k in ("normal", *allowed)}}
    return BeatSet(np.concatenate(xs).astype(np.float32), (kind != "normal").astype(np.int64), kind,
                   np.concatenate(who), meta)


def _person_beats(seed: int, pid: int, n: int, abnormal: np.ndarray, allowed: tuple[str, ...],
                  snr: tuple[float, float] | None, fs: float, length: int) -> tuple[np.ndarray, np.ndarray, int]:
    person = draw_person(person_rng(seed, _BEAT_TAG, pid))
    rec = person_rng(seed, _BEAT_TAG, pid, 1)
    own = [k for k in person.kinds if k in allowed] or list(rec.choice(np.array(allowed), min(2, len(allowed)),
                                                                       replace=False))
    hr = float(person.hr_levels[rec.choice(3, p=BEAT_LEVEL_P)])
    kinds = np.array([own[i] for i in rec.integers(0, len(own), n)], dtype="<U16")
    kinds[~abnormal] = ""
    forced = np.concatenate([[""], kinds, [""]])  # one beat before and after the n windows
    draws = Draws(seed, _BEAT_TAG, pid, 2)
    train = beat_train(person, "normal", draws, lambda t: hr, t_start=0.6, max_beats=n + 2, forced=forced)
    p_absent = np.zeros(n + 2, dtype=bool)
    p_absent[2:] = kinds == "missing_p"
    r = train.times
    period = chunk_median_rr(r)
    want = np.round(WINDOW_RR * period[1:-1] * fs).astype(np.int64)
    starts = np.round(r[1:-1] * fs).astype(np.int64)
    n_samples = int(max(math.ceil((r[-1] + 1.0) * fs), int(np.max(starts + want)) + 1))
    sig = clean_ecg(person, train, draws, fs, n_samples, p_absent)
    if snr is not None:
        noise = stationary_noise(person, n_samples, fs, (seed, _BEAT_TAG, pid, 3))
        sig = sig + snr_scale(sig, noise, rec.uniform(*snr))
    x = cut_windows(sig, starts, np.minimum(want, length), length)
    return x, np.where(kinds == "", "normal", kinds), int(np.sum(want > length))


def chunk_median_rr(r: np.ndarray) -> np.ndarray:
    """Per beat, the median RR interval of the beats of its 10 s chunk (Kachuee's nominal period T)."""
    rr = np.diff(r)
    chunk = np.floor(r[:-1] / CHUNK_S).astype(np.int64)
    med = {c: float(np.median(rr[chunk == c])) for c in np.unique(chunk)}
    return np.array([med.get(int(c), float(np.median(rr))) for c in np.floor(r / CHUNK_S)])


def cut_windows(sig: np.ndarray, starts: np.ndarray, lengths: np.ndarray, length: int) -> np.ndarray:
    """Rows ``sig[s : s + l]`` min-max normalised to [0, 1], zero-padded to ``length`` -> (N, length) float64."""
    idx = starts[:, None] + np.arange(length)[None, :]
    inside = np.arange(length)[None, :] < lengths[:, None]
    vals = sig[np.minimum(idx, len(sig) - 1)]
    lo = np.where(inside, vals, np.inf).min(axis=1, keepdims=True)
    hi = np.where(inside, vals, -np.inf).max(axis=1, keepdims=True)
    return np.where(inside, (vals - lo) / np.maximum(hi - lo, 1e-12), 0.0)


def rhythm_dataset(count: int, seed: int, *, fs: float = 100, seconds: float = 30,
                   snr_db: float | tuple[float, float] | None = None,
                   shares: Sequence[float] | None = None) -> RhythmSet:
    """``count`` segments of ``seconds`` at ``fs`` (50-500 Hz), one simulated person each, labelled with
    :data:`~hcgym.synthesis.ecg.rhythm.RHYTHMS` (normal sinus, atrial fibrillation, other, noisy).

    Class counts follow ``shares`` (default equal; :data:`CINC2017_SHARES` for the challenge's imbalance) exactly,
    in a seeded random order. "other" is one of :data:`~hcgym.synthesis.ecg.rhythm.OTHER_KINDS`. ``snr_db`` (a
    number or a ``(low, high)`` range per segment, at least :data:`~hcgym.synthesis.ecg.noise.NOISY_SNR_DB`) adds
    the stationary noise mix to normal, AF and other segments; "noisy" segments are always mostly artefact: the
    mix, motion artefacts and bursts together at an SNR drawn from
    :data:`~hcgym.synthesis.ecg.noise.NOISY_SNR_RANGE`.
    """
    count = checks.integer(count, "count", 1, 10_000_000)
    seed = checks.seed(seed)
    fs = checks.fs(fs, checks.RHYTHM_FS_RANGE)
    if not checks.number(seconds) or not 2.0 <= float(seconds) <= 600.0:
        raise checks.SpecError("seconds", f"must be a number in [2, 600], got {seconds!r}")
    snr = checks.snr(snr_db)
    if snr is not None and snr[0] < NOISY_SNR_DB:
        raise checks.SpecError("snr_db", f"below {NOISY_SNR_DB:g} dB normal, AF and other segments would be as "
                                         f"noisy as the 'noisy' class, got {snr_db!r}")
    weights = np.asarray([1.0] * len(RHYTHMS) if shares is None else shares, dtype=np.float64) \
        if shares is None or (len(shares) == len(RHYTHMS) and all(checks.number(s) for s in shares)) else None
    if weights is None or np.any(weights < 0) or weights.sum() <= 0:
        raise checks.SpecError("shares", f"expected {len(RHYTHMS)} non-negative numbers (for {', '.join(RHYTHMS)}) "
                                         f"with a positive sum, got {shares!r}")
    n = int(round(float(seconds) * fs))
    labels = np.random.default_rng([seed, _RHYTHM_TAG]).permutation(_exact_counts(weights, count))
    x = np.empty((count, n), dtype=np.float32)
    subtype, hr, snr_out = np.full(count, "", dtype="<U16"), np.zeros(count), np.full(count, np.inf)
    for i, y in enumerate(labels):
        x[i], subtype[i], hr[i], snr_out[i] = _segment(seed, i, RHYTHMS[y], n, fs, snr)
    meta = {"seed": seed, "fs": fs, "seconds": float(seconds), "snr_db": snr_db, "classes": list(RHYTHMS),
            "shares": weights.tolist(), "subtype": subtype, "hr": hr, "snr": snr_out}
    return RhythmSet(x, labels.astype(np.int64), meta)


def _exact_counts(weights: np.ndarray, count: int) -> np.ndarray:
    """Class labels (count,) with counts by largest remainder, in class order."""
    raw = weights / weights.sum() * count
    n = np.floor(raw).astype(np.int64)
    n[np.argsort(-(raw - n), kind="stable")[: count - int(n.sum())]] += 1
    return np.repeat(np.arange(len(weights)), n)


def _segment(seed: int, i: int, rhythm: str, n: int, fs: float,
             snr: tuple[float, float] | None) -> tuple[np.ndarray, str, float, float]:
    person = draw_person(person_rng(seed, _RHYTHM_TAG, i))
    rec = person_rng(seed, _RHYTHM_TAG, i, 1)
    hr = float(person.hr_levels[int(rec.random() < 0.25)])
    subtype = str(OTHER_KINDS[rec.integers(len(OTHER_KINDS))]) if rhythm == "other" else ""
    draws = Draws(seed, _RHYTHM_TAG, i, 2)
    train = beat_train(person, rhythm, draws, lambda t: hr, t_start=-(0.5 + rec.random()) * 60 / hr,
                       t_end=n / fs + 0.6, subtype=subtype)
    clean = clean_ecg(person, train, draws, fs, n)
    noise = np.zeros(n)
    if rhythm == "noisy":
        level = np.full(n, rec.uniform(0.5, 1.0))
        raw = stationary_noise(person, n, fs, (seed, _RHYTHM_TAG, i, 3)) \
            + MOTION_GAIN * motion_noise(person, level, fs, (seed, _RHYTHM_TAG, i, 4)) \
            + 3.0 * bursts((seed, _RHYTHM_TAG, i, 5), n, fs, n / fs)
        noise = snr_scale(clean, raw, rec.uniform(*NOISY_SNR_RANGE))
    elif snr is not None:
        noise = snr_scale(clean, stationary_noise(person, n, fs, (seed, _RHYTHM_TAG, i, 3)), rec.uniform(*snr))
    inside = (train.times >= 0) & (train.times < n / fs)
    mean_hr = 60.0 / float(np.mean(np.diff(train.times[inside]))) if inside.sum() > 1 else hr
    return clean + noise, subtype, mean_hr, snr_db_of(clean, noise)
