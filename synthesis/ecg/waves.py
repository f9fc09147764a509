"""Beats as sums of Gaussian waves (ECGSYN in the time domain), their abnormal forms, and AF f-waves.

A beat is seven Gaussians (:data:`~hcgym.synthesis.ecg.person.WAVES`) placed relative to its R peak. Normal beats
use P, Q, R, S, T; the abnormal kinds edit them:

* ``wide_qrs`` (bundle-branch-like): Q, R and S widened by the person's factor (2-2.8x) and spread out, an R'
  after the S;
* ``st_elevation`` / ``st_depression``: a broad wave between S and T lifts or lowers the ST segment (0.12-0.32 mV;
  depression also flattens T);
* ``inverted_t``: T flipped (0.6-1.1 of its height);
* ``missing_p``: no P wave (set through ``p_absent``; atrial fibrillation removes P the same way);
* ``pvc`` (premature ventricular beat): no P and Q, a broad tall R (or a broad deep S), a broad T of the opposite
  sign. Its timing (early, then a compensatory pause) is the rhythm's business (:mod:`.rhythm`).
"""

from __future__ import annotations

import math

import numpy as np

from hcgym.synthesis.ecg.person import R2, ST, WAVES, P, Person, Q, R, S, T

#: Beat-to-beat morphology jitter (relative standard deviation) of amplitude, centre and width.
BEAT_JITTER = (0.04, 0.02, 0.03)


def beat_waves(person: Person, rr: np.ndarray, kinds: np.ndarray, p_absent: np.ndarray,
               z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wave parameters of ``K`` beats.

    Args:
        person: whose morphology.
        rr: (K,) sinus RR interval at each beat (s): ECGSYN's scaling of centres and widths.
        kinds: (K,) ``""`` for a normal beat or one of :data:`~hcgym.synthesis.ecg.person.ABNORMAL_KINDS`
            (``missing_p`` changes nothing here: pass it through ``p_absent``).
        p_absent: (K,) bool, beats without a P wave.
        z: (K, 3) standard normals, the beat's jitter of amplitude, centre and width.

    Returns:
        ``(amp, off, sigma)``, each (K, 7): amplitude (mV), centre relative to the R peak (s), width (s).
    """
    rr = np.asarray(rr, dtype=np.float64)[:, None]
    amp = np.broadcast_to(person.amp, (len(rr), len(WAVES))).copy()
    off = person.off_coef * rr ** person.off_pow
    sig = person.wid_coef * np.sqrt(rr)
    amp *= 1 + BEAT_JITTER[0] * z[:, :1]
    off *= 1 + BEAT_JITTER[1] * z[:, 1:2]
    sig *= np.exp(BEAT_JITTER[2] * z[:, 2:3])
    _derived_slots(off, sig)
    kinds = np.asarray(kinds)
    amp[np.asarray(p_absent, dtype=bool), P] = 0.0
    _edit(kinds == "wide_qrs", amp, off, sig, _wide_qrs, person)
    _edit(kinds == "st_elevation", amp, off, sig, lambda a, o, s, p: _st(a, p.st_shift), person)
    _edit(kinds == "st_depression", amp, off, sig, lambda a, o, s, p: _st(a, -0.8 * p.st_shift), person)
    _edit(kinds == "inverted_t", amp, off, sig, _inverted_t, person)
    _edit(kinds == "pvc", amp, off, sig, _pvc, person)
    return amp, off, sig


def _derived_slots(off: np.ndarray, sig: np.ndarray) -> None:
    """Place the ST and R' slots from S and T (and R)."""
    st_span = off[:, T] - off[:, S]
    off[:, ST] = off[:, S] + 0.4 * st_span
    sig[:, ST] = 0.3 * st_span
    off[:, R2] = off[:, S] + 2.5 * sig[:, S]
    sig[:, R2] = 1.2 * sig[:, R]


def _edit(mask: np.ndarray, amp, off, sig, fn, person: Person) -> None:
    if mask.any():
        a, o, s = amp[mask], off[mask], sig[mask]
        fn(a, o, s, person)
        amp[mask], off[mask], sig[mask] = a, o, s


def _wide_qrs(a: np.ndarray, o: np.ndarray, s: np.ndarray, p: Person) -> None:
    w = p.qrs_widen
    s[:, [Q, R, S]] *= w
    o[:, [Q, S]] *= 1 + 0.6 * (w - 1)
    a[:, S] *= 1.3
    o[:, R2] = o[:, S] + 1.2 * s[:, S]
    s[:, R2] = 0.8 * s[:, R]
    a[:, R2] = p.r_prime * a[:, R]


def _st(a: np.ndarray, shift: float) -> None:
    a[:, ST] = shift
    if shift < 0:
        a[:, T] *= 0.6


def _inverted_t(a: np.ndarray, o: np.ndarray, s: np.ndarray, p: Person) -> None:
    a[:, T] *= -p.t_invert


def _pvc(a: np.ndarray, o: np.ndarray, s: np.ndarray, p: Person) -> None:
    r = a[:, R].copy()
    a[:, [P, Q, ST, R2]] = 0.0
    s[:, R] *= 3.0
    s[:, S] *= 3.0
    o[:, S] *= 2.2
    if p.pvc_sign > 0:
        a[:, R] = 1.5 * r
        a[:, S] = -0.4 * r
    else:
        a[:, R] = 0.35 * r
        a[:, S] = -1.6 * r
    a[:, T] = -p.pvc_sign * 1.6 * np.abs(a[:, T])
    s[:, T] *= 1.3
    o[:, T] *= 0.9


def render(r_times: np.ndarray, amp: np.ndarray, off: np.ndarray, sig: np.ndarray, fs: float,
           n_samples: int) -> np.ndarray:
    """The sum of every beat's Gaussians on samples ``0 .. n_samples - 1`` (time ``n / fs``), float64 (mV).

    Each Gaussian is cut at 4 sigma by its own width only, so a sample's value depends on the beats that reach it
    and not on how many other beats are rendered (a longer stream has the same prefix).
    """
    out = np.zeros(n_samples)
    r_times = np.asarray(r_times, dtype=np.float64)
    for w in range(amp.shape[1]):
        keep = amp[:, w] != 0
        if not keep.any():
            continue
        a, s = amp[keep, w], sig[keep, w]
        c = r_times[keep] + off[keep, w]
        h = int(math.ceil(4.0 * float(s.max()) * fs)) + 1
        idx = np.round(c * fs).astype(np.int64)[:, None] + np.arange(-h, h + 1)[None, :]
        d = (idx / fs - c[:, None]) / s[:, None]
        ok = (idx >= 0) & (idx < n_samples) & (np.abs(d) <= 4.0)
        val = a[:, None] * np.exp(-0.5 * d * d)
        out += np.bincount(idx[ok], weights=val[ok], minlength=n_samples)
    return out


def f_waves(person: Person, n_samples: int, fs: float) -> np.ndarray:
    """Fibrillatory waves of atrial fibrillation on samples ``0 .. n_samples - 1``, float64 (mV).

    A saw-toothed oscillation (fundamental plus a second harmonic) whose rate wanders slowly within 4-9 Hz around
    the person's ``f_hz`` and whose amplitude breathes by +-30 % around ``f_amp``. The phase is the running sum of
    the rate, so each sample depends only on earlier ones.
    """
    t = np.arange(n_samples) / fs
    ph = person.phases
    rate = person.f_hz + 0.8 * np.sin(2 * math.pi * 0.07 * t + ph[2]) + 0.3 * np.sin(2 * math.pi * 0.23 * t + ph[3])
    phase = 2 * math.pi * np.cumsum(np.clip(rate, 4.0, 9.0)) / fs
    level = person.f_amp * (1 + 0.3 * np.sin(2 * math.pi * 0.11 * t + ph[4]))
    return level * (np.sin(phase) + 0.3 * np.sin(2 * phase + ph[5]))
