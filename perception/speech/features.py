"""MFCC features in plain torch, exportable to ONNX (the MatchboxNet front-end of OpenDR D3.2 §5.2).

Pipeline, for 16 kHz mono audio ``(N, samples)`` in [-1, 1] -> ``(N, 64, frames)``:

1. framing: 25 ms periodic Hann windows (400 samples) every 10 ms (160 samples), centred: frame ``t`` is
   centred on sample ``160 t`` and the signal is zero-padded by 200 samples at each end, so one second gives
   ``1 + 16000 // 160 = 101`` frames (the ``center=True`` convention of NeMo / torchaudio / librosa);
2. power spectrum of a 512-point DFT (the 400-sample window zero-padded to 512, 257 bins): the DFT is a
   ``conv1d`` with a fixed real / imaginary basis (514 filters of 400 taps, stride 160), not ``torch.stft``,
   so that the graph exports to ONNX and runs in ONNX Runtime. The window's offset in the 512-point frame
   only changes the phase, not the power;
3. 64 triangular mel filters on the HTK mel scale ``2595 log10(1 + f / 700)``, 0 to 8000 Hz, peak 1, no area
   normalisation (the torchaudio ``MelSpectrogram`` defaults that NeMo's MatchboxNet front-end uses);
4. natural log with a floor: ``log(max(mel, floor))``, ``floor`` 1e-6 (power of samples in [-1, 1]);
5. DCT-II with orthonormal scaling, keeping all 64 coefficients;
6. optionally (on by default) per-utterance normalisation: each coefficient minus its mean over the frames,
   divided by its (population) standard deviation plus 1e-5.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hcgym.errors import SpecError

SAMPLE_RATE = 16000  #: Hz
WINDOW = 400  #: samples (25 ms)
HOP = 160  #: samples (10 ms)
N_FFT = 512
N_MELS = 64


def hz_to_mel(f: Tensor) -> Tensor:
    """HTK mel scale: ``2595 log10(1 + f / 700)`` (Hz -> mel)."""
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: Tensor) -> Tensor:
    """Inverse of :func:`hz_to_mel` (mel -> Hz)."""
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 0.0, f_max: float | None = None) -> Tensor:
    """(n_mels, n_fft // 2 + 1) float64 triangular filters on the HTK mel scale, peak 1, no normalisation.

    Filter ``m`` rises linearly from the frequency of mel point ``m`` to that of point ``m + 1`` and falls to
    point ``m + 2``; the ``n_mels + 2`` points are equally spaced in mel from ``f_min`` to ``f_max`` (Hz,
    default the Nyquist frequency)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(torch.tensor(f_min, dtype=torch.float64))),
                                     float(hz_to_mel(torch.tensor(f_max, dtype=torch.float64))), n_mels + 2,
                                     dtype=torch.float64))
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - left) / (centre - left)
    falling = (right - freqs) / (right - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def dct_matrix(n: int) -> Tensor:
    """(n, n) float64 orthonormal DCT-II: ``y = D @ x``, ``D[k, i] = s_k cos(pi k (2 i + 1) / (2 n))``,
    ``s_0 = sqrt(1 / n)``, ``s_k = sqrt(2 / n)``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * k * (2 * i + 1) / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def dft_basis(window: int = WINDOW, n_fft: int = N_FFT) -> Tensor:
    """(2 (n_fft // 2 + 1), 1, window) float64 conv1d filters: the real parts then the imaginary parts of the
    ``n_fft``-point DFT of a periodic-Hann-windowed frame of ``window`` samples centred in the ``n_fft`` frame
    (the taps on the zero padding are dropped)."""
    n = torch.arange(window, dtype=torch.float64)
    hann = 0.5 - 0.5 * torch.cos(2 * math.pi * n / window)
    offset = (n_fft - window) // 2
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    angle = 2 * math.pi * k * (n[None, :] + offset) / n_fft
    return torch.cat([torch.cos(angle) * hann, -torch.sin(angle) * hann]).unsqueeze(1)


def n_frames(samples: int) -> int:
    """Frames of :class:`MFCC` for ``samples`` samples (101 for one second at 16 kHz)."""
    return 1 + samples // HOP


class MFCC(nn.Module):
    """``(N, samples)`` float audio at 16 kHz -> ``(N, n_mfcc, 1 + samples // 160)`` MFCCs (module docstring).

    Args:
        n_mfcc: coefficients kept (the first ``n_mfcc`` of the 64-point DCT), 1..64.
        normalize: per-utterance mean / variance normalisation of each coefficient over time.
        floor: power floor before the log.
    """

    def __init__(self, n_mfcc: int = N_MELS, normalize: bool = True, floor: float = 1e-6) -> None:
        super().__init__()
        if isinstance(n_mfcc, bool) or not isinstance(n_mfcc, int) or not 1 <= n_mfcc <= N_MELS:
            raise SpecError("n_mfcc", f"expected an integer in 1..{N_MELS}, got {n_mfcc!r}")
        if not isinstance(floor, (int, float)) or not floor > 0:
            raise SpecError("floor", f"expected a positive number, got {floor!r}")
        self.n_mfcc, self.normalize, self.floor = n_mfcc, bool(normalize), float(floor)
        self.register_buffer("basis", dft_basis().float(), persistent=False)
        self.register_buffer("mel", mel_filterbank().float(), persistent=False)
        self.register_buffer("dct", dct_matrix(N_MELS)[:n_mfcc].float(), persistent=False)

    def forward(self, audio: Tensor) -> Tensor:
        spec = nn.functional.conv1d(audio.unsqueeze(1), self.basis, stride=HOP, padding=WINDOW // 2)
        bins = self.mel.shape[1]
        power = spec[:, :bins] ** 2 + spec[:, bins:] ** 2  # (N, 257, T)
        logmel = torch.log(torch.clamp(torch.matmul(self.mel, power), min=self.floor))  # (N, 64, T)
        mfcc = torch.matmul(self.dct, logmel)  # (N, n_mfcc, T)
        if not self.normalize:
            return mfcc
        centred = mfcc - mfcc.mean(dim=2, keepdim=True)
        return centred / (torch.sqrt((centred ** 2).mean(dim=2, keepdim=True)) + 1e-5)

    def macs(self, samples: int = SAMPLE_RATE) -> int:
        """Multiply-adds per utterance of ``samples`` samples: DFT, power, mel filters and DCT (the log and the
        normalisation not counted)."""
        t = n_frames(samples)
        bins = self.mel.shape[1]
        return t * (2 * bins * WINDOW + 2 * bins + self.mel.shape[0] * bins + self.n_mfcc * N_MELS)
