"""Squeeze-and-excitation (SE) and CBAM attention with the "learning to ignore" variants (OpenDR D3.2 §6.1).

Standard attention rescales features by a mask in [0, 1]: ``F' = F * sigmoid(z)``, where ``z`` are the
pre-sigmoid logits of the attention branch. The ignoring variants (Laakom, Chumachenko et al., BMVC 2021)
learn what to ignore and invert it with a decreasing transform T (reference §7.2):

* ``"plain"``: ``sigmoid(z)`` (standard SE / CBAM);
* ``"ign1"``: ``1 - alpha * sigmoid(z)``; the mask lies in ``(1 - alpha, 1)`` (alpha = 0 is the identity);
* ``"ign2"``: ``sigmoid(1 / sigmoid(z))``; the mask lies in ``(sigmoid(1), 1) = (0.731, 1)``;
* ``"ign3"``: ``sigmoid(-z)`` (T acts on the pre-sigmoid logits).

``ign1`` with alpha = 1 equals ``ign3`` (``1 - sigmoid(z) = sigmoid(-z)``), and ``ign3`` equals the plain
module with the last layer's weight and bias negated; ignoring adds no parameters (reference §0.3, §7.2).

Shapes: both modules take features ``(N, C, *S)`` for any spatial shape ``S``: ``(N, C, H, W)`` images or
``(N, C, T, H, W)`` video features, and return the same shape. ``scope`` says what the channel statistics
are pooled over for video: ``"frame"`` pools each frame over (H, W) (the per-frame SE of CoX3D; a continual
step then needs no state), ``"clip"`` pools over (T, H, W) (the SE of the clip X3D). For images both pool
over (H, W). CBAM's spatial mask always acts per frame (a 2D k x k convolution over the channel mean and max).

Continual inference (:class:`CoAttention`) comes from the ``continual-inference`` package where it can: the
temporal part of a ``"clip"``-scope pool is ``co.AdaptiveAvgPool3d`` / ``co.AdaptiveMaxPool3d`` over a
window of the last ``window`` frames (as the reference CoX3D's CoSe with ``scope="clip"``). Written here:
the ignoring transforms, the SE / CBAM modules, and the small CoModule that feeds a frame and the windowed
statistics into the same attention computation as the clip module.
"""

from __future__ import annotations

import copy

import continual as co
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hcgym.errors import SpecError

MODES = ("plain", "ign1", "ign2", "ign3")
SCOPES = ("frame", "clip")


def check_mode(mode: str, alpha: float, field: str = "mode") -> None:
    """Raise :class:`SpecError` unless ``mode`` is one of :data:`MODES` and ``alpha`` lies in [0, 1]."""
    if mode not in MODES:
        raise SpecError(field, f"unknown attention mode {mode!r} (allowed: {', '.join(MODES)})")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise SpecError("alpha", f"expected a value in [0, 1], got {alpha}")


def ignore_mask(logits: Tensor, mode: str = "plain", alpha: float = 1.0) -> Tensor:
    """The attention mask of pre-sigmoid ``logits`` (any shape) under ``mode`` (see the module docstring)."""
    if mode == "plain":
        return torch.sigmoid(logits)
    if mode == "ign1":
        return 1.0 - alpha * torch.sigmoid(logits)
    if mode == "ign2":
        return torch.sigmoid(1.0 / torch.sigmoid(logits))
    if mode == "ign3":
        return torch.sigmoid(-logits)
    raise SpecError("mode", f"unknown attention mode {mode!r} (allowed: {', '.join(MODES)})")


def _pool_dims(x: Tensor, scope: str) -> tuple[int, ...]:
    """The dims the channel statistics pool over: all but (N, C), and also not T for per-frame video."""
    if scope == "frame" and x.dim() == 5:
        return (3, 4)
    return tuple(range(2, x.dim()))


def _channels_last(layer: nn.Module, x: Tensor) -> Tensor:
    """Apply a ``nn.Linear`` over dim 1 of ``(N, C, *S)``."""
    last = x.dim() - 1  # a positive dim: ONNX export writes a negative one into Transpose's perm
    return layer(x.transpose(1, last)).transpose(1, last)


class _ChannelAttention(nn.Module):
    """Shared parts of SE and CBAM: the two-layer channel MLP, the mode and the pooling scope.

    Subclasses define :meth:`pooled` (the channel statistics of ``x``, each ``(N, C, *1)`` with kept dims)
    and :meth:`attend` (the output given ``x`` and those statistics), so a continual step can supply the
    statistics from windowed continual pools instead.
    """

    #: names of the temporal reductions of :meth:`pooled`, in order ("avg", "max")
    reductions: tuple[str, ...] = ("avg",)

    def __init__(self, channels: int, reduction: int = 4, mode: str = "plain", alpha: float = 1.0,
                 scope: str = "frame", min_hidden: int = 4) -> None:
        super().__init__()
        if channels < 1:
            raise SpecError("channels", f"expected >= 1, got {channels}")
        if reduction < 1:
            raise SpecError("reduction", f"expected >= 1, got {reduction}")
        check_mode(mode, alpha)
        if scope not in SCOPES:
            raise SpecError("scope", f"unknown pooling scope {scope!r} (allowed: {', '.join(SCOPES)})")
        hidden = max(min_hidden, channels // reduction)
        self.channels, self.mode, self.alpha, self.scope = channels, mode, float(alpha), scope
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def channel_logits(self, stat: Tensor) -> Tensor:
        """``fc2(relu(fc1(stat)))`` over dim 1 of a pooled statistic ``(N, C, *1)``."""
        return _channels_last(self.fc2, F.relu(_channels_last(self.fc1, stat)))

    def pooled(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def attend(self, x: Tensor, pooled: list[Tensor]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *S)`` -> ``(N, C, *S)``."""
        return self.attend(x, self.pooled(x))

    def extra_repr(self) -> str:
        return f"mode={self.mode}, alpha={self.alpha}, scope={self.scope}"


class SE(_ChannelAttention):
    """Squeeze-and-excitation: ``x * T(fc2(relu(fc1(GAP(x)))))`` with T given by ``mode``.

    Args:
        channels: C of the input ``(N, C, *S)``.
        reduction: hidden width ``max(min_hidden, C // reduction)``.
        mode: ``"plain"``, ``"ign1"``, ``"ign2"`` or ``"ign3"``.
        alpha: the ``ign1`` factor in [0, 1].
        scope: ``"frame"`` (pool (H, W) per frame of 5D input) or ``"clip"`` (pool (T, H, W)).
    """

    def pooled(self, x: Tensor) -> list[Tensor]:
        return [x.mean(_pool_dims(x, self.scope), keepdim=True)]

    def attend(self, x: Tensor, pooled: list[Tensor]) -> Tensor:
        return x * ignore_mask(self.channel_logits(pooled[0]), self.mode, self.alpha)

    def mask(self, x: Tensor) -> Tensor:
        """The channel mask ``(N, C, *1)`` (T kept for ``"frame"`` scope on video), values as per ``mode``."""
        return ignore_mask(self.channel_logits(self.pooled(x)[0]), self.mode, self.alpha)


class CBAM(_ChannelAttention):
    """CBAM (channel then spatial attention) with T given by ``mode`` applied to both masks (reference §7.2).

    Channel mask ``T(MLP(GAP(x)) + MLP(GMP(x)))`` with one shared MLP; spatial mask
    ``T(conv_kxk([mean_c(y); max_c(y)]))`` on the channel-attended ``y``, computed per frame for video.

    Args:
        channels, reduction, mode, alpha, scope: as :class:`SE`.
        kernel_size: the spatial convolution's size (7 in CBAM).
    """

    reductions = ("avg", "max")

    def __init__(self, channels: int, reduction: int = 4, mode: str = "plain", alpha: float = 1.0,
                 scope: str = "frame", kernel_size: int = 7, min_hidden: int = 4) -> None:
        super().__init__(channels, reduction, mode, alpha, scope, min_hidden)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise SpecError("kernel_size", f"expected an odd size >= 1, got {kernel_size}")
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def pooled(self, x: Tensor) -> list[Tensor]:
        dims = _pool_dims(x, self.scope)
        return [x.mean(dims, keepdim=True), x.amax(dims, keepdim=True)]

    def channel_mask(self, pooled: list[Tensor]) -> Tensor:
        """``T(MLP(avg) + MLP(max))``, shape of the statistics."""
        return ignore_mask(self.channel_logits(pooled[0]) + self.channel_logits(pooled[1]), self.mode, self.alpha)

    def spatial_mask(self, y: Tensor) -> Tensor:
        """``(N, 1, *S)`` mask from the channel mean and max of ``y`` ``(N, C, *S)``, per frame for 5D."""
        s = torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], dim=1)
        if s.dim() == 5:
            n, _, t, h, w = s.shape
            z = self.spatial(s.transpose(1, 2).reshape(n * t, 2, h, w)).reshape(n, t, 1, h, w).transpose(1, 2)
        else:
            z = self.spatial(s)
        return ignore_mask(z, self.mode, self.alpha)

    def attend(self, x: Tensor, pooled: list[Tensor]) -> Tensor:
        y = x * self.channel_mask(pooled)
        return y * self.spatial_mask(y)

    def masks(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(channel mask, spatial mask) of ``x``."""
        ch = self.channel_mask(self.pooled(x))
        return ch, self.spatial_mask(x * ch)


class CoAttention(co.CoModule, nn.Module):
    """Continual (frame by frame) version of an :class:`SE` or :class:`CBAM` module; weights copied.

    ``forward_step`` takes a frame ``(N, C, H, W)`` and returns the attended frame of the same shape;
    ``forward`` is the clip module's forward on ``(N, C, T, H, W)``.

    * ``"frame"`` scope: stateless and exact: step t returns ``clip(x)[:, :, t]``.
    * ``"clip"`` scope: the temporal part of each pool is a continual pool over the last ``window`` frames
      (``co.AdaptiveAvgPool3d`` / ``co.AdaptiveMaxPool3d``), and step t attends frame t with them, so from
      step ``window - 1`` on step t returns ``clip(x[:, :, t - window + 1 : t + 1])[:, :, -1]`` (the last
      frame of the clip module on the window ending at t, as the reference CoSe). The output of step t
      belongs to frame t (``delay`` 0); the first ``window - 1`` steps see the pools' initial fill
      (``temporal_fill``: ``"zeros"`` or ``"replicate"``), the transient of §1.2.
    """

    def __init__(self, module: SE | CBAM, window: int = 1, temporal_fill: str = "zeros") -> None:
        nn.Module.__init__(self)
        if window < 1:
            raise SpecError("window", f"expected >= 1, got {window}")
        if temporal_fill not in ("zeros", "replicate"):
            raise SpecError("temporal_fill", f"unknown fill {temporal_fill!r} (allowed: zeros, replicate)")
        self.module = copy.deepcopy(module)
        self.window = window if module.scope == "clip" else 1
        pools = []
        if module.scope == "clip":
            for kind in module.reductions:
                cls = co.AdaptiveAvgPool3d if kind == "avg" else co.AdaptiveMaxPool3d
                fill = "neg_inf" if (kind == "max" and temporal_fill == "zeros") else temporal_fill
                pools.append(cls((1, 1, 1), kernel_size=self.window, padding=self.window - 1, temporal_fill=fill))
        self.pools = nn.ModuleList(pools)

    # ------------------------------------------------------------------ CoModule interface
    @property
    def _state_shape(self) -> list:
        return [p._state_shape for p in self.pools]

    @property
    def _dynamic_state_inds(self) -> list:
        return [p._dynamic_state_inds for p in self.pools]

    @property
    def receptive_field(self) -> int:
        return self.window

    @property
    def padding(self) -> tuple[int, ...]:
        return (self.window - 1,)

    @property
    def stride(self) -> tuple[int, ...]:
        return (1,)

    @property
    def delay(self) -> int:
        return 0

    def get_state(self):
        states = [p.get_state() for p in self.pools]
        if not states or any(s is None for s in states):
            return None
        return states

    def set_state(self, state) -> None:
        for p, s in zip(self.pools, state):
            p.set_state(s)

    def clean_state(self) -> None:
        for p in self.pools:
            p.clean_state()

    def _forward_step(self, input: Tensor, prev_state=None):
        frame = input.unsqueeze(2)
        if len(self.pools) == 0:
            return self.module(frame).squeeze(2), prev_state
        prev_state = prev_state or [None] * len(self.pools)
        stats, next_state = [], []
        for pool, state in zip(self.pools, prev_state):
            stat, state = pool._forward_step(input, state)
            stats.append(stat.unsqueeze(2))
            next_state.append(state)
        return self.module.attend(frame, stats).squeeze(2), next_state

    def forward_step(self, input: Tensor, update_state: bool = True) -> Tensor:
        """One frame ``(N, C, H, W)`` -> the attended frame; the state advances unless ``update_state`` is False."""
        state = self.get_state()
        if state is not None and not update_state:
            state = [(s[0].clone(), *s[1:]) for s in state]
        output, state = self._forward_step(input, state)
        if update_state and state is not None:
            self.set_state(state)
        return output

    def forward_steps(self, input: Tensor, pad_end: bool = False, update_state: bool = True) -> Tensor:
        """Steps over ``(N, C, T, H, W)``; returns the T attended frames stacked on dim 2 (no end padding)."""
        if not update_state:
            saved = self.get_state()
            saved = None if saved is None else [(s[0].clone(), *s[1:]) for s in saved]
        out = torch.stack([self.forward_step(input[:, :, t]) for t in range(input.shape[2])], dim=2)
        if not update_state and saved is None:
            self.clean_state()
        elif not update_state:
            self.set_state(saved)
        return out

    def forward(self, input: Tensor) -> Tensor:
        """The clip module's forward on ``(N, C, T, H, W)``."""
        return self.module(input)
