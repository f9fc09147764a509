"""ONNX export of one continual step (CoX3D, CoST-GCN, CoAGCN) with the whole state as explicit inputs and outputs.

``co.onnx.OnnxWrapper`` exports a continual model's ``_forward_step(x, state)``, but the library decides in
Python whether a step has an output (``if output_is_valid``, ``if index >= 0``, ``None`` passed on through the
containers), how its counters wrap and when a state is created (on the first call); a trace freezes the branch
taken while tracing, so the graph is only right in the phase it was traced in (a single ``co.Conv3d`` traced
after its warm-up matches afterwards; traced before, it has no output at all), and layers of one model are in
different phases. Here each continual layer the action models use gets its own step, written from the layer's
weights and continual-inference's own helpers, with no Python-side decision and no in-place write, so that it
traces into a plain, stateless ONNX graph:

* every buffer is kept oldest first and advanced by ``cat(buffer[1:], new)`` (no index, no in-place write);
  it holds the same values as the library's ring, rotated: ``roll(ring, -index, 0)``;
* the library's counters (``stride_index`` of convolutions and pools, ``state_index`` of delays) are int64
  scalar state, and whether a step has an output is a boolean tensor computed from them;
* a layer whose input has no value this step (during the warm-up, between strided outputs) keeps its state
  (``where(valid, new, old)``), as the library, which does not step the layers after a ``None``;
* ``temporal_fill="replicate"`` buffers (filled with the first value a layer sees) carry a boolean ``fresh``.

Supported layers: ``co.Sequential`` (and the GCN's subclasses), ``co.BroadcastReduce``, ``co.Conv1d/2d/3d``
(zero spatial padding mode; temporal kernel >= 2 with any stride, or 1 without stride), ``co.Delay``, the continual pools
(``co.AvgPool*``, ``co.MaxPool*``, ``co.Adaptive*Pool*``, temporal dilation 1), :class:`.attention.CoAttention`,
and stateless layers (``co.forward_stepping`` modules, ``co.Lambda``, ``co.Identity``, the GCN's
``FrameWise`` / ``ContinualHead``). Anything else is refused with a :class:`SpecError`.

* :class:`StepModule` ``(frame, *state) -> (logits, valid, *next_state)``: one ``forward_step``;
  :meth:`StepModule.initial_state`, :meth:`StepModule.co_state` (the library's state in this layout).
* :func:`export_step`: the ``.onnx`` file (inputs ``frame``, ``state_0``...; outputs ``logits``, ``valid``,
  ``next_state_0``...; metadata under :data:`META_KEY`), written only after ONNX Runtime has reproduced the
  continual model over ``2 * delay + 5 + 2 * frames_per_prediction`` random frames within :data:`TOLERANCE`.
* :class:`OnnxStepRunner`: steps such a file in ONNX Runtime, keeping the state between calls.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import continual as co
import numpy as np
import torch
from continual.conv import _ConvCoNd
from continual.pooling import _PoolNd
from torch import Tensor, nn

from hcgym.errors import SpecError
from hcgym.perception.action.attention import CoAttention
from hcgym.perception.action.gcn import CoGCN
from hcgym.perception.action.graph import NUM_JOINTS

#: Key of the JSON metadata an exported step model carries (``metadata_props`` of the ONNX file).
META_KEY = "hcgym.continual_step"
#: ONNX opsets :func:`export_step` writes.
OPSETS = (17, 18)
#: Largest |ONNX Runtime - PyTorch| allowed on logits and state by :func:`export_step`.
TOLERANCE = 1e-4

State = list[Tensor]


# ---------------------------------------------------------------------------------------------- helpers
def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _push(buffer: Tensor, item: Tensor) -> Tensor:
    """An oldest-first buffer ``(L, ...)`` without its oldest entry and with ``item`` ``(...)`` appended."""
    return torch.cat([buffer[1:], item.unsqueeze(0)], dim=0)


def _advance(counter: Tensor, period: int) -> Tensor:
    """continual-inference's counter update: ``counter + 1``, taken modulo ``period`` once positive."""
    n = counter + 1
    return torch.where(n > 0, n % period, n)


def _replicated(buffer: Tensor, item: Tensor, fresh: Tensor) -> Tensor:
    """``buffer``, or every slot set to ``item`` while ``fresh`` (a ``"replicate"`` fill's first value)."""
    return torch.where(fresh, item.unsqueeze(0).expand_as(buffer), buffer)


def _split(steps: list[_Step], state: State) -> list[State]:
    """The flat ``state`` cut into each step's part, in order."""
    parts, i = [], 0
    for s in steps:
        parts.append(state[i:i + s.n_state])
        i += s.n_state
    return parts


def _max_diff(a: Any, b: Any) -> float:
    """Largest |a - b| (equal entries, infinities included, count 0; NaN counts as infinite)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(invalid="ignore"):
        d = np.where(a == b, 0.0, np.abs(a - b))
    return float(np.where(np.isnan(d), np.inf, d).max(initial=0.0))


# ---------------------------------------------------------------------------------------------- layer steps
class _Step(nn.Module):
    """The export-friendly step of one continual module (named ``path`` in the model).

    ``forward(x, valid, state) -> (y, valid_out, next_state)``: ``x`` the module's input for this step,
    ``valid`` a boolean scalar (whether ``x`` holds a value), ``state`` this module's state tensors in
    :meth:`state_names` order. ``init(x)`` gives the state before the first step for inputs shaped as ``x``.
    """

    fields: tuple[str, ...] = ()

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def state_names(self) -> list[str]:
        return [_join(self.path, f) for f in self.fields]

    @property
    def n_state(self) -> int:
        return len(self.state_names())

    def init(self, x: Tensor) -> State:
        return []

    def co_state(self, model: nn.Module) -> list[Tensor | None]:
        """The library's current state of this module in ``model`` in this layout (``None``: not started)."""
        return []


class _StatelessStep(_Step):
    """A layer without state or delay (per-frame modules, heads, lambdas, 1-frame convolutions)."""

    def __init__(self, module: nn.Module, path: str) -> None:
        super().__init__(path)
        self.module = module

    def forward(self, x: Tensor, valid: Tensor, state: State) -> tuple[Tensor, Tensor, State]:
        return self.module._forward_step(x, None)[0], valid, []


class _BufferedStep(_Step):
    """Shared parts of the layers holding an oldest-first buffer and a counter (conv, delay, pool)."""

    def __init__(self, module: nn.Module, path: str, replicate: bool) -> None:
        super().__init__(path)
        self.module = module
        self.replicate = replicate
        self.fields = ("buffer", "counter") + (("fresh",) if replicate else ())

    def _initial(self, buffer: Tensor, counter: Tensor) -> State:
        out = [torch.zeros_like(buffer) if self.replicate else buffer.clone(), torch.as_tensor(counter).long()]
        return out + ([torch.ones((), dtype=torch.bool)] if self.replicate else [])

    def _next(self, valid: Tensor, state: State, new_buffer: Tensor, period: int) -> State:
        out = [torch.where(valid, new_buffer, state[0]), torch.where(valid, _advance(state[1], period), state[1])]
        return out + ([state[2] & ~valid] if self.replicate else [])

    def co_state(self, model: nn.Module) -> list[Tensor | None]:
        st = model.get_submodule(self.path).get_state()
        if st is None:
            return [None] * self.n_state
        out = [torch.roll(st[0], -int(st[1]), 0), torch.as_tensor(st[-1]).long()]
        return out + ([torch.zeros((), dtype=torch.bool)] if self.replicate else [])


class _ConvStep(_BufferedStep):
    """``co.Conv1d/2d/3d``: buffer ``(k - 1, N, C_out, k - 1, *S)`` of partial sums, counter = ``stride_index``.

    The new frame is convolved with the whole kernel (temporal padding ``k - 1``): tap ``k - 1`` gives this
    step's share of the output, the others the partial sums that later outputs add (as the library).
    """

    def __init__(self, module: _ConvCoNd, path: str) -> None:
        if module.padding_mode != "zeros":
            raise SpecError("model", f"{path}: spatial padding mode {module.padding_mode!r} (only 'zeros' exports)")
        if module.kernel_size[0] < 2:
            raise SpecError("model", f"{path}: a temporal stride without a temporal kernel does not export "
                                     "(pick frames with a pool, as the GCN residuals do)")
        super().__init__(module, path, module.t_padding_mode == "replicate")
        self.tot = module.kernel_size[0] - 1

    def _partials(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = self.module
        y = m._conv_func(x.unsqueeze(2), m.weight, None, m._step_stride, m._step_padding, m.dilation, m.groups)
        return y[:, :, 0], y[:, :, 1:]

    def init(self, x: Tensor) -> State:
        buffer, _, counter = self.module.init_state(self._partials(x)[1])
        return self._initial(buffer, counter)

    def forward(self, x: Tensor, valid: Tensor, state: State) -> tuple[Tensor, Tensor, State]:
        m = self.module
        out, rest = self._partials(x)
        buffer = _replicated(state[0], rest, state[2]) if self.replicate else state[0]
        out = out + torch.stack([buffer[j, :, :, self.tot - 1 - j] for j in range(self.tot)]).sum(0)
        if m.bias is not None:
            out = out + m.bias.view(1, -1, *([1] * (out.dim() - 2)))
        ok = valid & (state[1] == m.stride[0] - 1)
        return out, ok, self._next(valid, state, _push(buffer, rest), m.stride[0])


class _DelayStep(_BufferedStep):
    """``co.Delay(d)``: buffer ``(d, *x)`` of the last inputs, counter = ``state_index`` (output once >= 0)."""

    def __init__(self, module: co.Delay, path: str) -> None:
        super().__init__(module, path, module._make_padding is torch.clone)

    def init(self, x: Tensor) -> State:
        return self._initial(*self.module.init_state(x))

    def forward(self, x: Tensor, valid: Tensor, state: State) -> tuple[Tensor, Tensor, State]:
        buffer = _replicated(state[0], x, state[2]) if self.replicate else state[0]
        out_valid = valid & (state[1] >= 0)
        return buffer[0], out_valid, self._next(valid, state, _push(buffer, x), self.module.delay)


class _PoolStep(_BufferedStep):
    """Continual pools: buffer ``(k, *pooled)`` of spatially pooled frames, counter = ``stride_index``."""

    def __init__(self, module: _PoolNd, path: str) -> None:
        if module.dilation[0] != 1:
            raise SpecError("model", f"{path}: temporal pool dilation {module.dilation[0]} (only 1 exports)")
        super().__init__(module, path, module._make_padding is torch.clone)

    def init(self, x: Tensor) -> State:
        buffer, _, counter = self.module.init_state(self.module._spatial_pool_fn(x))
        return self._initial(buffer, counter)

    def forward(self, x: Tensor, valid: Tensor, state: State) -> tuple[Tensor, Tensor, State]:
        m = self.module
        pooled = m._spatial_pool_fn(x)
        buffer = _replicated(state[0], pooled, state[2]) if self.replicate else state[0]
        window = _push(buffer, pooled)
        out = m._reshaped_temporal_pool_fn(window)
        return out, valid & (state[1] == m.stride[0] - 1), self._next(valid, state, window, m.stride[0])


class _AttentionStep(_Step):
    """:class:`CoAttention`: its windowed pools (``"clip"`` scope) stepped here, then the module's ``attend``."""

    def __init__(self, module: CoAttention, path: str) -> None:
        super().__init__(path)
        self.module = module
        self.pools = nn.ModuleList(_PoolStep(p, _join(path, f"pools.{i}")) for i, p in enumerate(module.pools))

    def state_names(self) -> list[str]:
        return [n for p in self.pools for n in p.state_names()]

    def init(self, x: Tensor) -> State:
        return [t for p in self.pools for t in p.init(x)]

    def co_state(self, model: nn.Module) -> list[Tensor | None]:
        return [t for p in self.pools for t in p.co_state(model)]

    def forward(self, x: Tensor, valid: Tensor, state: State) -> tuple[Tensor, Tensor, State]:
        frame = x.unsqueeze(2)
        if not len(self.pools):
            return self.module.module(frame).squeeze(2), valid, []
        stats, new, ok = [], [], valid
        for pool, part in zip(self.pools, _split(list(self.pools), state)):
            stat, pool_ok, nxt = pool(x, valid, part)
            stats.append(stat.unsqueeze(2))
            new += nxt
            ok = ok & pool_ok
        return self.module.module.attend(frame, stats).squeeze(2), ok, new


class _ContainerStep(_Step):
    """Children steps with their states concatenated in order."""

    def __init__(self, steps: list[_Step], path: str) -> None:
        super().__init__(path)
        self.steps = nn.ModuleList(steps)

    def state_names(self) -> list[str]:
        return [n for s in self.steps for n in s.state_names()]

    def co_state(self, model: nn.Module) -> list[Tensor | None]:
        return [t for s in self.steps for t in s.co_state(model)]


class _SequentialStep(_ContainerStep):
    """``co.Sequential``: each child steps on the previous one's output (and keeps its state if that has none)."""

    def init(self, x: Tensor) -> State:
        out, on = [], torch.ones((), dtype=torch.bool)
        for s in self.steps:
            part = s.init(x)
            x = s(x, on, part)[0]
            out += part
        return out

    def forward(self, x: Tensor, valid: Tensor, state: State) -> tuple[Tensor, Tensor, State]:
        new = []
        for s, part in zip(self.steps, _split(list(self.steps), state)):
            x, valid, nxt = s(x, valid, part)
            new += nxt
        return x, valid, new


class _BroadcastReduceStep(_ContainerStep):
    """``co.BroadcastReduce``: every branch steps on the input; an output once all branches have one."""

    def __init__(self, steps: list[_Step], path: str, reduce: Any) -> None:
        super().__init__(steps, path)
        self.reduce = reduce

    def init(self, x: Tensor) -> State:
        return [t for s in self.steps for t in s.init(x)]

    def forward(self, x: Tensor, valid: Tensor, state: State) -> tuple[Tensor, Tensor, State]:
        outs, new, ok = [], [], valid
        for s, part in zip(self.steps, _split(list(self.steps), state)):
            y, branch_ok, nxt = s(x, valid, part)
            outs.append(y)
            new += nxt
            ok = ok & branch_ok
        return self.reduce(outs), ok, new


SUPPORTED = ("co.Sequential", "co.BroadcastReduce", "co.Conv1d/2d/3d", "co.Delay", "continual pools",
             "CoAttention", "stateless continual modules")


def _build(m: nn.Module, path: str) -> _Step:
    """The step of continual module ``m`` (named ``path``), its children's steps inside."""
    children = [(n, c) for n, c in m.named_children()]
    if isinstance(m, co.BroadcastReduce):
        return _BroadcastReduceStep([_build(c, _join(path, n)) for n, c in children], path, m.reduce)
    if isinstance(m, co.Sequential):
        return _SequentialStep([_build(c, _join(path, n)) for n, c in children], path)
    if isinstance(m, CoAttention):
        return _AttentionStep(m, path)
    if isinstance(m, _ConvCoNd):
        return _StatelessStep(m, path) if m._stateless else _ConvStep(m, path)
    if isinstance(m, co.Delay):
        return _StatelessStep(m, path) if m.delay == 0 else _DelayStep(m, path)
    if isinstance(m, _PoolNd):
        return _PoolStep(m, path)
    if getattr(m, "_state_shape", None) == 0 and callable(getattr(m, "_forward_step", None)):
        return _StatelessStep(m, path)
    raise SpecError("model", f"{path or 'the model'}: no exportable step for {type(m).__name__} "
                             f"(supported: {', '.join(SUPPORTED)})")


def _frame_shape(co_model: nn.Module, frame_shape: Any) -> tuple[int, ...]:
    if frame_shape is None:
        if isinstance(co_model, CoGCN):
            return (co_model.cfg.in_channels, NUM_JOINTS, co_model.cfg.num_person)
        raise SpecError("frame_shape", f"cannot be inferred from a {type(co_model).__name__}; pass the shape of one "
                                       "frame without the batch axis, e.g. (3, H, W) for CoX3D")
    shape = tuple(frame_shape) if isinstance(frame_shape, (tuple, list)) else None
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise SpecError("frame_shape", f"expected a tuple of positive integers, got {frame_shape!r}")
    return shape


# ---------------------------------------------------------------------------------------------- the module
class StepModule(nn.Module):
    """One ``forward_step`` of a continual model with all state explicit; inference only (eval mode).

    ``forward(frame, *state) -> (logits, valid, *next_state)``: ``frame`` ``(N, *frame_shape)`` float32,
    ``state`` as :meth:`initial_state` gives (names in :attr:`state_names`), ``logits`` ``(N, classes)`` (zeros
    when ``valid`` is False), ``valid`` a boolean scalar: whether the continual model has an output this step
    (False during the first :attr:`delay` steps and, with temporal strides, between predictions, one every
    :attr:`frames_per_prediction` steps). Steps and state equal the model's ``forward_step`` and state
    (:meth:`co_state`). The layers are the model's own (weights shared, not copied); the model must be in eval
    mode. ``frame_shape`` is inferred for CoST-GCN / CoAGCN and must be given for CoX3D (``(3, H, W)``).
    """

    def __init__(self, co_model: nn.Module, frame_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if not isinstance(co_model, co.CoModule):
            raise SpecError("model", f"expected a continual (continual-inference) model, got {type(co_model).__name__}")
        training = [n or "the model" for n, m in co_model.named_modules() if m.training]
        if training:
            raise SpecError("model", f"{training[0]} is in training mode; call .eval() on the continual model first "
                                     "(the step is exact for inference only)")
        self.frame_shape = _frame_shape(co_model, frame_shape)
        self.root = _build(co_model, "")
        self.delay = int(co_model.delay)
        self.frames_per_prediction = int(co_model.stride[0])
        self.state_names: list[str] = self.root.state_names()
        self._initial_states: dict[int, State] = {}
        super().train(False)

    def train(self, mode: bool = True) -> StepModule:
        if mode:
            raise SpecError("mode", "a StepModule is inference only (it cannot be put in training mode)")
        return super().train(False)

    def initial_state(self, batch: int = 1) -> State:
        """The state before the first step for ``batch`` streams: constant tensors (zeros, -inf fills, the
        library's initial counters, ``fresh`` flags True), in :attr:`state_names` order."""
        return [t.clone() for t in self._initial(batch)]

    def _initial(self, batch: int) -> State:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise SpecError("batch", f"expected a positive integer, got {batch!r}")
        if batch not in self._initial_states:
            with torch.no_grad():
                self._initial_states[batch] = self.root.init(torch.zeros(batch, *self.frame_shape))
        return self._initial_states[batch]

    def co_state(self, co_model: nn.Module, batch: int = 1) -> State:
        """The current state of ``co_model`` (the continual model this module was built from, or another built
        the same way, stepped with ``forward_step``) in this module's layout; layers not started yet give their
        initial state."""
        return [a.clone() if b is None else b for a, b in zip(self._initial(batch), self.root.co_state(co_model))]

    def _check(self, frame: Tensor, state: tuple[Tensor, ...]) -> None:
        if frame.dim() != len(self.frame_shape) + 1 or tuple(frame.shape[1:]) != self.frame_shape:
            raise SpecError("frame", f"expected (N, {', '.join(map(str, self.frame_shape))}), got {tuple(frame.shape)}")
        layout = self._initial(int(frame.shape[0]))
        if len(state) != len(layout):
            raise SpecError("state", f"expected {len(layout)} state tensors, got {len(state)}")
        for i, (t, ref, name) in enumerate(zip(state, layout, self.state_names)):
            if not isinstance(t, Tensor) or t.shape != ref.shape or t.dtype != ref.dtype:
                got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
                raise SpecError(f"state_{i}", f"{name}: expected shape {tuple(ref.shape)} {ref.dtype}, got {got}")

    def forward(self, frame: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            self._check(frame, state)
        out, valid, new = self.root(frame, torch.ones((), dtype=torch.bool), list(state))
        return (torch.where(valid, out, torch.zeros_like(out)), valid, *new)


def initial_state(co_model: nn.Module, batch: int = 1, frame_shape: tuple[int, ...] | None = None) -> State:
    """:meth:`StepModule.initial_state` of ``co_model``."""
    return StepModule(co_model, frame_shape).initial_state(batch)


# ---------------------------------------------------------------------------------------------- export
def _dtype_name(t: Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def step_metadata(step: StepModule, state: State, batch: int, opset: int, logits_shape: tuple[int, ...]) -> dict:
    """What an exported step carries beside its graph: delay, frames per prediction, batch, frame and logits
    shapes, and each state's name, shape, dtype and initial value (JSON data)."""
    entries = []
    for i, (name, t) in enumerate(zip(step.state_names, state)):
        values = t.flatten()
        init = values[0].item() if values.numel() else 0
        if values.numel() and not bool((values == values[0]).all()):
            raise SpecError("model", f"{name}: initial state is not constant")  # every supported layer's is
        entries.append({"input": f"state_{i}", "output": f"next_state_{i}", "name": name,
                        "shape": list(t.shape), "dtype": _dtype_name(t), "init": init})
    return {"format": 1, "opset": opset, "delay": step.delay, "frames_per_prediction": step.frames_per_prediction,
            "batch": batch, "frame_shape": list(step.frame_shape), "logits_shape": list(logits_shape),
            "state": entries}


def _onnx_bytes(step: StepModule, batch: int, opset: int) -> bytes:
    """The step traced into ONNX (legacy exporter, fixed batch) with :data:`META_KEY` metadata."""
    import onnx

    state = step.initial_state(batch)
    frame = torch.zeros(batch, *step.frame_shape)
    with torch.no_grad():
        logits = step(frame, *state)[0]
    buf = io.BytesIO()
    n = len(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(step, (frame, *state), buf, input_names=["frame", *[f"state_{i}" for i in range(n)]],
                          output_names=["logits", "valid", *[f"next_state_{i}" for i in range(n)]],
                          opset_version=opset, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    entry = model.metadata_props.add()
    entry.key = META_KEY
    entry.value = json.dumps(step_metadata(step, state, batch, opset, tuple(logits.shape)))
    return model.SerializeToString()


@contextmanager
def _fresh(co_model: nn.Module) -> Iterator[nn.Module]:
    """``co_model`` with its state cleared for the block, and its own state put back afterwards (a copy is not
    possible: ``co.forward_stepping`` modules do not deep-copy)."""
    leaves = [m for m in co_model.modules() if isinstance(m, (_ConvCoNd, co.Delay, _PoolNd))]
    saved = [m.get_state() for m in leaves]
    saved = [None if s is None else tuple(t.clone() if isinstance(t, Tensor) else t for t in s) for s in saved]
    for m in leaves:
        m.clean_state()
    try:
        yield co_model
    finally:
        for m, s in zip(leaves, saved):
            if s is None:
                m.clean_state()
            else:
                m.set_state(s)


def _verify(step: StepModule, co_model: nn.Module, runner: OnnxStepRunner, steps: int, seed: int) -> dict:
    """Step the continual model, :class:`StepModule` and ONNX Runtime side by side over ``steps`` random frames."""
    with _fresh(co_model) as ref:
        return _compare(step, ref, runner, steps, seed)


def _compare(step: StepModule, ref: nn.Module, runner: OnnxStepRunner, steps: int, seed: int) -> dict:
    batch = runner.batch
    g = torch.Generator().manual_seed(seed)
    state = step.initial_state(batch)
    worst = {"logits_max_abs_diff": 0.0, "step_logits_max_abs_diff": 0.0, "state_max_abs_diff": 0.0,
             "co_state_max_abs_diff": 0.0}
    predictions, mismatch = 0, []
    with torch.no_grad():
        for t in range(steps):
            frame = torch.randn(batch, *step.frame_shape, generator=g)
            expect = ref.forward_step(frame)
            logits, valid, *state = step(frame, *state)
            got = runner.step(frame.numpy())
            if (expect is not None) != bool(valid) or bool(valid) != (got is not None):
                mismatch.append(t)
                continue
            if expect is not None:
                predictions += 1
                worst["logits_max_abs_diff"] = max(worst["logits_max_abs_diff"], _max_diff(got, expect))
                worst["step_logits_max_abs_diff"] = max(worst["step_logits_max_abs_diff"], _max_diff(logits, expect))
            for a, b, c in zip(runner.state, state, step.co_state(ref, batch)):
                worst["state_max_abs_diff"] = max(worst["state_max_abs_diff"], _max_diff(a, b))
                worst["co_state_max_abs_diff"] = max(worst["co_state_max_abs_diff"], _max_diff(b, c))
    if mismatch:
        raise SpecError("export", f"steps {mismatch[:5]}: whether there is an output differs between the continual "
                                  "model, the step module and ONNX Runtime; nothing was written")
    bad = {k: v for k, v in worst.items() if not v <= TOLERANCE}
    if bad:
        raise SpecError("export", f"ONNX Runtime / step module differ from the continual model ("
                                  f"{', '.join(f'{k} {v:.2e}' for k, v in bad.items())}, limit {TOLERANCE:g}); "
                                  "nothing was written")
    return {"steps": steps, "seed": seed, "predictions": predictions, "tolerance": TOLERANCE, **worst}


def export_step(co_model: nn.Module, path: str | Path, opset: int = 17, *, frame_shape: tuple[int, ...] | None = None,
                batch: int = 1, steps: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Write the ONNX step model of ``co_model`` to ``path`` (``.onnx``) after checking it; returns the report.

    The graph is :class:`StepModule` traced with ``torch.onnx.export(dynamo=False)`` at a fixed ``batch``:
    inputs ``frame`` ``(batch, *frame_shape)`` float32 and ``state_0..`` , outputs ``logits``, ``valid`` (bool)
    and ``next_state_0..`` (feed them back as ``state_*``); the file's metadata (:data:`META_KEY`) holds delay,
    frames per prediction, batch, frame shape and each state's name, shape, dtype and initial value. Before
    anything is written, the continual model's ``forward_step``, the step module and ONNX Runtime are run on the
    same ``steps`` random frames (default and minimum ``2 * delay + 5 + 2 * frames_per_prediction``, from
    ``seed``): which steps have an output must agree, and logits (ONNX Runtime and step module vs the continual
    model), states (ONNX Runtime vs step module) and the step module's state vs the library's must agree within
    :data:`TOLERANCE`, else :class:`SpecError` and no file.

    Returns: ``{"onnx", "opset", "bytes", "delay", "frames_per_prediction", "batch", "frame_shape",
    "state_tensors", "state_floats", "steps", "seed", "predictions", "logits_max_abs_diff",
    "step_logits_max_abs_diff", "state_max_abs_diff", "co_state_max_abs_diff", "tolerance"}``.
    """
    from hcgym.paths import atomic_write_bytes

    path = Path(path)
    if opset not in OPSETS:
        raise SpecError("opset", f"expected one of {', '.join(map(str, OPSETS))}, got {opset!r}")
    if path.suffix != ".onnx" or path.is_dir():
        raise SpecError("path", f"expected a .onnx file path, got {path}")
    step = StepModule(co_model, frame_shape)
    state = step.initial_state(batch)
    need = 2 * step.delay + 5 + 2 * step.frames_per_prediction
    steps = need if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < need:
        raise SpecError("steps", f"expected an integer >= {need} (2 * delay + 5 + 2 * frames per prediction), "
                                 f"got {steps!r}")
    data = _onnx_bytes(step, batch, opset)
    with tempfile.TemporaryDirectory(prefix="hcgym-step-") as tmp:
        staged = Path(tmp) / path.name
        staged.write_bytes(data)
        report = _verify(step, co_model, OnnxStepRunner(staged), steps, seed)
    atomic_write_bytes(path, data)
    floats = sum(t.numel() for t in state if t.is_floating_point())
    return {"onnx": path.name, "opset": opset, "bytes": len(data), "delay": step.delay,
            "frames_per_prediction": step.frames_per_prediction, "batch": batch,
            "frame_shape": list(step.frame_shape), "state_tensors": len(state), "state_floats": floats, **report}


# ---------------------------------------------------------------------------------------------- runner
class OnnxStepRunner:
    """Runs an :func:`export_step` file in ONNX Runtime, keeping the state between calls.

    ``step(frame)``: one frame ``(batch, *frame_shape)`` (or ``frame_shape`` when the batch is 1) -> logits
    ``(batch, classes)`` float32, or ``None`` when the model has no output this step (the first ``delay``
    steps, and between strided predictions). ``reset()`` starts a new stream. ``state``: the current state
    arrays (``state_0``... order); ``steps``: frames since the reset; ``warmed_up``: ``steps > delay``.
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        from hcgym.perception.base import onnx_session

        path = Path(path)
        if not path.is_file():
            raise SpecError("path", f"ONNX step model not found: {path}")
        try:
            self.session = onnx_session(path, threads)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets one message
            raise SpecError("path", f"{path} is not a readable ONNX model ({type(e).__name__})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        try:
            meta = json.loads(raw)
            self.delay = int(meta["delay"])
            self.frames_per_prediction = int(meta["frames_per_prediction"])
            self.batch = int(meta["batch"])
            self.frame_shape = tuple(int(d) for d in meta["frame_shape"])
            self._inputs = [e["input"] for e in meta["state"]]
            self._initial = [np.full(e["shape"], e["init"], dtype=np.dtype(e["dtype"])) for e in meta["state"]]
        except (TypeError, ValueError, KeyError) as e:
            raise SpecError("path", f"{path.name} is not a continual step export (its {META_KEY} metadata is missing "
                                    f"or unreadable: {type(e).__name__}); write it with export_step") from None
        names = [i.name for i in self.session.get_inputs()]
        if names != ["frame", *self._inputs]:
            raise SpecError("path", f"{path.name}: inputs {names} do not match its metadata")
        self.path = path
        self.meta = meta
        self.reset()

    def reset(self) -> None:
        """Back to the initial state (a new stream)."""
        self.state = [a.copy() for a in self._initial]
        self.steps = 0

    @property
    def warmed_up(self) -> bool:
        """Whether more than ``delay`` frames have been stepped since the reset."""
        return self.steps > self.delay

    def step(self, frame: np.ndarray) -> np.ndarray | None:
        """One frame -> logits ``(batch, classes)`` or ``None`` (see the class docstring)."""
        x = np.asarray(frame, dtype=np.float32)
        if self.batch == 1 and x.shape == self.frame_shape:
            x = x[None]
        if x.shape != (self.batch, *self.frame_shape):
            raise SpecError("frame", f"expected ({', '.join(map(str, (self.batch, *self.frame_shape)))}), got {x.shape}")
        out = self.session.run(None, {"frame": np.ascontiguousarray(x), **dict(zip(self._inputs, self.state))})
        self.state = list(out[2:])
        self.steps += 1
        return out[0] if bool(out[1]) else None
