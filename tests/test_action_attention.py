"""SE and CBAM with the learning-to-ignore modes (reference §7.2) and their continual versions."""

from __future__ import annotations

import math

import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.action.attention import CBAM, MODES, SE, CoAttention, ignore_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIG1 = 1.0 / (1.0 + math.exp(-1.0))  # sigmoid(1) = 0.7311


def _video(seed: int = 0, c: int = 8, t: int = 9) -> torch.Tensor:
    return torch.randn(2, c, t, 5, 5, generator=torch.Generator().manual_seed(seed))


def _pair(cls, mode_a: str, mode_b: str, alpha_b: float = 1.0, **kw):
    """Two modules with the same weights (seeded) and different modes."""
    torch.manual_seed(0)
    a = cls(8, 2, mode=mode_a, **kw)
    b = cls(8, 2, mode=mode_b, alpha=alpha_b, **kw)
    b.load_state_dict(a.state_dict())
    return a.eval(), b.eval()


def _negate_last_layers(module) -> None:
    with torch.no_grad():
        module.fc2.weight.neg_()
        module.fc2.bias.neg_()
        if isinstance(module, CBAM):
            module.spatial.weight.neg_()
            module.spatial.bias.neg_()


def test_ignore_mask_formulas():
    z = torch.linspace(-30, 30, 601)
    s = torch.sigmoid(z)
    assert torch.equal(ignore_mask(z, "plain"), s)
    assert torch.allclose(ignore_mask(z, "ign1", 0.3), 1 - 0.3 * s)
    assert torch.allclose(ignore_mask(z, "ign2"), torch.sigmoid(1 / s))
    assert torch.allclose(ignore_mask(z, "ign3"), torch.sigmoid(-z))
    assert torch.allclose(ignore_mask(z, "ign1", 1.0), ignore_mask(z, "ign3"), atol=1e-6)
    assert torch.equal(ignore_mask(z, "ign1", 0.0), torch.ones_like(z))
    ign2 = ignore_mask(torch.linspace(-8, 8, 161), "ign2")
    assert ign2.min() > SIG1 and ign2.max() <= 1.0 and ign2.min() < SIG1 + 0.01  # the whole range is reached


@pytest.mark.parametrize("cls", [SE, CBAM])
@pytest.mark.parametrize("scope", ["frame", "clip"])
def test_ign3_is_plain_with_last_layer_negated(cls, scope):
    plain, ign3 = _pair(cls, "plain", "ign3", scope=scope)
    _negate_last_layers(plain)
    x = _video()
    with torch.no_grad():
        assert (plain(x) - ign3(x)).abs().max() <= 1e-6


@pytest.mark.parametrize("cls", [SE, CBAM])
def test_ign1_alpha1_equals_ign3(cls):
    ign1, ign3 = _pair(cls, "ign1", "ign3")
    x = _video(1)
    with torch.no_grad():
        assert (ign1(x) - ign3(x)).abs().max() <= 1e-6
    ign1_half, ign3 = _pair(cls, "ign3", "ign1", alpha_b=0.5)
    with torch.no_grad():
        assert (ign1_half(x) - ign3(x)).abs().max() > 1e-3  # alpha < 1 is a different mask


def _masks(module, x) -> list[torch.Tensor]:
    with torch.no_grad():
        return [module.mask(x)] if isinstance(module, SE) else list(module.masks(x))


@pytest.mark.parametrize("cls", [SE, CBAM])
def test_mask_ranges(cls):
    x = 5 * _video(2)
    torch.manual_seed(3)
    for mode, alpha, lo, hi in [("plain", 1.0, 0.0, 1.0), ("ign3", 1.0, 0.0, 1.0), ("ign2", 1.0, SIG1, 1.0),
                                ("ign1", 0.5, 0.5, 1.0), ("ign1", 0.2, 0.8, 1.0)]:
        module = cls(8, 2, mode=mode, alpha=alpha).eval()
        with torch.no_grad():  # large logits so the masks spread over their ranges
            module.fc2.weight.mul_(20)
        for m in _masks(module, x):
            assert m.min() >= lo and m.max() <= hi, (mode, alpha, m.min(), m.max())
            assert m.max() - m.min() > 0.05 * (hi - lo)
    identity = cls(8, 2, mode="ign1", alpha=0.0)
    assert torch.equal(identity(x), x)


@pytest.mark.parametrize("cls", [SE, CBAM])
def test_ignoring_adds_no_parameters_and_works_on_images(cls):
    counts = {sum(p.numel() for p in cls(16, 4, mode=m).parameters()) for m in MODES}
    assert len(counts) == 1
    image = torch.randn(3, 16, 6, 7)
    assert cls(16, 4, mode="ign2")(image).shape == image.shape


def test_scopes_pool_differently():
    frame, clip = _pair(SE, "plain", "plain", scope="frame")
    clip.scope = "clip"
    x = _video(4)
    assert frame.mask(x).shape == (2, 8, 9, 1, 1)
    assert clip.mask(x).shape == (2, 8, 1, 1, 1)
    assert (frame(x) - clip(x)).abs().max() > 1e-3


@pytest.mark.parametrize("cls", [SE, CBAM])
@pytest.mark.parametrize("mode", ["plain", "ign2"])
def test_continual_frame_scope_is_exact(cls, mode):
    torch.manual_seed(5)
    module = cls(8, 2, mode=mode, scope="frame").eval()
    step = CoAttention(module)
    assert step.delay == 0
    x = _video(5)
    with torch.no_grad():
        ref = module(x)
        outs = [step.forward_step(x[:, :, t]) for t in range(x.shape[2])]
    assert max((o - ref[:, :, t]).abs().max().item() for t, o in enumerate(outs)) <= 1e-5


@pytest.mark.parametrize("cls", [SE, CBAM])
@pytest.mark.parametrize("fill", ["zeros", "replicate"])
def test_continual_clip_scope_equals_clip_se_on_each_window(cls, fill):
    torch.manual_seed(6)
    module = cls(8, 2, mode="ign1", alpha=0.7, scope="clip").eval()
    window = 4
    step = CoAttention(module, window=window, temporal_fill=fill)
    x = _video(6)
    with torch.no_grad():
        outs = [step.forward_step(x[:, :, t]) for t in range(x.shape[2])]
        refs = [module(x[:, :, t - window + 1: t + 1])[:, :, -1] for t in range(window - 1, x.shape[2])]
        early = module(x[:, :, :window])[:, :, 0]
    assert all(o is not None for o in outs)  # frame t is attended at step t (delay 0)
    assert max((o - r).abs().max().item() for o, r in zip(outs[window - 1:], refs)) <= 1e-5
    # before the window is full the pools hold the initial fill: the transient, not the clip result
    assert (outs[0] - early).abs().max() > 1e-4
    # clip mode of the continual module is the clip module
    with torch.no_grad():
        assert torch.equal(step(x), module(x))


def test_continual_state_reset_and_peek():
    torch.manual_seed(7)
    step = CoAttention(SE(8, 2, scope="clip").eval(), window=3)
    x = _video(7)
    with torch.no_grad():
        first = [step.forward_step(x[:, :, t]) for t in range(5)]
        peek = step.forward_step(x[:, :, 5], update_state=False)
        again = step.forward_step(x[:, :, 5])
        assert torch.equal(peek, again)
        step.clean_state()
        assert step.get_state() is None
        assert torch.equal(step.forward_steps(x[:, :, :5])[:, :, 4], first[4])


def test_bad_options_raise_spec_error():
    with pytest.raises(SpecError, match="mode"):
        SE(8, mode="ign4")
    with pytest.raises(SpecError, match="alpha"):
        CBAM(8, mode="ign1", alpha=1.5)
    with pytest.raises(SpecError, match="scope"):
        SE(8, scope="video")
    with pytest.raises(SpecError, match="window"):
        CoAttention(SE(8, scope="clip"), window=0)
