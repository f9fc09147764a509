"""Spoken commands (OpenDR D3.2 §5.2): keyword spotting with MatchboxNet and Self-ONN layers.

* :mod:`.features`: :class:`~.features.MFCC`, 64 MFCCs of 16 kHz audio (25 ms Hann windows, 10 ms hop,
  512-point DFT as a fixed convolution, 64 HTK mel bands, log, orthonormal DCT-II, per-utterance
  normalisation), written in torch so that it exports to ONNX;
* :mod:`.selfonn`: :class:`~.selfonn.SelfONN1d`, ``Y = sum_{i=1..q} X^i (*) W_i + b`` as one convolution over
  the stacked powers (group-aware);
* :mod:`.matchboxnet`: :class:`~.matchboxnet.MatchboxNet` 3x1x64 and the Self-ONN configurations A-F of
  Table 25 (:data:`~.matchboxnet.CONFIGS`), parameter and MAC counts;
* :mod:`.optim`: the NovoGrad optimiser and the warmup-hold-decay learning-rate schedule of the training recipe.

Importing this package imports no model code (torch).
"""

from __future__ import annotations

__all__: list[str] = []
