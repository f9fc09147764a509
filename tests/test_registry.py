"""The one sensor registry (face, person detector, NMS post-processors), ``hcgym sensors`` and safe ONNX sidecars."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import hcgym.perception as hp
from hcgym.errors import SpecError
from hcgym.perception import nms
from hcgym.perception.base import OnnxSensor
from hcgym.perception.registry import registry
from hcgym.scripts.cli import main

FACE = ["face/mediapipe-short", "face/mediapipe-full", "face/dlib-hog", "face/dlib-mmod", "face/retinaface",
        "face/dlib-68", "face/mediapipe-mesh", "face/dlib", "face/arcface-onnx", "face/insightface",
        "face/hcgym-irnet"]
NMS = ["greedy_0.4", "greedy_0.5", "greedy_0.6", "soft_linear", "soft_gaussian", "fast", "cluster", "cluster_s",
       "cluster_d", "cluster_sd", "cluster_sdw", "seq2seq", "seq2seq-onnx"]


@pytest.fixture
def scratch_registry():
    """Registrations made by a test are removed afterwards."""
    before = dict(registry._specs)
    yield registry
    registry._specs.clear()
    registry._specs.update(before)


# ------------------------------------------------------------------------------------ the registry
def test_every_sensor_kind_is_registered():
    assert set(FACE) <= set(hp.list_sensors("face/"))
    assert set(hp.list_sensors()) - set(hp.list_sensors("face/")) == {
        "person/centernet", "person/centernet-onnx", *(f"nms/{n}" for n in NMS), "pose/mediapipe", "hands/mediapipe",
        "action/costgcn", "action/cox3d", "expression/pstbln", "gesture/rgbd", "biosignal/ecg", "speech/keywords"}
    assert [s.id for s in hp.specs("nms/")] == [f"nms/{n}" for n in NMS] and nms.list_methods() == NMS
    for s in hp.specs():
        assert s.kind and s.input and s.output and ":" in s.entry_point, s
    assert {s.id for s in hp.specs() if s.exports_onnx} == {"face/hcgym-irnet", "person/centernet", "nms/seq2seq",
                                                             "action/costgcn", "action/cox3d", "expression/pstbln",
                                                             "gesture/rgbd", "biosignal/ecg", "speech/keywords"}
    assert {s.kind for s in hp.specs()} == {"face detector", "face landmarks", "face recognizer", "person detector",
                                            "nms post-processor", "body keypoints", "hand keypoints",
                                            "action classifier (continual, skeleton)",
                                            "action classifier (continual, video)",
                                            "expression classifier (face tracks, MC dropout)",
                                            "gesture classifier (hand crops, RGB-D)",
                                            "ecg beats and rhythm (wearable, one lead)", "keyword spotter (voiced spans)"}
    det = hp.spec("person/centernet")
    assert (det.input, det.output, det.onnx) == ("rgb frame", "Detections", det.entry_point)
    assert hp.spec("nms/seq2seq").input == "boxes + scores + image"
    assert hp.spec("face/dlib-68").input == "rgb frame [+ face boxes]"


def test_nms_make_is_the_registry():
    for name in NMS[:-2]:  # the classical methods (the Seq2Seq ones hold a network)
        a, b = nms.make(name, score_threshold=0.2), hp.make(f"nms/{name}", score_threshold=0.2)
        assert type(a) is type(b) and vars(a) == vars(b) and a.name == f"nms/{name}"
    assert nms.make("soft_gaussian").method == "gaussian" and hp.make("nms/cluster_sdw").weighted
    with pytest.raises(SpecError, match="unknown NMS method 'nope'.*greedy_0.5"):
        nms.make("nope")
    with pytest.raises(SpecError, match="unknown sensor 'nms/nope'.*nms/fast"):
        hp.make("nms/nope")


def test_person_detector_comes_from_the_registry(tmp_path):
    from hcgym.perception.detection import PersonDetector, load_detector

    det = hp.make("person/centernet", nms="soft_linear", score_threshold=0.4)
    assert isinstance(det, PersonDetector) and det.name == "person/centernet"
    assert det.nms_name == "soft_linear" and det._nms.name == "nms/soft_linear" and det.score_threshold == 0.4
    shipped = load_detector("shipped")
    assert isinstance(shipped, PersonDetector) and shipped.fingerprint == det.fingerprint
    with pytest.raises(SpecError, match="not found"):
        load_detector(tmp_path / "missing.pt")


def test_importing_perception_imports_no_task_until_a_look_up():
    code = ("import sys, hcgym.perception as hp\n"
            "assert not [m for m in sys.modules if m.startswith(('hcgym.perception.face', 'hcgym.perception.nms', "
            "'hcgym.perception.detection'))]\n"
            "assert 'nms/fast' in hp.list_sensors() and 'hcgym.perception.face' in sys.modules\n"
            "assert 'torch' not in sys.modules  # listing imports no model code\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_register_a_new_sensor(scratch_registry):
    spec = hp.register("test/greedy", "hcgym.perception.nms.classical:GreedyNMS", kind="nms post-processor",
                       input="boxes + scores", output="NmsResult", kwargs={"iou_threshold": 0.3})
    assert hp.spec("test/greedy") is spec and "test/greedy" in hp.list_sensors("test/")
    method = hp.make("test/greedy")
    assert method.iou_threshold == 0.3 and method.name == "test/greedy"
    assert hp.make("test/greedy", iou_threshold=0.7).iou_threshold == 0.7
    hp.register("test/greedy", "hcgym.perception.nms.classical:GreedyNMS", kind="nms post-processor",
                input="boxes + scores", output="NmsResult", kwargs={"iou_threshold": 0.3})  # the same again: fine
    with pytest.raises(SpecError, match="already registered"):
        hp.register("test/greedy", "hcgym.perception.nms.classical:FastNMS", kind="nms post-processor",
                    input="boxes + scores", output="NmsResult")
    with pytest.raises(SpecError, match="task/name"):
        hp.register("greedy", "a:b", kind="k", input="i", output="o")
    with pytest.raises(SpecError, match="module:attribute"):
        hp.register("test/x", "hcgym.perception.nms.classical.GreedyNMS", kind="k", input="i", output="o")


# ------------------------------------------------------------------------------------ hcgym sensors
def test_sensors_command_prints_an_aligned_table(capsys):
    assert main(["sensors"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "kind", "input", "output", "onnx"] and len(lines) == 1 + len(hp.list_sensors())
    onnx_col = lines[0].index("onnx")
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert set(rows) == set(hp.list_sensors())
    assert all(ln[onnx_col:] in ("yes", "no") for ln in lines[1:])
    assert rows["person/centernet"][onnx_col:] == "yes" and rows["nms/fast"][onnx_col:] == "no"
    assert "rgb frame [+ face boxes]" in rows["face/dlib"] and "Embeddings" in rows["face/dlib"]


def test_sensors_command_json_and_prefix(capsys):
    assert main(["sensors", "nms/", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [f"nms/{n}" for n in NMS]
    assert rows[1]["kwargs"] == {"iou_threshold": 0.5} and rows[1]["onnx"] is False
    assert {"kind", "input", "output", "entry_point", "description", "task"} <= set(rows[0])
    assert main(["sensors", "bogus/"]) == 2
    assert "no sensor id starts with 'bogus/'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ ONNX sidecars
EVIL = "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('imported')\nclass Payload:\n    pass\n"


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """A module on sys.path that leaves a RAN file when imported."""
    (tmp_path / "hcgym_evil_payload.py").write_text(EVIL)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "RAN"
    sys.modules.pop("hcgym_evil_payload", None)


def _export(tmp_path, meta) -> object:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not read: the sidecar is refused first")
    path.with_name("model.onnx.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return path


@pytest.mark.parametrize("meta,match", [
    ({"sensor": "hcgym_evil_payload:Payload", "config": {}}, "not a registered sensor that exports to ONNX"),
    ({"sensor": "os:system", "config": {"command": "touch /tmp/x"}}, "'os:system' is not a registered sensor"),
    ({"class": "hcgym_evil_payload.Payload", "config": {}}, "registered id"),
    ({"sensor": "face/hcgym-irnet", "class": "hcgym_evil_payload.Payload", "config": {}},
     "names class 'hcgym_evil_payload.Payload'"),
    ({"sensor": "face/dlib", "config": {}}, "'face/dlib' is not a registered sensor that exports to ONNX"),
    ({"sensor": "face/hcgym-irnet", "config": ["not", "a", "dict"]}, "registered id"),
    ("{not json", "not a readable sensor sidecar"),
    ({"sensor": "person/centernet", "config": {"model": "hcgym_evil_payload"}}, "config does not rebuild"),
    ({"sensor": "person/centernet", "config": {"nms": "hcgym_evil_payload:Payload"}}, "unknown NMS method"),
])
def test_malicious_sidecar_is_refused_before_any_import(tmp_path, evil_module, meta, match):
    path = _export(tmp_path, meta)
    with pytest.raises(SpecError, match=match):
        OnnxSensor(path)
    assert not evil_module.exists() and "hcgym_evil_payload" not in sys.modules


@pytest.fixture(scope="module")
def detector_export(tmp_path_factory):
    detector = hp.make("person/centernet")
    return detector, detector.export_onnx(tmp_path_factory.mktemp("onnx") / "person.onnx")


def test_project_export_round_trips(detector_export):
    from hcgym.perception.detection import load_detector

    detector, path = detector_export
    meta = json.loads(path.with_name("person.onnx.json").read_text())
    assert meta == {"sensor": "person/centernet", "config": detector.config()}
    onnx = load_detector(path)
    assert isinstance(onnx, OnnxSensor) and onnx.name == "person/centernet(onnx)" and onnx.inner.nms_name == "greedy_0.5"
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    np.testing.assert_allclose(onnx.maps(image)[0], detector.maps(image)[0], atol=1e-4)


def test_older_sidecars_naming_the_registered_class_still_load(detector_export, tmp_path):
    detector, path = detector_export
    old = tmp_path / "old.onnx"
    old.write_bytes(path.read_bytes())
    meta = {"sensor": "person/centernet", "class": "hcgym.perception.detection.sensor.PersonDetector",
            "config": detector.config()}
    old.with_name("old.onnx.json").write_text(json.dumps(meta))
    assert OnnxSensor(old).inner.input_size == detector.input_size


def test_shipped_sidecar_names_a_registered_sensor():
    from hcgym.perception.face.models import HERE

    meta = json.loads((HERE / "irnet.onnx.json").read_text())
    assert meta["sensor"] == "face/hcgym-irnet" and "class" not in meta
    assert OnnxSensor(HERE / "irnet.onnx").name == "face/hcgym-irnet(onnx)"


def test_an_export_of_another_sensor_is_refused_where_one_is_expected(tmp_path):
    from hcgym.perception.detection import load_detector

    path = _export(tmp_path, {"sensor": "face/hcgym-irnet", "config": {}})
    with pytest.raises(SpecError, match="export of 'face/hcgym-irnet', not of 'person/centernet'"):
        load_detector(path)


def test_unregistered_sensor_class_cannot_export(tmp_path):
    from hcgym.perception.face.irnet import HcgymFaceEmbedder

    class Unregistered(HcgymFaceEmbedder):
        pass

    with pytest.raises(SpecError, match="Unregistered is not registered as an ONNX-exportable sensor"):
        Unregistered.from_config().export_onnx(tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())  # nothing half-written
