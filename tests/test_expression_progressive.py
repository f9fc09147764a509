"""PST-BLN growth: widening and deepening keep old weights, the stop rules on scripted losses, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.expression import graph as G
from hcgym.perception.expression import models as M
from hcgym.perception.expression import progressive as P
from hcgym.perception.expression.toy import template51, toy_sequences

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def base():
    return M.ExprModelConfig(graph=G.face_graph(G.DLIB51, template51()), frames=4, widths=(5,), residual="conv")


@pytest.fixture(scope="module")
def x():
    return torch.from_numpy(toy_sequences(2, frames=4, seed=3)[0])


def _trained(model: M.ExpressionNet) -> M.ExpressionNet:
    """Make every tensor non-trivial (as training would), including batch-norm statistics."""
    with torch.no_grad():
        g = torch.Generator().manual_seed(11)
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.add_(0.1 * torch.randn(t.shape, generator=g))
                if "running_var" in name:
                    t.abs_().add_(0.5)
    return model.eval()


def _leading(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return new[tuple(slice(0, s) for s in old.shape)]


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_widen_keeps_old_weights_and_with_zero_outgoing_the_function(base, x, layer):
    old = _trained(M.build_model(dataclasses.replace(base, widths=(5, 10, 5)), seed=1))
    new = P.widen(old, layer, 5, seed=2)
    assert new.cfg.widths == tuple(w + 5 if i == layer else w for i, w in enumerate((5, 10, 5)))
    so, sn = old.state_dict(), new.state_dict()
    assert so.keys() == sn.keys()
    grown = [k for k in so if so[k].shape != sn[k].shape]
    assert grown and all(torch.equal(_leading(sn[k], so[k]), so[k]) for k in so)
    assert all(sn[k].shape == so[k].shape for k in so if k.endswith(".U"))   # the E x E matrices are untouched
    assert torch.allclose(new(x), old(x), atol=1e-5)                          # eval mode: the same function
    rnd = P.widen(old, layer, 5, seed=2, outgoing="random")
    sr = rnd.state_dict()
    assert all(torch.equal(_leading(sr[k], so[k]), so[k]) for k in so)
    assert not torch.allclose(rnd(x), old(x), atol=1e-3)
    # the new channels' incoming weights are random, not zero
    tcn = sn[f"layers.{layer}.block.tcn.weight"]
    assert tcn[-5:].abs().sum() > 0


def test_widen_and_deepen_checks(base):
    auto = M.build_model(dataclasses.replace(base, widths=(5, 5, 10), residual="auto"))
    with pytest.raises(SpecError, match="residual"):
        P.widen(auto, 0, 5)                      # identity residual of layer 1 would become a convolution
    with pytest.raises(SpecError, match="layer"):
        P.widen(auto, 3, 5)
    with pytest.raises(SpecError, match="model.model"):
        P.deepen(M.build_model(dataclasses.replace(base, model="stgcn")), 5)


def test_deepen_keeps_the_layers_and_adds_a_classifier(base):
    old = _trained(M.build_model(dataclasses.replace(base, widths=(10, 5)), seed=1))
    new = P.deepen(old, 5, seed=4)
    assert new.cfg.widths == (10, 5, 5) and new.cfg.residual == "conv"
    so, sn = old.state_dict(), new.state_dict()
    assert all(torch.equal(sn[k], so[k]) for k in so if not k.startswith("fc."))
    assert not torch.equal(sn["fc.weight"], so["fc.weight"])
    assert any(k.startswith("layers.2.") for k in sn)


class Script:
    """A fake trainer: returns scripted losses, records the widths it saw and perturbs the weights."""

    def __init__(self, losses: list[float]) -> None:
        self.losses = list(losses)
        self.seen: list[tuple[int, ...]] = []

    def __call__(self, model: M.ExpressionNet) -> float:
        self.seen.append(model.cfg.widths)
        with torch.no_grad():
            model.fc.bias.add_(len(self.seen))       # "training" changes the weights
        return self.losses.pop(0)


def test_width_and_depth_rules_revert_and_remove(base):
    script = Script([1.0, 0.8, 0.79999,            # layer 0: 5, 10 kept (alpha 0.2), 15 reverted (alpha 1.25e-5)
                     0.7, 0.6, 0.6,                # layer 1: 5, 10 kept, 15 reverted (alpha 0); alpha_d 0.25: kept
                     0.65, 0.64, 0.7])             # layer 2: 5, 10 kept, 15 reverted; alpha_d < 0: removed
    result = P.grow(base, script, P.GrowthSettings(seed=0))
    assert script.seen == [(5,), (10,), (15,), (10, 5), (10, 10), (10, 15), (10, 10, 5), (10, 10, 10), (10, 10, 15)]
    assert not script.losses
    assert result.widths == (10, 10) and result.loss == 0.6
    assert [e.decision for e in result.events] == [
        "start", "widen", "revert_width", "add_layer", "widen", "revert_width", "keep_layer",
        "add_layer", "widen", "revert_width", "remove_layer"]
    alphas = [e.alpha for e in result.events]
    assert alphas[1] == pytest.approx(0.2) and alphas[2] == pytest.approx(1.25e-5)
    assert alphas[6] == pytest.approx(0.25) and alphas[10] == pytest.approx((0.6 - 0.64) / 0.6)
    # the kept network is the one trained at step 5 (widths (10, 10)), not the reverted candidate
    assert result.model.cfg.widths == (10, 10)
    assert float(result.model.fc.bias.detach()[0] - M.build_model(result.model.cfg).fc.bias.detach()[0]) != 0


def test_threshold_is_strict_and_caps_stop_the_search(base):
    # alpha exactly eps_w is kept (the rule stops only below it); 15 -> 20 is over the width cap
    script = Script([1.0, 0.75, 0.5625])          # alpha exactly 0.25 twice (exact in binary)
    result = P.grow(base, script, P.GrowthSettings(max_layers=1, max_width=15, eps_width=0.25))
    assert [e.decision for e in result.events] == ["start", "widen", "widen", "width_cap", "depth_cap"]
    assert result.widths == (15,)
    # depth cap: two layers, each keeps improving
    script = Script([1.0, 0.5, 0.4, 0.2, 0.1, 0.05])
    result = P.grow(base, script, P.GrowthSettings(max_layers=2, max_width=10))
    assert result.widths == (10, 10) and result.events[-1].decision == "depth_cap"
    # a zero loss cannot improve: the first increment is reverted
    result = P.grow(base, Script([0.0, 0.0]), P.GrowthSettings(max_layers=1))
    assert result.widths == (5,) and result.events[1].alpha == 0.0


def test_growth_is_deterministic(base):
    losses = [1.0, 0.8, 0.9, 0.7, 0.75, 0.9, 0.95]
    a = P.grow(base, Script(losses), P.GrowthSettings(seed=5))
    b = P.grow(base, Script(losses), P.GrowthSettings(seed=5))
    c = P.grow(base, Script(losses), P.GrowthSettings(seed=6))
    assert a.widths == b.widths == c.widths == (10, 5)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_growth_settings_are_checked(base):
    for bad, field in [({"block": 0}, "growth.block"), ({"max_width": 3}, "growth.max_width"),
                       ({"outgoing": "ones"}, "growth.outgoing")]:
        with pytest.raises(SpecError, match=field):
            P.grow(base, Script([1.0]), P.GrowthSettings(**bad))
    with pytest.raises(SpecError, match="model.model"):
        P.grow(dataclasses.replace(base, model="agcn"), Script([1.0]))


def test_fit_pstbln_grows_trains_and_stops():
    from hcgym.perception.expression.training import TrainSettings, evaluate, fit_pstbln

    xs, ys, _ = toy_sequences(6, frames=4, seed=0)
    cfg = M.ExprModelConfig(graph=G.graph_from_data(xs), frames=4)
    fit = fit_pstbln(xs, ys, cfg, P.GrowthSettings(max_layers=2, max_width=10),
                     step=TrainSettings(epochs=2, batch=16), final=TrainSettings(epochs=2, batch=16),
                     loss_measure="eval")
    assert 1 <= len(fit.growth.widths) <= 2 and all(w in (5, 10) for w in fit.growth.widths)
    assert fit.model.cfg.widths == fit.growth.widths and len(fit.history) == 2
    assert fit.growth.events[0].decision == "start" and fit.growth.events[-1].decision in (
        "remove_layer", "depth_cap", "keep_layer")
    assert np.isfinite(evaluate(fit.model, xs, ys)["loss"])
    with pytest.raises(SpecError, match="loss_measure"):
        fit_pstbln(xs, ys, cfg, loss_measure="val")
