"""RGB-D gesture data: the crop and its channels, the Kinect-like noise, rendered samples, the file, the loader
and the folder readers (HANDS layout and the simple one)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception.gesture import inputs as I
from hcgym.synthesis.gesture_data import GestureData, GestureSetConfig, contact_sheet, generate_gestures
from hcgym.synthesis.motion.hands import GESTURES


def _gl() -> tuple[bool, str]:
    from hcgym.envs.backends.gl import gl_available

    return gl_available()


needs_gl = pytest.mark.skipif(not _gl()[0], reason=f"no OpenGL through EGL: {_gl()[1]}")


# ----------------------------------------------------------------------------- noise model
def test_kinect_axial_noise_quantisation_and_range():
    rng = np.random.default_rng(0)
    plane = np.full((200, 200), 2.0)
    noisy = I.kinect_depth(plane, rng, dropout=0.0, blobs=0.0)
    valid = noisy > 0
    assert valid.mean() > 0.99  # no edges, no dropout: (almost) every pixel reads
    err = noisy[valid] - 2.0
    assert abs(err.std() / I.kinect_sigma(2.0) - 1.0) < 0.1  # 0.0012 + 0.0019 * 1.6^2 = 6.1 mm
    assert abs(err.mean()) < 0.001
    assert np.allclose(noisy * 1000, np.round(noisy * 1000), atol=1e-3)  # whole millimetres
    assert not I.kinect_depth(np.full((20, 20), 5.0), rng).any()  # beyond 4.5 m: no reading
    assert not I.kinect_depth(np.full((20, 20), 0.3), rng).any()  # nearer than 0.5 m
    holes = plane.copy()
    holes[50:60, 50:60] = 0.0
    holes[0, 0] = np.inf
    out = I.kinect_depth(holes, rng)
    assert not out[50:60, 50:60].any() and out[0, 0] == 0  # nothing comes out of nothing
    a = I.kinect_depth(plane, np.random.default_rng(5))
    assert np.array_equal(a, I.kinect_depth(plane, np.random.default_rng(5)))
    assert not np.array_equal(a, I.kinect_depth(plane, np.random.default_rng(6)))


def test_kinect_holes_and_lateral_noise_gather_at_depth_edges():
    step = np.full((120, 120), 1.0)
    step[:, 60:] = 2.5
    out = I.kinect_depth(step, np.random.default_rng(1), dropout=0.0, blobs=0.0)
    near_edge = out[:, 59:61]  # the last pixel on either side of the step
    far_from_edge = np.concatenate([out[:, :50], out[:, 70:]], axis=1)
    assert 0.15 < (near_edge == 0).mean() < 0.35 and (far_from_edge == 0).mean() == 0.0
    # lateral noise: some edge pixels of the near side read the far side (or the reverse)
    assert ((out[:, 58:60] > 2.0).mean() + (np.abs(out[:, 60:62] - 1.0) < 0.1).mean()) > 0.05
    dropped = I.kinect_depth(np.full((100, 100), 1.5), np.random.default_rng(2), dropout=0.05, blobs=0.0)
    assert 0.03 < (dropped == 0).mean() < 0.07


def test_kinect_crops_work_at_sensor_resolution():
    depth = np.full((2, 32, 32), 2.0, np.float32)
    boxes = np.array([[0, 0, 320, 320], [0, 0, 16, 16]], np.float32)  # 10 and 0.5 sensor pixels per crop pixel
    rngs = [np.random.default_rng(k) for k in range(2)]
    out = I.kinect_crops(depth, boxes, rngs)
    assert out.shape == depth.shape and out.dtype == np.float32
    # a crop enlarged from 16 sensor pixels repeats each reading over 2x2 crop pixels
    assert np.array_equal(out[1][::2, ::2], out[1][1::2, 1::2])


# ----------------------------------------------------------------------------- crop and channels
def test_hand_box_is_square_contains_the_points_and_stays_in_the_image():
    pts = np.array([[100.0, 200.0], [160.0, 260.0], [130.0, 215.0], [np.nan, np.nan]])
    box = I.hand_box(pts, (640, 480))
    side = box[2] - box[0]
    assert box.dtype == np.int64 and side == box[3] - box[1] and abs(side - 90) <= 1
    assert box[0] <= 100 and box[2] >= 160 and box[1] <= 200 and box[3] >= 260
    edge = I.hand_box(np.array([[5.0, 470.0], [40.0, 478.0]]), (640, 480))
    assert edge[0] >= 0 and edge[3] <= 480
    a = I.hand_box(pts, (640, 480), rng=np.random.default_rng(3))
    assert np.array_equal(a, I.hand_box(pts, (640, 480), rng=np.random.default_rng(3))) and not np.array_equal(a, box)
    assert I.hand_box(np.array([[10.0, 10.0], [11.0, 11.0]]))[2] - 10 >= I.MIN_SIDE // 2
    with pytest.raises(SpecError, match="points_uv"):
        I.hand_box(np.full((3, 2), np.nan))


def test_crop_rgbd_resizes_depth_by_nearest_pixel_and_pads_outside():
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = 200
    depth = np.full((40, 60), 2.0, np.float32)
    depth[:, 30:] = 1.0
    depth[0, 0] = np.inf
    crop, d = I.crop_rgbd(rgb, depth, (-10, 0, 30, 40), 20)  # half of it left of the image
    assert crop.shape == (20, 20, 3) and d.shape == (20, 20) and d.dtype == np.float32
    assert set(np.unique(d)) <= {0.0, 2.0}  # no depth invented between readings
    assert not crop[:, :4].any() and not d[:, :4].any()  # outside the frame: black, no reading
    with pytest.raises(SpecError, match="box"):
        I.crop_rgbd(rgb, depth, (0, 0, 10, 20), 20)


def test_depth_channel_modes():
    d = np.full((1, 16, 16), 3.0, np.float32)
    d[0, 4:12, 4:12] = 1.0  # the hand in the middle, a wall 2 m behind
    d[0, 0, 0] = 0.0
    rel = I.depth_channel(d, "relative")
    assert rel.shape == (1, 1, 16, 16)
    assert np.allclose(rel[0, 0, 4:12, 4:12], 0.0) and rel[0, 0, 15, 15] == 1.0 and rel[0, 0, 0, 0] == 1.0
    assert np.allclose(I.depth_channel(d + 1.0, "relative")[0, 0, 4:12, 4:12], 0.0)  # the same at any distance
    assert np.isclose(I.depth_channel(d, "absolute")[0, 0, 8, 8], 1.0 / I.DEPTH_MAX)
    assert np.array_equal(I.depth_channel(d, "metres")[0, 0], d[0])
    with pytest.raises(SpecError, match="depth_mode"):
        I.depth_channel(d, "log")


def test_channels_of_each_modality():
    rgb = np.full((2, 8, 8, 3), 255, np.uint8)
    depth = np.ones((2, 8, 8), np.float32)
    for modality, c in I.MODALITIES.items():
        x = I.channels(rgb, depth, modality)
        assert x.shape == (2, c, 8, 8) and x.dtype == np.float32
    x = I.channels(rgb, depth, "rgbd", normalised=False)
    assert np.allclose(x[:, :3], 1.0)
    assert np.allclose(I.channels(rgb, depth, "rgb")[:, 0], (1.0 - 0.485) / 0.229)
    with pytest.raises(SpecError, match="modality"):
        I.channels(rgb, depth, "ir")


# ----------------------------------------------------------------------------- the data file and loader
def _toy(n: int = 6, s: int = 16) -> GestureData:
    rng = np.random.default_rng(0)
    depth = np.full((n, s, s), 2.0, np.float16)
    depth[:, s // 4: 3 * s // 4, s // 4: 3 * s // 4] = 1.2
    arrays = {"rgb": rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8), "depth": depth,
              "box": np.tile(np.array([100, 100, 180, 180], np.float32), (n, 1)),
              "keypoints": np.zeros((n, 21, 3), np.float32), "keypoints_3d": np.full((n, 21, 3), np.nan, np.float32),
              "label": np.arange(n) % 3, "labels": np.array(GESTURES), "hand": np.array(["right"] * n),
              "identity": np.arange(n) // 2, "avatar_seed": np.arange(n) // 2, "split": np.array(
                  ["train", "train", "val", "val", "test", "test"][:n]), "distance": np.ones(n, np.float32),
              "props": np.zeros(n, np.int16), "distractor": np.zeros(n, np.float16), "seconds": np.zeros(n, np.float32)}
    return GestureData(arrays, {"note": "toy"})


def test_save_load_and_model_arrays(tmp_path):
    data = _toy()
    path = data.save(tmp_path / "toy.npz")
    back = GestureData.load(path)
    assert back.metadata["note"] == "toy" and len(back) == 6 and back.labels == GESTURES
    x, y = back.arrays("test", "rgbd")
    assert x.shape == (2, 4, 16, 16) and x.dtype == np.float32 and y.tolist() == [1, 2]
    assert np.allclose(x[:, 3, 6:10, 6:10], 0.0)  # relative depth: the hand at 0
    xd, _ = back.arrays("train", "depth", noise=True, seed=4)
    assert not np.allclose(xd, back.arrays("train", "depth")[0])
    assert np.array_equal(xd, back.arrays("train", "depth", noise=True, seed=4)[0])
    # a sample's noise does not depend on what else is selected
    one, _ = back.arrays([1], "depth", noise=True, seed=4)
    assert np.array_equal(one[0], xd[1])
    assert back.subset("val").y().tolist() == [2, 0]
    with pytest.raises(SpecError, match="split"):
        back.arrays("holdout")
    with pytest.raises(SpecError, match="modality"):
        back.arrays("train", "thermal")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(SpecError, match="not a gesture data file"):
        GestureData.load(tmp_path / "other.npz")
    sheet = contact_sheet(back, per_class=2)
    assert sheet.ndim == 3 and sheet.shape[0] >= 3 * 16


def test_config_errors_name_the_field(tmp_path):
    for bad, field in ((dict(out=tmp_path / "x.txt"), "out"), (dict(seed=-1), "seed"), (dict(identities=0), "identities"),
                       (dict(per_class=(0, 0, 0)), "per_class"), (dict(gestures=("wave",)), "gestures"),
                       (dict(size=8), "size"), (dict(splits=(0, 0, 0)), "splits")):
        with pytest.raises(SpecError, match=field):
            GestureSetConfig(**bad).check()
    cfg = GestureSetConfig(identities=42, splits=(30, 4, 8))
    assert [cfg.split_of().count(s) for s in ("train", "val", "test")] == [30, 4, 8]
    assert cfg.avatar_seed(0) < GestureSetConfig(fresh=True, seed=0).avatar_seed(0)


def test_cli_rejects_bad_values_before_writing(tmp_path, capsys):
    from hcgym.scripts.cli import main

    out = tmp_path / "set.txt"
    assert main(["generate", "--mode", "gestures", "--n", "4", "--out", str(out), "--quiet"]) == 2
    assert "out" in capsys.readouterr().err and not out.exists()
    out = tmp_path / "set.npz"
    assert main(["generate", "--mode", "gestures", "--n", "4", "--per-class", "0,0,0", "--out", str(out)]) == 2
    assert "per_class" in capsys.readouterr().err and not out.exists() and not Path(str(out) + ".parts").exists()
    for extra, field in ((["--with-none", "--reuse", str(tmp_path / "missing.npz")], "reuse"),
                         (["--reuse", str(tmp_path / "missing.npz")], "reuse"), (["--with-none", "99"], "none")):
        assert main(["generate", "--mode", "gestures", "--n", "4", "--out", str(out), "--quiet", *extra]) == 2
        assert field in capsys.readouterr().err and not out.exists() and not Path(str(out) + ".parts").exists()


# ----------------------------------------------------------------------------- real data folders
def test_hands_layout(tmp_path):
    import cv2

    root = tmp_path / "hands"
    header = "rgb,depth,One_VFR,Horiz_HBL,Collab,Two_VFL"
    empty = "[0 0 0 0]"
    subjects = {1: [("[10 8 20 20]", empty, empty, empty), (empty, "[5 5 30 30]", empty, empty),
                    (empty, empty, empty, empty),  # no label: skipped
                    ("[1 1 9 9]", empty, empty, "[20 20 9 9]")],  # two gestures: skipped
                4: [(empty, empty, "[4 4 40 30]", empty)]}
    for k, split_rows in subjects.items():
        sub = root / f"Subject{k}"
        rows = [header]
        for i, boxes in enumerate(split_rows):
            (sub / f"Subject{k}").mkdir(parents=True, exist_ok=True)
            (sub / f"Subject{k}_Depth").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(sub / f"Subject{k}" / f"color_{i}.png"), np.full((48, 64, 3), 50 * (i + 1), np.uint8))
            depth = np.full((48, 64), 1000 + 100 * i, np.uint16)
            cv2.imwrite(str(sub / f"Subject{k}_Depth" / f"depth_{i}.png"), depth)
            rows.append(f"C:\\data\\Subject{k}\\color_{i}.png,C:\\data\\Subject{k}\\color_{i}.png," + ",".join(boxes))
        (sub / f"Subject{k}.txt").write_text("\n".join(rows) + "\n")
    data = GestureData.from_folder(root, size=32)
    assert data.metadata["source"]["layout"] == "hands"
    assert data.metadata["source"]["skipped"] == {"no_label": 1, "two_gestures": 1, "unknown_label": 0}
    assert [data.labels[i] for i in data.y()] == ["one", "left", "collab"]
    assert data.data["split"].tolist() == ["train", "train", "test"] and data.data["identity"].tolist() == [1, 1, 4]
    assert data.data["hand"].tolist() == ["right", "left", ""]
    assert np.allclose(data.depth_crops([1])[data.depth_crops([1]) > 0], 1.1, atol=1e-3)  # millimetres -> metres
    box = data.data["box"][0]
    assert box[2] - box[0] == box[3] - box[1] and box[0] <= 10 and box[2] >= 30
    x, y = data.arrays("test", "rgbd")
    assert x.shape == (1, 4, 32, 32)


def test_simple_layout(tmp_path):
    import cv2

    root = tmp_path / "simple"
    for split, gesture, name, box in (("train", "five", "a", [10, 10, 30, 30]), ("train", "punch", "b", None),
                                      ("test", "left", "c", None)):
        folder = root / split / gesture
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / f"{name}.png"), np.full((40, 60, 3), 90, np.uint8))
        cv2.imwrite(str(folder / f"{name}_depth.png"), np.full((40, 60), 1500, np.uint16))
        if box is not None:
            (folder / f"{name}.json").write_text(json.dumps({"box": box, "hand": "left", "subject": 7}))
    data = GestureData.from_folder(root, size=24)
    assert data.metadata["source"]["layout"] == "simple" and len(data) == 3
    assert sorted(data.labels[i] for i in data.y("train")) == ["five", "punch"]
    assert data.data["identity"].tolist()[0] == 7 and data.data["hand"].tolist()[0] == "left"
    assert data.data["box"][1].tolist() == [10.0, 0.0, 50.0, 40.0]  # no box: the centred square
    assert np.allclose(data.data["distance"], 1.5)
    (root / "test" / "wave").mkdir()
    with pytest.raises(SpecError, match="not a gesture"):
        GestureData.from_folder(root)
    with pytest.raises(SpecError, match="no such folder"):
        GestureData.from_folder(tmp_path / "missing")


# ----------------------------------------------------------------------------- rendered samples
STUDIO = (7000, 7001)  # avatars the test suite's studio builds anyway


@needs_gl
def test_rendered_sample_is_the_frame_crop_with_aligned_depth_and_keypoints():
    from hcgym.synthesis.gesture_data_scene import GestureStage, SampleSpec
    from hcgym.synthesis.motion.hands import classify_gesture

    stage = GestureStage(64)
    try:
        person, other = stage.person(STUDIO[0]), stage.person(STUDIO[1])
        for k, gesture in enumerate(("left", "five", "eight")):
            spec = SampleSpec(gesture, 40 + k, jitter=k == 0)
            a = stage.render(person, spec, (other,))
            b = stage.render(person, spec, (other,), window=False)
            # the window rendered alone gives the frame's pixels inside the box
            diff = np.abs(a["rgb"].astype(int) - b["rgb"].astype(int))
            assert diff.mean() < 0.5 and (diff.max(axis=2) > 16).mean() < 0.01
            assert (np.abs(a["depth"] - b["depth"]) < 1e-3).mean() > 0.99
            x0, y0, x1, y1 = a["box"].astype(int)
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480 and x1 - x0 == y1 - y0
            assert b["frame_rgb"].shape == (480, 640, 3)
            assert np.array_equal(a["rgb"], stage.render(person, spec, (other,))["rgb"])  # deterministic
            kp = a["keypoints"]
            assert ((kp[:, :2] >= 0) & (kp[:, :2] < 64)).all()
            # the depth under each knuckle is the hand's surface: a little in front of the joint inside it
            for u, v, z in kp[[5, 9, 13, 17]]:
                d = a["depth"][int(v), int(u)]
                assert z - 0.06 < d < z + 0.01
            assert 0.45 < a["distance"] < 2.6 and a["hand"] in ("left", "right")
            assert classify_gesture(a["keypoints_3d"].astype(np.float64)) == gesture
    finally:
        stage.release()


@needs_gl
@pytest.mark.slow
def test_generation_resumes_and_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    import hcgym.synthesis.gesture_data as gd

    cfg = GestureSetConfig(identities=2, splits=(1, 0, 1), per_class=(1, 0, 1), size=32, gestures=("five", "left"))
    memory = generate_gestures(cfg, progress=False)
    assert len(memory) == 4 and sorted(set(memory.data["split"])) == ["test", "train"]
    assert memory.metadata["rule_agreement"]["rate"] == 1.0
    out = tmp_path / "g.npz"
    real = gd.render_chunk
    calls = []

    def dies_after_one(job):
        if calls:
            raise KeyboardInterrupt
        calls.append(job.identity)
        return real(job)

    monkeypatch.setattr(gd, "render_chunk", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        generate_gestures(replace_out(cfg, out), progress=False)
    assert not out.exists() and len(list(gd.parts_dir(out).glob("identity_*.npz"))) == 1
    monkeypatch.setattr(gd, "render_chunk", lambda job: calls.append(job.identity) or real(job))
    data = generate_gestures(replace_out(cfg, out), progress=False)
    assert len(calls) == 2 and calls[0] != calls[1]  # the second run rendered the missing identity only
    assert out.exists() and not gd.parts_dir(out).exists()
    for key in ("rgb", "depth", "label", "box", "keypoints"):
        assert np.array_equal(data.data[key], memory.data[key])
    assert generate_gestures(replace_out(cfg, out), progress=False).metadata == data.metadata  # reused
    with pytest.raises(SpecError, match="another configuration"):
        generate_gestures(GestureSetConfig(out=out, identities=3, splits=(1, 0, 2), per_class=(1, 0, 1), size=32,
                                           gestures=("five",)), progress=False)


def replace_out(cfg: GestureSetConfig, out: Path) -> GestureSetConfig:
    from dataclasses import replace

    return replace(cfg, out=out)


# ----------------------------------------------------------------------------- the class none
def test_none_class_adds_a_last_label_and_leaves_the_gesture_samples_alone():
    from dataclasses import replace

    from hcgym.synthesis.gesture_data import NONE, ChunkJob, plan_jobs
    from hcgym.synthesis.gesture_data_scene import NONE_KINDS

    off = GestureSetConfig(identities=6, splits=(4, 0, 2), per_class=(4, 0, 2))
    on = replace(off, none=2)
    assert "none" not in off.key() and off.labels == GESTURES  # a 16-class set keeps its key and labels
    assert on.key()["none"]["factor"] == 2 and on.labels == GESTURES + (NONE,) and on.labels.index(NONE) == 16
    assert {k: v for k, v in on.key().items() if k != "none"} == off.key()
    for a, b, c in zip(plan_jobs(off), plan_jobs(on), plan_jobs(on, none_only=True)):
        gestures, nones = b.specs()[:a.count], b.specs()[a.count:]
        assert gestures == a.specs()  # same gestures, same seeds: the same samples
        assert c.specs() == nones and c.count == len(nones) == 2 * a.count // len(GESTURES)
        assert all(s.gesture == NONE and s.jitter == (a.split == "train") for s in nones)
        kinds = [s.relaxed for s in nones]
        assert all(kinds.count(k) == len(kinds) // len(NONE_KINDS) for k in NONE_KINDS)  # 8 or 4: balanced
        assert not {s.seed for s in nones} & {s.seed for s in gestures}
    only = replace(on, gestures=())
    assert ChunkJob(only, 0, "train").specs() == ChunkJob(on, 0, "train", none_only=True).specs()
    for bad in (dict(none=-1), dict(none=99), dict(none=True)):
        with pytest.raises(SpecError, match="none"):
            replace(on, **bad).check()
    with pytest.raises(SpecError, match="gestures"):
        replace(off, gestures=()).check()


def test_none_hands_are_below_the_timelines_labelling_weight():
    from hcgym.synthesis.avatar_spec import AvatarSpec
    from hcgym.synthesis.gesture_data_scene import LABEL_AMOUNT, PARTIAL_AMOUNT
    from hcgym.synthesis.motion.base import envelope
    from hcgym.synthesis.motion.rig import rig_for
    from hcgym.synthesis.motion.timeline import Behaviour, HumanMotion

    item = {"gesture": "five", "hand": "right", "start": 0.0, "duration": 2.0}
    motion = HumanMotion(Behaviour(gesture=(item,), blink=0), rig_for(AvatarSpec.random(STUDIO[0])), (0, 0, 0), 0.0)
    seen = set()
    for t in np.linspace(0.0, 0.3, 61):
        w = envelope(t, 2.0, 0.25, 0.25)  # the timeline's ease-in of a gesture
        if abs(w - LABEL_AMOUNT) > 1e-6:
            assert (motion.hands(t)[1]["right"] == "five") == (w >= LABEL_AMOUNT)
            seen.add(w >= LABEL_AMOUNT)
    assert seen == {True, False} and PARTIAL_AMOUNT[1] < LABEL_AMOUNT


@needs_gl
def test_none_samples_of_each_kind():
    from hcgym.synthesis import gesture_data_scene as gs
    from hcgym.synthesis.gesture_data_scene import GestureStage, SampleSpec

    stage = GestureStage(32)
    try:
        person = stage.person(STUDIO[0])
        wrist_height = {}
        for k, kind in enumerate(gs.NONE_KINDS * 2):
            r = stage.render(person, SampleSpec("none", 70 + k, relaxed=kind))
            allowed = {"hang": {"hang"}, "action": set(gs.RELAXED_ACTIONS)}.get(kind, set(gs.RAISED_ARMS))
            assert r["posture"] in allowed
            assert (r["shape"] == "relaxed") == (kind != "partial") and r["amount"] < gs.LABEL_AMOUNT
            assert (r["amount"] > 0) == (kind == "partial")
            assert ((r["keypoints"][:, :2] >= 0) & (r["keypoints"][:, :2] < 32)).all() and (r["depth"] > 0).any()
            wrist_height.setdefault(kind, []).append(float(r["keypoints_3d"][0, 2]))
        raised = wrist_height["raise"] + wrist_height["partial"]  # rising, held or lowering
        assert max(wrist_height["hang"]) < min(0.9, min(raised)) and max(raised) > 1.2
        with pytest.raises(ValueError, match="relaxed"):
            stage.render(person, SampleSpec("none", 1, relaxed="sleeping"))
    finally:
        stage.release()


def test_rule_agreement_leaves_none_out():
    from hcgym.synthesis.gesture_data import NONE, rule_agreement

    data = _toy()
    data.data["labels"] = np.array(GESTURES + (NONE,))
    data.data["label"][:] = 16
    data.data["keypoints_3d"][:] = 0.0
    assert rule_agreement(data)["total"] == 0 and data.labels[-1] == NONE


@needs_gl
@pytest.mark.slow
def test_none_set_from_a_reused_16_class_set_equals_a_full_run(tmp_path):
    from dataclasses import replace

    from hcgym.synthesis.gesture_data import KEYS, NONE_KEYS

    cfg = GestureSetConfig(identities=2, splits=(1, 0, 1), per_class=(1, 0, 1), size=32, gestures=("five", "left"))
    base = generate_gestures(replace(cfg, out=tmp_path / "g16.npz"), progress=False)
    full = generate_gestures(replace(cfg, none=4), progress=False)
    assert len(full) == 12 and full.y().tolist().count(16) == 8 and full.labels[16] == "none"
    for key in KEYS:
        if key != "seconds":
            assert np.array_equal(full.data[key][full.y() < 16], base.data[key]), key
    out = tmp_path / "g17.npz"
    with pytest.raises(SpecError, match="reuse"):  # not the same configuration: nothing written
        generate_gestures(replace(cfg, none=4, out=out, seed=1), progress=False, reuse=tmp_path / "g16.npz")
    assert not out.exists() and not Path(str(out) + ".parts").exists()
    merged = generate_gestures(replace(cfg, none=4, out=out), progress=False, reuse=tmp_path / "g16.npz")
    assert merged.metadata["run"]["rendered"] == 8 and merged.metadata["run"]["reused"]["samples"] == 4
    for key in KEYS + NONE_KEYS + ("labels",):
        if key != "seconds":
            assert np.array_equal(merged.data[key], full.data[key]), key
    assert GestureData.load(out).metadata["key"] == full.metadata["key"]
    assert merged.metadata["rule_agreement"]["total"] == 4
