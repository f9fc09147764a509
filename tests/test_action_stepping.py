"""CoX3D in frame layout (:mod:`hcgym.perception.action.stepping`): batch norm folding, the frame-layout clip model
and continual step against the clip X3D, the state against the paper's equations, and their ONNX Runtime versions.
No timed assertions: speed is measured by benchmarks/action_continual.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.action import stepping, x3d

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise_batch_norms(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so that folding them is tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) - 0.5)
    return model


def _x3d(padding: bool, frames: int = 12, **options) -> x3d.X3D:
    torch.manual_seed(0)
    cfg = x3d.X3DConfig(num_classes=3, frames=frames, size=16, stem_width=4, widths=(4, 8), depths=(1, 2),
                        head_width=8, temporal_padding=padding, **options)
    return _randomise_batch_norms(x3d.build_x3d(cfg).eval())


def _unpadded_twin(model: x3d.X3D) -> x3d.X3D:
    """The same weights without temporal padding (what the continual model equals)."""
    cfg = x3d.X3DConfig.from_dict({**model.config.to_dict(), "temporal_padding": False, "frames": 64})
    twin = x3d.build_x3d(cfg).eval()
    twin.load_state_dict(model.state_dict())
    return twin


def test_folded_batch_norm_equals_conv_then_bn():
    conv = nn.Conv3d(4, 6, (3, 3, 3), padding=(1, 1, 1), groups=2, bias=True)
    bn = _randomise_batch_norms(nn.Sequential(nn.BatchNorm3d(6))).eval()[0]
    w, b = stepping.fold_batch_norm(conv, bn)
    x = torch.randn(2, 4, 5, 7, 7)
    with torch.no_grad():
        ref = bn(conv(x))
        got = nn.functional.conv3d(x, w, b, padding=1, groups=2)
    assert torch.allclose(got, ref, atol=1e-5)
    assert not torch.allclose(got, conv(x).detach(), atol=1e-2)  # the fold changed something


@pytest.mark.parametrize("padding", [True, False])
@pytest.mark.parametrize("options", [{}, {"attention_mode": "ign1", "alpha": 0.5}, {"attention": "none"}])
def test_frame_layout_clip_model_equals_the_x3d(padding, options):
    model = _x3d(padding, **options)
    x = torch.randn(2, 3, 12, 16, 16)
    with torch.no_grad():
        ref, got = model(x), stepping.FrameX3D(model)(x)
    assert got.shape == ref.shape == (2, 3)
    assert (got - ref).abs().max().item() < 1e-5


@pytest.mark.parametrize("padding", [True, False])
def test_frame_layout_step_equals_the_unpadded_clip_model_after_the_delay(padding):
    model = _x3d(padding)
    step = stepping.FrameX3DStep(model)
    cfg = model.config
    assert step.pool_size == cfg.pool_size
    assert step.delay == int(x3d.to_continual(model).delay)  # as the library's CoX3D
    twin = _unpadded_twin(model)
    state = step.initial_state(2)
    video = torch.randn(2, 3, step.delay + 6, 16, 16)
    worst, outputs = 0.0, 0
    with torch.no_grad():
        for t in range(video.shape[2]):
            logits, valid, *state = step(video[:, :, t], *state)
            assert bool(valid) == (t >= step.delay)
            if bool(valid):
                ref = twin(video[:, :, t - step.delay:t + 1])
                worst, outputs = max(worst, (logits - ref).abs().max().item()), outputs + 1
    assert outputs == 6 and worst < 1e-5
    if padding:  # the padded clip model differs from its continual version (the paper's §1.2)
        with torch.no_grad():
            assert (model(video[:, :, -12:]) - twin(video[:, :, -12:])).abs().max().item() > 1e-4


def test_frame_layout_step_with_a_longer_pool_equals_the_longer_clip():
    model = _x3d(False)
    step = stepping.FrameX3DStep(model, pool_size=5)
    assert step.delay == model.config.clip_frames(5) - 1
    video = torch.randn(1, 3, step.delay + 3, 16, 16)
    loop = stepping.StateLoop(step, step.initial_state(1))
    with torch.no_grad():
        outs = [loop(video[:, :, t]) for t in range(video.shape[2])]
        ref = _unpadded_twin(model)(video[:, :, -step.delay - 1:])
    assert all(o is None for o in outs[:step.delay]) and (outs[-1] - ref).abs().max().item() < 1e-5


@pytest.mark.parametrize("padding", [True, False])
def test_frame_layout_state_is_the_papers_minimal_state(padding):
    model = _x3d(padding)
    step = stepping.FrameX3DStep(model)
    state = step.initial_state(3)
    floats = sum(t.numel() for t in state if t.is_floating_point())
    cfg = x3d.X3DConfig.from_dict({**model.config.to_dict(), "temporal_padding": False})
    assert floats == x3d.expected_state_floats(cfg, pool_size=step.pool_size, batch=3)  # Eq. 5, 8, 9
    # the library keeps (k - 1) partial frames per slot of every temporal conv: more than the minimal state
    co_model = x3d.to_continual(model)
    with torch.no_grad():
        for _ in range(step.delay + 1):
            co_model.forward_step(torch.randn(3, 3, 16, 16))
    assert x3d.state_floats(co_model, minimal=True) == floats < x3d.state_floats(co_model)
    assert state[-1].dtype == torch.long and int(state[-1]) == 0


def test_frame_layout_onnx_step_and_clip_match_pytorch(tmp_path):
    model = _x3d(True)
    step, clip_model = stepping.FrameX3DStep(model), stepping.FrameX3D(model)
    initial = stepping.export_frame_step(step, tmp_path / "step.onnx", batch=2)
    onnx_loop = stepping.StateLoop(stepping.onnx_function(tmp_path / "step.onnx"), initial)
    torch_loop = stepping.StateLoop(step, step.initial_state(2))
    frames = torch.randn(step.delay + 4, 2, 3, 16, 16)
    worst, outputs = 0.0, 0
    with torch.no_grad():
        for frame in frames:
            ref, got = torch_loop(frame), onnx_loop(frame.numpy())
            assert (ref is None) == (got is None)
            if ref is not None:
                worst, outputs = max(worst, float(np.abs(got - ref.numpy()).max())), outputs + 1
        assert outputs == 4 and worst < 1e-4
        for a, b in zip(onnx_loop.state, torch_loop.state):
            assert np.abs(np.asarray(a, np.float64) - b.double().numpy()).max() < 1e-4
        clip = torch.randn(1, 3, 12, 16, 16)
        stepping.export_graph(clip_model, (clip,), tmp_path / "clip.onnx", ["clip"], ["logits"])
        (got,) = stepping.onnx_function(tmp_path / "clip.onnx")(clip.numpy())
        assert np.abs(got - model(clip).numpy()).max() < 1e-4


def test_frame_layout_refuses_what_it_cannot_run():
    with pytest.raises(SpecError, match="per-frame attention"):
        stepping.FrameX3D(_x3d(True, attention_scope="clip"))
    with pytest.raises(SpecError, match="temporal stride"):
        stepping.FrameConv(nn.Conv3d(2, 2, (3, 1, 1), stride=(2, 1, 1)))
    with pytest.raises(SpecError, match="pool_size"):
        stepping.FrameX3DStep(_x3d(False), pool_size=0)
