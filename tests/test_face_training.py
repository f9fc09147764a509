"""Face crops, simulated verification sets, and the train/evaluate commands on tiny configurations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcgym.scripts.cli import main
from hcgym.synthesis.face_crops import CropSettings, generate_face_crops, load_face_crops
from hcgym.synthesis.face_sets import held_out_identities, make_pairs

TINY = CropSettings(variants=1)


def test_face_crops_are_deterministic_and_resumable(tmp_path):
    a = generate_face_crops(tmp_path / "a", [100_000, 100_001, 100_002], 4, TINY, seed=1, identities_per_shard=2,
                            progress=False)
    data = load_face_crops(a)
    assert data["chips"].shape == (12, 56, 56, 3) and data["chips"].dtype == np.uint8
    assert sorted(set(data["labels"].tolist())) == [0, 1, 2]
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["shards"] == ["shard_00000.npz", "shard_00001.npz"]
    # Same arguments, other folder: same bytes.
    b = generate_face_crops(tmp_path / "b", [100_000, 100_001, 100_002], 4, TINY, seed=1, identities_per_shard=2,
                            progress=False)
    assert (a / "shard_00001.npz").read_bytes() == (b / "shard_00001.npz").read_bytes()
    # A lost shard is redone on the next run, the finished one is kept.
    (b / "shard_00001.npz").unlink()
    before = (b / "shard_00000.npz").stat().st_mtime_ns
    generate_face_crops(tmp_path / "b", [100_000, 100_001, 100_002], 4, TINY, seed=1, identities_per_shard=2,
                        progress=False)
    assert (b / "shard_00001.npz").read_bytes() == (a / "shard_00001.npz").read_bytes()
    assert (b / "shard_00000.npz").stat().st_mtime_ns == before
    # Other settings into the same folder are refused.
    from hcgym.errors import SpecError

    with pytest.raises(SpecError, match="other settings"):
        generate_face_crops(tmp_path / "b", [100_000], 4, TINY, seed=2, progress=False)


def test_pairs_follow_each_protocol():
    rng = np.random.default_rng(0)
    n = 40
    data = {"labels": np.repeat(np.arange(n), 6), "group": np.tile([0, 1], 3 * n).astype(np.int8),
            "gender": np.repeat(rng.integers(0, 2, n), 6).astype(np.int8)}
    for kind in ("lfw_like", "cplfw_like", "calfw_like"):
        p = make_pairs(data, kind, 200, seed=3)
        assert p.shape == (200, 3) and p[:, 2].sum() == 100
        same = p[p[:, 2] == 1]
        assert (data["labels"][same[:, 0]] == data["labels"][same[:, 1]]).all()
        diff = p[p[:, 2] == 0]
        assert (data["labels"][diff[:, 0]] != data["labels"][diff[:, 1]]).all()
        if kind != "lfw_like":  # every same pair crosses pose / age
            assert (data["group"][same[:, 0]] != data["group"][same[:, 1]]).all()
        if kind == "calfw_like":
            assert (data["gender"][diff[:, 0]] == data["gender"][diff[:, 1]]).all()
    assert held_out_identities(0, 3) != held_out_identities(1, 3)
    assert min(held_out_identities(0, 3)) >= 200_000


@pytest.mark.slow
def test_train_and_evaluate_face_commands_tiny(tmp_path):
    out, data = tmp_path / "model", tmp_path / "data"
    rc = main(["train", "face-embedder", "--tiny", "--identities", "5", "--per-identity", "6", "--epochs", "1",
               "--workers", "1", "--data", str(data), "--out", str(out)])
    assert rc == 0
    for name in ("irnet.pt", "irnet.pt.json", "exit_heads.pt", "exit_heads.pt.json", "irnet.onnx",
                 "irnet.onnx.json", "PROVENANCE.json"):
        assert (out / name).is_file(), name
    prov = json.loads((out / "PROVENANCE.json").read_text())
    assert prov["command"].startswith("hcgym train face-embedder") and prov["seed"] == 0
    assert prov["onnx_max_abs_diff"] < 1e-4
    assert len(prov["exits"]["blocks"]) == 3

    ev = tmp_path / "eval"
    rc = main(["evaluate", "face", "--checkpoint", str(out / "irnet.pt"), "--identities", "6", "--per-identity", "4",
               "--pairs", "40", "--sets", "lfw_like", "--no-dlib", "--out", str(ev)])
    assert rc == 0
    res = json.loads((ev / "results.json").read_text())
    cell = res["sets"]["lfw_like"]
    assert 0 <= cell["final"] <= 100
    assert set(cell["exits"]) == {"1", "2", "3"}
    assert {"raw", "lr", "bof", "proposed"} <= set(cell["exits"]["1"])
    assert res["flops"]["exit1"] < res["flops"]["exit2"] < res["flops"]["exit3"] < res["flops"]["final"]
    assert (ev / "table.md").read_text().count("| Proposed |") == 1
    assert (ev / "accuracy_by_exit.png").is_file() and (ev / "accuracy_vs_flops.png").is_file()


def test_evaluate_rejects_unknown_set(tmp_path, capsys):
    assert main(["evaluate", "face", "--sets", "lfw", "--out", str(tmp_path / "x")]) == 2
    assert "--sets" in capsys.readouterr().err


def test_training_resumes_from_its_last_epoch(tmp_path):
    from dataclasses import replace

    from hcgym.perception.face.training import TrainConfig, train_embedder

    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (24, 56, 56, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(6), 4)
    cfg = TrainConfig(epochs=1, batch_size=8, units=(1, 1, 1, 1), widths=(8, 8, 16, 16), expansions=(1, 2, 2, 2),
                      embedding_dim=32, val_identities=2, threads=1)
    logs: list[str] = []
    first = train_embedder(chips, labels, cfg, tmp_path, log=logs.append, progress=False)
    second = train_embedder(chips, labels, replace(cfg, epochs=2), tmp_path, log=logs.append, progress=False)
    assert len(first.history) == 1 and len(second.history) == 2  # other config: starts afresh
    third = train_embedder(chips, labels, replace(cfg, epochs=2), tmp_path, log=logs.append, progress=False)
    assert any("resuming from epoch 2" in line for line in logs)
    assert third.history == second.history
