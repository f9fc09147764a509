"""Neural Bag-of-Features with 2DA and self-attention (§5.3) and the synthetic order task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.biosignal.backbones import count_parameters
from hcgym.perception.biosignal.nbof import (
    VARIANTS,
    LogisticQuantiser,
    SelfAttention,
    TwoDAttention,
    make_attention,
    make_nbof,
    receptive_field,
)
from hcgym.perception.biosignal.order_task import motifs, order_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K, T, HEADS, D = 6, 10, 3, 8


def _phi(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, K, T, generator=torch.Generator().manual_seed(seed))


def test_there_are_twelve_variants_and_bad_names_are_spec_errors():
    assert len(VARIANTS) == 12 and VARIANTS[0] == "nbof" and VARIANTS[-1] == "tnbof-ctsa"
    assert {"nbof-ca", "nbof-ta", "nbof-csa", "nbof-tsa", "tnbof"} <= set(VARIANTS)
    for bad in ("nbof-xa", "tnbof_ctsa", "", "NBoF"):
        with pytest.raises(SpecError, match="variant"):
            make_nbof(bad, 1, 64, 2)
    with pytest.raises(SpecError, match="attention"):
        make_attention("sa", K, T)
    with pytest.raises(SpecError, match="length"):
        make_nbof("nbof", 1, 8, 2)  # 8 samples leave 1 step after 3 poolings
    with pytest.raises(SpecError, match="kernel"):
        make_nbof("nbof", 1, 64, 2, kernel=4)


@pytest.mark.parametrize(("kind", "shape"), [("ctsa", (K, T)), ("csa", (K, K)), ("tsa", (T, T))])
def test_self_attention_masks_have_the_documents_shapes(kind, shape):
    att = SelfAttention(K, T, kind, heads=HEADS, d=D).eval()
    phi = _phi()
    a = att.attention(phi)
    assert a.shape == (2, HEADS, *shape)
    if kind == "ctsa":
        assert bool(((a > 0) & (a < 1)).all())  # sigmoid
    else:
        assert torch.allclose(a.sum(-1), torch.ones(2, HEADS, shape[0]))  # row-wise softmax
    # the heads' outputs are stacked, then averaged back to K x T
    assert att.head_outputs(phi).shape == (2, HEADS, K, T)
    assert att(phi).shape == phi.shape
    assert torch.allclose(att(phi), att.head_outputs(phi).mean(1))


@pytest.mark.parametrize("kind", ["ca", "ta", "csa", "tsa", "ctsa"])
def test_each_attention_is_the_identity_at_its_identity_alpha(kind):
    att = make_attention(kind, K, T, heads=HEADS, d=D).eval()
    phi = _phi()
    with torch.no_grad():
        att.alpha.fill_(att.IDENTITY_ALPHA)
    assert torch.allclose(att(phi), phi, rtol=0, atol=1e-6)  # the heads mean is exact up to rounding
    with torch.no_grad():
        att.alpha.fill_(0.5)
    assert not torch.allclose(att(phi), phi, atol=1e-4)


def test_2da_and_csa_follow_eq22_and_eq27():
    phi = _phi()
    assert SelfAttention.IDENTITY_ALPHA == 1.0 and TwoDAttention.IDENTITY_ALPHA == 0.0
    ta = TwoDAttention(K, T, "temporal").eval()
    with torch.no_grad():
        ta.alpha.fill_(1.0)
        ta.weight.normal_()
    # Eq. 22 at alpha = 1 is the mask alone: Phi * softmax(Phi W) with softmax over the steps
    want = phi * torch.softmax(phi @ ta.matrix(), dim=-1)
    assert torch.allclose(ta(phi), want)
    # the CsA head is alpha Phi + (1 - alpha) A Phi (a matrix product), per head
    csa = SelfAttention(K, T, "csa", heads=2, d=D).eval()
    with torch.no_grad():
        csa.alpha.copy_(torch.tensor([0.25, 0.75]))
    a = csa.attention(phi)
    heads = csa.head_outputs(phi)
    for n, alpha in enumerate((0.25, 0.75)):
        assert torch.allclose(heads[:, n], alpha * phi + (1 - alpha) * a[:, n] @ phi, atol=1e-6)


def test_alpha_is_kept_in_zero_one():
    att = SelfAttention(K, T, "ctsa", heads=HEADS, d=D)
    with torch.no_grad():
        att.alpha.copy_(torch.tensor([-0.5, 0.3, 1.7]))
    att.eval()
    out = att(_phi())  # evaluation: clamped in the graph, the parameter untouched
    assert torch.allclose(att.alpha, torch.tensor([-0.5, 0.3, 1.7]))
    att.train()
    assert torch.allclose(att(_phi()), out)
    assert torch.allclose(att.alpha, torch.tensor([0.0, 0.3, 1.0]))  # training: projected back in place


@pytest.mark.parametrize("axis", ["temporal", "codeword"])
def test_the_2da_diagonal_stays_at_one_over_its_size_after_optimiser_steps(axis):
    att = TwoDAttention(K, T, axis)
    size = T if axis == "temporal" else K
    opt = torch.optim.Adam(att.parameters(), lr=0.1, weight_decay=0.01)
    target = _phi(seed=1)
    before = att.matrix().detach().clone()
    for step in range(5):
        opt.zero_grad()
        loss = ((att(_phi(seed=step + 2)) - target) ** 2).sum()
        loss.backward()
        assert torch.equal(torch.diagonal(att.weight.grad), torch.zeros(size))
        opt.step()
    w = att.matrix().detach()
    assert torch.equal(torch.diagonal(w), torch.full((size,), 1.0 / size))
    off = ~torch.eye(size, dtype=torch.bool)
    assert not torch.allclose(w[off], before[off])  # the rest did learn
    assert att.attention(_phi()).shape == (2, K, T)


@pytest.mark.parametrize("temporal", [False, True])
def test_added_parameters_match_the_documents_formulas(temporal):
    n, d, k, length = 3, 16, 12, 96
    q = "tnbof" if temporal else "nbof"
    base = make_nbof(q, 2, length, 4, codewords=k, heads=n, d=d)
    steps = base.steps
    assert steps == length // 8
    formulas = {"ctsa": n * d * (steps + k), "csa": 2 * n * d * steps, "tsa": 2 * n * d * k}
    for kind, want in formulas.items():
        model = make_nbof(f"{q}-{kind}", 2, length, 4, codewords=k, heads=n, d=d)
        att = model.attention
        assert att.w_q.numel() + att.w_k.numel() == want
        assert count_parameters(att) == want + n  # plus one alpha per head
        assert count_parameters(model) - count_parameters(base) == want + n
    for kind, size in (("ca", k), ("ta", steps)):  # 2DA: W (its diagonal is stored but fixed) and alpha
        model = make_nbof(f"{q}-{kind}", 2, length, 4, codewords=k)
        assert count_parameters(model) - count_parameters(base) == size * size + 1
    # the toolkit's configuration: one head, d = 128
    one = make_nbof(f"{q}-ctsa", 2, length, 4, codewords=k, heads=1, d=128)
    assert count_parameters(one.attention) == 128 * (steps + k) + 1


def test_quantiser_is_the_logistic_kernel():
    quant = LogisticQuantiser(5, 4)
    with torch.no_grad():
        quant.a.fill_(0.7)
        quant.b.fill_(-0.2)
    x = torch.randn(3, 5, 9)
    want = (1 + torch.tanh(0.7 * torch.einsum("kf,bft->bkt", quant.codebook, x) - 0.2)) / 2
    assert torch.allclose(quant(x), want, atol=1e-6)
    quant.normalise = True
    assert torch.allclose(quant(x).sum(1), torch.ones(3, 9), atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_runs_forward_and_backward(variant):
    model = make_nbof(variant, 3, 80, 4, codewords=8, heads=2, d=8, seed=0)
    x = torch.randn(2, 3, 80)
    out = model(x)
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    out.sum().backward()
    assert model.quantiser.codebook.grad is not None and torch.isfinite(model.quantiser.codebook.grad).all()
    width = 16 if variant.startswith("tnbof") else 8
    assert model.histogram(x).shape == (2, width)
    with pytest.raises(SpecError, match="x"):
        model(torch.randn(2, 3, 81))


def test_tnbof_concatenates_the_second_half_and_the_attended_whole():
    model = make_nbof("tnbof-ctsa", 1, 64, 2, codewords=5, heads=2, d=4, seed=1).eval()
    x = torch.randn(3, 1, 64)
    phi = model.quantise(x)
    assert phi.shape == (3, 5, 8)
    h = model.histogram(x)
    assert torch.allclose(h[:, :5], phi[..., 4:].mean(-1))
    assert torch.allclose(h[:, 5:], model.attention(phi).mean(-1))


def test_seeds_fix_the_weights_and_leave_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a, b = make_nbof("nbof-csa", 1, 64, 2, seed=3), make_nbof("nbof-csa", 1, 64, 2, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c = make_nbof("nbof-csa", 1, 64, 2, seed=4)
    assert not torch.equal(a.quantiser.codebook, c.quantiser.codebook)


def test_tsa_histogram_ignores_the_order_of_steps_but_ctsa_does_not():
    phi = _phi(batch=3)
    perm = torch.randperm(T, generator=torch.Generator().manual_seed(0))
    for kind, invariant in (("tsa", True), ("ctsa", False), ("ta", False), ("csa", False)):
        att = make_attention(kind, K, T, heads=HEADS, d=D).eval()
        if kind == "ta":  # the initial W is constant (all steps alike) until training moves it
            with torch.no_grad():
                att.weight.normal_(generator=torch.Generator().manual_seed(1))
        same = torch.allclose(att(phi).mean(-1), att(phi[..., perm]).mean(-1), atol=1e-6)
        assert same is invariant, kind


def test_order_task_is_seeded_balanced_and_motifs_keep_their_margins():
    x, y = order_task(40, 7, length=256, channels=3, motif_length=16, noise=0.0)
    assert x.shape == (40, 3, 256) and x.dtype == np.float32 and y.dtype == np.int64
    assert (y == 0).sum() == 20
    x2, y2 = order_task(40, 7, length=256, channels=3, motif_length=16, noise=0.0)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, order_task(40, 8, length=256, channels=3, motif_length=16, noise=0.0)[0])
    margin, half = 256 // 8, 128
    for xi in x:
        active = np.flatnonzero(np.abs(xi).sum(0) > 0)
        first, second = active[active < half], active[active >= half]
        assert first.min() >= margin and first.max() < half - margin
        assert second.min() >= half + margin and second.max() < 256 - margin
    # class 0 holds A (gain 0.8-1.2) in the first half and B in the second; class 1 the reverse
    a, b = motifs(3, 16)

    def gain(part: np.ndarray, motif: np.ndarray) -> float:
        return max(float((part[:, s:s + 16] * motif).sum() / (motif ** 2).sum()) for s in range(half - 15))

    for xi, yi in zip(x, y):
        first, second = (a, b) if yi == 0 else (b, a)
        assert 0.8 <= gain(xi[:, :half], first) <= 1.2 and 0.8 <= gain(xi[:, half:], second) <= 1.2
        assert gain(xi[:, :half], second) < 0.6 and gain(xi[:, half:], first) < 0.6
    with pytest.raises(SpecError, match="motif_length"):
        order_task(4, 0, length=64, motif_length=40)
    with pytest.raises(SpecError, match="count"):
        order_task(0, 0)


def test_the_receptive_field_is_shorter_than_half_the_order_task_and_within_its_margin():
    model = make_nbof("nbof", 2, 512, 2)
    rf = receptive_field(model)
    assert rf == 50  # conv 7: 7; pool 2: +1; conv 7 at stride 2: +12; pool: +2; conv at 4: +24; pool: +4
    assert rf < 512 // 2 and rf <= 512 // 8  # order_task's default margin
    assert receptive_field(make_nbof("nbof", 2, 512, 2, layers=1, kernel=5, pool=1)) == 5


def test_onnx_export_of_an_attention_variant_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import warnings

    model = make_nbof("tnbof-ctsa", 2, 96, 3, codewords=8, heads=2, d=16, seed=0).eval()
    x = torch.randn(4, 2, 96, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "nbof.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["series"], output_names=["logits"],
                          opset_version=17, dynamo=False, dynamic_axes={"series": {0: "batch"}})
        want = model(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"series": x.numpy()})[0]
    assert got.shape == (4, 3)
    assert np.abs(got - want).max() < 1e-4
    got1 = sess.run(None, {"series": x[:1].numpy()})[0]
    assert np.abs(got1 - want[:1]).max() < 1e-4


@pytest.mark.slow
def test_on_the_order_task_nbof_stays_at_chance_and_tnbof_ctsa_solves_it():
    from hcgym.perception.biosignal.training import fit, predict_proba

    x, y = order_task(512, 0)
    xt, yt = order_task(400, 1)
    acc = {}
    for variant in ("nbof", "tnbof-ctsa"):
        model = make_nbof(variant, 2, 512, 2, codewords=32, d=64, seed=0)
        fit(model, x, y, epochs=10, lr=3e-3, batch=32, seed=0)
        acc[variant] = float((predict_proba(model, xt).argmax(1) == yt).mean())
    assert acc["nbof"] < 0.65, acc
    assert acc["tnbof-ctsa"] > 0.85, acc
