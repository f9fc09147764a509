"""Electrode noise at a set signal-to-noise ratio: baseline wander, powerline, EMG, motion artefacts, bursts.

* The **stationary mix** has unit expected power, split by the person's shares between baseline wander (three
  sinusoids: breathing, and two slow drifts, 0.05-0.45 Hz), powerline interference (50 or 60 Hz with 10 % of its
  power in the third harmonic; dropped, its share going to EMG, where it lies above the Nyquist frequency) and
  EMG (white Gaussian noise, the broadband muscle noise of a chest or wrist electrode).
* **Motion artefacts** (unit power at motion level 1): band-limited noise (0.5-6 Hz, 60 % of the power) plus an
  oscillation at the step cadence (1.2 + 1.6 x level Hz: about 2 Hz walking, 2.8 Hz running), times the motion
  level. They ride on top of the stationary mix with :data:`MOTION_GAIN` times its amplitude at level 1.
* **Bursts** (electrode pops and contact loss) come from ``neurokit2.signal_distort``'s artefact bursts, drawn in
  fixed blocks (a burst never crosses a block's end, so blocks join without seams).

SNR is ``10 log10(P_clean / P_noise)`` with ``P`` the mean square (the clean ECG's isoelectric line is 0 mV).
White noise is drawn in :data:`NOISE_BLOCK_S` blocks keyed by the block index and every filter is causal, so a
longer stream has the same noise on its first seconds.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import signal as sps

from hcgym.synthesis.ecg.person import Person

NOISE_BLOCK_S = 10.0
#: Motion artefact amplitude at motion level 1, relative to the stationary mix.
MOTION_GAIN = 2.0
#: A 30 s window whose SNR is below this is labelled "noisy".
NOISY_SNR_DB = -3.0
#: SNR range (dB) of the "noisy" rhythm class (all of its noise together).
NOISY_SNR_RANGE = (-12.0, -5.0)
#: Time constant (s) of the running clean-signal power that sets a stream's noise gain, and the opening span (s)
#: whose mean power starts it.
POWER_TAU_S = 8.0
POWER_INIT_S = 4.0
_BAND = (0.5, 6.0)


def power(x: np.ndarray) -> float:
    """Mean square of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x))


def white(key: tuple[int, ...], n: int, fs: float) -> np.ndarray:
    """Unit-variance white Gaussian noise (n,), drawn block by block (block ``b`` keyed by ``(*key, b)``)."""
    block = int(round(NOISE_BLOCK_S * fs))
    parts = [np.random.default_rng([*key, b]).standard_normal(block) for b in range(-(-n // block))]
    return np.concatenate(parts)[:n] if parts else np.zeros(0)


def stationary_noise(person: Person, n: int, fs: float, key: tuple[int, ...]) -> np.ndarray:
    """Baseline wander + powerline + EMG on samples ``0 .. n - 1``, float64, unit expected power."""
    t = np.arange(n) / fs
    ph = person.phases
    w_bw, w_pl, w_emg = (float(v) for v in person.noise_w)
    if person.mains_hz >= fs / 2:
        w_emg, w_pl = w_emg + w_pl, 0.0
    wander = sum(math.sqrt(2 * share) * np.sin(2 * math.pi * f * t + p) for share, f, p in
                 zip((0.5, 0.3, 0.2), (person.resp_hz, *person.wander_hz), ph[6:9]))
    out = math.sqrt(w_bw) * wander + math.sqrt(w_emg) * white(key, n, fs)
    if w_pl > 0:
        third = 3 * person.mains_hz < fs / 2
        mains = math.sqrt(2 * (0.9 if third else 1.0)) * np.sin(2 * math.pi * person.mains_hz * t + ph[9])
        if third:
            mains += math.sqrt(2 * 0.1) * np.sin(2 * math.pi * 3 * person.mains_hz * t + ph[10])
        out += math.sqrt(w_pl) * mains
    return out


def motion_noise(person: Person, level: np.ndarray, fs: float, key: tuple[int, ...]) -> np.ndarray:
    """Motion artefacts for the motion level (n,) in 0-1, float64; power ``level**2`` on average."""
    n = len(level)
    sos = sps.butter(2, [_BAND[0], min(_BAND[1], 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    impulse = np.zeros(int(60 * fs))
    impulse[0] = 1.0
    band = sps.sosfilt(sos, white(key, n, fs)) / math.sqrt(float(np.sum(sps.sosfilt(sos, impulse) ** 2)))
    phase = 2 * math.pi * np.cumsum(1.2 + 1.6 * level) / fs + person.phases[11]
    return level * (math.sqrt(0.6) * band + math.sqrt(0.4 * 2) * np.sin(phase))


def bursts(key: tuple[int, ...], n: int, fs: float, block_s: float, per_block: int = 6) -> np.ndarray:
    """Artefact bursts (n,), float64: ``neurokit2.signal_distort`` bursts (Laplace values at 5 Hz or fs/10,
    each burst 0.1-1 % of the block long) in blocks of ``block_s`` seconds, block ``b`` keyed by ``(*key, b)``;
    unit scale (mV)."""
    import neurokit2 as nk

    block = int(round(block_s * fs))
    parts = []
    for b in range(-(-n // block)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts.append(np.asarray(nk.signal_distort(
                np.zeros(block), sampling_rate=fs, artifacts_amplitude=1.0, artifacts_frequency=min(5.0, fs / 10),
                artifacts_number=per_block, random_state=np.random.default_rng([*key, b]), silent=True)))
    return np.concatenate(parts)[:n] if parts else np.zeros(0)


def snr_scale(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``noise`` scaled so that ``10 log10(power(clean) / power(scaled))`` is ``snr_db`` exactly."""
    p = power(noise)
    return noise * math.sqrt(power(clean) / (p * 10 ** (snr_db / 10))) if p > 0 else noise


def running_power(x: np.ndarray, fs: float) -> np.ndarray:
    """Causal running mean square of ``x`` (n,): an exponential average (:data:`POWER_TAU_S`) that starts from
    the mean square of the first :data:`POWER_INIT_S` seconds."""
    x2 = np.asarray(x, dtype=np.float64) ** 2
    p0 = float(np.mean(x2[: max(1, int(POWER_INIT_S * fs))]))
    a = 1 - math.exp(-1 / (POWER_TAU_S * fs))
    y, _ = sps.lfilter([a], [1, -(1 - a)], x2, zi=[(1 - a) * p0])
    return y


def snr_db_of(clean: np.ndarray, noise: np.ndarray) -> float:
    """Measured SNR (dB) of ``clean`` against ``noise`` (inf for no noise)."""
    p = power(noise)
    return math.inf if p == 0 else 10 * math.log10(power(clean) / p)
