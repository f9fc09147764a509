"""The live expression sensor expression/pstbln (perception/expression/sensor.py, tracks.py, explicit_dropout.py).

A tiny ST-BLN is trained here on procedural landmark sequences (:mod:`hcgym.perception.expression.toy`, the
dlib-51 layout that the mesh51 points follow) and saved with the stream meta the sensor reads; the stream
tests feed landmarks directly (:meth:`ExpressionSensor.feed`), the last tests run it on rendered frames of the
conversation world.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hcgym.perception as hp
from hcgym.errors import SpecError
from hcgym.perception.expression import graph as G
from hcgym.perception.expression import models as M
from hcgym.perception.expression import sensor as S
from hcgym.perception.expression import training as T
from hcgym.perception.expression.explicit_dropout import ExplicitDropoutNet, draw_masks, ones_masks
from hcgym.perception.expression.mcdropout import mc_predict
from hcgym.perception.expression.toy import CLASSES, toy_sequences
from hcgym.perception.expression.tracks import FaceTrack, FaceTracks
from hcgym.synthesis.expression_data import fill_missing

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WINDOW = 6
META = {"source": "mesh51", "fps": 8, "window": WINDOW, "labels": list(CLASSES)}


@pytest.fixture(scope="module")
def model():
    xs, ys, _ = toy_sequences(6, frames=WINDOW, seed=0, subjects=10)
    cfg = M.ExprModelConfig(graph=G.graph_from_data(xs), frames=WINDOW, widths=(8, 8))
    return T.train(M.build_model(cfg, seed=0), xs, ys, settings=T.TrainSettings(epochs=2, batch=16)).model


@pytest.fixture(scope="module")
def ckpt(model, tmp_path_factory):
    return T.save_model(model, tmp_path_factory.mktemp("expr-sensor") / "toy.pt", META)


@pytest.fixture(scope="module")
def faces():
    """Two faces over 10 frames: landmarks (10, 2, 51, 2) and boxes (10, 2, 4), far apart."""
    x = toy_sequences(1, frames=10, seed=5)[0][:2].transpose(1, 0, 2, 3).copy()
    x[:, 1, :, 0] += 300
    return x, np.concatenate([x.min(2), x.max(2)], axis=2)


def make(ckpt, **kwargs):
    return hp.make("expression/pstbln", checkpoint=ckpt, **kwargs)


def run(sensor, faces, frames=None):
    x, boxes = faces
    return [sensor.feed(boxes[k], x[k]) for k in range(len(x) if frames is None else frames)]


def softmax(model, x):
    return torch.softmax(torch.from_numpy(T.predict_logits(model, x)), 1).numpy()


# ------------------------------------------------------------------ checkpoints and arguments
def test_a_missing_default_checkpoint_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(S, "MODELS", tmp_path)
    with pytest.raises(SpecError, match="checkpoint.*expression_stream.pt is missing.*checkpoint=PATH"):
        hp.make("expression/pstbln")
    with pytest.raises(SpecError, match="checkpoint not found"):
        hp.make("expression/pstbln", checkpoint=tmp_path / "nope.pt")


@pytest.mark.parametrize("meta, match", [
    ({"source": "mesh51", "fps": 8, "labels": list(CLASSES)}, "lacks window"),
    ({**META, "labels": ["a", "b"]}, "7 classes"),
    ({**META, "source": "mesh"}, "does not fit a network on 51 points"),
    ({**META, "fps": 0}, "'fps' must be a positive number"),
])
def test_checkpoints_without_the_stream_meta_are_refused(model, tmp_path, meta, match):
    path = T.save_model(model, tmp_path / "bad.pt", meta)
    with pytest.raises(SpecError, match=match):
        make(path)


@pytest.mark.parametrize("kwargs, field", [
    ({"passes": -1}, "passes"), ({"source": "truth"}, "source"), ({"source": "mesh"}, "source"),
    ({"max_missing": WINDOW}, "max_missing"), ({"frame_stride": 0}, "frame_stride"), ({"match_iou": 0}, "match_iou"),
    ({"hold": "yes"}, "hold"), ({"min_detection_confidence": 2}, "min_detection_confidence"),
])
def test_bad_arguments_name_their_field(ckpt, kwargs, field):
    with pytest.raises(SpecError) as e:
        make(ckpt, **kwargs)
    assert e.value.field == field


# ------------------------------------------------------------------ Monte Carlo dropout with explicit masks
def test_explicit_masks_reproduce_eval_mode_and_torch_dropout(model):
    x = toy_sequences(2, frames=WINDOW, seed=7)[0][:6]
    net = ExplicitDropoutNet(model, WINDOW)
    assert net.rates == (0.2, 0.2) and net.mask_shapes == ((8, WINDOW, model.cfg.points),) * 2
    with torch.no_grad():
        det = net(torch.from_numpy(x), *map(torch.from_numpy, ones_masks(6, net.mask_shapes))).numpy()
    assert np.allclose(det, softmax(model, x), atol=1e-6)
    masks = draw_masks(np.random.default_rng(0), 400, net.mask_shapes, net.rates)
    assert set(np.unique(masks[0])) == {0.0, np.float32(1.25)} and abs((masks[0] == 0).mean() - 0.2) < 0.01
    # 400 passes of the sensor's masks agree with 400 passes of torch's own dropout (mc_predict)
    x1 = np.repeat(x[:1], 400, axis=0)
    with torch.no_grad():
        ours = net(torch.from_numpy(x1), *map(torch.from_numpy, masks)).numpy()
    theirs = mc_predict(model, x[:1], passes=400, seed=0).passes[:, 0]
    error = theirs.std(0) * np.sqrt(2 / 400)                # standard error of the difference of the means
    assert (np.abs(ours.mean(0) - theirs.mean(0)) < 5 * error).all() and (theirs.std(0) > 0).all()
    assert np.allclose(ours.std(0), theirs.std(0), rtol=0.25)
    assert not model.training  # the wrapped copy left the model alone


# ------------------------------------------------------------------ the stream
def test_faces_are_tracked_and_classified_once_their_track_holds_two_frames(ckpt, faces):
    sensor = make(ckpt)
    first, second, *_ = run(sensor, faces, 3)
    assert first.labels == [] and first.scores.shape == (0, 7) and first.boxes.shape == (0, 4)
    assert sensor.track_ids == [0, 1] and len(second) == 2 and second.classes == tuple(CLASSES)
    assert np.allclose(second.boxes, faces[1][1]) and np.allclose(second.scores.sum(1), 1)
    assert second.labels == [CLASSES[i] for i in second.scores.argmax(1)]
    ent, var = second.uncertainty["entropy"], second.uncertainty["variance"]
    assert ent.shape == (2,) and var.shape == (2, 7) and (var > 0).all() and (ent > 0).all()


def test_a_short_buffer_is_padded_with_its_first_frame_and_passes_0_is_the_eval_pass(ckpt, model, faces):
    sensor = make(ckpt, passes=0)
    out = run(sensor, faces, 3)[-1]
    x = faces[0][:3].transpose(1, 0, 2, 3)
    padded = np.concatenate([np.repeat(x[:, :1], WINDOW - 3, axis=1), x], axis=1)
    assert out.uncertainty is None and np.allclose(out.scores, softmax(model, padded), atol=1e-5)
    # a full buffer is the last WINDOW frames
    sensor.reset()
    out = run(sensor, faces, 10)[-1]
    assert np.allclose(out.scores, softmax(model, faces[0][-WINDOW:].transpose(1, 0, 2, 3)), atol=1e-5)


def test_same_seed_same_answers_and_reset_restarts_the_generator(ckpt, faces):
    a, b = make(ckpt, mc_seed=3), make(ckpt, mc_seed=3)
    ra, rb = run(a, faces), run(b, faces)
    assert all(np.array_equal(p.scores, q.scores) for p, q in zip(ra, rb))
    a.reset()
    again = run(a, faces)
    assert all(np.array_equal(p.scores, q.scores) and p.labels == q.labels for p, q in zip(ra, again))
    other = run(make(ckpt, mc_seed=4), faces)
    assert not np.allclose(ra[-1].scores, other[-1].scores)
    assert np.abs(ra[-1].scores - other[-1].scores).max() < 0.1  # both estimate the same mean


def test_tracks_survive_short_gaps_filled_like_the_training_clips():
    tracks = FaceTracks(window=5, match_iou=0.3, max_missing=2)
    pts = np.arange(8, dtype=np.float32).reshape(8, 1, 1, 1) * np.ones((1, 1, 3, 2), np.float32)
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    assert tracks.update(box, pts[0]) == [0]
    assert tracks.update(box + 2, pts[1]) == [0]          # moved a little: the same face
    assert tracks.update(np.zeros((0, 4)), pts[2][:0]) == []
    assert tracks.update(box, pts[3]) == [0]               # back after one missing frame
    win = tracks[0].window()
    assert win.shape == (5, 3, 2) and win[:, 0, 0].tolist() == [0, 0, 1, 1, 3]  # padded, gap filled forward
    assert tracks.update(box + 100, pts[4]) == [1]         # somewhere else: a new face
    for _ in range(3):
        tracks.update(np.zeros((0, 4)), pts[0][:0])
    assert list(tracks.tracks) == []                        # both gone after 3 > max_missing misses
    track, found = FaceTrack(0, box[0], 4), np.array([True, False, True, False])
    for p, f in zip(pts[:4, 0], found):
        track.add(p if f else None)
    stored = np.stack([p if f else 0 * p for p, f in zip(pts[:4, 0], found)])
    assert np.array_equal(track.window(), fill_missing(stored, found))


def test_frames_are_sampled_at_the_models_rate_and_held_between(ckpt):
    blank = np.zeros((48, 64, 3), np.uint8)
    sensor = make(ckpt)
    for k in range(12):                                     # 24 fps stream, model at 8 fps
        sensor.process(blank, time=k / 24)
    assert (sensor.frames, sensor.steps) == (12, 4)
    sensor.reset()
    for t in (0.0, 0.3, 0.31, 0.45):                        # slower than the model: every frame after a period
        sensor.process(blank, time=t)
    assert sensor.steps == 3
    strided = make(ckpt, frame_stride=2, hold=False)
    outs = [strided.process(blank) for _ in range(4)]
    assert strided.steps == 2 and not strided.fresh and outs[-1].labels == []


def test_unsampled_frames_hold_the_latest_answer(ckpt, faces):
    sensor = make(ckpt, frame_stride=2, passes=5)
    x, boxes = faces
    sensor.feed(boxes[0], x[0])
    latest = sensor.feed(boxes[1], x[1])
    sensor.frames = 1                                       # the next call is an unsampled one
    assert sensor.process(np.zeros((48, 64, 3), np.uint8)) is latest and not sensor.fresh


# ------------------------------------------------------------------ ONNX
def test_the_onnx_export_answers_like_the_torch_sensor_for_the_same_seed(ckpt, faces, tmp_path):
    from hcgym.perception.base import OnnxSensor
    from hcgym.perception.export import export_sensor

    report = export_sensor("expression/pstbln", tmp_path / "exp", n=8, checkpoint=ckpt, passes=30, mc_seed=2)
    assert report["parity_ok"] and report["reload"]["same"], report
    onnx = OnnxSensor(tmp_path / "exp" / report["onnx"], sensor="expression/pstbln")
    assert onnx.passes == 30 and onnx.mc_seed == 2 and onnx.model is None
    torch_sensor = make(ckpt, passes=30, mc_seed=2)
    for a, b in zip(run(torch_sensor, faces), run(onnx, faces)):
        assert a.labels == b.labels and np.array_equal(a.boxes, b.boxes)
        if len(a):
            assert np.abs(a.scores - b.scores).max() <= 1e-4
            assert max(np.abs(a.uncertainty[k] - b.uncertainty[k]).max() for k in ("entropy", "variance")) <= 1e-4
    det = OnnxSensor(tmp_path / "exp" / report["onnx"], passes=0)
    ref = make(ckpt, passes=0)
    assert np.abs(run(det, faces)[-1].scores - run(ref, faces)[-1].scores).max() <= 1e-4


# ------------------------------------------------------------------ rendered frames
@pytest.fixture(scope="module")
def frames():
    from hcgym.synthesis.bench_frames import iter_world_frames
    from hcgym.worlds import load_world

    return list(iter_world_frames(load_world("conversation"), 1.0, 8.0, 0))


@pytest.mark.parametrize("source", ["mesh51", "dlib"])
def test_the_face_of_the_conversation_world_is_found_tracked_and_scored(ckpt, frames, source):
    from hcgym.geometry import box_iou
    from hcgym.perception.bench import run as bench_run
    from hcgym.perception.bench_base import BenchConfig

    sensor = make(ckpt, source=source, passes=10)
    outs = [sensor(f) for f in frames]
    assert outs[0].labels == [] and all(len(o) == 1 for o in outs[1:]) and sensor.track_ids == [0]
    truth = [np.asarray(f.humans[0].face_box) for f in frames]
    assert min(box_iou(o.boxes[0], t) for o, t in zip(outs[1:], truth[1:])) >= 0.4
    config = BenchConfig("expression/pstbln", "conversation", 1.0, 8.0, sensor_kwargs={"checkpoint": str(ckpt),
                                                                                       "source": source, "passes": 10})
    result = bench_run(config, frames, progress=False)
    assert result["task"] == "classification" and result["metrics"]["subjects"] == len(frames)
    assert result["metrics"]["classified"] == pytest.approx((len(frames) - 1) / len(frames))
    assert result["confusion"]["columns"][-1] == "missed"
