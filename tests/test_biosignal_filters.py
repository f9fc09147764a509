"""The Gaussian-derivative filter bank of §5.1 and the baseline backbones it goes in front of."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.biosignal.backbones import BACKBONES, count_parameters, make_model
from hcgym.perception.biosignal.filters import GaussianFilterBank, gaussian_kernels

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_bank_has_three_parameters_and_keeps_the_length():
    bank = GaussianFilterBank(size=25, sigma=(1.0, 2.0, 3.0))
    assert count_parameters(bank) == 3
    assert torch.allclose(bank.sigma, torch.tensor([1.0, 2.0, 3.0]))
    x = torch.randn(4, 2, 187)
    y = bank(x)
    assert y.shape == (4, 6, 187)
    # channel 3 c + j is kernel j on input channel c
    assert torch.allclose(bank(x[:, 1:2])[:, 2], y[:, 5])
    assert bank(torch.randn(4, 187)).shape == (4, 3, 187)


def test_kernels_are_the_gaussian_and_its_derivatives():
    sigma = torch.tensor([2.0, 3.0, 4.0], dtype=torch.float64)
    k = gaussian_kernels(sigma, 41).numpy()
    x = np.arange(41) - 20
    for j, s in enumerate((2.0, 3.0, 4.0)):
        g = np.exp(-x ** 2 / (2 * s ** 2)) / (s * math.sqrt(2 * math.pi))
        want = (g, -x / s ** 2 * g, (x ** 2 - s ** 2) / s ** 4 * g)[j]
        assert np.allclose(k[j], want, atol=1e-12)
    assert abs(k[0].sum() - 1) < 1e-6 and abs(k[1].sum()) < 1e-12  # a low-pass filter, a zero-mean one


def test_first_derivative_output_is_the_slope_of_the_smoothed_signal():
    """x * g' = d/dt (x * g) away from the edges (central differences), for one width."""
    t = torch.linspace(0, 6 * math.pi, 400, dtype=torch.float64)
    x = (torch.sin(t) + 0.3 * torch.sin(3.1 * t)).view(1, 1, -1)
    bank = GaussianFilterBank(size=41, sigma=4.0).double()
    y = bank(x)[0]
    slope = (y[0, 2:] - y[0, :-2]) / 2
    assert torch.allclose(y[1, 1:-1][30:-30], slope[30:-30], atol=2e-4)
    curvature = y[0, 2:] - 2 * y[0, 1:-1] + y[0, :-2]
    assert torch.allclose(y[2, 1:-1][30:-30], curvature[30:-30], atol=2e-4)


def test_replicate_padding_keeps_a_constant_signal_flat():
    bank = GaussianFilterBank(size=25, sigma=3.0).double()
    y = bank(torch.full((1, 1, 60), 2.5, dtype=torch.float64))[0]
    k = bank.kernels().detach()
    assert torch.allclose(y[0], torch.full((60,), 2.5 * float(k[0].sum()), dtype=torch.float64))
    assert y[1].abs().max() < 1e-12 and torch.allclose(y[2], torch.full((60,), 2.5 * float(k[2].sum()),
                                                                             dtype=torch.float64))


def test_the_widths_learn():
    """Gradients reach every width, and fitting a target smoothed at width 5 moves the Gaussian's width there."""
    torch.manual_seed(0)
    x = torch.randn(8, 1, 200)
    target = GaussianFilterBank(size=31, sigma=5.0)(x).detach()
    bank = GaussianFilterBank(size=31, sigma=2.0)
    loss = (bank(x) - target).pow(2).mean()
    loss.backward()
    assert bank.log_sigma.grad is not None and torch.isfinite(bank.log_sigma.grad).all()
    assert (bank.log_sigma.grad != 0).all()
    opt = torch.optim.Adam(bank.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        (bank(x)[:, 0] - target[:, 0]).pow(2).mean().backward()
        opt.step()
    assert abs(float(bank.sigma[0].detach()) - 5.0) < 0.1


@pytest.mark.parametrize("name", BACKBONES)
def test_the_filter_adds_exactly_three_parameters_to_every_backbone(name):
    torch.manual_seed(0)
    plain, filtered = make_model(name), make_model(name, filtered=True)
    extra = count_parameters(filtered) - count_parameters(plain)
    first = {"mlp": 187 * 16, "cnn": 3 * 16, "lstm": 4 * 16, "resnet": 187 * 16}[name]
    assert extra == 3 + 2 * first  # 3 widths, and the first layer sees 3 channels instead of 1
    x = torch.randn(5, 1, 187)
    assert plain(x).shape == filtered(x).shape == (5, 2)
    assert filtered.filter is not None and count_parameters(filtered.filter) == 3


def test_bad_arguments_name_the_problem():
    for kwargs, field in ((dict(size=24), "size"), (dict(size=1), "size"), (dict(sigma=0.0), "sigma"),
                          (dict(sigma=(1.0, 2.0)), "sigma"), (dict(size=9, sigma=12.0), "sigma")):
        with pytest.raises(SpecError, match=field):
            GaussianFilterBank(**kwargs)
    with pytest.raises(SpecError, match="backbone"):
        make_model("vgg")
    with pytest.raises(SpecError, match="x"):
        make_model("mlp")(torch.randn(2, 1, 100))
    with pytest.raises(SpecError, match="x"):
        GaussianFilterBank()(torch.randn(2, 1, 3, 4))
