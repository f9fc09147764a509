"""Keyword-spotter training and the Self-ONN seed study (:mod:`hcgym.perception.speech.training`, ``.study``,
``hcgym train speech``) on tiny data sets: augmentation, the feature cache, resuming, shards, the bundle."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.speech import study, training
from hcgym.perception.speech.training import DataSettings, TrainSettings

TINY_DATA = DataSettings(train_count=48, val_count=24, test_count=24, rooms=2, n_speakers=4)
TINY_TRAIN = TrainSettings(epochs=2, batch_size=16, width=16)
CLI_TINY = ["--tiny", "--configs", "A,E", "--seeds", "0"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A feature cache holding the tiny train / val / test sets of ``--tiny`` (made once for the module)."""
    folder = tmp_path_factory.mktemp("kws_data")
    for split in ("train", "val", "test"):
        training.load_features(folder, split, TINY_DATA, log=lambda _: None)
    return folder


def _features(data_dir, split):
    return training.load_features(data_dir, split, TINY_DATA, log=lambda _: None)


def test_augment_shifts_with_edge_padding_and_masks_bands_and_spans():
    x = np.random.default_rng(0).standard_normal((16, 64, 101)).astype(np.float32) + 5.0  # no zeros in x
    shift_only = replace(TrainSettings(), freq_masks=0, time_masks=0, shift=3)
    out = training.augment(x, np.random.default_rng(1), shift_only)
    assert out.shape == x.shape and out.dtype == np.float32
    seen = set()
    for a, b in zip(x, out):
        hits = [s for s in range(-3, 4) if np.array_equal(b, a[:, np.clip(np.arange(101) - s, 0, 100)])]
        assert len(hits) == 1
        seen.add(hits[0])
    assert len(seen) > 2  # the shifts vary over the batch
    masks_only = replace(TrainSettings(), shift=0)
    out = training.augment(x, np.random.default_rng(2), masks_only)
    zero = out == 0
    rows, cols = zero.all(axis=2), zero.all(axis=1)  # masked coefficients, masked frames per item
    assert np.array_equal(out[~zero], x[~zero])
    assert np.all(zero == (rows[:, :, None] | cols[:, None, :]))  # every zero lies in a masked band or span
    assert rows.sum(1).max() <= 20 and cols.sum(1).max() <= 20 and rows.any() and cols.any()
    assert np.array_equal(out, training.augment(x, np.random.default_rng(2), masks_only))  # same seed, same masks


def test_features_are_cached_and_reused(data_dir, monkeypatch):
    from hcgym.synthesis.speech import dataset as keyword_data

    files = sorted(data_dir.glob("kws-*.npz"))
    assert len(files) == 3
    stamps = [f.stat().st_mtime_ns for f in files]

    def refuse(*args, **kwargs):
        raise AssertionError("the cached features were computed again")

    monkeypatch.setattr(keyword_data, "keyword_dataset", refuse)
    train = _features(data_dir, "train")
    assert train.x.shape == (48, 64, 101) and train.x.dtype == np.float32 and train.y.shape == (48,)
    assert np.allclose(train.x.mean(axis=2), 0, atol=1e-4)  # per-utterance normalised MFCCs
    assert len(train.meta) == 48 and {m["label"] for m in train.meta} <= set(keyword_data.CLASSES)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    other = replace(TINY_DATA, seed=1)  # another data set: another key, computed (refused here)
    assert training.feature_key(other.dataset_kwargs("train")) != train.key
    with pytest.raises(AssertionError, match="computed again"):
        training.load_features(data_dir, "train", other, log=lambda _: None)


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(data_dir, tmp_path, one_torch_thread):
    train, val = _features(data_dir, "train"), _features(data_dir, "val")
    whole, history = training.train_run("E", 3, train, val, TINY_TRAIN, out_dir=tmp_path / "a", log=lambda _: None)
    assert [h["epoch"] for h in history] == [1, 2] and all(h["nonfinite"] == 0 for h in history)
    assert history[-1]["lr"] == pytest.approx(0.001 + 0.049 * (1 / 3) ** 2, abs=1e-6)  # step 5 of 6, decaying

    class Stop(Exception):
        pass

    def stop_after_first_epoch(line: str) -> None:
        if '"epoch": 1' in line:
            raise Stop

    with pytest.raises(Stop):
        training.train_run("E", 3, train, val, TINY_TRAIN, out_dir=tmp_path / "b", log=stop_after_first_epoch)
    lines = []
    resumed, history_b = training.train_run("E", 3, train, val, TINY_TRAIN, out_dir=tmp_path / "b", log=lines.append)
    assert "resuming after epoch 1" in lines[0] and len(lines) == 2
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert drop(history) == drop(history_b)
    other, _ = training.train_run("E", 4, train, val, TINY_TRAIN, log=lambda _: None)  # another seed, other weights
    assert not torch.equal(other.state_dict()["head.weight"], a["head.weight"])
    with pytest.raises(SpecError, match="another run"):
        training.train_run("A", 3, train, val, TINY_TRAIN, out_dir=tmp_path / "b", log=lambda _: None)


def test_plan_keys_and_balanced_shards():
    runs = study.plan(["A", "E", "F"], [0, 1], ablation=True)
    assert [r.variant for r in runs] == ["A", "A", "E", "E", "F", "F", "E-notanh", "E-notanh", "F-notanh",
                                          "F-notanh"]  # A has no Self-ONN layer: no tanh to remove
    keys = {"train": "t", "val": "v", "test": "x"}
    assert len({study.run_key(r, TINY_TRAIN, keys) for r in runs}) == len(runs)
    assert study.run_key(runs[0], TINY_TRAIN, keys) != study.run_key(runs[0], TINY_TRAIN, {**keys, "train": "u"})
    costs = [float(c) for c in (9, 1, 5, 5, 3, 7, 2, 2)]
    for n in (1, 2, 3):
        shard = study.assign_shards(costs, n)
        loads = [sum(c for c, s in zip(costs, shard) if s == k) for k in range(n)]
        assert sorted(set(shard)) == list(range(n)) and sum(loads) == sum(costs)
        assert max(loads) - min(loads) <= max(costs)
    assert study.assign_shards(costs, 2) == study.assign_shards(costs, 2)
    assert [study.run_cost(study.Run(c, 0), TrainSettings(), 12) for c in "AE"] == [74892, 286860]


def test_cli_trains_two_shards_and_writes_the_bundle_and_provenance(data_dir, tmp_path, one_torch_thread, capsys):
    from hcgym.scripts.cli import main

    out = tmp_path / "study"
    base = ["train", "speech", "--out", str(out), "--data-dir", str(data_dir), *CLI_TINY]
    assert main([*base, "--shard", "0/2"]) == 0  # E, the larger run
    assert "other shards" in capsys.readouterr().out and not (out / study.BUNDLE).exists()
    assert [p.name.split("-")[0] for p in (out / "runs").iterdir() if (p / "model.pt").is_file()] == ["E"]
    assert main([*base, "--shard", "1/2"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(list(data_dir.glob("kws-*.npz"))) == 3  # the CLI's --tiny data sets are the cached ones
    bundle = study.load_bundle(out / study.BUNDLE)
    assert [(r["config"], r["seed"], r["tanh"]) for r in bundle["runs"]] == [("A", 0, True), ("E", 0, True)]
    assert bundle["classes"][-2:] == ["unknown", "silence"]
    with torch.no_grad():
        assert all(r["model"](torch.randn(2, 64, 101)).shape == (2, 12) for r in bundle["runs"])
    prov = json.loads((out / "PROVENANCE_speech_selfonn_study.json").read_text())
    assert prov["command"].startswith("hcgym train speech") and prov["bundle"]["bytes"] == (out / study.BUNDLE).stat().st_size
    assert prov["data"]["splits"]["test"]["clips"] == 24 and prov["train_settings"]["width"] == 16
    a, e = prov["runs"]
    assert e["params"] > a["params"] and e["macs"]["fvcore"] > a["macs"]["fvcore"] and a["power_products"] == 0
    assert len(a["history"]) == 1 and 0 <= a["test_acc"] <= 100 and sum(map(sum, a["confusion"])) == 24
    assert set(prov["summary"]["test"]) == {"A", "E"}
    # float16 weights in the bundle, the float32 run weights rounded
    run_file = torch.load(out / a["run_dir"] / "model.pt", weights_only=True)
    w = bundle["runs"][0]["model"].head.weight
    assert torch.equal(w, run_file["state_dict"]["head.weight"].half().float())
    # a finished study: nothing is trained again
    stamp = (out / a["run_dir"] / "model.pt").stat().st_mtime_ns
    assert main(base) == 0 and (out / a["run_dir"] / "model.pt").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("extra,field", [(["--configs", "A,Z"], "--configs"), (["--configs", "A,A"], "--configs"),
                                         (["--seeds", "0,x"], "--seeds"), (["--shard", "2/2"], "--shard"),
                                         (["--shard", "1"], "--shard")])
def test_cli_bad_input_is_one_line_and_writes_nothing(extra, field, tmp_path, capsys):
    from hcgym.scripts.cli import main

    out = tmp_path / "o"
    assert main(["train", "speech", "--out", str(out), "--tiny", *extra]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    assert not out.exists()


def test_bad_settings_are_spec_errors(data_dir):
    train, val = _features(data_dir, "train"), _features(data_dir, "val")
    with pytest.raises(SpecError, match="config"):
        training.train_run("G", 0, train, val, TINY_TRAIN, log=lambda _: None)
    with pytest.raises(SpecError, match="--epochs"):
        TrainSettings(epochs=0).check()
    with pytest.raises(SpecError, match="--train-count"):
        DataSettings(train_count=0).check()
    with pytest.raises(SpecError, match="--seeds"):
        study.train_study("unused", ["A"], [0, 0], TINY_DATA, TINY_TRAIN)
