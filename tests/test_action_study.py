"""The §6.1 seed studies (ignore, fusion) and the ``hcgym evaluate action`` protocol pieces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.action import study
from hcgym.perception.action.batches import downsample
from hcgym.perception.action.training import build_model


def _cache(path, n: int = 12, frames: int = 10, size: int = 32, labels=("a", "b"), mediapipe: bool = True):
    """A small action-data cache in the format of ``action_data.prepare`` (two separable actions)."""
    from hcgym.synthesis.action_data import FORMAT, npz_bytes

    rng = np.random.default_rng(0)
    label = np.arange(n) % len(labels)
    rgb = rng.integers(0, 40, (n, frames, size, size, 3)).astype(np.uint8)
    rgb[label == 1, :, size // 4:3 * size // 4, size // 4:3 * size // 4] = 220
    skel = (0.05 * rng.standard_normal((n, frames, 25, 3))).astype(np.float32)
    skel[label == 1, :, 7, 1] += np.sin(np.arange(frames) / 2)[None, :].astype(np.float32)
    split = np.array(["train"] * (n - 4) + ["val"] * 2 + ["test"] * 2)
    arrays = {"rgb": rgb, "skeleton_truth": skel, "label": label.astype(np.int64), "labels": np.array(list(labels)),
              "split": split, "identity": np.arange(n), "metadata": np.array(json.dumps({"format": FORMAT}))}
    if mediapipe:
        arrays["skeleton_mediapipe"] = skel + np.float32(0.01)
    path.write_bytes(npz_bytes(arrays))
    return path


def test_variants_build_and_the_rgb_stream_is_the_ignore_studys_se_model():
    s = study.StudySettings(size=32, frames=16)
    ignore = study.variants("ignore", s, 5)
    fusion = study.variants("fusion", s, 5)
    assert [v for v, _, _ in ignore] == ["none", "se", "se-ign1", "se-ign2", "se-ign3", "cbam", "cbam-ign1",
                                          "cbam-ign2", "cbam-ign3"]
    assert [v for v, _, _ in fusion] == ["rgb", "skeleton", "late", "mmtm", "mmtm-ign1", "mmtm-ign2", "mmtm-ign3"]
    cfg = dict((v, c) for v, _, c in ignore)
    assert cfg["se-ign1"]["alpha"] == study.ALPHA and cfg["cbam-ign2"]["attention_mode"] == "ign2"
    rgb = fusion[0][2]
    assert rgb == cfg["se"]  # same config, same seed -> the same run (trained once)
    meta = {"dataset": {"seed": 7}}
    assert study.run_key("x3d", rgb, 0, s, meta) == study.run_key("x3d", cfg["se"], 0, s, meta)
    assert study.run_key("x3d", rgb, 1, s, meta) != study.run_key("x3d", rgb, 0, s, meta)
    for _, kind, c in ignore + fusion:
        m = build_model(kind, c)
        assert sum(p.numel() for p in m.parameters()) > 0
    late = build_model("mmtm", fusion[2][2])
    assert len(late.mmtm) == 0  # late fusion: no transfer module, the heads' logits averaged


def test_downsample_is_the_block_mean_and_refuses_non_divisors():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (2, 3, 8, 8, 3)).astype(np.uint8)
    small = downsample(rgb, 4)
    want = np.round(rgb.reshape(2, 3, 4, 2, 4, 2, 3).astype(float).mean((3, 5)) + 1e-9)
    assert small.shape == (2, 3, 4, 4, 3) and np.abs(small.astype(float) - want).max() <= 1
    assert downsample(rgb, 8) is rgb
    with pytest.raises(SpecError, match="divisor"):
        downsample(rgb, 3)


def test_summarise_gives_mean_std_and_seeds_in_order():
    rows = [{"variant": "se", "seed": 0, "acc": 50.0}, {"variant": "se", "seed": 1, "acc": 60.0},
            {"variant": "none", "seed": 0, "acc": 40.0}]
    s = study.summarise(rows)
    assert list(s) == ["se", "none"]
    assert s["se"]["mean"] == 55.0 and s["se"]["std"] == 5.0 and s["se"]["per_seed"] == {"0": 50.0, "1": 60.0}


def test_cli_trains_a_study_in_two_shards_and_bundles_every_run(tmp_path, one_torch_thread, capsys):
    from hcgym.scripts.cli import main

    data = _cache(tmp_path / "a.npz")
    out = tmp_path / "study"
    base = ["train", "action-study", "--data", str(data), "--study", "fusion", "--seeds", "0,1", "--size", "16",
            "--frames", "8", "--tiny", "--out", str(out)]
    assert main([*base, "--shard", "0/2"]) == 0
    assert "other shards" in capsys.readouterr().out and not (out / "action_fusion_study.pt").exists()
    assert main([*base, "--shard", "1/2"]) == 0
    bundle = study.load_bundle(out / "action_fusion_study.pt")
    runs = bundle["runs"]
    assert len(runs) == 7 * 2 and {r["seed"] for r in runs} == {0, 1}
    assert [r["variant"] for r in runs[::2]] == ["rgb", "skeleton", "late", "mmtm", "mmtm-ign1", "mmtm-ign2",
                                                 "mmtm-ign3"]
    prov = json.loads((out / "PROVENANCE_action_fusion_study.json").read_text())
    assert set(prov["test_split_summary"]) == {r["variant"] for r in runs}
    video, skel = torch.rand(2, 3, 8, 16, 16), torch.rand(2, 3, 8, 25)
    for r in runs:
        inputs = {"x3d": (video,), "tcn": (skel,), "mmtm": (video, skel)}[r["kind"]]
        with torch.no_grad():
            assert r["model"](*inputs).shape == (2, 2)
    # the ignore study over the same folder reuses the shared RGB runs (seed 0 and 1 of "se") and trains the rest
    before = {p.name for p in (out / "runs").iterdir()}
    assert main([*base[:5], "ignore", *base[6:]]) == 0
    after = {p.name for p in (out / "runs").iterdir()}
    assert len(after - before) == (9 - 1) * 2
    ignore = study.load_bundle(out / "action_ignore_study.pt")
    se = [r for r in ignore["runs"] if r["variant"] == "se"]
    rgb = [r for r in runs if r["variant"] == "rgb"]
    assert all(torch.equal(a["model"].head.fc2.weight, b["model"].head.fc2.weight) for a, b in zip(se, rgb))


@pytest.mark.parametrize("extra,field", [(["--seeds", "0,x"], "--seeds"), (["--shard", "2/2"], "--shard"),
                                         (["--size", "5"], "--size"), (["--lr", "0"], "--lr")])
def test_study_cli_bad_input_is_one_line_and_writes_nothing(extra, field, tmp_path, capsys):
    from hcgym.scripts.cli import main

    data = _cache(tmp_path / "a.npz")
    args = ["train", "action-study", "--data", str(data), "--study", "ignore", "--tiny", "--out", str(tmp_path / "o"),
            *extra]
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- the evaluation protocol
def test_pool_logits_equal_the_continual_model_stepped_with_that_pool(one_torch_thread):
    from hcgym.perception.action.protocol import pool_logits
    from hcgym.perception.action.x3d import X3DConfig, build_x3d, to_continual

    torch.manual_seed(0)
    model = build_x3d(X3DConfig(num_classes=4, frames=8, size=16, widths=(8, 8), depths=(1, 1),
                                stem_temporal_kernel=3)).eval()
    for m in model.modules():  # random batch-norm statistics, so the check is not trivial
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    video = torch.randn(2, 3, 14, 16, 16)
    pools = (1, 3, 8)
    logits = pool_logits(model, video, pools)
    for p in pools:
        co_model = to_continual(model, p)
        with torch.no_grad():
            for t in range(video.shape[2]):
                out = co_model.forward_step(video[:, :, t])
        assert torch.allclose(out, logits[p], atol=1e-5)
    with pytest.raises(SpecError, match="pool_sizes"):
        pool_logits(model, video, (9,))


def test_test_avatars_are_never_training_avatars():
    from hcgym.perception.action.protocol import EVAL_DATASET_SEED, training_identities
    from hcgym.synthesis.dataset.clips import identity_spec

    train = training_identities()
    assert len(train) >= 24  # the shipped models' 24-person pool
    test = {identity_spec(EVAL_DATASET_SEED + s, j).identity_key() for s in range(3) for j in range(5)}
    assert len(test) == 15 and not train & test


def _eval_data(tmp_path):
    """Six fake clips of 40 frames at 112x112 labelled with the shipped models' actions."""
    from hcgym.synthesis.action_data import ActionData

    names = ("wave", "sit", "jump")
    return ActionData.load(_cache(tmp_path / "e.npz", n=6, frames=40, size=112, labels=names))


@pytest.mark.parametrize("name", ["x3d", "stgcn_star"])
def test_a_shipped_model_scores_the_same_clip_and_continual_and_reports_its_cost(name, tmp_path, one_torch_thread):
    from hcgym.perception.action.protocol import ActionEvalConfig, score_model

    data = _eval_data(tmp_path)
    r = score_model(name, data, ActionEvalConfig(timing_steps=2, pool_sizes=(4, 8)))
    assert r["continual_acc"] == r["clip_acc"] and r["max_abs_diff"] < 1e-4
    assert r["delay"] > 0 and all(a is None for a in r["transient"][:r["delay"]])
    assert r["transient"][r["delay"]] is not None
    assert r["flops_ratio"] > 5 and r["flops_per_pred"] < r["clip_flops"]
    assert r["params"] > 1000 and r["state_floats"] > 1000 and r["preds_per_s"] > 0
    if name == "x3d":
        assert set(r["pool_curve"]["accuracy"]) == {"4", "8"} and r["pool_curve"]["trained_pool"] == 4
    else:
        assert r["frames_per_pred"] == 1 and "clip_acc_mediapipe" in r


def test_table_and_figures_from_results(tmp_path, one_torch_thread):
    from hcgym.perception.action.protocol import ActionEvalConfig, figures, score_model, table_markdown

    data = _eval_data(tmp_path)
    models = {n: score_model(n, data, ActionEvalConfig(timing_steps=2, pool_sizes=(2, 4))) for n in ("x3d", "agcn")}
    detail = {"settings": {"size": 56, "frames": 16, "epochs": 8, "skeleton": "mediapipe"},
              "summary": {"rgb": {"mean": 50.0, "std": 1.0, "per_seed": {"0": 49.0, "1": 51.0}},
                          "mmtm": {"mean": 60.0, "std": 2.0, "per_seed": {"0": 58.0, "1": 62.0}}},
              "training_test_split": {}}
    results = {"config": {"seed": 3}, "data": {"clips": 6, "identities": ["x"], "dataset_seed": 5000003},
               "models": models, "exactness_max_abs_diff": 1e-6, "fusion_detail": detail}
    table = table_markdown(results)
    assert "Table 18" in table and "Tables 15 and 16" in table and "Table 28" in table
    assert "| mmtm | 60.0 +- 2.0 | 58.0 / 62.0 |" in table and "89.98" in table
    figs = figures(results)
    assert set(figs) == {"pool_size.png", "transient.png", "studies.png"} and all(v[:4] == b"\x89PNG" for v in figs.values())


def test_evaluate_cli_bad_input_is_one_line(tmp_path, capsys):
    from hcgym.scripts.cli import main

    assert main(["evaluate", "action", "--models", "lstm", "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--models" in err[0] and "lstm" in err[0]
    assert not (tmp_path / "o").exists()
