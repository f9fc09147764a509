"""Biosignal time series (OpenDR D3.2 §5.1 and §5.3): a trainable Gaussian-derivative front-end, the backbones it
is measured in front of, and Neural Bag-of-Features with codeword and temporal attention.

* :mod:`.filters`: :class:`~.filters.GaussianFilterBank`, the Gaussian and its first and second derivative as
  three convolution kernels, each with its own trainable width (3 parameters), replicate padding;
* :mod:`.backbones`: the seed's baselines (MLP, CNN, LSTM and a residual MLP, 16 units wide) for 1-D series,
  and :func:`~.backbones.make_model`, a backbone with or without the filter bank in front;
* :mod:`.training`: Adam training of any ``(N, C, L)`` classifier and the seed's Table 22 scores;
* :mod:`.study`: the filter study (every backbone with and without the bank, paired seeds, noise levels);
  :mod:`.report`: its tables (Table 22's layout) and figures;
* :mod:`.nbof`: NBoF and temporal NBoF with 2DA (CA, TA) and self-attention (CsA, TsA, CTsA);
  :mod:`.order_task`: the order-sensitive task that plain NBoF cannot solve;
* :mod:`.sensor`: the wearable-ECG sensor ``biosignal/ecg`` (registered here): R peaks, beats normal/abnormal,
  the window's rhythm; :mod:`.sensor_training`: its two models (``hcgym train biosignal``).

Importing this package imports no model code (torch). The simulated ECG these are trained and scored on is
:mod:`hcgym.synthesis.ecg`.
"""

from __future__ import annotations

from hcgym.perception.registry import register

__all__ = ["ECG", "register_all"]

#: Registry id of the wearable-ECG sensor.
ECG = "biosignal/ecg"


def register_all() -> None:
    """Register the biosignal sensors (called by the registry on its first look-up)."""
    register(ECG, "hcgym.perception.biosignal.sensor:EcgSensor", kind="ecg beats and rhythm (wearable, one lead)",
             input="ecg window", output="EcgReading", onnx=True,
             description="R peaks of one ECG window, each beat normal/abnormal (filtered CNN), the window's rhythm "
                         "normal/af/other/noisy (NBoF) and the heart rate")
