"""MatchboxNet-BxRxC for keyword spotting, with Self-ONN configurations A-F (OpenDR D3.2 §5.2, Table 25).

Structure of MatchboxNet-3x1x64 (the published model: Majumdar & Ginsburg 2020, NeMo's
``matchboxnet_3x1x64_v1`` config, which the OpenDR toolkit's port follows but for one point below), input
``(N, 64, T)`` MFCCs:

* prologue: time-channel separable convolution 64 -> 128, kernel 11 (depthwise k11, then pointwise 1x1), BN,
  ReLU, dropout;
* B = 3 residual blocks of R = 1 sub-block, C = 64 channels, kernels 13 / 15 / 17: separable convolution, BN;
  plus a residual 1x1 convolution + BN of the block input; the sum goes through ReLU and dropout (with R > 1,
  ReLU and dropout also follow every sub-block but the last);
* epilogue: separable convolution 64 -> 128, kernel 29, dilation 2, BN, ReLU, dropout; then a 1x1 convolution
  128 -> 128, BN, ReLU, dropout;
* average over time, then a Linear head -> ``(N, classes)`` logits.

Every convolution has stride 1 (the published config; the model is not strided in time), "same" padding
``dilation (k - 1) / 2`` and no bias (BN follows); BN eps 1e-3. With 30 classes the model has 77,214
parameters (the published "77K"). D3.2 calls the prologue and epilogue "standard convolutions"; in the
published config (and the OpenDR port) the prologue and the k29 epilogue layer are separable, as here. The
OpenDR port differs in one point: its ``MatchBoxBlock`` builds two
convolutions where one sub-block is asked for (``subblocks=1``, no activation between them), which would
double every layer (147,806 parameters with 30 classes); here a sub-block is one separable convolution, as in
the paper and NeMo. Its head ends in ``log_softmax``; here it returns logits.

Self-ONN configurations (:data:`CONFIGS`): a replaced *layer* has every convolution in it replaced by a
:class:`~.selfonn.SelfONN1d` of order ``q`` (a separable layer: its depthwise and its pointwise convolution), so
its weights grow exactly ``q`` times. A ``tanh`` is put before every Self-ONN convolution whose input is not
the (normalised) network input, so that its input lies in [-1, 1] (also between the depthwise and pointwise
halves of a replaced separable layer); ``tanh=False`` drops them (the ablation). ``separable="depthwise"``
is the cheaper variant where only the depthwise (time) convolution of a separable layer takes the powers and
the pointwise one stays linear: still a Self-ONN layer, ``sum_i X^i (*) W_i``, with every ``W_i`` factorised
as the shared pointwise map after its own depthwise kernel.

Layers that can be replaced (:data:`PARTS`): ``prologue``; ``blocks.pointwise`` (the pointwise convolution of
every residual sub-block; the residual 1x1 projections stay convolutions); ``epilogue.1`` (separable, k29);
``epilogue.2`` (the 1x1, the final epilogue layer before pooling and the head).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from hcgym.errors import SpecError
from hcgym.perception.biosignal.backbones import count_parameters
from hcgym.perception.speech.features import MFCC, SAMPLE_RATE, n_frames
from hcgym.perception.speech.selfonn import SelfONN1d

__all__ = ["CONFIGS", "PARTS", "Block", "Config", "MatchboxNet", "config", "count_macs", "count_parameters",
           "keyword_spotter", "power_products"]

PARTS = ("prologue", "blocks.pointwise", "epilogue.1", "epilogue.2")
SEPARABLE = ("all", "depthwise")


@dataclass(frozen=True)
class Config:
    """A Table 25 configuration: which layers (:data:`PARTS`) become Self-ONN, with which order ``q``."""

    name: str
    description: str
    q: dict[str, int] = field(default_factory=dict)


CONFIGS: dict[str, Config] = {c.name: c for c in (
    Config("A", "original MatchboxNet 3x1x64"),
    Config("B", "prologue replaced with Self-ONN, q = 7", {"prologue": 7}),
    Config("C", "final epilogue layer (1x1, 128 -> 128) replaced with Self-ONN, q = 7", {"epilogue.2": 7}),
    Config("D", "prologue and both epilogue layers replaced with Self-ONN, q = 5",
           {"prologue": 5, "epilogue.1": 5, "epilogue.2": 5}),
    Config("E", "prologue and both epilogue layers replaced with Self-ONN, q = 7",
           {"prologue": 7, "epilogue.1": 7, "epilogue.2": 7}),
    Config("F", "pointwise convolutions inside the residual blocks replaced with Self-ONN, q = 7",
           {"blocks.pointwise": 7}),
)}


def config(name: str) -> Config:
    """The configuration called ``name`` (A-F); :class:`SpecError` for any other."""
    if name not in CONFIGS:
        raise SpecError("config", f"unknown configuration {name!r} (allowed: {', '.join(CONFIGS)})")
    return CONFIGS[name]


def _conv(cin: int, cout: int, k: int, q: int, dilation: int = 1, groups: int = 1, tanh: bool = False) -> list:
    """A bias-free "same" convolution, a :class:`SelfONN1d` when ``q > 1`` (with a ``tanh`` before it when
    ``tanh``), as a list of modules."""
    if q == 1:
        return [nn.Conv1d(cin, cout, k, padding=dilation * (k - 1) // 2, dilation=dilation, groups=groups,
                          bias=False)]
    return ([nn.Tanh()] if tanh else []) + [SelfONN1d(cin, cout, k, q, dilation=dilation, groups=groups,
                                                      bias=False)]


class Block(nn.Module):
    """``(N, cin, T)`` -> ``(N, cout, T)``: ``repeat`` sub-blocks (convolution, BN; ReLU and dropout between
    them), an optional residual 1x1 convolution + BN added before the last ReLU and dropout.

    Args:
        q_time, q_point: Self-ONN orders of the depthwise and pointwise convolution of a separable sub-block;
            ``q_point`` alone for a plain one (``separable=False``).
        tanh: a ``tanh`` before every Self-ONN convolution ...
        tanh_first: ... including the block's first one (False only where the input is the network input).
    """

    def __init__(self, cin: int, cout: int, kernel: int, repeat: int = 1, dilation: int = 1, separable: bool = True,
                 residual: bool = False, dropout: float = 0.0, q_time: int = 1, q_point: int = 1,
                 tanh: bool = True, tanh_first: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for r in range(repeat):
            c = cin if r == 0 else cout
            first_tanh = tanh and (tanh_first or r > 0)
            if separable:
                layers += _conv(c, c, kernel, q_time, dilation, groups=c, tanh=first_tanh)
                layers += _conv(c, cout, 1, q_point, tanh=tanh)
            else:
                layers += _conv(c, cout, kernel, q_point, dilation, tanh=first_tanh)
            layers.append(nn.BatchNorm1d(cout, eps=1e-3))
            if r < repeat - 1:
                layers += [nn.ReLU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*layers)
        self.residual = (nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout, eps=1e-3))
                         if residual else None)
        self.out = nn.Sequential(nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        if self.residual is not None:
            y = y + self.residual(x)
        return self.out(y)


def _check(classes: Any, config_name: Any, ints: dict[str, Any], dropout: Any, separable: Any) -> Config:
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise SpecError("classes", f"expected an integer >= 2, got {classes!r}")
    for name, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(name, f"expected a positive integer, got {value!r}")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise SpecError("dropout", f"expected a probability in [0, 1), got {dropout!r}")
    if separable not in SEPARABLE:
        raise SpecError("separable", f"unknown value {separable!r} (allowed: {', '.join(SEPARABLE)})")
    return config(config_name)


class MatchboxNet(nn.Module):
    """``(N, in_features, T)`` MFCCs -> ``(N, classes)`` logits: MatchboxNet-BxRxC with Self-ONN layers as
    configuration ``config`` (module docstring).

    Args:
        classes: output classes.
        config: ``"A"``..``"F"`` (:data:`CONFIGS`).
        in_features: MFCC coefficients per frame.
        width: C, the channels of the residual blocks (the prologue and epilogue have 2 C).
        blocks, repeat: B and R.
        dropout: after every ReLU (0 in the published 3x1x64 config).
        tanh: a ``tanh`` before every Self-ONN layer but the prologue's first convolution.
        separable: ``"all"`` (every convolution of a replaced separable layer is Self-ONN) or ``"depthwise"``.
    """

    def __init__(self, classes: int, config: str = "A", in_features: int = 64, width: int = 64, blocks: int = 3,
                 repeat: int = 1, dropout: float = 0.0, tanh: bool = True, separable: str = "all") -> None:
        super().__init__()
        cfg = _check(classes, config, {"in_features": in_features, "width": width, "blocks": blocks,
                                       "repeat": repeat}, dropout, separable)
        self.config, self.tanh, self.separable = cfg.name, bool(tanh), separable

        def orders(part: str) -> tuple[int, int]:
            q = cfg.q.get(part, 1)
            return q, (1 if separable == "depthwise" else q)

        common = {"dropout": float(dropout), "tanh": self.tanh}
        q_time, q_point = orders("prologue")
        self.prologue = Block(in_features, 2 * width, 11, q_time=q_time, q_point=q_point, tanh_first=False, **common)
        q_block = cfg.q.get("blocks.pointwise", 1)
        self.blocks = nn.Sequential(*[
            Block(2 * width if b == 0 else width, width, 13 + 2 * b, repeat=repeat, residual=True, q_point=q_block,
                  **common) for b in range(blocks)])
        q_time, q_point = orders("epilogue.1")
        self.epilogue = nn.Sequential(
            Block(width, 2 * width, 29, dilation=2, q_time=q_time, q_point=q_point, **common),
            Block(2 * width, 2 * width, 1, separable=False, q_point=cfg.q.get("epilogue.2", 1), **common))
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.epilogue(self.blocks(self.prologue(x)))
        return self.head(x.mean(dim=2))


def keyword_spotter(classes: int, config: str = "A", normalize: bool = True, **kwargs: Any) -> nn.Sequential:
    """``(N, samples)`` 16 kHz audio -> ``(N, classes)`` logits: :class:`~.features.MFCC` (64 coefficients)
    then :class:`MatchboxNet` (``kwargs`` passed on)."""
    return nn.Sequential(MFCC(normalize=normalize), MatchboxNet(classes, config, **kwargs))


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 64, n_frames(SAMPLE_RATE))) -> dict[str, int]:
    """Multiply-adds of ``model`` on one input of ``input_shape`` (batch 1) by ptflops and by fvcore:
    ``{"ptflops", "fvcore"}`` (:func:`hcgym.perception.action.cost.macs`). A :class:`SelfONN1d` counts as its
    single convolution; neither counter counts the ``q - 1`` products that make its powers (nor ``tanh``).
    ptflops adds BN, ReLU and pooling (1-2 per element), fvcore BN; both count the Linear head."""
    import torch

    from hcgym.perception.action.cost import macs

    if not isinstance(input_shape, tuple) or len(input_shape) != 3 or input_shape[0] != 1:
        raise SpecError("input_shape", f"expected (1, features, frames), got {input_shape!r}")
    return macs(model, torch.zeros(input_shape), "clip")


def power_products(model: nn.Module, frames: int = n_frames(SAMPLE_RATE)) -> int:
    """Elementwise multiplications that make the Self-ONN powers of ``model`` on ``frames`` frames (stride 1, so
    every layer sees ``frames`` frames): ``(q - 1) C_in T`` per :class:`SelfONN1d`."""
    return sum((m.q - 1) * m.in_channels * frames for m in model.modules() if isinstance(m, SelfONN1d))
