"""The X3D-like clip model and CoX3D: frame-by-frame stepping equals the clip model after the delay."""

from __future__ import annotations

import continual as co
import pytest
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.action.x3d import (
    X3DConfig,
    build_x3d,
    continual_block,
    expected_state_floats,
    state_floats,
    state_tensors,
    step_clip,
    to_continual,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(num_classes=5, frames=8, size=32, widths=(8, 16), depths=(1, 1), stem_temporal_kernel=3)
FOUR_STAGES = dict(num_classes=5, frames=16, size=32)  # the default layout (stem 5x1x1, 4 stages) on 32x32


def _model(seed: int = 0, **kw) -> nn.Module:
    """A clip model with random weights and random BN statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build_x3d(X3DConfig(**kw))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(1 + 0.2 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
        model.head.fc2.weight.mul_(10)  # logits that move with the input, so differences show
    return model.eval()


def _video(frames: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def _max_step_error(clip: nn.Module, net: co.Sequential, video: torch.Tensor, clip_frames: int) -> float:
    """Step ``net`` through ``video``; check the first ``delay`` outputs are None; return the largest
    |continual - clip| over the later steps, the clip model seeing the ``clip_frames`` frames ending there."""
    outs = step_clip(net, video)
    assert all(o is None for o in outs[: net.delay])
    assert all(o is not None for o in outs[net.delay:])
    with torch.no_grad():
        return max((outs[t] - clip(video[:, :, t - clip_frames + 1: t + 1])).abs().max().item()
                   for t in range(net.delay, video.shape[2]))


@pytest.mark.parametrize("kw", [
    TINY,
    dict(TINY, attention="cbam", attention_mode="ign1", alpha=0.5),
    dict(TINY, attention="none"),
    dict(FOUR_STAGES, attention_mode="ign2"),
], ids=["tiny-se", "tiny-cbam-ign1", "tiny-none", "four-stages-se-ign2"])
def test_continual_equals_clip_after_delay(kw):
    clip = _model(**kw)
    cfg = clip.config
    net = to_continual(clip)
    assert net.delay == cfg.frames - 1 == cfg.clip_frames(cfg.pool_size) - 1
    assert _max_step_error(clip, net, _video(cfg.frames + 5), cfg.frames) <= 1e-5
    with torch.no_grad():  # the continual model's clip mode is the clip model
        x = _video(cfg.frames, seed=1)
        assert (net(x) - clip(x)).abs().max() <= 1e-5


def test_each_block_steps_like_the_clip_block():
    clip = _model(**FOUR_STAGES)
    x = torch.randn(2, 8, 9, 16, 16)
    for stride_block in (clip.stages[0][0], clip.stages[1][0]):
        c_in = stride_block.branch.conv_a.in_channels
        x = torch.randn(2, c_in, 9, 16, 16)
        step = continual_block(stride_block, frames_in=9)
        assert step.delay == 2
        outs = [step.forward_step(x[:, :, t]) for t in range(9)]
        assert outs[0] is None and outs[1] is None
        with torch.no_grad():
            ref = stride_block(x)
            err = max((outs[t] - ref[:, :, t - 2]).abs().max().item() for t in range(2, 9))
        assert err <= 1e-5


def test_pool_extension_equals_a_longer_clip():
    clip = _model(seed=2, **TINY)
    cfg = clip.config
    pool = cfg.pool_size + 4
    net = to_continual(clip, pool_size=pool)
    assert net.delay == cfg.clip_frames(pool) - 1 > cfg.frames - 1
    assert _max_step_error(clip, net, _video(cfg.clip_frames(pool) + 3, seed=2), cfg.clip_frames(pool)) <= 1e-5


def test_trained_clip_model_converts_without_retraining():
    clip = _model(seed=3, **TINY)
    cfg = clip.config
    clip.train()
    opt = torch.optim.SGD(clip.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(3)
    before = [p.detach().clone() for p in clip.parameters()]
    for _ in range(3):
        x = torch.randn(4, 3, cfg.frames, 32, 32, generator=g)
        y = torch.randint(0, cfg.num_classes, (4,), generator=g)
        loss = nn.functional.cross_entropy(clip(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    clip.eval()
    assert any((p - b).abs().max() > 1e-4 for p, b in zip(clip.parameters(), before))
    net = to_continual(clip)
    assert _max_step_error(clip, net, _video(cfg.frames + 3, seed=4), cfg.frames) <= 1e-5


def test_temporal_padding_breaks_equivalence():
    """Negative test: a clip model with temporal zero padding differs from its continual version (§1.2)."""
    padded = _model(seed=4, temporal_padding=True, **TINY)
    cfg = padded.config
    net = to_continual(padded)
    assert net.delay == cfg.trunk_receptive_field - 1 + cfg.frames - 1
    video = _video(net.delay + 3, seed=5)
    outs = step_clip(net, video)
    with torch.no_grad():
        err = max((outs[t] - padded(video[:, :, t - cfg.frames + 1: t + 1])).abs().max().item()
                  for t in range(net.delay, video.shape[2]))
    # the same weights without padding are exact: only the padding makes the difference
    unpadded = build_x3d(X3DConfig(**TINY)).eval()
    unpadded.load_state_dict(padded.state_dict())
    exact = _max_step_error(unpadded, to_continual(unpadded), video, cfg.frames)
    assert exact <= 1e-5
    assert err > 1e-3 and err > 1000 * exact


def test_clip_scope_attention_is_an_approximation():
    clip = _model(seed=5, attention_scope="clip", **TINY)
    net = to_continual(clip)
    assert net.delay == clip.config.frames - 1  # the windowed SE adds no delay
    err = _max_step_error(clip, net, _video(12, seed=6), clip.config.frames)
    assert 0 < err < 0.5  # the temporal SE window follows the stream instead of the clip


def test_state_accounting_and_reset():
    clip = _model(seed=6, attention="cbam", attention_scope="clip", **TINY)
    cfg = clip.config
    net = to_continual(clip)
    assert state_tensors(net) == [] and state_floats(net) == 0
    video = _video(cfg.frames + 2, seed=7)
    first = step_clip(net, video)
    assert state_floats(net, minimal=True) == expected_state_floats(cfg, batch=2)
    assert state_floats(net) > state_floats(net, minimal=True)  # the library keeps (k-1)^2 partial frames
    names = [n for n, _ in state_tensors(net)]
    assert len(names) == len(set(names)) == sum(co.utils.flatten(net._state_shape))
    net.clean_state()
    assert state_tensors(net) == []
    again = step_clip(net, video)
    assert all(a is None and b is None or torch.equal(a, b) for a, b in zip(first, again))


def test_state_order_is_the_onnx_wrapper_order():
    """The state list in order drives continual-inference's ONNX wrapper (state in, next state out)."""
    clip = _model(seed=7, attention="cbam", attention_scope="clip", **TINY)
    net = to_continual(clip)
    video = _video(clip.config.frames + 2, seed=8)
    step_clip(net, video[:, :, :-1])
    state = [t.clone() for _, t in state_tensors(net)]
    with torch.no_grad():
        out, *next_state = co.onnx.OnnxWrapper(net)(video[:, :, -1], *state)
        ref = net.forward_step(video[:, :, -1])
    assert torch.equal(out, ref)
    assert all(torch.equal(a, b) for a, (_, b) in zip(next_state, state_tensors(net)))


def test_config_round_trip_and_errors():
    cfg = X3DConfig(**TINY)
    assert X3DConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.trunk_receptive_field == 1 + 2 + 2 * 2 and cfg.pool_size == 2
    cases = [
        (dict(TINY, frames=6), "frames"),
        (dict(TINY, depths=(1,)), "depths"),
        (dict(TINY, attention="transformer"), "attention"),
        (dict(TINY, attention_mode="ignore"), "attention_mode"),
        (dict(TINY, alpha=2.0), "alpha"),
        (dict(TINY, temporal_kernel=2), "temporal_kernel"),
        (dict(TINY, attention_scope="video"), "attention_scope"),
        (dict(TINY, widths=(8, 0)), "widths"),
        (dict(TINY, alpha="half"), "alpha"),
        (dict(TINY, frames="8"), "frames"),
    ]
    for kw, field in cases:
        with pytest.raises(SpecError) as err:
            X3DConfig(**kw).check()
        assert err.value.field == field
    with pytest.raises(SpecError, match="unknown X3D option"):
        X3DConfig.from_dict({"frames": 8, "colour": "red"})
    with pytest.raises(SpecError, match="pool_size"):
        to_continual(build_x3d(cfg), pool_size=0)
    assert X3DConfig(**TINY, temporal_padding=True).check().pool_size == 8
