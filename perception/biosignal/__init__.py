"""Biosignal time series (OpenDR D3.2 §5.1): a trainable Gaussian-derivative front-end and the backbones it
is measured in front of.

* :mod:`.filters`: :class:`~.filters.GaussianFilterBank`, the Gaussian and its first and second derivative as
  three convolution kernels, each with its own trainable width (3 parameters), replicate padding;
* :mod:`.backbones`: the seed's baselines (MLP, CNN, LSTM and a residual MLP, 16 units wide) for 1-D series,
  and :func:`~.backbones.make_model`, a backbone with or without the filter bank in front.

Importing this package imports no model code (torch).
"""

from __future__ import annotations

__all__: list[str] = []
