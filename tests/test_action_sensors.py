"""The continual action sensors action/costgcn and action/cox3d (perception/action/sensors.py).

Tiny checkpoints are made here (random weights and batch-norm statistics, ``training.save_model``); the frames
are 4 s of the greeting world at 5 fps (one person walks up and waves), so MediaPipe finds a real person.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hcgym.perception as hp
from hcgym.errors import SpecError
from hcgym.perception.action import sensors
from hcgym.perception.action.skeleton import SPINE, StreamNormaliser, camera_joints, normalise, torso_lengths
from hcgym.perception.action.training import build_model, load_model, save_model

LABELS = ["walk", "wave", "bow", "jump"]
GCN = {"channels": [8, 16], "strides": [1, 2], "temporal_kernel": 5, "num_classes": 4}
X3D = {"frames": 8, "widths": [8, 16], "depths": [1, 1], "stem_temporal_kernel": 3, "num_classes": 4, "size": 32}
CLIP_LEN = 12  # CoST-GCN of GCN: delay 10, a prediction every 2 frames
SENSORS = {"action/costgcn": ("stgcn", {"clip_len": CLIP_LEN}), "action/cox3d": ("x3d", {})}


def _randomise_norms(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("action-ckpt")
    torch.manual_seed(0)
    out = {}
    for kind, config in (("stgcn", GCN), ("x3d", X3D)):
        out[kind] = save_model(_randomise_norms(build_model(kind, config)), kind, config, root / f"{kind}.pt",
                               {"labels": LABELS})
    return out


@pytest.fixture(scope="module")
def frames() -> list:
    from hcgym.synthesis.bench_frames import iter_world_frames
    from hcgym.worlds import load_world

    return list(iter_world_frames(load_world("greeting"), 4.0, 5.0, 0))


def make(sensor_id: str, checkpoints: dict[str, Path], **kwargs):
    kind, defaults = SENSORS[sensor_id]
    return hp.make(sensor_id, checkpoint=checkpoints[kind], **{**defaults, **kwargs})


def run(sensor, frames: list) -> tuple[list, list]:
    """Classifications and the model input of each frame (``None`` for frames the model skipped)."""
    outs, inputs = [], []
    for f in frames:
        steps = sensor.steps
        outs.append(sensor(f))
        inputs.append(sensor.last_input.copy() if sensor.steps > steps else None)
    return outs, inputs


def same(a, b) -> bool:
    return a.labels == b.labels and a.scores.shape == b.scores.shape and np.allclose(a.scores, b.scores, atol=1e-6)


# ------------------------------------------------------------------------------------ exactness
@pytest.mark.parametrize("sensor_id", list(SENSORS))
def test_nothing_during_the_delay_then_the_clip_model_on_the_same_inputs(sensor_id, checkpoints, frames,
                                                                         one_torch_thread):
    sensor = make(sensor_id, checkpoints, hold=False)
    outs, inputs = run(sensor, frames)
    sensor.close()
    delay, every = sensor.delay, sensor.frames_per_prediction
    assert delay == (10 if sensor_id == "action/costgcn" else 7) and len(frames) > delay + 2 * every
    assert sensor.found and np.abs(np.stack(inputs)).sum(axis=tuple(range(1, inputs[0].ndim + 1))).min() > 0
    clip_model, _ = load_model(checkpoints[SENSORS[sensor_id][0]])
    window = sensor._co_model.receptive_field
    clip = torch.from_numpy(np.stack(inputs, axis=1)[None])  # (1, C, T, ...)
    predicted = 0
    for t, out in enumerate(outs):
        assert out.boxes is None and out.classes == tuple(LABELS)
        due = t >= delay and (t - delay) % every == 0
        assert len(out) == int(due), t
        if due:
            with torch.no_grad():
                ref = torch.softmax(clip_model(clip[:, :, t - window + 1:t + 1]).double(), 1).numpy()
            assert out.scores.shape == (1, 4) and np.isclose(out.scores.sum(), 1.0)
            assert np.abs(out.scores - ref).max() < 1e-5 and out.labels == [LABELS[int(ref.argmax())]]
            predicted += 1
        else:
            assert out.scores.shape == (0, 4)
    assert predicted >= 3


# ------------------------------------------------------------------------------------ inputs
def test_streaming_normalisation_is_the_training_normalisation_of_the_frames_so_far():
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(30, 25, 3)) + np.array([0.0, 0.0, 3.0])
    valid = rng.random(30) > 0.3
    valid[:2] = False  # nobody found at first: zeros
    norm = StreamNormaliser()
    for t in range(30):
        got = norm(joints[t] if valid[t] else None)
        assert np.allclose(got, normalise(joints[:t + 1], valid[:t + 1])[0][t], atol=1e-12), t
    first = int(np.flatnonzero(valid)[0])
    assert np.allclose(norm.centre, joints[first, SPINE]) and np.isclose(norm.scale, torso_lengths(joints[valid]).mean())
    norm.reset()
    assert np.allclose(norm(joints[5]), (joints[5] - joints[5, SPINE]) / torso_lengths(joints[5]))


def test_costgcn_input_is_mediapipe_lifted_with_the_frames_camera(checkpoints, frames):
    from hcgym.perception.pose.mediapipe import MediaPipePose

    stream = [frames[2], frames[10]]  # the person walks towards the camera in between
    k = stream[0].intrinsics
    camera = {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy}
    with MediaPipePose() as pose:
        joints = [camera_joints(kp.world[0], kp.points[0], kp.scores[0], camera) for kp in map(pose, stream)]
    # frame t of the stream: the training normalisation of the clip of frames 0..t at its last frame
    expect = np.stack([normalise(np.stack(joints[:t + 1]), np.ones(t + 1, bool))[0][t] for t in range(2)])
    expect = expect.transpose(0, 2, 1)[..., None].astype(np.float32)
    inputs = {}
    for name, hfov, as_images in (("frames", 60.0, False), ("images, same camera", 60.0, True),
                                  ("images, wider camera", 90.0, True)):
        sensor = make("action/costgcn", checkpoints, hfov_deg=hfov)
        inputs[name] = []
        for f in stream:
            sensor(f.rgb if as_images else f)
            inputs[name].append(sensor.last_input)
        sensor.close()
    assert np.allclose(np.stack(inputs["frames"]), expect, atol=1e-6)
    assert np.allclose(np.stack(inputs["images, same camera"]), expect, atol=1e-6)  # greeting's camera: 60 degrees
    # another camera model lifts the frames to other depths: frame 0 (centred on itself) stays, frame 1 moves
    assert np.allclose(inputs["images, wider camera"][0], expect[0], atol=1e-6)
    assert not np.allclose(inputs["images, wider camera"][1], expect[1], atol=1e-3)


def test_cox3d_crops_the_person_and_follows_slowly(checkpoints, frames):
    from hcgym.perception.action.crop import RGB_MEAN, RGB_STD, crop_frames, normalise_rgb, square_box
    from hcgym.perception.pose.mediapipe import MediaPipePose

    with MediaPipePose() as pose:
        found = [np.asarray(pose(f).boxes[0], float) for f in frames[:6]]
    sensor = make("action/cox3d", checkpoints, box_smoothing=0.5)
    box = None
    for f, new in zip(frames[:6], found):
        sensor(f)
        box = new if box is None else box + 0.5 * (new - box)  # half way towards MediaPipe's new box
        assert np.allclose(sensor.box, box)
    sensor.close()
    assert not np.allclose(found[5], box)  # the box lags the walking person
    square = sensor.crop_box(frames[5].rgb)
    assert square.tolist() == square_box(box[None], 1.15).tolist() and square[2] - square[0] == square[3] - square[1]
    person = np.asarray(frames[5].humans[0].bbox, float)
    centre = (person[:2] + person[2:]) / 2
    assert np.all(square[:2] < centre) and np.all(centre < square[2:])  # the crop is around the person
    x = sensor.last_input
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    assert np.array_equal(x, normalise_rgb(crop_frames(frames[5].rgb[None], square, 32)[0]))
    assert -RGB_MEAN / RGB_STD - 1e-5 <= x.min() and x.max() <= (1 - RGB_MEAN) / RGB_STD + 1e-5
    image = np.zeros((60, 100, 3), np.uint8)  # nobody: the whole frame as a centred square
    fresh = make("action/cox3d", checkpoints)
    assert fresh.crop_box(image).tolist() == [0, -20, 100, 80]
    fresh(image)
    fresh.close()
    assert fresh.box is None and not fresh.found


# ------------------------------------------------------------------------------------ stream control
def test_frame_stride_feeds_every_kth_frame_and_holds_the_latest_answer(checkpoints, frames):
    strided = make("action/cox3d", checkpoints, frame_stride=2)
    outs, inputs = run(strided, frames)
    strided.close()
    assert strided.steps == len(frames) // 2 and all(x is None for x in inputs[1::2])
    alone = make("action/cox3d", checkpoints)
    ref, ref_inputs = run(alone, frames[::2])
    alone.close()
    for a, b in zip(inputs[::2], ref_inputs):
        assert np.array_equal(a, b)
    for a, b in zip(outs[::2], ref):
        assert same(a, b)
    for k in range(1, len(frames), 2):  # a skipped frame answers with the latest classification
        assert same(outs[k], outs[k - 1])
    assert len(outs[-1]) == 1 and len(outs[0]) == 0
    with pytest.raises(SpecError, match="frame_stride"):
        make("action/costgcn", checkpoints, frame_stride=0)
    held = [o for o, x in zip(outs, inputs) if len(o) and x is None]
    assert held and strided.hold  # the default


def test_reset_starts_a_new_stream(checkpoints, frames):
    sensor = make("action/cox3d", checkpoints)
    first, _ = run(sensor, frames[:12])
    assert sensor.warmed_up and len(first[-1]) == 1
    sensor.reset()
    assert sensor.steps == 0 and sensor.box is None and not sensor.warmed_up
    second, _ = run(sensor, frames[:12])
    sensor.close()
    assert all(same(a, b) for a, b in zip(first, second))
    assert [len(o) for o in second] == [0] * 7 + [1] * 5


# ------------------------------------------------------------------------------------ shipped models
def test_the_shipped_checkpoints_by_default_and_by_name():
    gcn = hp.make("action/costgcn")  # trained on MediaPipe skeletons, what the sensor feeds
    assert gcn.checkpoint == sensors.MODELS / "action_stgcn_mediapipe.pt" and len(gcn.classes) == 24
    assert "wave" in gcn.classes and gcn.kind == "stgcn"
    assert (gcn.delay, gcn.frames_per_prediction) == (38, 2)  # 40-frame clips of 12.5 fps: 3 s to warm up
    star = hp.make("action/costgcn", checkpoint="action_stgcn_star.pt")  # a shipped file by name
    assert star.checkpoint == sensors.MODELS / "action_stgcn_star.pt"
    assert (star.delay, star.frames_per_prediction) == (39, 1) and star.classes == gcn.classes


# ------------------------------------------------------------------------------------ bad input
def test_bad_checkpoints_and_options_are_refused(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setattr(sensors, "MODELS", tmp_path)
    with pytest.raises(SpecError, match=r"action_stgcn_mediapipe\.pt is missing"):
        hp.make("action/costgcn")
    with pytest.raises(SpecError, match=r"action_x3d\.pt is missing"):
        hp.make("action/cox3d")
    with pytest.raises(SpecError, match="holds a 'x3d' model"):
        hp.make("action/costgcn", checkpoint=checkpoints["x3d"])
    save_model(build_model("x3d", X3D), "x3d", X3D, tmp_path / "nolabels.pt")
    with pytest.raises(SpecError, match="labels"):
        hp.make("action/cox3d", checkpoint=tmp_path / "nolabels.pt")
    with pytest.raises(SpecError, match="not found"):
        hp.make("action/cox3d", checkpoint=tmp_path / "absent.pt")
    with pytest.raises(SpecError, match="not both"):
        hp.make("action/cox3d", checkpoint=checkpoints["x3d"], onnx=tmp_path / "x.onnx")
    for key, value in (("hold", "yes"), ("box_smoothing", 0.0), ("margin", 0.5), ("threads", 0)):
        with pytest.raises(SpecError, match=key):
            hp.make("action/cox3d", checkpoint=checkpoints["x3d"], **{key: value})
    with pytest.raises(SpecError, match="hfov_deg"):
        make("action/costgcn", checkpoints, hfov_deg=0)
    with pytest.raises(SpecError, match="input"):
        make("action/cox3d", checkpoints).feed(np.zeros((3, 16, 16)))


# ------------------------------------------------------------------------------------ export and bench
@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory) -> dict[str, dict]:
    from hcgym.perception.export import export_sensor

    out = {}
    for sensor_id, (kind, kwargs) in SENSORS.items():
        folder = tmp_path_factory.mktemp(sensor_id.replace("/", "_"))
        report = export_sensor(sensor_id, folder, n=8, checkpoint=str(checkpoints[kind]), **kwargs)
        out[sensor_id] = {"report": report, "onnx": folder / report["onnx"], "folder": folder}
    return out


@pytest.mark.parametrize("sensor_id", list(SENSORS))
def test_export_round_trip(sensor_id, exported, checkpoints, frames):
    e = exported[sensor_id]
    report = e["report"]
    assert sorted(p.name for p in e["folder"].iterdir()) == sorted([e["onnx"].name, e["onnx"].name + ".json",
                                                                    "export.json", "table.md"])
    assert report["parity_ok"] and report["parity_max_abs_diff"] < 1e-4 and report["reload"]["same"]
    step = report["continual_step"]
    assert step["predictions"] > 0 and step["logits_max_abs_diff"] < 1e-4 and step["delay"] == make(
        sensor_id, checkpoints).delay
    assert json.loads(e["onnx"].with_name(e["onnx"].name + ".json").read_text())["sensor"] == sensor_id
    torch_sensor = make(sensor_id, checkpoints, hold=False)
    reloaded = hp.OnnxSensor(e["onnx"], sensor=sensor_id, hold=False)  # the sidecar's pre-processing
    runner = hp.make(sensor_id, onnx=e["onnx"], hold=False)  # OnnxStepRunner
    answers = [[s(f) for f in frames] for s in (torch_sensor, reloaded, runner)]
    for s in (torch_sensor, reloaded, runner):
        s.close()
    assert sum(len(a) for a in answers[0]) >= 3
    for a, b, c in zip(*answers):
        assert a.labels == b.labels == c.labels and np.allclose(a.scores, b.scores, atol=1e-5)
        assert np.allclose(a.scores, c.scores, atol=1e-5)


def test_an_export_of_one_action_sensor_is_not_the_other(exported):
    with pytest.raises(SpecError, match="not of"):
        hp.make("action/cox3d", onnx=exported["action/costgcn"]["onnx"])


@pytest.mark.parametrize("use_onnx", [False, True], ids=["pytorch", "onnx"])
def test_bench_run_in_the_greeting_world(use_onnx, checkpoints, exported, tmp_path):
    from hcgym.scripts.cli import main

    out = tmp_path / "bench"
    model = (["--onnx", str(exported["action/costgcn"]["onnx"])] if use_onnx else
             ["--sensor-arg", f"checkpoint={checkpoints['stgcn']}", "--sensor-arg", f"clip_len={CLIP_LEN}"])
    assert main(["evaluate", "sensor", "action/costgcn", "--world", "greeting", "--seconds", "4", *model,
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "classification" and results["frames"] == 20
    assert results["latency_ms"]["calls"] == 20 and results["latency_ms"]["median"] > 0
    records = results["records"]
    assert len(records) == 20 and {r["true"] for r in records} >= {"walk", "wave"}
    # the bench resets the sensor after its untimed warm-up call: the delay of 10 model steps ends at frame 10
    assert [r["predicted"] is not None for r in records] == [False] * 10 + [True] * 10
    assert set(results["confusion"]["columns"]) >= {"missed"} and (out / "confusion.png").is_file()
    assert (results["onnx"] is not None) == use_onnx
