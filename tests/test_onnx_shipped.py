"""The shipped ONNX exports (person detector, Seq2Seq-NMS): of the shipped checkpoints, equal to them, and
their registry sensors (``person/centernet-onnx``, ``nms/seq2seq-onnx``) answer like the originals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import hcgym.perception as hp
from hcgym.errors import SpecError
from hcgym.perception.export import PARITY_LIMIT, SHIP_LIMIT, provenance_path, sha256, ship, shipped_exports

SHIPPED = shipped_exports()
RESHIP = "the shipped export is stale: re-export it with `hcgym export --ship`"


@pytest.fixture(scope="module")
def seq2seq():
    return hp.make("nms/seq2seq"), hp.make("nms/seq2seq-onnx")


@pytest.mark.parametrize("sensor", list(SHIPPED))
def test_shipped_export_is_of_the_shipped_checkpoint(sensor):
    from hcgym.perception.export import _opset

    pt, onnx = SHIPPED[sensor]
    prov = json.loads(provenance_path(onnx).read_text())
    assert prov["source"] == {"file": pt.name, "sha256": sha256(pt)}, RESHIP
    assert prov["onnx_sha256"] == sha256(onnx) and prov["onnx"] == onnx.name
    assert prov["command"].startswith("hcgym export --ship") and prov["sensor"] == sensor
    assert prov["opset"] == _opset(onnx) and prov["parity_ok"] and prov["parity_max_abs_diff"] <= PARITY_LIMIT
    assert prov["inputs"] == 32 and prov["reload"]["same"]
    assert onnx.stat().st_size < SHIP_LIMIT
    assert json.loads(onnx.with_name(onnx.name + ".json").read_text())["sensor"] == sensor


@pytest.mark.parametrize("sensor", list(SHIPPED))
def test_shipped_export_computes_what_the_shipped_checkpoint_does(sensor):
    """A retrained checkpoint without a re-export fails here (and above)."""
    original, exported = hp.make(sensor), hp.make(f"{sensor}-onnx")
    assert exported.name == f"{sensor}-onnx" and exported.inner.config() == original.config()
    for x in original.parity_inputs(np.random.default_rng(1), 3):
        for a, b in zip(original.run_model(*x), exported.inner.run_model(*x)):
            assert a.shape == b.shape
            assert float(np.abs(a - b).max()) <= PARITY_LIMIT, RESHIP


def _candidate_sets(seed: int, sizes: tuple[int, ...], people: int = 30):
    from hcgym.perception.nms.simulate import DetectorSimulator, synthetic_scene

    rng = np.random.default_rng(seed)
    sim = DetectorSimulator(seed=seed, rate=12.0)
    for k, n in enumerate(sizes):
        image, gt = synthetic_scene(rng, 640, 480, people=people)
        boxes, scores = sim.candidates(image, n, gt_boxes=gt, key=k)
        yield image, gt, boxes, scores


def test_seq2seq_onnx_answers_like_seq2seq(seq2seq):
    original, exported = seq2seq
    assert exported.requires_image and exported.name == "nms/seq2seq-onnx"
    for image, _, boxes, scores in _candidate_sets(3, (5, 120, 400)):
        perm = np.random.default_rng(len(boxes)).permutation(len(boxes))    # any input order
        a, b = original(boxes[perm], scores[perm], image), exported(boxes[perm], scores[perm], image)
        assert set(a.keep.tolist()) == set(b.keep.tolist()) == set(range(len(boxes)))  # threshold 0: all kept
        np.testing.assert_allclose(b.scores, a.scores, atol=PARITY_LIMIT, rtol=0)
        np.testing.assert_array_equal(a.boxes, b.boxes)
    strict = hp.make("nms/seq2seq-onnx", score_threshold=0.5, max_candidates=100)
    ref = hp.make("nms/seq2seq", score_threshold=0.5, max_candidates=100)
    a, b = ref(boxes, scores, image), strict(boxes, scores, image)
    assert 0 < len(a) < 100 and set(a.keep.tolist()) == set(b.keep.tolist())
    with pytest.raises(SpecError, match="needs the image"):
        exported(boxes, scores)
    assert len(exported(np.zeros((0, 4)), np.zeros(0), image)) == 0


def test_seq2seq_onnx_ap_equals_seq2seq_on_a_dense_set(seq2seq):
    """AP0.5 and AP0.5:0.95 of the evaluation (COCO, ``maxDets`` = N) within 0.3 points on a dense set."""
    from hcgym.perception.nms.candidates import ImageCandidates
    from hcgym.perception.nms.evaluation import run_method
    from hcgym.perception.nms.metrics import coco_ap

    images, ims = [], []
    for k, (image, gt, boxes, scores) in enumerate(_candidate_sets(5, (400,) * 4, people=40)):
        images.append(image)
        ims.append(ImageCandidates(Path(f"scene{k}.png"), 640, 480, k, boxes.astype(np.float32),
                                   scores.astype(np.float32), gt.astype(np.float32), np.zeros(len(gt), bool)))
    original, exported = seq2seq
    ap = [coco_ap(ims, run_method(m, ims, images)[0], 400) for m in (original, exported)]
    assert ap[0]["ap50"] > 0.3
    for key in ("ap50", "ap"):
        assert abs(ap[0][key] - ap[1][key]) * 100 <= 0.3, (key, ap)


def test_person_detector_onnx_detects_like_the_original():
    from hcgym.perception.nms.simulate import synthetic_scene

    original, exported = hp.make("person/centernet"), hp.make("person/centernet-onnx")
    rng = np.random.default_rng(2)
    for w, h in ((384, 288), (640, 480)):
        image, _ = synthetic_scene(rng, w, h, people=6)
        a, b = original(image), exported(image)
        assert type(a) is type(b) and len(a) == len(b)
        np.testing.assert_allclose(b.boxes, a.boxes, atol=0.05)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-3)
        (ba, sa), (bb, sb) = original.candidates(image, 100), exported.candidates(image, 100)
        assert len(sa) == len(sb) > 10
        np.testing.assert_allclose(bb, ba, atol=0.05)
        np.testing.assert_allclose(sb, sa, atol=1e-4)
    soft = hp.make("person/centernet-onnx", nms="soft_linear", score_threshold=0.4)
    assert soft.inner.nms_name == "soft_linear" and soft.inner.score_threshold == 0.4


def test_shipped_onnx_refuses_what_is_not_shipped(tmp_path):
    assert set(SHIPPED) == {"person/centernet", "nms/seq2seq"}
    with pytest.raises(SpecError, match="ONNX file not found"):
        hp.make("nms/seq2seq-onnx", path=tmp_path / "missing.onnx")
    with pytest.raises(SpecError, match="is an export of 'person/centernet', not of 'nms/seq2seq'"):
        hp.make("nms/seq2seq-onnx", path=SHIPPED["person/centernet"][1])
    with pytest.raises(SpecError, match="config does not rebuild"):
        hp.make("nms/seq2seq-onnx", fast=False)


def test_ship_rewrites_the_export_beside_the_checkpoint(tmp_path, monkeypatch, capsys):
    from hcgym.perception import export
    from hcgym.scripts.cli import main

    pt, _ = SHIPPED["nms/seq2seq"]
    shutil.copy(pt, tmp_path / pt.name)
    monkeypatch.setattr(export, "shipped_exports", lambda: {"nms/seq2seq": (tmp_path / pt.name,
                                                                          tmp_path / "seq2seq_nms.onnx")})
    assert main(["export", "--ship", "nms/seq2seq", "--inputs", "2"]) == 0
    assert "shipped seq2seq_nms.onnx (nms/seq2seq, from seq2seq_nms.pt)" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["PROVENANCE_seq2seq_nms_onnx.json", "seq2seq_nms.onnx",
                                                          "seq2seq_nms.onnx.json", "seq2seq_nms.pt"]
    prov = json.loads((tmp_path / "PROVENANCE_seq2seq_nms_onnx.json").read_text())
    assert prov["source"]["sha256"] == sha256(pt) and prov["inputs"] == 2 and prov["opset"] == 18
    assert prov["command"] == "hcgym export --ship" and prov["onnx_sha256"] == sha256(tmp_path / "seq2seq_nms.onnx")
    assert main(["export", "--ship", "--out", str(tmp_path / "x")]) == 2
    assert "--ship writes the package's model folders" in capsys.readouterr().err
    with pytest.raises(SpecError, match="no shipped ONNX export for face/hcgym-irnet"):
        ship(["face/hcgym-irnet"])
    assert main(["export", "nms/seq2seq"]) == 2 and "give one SENSOR and --out DIR" in capsys.readouterr().err


def test_the_bench_scores_the_shipped_exports_like_the_originals(crowd):
    """``hcgym evaluate sensor`` metrics of each export equal the original's within 0.5 points, on two views
    of crowd_street (the world's camera at 640x480 and a narrower 384x288 one)."""
    from hcgym.perception import bench
    from hcgym.types import CameraIntrinsics

    frames = [crowd.render(), crowd.render(intrinsics=CameraIntrinsics.from_hfov(384, 288, 45.0))]
    for sensor in SHIPPED:
        a, b = (bench.run(bench.BenchConfig(sensor=s, world="crowd_street", seconds=2, fps=1), frames,
                          progress=False)["metrics"] for s in (sensor, f"{sensor}-onnx"))
        assert a["people"] == b["people"] >= 10 and a["ap50"] > 30
        for key in ("ap50", "ap"):  # percent
            assert abs(a[key] - b[key]) <= 0.5, (sensor, key, a[key], b[key])
        for key in ("recall", "precision"):  # fractions
            assert abs(a[key] - b[key]) <= 0.005, (sensor, key, a[key], b[key])
