"""Background noise and level helpers for synthetic speech: white, pink and babble noise, SNR mixing.

Every signal is a float array of samples (one channel) at the caller's sample rate; every random
choice comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NOISE_KINDS = ("white", "pink", "babble")


def white_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, unit RMS, shape ``(samples,)``, float64."""
    return rng.standard_normal(samples)


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """1/f (pink) noise, unit RMS, shape ``(samples,)``: white noise shaped by 1/sqrt(f) in the spectrum."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freq = np.arange(spectrum.size, dtype=np.float64)
    freq[0] = 1.0
    out = np.fft.irfft(spectrum / np.sqrt(freq), n=samples)
    return out / max(rms(out), 1e-12)


def babble_noise(samples: int, words: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Several talkers at once: ``words`` (each (samples_i,)) at random offsets, summed; unit RMS, (samples,)."""
    out = np.zeros(samples)
    for word in words:
        word = word[:samples]
        start = int(rng.integers(0, samples - word.size + 1))
        out[start:start + word.size] += word * rng.uniform(0.5, 1.0)
    level = rms(out)
    return out / level if level > 0 else white_noise(samples, rng)


def rms(signal: np.ndarray) -> float:
    """Root mean square of ``signal`` (0.0 when empty)."""
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64)))) if signal.size else 0.0


def active_span(signal: np.ndarray, threshold_db: float = -40.0, frame: int = 160) -> tuple[int, int]:
    """First and one-past-last sample of the frames whose RMS is within ``threshold_db`` of the loudest frame.

    ``frame`` samples per frame (10 ms at 16 kHz). ``(0, 0)`` for an all-zero signal.
    """
    count = signal.size // frame
    if count == 0:
        return (0, signal.size) if np.any(signal) else (0, 0)
    energy = np.sqrt(np.mean(np.square(signal[:count * frame].reshape(count, frame), dtype=np.float64), axis=1))
    loudest = energy.max()
    if loudest <= 0:
        return 0, 0
    active = np.flatnonzero(energy >= loudest * 10.0 ** (threshold_db / 20.0))
    return int(active[0] * frame), int(min(signal.size, (active[-1] + 1) * frame))


def scale_to_snr(speech_rms: float, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``noise`` scaled so that ``20 log10(speech_rms / rms(noise)) == snr_db``."""
    level = rms(noise)
    if level <= 0:
        return noise
    return noise * (speech_rms / level) * 10.0 ** (-snr_db / 20.0)
