"""The sensor bench (hcgym.perception.bench, hcgym.synthesis.bench_frames, ``hcgym evaluate sensor``): tiny
renders (1-2 frames, 160x120 to 640x480) of the shipped worlds, real sensors and fake keypoint sensors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception import bench
from hcgym.perception.registry import SensorSpec
from hcgym.scripts.cli import main
from hcgym.synthesis.bench_frames import iter_world_frames
from hcgym.types import KEYPOINT_SCHEMES, Keypoints
from hcgym.worlds import load_world


def frames(world: str, seconds: float, fps: float, size: tuple[int, int]) -> list:
    return list(iter_world_frames(load_world(world), seconds, fps, seed=0, size=size))


@pytest.fixture(scope="module")
def greeting_near():
    """Greeting at 640x480, times 0 s (5.4 m away) and 3 s (3.1 m, near)."""
    return frames("greeting", 6, 1 / 3, (640, 480))


@pytest.fixture(scope="module")
def greeting_small():
    return frames("greeting", 2, 1, (320, 240))


@pytest.fixture(scope="module")
def street():
    return frames("crowd_street", 1, 1, (320, 240))


def config(sensor: str, **kw) -> bench.BenchConfig:
    return bench.BenchConfig(sensor=sensor, world="test", seconds=1, fps=1, **kw)


# ------------------------------------------------------------------ frames
def test_world_frames_follow_time_and_size(greeting_small):
    assert [f.time for f in greeting_small] == [0.0, 1.0]
    assert greeting_small[0].rgb.shape == (240, 320, 3) and greeting_small[0].humans[0].motion is not None
    # the person walks towards the camera
    assert greeting_small[1].humans[0].distance < greeting_small[0].humans[0].distance - 0.5


def test_world_frames_refuse_bad_arguments_before_rendering():
    world = load_world("greeting")
    with pytest.raises(SpecError, match="camera: no camera 'side'"):
        iter_world_frames(world, 1, 1, camera="side")
    with pytest.raises(SpecError, match="fps"):
        iter_world_frames(world, 1, 0)
    with pytest.raises(SpecError, match="seconds"):
        iter_world_frames(world, -1, 5)


# ------------------------------------------------------------------ real sensors
def test_face_detectors_on_greeting(greeting_near):
    tiled = bench.run(config("face/mediapipe-tiled"), greeting_near, progress=False)
    assert tiled["task"] == "face detection"
    near = [r for r in tiled["records"] if r["distance"] < 4]
    assert near and all(r["found"] for r in near)  # found at 3.1 m
    assert tiled["metrics"]["precision"] == 1.0
    assert tiled["latency_ms"]["calls"] == 2 and tiled["latency_ms"]["median"] > 0
    assert {r["band"] for r in tiled["breakdown"]["distance"]} == {"2-4 m", "4-8 m"}
    # MediaPipe's short-range model is for faces within ~2 m: it misses a 28-pixel face at 3 m
    short = bench.run(config("face/mediapipe-short"), greeting_near, progress=False)
    assert short["metrics"]["faces"] == 2 and short["metrics"]["recall"] == 0.0


def test_dlib68_nme_on_greeting(greeting_near):
    r = bench.run(config("face/dlib-68", sensor_kwargs={"upsample": 2}), greeting_near[1:], progress=False)
    assert r["task"] == "face landmarks" and r["metrics"]["scored_faces"] == 1
    nme = r["metrics"]["nme"]
    assert math.isfinite(nme) and 0 < nme < 0.3


def test_person_detector_on_crowd_street(street):
    r = bench.run(config("person/centernet"), street, progress=False)
    m = r["metrics"]
    assert r["task"] == "person detection" and m["people"] >= 5
    assert m["recall"] > 0.5 and m["ap50"] > 50 and m["ap"] <= m["ap50"]
    assert sum(row["n"] for row in r["breakdown"]["people"]) == m["people"]
    assert {row["band"] for row in r["breakdown"]["people"]} == {"9+"}
    text = bench.table_markdown(r)
    assert "## By distance to the camera" in text and "| 9+ |" in text
    assert set(bench.figures(r)) == {"vs_distance.png", "vs_yaw.png", "vs_occlusion.png", "vs_people.png"}


def test_determinism():
    def once():
        r = bench.run(config("person/centernet"), frames("crowd_street", 1, 1, (160, 120)), progress=False)
        r.pop("latency_ms")
        return json.dumps(r, sort_keys=True)

    assert once() == once()


def test_latency_only_sensors_do_not_crash(street):
    spec = SensorSpec("speech/fake", "x:y", "speech commands", "audio signal", "SpeechLabel")
    r = bench.run(config("speech/fake"), street, progress=False, spec=spec)
    assert r["task"] == "latency only" and r["latency_ms"] is None and "not a frame" in r["notes"][0]
    assert not bench.runs(spec)
    spec = SensorSpec("face/fake-attributes", "x:y", "face attributes", "rgb frame", "Attributes")
    r = bench.run(config("face/fake-attributes"), street, progress=False, sensor=lambda f: None, spec=spec)
    assert r["latency_ms"]["calls"] == 1 and r["breakdown"] == {} and bench.figures(r) == {}
    assert "latency" in bench.table_markdown(r) and "no task of the bench" in r["notes"][0]


# ------------------------------------------------------------------ keypoints (fake sensors)
class FakePose:
    """Reads the ground truth of the frame it is given: the perfect body sensor, optionally shifted."""

    def __init__(self, scheme: str, shift: float = 0.0) -> None:
        self.scheme, self.shift = scheme, shift

    def __call__(self, frame) -> Keypoints:
        from hcgym.synthesis.motion.skeleton import NTU_JOINTS
        from hcgym.types import COCO_KEYPOINTS

        n = 33 if self.scheme == "mediapipe33" else 17
        sets = []
        for h in frame.humans:
            if h.bbox is None:
                continue
            pts = np.zeros((n, 2))
            for i, name in KEYPOINT_SCHEMES[self.scheme].items():
                src = h.motion.skeleton[NTU_JOINTS.index(name)] if h.motion is not None else \
                    h.keypoints[COCO_KEYPOINTS.index(name)]
                pts[i] = src[:2] + self.shift
            sets.append(pts)
        pts = np.asarray(sets).reshape(-1, n, 2)
        return Keypoints(pts, np.ones(pts.shape[:2]), np.zeros((len(pts), 4)), self.scheme)


class FakeHands:
    def __init__(self, shift: float = 0.0, swap: bool = False) -> None:
        self.shift, self.swap = shift, swap

    def __call__(self, frame) -> Keypoints:
        pts, sides = [], []
        for h in frame.humans:
            if h.motion is not None and h.bbox is not None:
                for s, side in enumerate(("left", "right")):
                    pts.append(h.motion.hand_keypoints[s][:, :2] + self.shift)
                    sides.append(("right", "left")[s] if self.swap else side)
        pts = np.asarray(pts).reshape(-1, 21, 2)
        return Keypoints(pts, np.ones(pts.shape[:2]), np.zeros((len(pts), 4)), "mediapipe21", sides)


POSE = SensorSpec("pose/fake", "x:y", "pose estimator", "rgb frame", "Keypoints")
HANDS = SensorSpec("hands/fake", "x:y", "hand keypoints", "rgb frame", "Keypoints")


@pytest.mark.parametrize("scheme", ["mediapipe33", "coco17"])
def test_keypoints_scored_exactly_on_moving_people(greeting_small, scheme):
    perfect = bench.run(config("pose/fake"), greeting_small, progress=False, sensor=FakePose(scheme), spec=POSE)
    m = perfect["metrics"]
    assert perfect["task"] == "body keypoints" and m["subjects"] == 2 and m["joints"] > 12
    assert m["pck"] == 1.0 and m["mpjpe_px"] == 0.0 and m["detection_rate"] == 1.0
    shifted = bench.run(config("pose/fake"), greeting_small, progress=False, sensor=FakePose(scheme, 6.0), spec=POSE)
    assert shifted["metrics"]["mpjpe_px"] == pytest.approx(6 * math.sqrt(2), abs=1e-3)
    assert shifted["metrics"]["pck"] < 1.0


def test_keypoints_on_static_people_use_coco_truth(street):
    r = bench.run(config("pose/fake"), street, progress=False, sensor=FakePose("mediapipe33"), spec=POSE)
    assert r["metrics"]["pck"] == 1.0 and r["metrics"]["subjects"] >= 5
    missing = bench.run(config("pose/fake"), street, progress=False, sensor=lambda f: Keypoints(
        np.zeros((0, 33, 2)), np.zeros((0, 33)), np.zeros((0, 4)), "mediapipe33"), spec=POSE)
    assert missing["metrics"]["pck"] == 0.0 and missing["metrics"]["detection_rate"] == 0.0
    assert missing["metrics"]["mpjpe_px"] is None


def test_hands_scored_by_side(greeting_small):
    perfect = bench.run(config("hands/fake"), greeting_small, progress=False, sensor=FakeHands(), spec=HANDS)
    assert perfect["task"] == "hand keypoints"
    assert perfect["metrics"]["pck"] == 1.0 and perfect["metrics"]["mpjpe_px"] == 0.0
    swapped = bench.run(config("hands/fake"), greeting_small, progress=False, sensor=FakeHands(swap=True), spec=HANDS)
    assert swapped["metrics"]["detection_rate"] == 0.0  # a right hand is not a left hand
    with pytest.raises(SpecError, match="world 'crowd_street' has none"):
        bench.check_world(HANDS, load_world("crowd_street").animated, "crowd_street")
    bench.check_world(POSE, False, "crowd_street")  # body keypoints fall back to COCO truth


def test_unknown_keypoint_scheme_is_refused(greeting_small):
    bad = lambda f: Keypoints(np.zeros((0, 5, 2)), np.zeros((0, 5)), np.zeros((0, 4)), "openpose25")  # noqa: E731
    with pytest.raises(SpecError, match="scheme 'openpose25'"):
        bench.run(config("pose/fake"), greeting_small, progress=False, sensor=bad, spec=POSE)


# ------------------------------------------------------------------ the command
def test_cli_writes_every_file(tmp_path):
    out = tmp_path / "out"
    assert main(["evaluate", "sensor", "face/mediapipe-tiled", "--world", "greeting", "--seconds", "1", "--fps", "1",
                 "--size", "160x120", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(["results.json", "table.md", "overlay.mp4", "vs_distance.png",
                                                             "vs_yaw.png", "vs_occlusion.png", "vs_people.png"])
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["world"] == "greeting" and results["frames"] == 1 and "_overlay" not in results


@pytest.mark.parametrize("args, message", [
    (["face/nope", "--world", "greeting"], "ID: unknown sensor 'face/nope' (registered: face/arcface-onnx"),
    (["face/dlib-hog", "--world", "nowhere"], "--world: file not found: nowhere (shipped worlds:"),
    (["face/dlib-hog", "--world", "greeting", "--camera", "side"], "--camera: no camera 'side'"),
    (["face/dlib-68", "--world", "crowd_street", "--size", "160x120"], "--world: face/dlib-68 gives 68 dlib landmarks"),
])
def test_cli_bad_inputs_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["evaluate", "sensor", *args, "--seconds", "1", "--fps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert not out.exists()
