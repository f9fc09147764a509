"""NMS evaluation (perception/nms/evaluation.py, scripts/evaluate_nms.py): AP on hand-built cases with
known answers, and ``hcgym evaluate nms`` end to end on two generated sparse images with simulated
candidates and tiny checkpoints trained on the toy dataset of ``conftest.nms_toy``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hcgym.perception.nms.candidates import ImageCandidates, extract_candidates  # noqa: E402
from hcgym.perception.nms.evaluation import best_f1_threshold, coco_ap  # noqa: E402
from hcgym.perception.nms.seq2seq import save_model  # noqa: E402
from hcgym.perception.nms.simulate import DetectorSimulator  # noqa: E402
from hcgym.perception.nms.training import TrainSettings, train_seq2seq  # noqa: E402
from hcgym.scripts.cli import main  # noqa: E402
from hcgym.scripts.train_seq2seq_nms import tiny_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GT = np.array([[10, 10, 50, 110], [100, 10, 140, 110]], np.float32)


def image(gt=GT, ignore=(False, False), image_id=1) -> ImageCandidates:
    return ImageCandidates(Path("unused.png"), 200, 150, image_id, np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                           np.asarray(gt, np.float32), np.asarray(ignore, bool))


def run_cli(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 1


# ------------------------------------------------------------------ AP with known answers


def test_perfect_detections_give_ap_1():
    ap = coco_ap([image(), image(image_id=2)], [(GT, np.array([0.9, 0.8])), (GT[::-1], np.array([0.7, 0.6]))], 100)
    assert ap["ap50"] == pytest.approx(1.0) and ap["ap"] == pytest.approx(1.0)


def test_a_high_scoring_duplicate_lowers_ap50_by_a_known_amount():
    # ranks: TP (P 1, R 1/2), duplicate FP (P 1/2), TP (P 2/3, R 1); interpolated precision is 1 at the
    # 51 recall points <= 0.5 and 2/3 at the 50 above: AP = (51 + 50 * 2/3) / 101
    dets = np.array([GT[0], GT[0] + 1, GT[1]])
    ap = coco_ap([image()], [(dets, np.array([0.9, 0.8, 0.7]))], 100)
    assert ap["ap50"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    # ranked below every true positive it costs nothing
    assert coco_ap([image()], [(dets, np.array([0.9, 0.1, 0.7]))], 100)["ap50"] == pytest.approx(1.0)
    # maxDets = [N] keeps the N best: one detection finds half of the people
    assert coco_ap([image()], [(GT, np.array([0.9, 0.8]))], 1)["ap50"] == pytest.approx(51 / 101)


def test_ignore_regions_are_neither_hit_nor_miss():
    ign = image(ignore=(False, True))
    assert coco_ap([ign], [(GT, np.array([0.8, 0.9]))], 100)["ap50"] == pytest.approx(1.0)       # a hit inside: no FP
    assert coco_ap([ign], [(GT[:1], np.array([0.8]))], 100)["ap50"] == pytest.approx(1.0)        # missed: no miss
    inside = np.array([GT[0], [105, 20, 125, 60]])                                              # part of the region
    assert coco_ap([ign], [(inside, np.array([0.5, 0.9]))], 100)["ap50"] == pytest.approx(1.0)
    assert coco_ap([image()], [(np.zeros((0, 4)), np.zeros(0))], 100)["ap50"] == 0.0
    assert np.isnan(coco_ap([image(ignore=(True, True))], [(GT, np.array([0.9, 0.8]))], 100)["ap50"])


def test_best_f1_threshold():
    dets = np.array([GT[0], GT[0] + 1, GT[1], [150, 0, 190, 100]])
    # by score: TP, TP, FP, FP -> F1 2/3, 1 (both found), 0.8, 2/3
    assert best_f1_threshold([image()], [(dets[[0, 2, 1, 3]], np.array([0.9, 0.7, 0.4, 0.2]))]) == pytest.approx(0.7)


# ------------------------------------------------------------------ the command


@pytest.fixture(scope="module")
def checkpoints(nms_toy, tmp_path_factory):
    """Tiny Seq2Seq-NMS models (with and without the mask), one epoch on the toy set."""
    root = tmp_path_factory.mktemp("nms_ckpt")
    train = extract_candidates(nms_toy, DetectorSimulator(), max_candidates=30, split="train", progress=False)
    out = {}
    for name, mask in (("mask", True), ("nomask", False)):
        cfg = tiny_config().__class__(**{**tiny_config().__dict__, "mask": mask})
        result = train_seq2seq(train, None, TrainSettings(epochs=1, max_candidates=30), cfg, progress=False)
        out[name] = save_model(result.model, root / f"{name}.pt")
    return out


@pytest.fixture(scope="module")
def evaluated(checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp("nms_eval")
    args = ["evaluate", "nms", "--split", "sparse", "--seed", "1000", "--n-images", "2", "--detector", "simulated",
            "--caps", "10,30", "--checkpoint", str(checkpoints["mask"]), "--ablation-checkpoint",
            str(checkpoints["nomask"]), "--data-cache", str(root / "cache"), "--out", str(root / "out")]
    assert run_cli(args) == 0
    return root


def test_cli_writes_results_table_and_figures(evaluated):
    from hcgym.perception import nms

    out = evaluated / "out"
    assert sorted(p.name for p in out.iterdir()) == ["ap_vs_candidates.png", "examples.png", "results.json", "table.md"]
    res = json.loads((out / "results.json").read_text())
    assert (res["split"], res["seed"], res["n_images"], res["caps"]) == ("sparse", 1000, 2, [10, 30])
    assert res["detector"]["simulated"] and res["detector"]["name"] == "simulated"
    assert list(res["methods"]) == [*nms.list_methods(), "seq2seq_nomask"]
    for row in res["methods"].values():
        assert set(row["by_cap"]) == {"10", "30"}
        for r in row["by_cap"].values():
            assert 0 <= r["ap"] <= r["ap50"] <= 1 and r["ms"] > 0 and r["kept"] <= 30
        assert (row["ap50"], row["ap"], row["ms"]) == tuple(row["by_cap"]["30"][k] for k in ("ap50", "ap", "ms"))
    assert "edge_ms" in res["methods"]["seq2seq"] and "f1_threshold" in res["methods"]["greedy_0.5"]
    table = (out / "table.md").read_text()
    assert "SIMULATOR" in table and "| Method | N=10 | N=30 |" in table and "**" in table
    assert "Seq2Seq-NMS without mask (ablation)" in table and "minitest (seed Table 6)" in table
    for png in ("ap_vs_candidates.png", "examples.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    caches = list((evaluated / "cache" / "sparse_seed1000_n2").glob("candidates_simulated_*.npz"))
    assert len(caches) == 1


def test_cli_without_checkpoint_leaves_seq2seq_out(evaluated, capsys):
    out = evaluated / "plain"
    cache = next((evaluated / "cache" / "sparse_seed1000_n2").glob("candidates_simulated_*.npz"))
    stamp = cache.stat().st_mtime_ns
    args = ["evaluate", "nms", "--split", "sparse", "--seed", "1000", "--n-images", "2", "--detector", "simulated",
            "--caps", "30", "--methods", "all", "--checkpoint", "none", "--ablation-checkpoint", "none",
            "--data-cache", str(evaluated / "cache"), "--out", str(out)]
    assert run_cli(args) == 0
    assert "seq2seq left out: no --checkpoint" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert "seq2seq" not in res["methods"] and "seq2seq_nomask" not in res["methods"]
    assert any("seq2seq left out" in n for n in res["notes"])
    assert cache.stat().st_mtime_ns == stamp                                  # candidates came from the cache


BAD = [
    (["--caps", "0"], "--caps"),
    (["--caps", "10,x"], "--caps"),
    (["--split", "crowded"], "--split"),
    (["--n-images", "0"], "--n-images"),
    (["--methods", "greedy_0.5,bogus"], "--methods"),
    (["--methods", "seq2seq", "--checkpoint", "none"], "--checkpoint"),
    (["--checkpoint", "MISSING"], "--checkpoint"),
    (["--checkpoint", "NOMASK"], "--checkpoint"),
    (["--ablation-checkpoint", "MASK"], "--ablation-checkpoint"),
    (["--detector", "MISSING"], "--detector"),
]


@pytest.mark.parametrize("bad,field", BAD, ids=[" ".join(b) for b, _ in BAD])
def test_bad_input_gives_one_line_error_and_writes_nothing(bad, field, checkpoints, tmp_path, capsys):
    subst = {"MISSING": str(tmp_path / "missing.pt"), "MASK": str(checkpoints["mask"]),
             "NOMASK": str(checkpoints["nomask"])}
    bad = [subst.get(a, a) for a in bad]
    detector = [] if "--detector" in bad else ["--detector", "simulated"]
    args = ["evaluate", "nms", "--n-images", "2", *detector, "--data-cache", str(tmp_path / "cache"),
            "--out", str(tmp_path / "out"), *bad]
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert field in err[-1], err
    if not err[-1].startswith("hcgym evaluate nms: error: argument"):   # argparse adds a usage line above
        assert len(err) == 1, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
