"""MMTM fusion of the RGB (X3D-like) and skeleton streams, with the ignoring excitations (reference §7.2)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.action.attention import MODES
from hcgym.perception.action.fusion import MMTM, TwoStreamMMTM, skeleton_tcn, x3d_stages
from hcgym.perception.action.x3d import X3DConfig, build_x3d

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIG1 = 1.0 / (1.0 + math.exp(-1.0))


def _streams(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 12, 4, 6, 6, generator=g), torch.randn(3, 10, 8, 25, generator=g)  # video, skeleton


@pytest.mark.parametrize("mode", MODES)
def test_mmtm_keeps_shapes(mode):
    a, b = _streams()
    ya, yb = MMTM(12, 10, mode=mode, alpha=0.5)(a, b)
    assert ya.shape == a.shape and yb.shape == b.shape
    assert not torch.equal(ya, a) and not torch.equal(yb, b)


def test_mmtm_excitation_ranges():
    a, b = 4 * _streams(1)[0], 4 * _streams(1)[1]
    for mode, alpha, lo, hi in [("plain", 1.0, 0.0, 1.0), ("ign3", 1.0, 0.0, 1.0), ("ign2", 1.0, SIG1, 1.0),
                                ("ign1", 0.5, 0.5, 1.0), ("ign1", 0.0, 1.0, 1.0)]:
        torch.manual_seed(2)
        m = MMTM(12, 10, mode=mode, alpha=alpha)
        with torch.no_grad():
            m.fc_a.weight.mul_(30)
            m.fc_b.weight.mul_(30)
            for e in m.excitations(a, b):
                assert e.min() >= lo and e.max() <= hi, (mode, e.min(), e.max())
                if hi > lo:
                    assert e.max() - e.min() > 0.05 * (hi - lo)
            ya, yb = m(a, b)
            ea, eb = m.excitations(a, b)
            assert torch.allclose(ya, a * ea[:, :, None, None, None]) and torch.allclose(yb, b * eb[:, :, None, None])


def test_mmtm_ign1_alpha1_equals_ign3_and_ign3_is_plain_negated():
    a, b = _streams(3)
    torch.manual_seed(4)
    plain = MMTM(12, 10)
    ign1, ign3 = MMTM(12, 10, mode="ign1", alpha=1.0), MMTM(12, 10, mode="ign3")
    ign1.load_state_dict(plain.state_dict())
    ign3.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for x, y in zip(ign1(a, b), ign3(a, b)):
            assert (x - y).abs().max() <= 1e-6
        for layer in (plain.fc_a, plain.fc_b):
            layer.weight.neg_()
            layer.bias.neg_()
        for x, y in zip(plain(a, b), ign3(a, b)):
            assert (x - y).abs().max() <= 1e-6
    assert MMTM(12, 10, gain=2.0)(a, b)[0].shape == a.shape


def _fusion(mode: str = "ign2") -> TwoStreamMMTM:
    torch.manual_seed(5)
    x3d = build_x3d(X3DConfig(num_classes=4, frames=8, size=32, widths=(8, 16), depths=(1, 1), stem_temporal_kernel=3))
    rgb, rgb_channels = x3d_stages(x3d)
    skeleton = skeleton_tcn(3, (12, 20))
    return TwoStreamMMTM(rgb, skeleton, rgb_channels, [12, 20], num_classes=4, mode=mode, alpha=0.5)


@pytest.mark.parametrize("mode", ["plain", "ign1", "ign2"])
def test_gradients_reach_both_streams(mode):
    net = _fusion(mode)
    g = torch.Generator().manual_seed(6)
    video, skel = torch.randn(2, 3, 8, 32, 32, generator=g), torch.randn(2, 3, 8, 25, generator=g)
    logits = net(video, skel)
    assert logits.shape == (2, 4)
    nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    rgb_first = net.rgb_stages[0][0].conv_s.weight.grad
    skel_first = net.skeleton_stages[0][0].weight.grad
    assert rgb_first is not None and rgb_first.abs().sum() > 0
    assert skel_first is not None and skel_first.abs().sum() > 0
    for m in net.mmtm.values():  # the fusion itself learns
        assert m.fc_joint.weight.grad.abs().sum() > 0
    # MMTM carries the skeleton head's gradient into the RGB stream (and back)
    net.zero_grad()
    net.skeleton_head(net.features(video, skel)[1]).sum().backward()
    assert net.rgb_stages[0][0].conv_s.weight.grad.abs().sum() > 0
    unfused = TwoStreamMMTM(net.rgb_stages, net.skeleton_stages, [8, 16], [12, 20], num_classes=4, fuse=[])
    unfused.zero_grad()
    unfused.skeleton_head(unfused.features(video, skel)[1]).sum().backward()
    assert unfused.rgb_stages[0][0].conv_s.weight.grad is None or unfused.rgb_stages[0][0].conv_s.weight.grad.abs().sum() == 0


def test_bad_fusion_options_raise_spec_error():
    x3d = build_x3d(X3DConfig(num_classes=4, frames=8, size=32, widths=(8, 16), depths=(1, 1), stem_temporal_kernel=3))
    rgb, channels = x3d_stages(x3d)
    with pytest.raises(SpecError, match="skeleton_stages"):
        TwoStreamMMTM(rgb, skeleton_tcn(3, (12,)), channels, [12], num_classes=4)
    with pytest.raises(SpecError, match="fuse"):
        TwoStreamMMTM(rgb, skeleton_tcn(3, (12, 20)), channels, [12, 20], num_classes=4, fuse=[2])
    with pytest.raises(SpecError, match="mode"):
        MMTM(8, 8, mode="ignore")
    with pytest.raises(SpecError, match="kernel"):
        skeleton_tcn(3, (8,), kernel=2)
