"""The NBoF study (§5.3): order task and simulated AF, structure, determinism and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception.biosignal.nbof_study import (
    AF_PRESETS,
    ORDER_PRESETS,
    AFSettings,
    OrderSettings,
    af_study,
    order_study,
    paired_difference,
    precise_batchnorm,
    stratified_folds,
    table_markdown,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def order_quick():
    return order_study(("nbof", "tnbof-ctsa"), seeds=(0, 1), settings="quick")


@pytest.fixture(scope="module")
def af_quick():
    return af_study(("nbof", "nbof-ctsa"), folds=3, seed=0, settings="quick")


def test_order_study_gives_accuracy_per_seed_and_their_mean_and_std(order_quick):
    assert list(order_quick) == ["nbof", "tnbof-ctsa"]
    for row in order_quick.values():
        assert set(row) == {"acc_mean", "acc_std", "per_seed"}
        acc = row["per_seed"]
        assert len(acc) == 2 and all(0.0 <= a <= 1.0 for a in acc)
        assert row["acc_mean"] == pytest.approx(np.mean(acc))
        assert row["acc_std"] == pytest.approx(np.std(acc, ddof=1))
        # accuracies are multiples of 1 / test
        assert all(abs(a * ORDER_PRESETS["quick"].test - round(a * ORDER_PRESETS["quick"].test)) < 1e-9 for a in acc)


def test_order_study_is_deterministic_for_its_seeds(order_quick):
    again = order_study(("nbof", "tnbof-ctsa"), seeds=(0, 1), settings=ORDER_PRESETS["quick"])
    assert again == order_quick
    one = order_study(("tnbof-ctsa",), seeds=(1,), settings="quick")  # a seed's run does not depend on the others
    assert one["tnbof-ctsa"]["per_seed"] == order_quick["tnbof-ctsa"]["per_seed"][1:]


def test_af_study_gives_macro_f1_per_fold(af_quick):
    assert list(af_quick) == ["nbof", "nbof-ctsa"]
    for row in af_quick.values():
        assert set(row) == {"f1_mean", "f1_std", "acc_mean", "per_fold"}
        assert len(row["per_fold"]) == 3
        f1 = [r["f1"] for r in row["per_fold"]]
        assert all(0.0 <= v <= 1.0 for v in f1)
        assert row["f1_mean"] == pytest.approx(np.mean(f1)) and row["f1_std"] == pytest.approx(np.std(f1, ddof=1))
        assert row["acc_mean"] == pytest.approx(np.mean([r["acc"] for r in row["per_fold"]]))
    assert af_study(("nbof", "nbof-ctsa"), folds=3, seed=0, settings="quick") == af_quick


def test_stratified_folds_deal_every_class_evenly_and_follow_the_seed():
    y = np.repeat([0, 1, 2, 3], [10, 7, 5, 3])
    folds = stratified_folds(y, 3, seed=4)
    assert folds.shape == y.shape and set(folds.tolist()) == {0, 1, 2}
    for c in range(4):
        counts = np.bincount(folds[y == c], minlength=3)
        assert counts.max() - counts.min() <= 1
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    assert np.array_equal(folds, stratified_folds(y, 3, seed=4))
    assert not np.array_equal(folds, stratified_folds(y, 3, seed=5))


def test_paired_difference_and_table():
    results = {"a": {"per_fold": [{"f1": 0.8, "acc": 0.8}, {"f1": 0.7, "acc": 0.7}, {"f1": 0.9, "acc": 0.9}],
                     "f1_mean": 0.8, "f1_std": 0.1, "acc_mean": 0.8},
               "b": {"per_fold": [{"f1": 0.7, "acc": 0.7}, {"f1": 0.75, "acc": 0.7}, {"f1": 0.8, "acc": 0.9}],
                     "f1_mean": 0.75, "f1_std": 0.05, "acc_mean": 0.77}}
    d = paired_difference(results, "a", "b")
    assert d["metric"] == "f1" and d["per_run"] == pytest.approx([0.1, -0.05, 0.1])
    assert d["mean"] == pytest.approx(0.05) and d["wins"] == 2
    assert d["ci95"][0] < d["mean"] < d["ci95"][1]
    assert d["ci95"][1] - d["mean"] == pytest.approx(4.302653 * d["std"] / np.sqrt(3), rel=1e-5)
    order = {"a": {"acc_mean": 1.0, "acc_std": 0.0, "per_seed": [1.0, 1.0]},
             "b": {"acc_mean": 0.5, "acc_std": 0.0, "per_seed": [0.5, 0.5]}}
    assert paired_difference(order, "a", "b")["mean"] == pytest.approx(0.5)
    with pytest.raises(SpecError, match="variant"):
        paired_difference(results, "a", "c")
    table = table_markdown(order, results)
    assert table.splitlines()[0].count("|") == 5 and "| a | 100.0 ± 0.0 | 80.00 ± 10.00 | 80.00 |" in table


def test_precise_batchnorm_sets_the_running_statistics_to_the_batch_average():
    import torch

    from hcgym.perception.biosignal.nbof import make_nbof

    model = make_nbof("nbof", 1, 64, 2, codewords=4, filters=4, hidden=0, batchnorm=True, seed=0).eval()
    x = np.random.default_rng(0).normal(size=(10, 1, 64)).astype(np.float32)
    bn = model.frontend[1]
    assert isinstance(bn, torch.nn.BatchNorm1d)
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
        conv = [model.frontend[0](torch.from_numpy(x[i:i + 5])) for i in (0, 5)]
    weights = {k: v.clone() for k, v in model.named_parameters()}
    precise_batchnorm(model, x, batch=5)
    want_mean = torch.stack([c.mean((0, 2)) for c in conv]).mean(0)
    want_var = torch.stack([c.var((0, 2), unbiased=True) for c in conv]).mean(0)
    assert torch.allclose(bn.running_mean, want_mean, atol=1e-6)
    assert torch.allclose(bn.running_var, want_var, atol=1e-5)
    assert not model.training and bn.momentum == 0.1
    assert all(torch.equal(v, weights[k]) for k, v in model.named_parameters())
    plain = make_nbof("nbof", 1, 64, 2, codewords=4, filters=4, seed=0)
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    precise_batchnorm(plain, x, batch=5)
    assert all(torch.equal(v, state[k]) for k, v in plain.state_dict().items())


@pytest.mark.parametrize(("call", "field"), [
    (lambda: order_study(("nbof", "nbof-xa"), settings="quick"), "variants"),
    (lambda: order_study(("nbof", "nbof"), settings="quick"), "variants"),
    (lambda: order_study((), settings="quick"), "variants"),
    (lambda: order_study(("nbof",), seeds=(), settings="quick"), "seeds"),
    (lambda: order_study(("nbof",), seeds=(0, 0), settings="quick"), "seeds"),
    (lambda: order_study(("nbof",), seeds=(-1,), settings="quick"), "seeds"),
    (lambda: order_study(("nbof",), settings="fast"), "settings"),
    (lambda: order_study(("nbof",), settings=AF_PRESETS["quick"]), "settings"),
    (lambda: order_study(("nbof",), settings=dataclasses.replace(ORDER_PRESETS["quick"], epochs=0)), "epochs"),
    (lambda: order_study(("nbof",), settings=OrderSettings(lr=0.0)), "lr"),
    (lambda: order_study(("nbof",), settings=OrderSettings(noise=-1.0)), "noise"),
    (lambda: order_study(("nbof",), settings=OrderSettings(batchnorm=1)), "batchnorm"),
    (lambda: af_study(("nbof",), folds=1, settings="quick"), "folds"),
    (lambda: af_study(("nbof",), folds=7, settings="quick"), "folds"),  # 6 segments per class
    (lambda: af_study(("nbof",), seed=-2, settings="quick"), "seed"),
    (lambda: af_study(("nbof",), settings=AFSettings(count=0)), "count"),
    (lambda: af_study(("nbof",), settings=AFSettings(heads=0)), "heads"),
])
def test_bad_input_is_a_spec_error_naming_the_field(call, field):
    with pytest.raises(SpecError, match=field):
        call()


@pytest.mark.slow
def test_at_the_default_settings_nbof_is_at_chance_and_ctsa_solves_the_order_task():
    acc = order_study(("nbof", "nbof-ctsa"), seeds=(0,), settings="default")
    assert acc["nbof"]["acc_mean"] < 0.65, acc
    assert acc["nbof-ctsa"]["acc_mean"] > 0.9, acc
