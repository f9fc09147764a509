"""MMTM fusion of an RGB stream and a skeleton stream, with the "learning to ignore" excitations (D3.2 §6.1).

MMTM (multimodal transfer module, Joze et al., CVPR 2020) between two feature maps ``A (N, C_a, *S_a)`` and
``B (N, C_b, *S_b)`` of any spatial shapes (video ``(N, C, T, H, W)``, skeleton ``(N, C, T, V)``):

* squeeze each stream by a global average over all but the channel dim: ``s_a (N, C_a)``, ``s_b (N, C_b)``;
* project the concatenation to a joint space: ``z = relu(W [s_a; s_b] + b)`` of width ``(C_a + C_b) / ratio``;
* excite each stream: ``e_a = T(W_a z + b_a)``, ``e_b = T(W_b z + b_b)`` where T is the attention mode of
  :func:`.attention.ignore_mask` (``"plain"`` = sigmoid; ``"ign1"``, ``"ign2"``, ``"ign3"``: the ignoring
  transforms replace the sigmoid, reference §7.2);
* return ``A * gain * e_a`` and ``B * gain * e_b`` (same shapes as the inputs). The MMTM paper writes
  ``2 * sigmoid``; ``gain`` defaults to 1 so the excitations keep the ranges of §7.2.

:class:`TwoStreamMMTM` runs two lists of stages side by side, fusing the stage outputs pairwise with MMTM, and
averages the two streams' logits (late fusion of the heads). The RGB stages can come from the X3D-like
network (:func:`x3d_stages`); the skeleton stages can be any modules producing ``(N, C, T, V)``, e.g.
:func:`skeleton_tcn` (two temporal convs over the joints) or the blocks of an ST-GCN.

Everything in this module is written here (``continual-inference`` has no fusion module).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hcgym.errors import SpecError
from hcgym.perception.action.attention import check_mode, ignore_mask
from hcgym.perception.action.x3d import X3D


def _squeeze(x: Tensor) -> Tensor:
    """Global average over all dims but (N, C): ``(N, C, *S)`` -> ``(N, C)``."""
    return x.flatten(2).mean(-1)


def _expand(e: Tensor, like: Tensor) -> Tensor:
    """``(N, C)`` -> ``(N, C, 1, ...)`` broadcastable against ``like``."""
    return e.reshape(*e.shape, *([1] * (like.dim() - 2)))


class MMTM(nn.Module):
    """Multimodal transfer module between two streams (see the module docstring).

    Args:
        channels_a: C of stream A.
        channels_b: C of stream B.
        ratio: joint width = ``max(min_joint, (channels_a + channels_b) // ratio)``.
        mode: ``"plain"``, ``"ign1"``, ``"ign2"`` or ``"ign3"``.
        alpha: the ``ign1`` factor in [0, 1].
        gain: factor on the excitations (2 in the MMTM paper's formula).
    """

    def __init__(self, channels_a: int, channels_b: int, ratio: int = 4, mode: str = "plain", alpha: float = 1.0,
                 gain: float = 1.0, min_joint: int = 4) -> None:
        super().__init__()
        for name, value in (("channels_a", channels_a), ("channels_b", channels_b), ("ratio", ratio)):
            if value < 1:
                raise SpecError(name, f"expected >= 1, got {value}")
        check_mode(mode, alpha)
        if gain <= 0:
            raise SpecError("gain", f"expected > 0, got {gain}")
        joint = max(min_joint, (channels_a + channels_b) // ratio)
        self.mode, self.alpha, self.gain = mode, float(alpha), float(gain)
        self.fc_joint = nn.Linear(channels_a + channels_b, joint)
        self.fc_a = nn.Linear(joint, channels_a)
        self.fc_b = nn.Linear(joint, channels_b)

    def logits(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-transform excitation logits ``(N, C_a)``, ``(N, C_b)``."""
        z = F.relu(self.fc_joint(torch.cat([_squeeze(a), _squeeze(b)], dim=1)))
        return self.fc_a(z), self.fc_b(z)

    def excitations(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """The masks ``T(logits)`` ``(N, C_a)``, ``(N, C_b)`` before ``gain`` (ranges as in :mod:`.attention`)."""
        za, zb = self.logits(a, b)
        return ignore_mask(za, self.mode, self.alpha), ignore_mask(zb, self.mode, self.alpha)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, C_a, *S_a)``, ``(N, C_b, *S_b)`` -> the re-weighted streams, same shapes."""
        ea, eb = self.excitations(a, b)
        return a * (self.gain * _expand(ea, a)), b * (self.gain * _expand(eb, b))

    def extra_repr(self) -> str:
        return f"mode={self.mode}, alpha={self.alpha}, gain={self.gain}"


class TwoStreamMMTM(nn.Module):
    """Two streams of stages fused by MMTM after the chosen stage pairs; logits = mean of the two heads.

    Args:
        rgb_stages: modules applied in turn to the video ``(N, 3, T, H, W)``.
        skeleton_stages: modules applied in turn to the skeleton ``(N, C, T, V)``; as many as ``rgb_stages``.
        rgb_channels: output channels of each RGB stage.
        skeleton_channels: output channels of each skeleton stage.
        num_classes: logits per stream.
        fuse: indices of the stage pairs followed by an MMTM (default: every pair).
        mode, alpha, ratio, gain: of every :class:`MMTM`.
    """

    def __init__(self, rgb_stages: Sequence[nn.Module], skeleton_stages: Sequence[nn.Module],
                 rgb_channels: Sequence[int], skeleton_channels: Sequence[int], num_classes: int,
                 fuse: Sequence[int] | None = None, mode: str = "plain", alpha: float = 1.0, ratio: int = 4,
                 gain: float = 1.0) -> None:
        super().__init__()
        n = len(rgb_stages)
        if len(skeleton_stages) != n or len(rgb_channels) != n or len(skeleton_channels) != n:
            raise SpecError("skeleton_stages", f"expected {n} stages and channel counts per stream (as rgb_stages), got "
                            f"{len(skeleton_stages)} skeleton stages, {len(rgb_channels)} and {len(skeleton_channels)} "
                            "channel counts")
        if num_classes < 1:
            raise SpecError("num_classes", f"expected >= 1, got {num_classes}")
        fuse = list(range(n)) if fuse is None else list(fuse)
        bad = [i for i in fuse if not 0 <= i < n]
        if bad:
            raise SpecError("fuse", f"stage index {bad[0]} out of range 0..{n - 1}")
        self.rgb_stages = nn.ModuleList(rgb_stages)
        self.skeleton_stages = nn.ModuleList(skeleton_stages)
        self.fuse = fuse
        self.mmtm = nn.ModuleDict({str(i): MMTM(rgb_channels[i], skeleton_channels[i], ratio, mode, alpha, gain)
                                   for i in fuse})
        self.rgb_head = nn.Linear(rgb_channels[-1], num_classes)
        self.skeleton_head = nn.Linear(skeleton_channels[-1], num_classes)

    def features(self, video: Tensor, skeleton: Tensor) -> tuple[Tensor, Tensor]:
        """The two streams' last features, globally pooled: ``(N, rgb_channels[-1])``, ``(N, skeleton_channels[-1])``."""
        a, b = video, skeleton
        for i, (rgb, skel) in enumerate(zip(self.rgb_stages, self.skeleton_stages)):
            a, b = rgb(a), skel(b)
            if str(i) in self.mmtm:
                a, b = self.mmtm[str(i)](a, b)
        return _squeeze(a), _squeeze(b)

    def forward(self, video: Tensor, skeleton: Tensor) -> Tensor:
        """``(N, 3, T, H, W)``, ``(N, C, T, V)`` -> logits ``(N, num_classes)``."""
        a, b = self.features(video, skeleton)
        return 0.5 * (self.rgb_head(a) + self.skeleton_head(b))


def x3d_stages(model: X3D) -> tuple[list[nn.Module], list[int]]:
    """The RGB stages of an :class:`X3D` (stem joined to the first stage) and their output channels."""
    stages = [nn.Sequential(model.stem, model.stages[0]), *model.stages[1:]]
    return stages, list(model.config.widths)


class SkeletonTCN(nn.Module):
    """The skeleton stream of :class:`TwoStreamMMTM` on its own (the fusion study's single-stream baseline):
    :func:`skeleton_tcn` stages, a global average pool and a linear head; input ``(N, C, T, V)``."""

    def __init__(self, in_channels: int, widths: Sequence[int], num_classes: int, kernel: int = 3) -> None:
        super().__init__()
        if num_classes < 1:
            raise SpecError("num_classes", f"expected >= 1, got {num_classes}")
        self.stages = nn.Sequential(*skeleton_tcn(in_channels, widths, kernel))
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, skeleton: Tensor) -> Tensor:
        """``(N, C, T, V)`` -> logits ``(N, num_classes)``."""
        return self.head(_squeeze(self.stages(skeleton)))


def skeleton_tcn(in_channels: int, widths: Sequence[int], kernel: int = 3) -> list[nn.Module]:
    """Skeleton stages: per width, a temporal ``kernel`` x 1 conv over ``(N, C, T, V)`` (joints kept), BN, ReLU."""
    if in_channels < 1 or not widths or min(widths) < 1:
        raise SpecError("widths", f"expected positive channel counts, got in_channels={in_channels}, widths={list(widths)}")
    if kernel < 1 or kernel % 2 == 0:
        raise SpecError("kernel", f"expected an odd size >= 1, got {kernel}")
    stages, c = [], in_channels
    for w in widths:
        stages.append(nn.Sequential(nn.Conv2d(c, w, (kernel, 1), padding=(kernel // 2, 0), bias=False),
                                    nn.BatchNorm2d(w), nn.ReLU()))
        c = w
    return stages
