"""The seed's baseline backbones for 1-D series (OpenDR D3.2 §5.1) and the filter bank in front of them.

All are 16 units wide with PReLU activations, as the seed describes them:

* ``mlp``: the flattened series through 3 hidden layers of 16;
* ``cnn``: one convolution (16 filters of size 3, same length) feeding the MLP;
* ``lstm``: one LSTM layer of 16 over time whose outputs at every step, flattened as the CNN's are, feed the
  MLP (fed only its last hidden state, it stayed at the majority class on 187-step beats in 10-15 epochs);
* ``resnet``: a residual MLP of the same size (a projection to 16, then two residual layers of 16).

:func:`make_model` builds one for ``channels`` input channels of length ``length``, with the
:class:`~.filters.GaussianFilterBank` in front (``filtered=True``: the backbone then sees 3 channels per input
channel) or not; the bank adds exactly 3 parameters and nothing else changes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from hcgym.errors import SpecError
from hcgym.perception.biosignal.filters import GaussianFilterBank

#: Backbone names, in table order.
BACKBONES = ("mlp", "cnn", "lstm", "resnet")
#: The Table 24 pair: a deeper convolutional network (the seed's baseline, after Goodfellow et al. 2018: blocks of
#: two convolutions with batch norm, halving the length between blocks, global average pooling) and its slimmed
#: version with about 0.56 of its parameters (the seed's 3.1M of 5.5M): name -> width of the first block.
DEEP_BACKBONES = {"deep": 16, "deep-light": 12}
#: Hidden width of every backbone.
WIDTH = 16


def _mlp(inputs: int, classes: int, layers: int = 3) -> nn.Sequential:
    mods: list[nn.Module] = []
    for k in range(layers):
        mods += [nn.Linear(inputs if k == 0 else WIDTH, WIDTH), nn.PReLU()]
    return nn.Sequential(*mods, nn.Linear(WIDTH, classes))


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear, self.act = nn.Linear(WIDTH, WIDTH), nn.PReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.linear(x))


def _deep(channels: int, width: int, classes: int) -> nn.Sequential:
    """Three blocks of two same-length convolutions (kernels 7, 5, 3; widths ``width``, 2x, 4x) with batch norm
    and ReLU, max pooling by 2 between blocks, global average pooling and a linear head."""
    mods: list[nn.Module] = []
    c = channels
    for k, (kernel, w) in enumerate(((7, width), (5, 2 * width), (3, 4 * width))):
        for _ in range(2):
            mods += [nn.Conv1d(c, w, kernel, padding=kernel // 2), nn.BatchNorm1d(w), nn.ReLU()]
            c = w
        if k < 2:
            mods.append(nn.MaxPool1d(2))
    return nn.Sequential(*mods, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(c, classes))


class SeriesNet(nn.Module):
    """``(N, C, L)`` series -> ``(N, classes)`` logits: optional filter bank, then the backbone ``name``."""

    def __init__(self, name: str, channels: int, length: int, classes: int, filtered: bool = False,
                 filter_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if name not in BACKBONES and name not in DEEP_BACKBONES:
            raise SpecError("backbone", f"unknown backbone {name!r} (allowed: "
                                        f"{', '.join((*BACKBONES, *DEEP_BACKBONES))})")
        for field, v in (("channels", channels), ("length", length), ("classes", classes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(field, f"expected a positive integer, got {v!r}")
        self.name, self.channels, self.length = name, channels, length
        self.filter = GaussianFilterBank(**(filter_kwargs or {})) if filtered else None
        c = 3 * channels if filtered else channels
        if name == "mlp":
            self.body = _mlp(c * length, classes)
        elif name == "cnn":
            self.conv = nn.Sequential(nn.Conv1d(c, WIDTH, 3, padding=1), nn.PReLU())
            self.body = _mlp(WIDTH * length, classes)
        elif name == "lstm":
            self.lstm = nn.LSTM(c, WIDTH, num_layers=1, batch_first=True)
            self.body = _mlp(WIDTH * length, classes)
        elif name in DEEP_BACKBONES:
            self.body = _deep(c, DEEP_BACKBONES[name], classes)
        else:
            self.body = nn.Sequential(nn.Linear(c * length, WIDTH), nn.PReLU(), _Residual(), _Residual(),
                                      nn.Linear(WIDTH, classes))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(1)
        if x.ndim != 3 or x.shape[1:] != (self.channels, self.length):
            raise SpecError("x", f"expected series (N, {self.channels}, {self.length}), got {tuple(x.shape)}")
        if self.filter is not None:
            x = self.filter(x)
        if self.name in DEEP_BACKBONES:
            return self.body(x)
        if self.name == "cnn":
            x = self.conv(x)
        elif self.name == "lstm":
            out, _ = self.lstm(x.transpose(1, 2))
            return self.body(torch.flatten(out, 1))
        return self.body(torch.flatten(x, 1))


def make_model(name: str, channels: int = 1, length: int = 187, classes: int = 2, filtered: bool = False,
               **filter_kwargs: Any) -> SeriesNet:
    """A :class:`SeriesNet` (defaults: one lead, the 187-sample beats of 125 Hz ECG, two classes)."""
    return SeriesNet(name, channels, length, classes, filtered, filter_kwargs)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
