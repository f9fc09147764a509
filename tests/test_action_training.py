"""The action training loop: learns, is deterministic, resumes exactly; checkpoints round-trip; bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.action.training import (
    ActionTrainConfig,
    build_model,
    load_model,
    save_model,
    train_classifier,
)

X3D = {"num_classes": 3, "frames": 8, "size": 32, "widths": [8, 16], "depths": [1, 1], "stem_temporal_kernel": 3}
GCN = {"num_classes": 3, "channels": [8, 8, 16], "strides": [1, 2, 1]}


def _skeleton_task(n: int = 36, frames: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of skeletons: still, one wrist oscillating up and down, one foot held up."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = 0.05 * torch.randn(n, 3, frames, 25, 1, generator=g)
    t = torch.arange(frames, dtype=torch.float32)
    x[y == 1, 1, :, 7, 0] += torch.sin(t / 2)
    x[y == 2, 1, :, 15, 0] += 1.0
    return x, y


def _train(epochs: int, out=None, seed: int = 0):
    x, y = _skeleton_task()
    torch.manual_seed(seed)  # the initial weights
    model = build_model("stgcn", GCN)
    cfg = ActionTrainConfig(epochs=epochs, batch_size=12, lr=5e-3, warmup=2, seed=seed, threads=1)
    return train_classifier(model, lambda i, rng, train: ((x[i],), y[i]), len(y), cfg, out_dir=out,
                            validate=lambda m: {"val_acc": float((m(x).argmax(1) == y).float().mean())},
                            progress=False, log=lambda s: None)


def test_training_learns_a_separable_skeleton_task_and_is_deterministic(one_torch_thread):
    a = _train(8)
    b = _train(8)
    assert a.history[-1]["loss"] < 0.7 * a.history[0]["loss"]
    assert a.history[0]["train_acc"] < 0.6 and a.history[-1]["train_acc"] >= 0.9
    assert [(r["loss"], r["val_acc"]) for r in a.history] == [(r["loss"], r["val_acc"]) for r in b.history]
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_an_interrupted_run_resumes_exactly_and_other_settings_are_refused(tmp_path, one_torch_thread):
    full = _train(4)
    assert _train_until(2, 4, tmp_path) == 2
    x, y = _skeleton_task()
    longer = ActionTrainConfig(epochs=5, batch_size=12, lr=5e-3, warmup=2, seed=0, threads=1)
    with pytest.raises(SpecError, match="other settings"):  # another cosine schedule: not silently mixed
        train_classifier(build_model("stgcn", GCN), lambda i, rng, train: ((x[i],), y[i]), len(y), longer,
                         out_dir=tmp_path, progress=False, log=lambda s: None)
    resumed = _train(4, out=tmp_path)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    for p, q in zip(resumed.model.parameters(), full.model.parameters()):
        assert torch.equal(p, q)


def _train_until(stop: int, epochs: int, out) -> int:
    """Run ``epochs`` epochs but stop (as an interrupted run would) after ``stop``: returns the saved epoch."""
    x, y = _skeleton_task()
    torch.manual_seed(0)
    model = build_model("stgcn", GCN)
    cfg = ActionTrainConfig(epochs=epochs, batch_size=12, lr=5e-3, warmup=2, seed=0, threads=1)

    class Stop(Exception):
        pass

    seen = []

    def log(line: str) -> None:
        seen.append(line)
        if len(seen) == stop:
            raise Stop

    with pytest.raises(Stop):
        train_classifier(model, lambda i, rng, train: ((x[i],), y[i]), len(y), cfg, out_dir=out,
                         validate=lambda m: {"val_acc": float((m(x).argmax(1) == y).float().mean())},
                         progress=False, log=log)
    return int(torch.load(out / "last.pt", weights_only=True)["epoch"])


@pytest.mark.parametrize("kind,config", [("x3d", X3D), ("stgcn", GCN), ("agcn", GCN),
                                         ("mmtm", {"x3d": X3D, "mode": "ign2"})])
def test_every_kind_builds_saves_and_loads_the_same_function(kind, config, tmp_path, one_torch_thread):
    torch.manual_seed(0)
    model = build_model(kind, config).eval()
    video, skel = torch.rand(2, 3, 8, 32, 32), torch.rand(2, 3, 40, 25, 1)
    inputs = {"x3d": (video,), "stgcn": (skel,), "agcn": (skel,), "mmtm": (video, skel[:, :, :8, :, 0])}[kind]
    path = save_model(model, kind, config, tmp_path / "m.pt", {"note": "test"})
    again, meta = load_model(path)
    assert meta["kind"] == kind and meta["note"] == "test"
    with torch.no_grad():
        assert torch.equal(model(*inputs), again(*inputs))


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(SpecError, match="unknown action model"):
        build_model("lstm", {})
    with pytest.raises(SpecError, match="not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(SpecError, match="epochs"):
        ActionTrainConfig(epochs=0).check()
    with pytest.raises(SpecError, match="JSON"):
        save_model(build_model("stgcn", GCN), "stgcn", GCN, tmp_path / "m.pt", {"bad": object()})
    assert not (tmp_path / "m.pt").exists()
    assert np.isfinite(ActionTrainConfig().lr)


def _cache(path, n: int = 12, frames: int = 10, size: int = 32):
    """A small action-data cache in the format of ``action_data.prepare`` (two separable actions)."""
    from hcgym.synthesis.action_data import FORMAT, npz_bytes

    rng = np.random.default_rng(0)
    label = np.arange(n) % 2
    rgb = rng.integers(0, 40, (n, frames, size, size, 3)).astype(np.uint8)
    rgb[label == 1, :, 8:24, 8:24] = 220
    skel = (0.05 * rng.standard_normal((n, frames, 25, 3))).astype(np.float32)
    skel[label == 1, :, 7, 1] += np.sin(np.arange(frames) / 2)[None, :].astype(np.float32)
    split = np.array(["train"] * (n - 4) + ["val"] * 2 + ["test"] * 2)
    arrays = {"rgb": rgb, "skeleton_truth": skel, "label": label.astype(np.int64), "labels": np.array(["a", "b"]),
              "split": split, "identity": np.arange(n), "metadata": np.array(json.dumps({"format": FORMAT}))}
    path.write_bytes(npz_bytes(arrays))
    return path


@pytest.mark.parametrize("model", ["stgcn", "x3d", "mmtm"])
def test_cli_trains_every_kind_and_writes_model_provenance_and_curve(model, tmp_path, one_torch_thread):
    from hcgym.scripts.cli import main

    data = _cache(tmp_path / "a.npz")
    out = tmp_path / model
    args = ["train", "action", "--data", str(data), "--model", model, "--tiny", "--epochs", "2", "--threads", "1",
            "--out", str(out)]
    assert main(args) == 0
    prov = json.loads((out / "PROVENANCE.json").read_text())
    assert prov["model"] == model and len(prov["history"]) == 2 and prov["labels"] == ["a", "b"]
    assert "train action" in prov["command"] and (out / "training_curve.png").stat().st_size > 1000
    trained, meta = load_model(out / f"action_{model}.pt")
    assert meta["labels"] == ["a", "b"]
    if model == "stgcn":  # the "*" variant from it: same weights, stride 1, loads back
        assert main(["train", "action", "--data", str(data), "--model", "stgcn", "--tiny", "--epochs", "1",
                     "--threads", "1", "--star-from", str(out / "action_stgcn.pt"), "--out", str(tmp_path / "s")]) == 0
        star, smeta = load_model(tmp_path / "s" / "action_stgcn_star.pt")
        assert set(smeta["config"]["strides"]) == {1} and star.cfg.frames_per_prediction == 1


@pytest.mark.parametrize("extra,field", [(["--data", "missing.npz"], "--data"),
                                         (["--model", "x3d", "--star-from", "x.pt"], "--star-from"),
                                         (["--lr", "0"], "--lr"), (["--alpha", "2"], "--alpha")])
def test_cli_bad_input_is_one_line_and_writes_nothing(extra, field, tmp_path, capsys):
    from hcgym.scripts.cli import main

    data = _cache(tmp_path / "a.npz")
    args = ["train", "action", "--data", str(data), "--tiny", "--epochs", "1", "--out", str(tmp_path / "o"), *extra]
    assert main([a if a != "missing.npz" else str(tmp_path / a) for a in args]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    assert not (tmp_path / "o").exists()
