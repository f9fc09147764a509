"""A small X3D-like 3D CNN (clip model) and its continual CoX3D (OpenDR D3.2 §3.1, Co3D; reference §1.2, §1.5).

Clip model (:func:`build_x3d`, plain ``torch.nn`` modules, countable by ptflops / fvcore and exportable):

* stem: 1x3x3 conv (spatial stride 2), then a depthwise ``k_s``x1x1 temporal conv (``k_s`` = 5), BN, ReLU;
* stages of X3D blocks: 1x1x1 expand, BN, ReLU, ``k_t``x3x3 depthwise (spatial stride 2 in a stage's first
  block), BN, attention (SE / CBAM with the "learning to ignore" modes, :mod:`.attention`), SiLU, 1x1x1
  project, BN, plus the shortcut (identity or strided 1x1x1 conv + BN), ReLU;
* head: 1x1x1 conv, BN, ReLU, global average pool over (T, H, W), two 1x1x1 "fc" convs.

Input ``(N, 3, T, H, W)`` (normalised RGB), output ``(N, num_classes)`` logits. With
``temporal_padding=False`` (the continual-compatible variant) no conv pads in time: the trunk maps T frames
to ``T - (r - 1)`` where ``r`` is the trunk's temporal receptive field (:attr:`X3DConfig.trunk_receptive_field`),
each block's shortcut is cropped to the centre frames its depthwise conv saw, and the global pool averages
the remaining ``pool_size`` frames. With ``temporal_padding=True`` every temporal conv pads ``(k - 1) / 2``
(the usual X3D); converting such a model to continual drops the padding, which changes its outputs (§1.2).

Continual model (:func:`to_continual`): a ``co.Sequential`` that takes one frame ``(N, 3, H, W)`` per
``forward_step`` and returns ``(N, num_classes)`` logits, or ``None`` during the first ``delay`` steps. Taken
from the ``continual-inference`` package: ``co.Conv3d`` (continual convolution with its partial-sum state),
``co.AdaptiveAvgPool3d`` (the continual global pool over the last ``pool_size`` frames), ``co.Delay`` (the
delayed, centre-cropped shortcut), ``co.BroadcastReduce`` (the residual sum), ``co.Sequential``,
``co.Lambda``, ``co.forward_stepping`` (per-frame BN and activations), state get / set / ``clean_state``
(reset) and the state layout its ONNX wrapper (``co.onnx.OnnxWrapper``) flattens. Written here: the
network, the config, the layer-by-layer conversion (weights copied), the continual attention
(:class:`.attention.CoAttention`) and the state-size accounting (:func:`state_floats`,
:func:`expected_state_floats`, Eq. 5, 8, 9 of the paper).

Exactness: stepping frame t (t >= delay) returns the clip model's output on frames ``[t - delay, t]``, i.e.
a clip of ``delay + 1 = r - 1 + pool_size`` frames, for models without temporal padding and with
``attention_scope="frame"`` (the per-frame SE of CoX3D). ``pool_size`` larger than the trained one is the
paper's pool-size extension: the continual model then equals the clip model on a longer clip.
``attention_scope="clip"`` keeps the temporal part of the SE pool (a continual window, :class:`CoAttention`);
the continual network then approximates the clip network, as the paper says (§1.2 "SE blocks").
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields

import continual as co
import torch
from torch import Tensor, nn

from hcgym.errors import SpecError
from hcgym.perception.action.attention import CBAM, SCOPES, SE, CoAttention, check_mode

ATTENTIONS = ("se", "cbam", "none")


@dataclass(frozen=True)
class X3DConfig:
    """Size and options of the X3D-like network.

    Attributes:
        num_classes: number of output logits.
        frames: clip length T the clip model is trained on.
        size: frame height and width in pixels.
        stem_width: channels of the stem.
        widths: output channels of each stage.
        depths: blocks per stage (same length as ``widths``).
        expansion: inner (depthwise) width of a block = round(expansion x stage width).
        stem_temporal_kernel: the stem's depthwise temporal kernel (odd).
        temporal_kernel: temporal size of each block's depthwise conv (odd; 1 makes the block per-frame).
        head_width: hidden width of the two-layer head.
        attention: ``"se"``, ``"cbam"`` or ``"none"`` in every block.
        attention_mode: ``"plain"``, ``"ign1"``, ``"ign2"`` or ``"ign3"`` (learning to ignore).
        alpha: the ``ign1`` factor in [0, 1].
        attention_reduction: channel reduction of the attention MLP.
        attention_scope: ``"frame"`` (per-frame pool; continual exact) or ``"clip"`` (pool over T too).
        temporal_padding: pad temporal convs ``(k - 1) / 2`` (X3D as usual; continual is then approximate).
    """

    num_classes: int = 10
    frames: int = 16
    size: int = 112
    stem_width: int = 8
    widths: tuple[int, ...] = (8, 16, 32, 48)
    depths: tuple[int, ...] = (1, 1, 1, 1)
    expansion: float = 2.25
    stem_temporal_kernel: int = 5
    temporal_kernel: int = 3
    head_width: int = 64
    attention: str = "se"
    attention_mode: str = "plain"
    alpha: float = 1.0
    attention_reduction: int = 4
    attention_scope: str = "frame"
    temporal_padding: bool = False

    @property
    def trunk_receptive_field(self) -> int:
        """Temporal receptive field (frames) of stem + stages: ``1 + (k_s - 1) + sum over blocks (k_t - 1)``."""
        return 1 + (self.stem_temporal_kernel - 1) + sum(self.depths) * (self.temporal_kernel - 1)

    @property
    def pool_size(self) -> int:
        """Frames the global pool averages for a ``frames``-long clip (its continual window by default)."""
        return self.frames if self.temporal_padding else self.frames - self.trunk_receptive_field + 1

    def clip_frames(self, pool_size: int) -> int:
        """Clip length the continual model with ``pool_size`` equals: ``r - 1 + pool_size``."""
        return self.trunk_receptive_field - 1 + pool_size

    def check(self) -> X3DConfig:
        """Validate every field; raise :class:`SpecError` naming the first bad one. Returns ``self``."""
        for name in ("num_classes", "frames", "size", "stem_width", "head_width", "attention_reduction"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(name, f"expected a positive integer, got {value!r}")
        if self.size < 8:
            raise SpecError("size", f"expected >= 8 pixels, got {self.size}")
        for name in ("widths", "depths"):
            value = getattr(self, name)
            if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
                raise SpecError(name, f"expected a non-empty list of positive integers, got {value!r}")
        if len(self.widths) != len(self.depths):
            raise SpecError("depths", f"expected one depth per stage width ({len(self.widths)}), got {len(self.depths)}")
        if not isinstance(self.expansion, (int, float)) or self.expansion < 1:
            raise SpecError("expansion", f"expected a number >= 1, got {self.expansion!r}")
        for name in ("stem_temporal_kernel", "temporal_kernel"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or value % 2 == 0:
                raise SpecError(name, f"expected an odd positive integer, got {value!r}")
        if self.attention not in ATTENTIONS:
            raise SpecError("attention", f"unknown attention {self.attention!r} (allowed: {', '.join(ATTENTIONS)})")
        check_mode(self.attention_mode, self.alpha, field="attention_mode")
        if self.attention_scope not in SCOPES:
            raise SpecError("attention_scope", f"unknown scope {self.attention_scope!r} (allowed: {', '.join(SCOPES)})")
        if not isinstance(self.temporal_padding, bool):
            raise SpecError("temporal_padding", f"expected true or false, got {self.temporal_padding!r}")
        if self.pool_size < 1:
            raise SpecError("frames", f"without temporal padding the trunk's receptive field is "
                            f"{self.trunk_receptive_field} frames; expected frames >= that, got {self.frames}")
        return self

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> X3DConfig:
        """Inverse of :meth:`to_dict`; unknown keys and bad values raise :class:`SpecError`."""
        if not isinstance(data, dict):
            raise SpecError("x3d", f"expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(unknown[0], f"unknown X3D option (allowed: {', '.join(sorted(known))})")
        d = dict(data)
        for name in ("widths", "depths"):
            if name in d:
                if not isinstance(d[name], (list, tuple)):
                    raise SpecError(name, f"expected a list of positive integers, got {d[name]!r}")
                d[name] = tuple(d[name])
        return cls(**d).check()


# ---------------------------------------------------------------------------------------------- clip model
def _temporal_pad(kernel: int, padded: bool) -> int:
    return (kernel - 1) // 2 if padded else 0


def _attention(cfg: X3DConfig, channels: int) -> nn.Module:
    if cfg.attention == "none":
        return nn.Identity()
    cls = SE if cfg.attention == "se" else CBAM
    return cls(channels, cfg.attention_reduction, cfg.attention_mode, cfg.alpha, cfg.attention_scope)


class X3DBlock(nn.Module):
    """X3D bottleneck block: ``(N, C_in, T, H, W)`` -> ``(N, C_out, T - 2c, H / s, W / s)``, where ``c`` is
    the shortcut's centre crop ``(k_t - 1) / 2`` without temporal padding (0 with it)."""

    def __init__(self, c_in: int, c_out: int, inner: int, stride: int, cfg: X3DConfig) -> None:
        super().__init__()
        k = cfg.temporal_kernel
        self.branch = nn.Sequential(OrderedDict([
            ("conv_a", nn.Conv3d(c_in, inner, 1, bias=False)),
            ("bn_a", nn.BatchNorm3d(inner)),
            ("act_a", nn.ReLU()),
            ("conv_b", nn.Conv3d(inner, inner, (k, 3, 3), stride=(1, stride, stride),
                                 padding=(_temporal_pad(k, cfg.temporal_padding), 1, 1), groups=inner, bias=False)),
            ("bn_b", nn.BatchNorm3d(inner)),
            ("attention", _attention(cfg, inner)),
            ("act_b", nn.SiLU()),
            ("conv_c", nn.Conv3d(inner, c_out, 1, bias=False)),
            ("bn_c", nn.BatchNorm3d(c_out)),
        ]))
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(OrderedDict([
                ("conv", nn.Conv3d(c_in, c_out, 1, stride=(1, stride, stride), bias=False)),
                ("bn", nn.BatchNorm3d(c_out)),
            ]))
        self.crop = 0 if cfg.temporal_padding else (k - 1) // 2
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        r = x if self.shortcut is None else self.shortcut(x)
        if self.crop:
            r = r[:, :, self.crop: r.shape[2] - self.crop]
        return self.act(r + self.branch(x))


class X3D(nn.Module):
    """The clip model: ``(N, 3, T, H, W)`` -> ``(N, num_classes)``; see the module docstring."""

    def __init__(self, config: X3DConfig) -> None:
        super().__init__()
        cfg = self.config = config.check()
        k = cfg.stem_temporal_kernel
        self.stem = nn.Sequential(OrderedDict([
            ("conv_s", nn.Conv3d(3, cfg.stem_width, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)),
            ("conv_t", nn.Conv3d(cfg.stem_width, cfg.stem_width, (k, 1, 1), padding=(_temporal_pad(k, cfg.temporal_padding), 0, 0),
                                 groups=cfg.stem_width, bias=False)),
            ("bn", nn.BatchNorm3d(cfg.stem_width)),
            ("act", nn.ReLU()),
        ]))
        self.stages = nn.ModuleList()
        c_in = cfg.stem_width
        for width, depth in zip(cfg.widths, cfg.depths):
            inner = max(1, round(cfg.expansion * width))
            blocks = [X3DBlock(c_in if i == 0 else width, width, inner, 2 if i == 0 else 1, cfg) for i in range(depth)]
            self.stages.append(nn.Sequential(*blocks))
            c_in = width
        head_c = max(1, round(cfg.expansion * cfg.widths[-1]))
        self.head = nn.Sequential(OrderedDict([
            ("conv5", nn.Conv3d(c_in, head_c, 1, bias=False)),
            ("bn5", nn.BatchNorm3d(head_c)),
            ("act5", nn.ReLU()),
            ("pool", nn.AdaptiveAvgPool3d(1)),
            ("fc1", nn.Conv3d(head_c, cfg.head_width, 1)),
            ("act_fc", nn.ReLU()),
            ("fc2", nn.Conv3d(cfg.head_width, cfg.num_classes, 1)),
        ]))

    def features(self, x: Tensor) -> Tensor:
        """Stem and stages: ``(N, 3, T, H, W)`` -> ``(N, widths[-1], T', H', W')``."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).flatten(1)


def build_x3d(config: X3DConfig | None = None) -> X3D:
    """The clip model for ``config`` (default :class:`X3DConfig`), randomly initialised by torch's RNG."""
    return X3D(config or X3DConfig())


# ---------------------------------------------------------------------------------------------- continual
def _flatten_logits(x: Tensor) -> Tensor:
    return x.flatten(1)


def _co_conv(conv: nn.Conv3d) -> co.Conv3d:
    """``co.Conv3d`` with the weights copied and the temporal padding dropped (continual CNNs do not pad)."""
    return co.Conv3d.build_from(conv, padding=(0, *conv.padding[1:]))


def _co_layer(m: nn.Module, window: int, temporal_fill: str) -> nn.Module:
    if isinstance(m, nn.Conv3d):
        return _co_conv(m)
    if isinstance(m, (SE, CBAM)):
        return CoAttention(m, window, temporal_fill)
    if isinstance(m, nn.Identity):
        return co.Identity()
    if isinstance(m, (nn.BatchNorm3d, nn.ReLU, nn.SiLU)):
        return co.forward_stepping(copy.deepcopy(m))
    raise SpecError("model", f"no continual conversion for layer {type(m).__name__}")


def _co_sequential(seq: nn.Sequential, window: int, temporal_fill: str) -> co.Sequential:
    return co.Sequential(OrderedDict((name, _co_layer(m, window, temporal_fill)) for name, m in seq.named_children()))


def continual_block(block: X3DBlock, frames_in: int, padded: bool = False, temporal_fill: str = "zeros") -> co.Sequential:
    """The continual version of one :class:`X3DBlock` (weights copied): ``co.BroadcastReduce`` of the branch
    and the shortcut delayed by ``(k_t - 1) / 2`` frames (centre-cropped in clip mode), then ReLU.
    ``frames_in`` is the clip length entering the block (it sets the window of ``"clip"``-scope attention)
    and ``padded`` whether the clip model pads in time. Frame by frame it equals the unpadded clip block
    after ``k_t - 1`` steps."""
    k = block.branch.conv_b.kernel_size[0]
    window = frames_in if padded else frames_in - (k - 1)  # frames the clip attention pools over
    crop = co.Delay((k - 1) // 2, auto_shrink="centered")
    if block.shortcut is None:
        shortcut: nn.Module = crop
    else:
        shortcut = co.Sequential(OrderedDict([("conv", _co_conv(block.shortcut.conv)),
                                              ("bn", _co_layer(block.shortcut.bn, 1, temporal_fill)),
                                              ("crop", crop)]))
    residual = co.BroadcastReduce(OrderedDict([("shortcut", shortcut),
                                               ("branch", _co_sequential(block.branch, window, temporal_fill))]),
                                  reduce="sum", auto_delay=False)
    return co.Sequential(OrderedDict([("residual", residual), ("act", _co_layer(block.act, 1, temporal_fill))]))


def to_continual(model: X3D, pool_size: int | None = None, temporal_fill: str = "zeros") -> co.Sequential:
    """CoX3D from a clip :class:`X3D` (weights and BN statistics copied; the clip model is not changed).

    Args:
        model: the clip model (its ``config`` says the layout).
        pool_size: frames of the continual global average pool (default: ``model.config.pool_size``, which
            makes the continual model equal the clip model on ``config.frames``-frame clips). A larger value
            extends the temporal receptive field at inference (the paper's pool-size experiment).
        temporal_fill: initial fill of the ``"clip"``-scope attention windows (``"zeros"`` or ``"replicate"``).

    Returns:
        A ``co.Sequential`` (children ``stem``, ``stage1``..., ``head``): ``forward_step((N, 3, H, W))`` ->
        ``(N, num_classes)`` or ``None`` for the first ``.delay`` steps; ``forward((N, 3, T, H, W))`` is the clip
        forward of the unpadded network; ``clean_state()`` resets it. The model is in eval mode.
    """
    cfg = model.config
    pool_size = cfg.pool_size if pool_size is None else pool_size
    if not isinstance(pool_size, int) or pool_size < 1:
        raise SpecError("pool_size", f"expected a positive integer, got {pool_size!r}")
    if temporal_fill not in ("zeros", "replicate"):
        raise SpecError("temporal_fill", f"unknown fill {temporal_fill!r} (allowed: zeros, replicate)")
    parts: list[tuple[str, nn.Module]] = [("stem", _co_sequential(model.stem, 1, temporal_fill))]
    frames = cfg.frames if cfg.temporal_padding else cfg.frames - (cfg.stem_temporal_kernel - 1)
    for i, stage in enumerate(model.stages):
        blocks = []
        for j, block in enumerate(stage):
            blocks.append((str(j), continual_block(block, frames, cfg.temporal_padding, temporal_fill)))
            if not cfg.temporal_padding:
                frames -= cfg.temporal_kernel - 1
        parts.append((f"stage{i + 1}", co.Sequential(OrderedDict(blocks))))
    head = OrderedDict()
    for name, m in model.head.named_children():
        if isinstance(m, nn.AdaptiveAvgPool3d):
            head[name] = co.AdaptiveAvgPool3d.build_from(m, kernel_size=pool_size)
        else:
            head[name] = _co_layer(m, 1, temporal_fill)
    head["flatten"] = co.Lambda(_flatten_logits, forward_only_fn=_flatten_logits)
    parts.append(("head", co.Sequential(head)))
    net = co.Sequential(OrderedDict(parts))
    net.pool_size = pool_size
    return net.eval()


# ---------------------------------------------------------------------------------------------- state
def _leaf_comodules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Continual modules holding their own state (no continual children), in ``co.onnx`` state order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, co.CoModule) and not any(isinstance(d, co.CoModule) for d in list(m.modules())[1:])]


def state_tensors(model: nn.Module) -> list[tuple[str, Tensor]]:
    """``(name, tensor)`` of every state tensor of a continual model, in the order ``co.onnx.OnnxWrapper``
    flattens ``model._state_shape`` (value buffers and their int64 ring indices). Empty before the first step
    or after ``clean_state()``: a state exists once a frame has initialised it."""
    out = []
    for name, m in _leaf_comodules(model):
        state = m.get_state()
        if state is None:
            continue
        for i, t in enumerate(co.utils.flatten(state, remove_none=False)):
            out.append((f"{name}.{i}", t))
    return out


def state_floats(model: nn.Module, minimal: bool = False) -> int:
    """Floats held in the state of a stepped continual model (all batch items).

    ``minimal=False`` counts the buffers ``continual-inference`` holds; ``minimal=True`` counts what the
    paper's equations need: Eq. 5 ``(k_T - 1) C H W`` per continual conv (the library keeps ``k_T - 1``
    partial frames per slot, ``(k_T - 1)^2 C H W``), Eq. 9 ``(k_T - 1) C`` per temporal pool (the library
    keeps ``k_T``), Eq. 8 ``d C H W`` per delay (the same in both).
    """
    total = 0
    for _, m in _leaf_comodules(model):
        state = m.get_state()
        if state is None:
            continue
        buffer = state[0]
        n = buffer.numel()
        if minimal and isinstance(m, co.Conv3d):
            n //= m.kernel_size[0] - 1
        elif minimal and isinstance(m, (co.AdaptiveAvgPool3d, co.AdaptiveMaxPool3d)):
            n = n * (len(buffer) - 1) // len(buffer)
        total += n
    return total


def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def expected_state_floats(config: X3DConfig, pool_size: int | None = None, batch: int = 1) -> int:
    """State floats of CoX3D from the paper's equations (Eq. 5 convs, Eq. 8 shortcut delays, Eq. 9 pools),
    computed from ``config`` alone; equals ``state_floats(to_continual(...), minimal=True)`` after a step."""
    cfg = config.check()
    pool_size = cfg.pool_size if pool_size is None else pool_size
    h = _out(cfg.size, 3, 2, 1)
    total = (cfg.stem_temporal_kernel - 1) * cfg.stem_width * h * h
    frames = cfg.frames if cfg.temporal_padding else cfg.frames - (cfg.stem_temporal_kernel - 1)
    k = cfg.temporal_kernel
    pools = 2 if cfg.attention == "cbam" else (1 if cfg.attention == "se" else 0)
    for width, depth in zip(cfg.widths, cfg.depths):
        inner = max(1, round(cfg.expansion * width))
        for i in range(depth):
            h_out = _out(h, 3, 2 if i == 0 else 1, 1)
            total += (k - 1) * inner * h_out * h_out  # depthwise conv, Eq. 5
            total += (k - 1) // 2 * width * h_out * h_out  # centred shortcut delay, Eq. 8
            window = frames if cfg.temporal_padding else frames - (k - 1)
            if cfg.attention_scope == "clip":
                total += pools * (window - 1) * inner  # windowed attention pools, Eq. 9
            if not cfg.temporal_padding:
                frames -= k - 1
            h = h_out
    total += (pool_size - 1) * max(1, round(cfg.expansion * cfg.widths[-1]))  # global pool, Eq. 9
    return total * batch


@torch.no_grad()
def step_clip(model: co.Sequential, video: Tensor) -> list[Tensor | None]:
    """Step a continual model through ``video`` ``(N, 3, T, H, W)`` frame by frame; the T step outputs."""
    return [model.forward_step(video[:, :, t]) for t in range(video.shape[2])]
