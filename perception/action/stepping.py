"""Ways to run clip and continual action models for timing (:func:`.cost.throughput`, benchmarks).

* :class:`ExplicitStep`: the continual model's explicit-state step ``_forward_step(frame, state)``, the path
  ``co.onnx.OnnxWrapper`` exports (the state kept here, not in the modules).
* :func:`traced_clip`, :class:`TracedStep`: the clip model and that step traced with ``torch.jit.trace``, so
  that neither pays Python per module (one step graph per phase of the temporal strides).
* :func:`per_frame_convolutions`: every 2D / 3D convolution of a model, clip or continual, run as one
  lower-dimensional convolution per temporal tap over the frames it meets (:func:`conv_by_frames`: frames
  folded into the batch, temporal zero padding skipped), so that a clip and a continual step use the same
  kernels and the step does exactly the work of Eq. 4 (the reference's caveat, §1.5: torch's CPU conv3d
  may be slower per MAC than conv2d, which would flatter the continual step).

Tracing and the explicit step need the model in eval mode; the traced ones freeze its parameters
(``requires_grad`` off) in place, as tracing turns them into graph constants.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Callable

import continual as co
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hcgym.errors import SpecError


def conv_output_size(n: int, k: int, s: int, p: int, d: int) -> int:
    """Output length of a convolution: input ``n``, kernel ``k``, stride ``s``, padding ``p``, dilation ``d``."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def frames_per_prediction(co_model: nn.Module) -> int:
    """Frames between two predictions of a continual model: the product of its temporal strides."""
    return int(co_model.stride[0])


class ExplicitStep:
    """Steps a continual model through its explicit-state ``_forward_step(frame, state)`` (the path
    ``co.onnx.OnnxWrapper`` exports), keeping the state here; the outputs equal ``forward_step``'s."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.state = model, None

    def __call__(self, frame: Tensor) -> Tensor | None:
        """One frame ``(N, C, ...)`` -> the model's output or ``None`` (during the delay, strided frames)."""
        out, self.state = self.model._forward_step(frame, self.state)
        return out

    def flat_state(self) -> list[Tensor]:
        """The state tensors in ``co.onnx.OnnxWrapper`` input order."""
        return list(co.utils.flatten(self.state, remove_none=True))


def _frozen(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with ``requires_grad`` off (tracing turns parameters into graph constants)."""
    return model.eval().requires_grad_(False)


def traced_clip(model: nn.Module, clip: Tensor) -> Callable[[Tensor], Tensor]:
    """The clip model traced with ``torch.jit.trace`` on ``clip`` (its parameters are frozen in place):
    ``(N, C, T, ...) -> logits`` without Python per module, for like-for-like timing with :class:`TracedStep`."""
    _frozen(model)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(lambda x: model(x), (clip,), check_trace=False)


class TracedStep:
    """The explicit-state step of a continual model traced with ``torch.jit.trace`` (the graph its ONNX
    export records), run without Python per module; its parameters are frozen in place.

    A temporal stride makes the step graph depend on the stride phase, so one graph is traced per phase
    (``frames_per_prediction`` of them) and they are used in turn. ``frames`` ``(1, C, T, ...)`` with
    ``T >= 1``: the model is stepped ``delay`` frames (cycling through them) before tracing, so the state is
    full. ``__call__(frame)`` -> output or ``None``, equal to ``forward_step``'s up to rounding.
    """

    def __init__(self, model: nn.Module, frames: Tensor) -> None:
        stepper, wrapper = ExplicitStep(_frozen(model)), co.onnx.OnnxWrapper(model)
        stream = [frames[:, :, t % frames.shape[2]] for t in range(int(model.delay) + frames_per_prediction(model))]

        def step(*args: Tensor) -> tuple[Tensor, ...]:
            out, *state = wrapper(*args)
            return (torch.empty(0) if out is None else out, *state)

        self.graphs = []
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, frame in enumerate(stream):
                if i >= int(model.delay):
                    state = [t.clone() for t in stepper.flat_state()]
                    self.graphs.append(torch.jit.trace(step, (frame, *state), check_trace=False))
                stepper(frame)
        self.state, self.t = stepper.flat_state(), 0

    def __call__(self, frame: Tensor) -> Tensor | None:
        out, *self.state = self.graphs[self.t % len(self.graphs)](frame, *self.state)
        self.t += 1
        return None if out.numel() == 0 else out


def conv_by_frames(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
                   dilation: Any = 1, groups: int = 1) -> Tensor:
    """``F.conv3d`` / ``F.conv2d`` (zero padding) computed as one ``conv2d`` / ``conv1d`` per temporal tap.

    ``input`` ``(N, C, T, *S)`` with time at dim 2, ``weight`` ``(O, C / g, k_T, *k_S)``; returns
    ``(N, O, T_out, *S_out)`` (may be a non-contiguous view). For each tap ``j`` only the output frames whose
    input frame ``o s + j d - p`` exists are computed, on those frames folded into the batch: temporal zero
    padding costs nothing, so a single padded frame (the continual step) costs exactly Eq. 4.
    """
    nd = input.dim() - 3
    if nd not in (1, 2):
        raise SpecError("input", f"expected (N, C, T, V) or (N, C, T, H, W), got {tuple(input.shape)}")
    conv = F.conv1d if nd == 1 else F.conv2d
    expand = (lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * (nd + 1))
    stride, padding, dilation = expand(stride), expand(padding), expand(dilation)
    n, c, t = input.shape[:3]
    k, s, p, d = weight.shape[2], stride[0], padding[0], dilation[0]
    t_out = conv_output_size(t, k, s, p, d)
    pieces = []
    for j in range(k):
        lo = max(0, -(-(p - j * d) // s))  # first output frame whose input frame exists
        hi = min(t_out - 1, (t - 1 + p - j * d) // s)
        if lo > hi:
            continue
        first = lo * s + j * d - p
        frames = input[:, :, first:first + (hi - lo) * s + 1:s]
        m = frames.shape[2]
        y = conv(frames.transpose(1, 2).reshape(n * m, c, *input.shape[3:]), weight[:, :, j], None, stride[1:],
                 padding[1:], dilation[1:], groups)
        pieces.append((lo, hi, y.reshape(n, m, *y.shape[1:]).transpose(1, 2)))
    if not pieces:
        raise SpecError("input", f"no output frame of a temporal kernel {k} meets the {t} input frames")
    if len(pieces) == 1 and pieces[0][:2] == (0, t_out - 1):
        out = pieces[0][2]
    else:
        y = pieces[0][2]
        out = y.new_zeros((n, y.shape[1], t_out, *y.shape[3:]))
        for lo, hi, y in pieces:
            out[:, :, lo:hi + 1] += y
    if bias is not None:
        out = out + bias.view(1, -1, *([1] * (nd + 1)))
    return out


class _FrameConv2d(nn.Conv2d):
    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return conv_by_frames(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class _FrameConv3d(nn.Conv3d):
    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return conv_by_frames(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def per_frame_convolutions(model: nn.Module, inplace: bool = False) -> nn.Module:
    """``model`` (clip or continual; a copy unless ``inplace``) with every 2D / 3D convolution run through
    :func:`conv_by_frames` (the like-with-like variant for timing); outputs are equal up to rounding.
    CoX3D cannot be deep-copied (``co.forward_stepping`` modules): convert a fresh one in place."""
    out = model if inplace else copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, (co.Conv2d, co.Conv3d)):
            m._conv_func = conv_by_frames
        elif isinstance(m, (nn.Conv2d, nn.Conv3d)):
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise SpecError("model", f"per-frame convolutions need numeric zero padding, got {m}")
            m.__class__ = _FrameConv3d if isinstance(m, nn.Conv3d) else _FrameConv2d
    return out
