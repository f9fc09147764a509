"""ST-GCN and AGCN on the NTU RGB+D skeleton, and their continual versions CoST-GCN and CoAGCN.

OpenDR D3.2 Sec. 3.2. Shapes: a clip is ``(N, C, T, V, M)`` (batch, coordinates, frames, 25 joints,
persons); one frame is ``(N, C, V, M)``; outputs are class scores ``(N, num_classes)``.

What comes from where:

* ``continual-inference`` 1.2.4 (``import continual as co``) gives every part that carries state over time:
  the continual temporal convolution ``co.Conv2d`` (kernel ``(k, 1)`` over ``(N, C, T, V)``, strides
  included), the residual alignment ``co.Delay`` (with its centred clip-mode crop) inside
  ``co.BroadcastReduce``, the frame picking of strided residuals ``co.AvgPool2d((1, 1), stride=(s, 1))``,
  the continual global average pool ``co.AdaptiveAvgPool2d`` (spatial mean per
  frame, temporal mean over a ring buffer), the ``co.Sequential`` containers, ``forward`` /
  ``forward_steps`` / ``forward_step``, ``delay``, ``receptive_field`` and ``stride`` bookkeeping, and the
  explicit-state ``_forward_step(x, state)`` protocol that ``co.onnx`` exports.
* Written here: the graph convolutions (:class:`SpatialGraphConv` with ST-GCN's learnable edge-importance
  masks, :class:`AdaptiveGraphConv` with 2s-AGCN's ``A_k + B_k + C_k``), the blocks and the clip model
  :class:`GCN`, the stateless per-frame wrapper :class:`FrameWise` (graph convolutions, batch norms and
  the data normalisation act on each frame alone, so in continual mode they keep no state), the head,
  :class:`SteppedSequential` (``forward_steps`` by stepping, see there), :func:`to_continual`, :func:`star_variant`, :func:`state_tensors` and :func:`state_floats`.

Temporal padding: the continual models have none (D3.2 Sec. 3.1, Co3D Sec. 3.5: zero padding would make every new
frame revise earlier outputs). A clip model built with ``temporal_padding=False`` is therefore reproduced
exactly by its continual version once the ``delay`` has passed; one built with padding (the original
ST-GCN) converts with an approximation. Without padding the residual of a block is aligned with the
centre of the temporal window: the clip model crops ``(k - 1) / 2`` frames at both ends, the continual
model delays the residual by ``(k - 1) / 2`` steps (``co.Delay(..., auto_shrink="centered")``).

AGCN's data-dependent graph ``C_k``: in 2s-AGCN it is one ``V x V`` matrix per sample computed from the
whole clip, ``softmax(theta(X)^T phi(X) / (C_e T))`` with the embeddings flattened over channels and all
``T`` frames, so no output can be formed before the clip has ended. CoAGCN computes it per frame instead,
from the current skeleton only: ``C_k[t] = softmax_j(theta(x_t)_j . phi(x_t)_i / C_e)`` (this is what the
authors' CoAGCN code does, the adaptive graph convolution run on one frame; the deliverable itself does not
describe it). :class:`AdaptiveGraphConv` offers both (``attention="clip"`` as 2s-AGCN, ``"frame"`` as
CoAGCN). :func:`to_continual` always uses the per-frame form: it is exact for a clip model built with
``attention="frame"`` and an approximation for one trained with whole-clip attention.

Strides: the original pattern (stride 2 in layers 5 and 8 of 10) makes the continual model emit one
prediction every ``prod(strides) = 4`` frames; the "*" variant (:func:`star_variant`, all strides 1, same
weights, to be fine-tuned) emits one per frame.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import continual as co
import torch
from torch import Tensor, nn

from hcgym.errors import SpecError
from hcgym.perception.action.graph import NUM_JOINTS, ntu_adjacency

MODELS: tuple[str, ...] = ("stgcn", "agcn")
ATTENTIONS: tuple[str, ...] = ("frame", "clip")
RESIDUALS: tuple[str, ...] = ("none", "identity", "conv")


@dataclass(frozen=True)
class GCNConfig:
    """A skeleton GCN.

    Attributes:
        model: ``stgcn`` or ``agcn``.
        channels: output channels of each block (the original 64x4, 128x3, 256x3 reduced four times).
        strides: temporal stride of each block; all 1 for the "*" variant.
        temporal_kernel: temporal kernel ``k`` (odd; 9 in ST-GCN and AGCN).
        num_classes: output classes.
        num_person: persons per sample ``M`` (the scores are averaged over persons).
        in_channels: coordinates per joint ``C``.
        temporal_padding: zero-pad ``(k - 1) / 2`` frames at both ends of each temporal convolution
            (the original models); the continual-compatible models have none.
        attention: AGCN's data-dependent graph from the whole clip (``clip``, 2s-AGCN) or per frame
            (``frame``, CoAGCN).
        embed_ratio: AGCN embedding size ``C_e = out_channels // embed_ratio``.
    """

    model: str = "stgcn"
    channels: tuple[int, ...] = (16, 16, 16, 16, 32, 32, 32, 64, 64, 64)
    strides: tuple[int, ...] = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    temporal_kernel: int = 9
    num_classes: int = 10
    num_person: int = 1
    in_channels: int = 3
    temporal_padding: bool = False
    attention: str = "frame"
    embed_ratio: int = 4

    def check(self) -> GCNConfig:
        """Raise :class:`SpecError` naming the first invalid field; return ``self``."""
        def positive(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"gcn.{name}", f"must be a positive integer, got {value!r}")

        if self.model not in MODELS:
            raise SpecError("gcn.model", f"unknown model {self.model!r} (allowed: {', '.join(MODELS)})")
        if self.attention not in ATTENTIONS:
            raise SpecError("gcn.attention", f"unknown attention {self.attention!r} (allowed: {', '.join(ATTENTIONS)})")
        for name in ("channels", "strides"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise SpecError(f"gcn.{name}", f"must be a non-empty list of positive integers, got {values!r}")
            for i, v in enumerate(values):
                positive(f"{name}[{i}]", v)
        if len(self.strides) != len(self.channels):
            raise SpecError("gcn.strides", f"needs one stride per layer ({len(self.channels)}), got {len(self.strides)}")
        for name in ("temporal_kernel", "num_classes", "num_person", "in_channels", "embed_ratio"):
            positive(name, getattr(self, name))
        if self.temporal_kernel % 2 == 0:
            raise SpecError("gcn.temporal_kernel", f"must be odd, got {self.temporal_kernel}")
        if not isinstance(self.temporal_padding, bool):
            raise SpecError("gcn.temporal_padding", f"must be true or false, got {self.temporal_padding!r}")
        return self

    @property
    def layers(self) -> int:
        """Number of blocks."""
        return len(self.channels)

    @property
    def frames_per_prediction(self) -> int:
        """Frames between two predictions of the continual model: the product of the temporal strides."""
        return math.prod(self.strides)

    def star(self) -> GCNConfig:
        """The "*" configuration: every temporal stride 1."""
        return dataclasses.replace(self, strides=(1,) * self.layers)

    def out_frames(self, frames: int, padding: bool | None = None) -> int:
        """Frames left after the blocks for a clip of ``frames`` (0 when the clip is too short)."""
        k = self.temporal_kernel
        pad = (k - 1) // 2 if (self.temporal_padding if padding is None else padding) else 0
        for s in self.strides:
            if frames + 2 * pad < k:
                return 0
            frames = (frames + 2 * pad - k) // s + 1
        return frames

    def receptive_field(self, pooled: int = 1) -> int:
        """Frames the unpadded blocks need to give ``pooled`` frames to the global pool."""
        frames = pooled
        for s in reversed(self.strides):
            frames = (frames - 1) * s + self.temporal_kernel
        return frames

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GCNConfig:
        """Build and check a configuration; unknown fields raise :class:`SpecError`."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in allowed:
                raise SpecError(f"gcn.{key}", f"unknown field (allowed: {', '.join(allowed)})")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values).check()


class SpatialGraphConv(nn.Module):
    """ST-GCN graph convolution on each frame, then batch norm and ReLU.

    ``y = ReLU(BN(sum_k (A_k * M_k) X W_k))`` with the normalised partitions ``A`` (K, V, V)
    (``[k, receiver, sender]``) and learnable edge-importance masks ``M`` (initialised to ones).
    Input (N, C_in, T, V) -> output (N, C_out, T, V); frames are independent.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: Tensor) -> None:
        super().__init__()
        self.register_buffer("A", adjacency.clone())
        self.importance = nn.Parameter(torch.ones_like(adjacency))
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, out_channels * adjacency.shape[0], 1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        n, _, t, v = x.shape
        y = self.conv(x).view(n, self.A.shape[0], self.out_channels, t, v)
        y = torch.einsum("nkctv,kwv->nctw", y, self.A * self.importance)
        return self.relu(self.bn(y))


class AdaptiveGraphConv(nn.Module):
    """2s-AGCN adaptive graph convolution (joint stream), then batch norm, residual and ReLU.

    ``y = ReLU(BN(sum_k W_k X (A_k + B_k + C_k)) + down(X))``: ``A_k`` the fixed normalised partitions,
    ``B_k`` learnable (initialised to 1e-6), ``C_k`` data-dependent, a softmax over senders ``j`` of
    ``theta_k(x)_j . phi_k(x)_i`` (embeddings of ``C_e`` channels). With ``attention="clip"`` one ``C_k``
    per sample from all frames (scaled by ``1 / (C_e T)``, as 2s-AGCN), with ``"frame"`` one per frame
    (scaled by ``1 / C_e``, as CoAGCN; frames are then independent).
    Input (N, C_in, T, V) -> output (N, C_out, T, V).
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: Tensor, embed_ratio: int = 4,
                 attention: str = "frame") -> None:
        super().__init__()
        k = adjacency.shape[0]
        self.embed = max(1, out_channels // embed_ratio)
        self.attention = attention
        self.register_buffer("A", adjacency.clone())
        self.B = nn.Parameter(torch.full_like(adjacency, 1e-6))
        self.theta = nn.Conv2d(in_channels, self.embed * k, 1)
        self.phi = nn.Conv2d(in_channels, self.embed * k, 1)
        # the K per-subset 1x1 convolutions of 2s-AGCN as one convolution over the stacked aggregates
        self.conv = nn.Conv2d(in_channels * k, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.down = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
                     if in_channels != out_channels else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, v = x.shape
        k = self.A.shape[0]
        a = self.theta(x).view(n, k, self.embed, t, v)  # senders j
        b = self.phi(x).view(n, k, self.embed, t, v)  # receivers i
        static = self.A + self.B
        if self.attention == "clip":
            att = torch.softmax(torch.einsum("nkctj,nkcti->nkij", a, b) / (self.embed * t), dim=-1)
            agg = torch.einsum("nctj,nkij->nkcti", x, static.unsqueeze(0) + att)
        else:
            att = torch.softmax(torch.einsum("nkctj,nkcti->nktij", a, b) / self.embed, dim=-1)
            agg = torch.einsum("nctj,kij->nkcti", x, static) + torch.einsum("nctj,nktij->nkcti", x, att)
        y = self.conv(agg.reshape(n, k * c, t, v))
        return self.relu(self.bn(y) + self.down(x))


class GCNBlock(nn.Module):
    """Graph convolution, temporal convolution ``(k, 1)`` with stride and batch norm, residual, ReLU.

    Input (N, C_in, T, V) -> (N, C_out, T', V) with ``T' = (T + 2p - k) // s + 1``. Without temporal
    padding the residual is cropped by ``(k - 1) / 2`` frames at both ends (centred on the window).
    """

    def __init__(self, spatial: nn.Module, in_channels: int, out_channels: int, kernel: int, stride: int,
                 padding: bool, residual: str) -> None:
        super().__init__()
        self.gcn = spatial
        self.tcn = nn.Conv2d(out_channels, out_channels, (kernel, 1), (stride, 1), ((kernel - 1) // 2 if padding else 0, 0))
        self.bn = nn.BatchNorm2d(out_channels)
        self.residual = residual
        self.crop = 0 if padding else (kernel - 1) // 2
        self.res = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, (stride, 1)), nn.BatchNorm2d(out_channels))
                    if residual == "conv" else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        z = self.bn(self.tcn(self.gcn(x)))
        if self.residual != "none":
            z = z + self.res(x[:, :, self.crop:x.shape[2] - self.crop])
        return self.relu(z)


class InputNorm(nn.Module):
    """Data batch norm over (person, joint, coordinate) channels: (N, C, T, V, M) -> (N*M, C, T, V)."""

    def __init__(self, in_channels: int, num_person: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(num_person * NUM_JOINTS * in_channels)

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, v, m = x.shape
        x = self.bn(x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t))
        return x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)


class Head(nn.Module):
    """Average over persons and classify: pooled (N*M, C) -> scores (N, num_classes)."""

    def __init__(self, channels: int, num_classes: int, num_person: int) -> None:
        super().__init__()
        self.num_person = num_person
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.view(-1, self.num_person, x.shape[1]).mean(1))


def residual_kinds(cfg: GCNConfig) -> tuple[str, ...]:
    """Residual of each block: none in the first, identity where shapes agree, else a strided 1x1 conv."""
    ins = (cfg.in_channels, *cfg.channels[:-1])
    return tuple("none" if i == 0 else "identity" if (c_in == c_out and s == 1) else "conv"
                 for i, (c_in, c_out, s) in enumerate(zip(ins, cfg.channels, cfg.strides)))


class GCN(nn.Module):
    """Clip model (ST-GCN or AGCN): (N, C, T, V, M) -> class scores (N, num_classes).

    Data batch norm, the blocks, a global average over frames and joints, the mean over persons, a linear
    classifier. ``residuals`` overrides :func:`residual_kinds` (used by :func:`star_variant`).
    """

    def __init__(self, cfg: GCNConfig, residuals: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.cfg = cfg.check()
        self.residuals = residuals or residual_kinds(cfg)
        adjacency = torch.from_numpy(ntu_adjacency())
        self.data_bn = InputNorm(cfg.in_channels, cfg.num_person)
        blocks = []
        ins = (cfg.in_channels, *cfg.channels[:-1])
        for c_in, c_out, s, res in zip(ins, cfg.channels, cfg.strides, self.residuals):
            if cfg.model == "stgcn":
                spatial: nn.Module = SpatialGraphConv(c_in, c_out, adjacency)
            else:
                spatial = AdaptiveGraphConv(c_in, c_out, adjacency, cfg.embed_ratio, cfg.attention)
            blocks.append(GCNBlock(spatial, c_in, c_out, cfg.temporal_kernel, s, cfg.temporal_padding, res))
        self.blocks = nn.ModuleList(blocks)
        self.head = Head(cfg.channels[-1], cfg.num_classes, cfg.num_person)

    def forward(self, x: Tensor) -> Tensor:
        cfg = self.cfg
        expected = (cfg.in_channels, NUM_JOINTS, cfg.num_person)
        if x.dim() != 5 or (x.shape[1], x.shape[3], x.shape[4]) != expected:
            raise SpecError("input", f"expected (N, {cfg.in_channels}, T, {NUM_JOINTS}, {cfg.num_person}), "
                            f"got {tuple(x.shape)}")
        if cfg.out_frames(x.shape[2]) < 1:
            raise SpecError("input", f"{x.shape[2]} frames are too few (at least {self.min_frames})")
        h = self.data_bn(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h.mean(dim=(2, 3)))

    @property
    def min_frames(self) -> int:
        """Shortest clip the model accepts."""
        t = 1
        while self.cfg.out_frames(t) < 1:
            t += 1
        return t


def build_gcn(cfg: GCNConfig) -> GCN:
    """The clip model of ``cfg`` (ST-GCN or AGCN), randomly initialised."""
    return GCN(cfg)


def star_variant(model: GCN) -> GCN:
    """The "*" clip model: the same weights with every temporal stride 1 (to be fine-tuned).

    Strided blocks keep their 1x1 convolution residual (now with stride 1), so every weight carries over.
    """
    star = GCN(model.cfg.star(), residuals=model.residuals)
    star.load_state_dict(model.state_dict())
    return star.train(model.training)


class FrameWise(co.CoModule, nn.Module):
    """A module acting on each frame alone, as a continual module: no state, no delay.

    ``forward`` / ``forward_steps`` take the time axis at dim 2; ``forward_step`` takes one frame without
    it (a time axis of 1 is inserted and removed around the wrapped module).
    """

    _state_shape = 0
    _dynamic_state_inds: list = []
    receptive_field = 1
    stride = (1,)
    padding = (0,)

    def __init__(self, module: nn.Module) -> None:
        nn.Module.__init__(self)
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)

    def forward_steps(self, x: Tensor, pad_end: bool = False, update_state: bool = True) -> Tensor:
        return self.module(x)

    def _forward_step(self, x: Tensor, prev_state: Any = None) -> tuple[Tensor, Any]:
        return self.module(x.unsqueeze(2)).squeeze(2), prev_state

    def forward_step(self, x: Tensor, update_state: bool = True) -> Tensor:
        return self._forward_step(x)[0]

    def get_state(self) -> None:
        return None

    def set_state(self, state: Any) -> None:
        pass

    def clean_state(self) -> None:
        pass


class ContinualHead(FrameWise):
    """:class:`Head` after ``co.AdaptiveAvgPool2d``: (N*M, C, 1, 1) clip / (N*M, C, 1) step -> (N, classes).

    ``forward_steps`` maps (N*M, C, T, 1) to (N, classes, T).
    """

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.flatten(1))

    def forward_steps(self, x: Tensor, pad_end: bool = False, update_state: bool = True) -> Tensor:
        return torch.stack([self.module(x[:, :, t].flatten(1)) for t in range(x.shape[2])], dim=2)

    def _forward_step(self, x: Tensor, prev_state: Any = None) -> tuple[Tensor, Any]:
        return self.module(x.flatten(1)), prev_state


def _co_conv(conv: nn.Conv2d) -> co.Conv2d:
    """``co.Conv2d`` with the weights of ``conv`` and no temporal padding."""
    return co.Conv2d.build_from(conv, padding=(0, 0))


def _unstrided(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of a 1x1 convolution with stride 1 (the temporal subsampling is done before it)."""
    out = nn.Conv2d(conv.in_channels, conv.out_channels, 1)
    out.load_state_dict(conv.state_dict())
    return out


class SteppedSequential(co.Sequential):
    """``co.Sequential`` whose ``forward_steps`` runs ``forward_step`` frame by frame.

    ``co.BroadcastReduce.forward_steps`` runs each branch over the whole input and sums the results, which
    only lines up when the branches have equal delays; the centred residual has half the delay of the
    temporal convolution, so the models here step instead (the outputs are the same as stepping by hand).
    """

    def forward_steps(self, input: Tensor, pad_end: bool = False, update_state: bool = True) -> Tensor | None:
        model = self if update_state else copy.deepcopy(self)
        outs = [model.forward_step(input[:, :, t]) for t in range(input.shape[2])]
        outs = [o for o in outs if o is not None]
        return torch.stack(outs, dim=2) if outs else None


def _continual_block(block: GCNBlock) -> co.Sequential:
    """CoST-GCN / CoAGCN block: per-frame graph conv, ``co.Conv2d`` and a centred ``co.Delay`` residual.

    A strided residual keeps every ``s``-th frame with ``co.AvgPool2d((1, 1), stride=(s, 1))`` and then
    applies its 1x1 convolution per frame: ``co.Conv2d`` 1.2.4 with a temporal kernel of 1 keeps no state
    and so ignores its temporal stride in ``forward_step(s)``.
    """
    spatial = copy.deepcopy(block.gcn)
    if isinstance(spatial, AdaptiveGraphConv):
        spatial.attention = "frame"
    main = co.Sequential(OrderedDict(gcn=FrameWise(spatial), tcn=_co_conv(block.tcn),
                                     bn=FrameWise(copy.deepcopy(block.bn))))
    if block.residual == "none":
        body: co.CoModule = main
    else:
        # centred residual: delayed by (k - 1) / 2 steps; cropped by as much at both ends in clip mode
        delay = co.Delay((block.tcn.kernel_size[0] - 1) // 2, auto_shrink="centered")
        res = delay if block.residual == "identity" else co.Sequential(OrderedDict(
            align=delay, pick=co.AvgPool2d((1, 1), stride=block.res[0].stride), conv=FrameWise(_unstrided(block.res[0])),
            bn=FrameWise(copy.deepcopy(block.res[1]))))
        body = co.BroadcastReduce(OrderedDict(residual=res, main=main), reduce="sum", auto_delay=False)
    return SteppedSequential(OrderedDict(body=body, relu=FrameWise(nn.ReLU())))


class CoGCN(SteppedSequential):
    """CoST-GCN / CoAGCN: a ``co.Sequential`` of data norm, blocks, continual global pool and head.

    * ``forward_step(frame)``: one frame (N, C, V, M) -> scores (N, num_classes), or ``None`` during the
      first ``delay`` frames and between strided predictions (one every ``frames_per_prediction``).
    * ``forward(clip)``: (N, C, T, V, M) -> (N, num_classes), the unpadded clip model.
    * ``forward_steps(clip)``: (N, C, T, V, M) -> (N, num_classes, P), the P predictions made while
      stepping through the clip (state kept; ``pad_end`` is ignored: there is no temporal padding).

    A prediction made after frame ``t`` equals the clip model on frames ``t - receptive_field + 1 .. t``.
    """

    def __init__(self, modules: OrderedDict, cfg: GCNConfig, clip_len: int) -> None:
        super().__init__(modules)
        self.cfg = cfg
        self.clip_len = clip_len

    @property
    def frames_per_prediction(self) -> int:
        """Frames between predictions: the product of the temporal strides."""
        return int(self.stride[0])


def to_continual(model: GCN, clip_len: int) -> CoGCN:
    """The continual version of a clip model, with copied weights (BN needs eval mode for exactness).

    ``clip_len``: the clip length the clip model was meant for; the continual global pool averages the
    features the unpadded blocks produce from it. Temporal padding is dropped and AGCN's ``C_k`` is
    computed per frame (see the module docstring).
    """
    cfg = model.cfg
    valid = isinstance(clip_len, int) and not isinstance(clip_len, bool)
    pooled = cfg.out_frames(clip_len, padding=False) if valid else 0
    if pooled < 1:
        raise SpecError("clip_len", f"must be an integer of at least {cfg.receptive_field()} frames "
                        f"(the unpadded receptive field), got {clip_len!r}")
    half = (cfg.temporal_kernel - 1) // 2
    for i, (stride, res) in enumerate(zip(cfg.strides, model.residuals)):
        # the strided residual picks frames (k - 1) / 2 steps into the stream, the strided convolution k - 1
        # steps in; both fire every `stride` steps, so they only meet when (k - 1) / 2 is a multiple of it
        if res == "conv" and stride > 1 and half % stride:
            raise SpecError("strides", f"block {i}: a temporal stride of {stride} with kernel {cfg.temporal_kernel} "
                            f"has no continual version ((k - 1) / 2 = {half} must be a multiple of the stride)")
    modules: OrderedDict[str, nn.Module] = OrderedDict(data_bn=FrameWise(copy.deepcopy(model.data_bn)))
    for i, block in enumerate(model.blocks):
        modules[f"block{i}"] = _continual_block(block)
    modules["pool"] = co.AdaptiveAvgPool2d((1, 1), kernel_size=pooled)
    modules["head"] = ContinualHead(copy.deepcopy(model.head))
    return CoGCN(modules, cfg, clip_len).train(model.training)


def state_tensors(model: co.CoModule) -> list[tuple[str, Tensor]]:
    """The current state tensors of a continual model in a fixed order (module order, then field order).

    Every stateful module of continual-inference keeps its state in the buffers ``state_buffer``,
    ``state_index`` and (convolutions, pools) ``stride_index``, filled on the first step and cleared by
    ``clean_state()``; names are ``"<module>.<buffer>"``. The same order (depth-first over modules) is
    the one ``co.onnx.OnnxWrapper`` uses for ``_forward_step(x, state)`` with explicit state inputs and
    outputs.
    """
    out = []
    for name, module in model.named_modules():
        if isinstance(module, co.CoModule) and hasattr(module, "state_buffer"):
            for field in ("state_buffer", "state_index", "stride_index"):
                if hasattr(module, field):
                    out.append((f"{name}.{field}", getattr(module, field)))
    return out


def state_floats(model: CoGCN, batch: int = 1) -> int:
    """Floats of state a continual model holds for ``batch`` samples once every module is initialised.

    Counts what the library stores (measured on a copy stepped ``delay + 1`` zero frames). Note that
    ``co.Conv2d`` 1.2.4 keeps ``k - 1`` slots of ``(C_out, k - 1, V)`` partial sums, ``(k - 1)^2 C V``
    per layer and sample, not the ``(k - 1) C V`` of D3.2 Eq. 5.
    """
    probe = copy.deepcopy(model).eval()
    probe.clean_state()
    cfg = model.cfg
    frame = torch.zeros(batch, cfg.in_channels, NUM_JOINTS, cfg.num_person)
    with torch.no_grad():
        for _ in range(int(probe.delay) + 1):
            probe.forward_step(frame)
    return sum(t.numel() for _, t in state_tensors(probe) if t.is_floating_point())
