"""The person detector's sim-to-real protocol (perception/detection/sim2real.py, ``--domain real``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")


def run_cli(argv: list[str]) -> int:
    from hcgym.scripts.cli import main

    return main(argv)


def _item(boxes, ignore=None, name="a.jpg") -> dict:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return {"file_name": name, "width": 200, "height": 100, "boxes": boxes,
            "ignore": np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore, bool)}


def test_per_image_counts_hits_false_positives_and_person_scores():
    from hcgym.perception.detection.sim2real import per_image, real_metrics

    people = _item([[10, 10, 50, 90], [100, 10, 140, 90], [150, 10, 190, 90]], [False, False, True])
    empty = _item([], name="cat.jpg")
    dets = [(np.array([[11, 10, 50, 90], [100, 12, 140, 90], [60, 0, 90, 40], [150, 10, 190, 90]], np.float32),
             np.array([0.9, 0.2, 0.5, 0.8], np.float32)),
            (np.array([[0, 0, 50, 50]], np.float32), np.array([0.4], np.float32))]
    rows = per_image([people, empty], dets, 0.3)
    # person 1 found (0.9); person 2 only at 0.2 (below the threshold); the 0.5 box is a false positive; the
    # 0.8 box sits on an ignored person (neither); the cat image has one false positive
    assert rows[0] == {"file_name": "a.jpg", "people": 2, "found": 1, "false_positives": 1,
                       "person_scores": [0.9, 0.2],
                       "detections": [[11, 10, 50, 90, 0.9], [60, 0, 90, 40, 0.5], [150, 10, 190, 90, 0.8]]}
    assert rows[1] == {"file_name": "cat.jpg", "people": 0, "found": 0, "false_positives": 1, "person_scores": [],
                       "detections": [[0, 0, 50, 50, 0.4]]}
    m = real_metrics([people, empty], dets, 0.3)
    assert m["recall"] == 0.5 and m["fp_per_image"] == 1.0 and m["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["negatives"] == 1 and m["people"] == 2 and m["images"] == 2
    c = m["curve"]
    k = c["thresholds"].index(0.15)
    assert c["recall"][k] == 1.0 and c["fp_per_image"][k] == 1.0  # at 0.15 both people are found
    assert c["recall"][-1] == 0.0 and c["fp_per_image"][-1] == 0.0  # nothing scores 0.95


def test_load_real_keeps_people_and_negatives(tmp_path):
    import cv2

    from hcgym.errors import SpecError
    from hcgym.perception.detection.sim2real import load_real

    (tmp_path / "images").mkdir()
    for name in ("p.jpg", "n.png"):
        cv2.imwrite(str(tmp_path / "images" / name), np.full((60, 80, 3), 90, np.uint8))
    coco = {"images": [{"id": 1, "file_name": "p.jpg", "width": 80, "height": 60},
                       {"id": 2, "file_name": "n.png", "width": 80, "height": 60}],
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "face"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 30, 50], "area": 40.0,
                             "iscrowd": 0},
                            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 5, 10, 10], "iscrowd": 0}]}
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(coco))
    items = load_real(ann)
    assert [it["file_name"] for it in items] == ["n.png", "p.jpg"]
    assert np.allclose(items[1]["boxes"], [[10, 5, 40, 55]]) and not items[1]["ignore"].any()
    assert items[0]["boxes"].shape == (0, 4) and items[1]["image"].shape == (60, 80, 3)
    with pytest.raises(SpecError, match="not found"):
        load_real(tmp_path / "missing.json")
    coco["annotations"] = coco["annotations"][1:]  # faces only: nobody to find
    ann.write_text(json.dumps(coco))
    with pytest.raises(SpecError, match="no person"):
        load_real(ann)


@pytest.fixture(scope="module")
def sim_and_real(tmp_path_factory) -> tuple[Path, Path]:
    """4 generated validation images, and the same images written as a 'real' COCO set plus a negative."""
    import cv2

    root = tmp_path_factory.mktemp("s2r")
    sim = root / "sim"
    assert run_cli(["generate", "--world", "crowd_street", "--n", "4", "--seed", "3", "--size", "160x120",
                    "--humans", "1,3", "--identities", "6", "--variants", "2", "--distance", "2,8",
                    "--splits", "0,1,0", "--quiet", "--out", str(sim)]) == 0
    data = json.loads((sim / "annotations" / "val.json").read_text())
    real = root / "real"
    real.mkdir()
    for im in data["images"]:
        (real / im["file_name"]).write_bytes((sim / "images" / im["file_name"]).read_bytes())
    cv2.imwrite(str(real / "negative.png"), np.full((90, 120, 3), 200, np.uint8))
    data["images"].append({"id": 99, "file_name": "negative.png", "width": 120, "height": 90})
    data["annotations"] = [{k: a[k] for k in ("id", "image_id", "category_id", "bbox", "iscrowd")}
                           for a in data["annotations"]]
    (real / "annotations.json").write_text(json.dumps(data))
    return sim, real / "annotations.json"


def test_the_shipped_real_test_set_loads():
    from hcgym.perception.detection.sim2real import load_real

    items = load_real()
    people = sum(int((~it["ignore"]).sum()) for it in items)
    negatives = sum(not len(it["boxes"]) for it in items)
    assert len(items) == 23 and people == 20 and negatives == 10


def test_cli_scores_two_detectors_side_by_side(sim_and_real, tmp_path):
    from hcgym.perception.detection.centernet import CenterNet, CenterNetConfig
    from hcgym.perception.detection.sensor import save_checkpoint

    sim, real = sim_and_real
    import torch

    torch.manual_seed(0)
    tiny = save_checkpoint(CenterNet(CenterNetConfig(input_size=(160, 128), width=0.25)), tmp_path / "tiny.pt")
    out = tmp_path / "out"
    assert run_cli(["evaluate", "detector", "--domain", "real", "--real", str(real), "--sim-data", str(sim),
                    "--baseline", str(tiny), "--detector", "shipped", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in results["rows"]] == [str(tiny), "shipped"]
    assert results["score_threshold"] == 0.3 and (out / "sim2real.png").is_file()
    assert (out / "real_examples.png").is_file()
    shipped = results["rows"][1]
    # the 'real' images are the simulated ones: the shipped detector finds their people on both sides
    assert shipped["real"]["images"] == 5 and shipped["real"]["negatives"] == 1
    assert shipped["real"]["recall"] > 0.5 and shipped["sim"]["ap50"] > 50
    assert shipped["real"]["ap50"] == pytest.approx(shipped["sim"]["ap50"], abs=15)
    table = (out / "table.md").read_text()
    assert "negative.png" in table and "real recall @ 0.3" in table


@pytest.mark.parametrize("extra, field", [
    (["--real", "/nonexistent.json"], "--real"),
    (["--sim-data", "/nonexistent"], "--sim-data"),
    (["--baseline", "shipped"], "--baseline"),
    (["--baseline", "/nonexistent.pt"], "detector"),
])
def test_bad_real_domain_input_gives_one_line_and_writes_nothing(sim_and_real, extra, field, tmp_path, capsys):
    sim, real = sim_and_real
    argv = ["evaluate", "detector", "--domain", "real", "--real", str(real), "--sim-data", str(sim)]
    out = tmp_path / "out"
    assert run_cli([*argv, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    assert not out.exists()


def test_real_only_options_are_refused_with_generated_domains(tmp_path, capsys):
    assert run_cli(["evaluate", "detector", "--domain", "urban", "--baseline", "shipped",
                    "--out", str(tmp_path / "o")]) == 2
    assert "--baseline" in capsys.readouterr().err
