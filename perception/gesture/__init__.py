"""RGB-D hand-gesture recognition by early fusion (OpenDR D3.2 §6.2): image classifiers on RGB, depth or RGB-D.

* :mod:`.backbones`: MobileNetV2, MNASNet-B1 (widths 1.0 and 0.5) and ResNet-18 written in torch, whose first
  convolution takes 1 (depth), 3 (RGB) or 4 (RGB-D, early fusion) channels;
* :mod:`.augment`: training augmentation in torch (crop, rotation, colour jitter of RGB, depth noise);
* :mod:`.training`: training from scratch, prediction, accuracy, checkpoints, ONNX export;
* :mod:`.cost`: first-convolution MACs and the interleaved single-thread latency of every backbone and input;
* :mod:`.sensor`: the live sensor ``gesture/rgbd`` (registered here): hands from MediaPipe Hands or the ground
  truth, cropped as the training data (:mod:`.inputs`), classified in one batch.

Importing this package imports no model code (torch).
"""

from __future__ import annotations

from hcgym.perception.registry import register

__all__ = ["RGBD", "register_all"]

#: Registry id of the live gesture sensor.
RGBD = "gesture/rgbd"


def register_all() -> None:
    """Register the gesture sensors (called by the registry on its first look-up)."""
    register(RGBD, "hcgym.perception.gesture.sensor:GestureSensor", kind="gesture classifier (hand crops, RGB-D)",
             input="rgb-d frame", output="Classification", onnx=True,
             description="every hand (MediaPipe Hands or hands=truth) cropped from RGB and depth: one of the 16 "
                         "HANDS gestures or none")
