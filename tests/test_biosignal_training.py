"""Training and scoring of series classifiers."""

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.biosignal.backbones import make_model
from hcgym.perception.biosignal.training import fit, predict_proba, scores


def _toy(n=240, length=32, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    t = np.linspace(0, 1, length)
    x = np.sin(2 * np.pi * (2 + 3 * y[:, None]) * t) + rng.normal(0, 0.3, (n, length))
    return x.astype(np.float32), y


def test_scores_binary_and_macro():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    s = scores(y, p)
    assert s["acc"] == pytest.approx(0.6)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    y3 = np.array([0, 1, 2, 2])
    p3 = np.eye(3)[[0, 1, 2, 1]]
    s3 = scores(y3, p3)
    assert s3["f1"] == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]))


def test_fit_learns_and_is_deterministic():
    torch.set_num_threads(1)
    x, y = _toy()
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = make_model("cnn", length=32)
        out = fit(model, x[:180], y[:180], epochs=8, lr=3e-3, seed=5, x_val=x[180:], y_val=y[180:], keep_best=True)
        runs.append((out, predict_proba(model, x[180:])))
    assert runs[0][0]["history"][-1]["loss"] < runs[0][0]["history"][0]["loss"]
    assert scores(y[180:], runs[0][1])["acc"] > 0.9
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_fit_rejects_bad_input():
    model = make_model("mlp", length=32)
    x, y = _toy(20)
    with pytest.raises(SpecError, match="x_train"):
        fit(model, x, y[:5])
    with pytest.raises(SpecError, match="epochs"):
        fit(model, x, y, epochs=0)
    with pytest.raises(SpecError, match="keep_best"):
        fit(model, x, y, keep_best=True)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(SpecError, match="NaN"):
        fit(model, bad, y)
