"""Metric-learning early exits (Passalis & Tefas 2021): heads, fitting, files and budgeted inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.face.early_exits import (
    METHODS,
    AdaptiveFaceEmbedder,
    BoFHead,
    ExitHeads,
    ExitModel,
    LRHead,
    ProposedHead,
    RawHead,
    fit_exit_heads,
    kmeans,
)
from hcgym.perception.face.irnet import chips_to_input, count_flops, random_irnet

TINY = {"units": (1, 2, 2, 1), "widths": (8, 16, 24, 32), "expansions": (1, 2, 2, 2)}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _n_tensor_params(head: torch.nn.Module) -> int:
    return sum(p.numel() for p in head.parameters())


@pytest.mark.parametrize("c,k", [(128, 512), (256, 512), (16, 32)])
def test_parameter_counts_follow_the_formulas(c, k):
    m = 512
    assert RawHead(c, m).n_params == 0
    lr = LRHead(c, m)
    assert lr.n_params == c * m == _n_tensor_params(lr)
    assert LRHead(c, m, bias=True).n_params == c * m + m == _n_tensor_params(LRHead(c, m, bias=True))
    bof = BoFHead(c, m, k)
    assert bof.n_params == k * c + k * m == _n_tensor_params(bof) - 1  # sigma is fixed, not counted
    prop = ProposedHead(c, m, k)
    assert prop.n_params == k * c + k * m + 1 == _n_tensor_params(prop)
    if (c, k) == (128, 512):  # Table I of the paper: 66k (LR) and 327k (BoF) at exit 1
        assert lr.n_params == 65_536 and bof.n_params == 327_680


def test_head_flops_match_flop_counter():
    feats = torch.zeros(1, 16, 5, 5)
    heads = [LRHead(16, 64), BoFHead(16, 64, 32), ProposedHead(16, 64, 32)]
    for h in heads:
        assert h.flops(5, 5) == count_flops(h, feats) > 0
    assert RawHead(16, 64).flops(5, 5) == count_flops(RawHead(16, 64), feats) == 0


def test_lr_closed_form_recovers_a_linear_map():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(400, 12, 3, 3, generator=g)
    w_true = torch.randn(12, 20, generator=g)
    y = feats.mean((2, 3)) @ w_true
    exact = LRHead(12, 20).fit(feats, y, ridge=0.0)
    torch.testing.assert_close(exact.weight.data, w_true, atol=1e-4, rtol=1e-4)
    default = LRHead(12, 20).fit(feats, y)
    torch.testing.assert_close(default.weight.data, w_true, atol=1e-3, rtol=1e-3)
    biased = LRHead(12, 20, bias=True).fit(feats, y + 3.0, ridge=0.0)
    torch.testing.assert_close(biased.predict(feats), y + 3.0, atol=1e-3, rtol=1e-3)


def test_kmeans_finds_separated_blobs_deterministically():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    x = centres.repeat_interleave(50, 0) + 0.1 * torch.randn(200, 2, generator=g)
    v = kmeans(x, 4, seed=3)
    assert torch.equal(v, kmeans(x, 4, seed=3))
    assert torch.cdist(centres, v).min(1).values.max() < 0.2
    with pytest.raises(SpecError):
        kmeans(x[:3], 4)


def test_bof_memberships_sum_to_one_per_location():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(20, 8, 4, 3, generator=g)
    head = BoFHead(8, 16, 10).fit(feats, torch.randn(20, 16, generator=g), kmeans_iters=5)
    u = head.memberships(feats)
    assert u.shape == (20, 12, 10) and (u >= 0).all()
    torch.testing.assert_close(u.sum(-1), torch.ones(20, 12))
    torch.testing.assert_close(head.histogram(feats).sum(-1), torch.ones(20))
    dist = torch.cdist(feats.flatten(2).transpose(1, 2).reshape(-1, 8), head.codewords)
    assert head.sigma.item() == pytest.approx(dist.mean().item(), rel=1e-4)  # sigma = mean distance
    assert head.predict(feats).shape == (20, 16)


def _toy(seed: int = 0, n: int = 512, c: int = 16, hw: int = 4, m: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets = a Gaussian-kernel histogram over 2 of the 16 feature dimensions, mapped linearly."""
    g = torch.Generator().manual_seed(seed)
    truth = BoFHead(2, m, 16)
    with torch.no_grad():
        truth.codewords.copy_(torch.randn(16, 2, generator=g))
        truth.sigma.fill_(1.0)
        truth.weight.copy_(3 * torch.randn(16, m, generator=g))
        feats = torch.randn(n, c, hw, hw, generator=g)
        return feats, truth(feats[:, :2])


def test_proposed_training_lowers_the_error_of_bof():
    feats, y = _toy()

    def mse(h):
        return float(((h.predict(feats) - y) ** 2).sum(1).mean())

    bof = BoFHead(16, 16, 16).fit(feats, y, kmeans_iters=10)
    prop = ProposedHead(16, 16, 16).fit(feats, y, iterations=500, init=bof)  # paper's lr 1e-3 / 1e-4, batch 32
    assert len(prop.history) == 500
    assert mse(prop) < 0.92 * mse(bof)
    assert prop.sigma.item() != bof.sigma.item()  # sigma was trained
    again = ProposedHead(16, 16, 16).fit(feats, y, iterations=500, init=bof)
    assert torch.equal(again.codewords, prop.codewords)  # seeded


# ---------------------------------------------------------------- whole network
@pytest.fixture(scope="module")
def fitted():
    model = random_irnet(0, **TINY)
    chips = np.random.default_rng(0).integers(0, 256, (96, 56, 56, 3), dtype=np.uint8)
    heads = fit_exit_heads(model, chips, exits=[1, 2, 3], n_codewords=16, iterations=20, kmeans_iters=5,
                           max_vectors=2000, seed=0)
    return model, chips, heads


def test_exit_model_extracts_in_one_pass(fitted):
    model, chips, heads = fitted
    maps, emb = ExitModel(model, heads.exits).extract(chips[:10], batch_size=4)
    x = torch.from_numpy(chips_to_input(chips[:10], 56))
    with torch.no_grad():
        torch.testing.assert_close(emb, model(x))
        for k, m in zip(heads.exits, maps):
            torch.testing.assert_close(m, model.forward_to(x, k))


def test_fit_exit_heads_and_file_round_trip(fitted, tmp_path):
    model, chips, heads = fitted
    assert heads.methods == list(METHODS) and heads.exits == [1, 2, 3]
    maps, _ = ExitModel(model, heads.exits).extract(chips[:8])
    for i, f in enumerate(maps):
        assert heads["raw"][i].predict(f).shape == (8, f.shape[1])
        for m in ("lr", "bof", "proposed"):
            assert heads[m][i].predict(f).shape == (8, 512)
    path = heads.save(tmp_path / "heads.pt")
    cfg = json.loads((tmp_path / "heads.pt.json").read_text())
    assert cfg["exits"] == [1, 2, 3] and cfg["heads"]["proposed"][0]["kind"] == "proposed"
    loaded = ExitHeads.load(path)
    for m in METHODS:
        for i, f in enumerate(maps):
            torch.testing.assert_close(loaded[m][i].predict(f), heads[m][i].predict(f))
    with pytest.raises(SpecError):
        heads["nope"]


def test_adaptive_embedder_goes_shallower_for_smaller_budgets(fitted):
    model, chips, heads = fitted
    ada = AdaptiveFaceEmbedder(model, heads)
    cost = ada.flops_per_face
    assert len(cost) == 4 and all(a < b for a, b in zip(cost, cost[1:]))
    full = ada.embed(chips[:3])  # no budget: final layer
    assert full.exit is None and full.level == 3
    with torch.no_grad():
        np.testing.assert_allclose(full.vectors, model(torch.from_numpy(chips_to_input(chips[:3], 56))).numpy(),
                                   atol=1e-5)
    budget = 3 * cost[2]
    r3 = ada.embed(chips[:3], budget_flops=budget)
    assert (r3.exit, r3.block, r3.fits) == (3, heads.exits[2], True) and r3.vectors.shape == (3, 512)
    r_small = ada.embed(chips[:3], budget_flops=3 * cost[0])
    assert r_small.exit == 1
    r_crowd = ada.embed(chips[:3], budget_flops=budget, n_faces=6)  # twice the faces, same frame budget
    assert r_crowd.level < r3.level
    none_fits = ada.embed(chips[:3], budget_flops=1.0)
    assert none_fits.level == 0 and not none_fits.fits
    ada.ms_per_face = [1.0, 2.0, 3.0, 6.0]  # a made-up timing table (calibrate_timing measures one)
    assert ada.embed(chips[:2], budget_ms=12.0).exit is None
    assert ada.embed(chips[:2], budget_ms=6.5).exit == 3
    assert ada.embed(chips[:2], budget_ms=6.5, n_faces=4).exit == 1
    times = ada.calibrate_timing(batch=2, repeats=2)
    assert len(times) == 4 and all(t > 0 for t in times)
