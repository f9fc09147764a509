"""``hcgym evaluate sensor ID --source``: real photos, videos and the shipped set through the bench's scorers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hcgym.perception import bench_real, real_images
from hcgym.perception.bench import BenchConfig
from hcgym.perception.bench_source import labelled_frame, open_source, read_coco
from hcgym.perception.registry import spec
from hcgym.scripts.cli import main
from hcgym.types import Detections


class Oracle:
    """A fake detector answering the labelled boxes of each picture (frames are named after their picture), plus
    one false box on picture ``false_on``."""

    def __init__(self, kind: str, false_on: str = "") -> None:
        self.labels = real_images.labels()
        self.kind, self.false_on = kind, false_on

    def __call__(self, frame) -> Detections:
        lab = self.labels[frame.camera]
        boxes = lab.persons[~lab.person_ignore] if self.kind == "person" else lab.faces[~lab.face_ignore]
        scores = np.full(len(boxes), 0.9)
        if frame.camera == self.false_on:  # ranked below every true box: AP stays 100
            boxes, scores = np.vstack([boxes, [[1, 1, 30, 30]]]), np.append(scores, 0.5)
        return Detections(boxes, scores, label=self.kind)


@pytest.mark.parametrize("sensor_id, kind", [("person/centernet", "person"), ("face/dlib-hog", "face")])
def test_perfect_answers_score_perfectly_on_the_real_set(sensor_id, kind):
    """The labels reach the bench's scorers unchanged: the labelled boxes themselves are found at IoU 1, and one
    extra box on a picture without people is the one false positive."""
    source = open_source("real")
    labels = read_coco(real_images.ANNOTATIONS, source.names)
    results = bench_real.run(BenchConfig(sensor=sensor_id), source, Oracle(kind, "coffee.jpg"),
                             spec(sensor_id), labels, progress=False)
    m = results["metrics"]
    n = sum(int((~(lab.person_ignore if kind == "person" else lab.face_ignore)).sum()) for lab in labels.values())
    assert m["people" if kind == "person" else "faces"] == n == (20 if kind == "person" else 20)
    assert m["recall"] == 1.0 and m["false_positives"] == 1
    assert m["false_positives_per_image"] == pytest.approx(1 / 23, abs=1e-4)
    if kind == "person":
        assert m["ap50"] == pytest.approx(100.0, abs=0.5)
    ids = {lab.file_name: lab.image_id for lab in labels.values()}
    assert {i["file_name"]: i["image_id"] for i in results["images"]} == ids
    assert all(d["category_id"] == (1 if kind == "person" else 2) for d in results["detections"])


def test_missed_people_lower_recall():
    """Answering nothing on the group photo misses its six people (recall 14/20)."""
    source = open_source("real")
    labels = read_coco(real_images.ANNOTATIONS, source.names)
    oracle = Oracle("person")

    def sensor(frame):
        return Detections(np.zeros((0, 4)), np.zeros(0), label="person") if frame.camera == "t1.jpg" else oracle(frame)

    results = bench_real.run(BenchConfig(sensor="person/centernet"), source, sensor, spec("person/centernet"), labels,
                             progress=False)
    assert results["metrics"]["recall"] == pytest.approx(14 / 20, abs=1e-3)


def test_cli_on_the_real_set(tmp_path):
    out = tmp_path / "out"
    assert main(["evaluate", "sensor", "person/centernet", "--source", "real", "--max-frames", "4",
                 "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    names = sorted(p.name for p in real_images.IMAGES.iterdir())[:4]
    assert [i["file_name"] for i in res["images"]] == names and res["labelled"] == 4
    assert sorted(res["overlays"]) == sorted(f"overlays/{n.rsplit('.', 1)[0]}.jpg" for n in names)
    assert all((out / p).stat().st_size > 0 for p in res["overlays"])
    assert {"recall", "precision", "ap50", "false_positives_per_image"} <= set(res["metrics"])
    for d in res["detections"]:
        assert set(d) == {"image_id", "category_id", "bbox", "score"} and d["score"] >= 0.3
    assert "| recall |" in (out / "table.md").read_text()


def _photos(folder, names=("astronaut.jpg", "coffee.jpg")):
    folder.mkdir()
    for n in names:
        shutil.copyfile(real_images.IMAGES / n, folder / n)
    return folder


def test_cli_on_unlabelled_photos_and_a_video(tmp_path):
    photos = _photos(tmp_path / "photos")
    out = tmp_path / "out"
    assert main(["evaluate", "sensor", "face/mediapipe-short", "--source", str(photos), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["metrics"] is None and res["frames"] == 2 and "no labels" in res["notes"][0]
    assert {p.name for p in (out / "overlays").iterdir()} == {"astronaut.jpg", "coffee.jpg"}
    assert res["images"][0]["output"]["label"] == "face" and len(res["images"][0]["output"]["boxes"]) == 1

    from hcgym.video import VideoWriter, read_video

    rgb = np.asarray(real_images.load()[1][0])  # astronaut (512 x 512)
    with VideoWriter(tmp_path / "clip.mp4", 5.0, (512, 512)) as w:
        for k in range(3):
            w.write(np.roll(rgb, 8 * k, axis=1))
    coco = {"images": [{"id": 7, "file_name": "frame_000001", "width": 512, "height": 512}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 2, "bbox": [188, 85, 90, 88], "iscrowd": 0}],
            "categories": [{"id": 2, "name": "face"}]}
    (tmp_path / "clip.json").write_text(json.dumps(coco))
    out2 = tmp_path / "out2"
    assert main(["evaluate", "sensor", "face/mediapipe-short", "--source", str(tmp_path / "clip.mp4"),
                 "--out", str(tmp_path / "out1")]) == 0
    assert read_video(tmp_path / "out1" / "overlay.mp4").shape == (3, 512, 512, 3)
    assert main(["evaluate", "sensor", "face/mediapipe-short", "--source", str(tmp_path / "clip.mp4"),
                 "--annotations", str(tmp_path / "clip.json"), "--out", str(out2)]) == 0
    res = json.loads((out2 / "results.json").read_text())
    assert [i["file_name"] for i in res["images"]] == ["frame_000001"] and res["images"][0]["image_id"] == 7
    assert res["metrics"]["faces"] == 1 and res["metrics"]["recall"] == 1.0


def test_ground_truth_of_a_labelled_frame_has_no_depth_breakdowns():
    lab = real_images.labels()["zidane.jpg"]
    frame = labelled_frame(np.zeros((720, 1280, 3), np.uint8), lab)
    assert len(frame.humans) == 2 and all(np.isnan(h.distance) and np.isnan(h.face_yaw) for h in frame.humans)
    with pytest.raises(Exception, match="labels say"):
        labelled_frame(np.zeros((10, 10, 3), np.uint8), lab)


def _coco(tmp_path, name, **change):
    coco = {"images": [{"id": 1, "file_name": "astronaut.jpg", "width": 512, "height": 512}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [17, 15, 346, 497], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "person"}]}
    coco.update(change)
    path = tmp_path / name
    path.write_text(json.dumps(coco) if change.get("raw") is None else change["raw"])
    return str(path)


@pytest.mark.parametrize("case, message", [
    ("missing", "--source: no such file or folder"),
    ("bad_video", "--source: cannot read video"),
    ("empty_folder", "--source: folder"),
    ("not_json", "--annotations: "),
    ("not_coco", "is not a COCO file"),
    ("unknown_image", "names unknown image_id 5"),
    ("unknown_category", "names unknown category_id 9"),
    ("not_in_source", "image 'bus.jpg' is not in the source"),
    ("wrong_size", "image 'astronaut.jpg' is 512x512 but its labels say 640x480"),
    ("world", "--source: runs on real pictures and cannot be combined with --world"),
    ("sweep", "cannot be combined with --sweep"),
])
def test_cli_bad_inputs_write_nothing(tmp_path, capsys, case, message):
    photos = _photos(tmp_path / "photos", ("astronaut.jpg",))
    src, extra = str(photos), []
    if case == "missing":
        src = str(tmp_path / "nope")
    elif case == "bad_video":
        (tmp_path / "v.mp4").write_bytes(b"not a video at all")
        src = str(tmp_path / "v.mp4")
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "notes.txt").write_text("x")
        src = str(tmp_path / "empty")
    elif case == "not_json":
        extra = ["--annotations", _coco(tmp_path, "a.json", raw="{oops")]
    elif case == "not_coco":
        extra = ["--annotations", _coco(tmp_path, "a.json", raw='{"foo": 1}')]
    elif case == "unknown_image":
        extra = ["--annotations", _coco(tmp_path, "a.json", annotations=[
            {"id": 3, "image_id": 5, "category_id": 1, "bbox": [0, 0, 5, 5]}])]
    elif case == "unknown_category":
        extra = ["--annotations", _coco(tmp_path, "a.json", annotations=[
            {"id": 3, "image_id": 1, "category_id": 9, "bbox": [0, 0, 5, 5]}])]
    elif case == "not_in_source":
        extra = ["--annotations", _coco(tmp_path, "a.json", images=[
            {"id": 1, "file_name": "bus.jpg", "width": 810, "height": 1080}])]
    elif case == "wrong_size":
        extra = ["--annotations", _coco(tmp_path, "a.json", images=[
            {"id": 1, "file_name": "astronaut.jpg", "width": 640, "height": 480}])]
    elif case == "world":
        extra = ["--world", "greeting"]
    elif case == "sweep":
        extra = ["--sweep", "yaw=0"]
    out = tmp_path / "out"
    assert main(["evaluate", "sensor", "face/dlib-hog", "--source", src, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert not out.exists()
