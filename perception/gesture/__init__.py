"""RGB-D hand-gesture recognition by early fusion (OpenDR D3.2 §6.2): image classifiers on RGB, depth or RGB-D.

* :mod:`.backbones`: MobileNetV2, MNASNet-B1 (widths 1.0 and 0.5) and ResNet-18 written in torch, whose first
  convolution takes 1 (depth), 3 (RGB) or 4 (RGB-D, early fusion) channels;
* :mod:`.augment`: training augmentation in torch (crop, rotation, colour jitter of RGB, depth noise);
* :mod:`.training`: training from scratch, prediction, accuracy, checkpoints, ONNX export;
* :mod:`.cost`: first-convolution MACs and the interleaved single-thread latency of every backbone and input.

Importing this package imports no model code (torch).
"""

from __future__ import annotations

__all__ = ["register_all"]


def register_all() -> None:
    """Register the gesture sensors (none yet: the trained models come first)."""
