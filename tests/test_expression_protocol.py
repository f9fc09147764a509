"""The expression study (``hcgym train expression``) and its evaluation protocol (``hcgym evaluate expression``)
on small procedural landmark caches: inputs, windows, settings checks, a tiny resumable sharded study, the
shipped files, AUROC, the results schema, table and figures, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception.expression import protocol, study
from hcgym.perception.expression.toy import CLASSES, toy_sequences
from hcgym.synthesis.expression_data import FORMAT, MESH51, ExpressionData

FPS = {"posed": 10.0, "wild": 8.0}
FRAMES = {"posed": 10, "wild": 12}


def fake_cache(path: Path, style: str, per_class: int = 6, seed: int = 0, dataset_seed: int = 11) -> Path:
    """A small expression cache of procedural faces in the format of ``expression_data.prepare``."""
    t = FRAMES[style]
    x, y, subject = toy_sequences(per_class, frames=t, seed=seed, subjects=10)
    n = len(y)
    rng = np.random.default_rng(seed)
    mesh = np.zeros((n, t, 478, 2), np.float16)
    mesh[:, :, MESH51] = x
    frame_label = np.where(np.arange(t)[None] >= t // 3, y[:, None], 0)
    label2 = np.where((np.arange(n) % 3 == 0) & (y > 0) & (style == "wild"), (y % 6) + 1, -1)
    split = np.array(["test" if s % 5 == 0 else "val" if s % 5 == 1 else "train" for s in subject])
    meta = {"format": FORMAT, "folds": 10,
            "dataset": {"mode": "clips", "seed": dataset_seed, "size": [224, 224], "label_names": list(CLASSES),
                        "clips": {"labels": "expressions", "seconds": t / FPS[style], "fps": FPS[style],
                                  "identities": 10, "style": style}},
            "clips": {"fps": FPS[style], "seconds": t / FPS[style], "frames": t, "width": 224, "height": 224}}
    arrays = {"dlib51": x + rng.normal(0, 0.5, x.shape).astype(np.float32), "dlib_found": np.ones((n, t), bool),
              "mesh": mesh, "mesh_found": np.ones((n, t), bool), "truth51": x, "truth_hidden": np.zeros((n, t), np.float32),
              "frame_label": frame_label.astype(np.int64), "label": y, "label2": label2.astype(np.int64),
              "blend_weight": np.where(label2 >= 0, 0.4, 0.0).astype(np.float32),
              "intensity": np.ones(n, np.float32), "talking": np.zeros(n, bool), "occluded": np.zeros(n, bool),
              "identity": subject, "split": split, "fold": subject % 10,
              "apex": np.tile(np.arange(t - 3, t), (n, 1)), "clip": np.array([f"c{i}.mp4" for i in range(n)]),
              "labels": np.array(CLASSES), "style": np.array(style), "metadata": np.array(json.dumps(meta))}
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("expr-caches")
    return {style: fake_cache(root / f"{style}.npz", style, seed=k) for k, style in enumerate(("posed", "wild"))}


TINY = study.ExprStudySettings(tiny=True, mcd_seeds=(0, 1), stream_window=5)


@pytest.fixture(scope="module")
def trained(caches: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A tiny study trained in two shards (the first returns without the other's runs, then both finish)."""
    out = tmp_path_factory.mktemp("expr-study")
    logs: list[str] = []
    first = study.train_study(caches["posed"], caches["wild"], out, TINY, shard=(0, 2), wait=0, log=logs.append)
    second = study.train_study(caches["posed"], caches["wild"], out, TINY, shard=(1, 2), wait=0, log=logs.append)
    files = second or study.train_study(caches["posed"], caches["wild"], out, TINY, shard=(0, 2), wait=0,
                                        log=logs.append)
    return {"out": out, "first": first, "files": files, "logs": logs}


# ----------------------------------------------------------------------------- inputs
def test_protocol_inputs_take_the_apex_or_equal_intervals(caches: dict[str, Path]) -> None:
    d = ExpressionData.load(caches["wild"])
    full = d.sequences("mesh51", "afew")
    x = study.protocol_inputs(d, "mesh51", "afew", afew_frames=4)
    assert x.shape == (len(d), 4, 51, 2)
    np.testing.assert_array_equal(x, full[:, [0, 4, 7, 11]])  # round(linspace(0, 11, 4))
    assert study.protocol_inputs(d, "mesh51", "afew", afew_frames=50).shape[1] == FRAMES["wild"]
    ck = study.protocol_inputs(d, "truth", "ck", afew_frames=4)
    np.testing.assert_array_equal(ck, d.sequences("truth", "afew")[:, [0, 9, 10, 11]])


def test_resample_frames_to_the_model_rate() -> None:
    np.testing.assert_array_equal(study.resample_frames(20, 10.0, 8.0),
                                  [0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 14, 15, 16, 18, 19])
    np.testing.assert_array_equal(study.resample_frames(32, 8.0, 8.0), np.arange(32))


def test_stream_windows_end_on_their_label_and_pad_with_the_first_frame(caches: dict[str, Path]) -> None:
    d = ExpressionData.load(caches["wild"])
    seq = d.sequences("mesh51", "afew")
    t = FRAMES["wild"]
    x, y = study.stream_windows(d, window=5, fps=8.0, per_clip=t, seed=3)
    assert x.shape == (len(d) * (t - 1), 5, 51, 2) and y.shape == (len(d) * (t - 1),)
    # every end 1 .. t-1 of clip 0, in order: the window of end 2 is frames 0, 0, 0, 1, 2
    np.testing.assert_array_equal(x[1], seq[0, [0, 0, 0, 1, 2]])
    np.testing.assert_array_equal(y[: t - 1], d.arrays["frame_label"][0, 1:])
    again = study.stream_windows(d, window=5, fps=8.0, per_clip=2, seed=3)
    np.testing.assert_array_equal(again[0], study.stream_windows(d, window=5, fps=8.0, per_clip=2, seed=3)[0])
    assert len(again[1]) == 2 * len(d)


# ----------------------------------------------------------------------------- settings and data
@pytest.mark.parametrize("change, field", [
    ({"mcd_on": ("ck-truth",)}, "--mcd-on"), ({"stream_from": "afew-dlib"}, "--stream-from"),
    ({"max_width": 3}, "--max-width"), ({"protocols": ("ck", "oulu")}, "--protocols"),
    ({"sources": ()}, "--sources"), ({"mcd_seeds": (1, 1)}, "--mcd-seeds"), ({"lr": 0.0}, "--lr"),
    ({"afew_frames": 0}, "--afew-frames"),
])
def test_bad_settings_name_the_option(change: dict, field: str) -> None:
    import dataclasses

    with pytest.raises(SpecError) as e:
        dataclasses.replace(study.ExprStudySettings(), **change).check()
    assert e.value.field == field


def test_bad_caches_are_refused_before_anything_is_written(caches: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(SpecError) as e:
        study.train_study(caches["wild"], None, out, TINY)
    assert e.value.field == "--posed" and "wild" in e.value.problem
    with pytest.raises(SpecError) as e:
        study.train_study(None, tmp_path / "missing.npz", out, TINY)
    assert e.value.field == "--wild"
    with pytest.raises(SpecError):
        study.train_study(None, None, out, TINY)
    assert not out.exists()


def test_run_keys_follow_settings_and_data(caches: dict[str, Path], tmp_path: Path) -> None:
    import dataclasses

    data = study.load_data(caches["posed"], caches["wild"])
    run = study.Run("table", "ck", "mesh51", "stbln")
    key = study.run_key(run, TINY, data)
    assert key == study.run_key(run, TINY, study.load_data(caches["posed"], caches["wild"]))
    assert key != study.run_key(run, dataclasses.replace(TINY, lr=0.2), data)
    assert key == study.run_key(run, dataclasses.replace(TINY, stream_epochs=3), data)  # not a table setting
    assert key == study.run_key(run, TINY, {"posed": data["posed"]})  # a ck run does not read the wild set
    other = study.load_data(fake_cache(tmp_path / "p.npz", "posed", seed=5), None)  # other faces, same metadata
    assert key != study.run_key(run, TINY, other)
    assert study.run_key(study.Run("table", "ck", "dlib", "stbln"), TINY, data) != key
    seed = study.Run("mcd", "ck", "mesh51", "pstbln_fixed", 1, "ck-mesh51")
    assert study.run_key(seed, TINY, data) != study.run_key(seed, dataclasses.replace(TINY, max_width=15), data)


# ----------------------------------------------------------------------------- a tiny study
def test_the_study_trains_in_shards_and_writes_the_shipped_files(trained: dict) -> None:
    import torch

    assert trained["first"] is None  # shard 0 had to leave runs to shard 1
    out = Path(trained["out"])
    names = {Path(f).name for f in trained["files"]}
    assert names == {study.BUNDLE, study.STREAM, "PROVENANCE_expression_models.json",
                     "PROVENANCE_expression_stream.json"}
    runs = study.plan_runs(TINY)
    assert len(runs) == 2 * 2 * 4 + 1 + 2 * 2
    bundle = study.load_models(out / study.BUNDLE)
    assert len(bundle["runs"]) == len(runs) - 1
    import io
    import lzma

    raw = torch.load(io.BytesIO(lzma.decompress((out / study.BUNDLE).read_bytes())), weights_only=True)
    dtypes = {k.split("::")[-1] if "::" in k else "other": v.dtype
              for r in raw["runs"] for k, v in r["state_dict"].items() if v.is_floating_point() or "::" in k}
    assert dtypes == {"int8": torch.int8, "scale": torch.float32, "other": torch.float16}
    grown = [r for r in bundle["runs"] if r["model"] == "pstbln"]
    assert grown and all(r["growth"]["events"] for r in grown)
    seeds = [r for r in bundle["runs"] if r["role"] == "mcd" and r["protocol"] == "ck"]
    table = next(r for r in grown if (r["protocol"], r["source"]) == ("ck", "mesh51"))["net"]
    assert [r["seed"] for r in seeds] == [0, 1] and all(r["net"].cfg.widths == table.cfg.widths for r in seeds)
    same = [all(torch.equal(a, b) for a, b in zip(r["net"].state_dict().values(), table.state_dict().values()))
            for r in seeds]
    assert same == [True, False]  # seed 0 is the table's PST-BLN, seed 1 another fine-tuning of its search
    prov = json.loads((out / "PROVENANCE_expression_models.json").read_text())
    assert {"command", "data_metadata", "settings", "runs"} <= set(prov)
    assert all({"params", "test", "history", "widths", "packing"} <= set(r) for r in prov["runs"])
    assert all(r["packing"]["max_abs_prob_diff"] < 0.05 for r in prov["runs"])


def test_packing_keeps_graph_matrices_within_half_a_step() -> None:
    import torch

    g = torch.Generator().manual_seed(0)
    state = {"layers.0.U": torch.randn(3, 20, 20, generator=g), "fc.weight": torch.randn(7, 4, generator=g),
             "bn.num_batches_tracked": torch.tensor(5)}
    packed = study.pack(state)
    assert torch.equal(study.unpack(study.pack({"a.U": torch.zeros(2, 3, 3)}))["a.U"], torch.zeros(2, 3, 3))
    assert packed["layers.0.U::int8"].dtype == torch.int8 and packed["fc.weight"].dtype == torch.float16
    back = study.unpack(packed)
    assert set(back) == set(state) and back["bn.num_batches_tracked"] == 5
    step = state["layers.0.U"].abs().amax(-1, keepdim=True) / 127
    assert ((back["layers.0.U"] - state["layers.0.U"]).abs() <= 0.5 * step * 1.01 + 1e-6).all()
    assert torch.allclose(back["fc.weight"], state["fc.weight"], atol=2e-3)


def test_a_bundle_that_is_not_one_is_refused(trained: dict, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as e:
        study.load_models(Path(trained["out"]) / study.STREAM)
    assert e.value.field == "models" and "not an expression model bundle" in e.value.problem
    with pytest.raises(SpecError):
        study.load_models(tmp_path / "missing.pt")


def test_the_stream_checkpoint_carries_the_sensor_meta(trained: dict) -> None:
    import torch

    from hcgym.perception.expression.training import load_model

    path = Path(trained["out"]) / study.STREAM
    model, meta = load_model(path)
    assert {k: meta[k] for k in ("source", "fps", "window", "labels")} == {
        "source": "mesh51", "fps": 8.0, "window": 5, "labels": list(CLASSES)}
    assert set(meta) == {"kind", "config", "source", "fps", "window", "labels"}
    assert next(model.parameters()).dtype == torch.float32  # stored as float16, loaded as float32
    assert model(torch.zeros(2, 5, 51, 2)).shape == (2, len(CLASSES))


def test_a_finished_study_trains_nothing_again(trained: dict, caches: dict[str, Path]) -> None:
    out = Path(trained["out"])
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/model.pt")}
    logs: list[str] = []
    files = study.train_study(caches["posed"], caches["wild"], out, TINY, log=logs.append)
    assert files is not None and not any("[train]" in line for line in logs)
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/model.pt")}


# ----------------------------------------------------------------------------- evaluation
def test_auroc_matches_counting_pairs() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float)  # many ties
    positive = rng.random(40) < 0.4
    pairs = [(a > b) + 0.5 * (a == b) for a in scores[positive] for b in scores[~positive]]
    assert protocol.auroc(scores, positive) == pytest.approx(np.mean(pairs))
    assert protocol.auroc(np.arange(4.0), np.array([0, 0, 1, 1], bool)) == 1.0
    assert protocol.auroc(np.arange(4.0), np.array([1, 1, 0, 0], bool)) == 0.0
    assert protocol.auroc(np.arange(3.0), np.ones(3, bool)) is None
    u = protocol.uncertainty_aurocs(np.array([0.1, 0.2, 0.9, 0.8]), np.array([1, 1, 0, 1], bool),
                                    np.array([0, 0, 0, 1], bool))
    assert u["any"] == 1.0 and u["misclassified"] == 1.0 and u["counts"] == {"correct_clean": 2, "wrong": 1,
                                                                             "blended": 1}


def test_test_identities_must_be_new() -> None:
    meta = {"posed": {"dataset": {"mode": "clips", "seed": protocol.EVAL_DATASET_SEED + 3,
                                  "clips": {"identities": 4}}}}
    with pytest.raises(SpecError) as e:
        protocol.test_data(protocol.ExprEvalConfig(seed=3, identities=2, protocols=("ck",)), meta, progress=False)
    assert e.value.field == "seed"


@pytest.fixture(scope="module")
def evaluated(trained: dict, caches: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``hcgym evaluate expression`` on the tiny study, the fresh clips replaced by other procedural caches."""
    from hcgym.scripts.cli import main

    root = tmp_path_factory.mktemp("expr-eval")
    fresh = {style: ExpressionData.load(fake_cache(root / f"{style}.npz", style, per_class=2, seed=7 + k))
             for k, style in enumerate(("posed", "wild"))}
    summary = {"dataset_seed": protocol.EVAL_DATASET_SEED, "identities": ["a", "b"],
               "styles": {s: {"clips": len(d), "blends": int((d.arrays["label2"] >= 0).sum())} for s, d in fresh.items()}}
    mp = pytest.MonkeyPatch()
    mp.setattr(protocol, "test_data", lambda config, meta, progress=True: (fresh, dict(summary)))
    out = root / "report"
    try:
        assert main(["evaluate", "expression", "--out", str(out), "--models", str(Path(trained["out"]) / study.BUNDLE),
                     "--stream", str(Path(trained["out"]) / study.STREAM), "--passes", "5"]) == 0
    finally:
        mp.undo()
    return out


def test_results_json_schema(evaluated: Path) -> None:
    r = json.loads((evaluated / "results.json").read_text())
    assert set(r["protocols"]) == {"ck", "afew"}
    for by_source in r["protocols"].values():
        assert set(by_source) == {"dlib", "mesh51"}
        for source, res in by_source.items():
            assert set(res["models"]) == {"stgcn", "agcn", "stbln", "pstbln"}
            for m in res["models"].values():
                assert {"acc", "acc_mcd", "params", "params_no_graph"} <= set(m)
                assert 0 <= m["acc"] <= 100 and m["params"] > m["params_no_graph"] > 0
            auroc = res["uncertainty_auroc"]
            assert auroc is None or 0 <= auroc <= 1
            assert {"any", "misclassified", "blend", "counts"} <= set(res["uncertainty"])
            if source == "mesh51":
                m = res["mcd"]
                assert {"ensemble", "deterministic", "single_mean", "single_std", "per_seed"} <= set(m)
                assert set(m["per_seed"]) == {"0", "1"}
                assert m["ensemble"] == pytest.approx(np.mean([v["ensemble"] for v in m["per_seed"].values()]), abs=0.01)
                # seed 0 of the study is the table's PST-BLN: the same passes give the same figures
                table = res["models"]["pstbln"]
                assert m["per_seed"]["0"] == {"ensemble": table["acc_mcd"], "deterministic": table["acc"],
                                              "single_mean": table["single_mean"], "single_std": table["single_std"]}
            assert "_arrays" not in res
    assert r["protocols"]["ck"]["mesh51"]["uncertainty"]["blend"] is None  # posed clips hold no blends
    assert {"posed", "wild", "window"} <= set(r["stream"])
    assert "ck-mesh51" in r["checks"] and "seconds" in r


def test_table_and_figures(evaluated: Path) -> None:
    table = (evaluated / "table.md").read_text()
    for text in ("Table 21", "Table 19", "93.64", "36.11", "PST-BLN w/MCD", "Monte Carlo dropout", "AUROC",
                 "without graph matrices"):
        assert text in table
    for name in ("confusion_ck.png", "confusion_afew.png", "uncertainty.png", "growth.png"):
        assert (evaluated / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, field", [
    (["--protocols", "oulu"], "--protocols"), (["--sources", "mesh"], "--sources"),
    (["--models", "/nonexistent/bundle.pt"], "--models"),
])
def test_evaluate_bad_input_writes_nothing(args: list[str], field: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    from hcgym.scripts.cli import main

    out = tmp_path / "out"
    assert main(["evaluate", "expression", "--out", str(out), *args]) == 2
    assert field in capsys.readouterr().err
    assert not out.exists()


def test_train_bad_input_writes_nothing(caches: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from hcgym.scripts.cli import main

    out = tmp_path / "out"
    base = ["train", "expression", "--posed", str(caches["posed"]), "--out", str(out), "--tiny"]
    assert main([*base, "--mcd-on", "ck-dlib,afew-truth"]) == 2
    assert "--mcd-on" in capsys.readouterr().err
    assert main([*base, "--shard", "2/2"]) == 2
    assert "--shard" in capsys.readouterr().err
    assert main([*base, "--wild", str(caches["posed"])]) == 2
    assert "--wild" in capsys.readouterr().err
    assert not out.exists()
