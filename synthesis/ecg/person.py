"""One simulated person's ECG traits: beat morphology, heart rate per activity level, heart-rate variability,
abnormal-beat traits, atrial fibrillation traits and electrode noise mix.

Every trait is drawn from one generator, so a person is a pure function of its key (a seed and an index); the
datasets key people as ``(seed, person)`` so that disjoint person ranges hold out identities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Wave slots of a beat: ECGSYN's P, Q, R, S, T plus an ST-segment shift and a secondary R (R', bundle-branch).
WAVES: tuple[str, ...] = ("P", "Q", "R", "S", "ST", "T", "R2")
P, Q, R, S, ST, T, R2 = range(len(WAVES))
#: The QRS complex slots.
QRS_SLOTS = (Q, R, S)

#: ECGSYN (McSharry et al. 2003) as neurokit2.ecg_simulate(method="ecgsyn") sets it, for P, Q, R, S, T: the
#: angle of each extremum on the limit cycle (degrees), its ``a`` and its Gaussian width ``b`` (radians).
ECGSYN_ANGLES = (-70.0, -15.0, 0.0, 15.0, 100.0)
ECGSYN_A = (1.2, -5.0, 30.0, -7.5, 0.75)
ECGSYN_B = (0.25, 0.1, 0.1, 0.1, 0.4)
#: ECGSYN integrates ``-a dtheta exp(-dtheta^2 / 2 b^2)``: each wave adds a Gaussian of height ``a b^2 / (2 pi)`` whatever
#: the RR interval. mV per ``a b^2``: takes the R wave to 1.2 mV, the top of neurokit2's rescaled output.
MV_PER_AB2 = 4.0

#: Morphological abnormalities of single beats, and the premature ventricular beat.
MORPH_KINDS: tuple[str, ...] = ("wide_qrs", "st_elevation", "st_depression", "inverted_t", "missing_p")
ABNORMAL_KINDS: tuple[str, ...] = (*MORPH_KINDS, "pvc")
#: Activity levels in order of effort (index into :attr:`Person.hr_levels`).
LEVELS: tuple[str, ...] = ("rest", "walk", "run")
#: Heart rate (bpm) range of each activity level; a person sits at its own place in each range.
ACTIVITY_HR: dict[str, tuple[float, float]] = {"rest": (60.0, 80.0), "walk": (90.0, 115.0), "run": (130.0, 165.0)}


@dataclass(frozen=True)
class Person:
    """Traits of one simulated person (all arrays float64, indexed by :data:`WAVES`).

    A beat's wave ``i`` at sinus RR interval ``rr`` (s) is a Gaussian of amplitude ``amp[i]`` (mV), centre
    ``off_coef[i] * rr ** off_pow[i]`` (s from the R peak) and width ``wid_coef[i] * rr ** 0.5`` (s): ECGSYN's
    scaling of the angles (by (hr/60)^(1/4) for P and T, (hr/60)^(1/2) for Q and S) and widths (by (hr/60)^(1/2)),
    written in time.
    """

    amp: np.ndarray  #: (7,) mV
    off_coef: np.ndarray  #: (7,) s
    off_pow: np.ndarray  #: (7,)
    wid_coef: np.ndarray  #: (7,) s
    hr_levels: np.ndarray  #: (3,) bpm at rest, walk, run
    resp_hz: float  #: breathing rate (Hz): respiratory sinus arrhythmia and baseline wander
    rsa: float  #: RR modulation depth by breathing (fraction of RR at 70 bpm)
    lf: float  #: RR modulation depth at ~0.1 Hz (Mayer waves)
    #: (12,) radians: RSA, LF, f-wave rate (2), f-wave level, f-wave harmonic, baseline wander (3), powerline (2),
    #: step cadence
    phases: np.ndarray
    jitter: float  #: beat-to-beat RR jitter (s, standard deviation)
    kinds: tuple[str, ...]  #: the two abnormal-beat kinds this person shows
    qrs_widen: float  #: QRS width factor of wide-QRS beats
    r_prime: float  #: R' amplitude of wide-QRS beats (fraction of R)
    st_shift: float  #: ST elevation/depression magnitude (mV)
    t_invert: float  #: inverted-T depth (fraction of T)
    pvc_sign: float  #: +1: PVC with a tall broad R; -1: with a deep broad S
    coupling: float  #: PVC coupling interval (fraction of the sinus RR)
    af_cv: float  #: coefficient of variation of RR in atrial fibrillation
    af_rate: float  #: ventricular rate in AF relative to the sinus rate
    f_hz: float  #: centre frequency of the fibrillatory f-waves (Hz, 4-9)
    f_amp: float  #: f-wave amplitude (mV)
    noise_w: np.ndarray  #: (3,) power shares of baseline wander, powerline and EMG in the stationary noise mix
    mains_hz: float  #: powerline frequency, 50 or 60 Hz
    wander_hz: np.ndarray  #: (2,) frequencies of the two non-respiratory baseline wander sinusoids (Hz)


def draw_person(rng: np.random.Generator) -> Person:
    """A person whose traits are drawn from ``rng`` (the number and order of draws is fixed)."""
    th = np.radians(ECGSYN_ANGLES) / (2 * math.pi)
    b = np.asarray(ECGSYN_B) / (2 * math.pi)
    base_amp = MV_PER_AB2 * np.asarray(ECGSYN_A) * np.asarray(ECGSYN_B) ** 2
    z = rng.standard_normal(24)
    u = rng.random(24)
    amp = np.zeros(len(WAVES))
    off = np.zeros(len(WAVES))
    pw = np.zeros(len(WAVES))
    wid = np.zeros(len(WAVES))
    for j, slot in enumerate((P, Q, R, S, T)):
        spread = (0.25, 0.3, 0.15, 0.3, 0.2)[j]
        amp[slot] = base_amp[j] * math.exp(spread * z[j] - spread ** 2 / 2)
        off[slot] = th[j] * (1 + 0.05 * z[5 + j])
        pw[slot] = (0.75, 0.5, 0.0, 0.5, 0.75)[j]
        wid[slot] = b[j] * math.exp(0.07 * z[10 + j])
    # P and T scaled to their usual surface-lead sizes (ECGSYN's P is 0.3 mV at R 1.2 mV)
    amp[P] *= 0.6
    fit = u[0]
    hr_levels = np.array([lo + np.clip(fit + 0.1 * z[15 + i], 0.0, 1.0) * (hi - lo)
                          for i, (lo, hi) in enumerate(ACTIVITY_HR[k] for k in LEVELS)])
    kinds = tuple(str(k) for k in rng.choice(np.array(ABNORMAL_KINDS), size=2, replace=False))
    shares = np.array([0.45, 0.15, 0.40]) * np.exp(0.3 * z[18:21])
    return Person(
        amp=amp, off_coef=off, off_pow=pw, wid_coef=wid, hr_levels=hr_levels,
        resp_hz=0.18 + 0.14 * u[1], rsa=0.02 + 0.03 * u[2], lf=0.01 + 0.015 * u[3],
        phases=2 * math.pi * rng.random(12), jitter=0.004 + 0.008 * u[4], kinds=kinds,
        qrs_widen=2.0 + 0.8 * u[5], r_prime=0.3 + 0.4 * u[6], st_shift=0.12 + 0.2 * u[7], t_invert=0.6 + 0.5 * u[8],
        pvc_sign=1.0 if u[9] < 0.6 else -1.0, coupling=0.55 + 0.2 * u[10],
        af_cv=0.14 + 0.1 * u[11], af_rate=1.0 + 0.3 * u[12], f_hz=5.0 + 3.0 * u[13], f_amp=0.04 + 0.08 * u[14],
        noise_w=shares / shares.sum(), mains_hz=50.0 if u[15] < 0.5 else 60.0,
        wander_hz=np.array([0.05 + 0.1 * u[16], 0.15 + 0.3 * u[17]]),
    )


def person_rng(*key: int) -> np.random.Generator:
    """The generator of the person (or stream item) keyed by non-negative integers."""
    return np.random.default_rng([int(k) for k in key])
