"""Monte Carlo dropout with the dropout masks as inputs: one network for PyTorch and ONNX Runtime alike.

:class:`ExplicitDropoutNet` wraps an :class:`~hcgym.perception.expression.models.ExpressionNet` (eval mode)
and replaces each of its dropout layers by a multiplication with a mask given to ``forward``:
``forward(x, *masks)`` with landmarks ``x`` (B, T, V, 2) pixels and one float32 mask per dropout layer, of
shape ``(B, *mask_shapes[i])`` (the shape of the features entering that layer, e.g. ``(B, C_i, T_i, P)``),
returns softmax probabilities (B, num_classes). A mask of ones is the deterministic pass (eval-mode
dropout); a mask of ``keep / (1 - p)`` with ``keep`` Bernoulli(1 - p) is one stochastic pass, as
``nn.Dropout`` in training mode computes it. Everything else (batch norm with its running statistics) stays
in eval mode, as :func:`~hcgym.perception.expression.mcdropout.mc_predict` runs it.

Because the masks are inputs, an ONNX export of this network (traced, opset 17) reproduces every pass of
the PyTorch one exactly: the caller draws the masks (:func:`draw_masks`, from a numpy generator) and feeds
the same ones to either runtime. ``ExplicitDropoutNet(model, frames).mask_shapes`` gives the shapes for
clips of ``frames`` frames and ``rates`` the drop probability of each layer.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from hcgym.errors import SpecError

#: Masks are drawn as uint32 and compared with ``round(p * 2**32)``: a drop probability exact to 2.3e-10.
_SCALE = 2 ** 32


class _MaskSlot(nn.Module):
    """Where a dropout layer was: multiplies by the mask set for the current forward (none: identity)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)
        self.mask: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        return x if self.mask is None else x * self.mask


class ExplicitDropoutNet(nn.Module):
    """An expression network whose dropout masks are inputs (see the module docstring).

    Args:
        model: the trained network (copied; the original is left as it is).
        frames: clip length ``T`` the mask shapes are computed for.
    Attributes:
        mask_shapes: per dropout layer, the mask shape without the batch axis.
        rates: per dropout layer, its drop probability ``p``.
    """

    def __init__(self, model: nn.Module, frames: int) -> None:
        super().__init__()
        self.net = copy.deepcopy(model).eval()
        slots: list[_MaskSlot] = []
        for parent in list(self.net.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.modules.dropout._DropoutNd):
                    slot = _MaskSlot(child.p)
                    setattr(parent, name, slot)
                    slots.append(slot)
        if not slots:
            raise SpecError("checkpoint", "the network has no dropout layer: Monte Carlo dropout needs one")
        self._slots = tuple(slots)
        self.rates = tuple(s.p for s in slots)
        self.mask_shapes = self._shapes(int(frames))

    def _shapes(self, frames: int) -> tuple[tuple[int, ...], ...]:
        """Shape of the features entering each slot, for a clip of ``frames`` frames (batch axis dropped)."""
        seen: list[tuple[int, ...]] = []
        hooks = [s.register_forward_hook(lambda _m, inp, _out: seen.append(tuple(inp[0].shape[1:])))
                 for s in self._slots]
        v = self.net.cfg.graph.layout.num_points
        try:
            with torch.no_grad():
                self.net(torch.zeros(1, frames, v, 2))
        finally:
            for h in hooks:
                h.remove()
        return tuple(seen)

    def forward(self, x: Tensor, *masks: Tensor) -> Tensor:
        """Landmarks (B, T, V, 2) and one mask per dropout layer -> probabilities (B, num_classes)."""
        if len(masks) != len(self._slots):
            raise SpecError("masks", f"expected {len(self._slots)} dropout masks, got {len(masks)}")
        for slot, mask in zip(self._slots, masks):
            slot.mask = mask
        try:
            return torch.softmax(self.net(x), dim=1)
        finally:
            for slot in self._slots:
                slot.mask = None


def draw_masks(rng: np.random.Generator, batch: int, shapes: tuple[tuple[int, ...], ...],
               rates: tuple[float, ...]) -> list[np.ndarray]:
    """One stochastic pass for each of ``batch`` rows: float32 masks ``(batch, *shape)`` of ``keep / (1 - p)``,
    ``keep`` Bernoulli(1 - p) drawn from ``rng`` layer by layer (a layer with ``p = 0``: ones, nothing drawn)."""
    out = []
    for shape, p in zip(shapes, rates):
        if p <= 0:
            out.append(np.ones((batch, *shape), np.float32))
            continue
        keep = rng.integers(0, _SCALE, (batch, *shape), dtype=np.uint32) >= np.uint32(min(round(p * _SCALE),
                                                                                           _SCALE - 1))
        out.append(keep.astype(np.float32) * np.float32(1.0 / (1.0 - p)))
    return out


def ones_masks(batch: int, shapes: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
    """The deterministic pass's masks: ones ``(batch, *shape)`` per layer."""
    return [np.ones((batch, *shape), np.float32) for shape in shapes]


__all__ = ["ExplicitDropoutNet", "draw_masks", "ones_masks"]
