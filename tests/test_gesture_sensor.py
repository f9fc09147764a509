"""The live gesture sensor ``gesture/rgbd``: hands of a rendered hand_signals frame cropped as the training data,
scored by the sensor bench, the inputs it refuses, Kinect-like depth, and its ONNX export (tiny models trained
here)."""

from __future__ import annotations

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.geometry import box_iou
from hcgym.perception import bench
from hcgym.perception.bench_classes import classification_truth
from hcgym.perception.gesture import sensor as gs
from hcgym.perception.gesture.inputs import channels, crop_rgbd, hand_box, kinect_depth
from hcgym.perception.gesture.study import resize_set
from hcgym.perception.gesture.training import predict, save_model, train_gesture
from hcgym.perception.registry import make, spec
from hcgym.synthesis.bench_frames import iter_world_frames
from hcgym.synthesis.gesture_data import GestureData
from hcgym.synthesis.motion.hands import GESTURES
from hcgym.worlds import load_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LABELS = [*GESTURES, "none"]
#: The toy model's input side, and the side its (imagined) training set was rendered at.
SIZE, RENDERED = 32, 48


def toy_model(path, modality: str = "rgbd", size: int = SIZE, meta: dict | None = None):
    """A tiny MNASNet 0.5 trained one epoch on 34 random crops of 17 classes, saved with the meta of a model trained
    on a set rendered at :data:`RENDERED` and resized to ``size``."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (34, size, size, 3)).astype(np.uint8)
    depth = rng.uniform(0.5, 2.5, (34, size, size)).astype(np.float32)
    x = channels(rgb, depth, modality)
    result = train_gesture("mnasnet0_5", modality, x, np.arange(34) % 17, epochs=1, batch=17, width=0.5,
                           num_classes=17)
    return save_model(result, path, meta if meta is not None else {
        "labels": LABELS, "size": size, "depth_mode": "relative", "rgb_normalised": True,
        "data": {"file": "set.npz", "key": {"size": RENDERED}}})


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return toy_model(tmp_path_factory.mktemp("gesture") / "toy.pt")


@pytest.fixture(scope="module")
def frames():
    """hand_signals at 1.7 s (the right hand shows "one") and 3.4 s ("two"); the left hand hangs (none)."""
    return list(iter_world_frames(load_world("hand_signals"), 5.1, 1 / 1.7, seed=0))[1:]


def test_registered_as_a_gesture_classifier():
    s = spec("gesture/rgbd")
    assert s.exports_onnx and s.output == "Classification"
    assert bench.task_for(s).name == "classification" and bench.task_for(s).needs_motion


def test_truth_hands_are_cropped_as_the_training_data(ckpt, frames):
    sensor = make("gesture/rgbd", checkpoint=str(ckpt), hands="truth")
    assert [f.humans[0].motion.gestures["right"] for f in frames] == ["one", "two"]
    for f in frames:
        out = sensor(f)
        subjects = classification_truth(f, "gesture", 0)
        assert len(out) == len(subjects) == 2 and sensor.sides == ["left", "right"]
        assert out.classes == tuple(LABELS) and out.scores.shape == (2, 17)
        assert np.allclose(out.scores.sum(1), 1) and out.labels == [LABELS[i] for i in out.scores.argmax(1)]
        for box, (_, truth_box, _, _) in zip(out.boxes, subjects):
            assert box_iou(box, truth_box) > 0.99  # the bench's subject box: the box of the 21 points
        h, w = f.rgb.shape[:2]
        kp = f.humans[0].motion.hand_keypoints
        # the training set: crops rendered at RENDERED, depth stored as float16, resized by the training run
        crop = [crop_rgbd(f.rgb, f.depth, hand_box(kp[s, :, :2], (w, h)), RENDERED) for s in (0, 1)]
        rendered = GestureData({"rgb": np.stack([c[0] for c in crop]), "label": np.zeros(2, np.int64),
                                "depth": np.stack([c[1] for c in crop]).astype(np.float16)})
        data = resize_set(rendered, SIZE)
        x = channels(data.data["rgb"], data.data["depth"].astype(np.float32), "rgbd")
        assert np.allclose(sensor.preprocess(f.rgb, f.depth, f)[0], x, atol=1e-6)
        assert np.allclose(out.scores, gs.softmax(predict(sensor.model, x)), atol=1e-6)
        assert (sensor.crop_boxes[:, 2] - sensor.crop_boxes[:, 0] > out.boxes[:, 2] - out.boxes[:, 0]).all()


def test_the_bench_matches_every_hand(ckpt, frames):
    config = bench.BenchConfig(sensor="gesture/rgbd", world="hand_signals", seconds=1, fps=1,
                               sensor_kwargs={"checkpoint": str(ckpt), "hands": "truth"})
    r = bench.run(config, frames, progress=False)
    assert r["metrics"]["subjects"] == 4 and r["metrics"]["classified"] == 1.0
    conf = r["confusion"]
    assert {"one", "two", "none"} <= set(conf["labels"]) and np.asarray(conf["matrix"])[:, -1].sum() == 0


def test_mediapipe_finds_the_raised_hand(ckpt, frames):
    sensor = gs.GestureSensor(checkpoint=ckpt)
    f = frames[0]
    out = sensor(f)
    right = [b for _, b, _, side in classification_truth(f, "gesture", 0) if side == "right"][0]
    assert len(out) >= 1 and max(box_iou(b, right) for b in out.boxes) > 0.5
    again = sensor(f.rgb, depth=f.depth)  # a camera's RGB and depth arrays: the same answer
    assert again.labels == out.labels and np.array_equal(again.scores, out.scores)
    sensor.close()


def test_refused_inputs(ckpt, frames, tmp_path, monkeypatch):
    f = frames[0]
    sensor = gs.GestureSensor(checkpoint=ckpt, hands="truth")
    with pytest.raises(SpecError, match="depth"):
        sensor(f.rgb)  # an RGB-D model needs depth
    with pytest.raises(SpecError, match="depth"):
        sensor(f.rgb, depth=f.depth[:10])
    with pytest.raises(SpecError, match="hands"):
        sensor(f.rgb, depth=f.depth)  # hands='truth' needs a Frame
    with pytest.raises(SpecError, match="hands"):
        gs.GestureSensor(checkpoint=ckpt, hands="gloves")
    with pytest.raises(SpecError, match="depth_noise"):
        gs.GestureSensor(checkpoint=ckpt, depth_noise="yes")
    monkeypatch.setattr(gs, "MODELS", tmp_path)
    with pytest.raises(SpecError, match="checkpoint.*missing"):
        gs.GestureSensor()
    with pytest.raises(SpecError, match="not found"):
        gs.GestureSensor(checkpoint=tmp_path / "none.pt")
    with pytest.raises(SpecError, match="size"):
        gs.GestureSensor(checkpoint=toy_model(tmp_path / "bare.pt", meta={"labels": LABELS}))
    with pytest.raises(SpecError, match="labels"):
        gs.GestureSensor(checkpoint=toy_model(tmp_path / "few.pt", meta={"labels": LABELS[:5], "size": SIZE}))


def test_an_rgb_model_takes_bare_images(tmp_path, frames):
    f = frames[0]
    sensor = gs.GestureSensor(checkpoint=toy_model(tmp_path / "rgb.pt", "rgb"))
    a, b = sensor(f.rgb), sensor(f)
    assert len(a) >= 1 and a.labels == b.labels and np.allclose(a.scores, b.scores)
    sensor.close()


def test_kinect_depth_is_seeded_per_call(ckpt, frames):
    f = frames[0]
    noisy = gs.GestureSensor(checkpoint=ckpt, hands="truth", depth_noise=True, seed=3)
    first = noisy(f).scores
    exact16 = f.depth.astype(np.float16).astype(np.float32)  # the training sets store depth as float16
    assert np.array_equal(noisy.read_depth(f.depth, f.depth.shape), kinect_depth(exact16, np.random.default_rng([3, 1])))
    noisy.reset()
    assert np.array_equal(noisy(f).scores, first)
    assert not np.array_equal(noisy(f).scores, first)  # the second call of a stream draws new noise
    clean = gs.GestureSensor(checkpoint=ckpt, hands="truth")
    points, _ = gs.truth_hands(f)
    exact, read = clean.crops(f.rgb, f.depth, points)[1], noisy.crops(f.rgb, f.depth, points)[1]
    assert 0 < np.mean(exact != read) and np.median(np.abs(exact - read)[(exact > 0) & (read > 0)]) < 0.01


def test_onnx_export_answers_as_torch(ckpt, frames, tmp_path):
    from hcgym.perception.base import OnnxSensor
    from hcgym.perception.export import export_sensor

    report = export_sensor("gesture/rgbd", tmp_path / "x", n=4, checkpoint=str(ckpt), hands="truth")
    assert report["parity_ok"] and report["reload"]["same"] and report["input_shapes"] == {"image": "1x4x32x32"}
    onnx = OnnxSensor(tmp_path / "x" / "gesture_rgbd.onnx", sensor="gesture/rgbd")
    torch_sensor = gs.GestureSensor(checkpoint=ckpt, hands="truth")
    assert onnx.inner.hands == "truth" and onnx.inner.size == SIZE and onnx.inner.classes == tuple(LABELS)
    for f in frames:
        a, b = torch_sensor(f), onnx(f)
        assert a.labels == b.labels and np.allclose(a.boxes, b.boxes)
        assert np.max(np.abs(a.scores - b.scores)) <= 1e-4
    noisy = OnnxSensor(tmp_path / "x" / "gesture_rgbd.onnx", depth_noise=True, seed=3)
    assert noisy.inner.depth_noise and noisy.inner.seed == 3
