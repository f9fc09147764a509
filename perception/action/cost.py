"""Cost of clip vs continual action models: MACs per prediction, state memory and throughput (D3.2 §3.1, §3.2).

Two independent counters, both as published and with the handles they lack here:

* ``ptflops`` 0.7.5 (the counter the Co3D paper used; module hooks, ``backend="pytorch"``): convolutions
  (bias adds included), linear layers, batch norm (2 per element when affine), ReLU / SiLU / pooling (1 per
  element). Added here: ``torch.einsum`` (the graph convolutions; ptflops has no handle for it) counted as
  the product of every index size (the multiply-adds of a two-operand contraction); ``co.Conv1d/2d/3d``
  in step mode counted from their input frame as Eq. 4 of the paper, ``[k_T k_H k_W] C_in C_out / g
  n_H n_W`` (the library's hook reads the output, which is ``None`` on strided frames); its functional
  patches are off (``count_functional=False``: they counted every ``nn.ReLU`` twice, module and
  ``F.relu``), and batch norm / activations wrapped by ``co.forward_stepping`` are counted once although
  their hooks run twice.
* ``fvcore`` 0.1.5 (jit trace, one handle per aten op): convolutions and linear layers without bias, batch
  norm, adaptive average pooling and its own ``einsum`` handle (``np.einsum_path``), which gives the same
  number as the ptflops hook above by an independent route. A continual model is traced through its
  explicit-state step ``co.onnx.OnnxWrapper(model)(frame, *state)``, the path its ONNX export takes. In step
  mode its convolution handle counts only the kernel taps that meet a real frame: ``co.Conv*d`` runs one
  frame through the full kernel with ``k_T - 1`` frames of temporal zero padding, so the aten convolution
  is ``k_T`` times Eq. 4; the taps on the padding are not counted (that equals Eq. 4).

Definitions (reference §1.2, §2.3): the clip model makes one prediction per clip, so its MACs per prediction
are its MACs on one clip; the continual model makes one prediction every ``frames_per_prediction`` frames
(the product of its temporal strides), so its MACs per prediction are the sum of the step MACs over that
many consecutive frames in the steady state (after ``delay`` frames). Counts are per sample: inputs have a
batch of 1.

Timing: :func:`throughput` (interleaved rounds); the ways of running the models it times (eager,
explicit-state, traced, per-frame convolutions, CoX3D in frame layout, ONNX Runtime) are in :mod:`.stepping`.
"""

from __future__ import annotations

import copy
import io
import math
import statistics
import string
import time
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

import continual as co
import torch
from torch import Tensor, nn

from hcgym.errors import SpecError
from hcgym.perception.action import gcn, x3d
from hcgym.perception.action.stepping import ExplicitStep, conv_output_size, frames_per_prediction

MODES = ("clip", "step")
COUNTERS = ("ptflops", "fvcore")


# ---------------------------------------------------------------------------------------------- einsum
def einsum_macs(equation: str, *operands: Tensor) -> int:
    """Multiply-adds of ``torch.einsum(equation, *operands)`` done pairwise without reuse: the product of the
    sizes of every index letter (``"nkctv,kwv->nctw"``: ``n k c t v w``). Ellipses are not supported."""
    lhs = equation.replace(" ", "").split("->")[0]
    if "." in lhs:
        raise SpecError("equation", f"einsum with '...' is not counted: {equation!r}")
    sizes: dict[str, int] = {}
    for term, operand in zip(lhs.split(","), operands):
        for letter, size in zip(term, operand.shape):
            sizes[letter] = int(size)
    return math.prod(sizes[k] for k in sizes if k in string.ascii_letters)


@contextmanager
def _counting_einsum(collector: list[int]) -> Iterator[None]:
    """Patch ``torch.einsum`` so that every call appends its :func:`einsum_macs` to ``collector``."""
    original = torch.einsum

    def counted(equation: str, *operands: Any) -> Tensor:
        tensors = operands[0] if len(operands) == 1 and isinstance(operands[0], (list, tuple)) else operands
        collector.append(einsum_macs(equation, *tensors))
        return original(equation, *operands)

    torch.einsum = counted
    try:
        yield
    finally:
        torch.einsum = original


# ---------------------------------------------------------------------------------------------- ptflops
def _co_conv_hook(module: nn.Module, inputs: tuple, output: Any) -> None:
    """ptflops hook of ``co.Conv*d``: Eq. 4 from the input frame in step mode (``(N, C, *S)``), the usual
    count in clip mode (``(N, C, T, *S)``)."""
    from ptflops.pytorch_ops import conv_flops_counter_hook

    x = inputs[0]
    if x.dim() == len(module.kernel_size) + 2:
        conv_flops_counter_hook(module, inputs, output)
        return
    spatial = [conv_output_size(n, *a) for n, a in zip(x.shape[2:], zip(module.kernel_size[1:], module.stride[1:],
                                                                  module.padding[1:], module.dilation[1:]))]
    positions = x.shape[0] * math.prod(spatial)
    macs = positions * math.prod(module.kernel_size) * module.in_channels * module.out_channels // module.groups
    if module.bias is not None and isinstance(output, Tensor):
        macs += positions * module.out_channels
    module.__flops__ += int(macs)


def _ptflops_hooks() -> dict[type, Callable]:
    """Custom ptflops hooks: continual convolutions, and batch norm / activations counted once per call
    (``co.forward_stepping`` wraps a module so that its forward hooks run twice in step mode)."""
    from ptflops.pytorch_ops import bn_flops_counter_hook, relu_flops_counter_hook

    last: dict[int, Any] = {}

    def once(hook: Callable) -> Callable:
        def counted(module: nn.Module, inputs: tuple, output: Any) -> None:
            if last.get(id(module)) is output:
                return
            last[id(module)] = output  # a strong reference: the id cannot be reused while it is kept
            hook(module, inputs, output)
        return counted

    hooks: dict[type, Callable] = {cls: _co_conv_hook for cls in (co.Conv1d, co.Conv2d, co.Conv3d)}
    hooks.update({cls: once(bn_flops_counter_hook) for cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)})
    hooks.update({cls: once(relu_flops_counter_hook) for cls in (nn.ReLU, nn.SiLU)})
    return hooks


class _Stepper(nn.Module):
    """Steps a continual model through every frame of ``(N, C, T, ...)``; returns the last output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clip: Tensor) -> Any:
        mode, out = self.model.call_mode, None
        self.model.call_mode = "forward_step"  # called through __call__ so that its own hooks run too
        try:
            for t in range(clip.shape[2]):
                out = self.model(clip[:, :, t])
        finally:
            self.model.call_mode = mode
        return out


def _ptflops(module: nn.Module, x: Tensor) -> int:
    from ptflops import get_model_complexity_info

    einsums: list[int] = []
    with _counting_einsum(einsums), torch.no_grad():
        total, _ = get_model_complexity_info(
            module, tuple(x.shape[1:]), input_constructor=lambda _: x, as_strings=False,
            print_per_layer_stat=False, ost=io.StringIO(), custom_modules_hooks=_ptflops_hooks(),
            backend="pytorch", backend_specific_config={"count_functional": False})
    if total is None:
        raise RuntimeError(f"ptflops could not count {type(module).__name__} (see the message printed above)")
    return int(total) + sum(einsums)


# ---------------------------------------------------------------------------------------------- fvcore
def _temporal_taps(t_in: int, k: int, s: int, p: int, d: int, t_out: int) -> int:
    """Pairs (output frame, kernel tap) whose input frame ``o s + j d - p`` lies inside ``[0, t_in)``."""
    return sum(1 for o in range(t_out) for j in range(k) if 0 <= o * s + j * d - p < t_in)


def _ints(value: Any) -> list[int]:
    """A jit ``int[]`` argument: a constant, or a ``prim::ListConstruct`` of constants."""
    constant = value.toIValue()
    return list(constant) if constant is not None else [v.toIValue() for v in value.node().inputs()]


def _step_conv_handle(inputs: list, outputs: list) -> int:
    """fvcore handle of ``aten::_convolution`` in step mode: MACs of the taps that meet a real frame."""
    from fvcore.nn.jit_handles import get_shape

    x, w, y = get_shape(inputs[0]), get_shape(inputs[1]), get_shape(outputs[0])
    stride, padding, dilation = (_ints(inputs[i]) for i in (3, 4, 5))
    taps = _temporal_taps(x[2], w[2], stride[0], padding[0], dilation[0], y[2])
    return y[0] * y[1] * w[1] * math.prod(w[3:]) * math.prod(y[3:]) * taps


def _fvcore(module: nn.Module, inputs: tuple, step: bool) -> int:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(module, inputs)
    if step:
        analysis.set_op_handle("aten::_convolution", _step_conv_handle)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return int(analysis.total())


# ---------------------------------------------------------------------------------------------- MACs
def _check_input(x: Any, name: str = "inputs") -> Tensor:
    if not isinstance(x, Tensor) or x.dim() < 3:
        raise SpecError(name, f"expected a tensor (1, C, T, ...), got {getattr(x, 'shape', type(x).__name__)}")
    if x.shape[0] != 1:
        raise SpecError(name, f"expected a batch of 1 (counts are per sample), got {x.shape[0]}")
    return x


def macs(model: nn.Module, inputs: Tensor, mode: str = "clip", steps: int = 1) -> dict[str, int]:
    """MACs of one sample, by both counters: ``{"ptflops": int, "fvcore": int}``.

    Args:
        model: a clip model (``mode="clip"``, counted on a copy) or a continual model (``mode="step"``, stepped
            itself and left with a clean state and its train / eval mode).
        inputs: ``(1, C, T, ...)``. Clip mode: the clip. Step mode: frames stepped through the model from a
            clean state; the first ``T - steps`` (at least ``model.delay``) fill its state and are
            not counted, the last ``steps`` are (their MACs summed).
        mode: ``"clip"`` (``model(inputs)``) or ``"step"`` (``model.forward_step`` per frame).
        steps: frames counted in step mode (``frames_per_prediction`` for the cost of one prediction).
    """
    if mode not in MODES:
        raise SpecError("mode", f"unknown mode {mode!r} (allowed: {', '.join(MODES)})")
    x = _check_input(inputs)
    if mode == "clip":
        model = copy.deepcopy(model).eval()
        return {"ptflops": _ptflops(model, x), "fvcore": _fvcore(model, (x,), step=False)}
    if not isinstance(model, co.CoModule):
        raise SpecError("model", f"step mode needs a continual model, got {type(model).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SpecError("steps", f"expected a positive integer, got {steps!r}")
    warm = x.shape[2] - steps
    if warm < int(model.delay):
        raise SpecError("inputs", f"step mode needs at least delay + steps = {int(model.delay) + steps} frames "
                        f"(the counted steps must follow a full state), got {x.shape[2]}")
    with _clean(model):  # CoX3D cannot be deep-copied (co.forward_stepping), so the model itself is stepped
        with torch.no_grad():
            for t in range(warm):
                model.forward_step(x[:, :, t])
        result = {"ptflops": _ptflops(_Stepper(model), x[:, :, warm:])}
        # fvcore: the explicit-state step (the ONNX path), one trace per counted frame
        model.clean_state()
        wrapper, stepper, total = co.onnx.OnnxWrapper(model), ExplicitStep(model), 0
        with torch.no_grad():
            for t in range(x.shape[2]):
                if t >= warm:
                    flat = [s.clone() for s in stepper.flat_state()]  # tracing writes into the buffers
                    total += _fvcore(wrapper, (x[:, :, t], *flat), step=True)
                stepper(x[:, :, t])
        result["fvcore"] = total
    return result


@contextmanager
def _clean(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and a clean state inside; the state cleaned and the train / eval mode restored after."""
    training = model.training
    model.eval().clean_state()
    try:
        yield model
    finally:
        model.clean_state()
        model.train(training)


def flops_per_prediction(clip_model: nn.Module, co_model: nn.Module, clip: Tensor, predictions_per_clip: int = 1,
                         seed: int = 0) -> dict[str, Any]:
    """MACs per prediction of a clip model and of its continual version, by both counters.

    Args:
        clip_model: the clip model; ``clip`` ``(1, C, T, ...)`` is its input.
        co_model: the continual model; it is stepped (on a copy) through ``delay + frames_per_prediction``
            random frames of the clip's frame shape (seeded by ``seed``; counts do not depend on values).
        predictions_per_clip: predictions the clip model makes per clip (1: one clip, one prediction).

    Returns:
        ``{"clip": {counter: MACs / predictions_per_clip}, "step": {counter: step MACs summed over
        frames_per_prediction frames}, "ratio": {counter: clip / step}, "frames_per_prediction",
        "predictions_per_clip"}``.
    """
    if isinstance(predictions_per_clip, bool) or not isinstance(predictions_per_clip, int) or predictions_per_clip < 1:
        raise SpecError("predictions_per_clip", f"expected a positive integer, got {predictions_per_clip!r}")
    x = _check_input(clip, "clip")
    fpp = frames_per_prediction(co_model)
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn((1, x.shape[1], int(co_model.delay) + fpp, *x.shape[3:]), generator=g)
    per_clip = macs(clip_model, x, "clip")
    clip_cost = {k: v / predictions_per_clip for k, v in per_clip.items()}
    step_cost = macs(co_model, frames, "step", steps=fpp)
    return {"clip": clip_cost, "step": step_cost, "ratio": {k: clip_cost[k] / step_cost[k] for k in COUNTERS},
            "frames_per_prediction": fpp, "predictions_per_clip": predictions_per_clip}


# ---------------------------------------------------------------------------------------------- state
def state_memory(co_model: nn.Module, frame: Tensor | None = None) -> dict[str, int]:
    """State a continual model holds once every module is initialised, for one sample.

    The model is stepped ``delay + 1`` times with ``frame`` (``(1, C, ...)``, no time axis; CoST-GCN /
    CoAGCN build a zero frame themselves) and left with a clean state. ``floats``: the floating-point state
    (:func:`.gcn.state_floats` for CoST-GCN / CoAGCN, :func:`.x3d.state_floats` otherwise); ``bytes``:
    every state tensor, the int64 ring and stride indices included.
    """
    if isinstance(co_model, gcn.CoGCN):
        cfg = co_model.cfg
        frame = torch.zeros(1, cfg.in_channels, gcn.NUM_JOINTS, cfg.num_person)
    elif not isinstance(frame, Tensor) or frame.shape[0] != 1:
        raise SpecError("frame", "expected one frame (1, C, ...) to step the continual model with")
    with _clean(co_model), torch.no_grad():
        for _ in range(int(co_model.delay) + 1):
            co_model.forward_step(frame)
        floats = gcn.state_floats(co_model) if isinstance(co_model, gcn.CoGCN) else x3d.state_floats(co_model)
        tensors = x3d.state_tensors(co_model)
        return {"floats": int(floats), "bytes": int(sum(t.numel() * t.element_size() for _, t in tensors))}


# ---------------------------------------------------------------------------------------------- timing
def throughput(fns: Mapping[str, Callable[..., Any]], inputs: Mapping[str, Sequence[tuple]] | None = None,
               repeats: int = 5, threads: int = 1, calls: Mapping[str, int] | None = None,
               warmup: int = 1) -> dict[str, dict[str, Any]]:
    """Interleaved A/B timing: in every round each of ``fns`` runs once in turn (the order rotates each round),
    so that a varying machine load weighs on each alike.

    Args:
        fns: name -> callable.
        inputs: name -> argument tuples, used in turn and cycled (e.g. successive frames for a continual
            step); a name without inputs is called without arguments.
        repeats: timed rounds; ``warmup`` untimed rounds come first.
        threads: ``torch.set_num_threads`` during the timing (restored after).
        calls: name -> consecutive calls in one timed sample (default 1); a sample's seconds are divided by it.

    Returns:
        name -> ``{"seconds": [per call, one per round], "median_s", "min_s", "max_s", "per_s" (1 / median),
        "per_s_best" (1 / min)}``. Nothing is asserted about speed.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise SpecError("repeats", f"expected a positive integer, got {repeats!r}")
    inputs, calls = inputs or {}, calls or {}
    names = list(fns)
    cursor = {name: 0 for name in names}

    def run(name: str) -> None:
        args = inputs.get(name)
        for _ in range(calls.get(name, 1)):
            if args:
                fns[name](*args[cursor[name] % len(args)])
                cursor[name] += 1
            else:
                fns[name]()

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    try:
        with torch.no_grad():
            for _ in range(warmup):
                for name in names:
                    run(name)
            for r in range(repeats):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    t0 = time.perf_counter()
                    run(name)
                    seconds[name].append((time.perf_counter() - t0) / calls.get(name, 1))
    finally:
        torch.set_num_threads(old)
    return {name: {"seconds": s, "median_s": statistics.median(s), "min_s": min(s), "max_s": max(s),
                   "per_s": 1 / statistics.median(s), "per_s_best": 1 / min(s)} for name, s in seconds.items()}
