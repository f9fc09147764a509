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
* Frame layout (CoX3D only): :class:`FrameX3D` (the clip X3D) and :class:`FrameX3DStep` (its continual step with
  explicit state) built from a clip :class:`.x3d.X3D` with every batch norm folded into its convolution
  (:func:`fold_batch_norm`) and frames kept in the batch dimension, so that every convolution is a ``conv2d``
  per temporal tap (:class:`FrameConv`) on both sides. The step holds the paper's minimal state (Eq. 5, 8, 9:
  ``k - 1`` partial-sum frames per temporal conv, ``d`` frames per shortcut delay, ``pool_size - 1`` pooled
  frames) as separate tensors, so no buffer is copied, shifted or indexed per frame. :func:`export_frame_step`,
  :func:`export_graph` write them as ONNX; :func:`onnx_function` runs a file in ONNX Runtime (one thread,
  sequential, every graph optimisation) and :class:`StateLoop` feeds a step's state outputs back.

Tracing and the explicit step need the model in eval mode; the traced ones freeze its parameters
(``requires_grad`` off) in place, as tracing turns them into graph constants.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any, Callable

import continual as co
import numpy as np
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


# ---------------------------------------------------------------------------------------------- frame layout
def fold_batch_norm(conv: nn.Conv3d, bn: nn.BatchNorm3d | None) -> tuple[Tensor, Tensor]:
    """Weight ``(O, I / g, k_T, k_H, k_W)`` and bias ``(O,)`` of ``conv`` followed by ``bn`` in eval mode (its
    running statistics; ``bn=None``: the convolution's own weight and bias, zeros without one)."""
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else w.new_zeros(w.shape[0])
    if bn is None:
        return w.clone(), b.clone()
    scale = (bn.weight.detach() if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean)
    return w * scale.view(-1, 1, 1, 1, 1), (b - bn.running_mean) * scale + shift


class FrameConv(nn.Module):
    """A ``Conv3d`` (zero padding, temporal stride and dilation 1) with its batch norm folded in, run on frames
    ``(B, C, H, W)`` as one ``conv2d`` per temporal tap.

    * :meth:`clip`: frames of ``n`` clips ``(n T, C, H, W)`` (clip-major) -> ``(n T', O, H', W')``, ``T' = T + 2 p
      - k + 1`` with the convolution's temporal padding ``p`` (zero frames, computed as the padded clip is);
    * :meth:`step`: one frame ``(N, C, H, W)`` and ``k - 1`` partial sums ``(N, O, H', W')`` -> the output frame
      and the next partial sums (Eq. 4 of work per frame; ``acc[i]`` holds what the frames seen so far add to the
      output ``i + 1`` steps ahead, the paper's minimal state, Eq. 5).
    """

    def __init__(self, conv: nn.Conv3d, bn: nn.BatchNorm3d | None = None) -> None:
        super().__init__()
        if conv.stride[0] != 1 or conv.dilation[0] != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise SpecError("model", f"frame layout needs temporal stride / dilation 1 and numeric zero padding: {conv}")
        w, b = fold_batch_norm(conv, bn)
        self.register_buffer("taps", w.permute(2, 0, 1, 3, 4).contiguous())  # (k, O, I / g, kH, kW)
        self.register_buffer("bias", b)
        self.k, self.pad = int(w.shape[2]), int(conv.padding[0])
        self.stride, self.padding, self.groups = tuple(conv.stride[1:]), tuple(conv.padding[1:]), conv.groups

    def _conv(self, x: Tensor, j: int, bias: bool) -> Tensor:
        return F.conv2d(x, self.taps[j], self.bias if bias else None, self.stride, self.padding, 1, self.groups)

    def clip(self, x: Tensor, n: int) -> Tensor:
        if self.k == 1:
            return self._conv(x, 0, True)
        t = x.shape[0] // n
        t_out = t + 2 * self.pad - self.k + 1
        out = None
        for j in range(self.k):  # tap j on every frame, shifted to the output frames it reaches
            y = self._conv(x, j, j == self.pad)
            y = y.view(n, t, *y.shape[1:])
            first, last = max(0, j - self.pad), min(t, t_out + j - self.pad)  # input frames meeting an output
            before, after = first - j + self.pad, t_out - (last - j + self.pad)
            if (first, last) != (0, t):
                y = y[:, first:last]
            if before or after:
                y = F.pad(y, (0, 0, 0, 0, 0, 0, before, after))
            out = y if out is None else out + y
        return out.reshape(n * t_out, *out.shape[2:])

    def step(self, x: Tensor, acc: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        if self.k == 1:
            return self._conv(x, 0, True), []
        k = self.k
        parts = [self._conv(x, j, j == k - 1) for j in range(k)]  # the bias goes with the output's last tap
        nxt = [acc[i + 1] + parts[k - 2 - i] for i in range(k - 2)] + [parts[0]]
        return parts[k - 1] + acc[0], nxt

    def step_state(self, x: Tensor) -> list[Tensor]:
        """Zero partial sums for frames shaped as ``x`` ``(N, C, H, W)``."""
        if self.k == 1:
            return []
        y = self._conv(x, 0, False)
        return [torch.zeros_like(y) for _ in range(self.k - 1)]


class _FrameBlock(nn.Module):
    """One :class:`.x3d.X3DBlock` in frame layout (batch norms folded into the convolutions)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        br = block.branch
        self.a, self.b, self.c = FrameConv(br.conv_a, br.bn_a), FrameConv(br.conv_b, br.bn_b), FrameConv(br.conv_c, br.bn_c)
        self.attention = copy.deepcopy(br.attention)
        self.shortcut = None if block.shortcut is None else FrameConv(block.shortcut.conv, block.shortcut.bn)
        self.crop, self.delay = block.crop, (self.b.k - 1) // 2

    def clip(self, x: Tensor, n: int) -> Tensor:
        r = x if self.shortcut is None else self.shortcut.clip(x, n)
        if self.crop:
            t = r.shape[0] // n
            r = r.view(n, t, *r.shape[1:])[:, self.crop:t - self.crop].reshape(-1, *r.shape[1:])
        y = self.b.clip(F.relu(self.a.clip(x, n)), n)
        return F.relu(r + self.c.clip(F.silu(self.attention(y)), n))

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """``state``: the depthwise conv's partial sums, then the shortcut's ``delay`` frames (oldest first)."""
        acc, frames = state[:self.b.k - 1], state[self.b.k - 1:]
        r = x if self.shortcut is None else self.shortcut.step(x, [])[0]
        if self.delay:
            r, frames = frames[0], frames[1:] + [r]
        y, acc = self.b.step(F.relu(self.a.step(x, [])[0]), acc)
        return F.relu(r + self.c.step(F.silu(self.attention(y)), [])[0]), acc + frames

    def step_state(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Zero state for frames shaped as ``x``, and this block's output frame shape (as a zero tensor)."""
        r = x if self.shortcut is None else self.shortcut.step(x, [])[0]
        y = F.relu(self.a.step(x, [])[0])
        acc = self.b.step_state(y)
        out = self.c.step(self.b.step(y, acc)[0], [])[0]
        return torch.zeros_like(out), acc + [torch.zeros_like(r) for _ in range(self.delay)]


class FrameX3D(nn.Module):
    """A clip :class:`.x3d.X3D` (batch norms folded in, weights copied) run in frame layout: frames in the batch,
    one ``conv2d`` per temporal tap; ``(N, 3, T, H, W) -> (N, classes)``, equal to the model up to rounding
    (temporal padding as the model's). Attention must pool per frame (``attention_scope="frame"``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        cfg = model.config
        if cfg.attention != "none" and cfg.attention_scope != "frame":
            raise SpecError("model", f"frame layout needs per-frame attention, got scope {cfg.attention_scope!r}")
        self.config = cfg
        self.stem_s, self.stem_t = FrameConv(model.stem.conv_s), FrameConv(model.stem.conv_t, model.stem.bn)
        self.blocks = nn.ModuleList(_FrameBlock(b) for stage in model.stages for b in stage)
        head = model.head
        self.conv5 = FrameConv(head.conv5, head.bn5)
        self.fc1, self.fc2 = copy.deepcopy(head.fc1), copy.deepcopy(head.fc2)
        self.requires_grad_(False).eval()

    def _trunk(self, x: Tensor, n: int) -> Tensor:
        x = F.relu(self.stem_t.clip(self.stem_s.clip(x, n), n))
        for block in self.blocks:
            x = block.clip(x, n)
        return F.relu(self.conv5.clip(x, n))

    def classify(self, pooled: Tensor) -> Tensor:
        """The two "fc" layers on pooled features ``(N, C)`` -> ``(N, classes)``."""
        h = F.relu(F.linear(pooled, self.fc1.weight.flatten(1), self.fc1.bias))
        return F.linear(h, self.fc2.weight.flatten(1), self.fc2.bias)

    def forward(self, clip: Tensor) -> Tensor:
        n, c, t = clip.shape[:3]
        x = self._trunk(clip.transpose(1, 2).reshape(n * t, c, *clip.shape[3:]), n)
        return self.classify(x.view(n, -1, *x.shape[1:]).mean((1, 3, 4)))


class FrameX3DStep(nn.Module):
    """CoX3D's step in frame layout with explicit state, built from a clip :class:`.x3d.X3D` (its temporal
    padding dropped, as :func:`.x3d.to_continual`): ``forward(frame, *state) -> (logits, valid, *next_state)``.

    ``frame`` ``(N, 3, H, W)``; ``state`` as :meth:`initial_state` (float partial sums of each temporal conv,
    Eq. 5, the shortcuts' delayed frames, Eq. 8, the last ``pool_size - 1`` pooled frames, Eq. 9, then an int64
    frame counter); ``valid`` a boolean scalar, False for the first :attr:`delay` frames. From then on step t
    equals the unpadded clip model on frames ``[t - delay, t]`` up to rounding: every layer is a causal finite
    window, so what the warm-up frames leave in the state reaches only outputs inside the delay. Per frame it
    does Eq. 4's work: each temporal tap once, no buffer copied or shifted.
    """

    def __init__(self, model: nn.Module, pool_size: int | None = None) -> None:
        super().__init__()
        self.net = FrameX3D(model)
        cfg = self.net.config
        self.pool_size = cfg.pool_size if pool_size is None else pool_size
        if isinstance(self.pool_size, bool) or not isinstance(self.pool_size, int) or self.pool_size < 1:
            raise SpecError("pool_size", f"expected a positive integer, got {self.pool_size!r}")
        self.delay = cfg.trunk_receptive_field - 1 + self.pool_size - 1
        self.frame_shape = (3, cfg.size, cfg.size)
        self.eval()

    def initial_state(self, batch: int = 1) -> list[Tensor]:
        """The state before the first frame for ``batch`` streams (zeros, counter 0)."""
        net = self.net
        with torch.no_grad():
            x = net.stem_s.step(torch.zeros(batch, *self.frame_shape), [])[0]
            state = net.stem_t.step_state(x)
            x = torch.zeros_like(x)
            for block in net.blocks:
                x, part = block.step_state(x)
                state += part
            pooled = net.conv5.step(x, [])[0].mean((2, 3))
        ring = pooled.new_zeros((self.pool_size - 1, *pooled.shape))
        return state + [ring, torch.zeros((), dtype=torch.long)]

    def forward(self, frame: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        net, state = self.net, list(state)
        k = net.stem_t.k - 1
        x, nxt = net.stem_t.step(net.stem_s.step(frame, [])[0], state[:k])
        x, i = F.relu(x), k
        for block in net.blocks:
            n = block.b.k - 1 + block.delay
            x, part = block.step(x, state[i:i + n])
            nxt, i = nxt + part, i + n
        pooled = F.relu(net.conv5.step(x, [])[0]).mean((2, 3))
        window = torch.cat([state[i], pooled.unsqueeze(0)], 0)
        counter = state[i + 1]
        logits = net.classify(window.mean(0))
        return (logits, counter >= self.delay, *nxt, window[1:], torch.clamp(counter + 1, max=self.delay))


# ---------------------------------------------------------------------------------------------- ONNX Runtime
def export_graph(module: nn.Module, args: tuple[Tensor, ...], path: str | Path, input_names: list[str],
                 output_names: list[str], opset: int = 17) -> Path:
    """``module`` traced into an ONNX file at ``path`` (legacy exporter, fixed shapes, as :mod:`.onnx_step`)."""
    path = Path(path)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=False)
    return path


def export_frame_step(step: FrameX3DStep, path: str | Path, batch: int = 1, opset: int = 17) -> list[np.ndarray]:
    """:class:`FrameX3DStep` as ONNX (inputs ``frame``, ``state_0``...; outputs ``logits``, ``valid``,
    ``next_state_0``...); returns the initial state as arrays, to feed :class:`StateLoop` with."""
    state = step.initial_state(batch)
    n = len(state)
    export_graph(step, (torch.zeros(batch, *step.frame_shape), *state), path,
                 ["frame", *[f"state_{i}" for i in range(n)]], ["logits", "valid", *[f"next_state_{i}" for i in range(n)]],
                 opset)
    return [t.numpy() for t in state]


def onnx_function(path: str | Path, threads: int = 1) -> Callable[..., list[np.ndarray]]:
    """The ONNX model at ``path`` as a function of its inputs (arrays, in order) -> its outputs, in an ONNX
    Runtime CPU session with ``threads`` intra-op threads, one inter-op thread, sequential execution and every
    graph optimisation."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = int(threads), 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda *args: session.run(None, dict(zip(names, args)))


class StateLoop:
    """Steps ``fn(frame, *state) -> (logits, valid, *next_state)`` (a traced :class:`FrameX3DStep`, an
    :func:`onnx_function`), feeding the state outputs back; ``__call__(frame)`` -> logits or ``None``."""

    def __init__(self, fn: Callable[..., Any], state: list[Any]) -> None:
        self.fn, self.state = fn, list(state)

    def __call__(self, frame: Any) -> Any:
        out, valid, *self.state = self.fn(frame, *self.state)
        return out if bool(valid) else None
