"""The sensor bench's face recognition, classification, NMS and ONNX paths, and the inputs it refuses: small
renders of the shipped worlds, real sensors and test-only sensors that read the ground truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.geometry import box_iou
from hcgym.perception import bench
from hcgym.perception.bench_classes import classification_truth, confusion
from hcgym.perception.registry import SensorSpec, registry
from hcgym.scripts.cli import main
from hcgym.synthesis.bench_frames import enrolment_frames, iter_world_frames
from hcgym.types import Classification, Embeddings
from hcgym.worlds import load_world

IRNET_ONNX = Path(bench.__file__).parent / "face" / "models" / "irnet.onnx"


@pytest.fixture(scope="module")
def plaza():
    """Plaza at 320x240, times 0 and 1 s: four to five moving people in view."""
    return list(iter_world_frames(load_world("plaza"), 2, 1, seed=0, size=(320, 240)))


@pytest.fixture(scope="module")
def plaza_portraits():
    return list(enrolment_frames(load_world("plaza"), size=(160, 120)))


def config(sensor: str, **kw) -> bench.BenchConfig:
    return bench.BenchConfig(sensor=sensor, world="test", seconds=1, fps=1, **kw)


def truth_at(frame, box):
    """The person whose ground-truth face box overlaps ``box`` most."""
    return max((h for h in frame.humans if h.face_box is not None), key=lambda h: box_iou(h.face_box, box))


# ------------------------------------------------------------------ enrolment
def test_enrolment_portraits_show_each_identity_once(plaza_portraits):
    ids = [max(f.humans, key=lambda h: h.pixels).identity for f in plaza_portraits]
    assert len(ids) == 7 and len(set(ids)) == 7
    assert set(ids) == {a.identity_key() for a in load_world("plaza").avatars(0)}
    for f in plaza_portraits:
        shown = [h for h in f.humans if h.pixels > 0]
        assert len(shown) == 1 and abs(shown[0].face_yaw) < 1 and abs(shown[0].distance - 1.0) < 0.01
    with pytest.raises(SpecError, match="size"):
        enrolment_frames(load_world("plaza"), size=(4, 4))
    with pytest.raises(SpecError, match="seed"):
        enrolment_frames(load_world("plaza"), seed=-1)


# ------------------------------------------------------------------ face recognition
RECOGNIZER = SensorSpec("face/fake-recognizer", "x:y", "face recognizer", "rgb frame [+ face boxes]", "Embeddings")


class FakeRecognizer:
    """One-hot embedding of the identity behind each given box; queries (not the studio camera ``cam``) are
    moved ``offset`` along an extra axis, and people in ``swap`` get the next identity's vector."""

    def __init__(self, identities: list[str], offset: float = 0.5, swap: tuple[int, ...] = ()) -> None:
        self.identities, self.offset, self.swap = identities, offset, swap

    def __call__(self, frame, detections) -> Embeddings:
        vecs = []
        for box in detections.boxes:
            h = truth_at(frame, box)
            i = self.identities.index(h.identity)
            if frame.camera != "cam" and h.id in self.swap:
                i = (i + 1) % len(self.identities)
            v = np.zeros(len(self.identities) + 1)
            v[i] = 1.0
            v[-1] = 0.0 if frame.camera == "cam" else self.offset
            vecs.append(v)
        return Embeddings(np.asarray(vecs).reshape(-1, len(self.identities) + 1), detections.boxes)


def test_recognition_rank1_and_the_papers_confidence(plaza, plaza_portraits):
    identities = sorted({a.identity_key() for a in load_world("plaza").avatars(0)})
    cfg = config("face/fake-recognizer", cutoff=1.0)
    fake = FakeRecognizer(identities)
    gallery = bench.enrol(fake, RECOGNIZER, plaza_portraits, cfg)
    assert sorted(gallery.labels) == identities and gallery.cutoff == 1.0
    r = bench.run(cfg, plaza, progress=False, sensor=fake, spec=RECOGNIZER, gallery=gallery)
    m = r["metrics"]
    assert r["task"] == "face recognition" and r["primary"] == "rank1" and m["faces"] >= 6
    # uncalibrated recognizers are compared on the unit sphere: (1, 0.5) / |(1, 0.5)| lies d from (1, 0)
    c = 1 - math.hypot(1 - 1 / math.sqrt(1.25), 0.5 / math.sqrt(1.25)) / 1.0
    assert gallery.normalize and c == pytest.approx(0.5405, abs=1e-4)
    assert m["rank1"] == m["identified"] == 1.0 and m["confidence_correct"] == pytest.approx(c, abs=1e-4)
    assert m["confidence_wrong"] is None
    assert r["gallery"]["face_boxes"] == "truth" and r["latency_ms"]["calls"] == 2
    swapped_person = r["records"][0]["person"]
    r = bench.run(cfg, plaza, progress=False, sensor=FakeRecognizer(identities, swap=(swapped_person,)),
                  spec=RECOGNIZER, gallery=gallery)
    wrong = [x for x in r["records"] if x["person"] == swapped_person]
    assert wrong and not any(x["correct"] for x in wrong)
    assert r["metrics"]["rank1"] == pytest.approx(1 - len(wrong) / len(r["records"]), abs=1e-4)
    assert r["metrics"]["confidence_wrong"] == pytest.approx(c, abs=1e-4)  # as near as the right one was
    assert sum(row["n"] for row in r["breakdown"]["distance"]) == len(r["records"])
    with pytest.raises(SpecError, match="gallery"):
        bench.run(cfg, plaza, progress=False, sensor=fake, spec=RECOGNIZER)
    with pytest.raises(SpecError, match="no calibrated cut-off for 'face/fake-recognizer'"):
        bench.enrol(fake, RECOGNIZER, plaza_portraits, config("face/fake-recognizer"))


def test_irnet_identifies_its_own_enrolment_portraits(plaza_portraits):
    """A real recognizer queried with the very portraits it enrolled: distance 0, confidence 1."""
    cfg = config("face/hcgym-irnet")
    spec = registry["face/hcgym-irnet"]
    sensor = bench.make_sensor(cfg, spec)
    gallery = bench.enrol(sensor, spec, plaza_portraits, cfg)
    assert len(gallery) == 7 and gallery.cutoff == 1.0 and gallery.normalize
    r = bench.run(cfg, plaza_portraits, progress=False, sensor=sensor, spec=spec, gallery=gallery)
    assert r["metrics"]["rank1"] == 1.0 and r["metrics"]["confidence_correct"] == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------ classification
class TruthClassifier:
    """Reads the true label of each subject; people in ``flip`` get ``wrong``; ``whole_frame`` gives one label."""

    classes = ("wave", "walk", "idle", "wrong")

    def __init__(self, source: str, flip: tuple[int, ...] = (), whole_frame: bool = False) -> None:
        self.source, self.flip, self.whole_frame = source, flip, whole_frame

    def __call__(self, frame) -> Classification:
        subjects = classification_truth(frame, self.source, 100)
        if self.whole_frame:
            subjects = sorted(subjects, key=lambda s: -(s[1][2] - s[1][0]) * (s[1][3] - s[1][1]))[:1]
        labels = ["wrong" if h.id in self.flip else true for h, _, true, _ in subjects]
        boxes = None if self.whole_frame else np.asarray([b for _, b, _, _ in subjects]).reshape(-1, 4)
        return Classification(labels, np.zeros((len(labels), len(self.classes))), self.classes, boxes)


def action_spec(kind: str = "action recognizer") -> SensorSpec:
    return SensorSpec("action/truth", "test_bench_tasks:TruthClassifier", kind, "rgb frame", "Classification",
                      kwargs={"source": "action", "flip": (0,)})


@pytest.mark.parametrize("source", ["action", "expression", "gesture"])
def test_classification_accuracy_and_confusion(plaza, source):
    spec = SensorSpec(f"{source}/truth", "x:y", f"{source} classifier", "rgb frame", "Classification")
    assert bench.task_for(spec).name == "classification" and bench.task_for(spec).needs_motion
    subjects = [s for f in plaza for s in classification_truth(f, source, 100)]
    assert subjects
    perfect = bench.run(config(spec.id), plaza, progress=False, sensor=TruthClassifier(source), spec=spec)
    assert perfect["metrics"] == {"subjects": len(subjects), "classified": 1.0, "accuracy": 1.0}
    flipped = bench.run(config(spec.id), plaza, progress=False, sensor=TruthClassifier(source, flip=(0,)), spec=spec)
    n_wrong = sum(h.id == 0 for h, *_ in subjects)
    assert 0 < n_wrong < len(subjects)
    assert flipped["metrics"]["accuracy"] == pytest.approx(1 - n_wrong / len(subjects), abs=1e-4)
    conf = flipped["confusion"]
    matrix = np.asarray(conf["matrix"])
    assert matrix.sum() == len(subjects) and matrix[:, conf["columns"].index("wrong")].sum() == n_wrong
    assert np.trace(matrix[:, :len(conf["labels"])]) == len(subjects) - n_wrong
    assert "## Confusion matrix" in bench.table_markdown(flipped) and "confusion.png" in bench.figures(flipped)


def test_whole_frame_labels_score_the_largest_subject(plaza):
    spec = action_spec()
    r = bench.run(config(spec.id), plaza, progress=False, sensor=TruthClassifier("action", whole_frame=True), spec=spec)
    assert r["metrics"]["subjects"] == len(plaza) and r["metrics"]["accuracy"] == 1.0
    missed = bench.run(config(spec.id), plaza, progress=False, spec=spec,
                       sensor=lambda f: Classification([], np.zeros((0, 4)), TruthClassifier.classes,
                                                       np.zeros((0, 4))))
    assert missed["metrics"]["accuracy"] == 0.0 and missed["metrics"]["classified"] == 0.0
    assert all(row[-1] == sum(row) for row in missed["confusion"]["matrix"])  # all in column "missed"


def test_confusion_rows_and_columns():
    recs = [{"true": "a", "predicted": "a"}, {"true": "a", "predicted": "b"}, {"true": "c", "predicted": None}]
    c = confusion(recs, ("a", "b", "z"))
    assert c["labels"] == ["a", "b", "c"] and c["columns"] == ["a", "b", "c", "missed"]
    assert c["matrix"] == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]


def test_classifiers_of_unknown_labels_are_timed_only():
    spec = SensorSpec("x/y", "x:y", "weather classifier", "rgb frame", "Classification")
    assert bench.task_for(spec) is bench.LATENCY_ONLY


# ------------------------------------------------------------------ NMS on detector candidates
def test_nms_on_candidates_scores_as_the_detector(plaza):
    det = bench.run(config("person/centernet"), plaza, progress=False)
    nms = bench.run(config("nms/greedy_0.5"), plaza, progress=False)
    assert nms["task"] == "person detection (NMS)" and nms["latency_ms"]["calls"] == 2
    # person/centernet is greedy 0.5 on the same candidates: the same hits at the same threshold
    for key in ("people", "recall", "precision", "true_positives", "false_positives"):
        assert nms["metrics"][key] == det["metrics"][key], key
    assert nms["metrics"]["candidates"] >= nms["metrics"]["detections"] >= det["metrics"]["detections"]
    assert nms["metrics"]["ap50"] >= det["metrics"]["ap50"] and math.isfinite(nms["metrics"]["ap"])
    assert "latency is the NMS call only" in nms["notes"][-1]


# ------------------------------------------------------------------ the command
def test_cli_onnx_recognizer(tmp_path):
    out = tmp_path / "out"
    assert main(["evaluate", "sensor", "face/hcgym-irnet", "--onnx", str(IRNET_ONNX), "--world", "greeting",
                 "--seconds", "1", "--fps", "1", "--size", "320x240", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "face recognition" and results["onnx"]["path"] == str(IRNET_ONNX)
    assert results["onnx"]["fingerprint"] and results["gallery"]["cutoff"] == 1.0
    assert results["metrics"]["faces"] == 1 and "Ran from ONNX" in (out / "table.md").read_text()


def test_cli_registered_classifier_writes_the_confusion_figure(tmp_path, monkeypatch):
    registry._load()
    monkeypatch.setitem(registry._specs, "action/truth", action_spec())
    out = tmp_path / "out"
    assert main(["evaluate", "sensor", "action/truth", "--world", "greeting", "--seconds", "1", "--fps", "1",
                 "--size", "160x120", "--out", str(out)]) == 0
    assert (out / "confusion.png").is_file() and (out / "overlay.mp4").is_file()
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["accuracy"] == 0.0  # the one person (id 0) is flipped


@pytest.mark.parametrize("args, message", [
    (["face/arcface-onnx"], "--sensor-arg: face/arcface-onnx needs a user-supplied file that hcgym does not ship: "
                            "pass model_path=PATH"),
    (["face/insightface"], "--sensor-arg: face/insightface needs a user-supplied file"),
    (["face/arcface-onnx", "--sensor-arg", "model_path=/nowhere/w600k_r50.onnx"],
     "--sensor-arg: ArcFace ONNX model not found: /nowhere/w600k_r50.onnx"),
    (["face/dlib", "--sensor-arg", "colour=1"], "--sensor-arg: face/dlib does not take these arguments"),
    (["face/hcgym-irnet", "--onnx", "/nowhere/irnet.onnx"], "--onnx: ONNX file not found: /nowhere/irnet.onnx"),
    (["person/centernet", "--onnx", str(IRNET_ONNX)], "--onnx: irnet.onnx.json is an export of 'face/hcgym-irnet', "
                                                      "not of 'person/centernet'"),
    (["face/hcgym-irnet", "--onnx", str(IRNET_ONNX), "--sensor-arg", "upsample=2"],
     "--sensor-arg: upsample: not a setting of the export irnet.onnx (its sidecar's config: dim, input_size, "
     "threads)"),
])
def test_cli_bad_inputs_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["evaluate", "sensor", *args, "--world", "greeting", "--seconds", "1", "--fps", "1",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert not out.exists()


@pytest.mark.parametrize("args", [["--cutoff", "0"], ["--face-boxes", "detector"]])
def test_cli_bad_option_values_write_nothing(tmp_path, capsys, args):
    out = tmp_path / "out"
    with pytest.raises(SystemExit):
        main(["evaluate", "sensor", "face/dlib", "--world", "greeting", *args, "--out", str(out)])
    assert args[0] in capsys.readouterr().err and not out.exists()


def test_cli_onnx_not_an_export_and_static_world_classifier(tmp_path, capsys, monkeypatch):
    bare = tmp_path / "model.onnx"
    bare.write_bytes(IRNET_ONNX.read_bytes())  # no sidecar beside it
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    (tmp_path / "garbage.onnx.json").write_text(json.dumps({"sensor": "face/hcgym-irnet", "config": {}}))
    registry._load()
    monkeypatch.setitem(registry._specs, "action/truth", action_spec())
    cases = [(["face/hcgym-irnet", "--onnx", str(bare), "--world", "greeting"], "--onnx: missing model.onnx.json"),
             (["face/hcgym-irnet", "--onnx", str(garbage), "--world", "greeting"],
              "--onnx: " + str(garbage) + " is not an ONNX model"),
             (["action/truth", "--world", "crowd_street"], "--world: action/truth (classification) is scored against "
                                                           "MotionTruth labels"),
             (["hands/mediapipe", "--world", "active_face_room"], "--world: hands/mediapipe (hand keypoints)")]
    for args, message in cases:
        out = tmp_path / "out"
        assert main(["evaluate", "sensor", *args, "--seconds", "1", "--fps", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("error:") == 1, (args, err)
        assert not out.exists()
