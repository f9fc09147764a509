"""Person detector: targets, decoding, letterboxing, training, ONNX, metrics and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def run_cli(argv: list[str]) -> int:
    from hcgym.scripts.cli import main

    return main(argv)


@pytest.fixture(scope="module")
def crowd_set(tmp_path_factory) -> Path:
    """12 small generated crowd images (train 8 / val 2 / test 2)."""
    out = tmp_path_factory.mktemp("det") / "crowd"
    assert run_cli(["generate", "--world", "crowd_street", "--n", "12", "--seed", "5", "--size", "160x128",
                    "--humans", "2,6", "--identities", "6", "--variants", "1", "--distance", "2,8",
                    "--shard-size", "6", "--splits", "0.7,0.15,0.15", "--out", str(out)]) == 0
    return out


# ---------------------------------------------------------------- targets and decoding
def test_targets_put_a_unit_peak_at_the_centre_cell_with_exact_size_and_offset():
    from hcgym.perception.detection.centernet import STRIDE, encode_targets

    box = np.array([[40.0, 20.0, 72.0, 100.0]], np.float32)  # centre (56, 60) -> cell (14, 15), offset 0
    t = encode_targets(box, np.array([False]), (128, 128))
    assert t["heatmap"].shape == (32, 32)
    iy, ix = np.unravel_index(np.argmax(t["heatmap"]), t["heatmap"].shape)
    assert (iy, ix) == (15, 14) and t["heatmap"][iy, ix] == 1.0 and t["mask"].sum() == 1
    assert np.allclose(np.exp(t["size"][:, iy, ix]) * STRIDE, [32.0, 80.0])
    assert np.allclose(t["offset"][:, iy, ix], [0.0, 0.0])
    # the Gaussian is elongated like the box
    assert t["heatmap"][iy + 3, ix] > t["heatmap"][iy, ix + 3]


def test_ignored_people_are_cut_out_of_the_loss_but_not_counted():
    from hcgym.perception.detection.centernet import encode_targets

    boxes = np.array([[8, 8, 40, 90], [80, 10, 112, 100]], np.float32)
    t = encode_targets(boxes, np.array([False, True]), (128, 128))
    assert t["mask"].sum() == 1
    assert t["weight"][int(55 / 4), int(96 / 4)] == 0.0  # centre of the ignored person
    assert t["weight"][int(49 / 4), int(24 / 4)] == 1.0  # counted person
    assert t["heatmap"][:, 20:].max() < 1e-3


def test_decode_inverts_the_targets():
    from hcgym.perception.detection.centernet import decode, encode_targets

    boxes = np.array([[10.5, 12.25, 50.0, 110.0], [70.0, 30.0, 100.75, 90.5]], np.float32)
    t = encode_targets(boxes, np.zeros(2, bool), (128, 128))
    maps = np.concatenate([t["heatmap"][None], t["size"], t["offset"]])
    out, scores = decode(maps, top_k=2)
    assert np.allclose(scores, 1.0)
    assert np.allclose(sorted(out.tolist()), sorted(boxes.tolist()), atol=1e-4)
    # raw candidates: no peak extraction, so the neighbours of a peak come next, sorted by score
    out, scores = decode(maps, top_k=20)
    assert np.all(np.diff(scores) <= 0) and len(out) == 20


def test_candidates_map_letterboxed_boxes_back_to_image_pixels_and_respect_the_pre_nms():
    from hcgym.perception.detection.centernet import CenterNet, CenterNetConfig, encode_targets, letterbox_params
    from hcgym.perception.detection.sensor import PersonDetector
    from hcgym.perception.nms import iou_matrix

    det = PersonDetector(model=CenterNet(CenterNetConfig(input_size=(128, 96), width=0.25)))
    image = np.zeros((180, 320, 3), np.uint8)  # 16:9 into a 4:3 canvas: bars above and below
    scale, left, top = letterbox_params(320, 180, (128, 96))
    truth = np.array([[100.0, 40.0, 140.0, 170.0]], np.float32)
    canvas_box = truth * scale + np.array([left, top, left, top], np.float32)
    t = encode_targets(canvas_box, np.zeros(1, bool), (128, 96))
    maps = np.concatenate([t["heatmap"][None], t["size"], t["offset"]])[None]
    det.run_model = lambda x: [maps]
    boxes, scores = det.candidates(image, max_candidates=30, pre_nms_iou=0.8)
    assert np.allclose(boxes[0], truth[0], atol=1e-3) and scores[0] == pytest.approx(1.0)
    assert len(boxes) <= 30 and np.all(np.diff(scores) <= 0)
    iou = iou_matrix(boxes.astype(np.float64))
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.8 + 1e-9
    raw, _ = det.candidates(image, max_candidates=30, pre_nms_iou=None)
    assert len(raw) == 30 and np.all(raw[:, 2] <= 320) and np.all(raw[:, 3] <= 180) and np.all(raw >= 0)


def test_bad_inputs_name_the_problem():
    from hcgym.errors import SpecError
    from hcgym.perception.detection.centernet import CenterNet, CenterNetConfig
    from hcgym.perception.detection.sensor import PersonDetector, load_detector

    with pytest.raises(SpecError, match="input_size"):
        CenterNetConfig(input_size=(100, 96)).check()
    det = PersonDetector(model=CenterNet(CenterNetConfig(input_size=(64, 64), width=0.25)))
    with pytest.raises(SpecError, match="image"):
        det(np.zeros((10, 10), np.uint8))
    with pytest.raises(SpecError, match="max_candidates"):
        det.candidates(np.zeros((10, 10, 3), np.uint8), 0)
    with pytest.raises(SpecError, match="not found"):
        load_detector("/nonexistent/model.pt")


# ---------------------------------------------------------------- metrics
def test_coco_ap_and_precision_on_hand_built_cases():
    from hcgym.perception.scoring import coco_ap, precision_at

    items = [{"width": 100, "height": 100, "boxes": np.array([[10, 10, 30, 60], [50, 10, 70, 60], [80, 5, 95, 40]],
                                                             np.float32), "ignore": np.array([False, False, True])}]
    perfect = [(items[0]["boxes"][:2], np.array([0.9, 0.8]))]
    assert coco_ap(items, perfect)["ap50"] == pytest.approx(100.0)
    # a detection on the ignored person is neither a hit nor a false positive
    with_ignored = [(items[0]["boxes"], np.array([0.9, 0.8, 0.95]))]
    assert coco_ap(items, with_ignored)["ap50"] == pytest.approx(100.0)
    # a confident false positive ranked first: precision 0 at the first recall points
    fp = [(np.concatenate([[[0, 70, 20, 99]], items[0]["boxes"][:2]]), np.array([0.99, 0.9, 0.8]))]
    assert coco_ap(items, fp)["ap50"] < 100.0
    assert precision_at(items, fp, 0.5) == {"precision": pytest.approx(66.67), "recall": 100.0}
    assert precision_at(items, fp, 0.95) == {"precision": 0.0, "recall": 0.0}


# ---------------------------------------------------------------- training, ONNX, CLI
def test_person_zoom_frames_one_person_like_a_portrait():
    """A close-up crop magnifies one person to 45-125 % of the canvas height (at most 3x), keeps the head inside
    and the box on the person; with the option off the augmentation draws exactly as before."""
    from dataclasses import replace

    from hcgym.perception.detection.training import DetectorTrainConfig, _augment

    image = np.zeros((288, 384, 3), np.uint8)
    image[100:220, 180:210] = 200  # one person, 120 px tall
    boxes = np.array([[180, 100, 210, 220]], np.float32)
    cfg = replace(DetectorTrainConfig(), flip=0.0, photometric=0.0, person_zoom=1.0)
    heights = []
    for seed in range(12):
        canvas, out, ign = _augment(image, boxes, np.zeros(1, bool), cfg, np.random.default_rng(seed), (384, 288))
        assert canvas.shape == (288, 384, 3) and len(out) == 1 and not ign[0]
        x0, y0, x1, y1 = out[0]
        assert y0 > 0  # the head is inside the crop
        assert canvas[int(y0) + 2, int((x0 + x1) / 2)].max() == 200  # the box is on the person
        heights.append(y1 - y0)
    assert 0.4 * 288 <= min(heights) and max(heights) <= 288 and np.ptp(heights) > 20
    small = np.array([[180, 100, 190, 120]], np.float32)  # too small to magnify: at most the plain zoom's 1/0.6
    for seed in range(6):
        _, out, _ = _augment(image, small, np.zeros(1, bool), cfg, np.random.default_rng(seed), (384, 288))
        assert out[0, 3] - out[0, 1] <= 20 / 0.6 + 0.5


def test_training_lowers_the_loss_is_deterministic_and_resumes_exactly(crowd_set, tmp_path, one_torch_thread):
    from hcgym.perception.detection.centernet import CenterNet, CenterNetConfig
    from hcgym.perception.detection.training import DetectorTrainConfig, load_split, train_detector

    items = load_split(crowd_set, "train")
    assert items and all(it["image"].shape == (128, 160, 3) for it in items)
    cfg = DetectorTrainConfig(epochs=4, batch_size=4, lr=3e-3, warmup=2, seed=1, threads=1)

    def fresh():
        torch.manual_seed(0)
        return CenterNet(CenterNetConfig(input_size=(160, 128), width=0.25))

    a = train_detector(items, cfg, model=fresh(), progress=False, log=lambda *_: None)
    assert a.history[-1]["loss"] < a.history[0]["loss"]
    b = train_detector(items, cfg, model=fresh(), progress=False, log=lambda *_: None)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    # interrupted after epoch 2 (the state is saved before the epoch is logged), then resumed
    class Stop(Exception):
        pass

    def stop_after_two(line: str) -> None:
        if '"epoch": 2' in line:
            raise Stop

    with pytest.raises(Stop):
        train_detector(items, cfg, model=fresh(), out_dir=tmp_path, progress=False, log=stop_after_two)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 2
    c = train_detector(items, cfg, model=fresh(), out_dir=tmp_path, progress=False, log=lambda *_: None)
    for (k, va), vc in zip(a.model.state_dict().items(), c.model.state_dict().values()):
        assert torch.equal(va, vc), k


def test_cli_trains_exports_and_evaluates_recordings(crowd_set, tmp_path, capsys):
    out = tmp_path / "model"
    assert run_cli(["train", "detector", "--data", str(crowd_set), "--out", str(out), "--epochs", "2", "--tiny",
                    "--input-size", "160x128", "--threads", "1"]) == 0
    prov = json.loads((out / "PROVENANCE.json").read_text())
    assert prov["onnx_max_abs_diff"] < 1e-4 and prov["train_images"] == 8 and len(prov["history"]) == 2
    assert "val_ap50" in prov["history"][-1]
    assert (out / "person_centernet.onnx").is_file() and (out / "training_curve.png").is_file()
    # the ONNX sensor gives the same candidates as PyTorch
    from hcgym.perception.base import OnnxSensor
    from hcgym.perception.detection.sensor import PersonDetector

    image = np.asarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3)), np.uint8)
    bt, st = PersonDetector(out / "person_centernet.pt").candidates(image, 50)
    bo, so = OnnxSensor(out / "person_centernet.onnx").candidates(image, 50)
    assert np.allclose(st, so, atol=1e-4) and np.allclose(bt, bo, atol=1e-2)
    # an export is identified by its file (candidate caches), not by the weights of its placeholder network
    assert OnnxSensor(out / "person_centernet.onnx").fingerprint == OnnxSensor(out / "person_centernet.onnx").fingerprint
    # training again into the same folder needs --resume
    assert run_cli(["train", "detector", "--data", str(crowd_set), "--out", str(out), "--tiny"]) == 2
    assert "--resume" in capsys.readouterr().err
    # recordings: a folder of images with COCO annotations
    ev = tmp_path / "ev"
    assert run_cli(["evaluate", "detector", "--source", str(crowd_set / "images"), "--annotations",
                    str(crowd_set / "annotations" / "train.json"), "--detector", str(out / "person_centernet.onnx"),
                    "--out", str(ev)]) == 0
    summary = json.loads((ev / "summary.json").read_text())
    assert summary["frames"] == 12 and summary["annotated_frames"] == 8 and 0 <= summary["ap50"] <= 100
    assert len(list((ev / "overlays").glob("*.jpg"))) == 12
    dets = json.loads((ev / "detections.json").read_text())
    assert all(d["category_id"] == 1 and len(d["bbox"]) == 4 for d in dets)


def test_cli_trains_on_several_data_folders_together(crowd_set, tmp_path):
    """Domain-randomised scenes with replayed plain ones: the train splits add up, provenance lists both."""
    out = tmp_path / "two"
    assert run_cli(["train", "detector", "--data", str(crowd_set), str(crowd_set), "--out", str(out), "--epochs", "1",
                    "--tiny", "--input-size", "160x128", "--threads", "1", "--no-val"]) == 0
    prov = json.loads((out / "PROVENANCE.json").read_text())
    assert prov["train_images"] == 16 and prov["data"] == f"{crowd_set} {crowd_set}"
    assert isinstance(prov["data_config"], list) and len(prov["data_config"]) == 2


@pytest.mark.parametrize("argv, field", [
    (["train", "detector", "--data", "/nonexistent"], "--data"),
    (["evaluate", "detector", "--source", "/nonexistent", "--detector", "x.pt"], "--source"),
    (["evaluate", "detector", "--domain", "field", "--nms", "nope"], "method"),
    (["evaluate", "detector", "--domain", "field", "--score-threshold", "2"], "--score-threshold"),
])
def test_bad_cli_input_gives_one_line_and_writes_nothing(argv, field, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    assert not out.exists()


def test_shipped_detector_finds_people_in_held_out_scenes(tmp_path):
    """The committed model on freshly generated scenes (a seed and identities it never saw)."""
    from hcgym.perception.detection.sensor import MODELS_DIR, load_detector
    from hcgym.perception.detection.training import detect_all, load_split
    from hcgym.perception.scoring import coco_ap

    prov = json.loads((MODELS_DIR / "PROVENANCE_person_centernet.json").read_text())
    det = load_detector()
    assert det.fingerprint == prov["fingerprint"]
    out = tmp_path / "scenes"
    assert run_cli(["generate", "--world", "crowd_street", "--n", "6", "--seed", "77", "--size", "384x288",
                    "--humans", "2,6", "--identities", "8", "--variants", "1", "--splits", "0,0,1",
                    "--out", str(out)]) == 0
    items = load_split(out, "test")
    ap = coco_ap(items, detect_all(det, items))
    assert ap["ap50"] > 60.0, ap
    people = det(items[0]["image"])
    assert people.label == "person" and len(people) >= 1 and np.all(people.scores >= 0.3)


def test_any_coco_results_file_is_evaluated_as_detections_and_as_nms_candidates(crowd_set, tmp_path, capsys):
    """Ground truth written back as detections scores AP 100; the same file feeds the NMS evaluation."""
    from hcgym.perception.scoring import load_coco_boxes

    gt = crowd_set / "annotations" / "train.json"
    results = []
    for it in load_coco_boxes(gt):
        for (x0, y0, x1, y1), ig in zip(it["boxes"], it["ignore"]):
            if not ig:
                results += [{"image_id": it["id"], "category_id": 1, "score": 0.9,
                             "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]},
                            {"image_id": it["id"], "category_id": 1, "score": 0.5,  # a shifted duplicate
                             "bbox": [float(x0) + 2, float(y0) + 2, float(x1 - x0), float(y1 - y0)]}]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    out = tmp_path / "det"
    assert run_cli(["evaluate", "detector", "--detections", str(path), "--annotations", str(gt),
                    "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ap50"] == pytest.approx(100.0) and summary["recall"] == pytest.approx(100.0)
    # every duplicate above 0.3 is a false positive, unless it lands on an ignored person (then uncounted)
    assert 50.0 <= summary["precision"] < 60.0
    nms_out = tmp_path / "nms"
    assert run_cli(["evaluate", "nms", "--annotations", str(gt), "--detector", str(path), "--caps", "50",
                    "--methods", "greedy_0.5,soft_linear", "--out", str(nms_out)]) == 0
    res = json.loads((nms_out / "results.json").read_text())
    assert res["methods"]["greedy_0.5"]["ap50"] == pytest.approx(1.0)  # greedy removes every duplicate
    assert res["detector"]["name"] == "coco-results:results.json"
    # a file that is not COCO results, and detections without ground truth
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": 1}')
    assert run_cli(["evaluate", "detector", "--detections", str(bad), "--annotations", str(gt),
                    "--out", str(tmp_path / "o1")]) == 2
    assert run_cli(["evaluate", "detector", "--detections", str(path), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "--detections" in err and "--annotations" in err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
