"""Image classifiers for RGB, depth and RGB-D (early fusion) gesture images, written in torch (no torchvision).

Each backbone follows its published architecture, and with 3 input channels and 1000 classes has the
published parameter count:

* ``mobilenet_v2``: MobileNetV2 (Sandler et al. 2018, Table 2: inverted residual blocks ``t, c, n, s``, ReLU6,
  widths rounded to multiples of 8), 3,504,872 parameters;
* ``mnasnet1_0`` / ``mnasnet0_5``: MNASNet-B1 (Tan et al. 2019) with depth multiplier 1.0 / 0.5, laid out as
  torchvision's ``mnasnet``, 4,383,312 / 2,218,512 parameters. Batch norm uses torch's default momentum
  (0.1) instead of the TensorFlow port's 0.0003, and the classifier starts as MobileNetV2's (normal, std
  0.01), which suits training from scratch on a few classes for a few epochs;
* ``resnet18``: ResNet-18 (He et al. 2016, basic blocks 2-2-2-2), 11,689,512 parameters.

Early fusion changes only the first convolution: it takes ``in_channels`` = 1 (depth), 3 (RGB) or 4 (RGB-D)
planes, so the 4-channel MobileNetV2 with 16 classes has 2,244,656 parameters against 2,244,368 for RGB.
Every model maps ``(N, in_channels, S, S)`` float32 to ``(N, num_classes)`` logits for any ``S`` >= 32
(global average pooling before the classifier); initialisation follows each architecture's reference code
(but MNASNet's classifier, above).
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from hcgym.errors import SpecError

#: Backbone names of :func:`make_backbone`.
BACKBONES = ("mobilenet_v2", "mnasnet1_0", "mnasnet0_5", "resnet18")
#: Input modality -> channels of the first convolution (RGB first, then depth, for ``rgbd``).
MODALITIES = {"rgb": 3, "depth": 1, "rgbd": 4}

#: MobileNetV2 inverted-residual settings: expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                         (6, 160, 3, 2), (6, 320, 1, 1))
#: MNASNet-B1 channel widths at depth multiplier 1 (stem, separable conv, six stacks).
MNASNET_DEPTHS = (32, 16, 24, 40, 80, 96, 192, 320)
#: MNASNet-B1 stacks: kernel, first stride, expansion, repeats (between consecutive entries of the depths).
MNASNET_STACKS = ((3, 2, 3, 3), (5, 2, 3, 3), (5, 2, 6, 3), (3, 1, 6, 2), (5, 2, 6, 4), (3, 1, 6, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: the nearest multiple of ``divisor`` (at least ``divisor``), never below
    90 % of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mnasnet_round(value: float, divisor: int = 8) -> int:
    """MNASNet's depth rounding (torchvision ``_round_to_multiple_of`` with bias 0.9): as
    :func:`make_divisible`, but ``>=`` keeps a value of exactly 90 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded if rounded >= 0.9 * value else rounded + divisor


class ConvBNAct(nn.Sequential):
    """``k x k`` convolution without bias (padding ``(k - 1) // 2``), batch norm, then ``act`` (none if ``None``)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 act: Callable[[], nn.Module] | None = nn.ReLU) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 / MNASNet block: 1x1 expansion (skipped when ``expand`` is 1), ``kernel`` depthwise
    convolution with ``stride``, linear 1x1 projection; identity shortcut when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, kernel: int = 3,
                 act: Callable[[], nn.Module] = nn.ReLU6) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = [ConvBNAct(cin, mid, 1, act=act)] if expand != 1 else []
        layers += [ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act), ConvBNAct(mid, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions, shortcut through a strided 1x1 convolution when the shape
    changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(cin, cout, 3, stride), ConvBNAct(cout, cout, 3, act=None))
        self.shortcut = ConvBNAct(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Classifier(nn.Module):
    """``features`` (the convolutional trunk), global average pooling, then ``classifier``:
    ``(N, C, S, S)`` -> ``(N, num_classes)`` logits."""

    features: nn.Sequential
    classifier: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean((2, 3)))

    def _init_convs(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class MobileNetV2(Classifier):
    """MobileNetV2 with width multiplier ``width``; dropout 0.2 before the classifier."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        cin = make_divisible(32 * width)
        last = make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [ConvBNAct(in_channels, cin, 3, 2, act=nn.ReLU6)]
        for t, c, n, s in MOBILENET_V2_SETTINGS:
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(ConvBNAct(cin, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        self._init_convs()
        nn.init.normal_(self.classifier[1].weight, 0, 0.01)
        nn.init.zeros_(self.classifier[1].bias)


class MNASNet(Classifier):
    """MNASNet-B1 with depth multiplier ``alpha`` (the 1280-channel head is not scaled); dropout 0.2."""

    def __init__(self, num_classes: int, in_channels: int = 3, alpha: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        d = [mnasnet_round(c * alpha) for c in MNASNET_DEPTHS]
        layers: list[nn.Module] = [ConvBNAct(in_channels, d[0], 3, 2),
                                   InvertedResidual(d[0], d[1], 1, 1, act=nn.ReLU)]  # separable convolution
        for i, (kernel, stride, expand, repeats) in enumerate(MNASNET_STACKS):
            for r in range(repeats):
                layers.append(InvertedResidual(d[i + 1] if r == 0 else d[i + 2], d[i + 2], stride if r == 0 else 1,
                                               expand, kernel, act=nn.ReLU))
        layers.append(ConvBNAct(d[-1], 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        self._init_convs()
        # as MobileNetV2's: the reference's kaiming_uniform_(mode="fan_out") scales with 1 / sqrt(num_classes),
        # which with a few classes gives initial logits of tens and a loss that takes epochs to come down
        nn.init.normal_(self.classifier[1].weight, 0, 0.01)
        nn.init.zeros_(self.classifier[1].bias)


class ResNet18(Classifier):
    """ResNet-18: 7x7 stride-2 stem, 3x3 stride-2 max pool, four stages of two basic blocks with ``64 width``,
    ``128 width``, ``256 width``, ``512 width`` channels."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        layers: list[nn.Module] = [ConvBNAct(in_channels, widths[0], 7, 2), nn.MaxPool2d(3, 2, 1)]
        cin = widths[0]
        for i, c in enumerate(widths):
            layers += [BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)  # torch's default Linear initialisation, as the reference
        self._init_convs()


def make_backbone(name: str, in_channels: int = 3, num_classes: int = 16, width: float = 1.0) -> Classifier:
    """A freshly initialised backbone (train mode; seed torch first for reproducible weights).

    Args:
        name: one of :data:`BACKBONES`.
        in_channels: planes of the input image: 1 (depth), 3 (RGB) or 4 (RGB-D).
        num_classes: logits per image.
        width: multiplier on the architecture's own widths (``mnasnet0_5`` at ``width=0.5`` has depth
            multiplier 0.25); small values make tiny test models.
    """
    if name not in BACKBONES:
        raise SpecError("backbone", f"unknown backbone {name!r} (allowed: {', '.join(BACKBONES)})")
    if in_channels not in MODALITIES.values():
        raise SpecError("in_channels", f"expected 1 (depth), 3 (RGB) or 4 (RGB-D), got {in_channels!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise SpecError("num_classes", f"expected a positive integer, got {num_classes!r}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise SpecError("width", f"expected a positive number, got {width!r}")
    if name == "mobilenet_v2":
        return MobileNetV2(num_classes, in_channels, width)
    if name == "resnet18":
        return ResNet18(num_classes, in_channels, width)
    return MNASNet(num_classes, in_channels, (1.0 if name == "mnasnet1_0" else 0.5) * width)


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first ``nn.Conv2d`` of ``model`` (the one early fusion widens)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise SpecError("model", f"{type(model).__name__} has no 2D convolution")
    return conv


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters of ``model`` (buffers such as batch-norm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())
