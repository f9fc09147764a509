"""ONNX export of one continual step (CoX3D, CoST-GCN, CoAGCN): the step module equals ``forward_step`` and the
library's state, ONNX Runtime reproduces both, the runner keeps the state, bad files and bad state are refused."""

from __future__ import annotations

import json

import continual as co
import numpy as np
import pytest
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.action import onnx_step
from hcgym.perception.action.gcn import GCNConfig, build_gcn, star_variant
from hcgym.perception.action.gcn import to_continual as gcn_continual
from hcgym.perception.action.onnx_step import (
    META_KEY,
    OnnxStepRunner,
    StepModule,
    export_step,
    initial_state,
)
from hcgym.perception.action.x3d import X3DConfig, build_x3d, state_tensors
from hcgym.perception.action.x3d import to_continual as x3d_continual

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-5
X3D = dict(num_classes=5, frames=10, size=32, stem_width=4, widths=(4, 8), depths=(1, 1), head_width=8)
GCN = dict(channels=(4, 4, 8, 8), temporal_kernel=5, num_classes=5, num_person=2)
FRAME = (3, 32, 32)


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random BN statistics and affine parameters (so no layer is an identity); eval mode."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(1 + 0.2 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
    return model.eval()


def _x3d(fill: str = "zeros", **kw) -> co.Sequential:
    torch.manual_seed(0)
    return x3d_continual(_randomise(build_x3d(X3DConfig(**{**X3D, **kw})), 1), temporal_fill=fill)


def _gcn(model: str, star: bool) -> co.Sequential:
    torch.manual_seed(0)
    clip = _randomise(build_gcn(GCNConfig(model=model, strides=(1, 2, 1, 2), **GCN)), 2)
    clip = star_variant(clip).eval() if star else clip
    return gcn_continual(clip, clip.cfg.receptive_field(2))


MODELS = {
    "x3d-se-frame": lambda: _x3d(),
    "x3d-cbam-clip": lambda: _x3d(attention="cbam", attention_scope="clip"),
    "x3d-se-clip-replicate": lambda: _x3d("replicate", attention_scope="clip"),
    "stgcn-strided": lambda: _gcn("stgcn", False),
    "stgcn-star": lambda: _gcn("stgcn", True),
    "agcn-strided": lambda: _gcn("agcn", False),
    "agcn-star": lambda: _gcn("agcn", True),
}


def _frame_shape(name: str) -> tuple[int, ...] | None:
    return FRAME if name.startswith("x3d") else None


def _frames(step: StepModule, n: int, batch: int = 1, seed: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, *step.frame_shape, generator=g) for _ in range(n)]


def _state_diff(a: list, b: list) -> float:
    """Largest |a - b| over two state lists (equal infinities count 0)."""
    return max(onnx_step._max_diff(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("name", list(MODELS))
def test_step_module_equals_forward_step_and_state(name):
    net = MODELS[name]()
    step = StepModule(net, _frame_shape(name))
    state = step.initial_state(batch=2)
    assert len(state) == len(step.state_names) and len(set(step.state_names)) == len(state)
    assert step.delay == net.delay and step.frames_per_prediction == int(net.stride[0])
    fpp = step.frames_per_prediction
    outs, valid = [], []
    with torch.no_grad():
        for t, frame in enumerate(_frames(step, step.delay + 3 * fpp + 4, batch=2)):
            expect = net.forward_step(frame)
            logits, ok, *state = step(frame, *state)
            assert bool(ok) == (expect is not None), t
            if expect is None:
                assert not logits.any()  # no output: zeros
            else:
                assert logits.shape == expect.shape and (logits - expect).abs().max() <= TOL, t
                outs.append(logits)
                valid.append(t)
            assert _state_diff(state, step.co_state(net, batch=2)) <= TOL, t
    # warm-up: nothing during the first `delay` steps, then one output every `frames_per_prediction` steps
    assert valid[0] == step.delay and valid == list(range(step.delay, step.delay + 3 * fpp + 4, fpp))
    assert (outs[0] - outs[1]).abs().max() > 1e-4  # the outputs follow the frames
    def floats(s: list) -> int:
        return sum(t.numel() for t in s if t.is_floating_point())

    assert floats(state) == 2 * floats(step.initial_state(1)) > 0  # one state per stream of the batch
    assert all(bool(t.abs().gt(0).any()) for t in state if t.is_floating_point() and torch.isfinite(t).all())


def test_co_state_is_the_library_state_rotated():
    """After a few steps the ring buffers of continual-inference, rotated oldest first, are the step's state."""
    net = MODELS["stgcn-star"]()
    step = StepModule(net)
    state = step.initial_state()
    with torch.no_grad():
        for frame in _frames(step, 7):
            net.forward_step(frame)
            state = list(step(frame, *state)[2:])
    library = dict(state_tensors(net))
    conv = "block1.body.main.tcn"  # k = 5: 4 slots of partial sums; 3 inputs so far (block0 delays 4 of 7 frames)
    i = step.state_names.index(f"{conv}.buffer")
    ring, index = library[f"{conv}.0"], int(library[f"{conv}.1"])
    assert index == 3 and torch.equal(state[i], torch.roll(ring, -index, 0))
    assert not torch.equal(state[i], ring)  # the rotation matters
    assert int(state[i + 1]) == int(library[f"{conv}.2"])  # stride_index


def test_initial_state_function_and_frame_shape():
    net = MODELS["x3d-se-frame"]()
    state = initial_state(net, batch=3, frame_shape=FRAME)
    assert [tuple(t.shape) for t in state] == [tuple(t.shape) for t in StepModule(net, FRAME).initial_state(3)]
    with pytest.raises(SpecError, match="frame_shape"):
        StepModule(net)  # CoX3D does not know its frame size
    with pytest.raises(SpecError, match="frame_shape"):
        StepModule(net, (3, 0, 32))
    with pytest.raises(SpecError, match="batch"):
        StepModule(net, FRAME).initial_state(0)


def test_wrong_state_or_frame_is_refused():
    net = MODELS["agcn-strided"]()
    step = StepModule(net)
    state = step.initial_state()
    frame = torch.zeros(1, *step.frame_shape)
    with pytest.raises(SpecError, match="expected 22 state tensors, got 21"):
        step(frame, *state[:-1])
    bad = list(state)
    bad[3] = torch.zeros(2, *state[3].shape[1:])
    with pytest.raises(SpecError, match=rf"state_3: {step.state_names[3]}: expected shape"):
        step(frame, *bad)
    bad = list(state)
    bad[1] = state[1].float()  # a counter must stay int64
    with pytest.raises(SpecError, match="state_1"):
        step(frame, *bad)
    with pytest.raises(SpecError, match="frame"):
        step(torch.zeros(1, 3, 25), *state)
    with pytest.raises(SpecError, match="state_0"):
        step(torch.zeros(2, *step.frame_shape), *state)  # a batch of two needs a state of two


def test_unsupported_models_are_refused():
    with pytest.raises(SpecError, match="continual"):
        StepModule(nn.Linear(2, 2))
    with pytest.raises(SpecError, match="temporal stride without a temporal kernel"):
        StepModule(co.Sequential(co.Conv1d(2, 2, 1, stride=2)).eval(), (2,))
    with pytest.raises(SpecError, match="Parallel"):
        StepModule(co.Sequential(co.Broadcast(2), co.Parallel(co.Delay(1), co.Delay(1)), co.Reduce("sum")).eval(), (2,))
    training = MODELS["stgcn-star"]().train()
    with pytest.raises(SpecError, match="training mode"):
        StepModule(training)
    with pytest.raises(SpecError, match="inference only"):
        StepModule(MODELS["stgcn-star"]()).train()


@pytest.mark.parametrize("name,opset", [("x3d-cbam-clip", 17), ("stgcn-strided", 18), ("agcn-star", 17)])
def test_export_parity_and_runner(tmp_path, name, opset):
    net = MODELS[name]()
    path = tmp_path / f"{name}.onnx"
    report = export_step(net, path, opset, frame_shape=_frame_shape(name))
    assert path.is_file() and report["bytes"] == path.stat().st_size and report["opset"] == opset
    assert report["steps"] >= 2 * net.delay + 5 and report["predictions"] >= 3
    for key in ("logits_max_abs_diff", "state_max_abs_diff", "step_logits_max_abs_diff", "co_state_max_abs_diff"):
        assert 0 <= report[key] <= 1e-4, key
    assert report["state_floats"] > 0 and report["state_tensors"] == len(StepModule(net, _frame_shape(name)).state_names)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # nothing else left behind

    runner = OnnxStepRunner(path)
    meta = runner.meta
    assert meta["delay"] == net.delay and meta["frames_per_prediction"] == int(net.stride[0])
    assert [s["input"] for s in meta["state"]] == [f"state_{i}" for i in range(report["state_tensors"])]
    names = [o.name for o in runner.session.get_outputs()]
    assert names[:2] == ["logits", "valid"] and names[2] == "next_state_0"

    # the runner answers as the continual model, frame after frame, from a fresh state
    net.clean_state()
    step = StepModule(net, _frame_shape(name))
    frames = _frames(step, net.delay + 2 * runner.frames_per_prediction + 3, seed=11)
    first = []
    with torch.no_grad():
        for t, frame in enumerate(frames):
            expect = net.forward_step(frame)
            got = runner.step(frame.numpy()[0])  # one frame without the batch axis is accepted at batch 1
            assert (got is None) == (expect is None), t
            assert runner.warmed_up == (t >= net.delay)
            if got is not None:
                assert got.shape == tuple(expect.shape) and np.abs(got - expect.numpy()).max() <= 1e-4, t
            first.append(got)
    runner.reset()
    assert runner.steps == 0 and not runner.warmed_up
    again = [runner.step(f.numpy()) for f in frames]
    assert all((a is None and b is None) or np.array_equal(a, b) for a, b in zip(first, again))


def test_export_leaves_the_model_state_alone(tmp_path):
    net = MODELS["x3d-se-frame"]()
    step = StepModule(net, FRAME)
    with torch.no_grad():
        for frame in _frames(step, 4):
            net.forward_step(frame)
    before = [(n, t.clone()) for n, t in state_tensors(net)]
    export_step(net, tmp_path / "m.onnx", frame_shape=FRAME)
    after = state_tensors(net)
    assert [n for n, _ in before] == [n for n, _ in after]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(before, after))


def test_export_refuses_bad_arguments_and_failed_checks(tmp_path, monkeypatch):
    net = MODELS["stgcn-star"]()
    with pytest.raises(SpecError, match="opset"):
        export_step(net, tmp_path / "a.onnx", opset=13)
    with pytest.raises(SpecError, match="path"):
        export_step(net, tmp_path / "a.txt")
    with pytest.raises(SpecError, match="steps"):
        export_step(net, tmp_path / "a.onnx", steps=net.delay)
    with pytest.raises(SpecError, match="frame_shape"):
        export_step(MODELS["x3d-se-frame"](), tmp_path / "a.onnx")
    monkeypatch.setattr(onnx_step, "TOLERANCE", -1.0)  # any difference, even 0, now fails the check
    with pytest.raises(SpecError, match="nothing was written"):
        export_step(net, tmp_path / "a.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter's notice (the foreign model)
def test_runner_refuses_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        OnnxStepRunner(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(SpecError, match="not a readable ONNX model"):
        OnnxStepRunner(corrupt)
    foreign = tmp_path / "linear.onnx"  # a valid ONNX model, but not a step export
    torch.onnx.export(nn.Linear(3, 2), (torch.zeros(1, 3),), str(foreign), input_names=["frame"], dynamo=False)
    with pytest.raises(SpecError, match=META_KEY):
        OnnxStepRunner(foreign)


def test_runner_refuses_wrong_frames_and_truncated_export(tmp_path):
    import onnx

    net = MODELS["stgcn-star"]()
    path = tmp_path / "s.onnx"
    export_step(net, path)
    runner = OnnxStepRunner(path)
    with pytest.raises(SpecError, match=r"frame: expected \(1, 3, 25, 2\)"):
        runner.step(np.zeros((3, 25, 1), np.float32))
    assert runner.steps == 0
    # metadata that no longer matches the graph's inputs
    model = onnx.load(str(path))
    meta = json.loads(model.metadata_props[0].value)
    meta["state"] = meta["state"][:-1]
    model.metadata_props[0].value = json.dumps(meta)
    onnx.save(model, str(tmp_path / "t.onnx"))
    with pytest.raises(SpecError, match="do not match its metadata"):
        OnnxStepRunner(tmp_path / "t.onnx")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SpecError, match="not a readable ONNX model"):
        OnnxStepRunner(path)
