"""``hcgym train gesture`` (keyed, resumable, sharded runs; float16 publishing; errors before writing) and
``hcgym evaluate gesture`` (schema, tables, figures) on a toy gesture set of 32 x 32 crops and tiny backbones."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.gesture import protocol, study
from hcgym.perception.gesture.training import load_model
from hcgym.scripts.cli import main
from hcgym.synthesis.gesture_data import NONE, GestureData
from hcgym.synthesis.motion.hands import GESTURES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_set(per_label: int = 3, size: int = 48, none: bool = False, seed: int = 0) -> GestureData:
    """A gesture set without rendering: every label ``per_label`` times (one sample each of train, val, test),
    a bright square whose position gives the label in RGB and a nearer square in depth."""
    labels = GESTURES + ((NONE,) if none else ())
    rng = np.random.default_rng(seed)
    n = len(labels) * per_label
    label = np.repeat(np.arange(len(labels)), per_label)
    rgb = rng.integers(0, 80, (n, size, size, 3), dtype=np.uint8)
    depth = np.full((n, size, size), 2.0, np.float16)
    for i, lab in enumerate(label):
        r, c = divmod(int(lab), 5)
        sl = (slice(r * 9 + 2, r * 9 + 10), slice(c * 9 + 2, c * 9 + 10))
        rgb[i][sl] = 230
        depth[i][sl] = 1.5
    split = np.array((["train", "val", "test"] * per_label)[:per_label] * len(labels))
    arrays = {"rgb": rgb, "depth": depth, "box": np.tile(np.array([100, 100, 180, 180], np.float32), (n, 1)),
              "keypoints": np.zeros((n, 21, 3), np.float32), "keypoints_3d": np.full((n, 21, 3), np.nan, np.float32),
              "label": label, "labels": np.array(labels), "hand": np.array(["right"] * n),
              "identity": np.arange(n) % 4, "avatar_seed": np.arange(n) % 4, "split": split,
              "distance": np.linspace(0.5, 2.49, n).astype(np.float32), "props": np.zeros(n, np.int16),
              "distractor": np.zeros(n, np.float16), "seconds": np.zeros(n, np.float32)}
    return GestureData(arrays, {"format": "hcgym-gesture-data-1", "key": {"toy": seed, "none": none}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A toy set and its 17-class twin; tiny models trained on them by the command line: MobileNetV2 RGB and
    depth (17 classes), the sensor's RGB-D model ``gesture_rgbd`` (17 classes), MNASNet 0.5 RGB (16 classes)."""
    root = tmp_path_factory.mktemp("gesture")
    toy_set().save(root / "toy.npz")
    toy_set(none=True).save(root / "toy17.npz")
    out = ["--out", str(root / "models"), "--size", "32", "--epochs", "1", "--tiny"]
    for extra in (["--data", str(root / "toy17.npz"), "--modalities", "rgb,depth"],
                  ["--data", str(root / "toy17.npz"), "--modalities", "rgbd", "--name", "gesture_rgbd"],
                  ["--data", str(root / "toy.npz"), "--backbones", "mnasnet0_5", "--modalities", "rgb"]):
        assert main(["train", "gesture", *extra, *out]) == 0
    return root


def test_published_models_carry_what_a_sensor_needs(trained):
    models = trained / "models"
    assert sorted(p.name for p in models.glob("*.pt")) == [
        "gesture_mnasnet0_5_rgb.pt", "gesture_mobilenet_v2_depth.pt", "gesture_mobilenet_v2_rgb.pt", "gesture_rgbd.pt"]
    for name, m in (("gesture_mobilenet_v2_rgb", "rgb"), ("gesture_mobilenet_v2_depth", "depth"),
                    ("gesture_rgbd", "rgbd")):
        ckpt = torch.load(models / f"{name}.pt", weights_only=True)
        weights = [v for k, v in ckpt["state_dict"].items() if k.endswith("weight")]
        assert weights and all(w.dtype == torch.float16 for w in weights)
        assert ckpt["state_dict"]["mean"].dtype == torch.float32
        model, meta = load_model(models / f"{name}.pt")
        assert next(model.parameters()).dtype == torch.float32
        assert {"labels", "modality", "size", "depth_mode", "backbone"} <= set(meta)
        assert (meta["modality"], meta["size"], meta["depth_mode"], meta["backbone"]) == (m, 32, "relative",
                                                                                        "mobilenet_v2")
        assert meta["labels"] == [*GESTURES, NONE] and meta["weights_dtype"] == "float16"
        prov = json.loads((models / f"PROVENANCE_{name}.json").read_text())
        assert prov["command"].startswith("hcgym train gesture") and len(prov["history"]) == 1
        assert set(prov["test"]) == ({"exact"} if m == "rgb" else {"exact", "kinect"})
        assert prov["test_float16"]["exact"] == pytest.approx(prov["test"]["exact"], abs=20)
        assert (models / f"{name}_training.png").read_bytes()[:4] == b"\x89PNG"
    _, meta = load_model(models / "gesture_mnasnet0_5_rgb.pt")
    assert meta["labels"] == list(GESTURES) and meta["backbone"] == "mnasnet0_5"


def test_a_rerun_trains_nothing_and_runs_are_keyed(trained, capsys):
    runs = sorted(p.name for p in (trained / "models" / "runs").iterdir())
    assert len(runs) == 4 and all((trained / "models" / "runs" / r / "model.pt").is_file() for r in runs)
    capsys.readouterr()
    assert main(["train", "gesture", "--data", str(trained / "toy17.npz"), "--out", str(trained / "models"),
                 "--modalities", "rgb,depth", "--size", "32", "--epochs", "1", "--tiny"]) == 0
    assert "published 0 model(s)" in capsys.readouterr().out
    # another setting is another run
    k1 = study.run_key("mobilenet_v2", "rgb", 16, 0, study.GestureSettings(size=32), {"a": 1}, True)
    k2 = study.run_key("mobilenet_v2", "rgb", 16, 0, study.GestureSettings(size=40), {"a": 1}, True)
    k3 = study.run_key("mobilenet_v2", "rgb", 16, 0, study.GestureSettings(size=32), {"a": 2}, True)
    assert len({k1, k2, k3}) == 3


def test_interrupted_run_resumes_to_the_same_model(tmp_path):
    toy_set().save(tmp_path / "toy.npz")
    settings = study.GestureSettings(size=32, epochs=2)
    args = (tmp_path / "toy.npz",)

    class Stop(Exception):
        pass

    def stop_after_first_epoch(line: str) -> None:
        if "epoch 1/2" in line:
            raise Stop

    with pytest.raises(Stop):
        study.train_runs(*args, tmp_path / "a", ["mobilenet_v2"], ["rgbd"], [0], settings, tiny=True,
                         log=stop_after_first_epoch)
    assert not list((tmp_path / "a").glob("*.pt"))
    done = study.train_runs(*args, tmp_path / "a", ["mobilenet_v2"], ["rgbd"], [0], settings, tiny=True,
                            log=lambda _: None)
    assert [p.name for p in done["published"]] == ["gesture_mobilenet_v2_rgbd.pt"] and not done["remaining"]
    study.train_runs(*args, tmp_path / "b", ["mobilenet_v2"], ["rgbd"], [0], settings, tiny=True, log=lambda _: None)
    a = torch.load(tmp_path / "a" / "gesture_mobilenet_v2_rgbd.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "gesture_mobilenet_v2_rgbd.pt", weights_only=True)
    def losses(ckpt: dict) -> list:
        return [(h["loss"], h["val_acc"]) for h in ckpt["history"]]

    assert losses(a) == losses(b) and len(a["history"]) == 2
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_shards_split_the_runs(tmp_path):
    toy_set().save(tmp_path / "toy.npz")
    settings = study.GestureSettings(size=32, epochs=1)
    first = study.train_runs(tmp_path / "toy.npz", tmp_path / "o", ["mobilenet_v2"], ["rgb", "depth", "rgbd"], [0],
                             settings, shard=(1, 2), tiny=True, log=lambda _: None)
    assert [p.name for p in first["published"]] == ["gesture_mobilenet_v2_depth.pt"]
    assert len(first["remaining"]) == 2
    rest = study.train_runs(tmp_path / "toy.npz", tmp_path / "o", ["mobilenet_v2"], ["rgb", "depth", "rgbd"], [0],
                            settings, shard=(0, 2), tiny=True, log=lambda _: None)
    assert sorted(p.name for p in rest["published"]) == ["gesture_mobilenet_v2_rgb.pt", "gesture_mobilenet_v2_rgbd.pt"]
    assert not rest["remaining"]


@pytest.mark.parametrize("extra, field", [
    (["--backbones", "vgg16"], "--backbones"), (["--modalities", "rgb,ir"], "--modalities"),
    (["--shard", "2/2"], "--shard"), (["--size", "16"], "--size"), (["--seeds", "0,0"], "--seeds"),
    (["--modalities", "rgb,depth", "--name", "mine"], "--name"), (["--data", "/nonexistent.npz"], "--data"),
    (["--drop-rgb", "0.7", "--drop-depth", "0.4"], "--drop-rgb")])
def test_train_cli_errors_name_the_option_before_writing(tmp_path, capsys, extra, field):
    toy_set().save(tmp_path / "toy.npz")
    argv = ["train", "gesture", "--data", str(tmp_path / "toy.npz"), "--out", str(tmp_path / "out"), "--tiny", *extra]
    assert main(argv) == 2
    assert field in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_modality_dropout_blanks_one_stream_and_keys_only_the_runs_that_use_it():
    from hcgym.perception.action.study import run_key as plain_key
    from hcgym.perception.gesture.augment import Augment, augment

    x = torch.rand(400, 4, 16, 16) * 0.5 + 0.2
    aug = Augment.none(drop_rgb=0.5, drop_depth=0.3)
    out = augment(x, "rgbd", aug, torch.Generator().manual_seed(0))
    no_rgb = (out[:, :3] == 0).flatten(1).all(1)
    no_depth = (out[:, 3] == aug.hole_value).flatten(1).all(1)
    kept = ~no_rgb & ~no_depth
    assert not (no_rgb & no_depth).any() and 0.4 < no_rgb.float().mean() < 0.6 and 0.2 < no_depth.float().mean() < 0.4
    assert torch.allclose(out[kept], x[kept], atol=1e-5) and torch.allclose(out[no_rgb, 3], x[no_rgb, 3], atol=1e-5)
    rgb_only = augment(x[:, :3], "rgb", aug, torch.Generator().manual_seed(0))
    assert torch.allclose(rgb_only, x[:, :3], atol=1e-5)  # RGB-D only
    assert "drop_rgb" not in Augment().to_dict() and Augment(drop_rgb=0.2).to_dict()["drop_rgb"] == 0.2
    settings, data = study.GestureSettings(), {"a": 1}
    assert study.run_key("mobilenet_v2", "rgbd", 17, 0, settings, data, False) == plain_key(
        "mobilenet_v2-rgbd", {"classes": 17, "tiny": False}, 0, settings, {"dataset": data})
    with_drop = study.run_key("mobilenet_v2", "rgbd", 17, 0, settings, data, False, (0.25, 0.1))
    assert with_drop != study.run_key("mobilenet_v2", "rgbd", 17, 0, settings, data, False)
    assert study.run_key("mobilenet_v2", "rgb", 17, 0, settings, data, False, (0.25, 0.1)) == study.run_key(
        "mobilenet_v2", "rgb", 17, 0, settings, data, False)


def test_resize_set_and_half_copy():
    data = toy_set(size=48)
    small = study.resize_set(data, 32)
    assert small.data["rgb"].shape[1:] == (32, 32, 3) and small.data["depth"].shape[1:] == (32, 32)
    assert set(np.unique(small.data["depth"])) <= set(np.unique(data.data["depth"]))  # nearest pixel
    assert study.resize_set(data, 48) is data
    with pytest.raises(SpecError, match="--name"):
        study.plan(Path("x"), ["mobilenet_v2"], ["rgb", "rgbd"], [0], study.GestureSettings(), GESTURES, {},
                   name="one")
    from hcgym.perception.gesture.training import build_model

    model = build_model({"backbone": "mobilenet_v2", "modality": "rgbd", "num_classes": 16, "width": 0.25})
    half = study.half_copy(model)
    assert next(half.parameters()).dtype == torch.float16 and half.mean.dtype == torch.float32
    assert next(model.parameters()).dtype == torch.float32


def test_auroc_counts_pairs():
    rng = np.random.default_rng(3)
    score = rng.integers(0, 4, 40).astype(float)  # many ties
    pos = rng.random(40) < 0.4
    pairs = [(i, j) for i, j in combinations(range(40), 2) if pos[i] != pos[j]]
    want = np.mean([1.0 if score[p] > score[q] else 0.5 if score[p] == score[q] else 0.0
                    for i, j in pairs for p, q in [(i, j) if pos[i] else (j, i)]])
    assert protocol.auroc(score, pos) == pytest.approx(want)
    assert protocol.auroc(score, np.zeros(40, bool)) is None


@pytest.mark.slow
def test_evaluate_writes_the_schema_tables_and_figures(trained, tmp_path, monkeypatch, capsys):
    fresh = toy_set(per_label=2, none=True, seed=5)
    fresh.data["split"][:] = "test"
    monkeypatch.setattr(protocol, "fresh_data", lambda config, progress=False: fresh)
    monkeypatch.setattr(protocol, "quick_config", lambda seed=0: protocol.GestureEvalConfig(
        seed=seed, identities=1, per_class=1, repeats=2, table29_repeats=2, width=0.25))
    out = tmp_path / "eval"
    assert main(["evaluate", "gesture", "--quick", "--models", str(trained / "models"), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["models"]) == {"mobilenet_v2", "mnasnet1_0", "mnasnet0_5", "resnet18"}
    for name, row in res["models"].items():
        assert {"rgb", "depth", "rgbd", "ms_rgb", "ms_rgbd", "rgbd_noisy", "params", "macs", "ratio"} <= set(row)
        assert row["ms_rgb"] > 0 and row["ms_rgbd"] > 0 and row["params"]["rgbd"] > row["params"]["rgb"]
        assert (row["rgbd"] is None) == (name != "mobilenet_v2")
    mob, mnas = res["models"]["mobilenet_v2"], res["models"]["mnasnet0_5"]
    assert all(0 <= mob[m] <= 100 for m in ("rgb", "depth", "rgbd", "rgbd_noisy"))
    assert mob["classes"] == 17 and set(mob["acc_all"]) == {"rgb", "depth", "rgbd"} and "recall" in mob["rgbd_none"]
    assert mnas["classes"] == 16 and mnas["rgb"] is not None and mnas["depth"] is None and "acc_all" not in mnas
    assert res["sensor"]["file"] == "gesture_rgbd.pt" and res["sensor"]["backbone"] == "mobilenet_v2"
    assert res["samples"] == {"gestures": 32, "none": 2, "identities": 1}
    assert np.asarray(res["confusion"]["matrix"]).sum() == 34  # the gestures and the none samples
    assert set(res["paired"]["mobilenet_v2"]) == {"rgbd_vs_rgb", "rgbd_vs_depth"}
    assert "McNemar" in (out / "table.md").read_text()
    assert set(res["checks"]) == {"rgbd_ge_max", "ratio_le_1_05"} and set(res["checks"]["rgbd_ge_max"]) == {
        "mobilenet_v2"}
    assert [r["size"] for r in res["table29"]] == [224, 224, 32, 32]
    table = (out / "table.md").read_text()
    assert "Table 29" in table and "Xavier AGX" in table and "0.0263" in table
    for fig in ("confusion.png", "accuracy_by_distance.png", "confidence.png"):
        assert (out / fig).read_bytes()[:4] == b"\x89PNG"
    assert "[gesture]" in capsys.readouterr().out


def test_paired_counts_the_discordant_samples():
    y = np.zeros(10, np.int64)
    right, wrong = np.array([[5.0, 0.0]]), np.array([[0.0, 5.0]])

    def logits(ok):
        return np.concatenate([right if o else wrong for o in ok])

    rgbd = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    depth = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0]
    out = protocol.paired({"mobilenet_v2": {"rgbd": {"logits": logits(rgbd), "y": y},
                                            "depth": {"logits": logits(depth), "y": y}}})
    got = out["mobilenet_v2"]["rgbd_vs_depth"]
    assert (got["rgbd_only"], got["other_only"]) == (4, 1)
    assert got["p"] == pytest.approx(0.375)  # two-sided binomial of 4 of 5 at 1/2
    assert set(out["mobilenet_v2"]) == {"rgbd_vs_depth"}


def test_evaluate_refuses_bad_options_before_writing(tmp_path, capsys):
    assert main(["evaluate", "gesture", "--none", "9", "--out", str(tmp_path / "o")]) == 2
    assert "--none" in capsys.readouterr().err
    assert main(["evaluate", "gesture", "--models", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "--models" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_two_models_of_one_backbone_and_modality_are_refused(trained, tmp_path):
    import shutil

    folder = tmp_path / "models"
    shutil.copytree(trained / "models", folder, ignore=shutil.ignore_patterns("runs"))
    shutil.copy(folder / "gesture_rgbd.pt", folder / "gesture_mobilenet_v2_rgbd.pt")
    with pytest.raises(SpecError, match="both mobilenet_v2 rgbd"):
        protocol.shipped(folder)
