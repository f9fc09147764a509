"""Spoken commands (OpenDR D3.2 §5.2): keyword spotting with MatchboxNet and Self-ONN layers.

* :mod:`.features`: :class:`~.features.MFCC`, 64 MFCCs of 16 kHz audio (25 ms Hann windows, 10 ms hop,
  512-point DFT as a fixed convolution, 64 HTK mel bands, log, orthonormal DCT-II, per-utterance
  normalisation), written in torch so that it exports to ONNX;
* :mod:`.selfonn`: :class:`~.selfonn.SelfONN1d`, ``Y = sum_{i=1..q} X^i (*) W_i + b`` as one convolution over
  the stacked powers (group-aware);
* :mod:`.matchboxnet`: :class:`~.matchboxnet.MatchboxNet` 3x1x64 and the Self-ONN configurations A-F of
  Table 25 (:data:`~.matchboxnet.CONFIGS`), parameter and MAC counts;
* :mod:`.optim`: the NovoGrad optimiser and the warmup-hold-decay learning-rate schedule of the training recipe;
* :mod:`.sensor`: the keyword sensor ``speech/keywords`` (registered here): voiced spans of microphone audio, each
  a 1 s window through MFCC and MatchboxNet (``hcgym train keywords``).

Importing this package imports no model code (torch).
"""

from __future__ import annotations

from hcgym.perception.registry import register

__all__ = ["KEYWORDS", "register_all"]

#: Registry id of the keyword sensor.
KEYWORDS = "speech/keywords"


def register_all() -> None:
    """Register the speech sensors (called by the registry on its first look-up)."""
    register(KEYWORDS, "hcgym.perception.speech.sensor:KeywordSensor", kind="keyword spotter (voiced spans)",
             input="microphone audio", output="KeywordReading", onnx=True,
             description="voiced spans of microphone audio (energy), each a 1 s window through MFCC and MatchboxNet: "
                         "one of 10 keywords, unknown or silence")
