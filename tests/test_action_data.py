"""Action data from the clip generator (synthesis/action_data.py): crops, NTU-25 skeletons, the .npz cache.

One tiny clips dataset (4 action clips of 4 frames at 160x120, three identities, one per split) is generated
once; the cache is prepared from it with 48x48 crops.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.synthesis.action_data import ActionData, frame_indices, load, prepare
from hcgym.synthesis.motion.skeleton import NTU_JOINTS

SIZE = 48
SPINE = NTU_JOINTS.index("spine_mid")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    from hcgym.synthesis.dataset import GenerateConfig, generate
    from hcgym.synthesis.dataset.config import ClipSettings

    out = tmp_path_factory.mktemp("actclips") / "clips"
    settings = ClipSettings(labels="actions", seconds=0.8, fps=5.0, identities=3, splits=(1.0, 1.0, 1.0))
    generate(GenerateConfig(out=out, n=4, seed=5, mode="clips", size=(160, 120), shard_size=4, clips=settings),
             progress=False)
    return out


@pytest.fixture(scope="module")
def index(clips) -> dict:
    return json.loads((clips / "index.json").read_text())


@pytest.fixture(scope="module")
def cache(clips) -> Path:
    return prepare(clips, clips.parent / "cache" / "actions.npz", size=SIZE, progress=False)


@pytest.fixture(scope="module")
def data(cache) -> dict:
    return load(cache)


def docs(clips: Path, index: dict) -> list[dict]:
    return [json.loads((clips / e["annotation"]).read_text()) for e in index["clips"]]


def test_shapes_dtypes_and_the_index(data, index):
    n, t = len(index["clips"]), index["frames"]
    assert (n, t) == (4, 4)
    for key, shape, dtype in (("rgb", (n, t, SIZE, SIZE, 3), np.uint8), ("crop_box", (n, 4), np.float32),
                              ("skeleton_truth", (n, t, 25, 3), np.float32),
                              ("skeleton_truth_px", (n, t, 25, 3), np.float32),
                              ("skeleton_mediapipe", (n, t, 25, 3), np.float32),
                              ("skeleton_mediapipe_px", (n, t, 25, 2), np.float32),
                              ("mediapipe_visibility", (n, t, 25), np.float32), ("mediapipe_found", (n, t), bool),
                              ("norm_truth", (n, 4), np.float32), ("norm_mediapipe", (n, 4), np.float32),
                              ("label", (n,), np.int64), ("identity", (n,), np.int64)):
        assert data[key].shape == shape and data[key].dtype == dtype, key
    assert list(data["labels"]) == index["label_names"] and len(data["labels"]) == 24
    assert list(data["label"]) == [e["label_id"] for e in index["clips"]]
    assert [data["labels"][k] for k in data["label"]] == [e["label"] for e in index["clips"]]
    assert list(data["split"]) == [e["split"] for e in index["clips"]]
    assert list(data["identity"]) == [e["identity_id"] for e in index["clips"]]
    assert list(data["clip"]) == [e["video"] for e in index["clips"]]
    meta = data["metadata"]
    assert meta["dataset"]["seed"] == 5 and meta["dataset"]["clips"]["labels"] == "actions"
    assert meta["clips"]["frames"] == 4 and meta["prepare"]["size"] == SIZE and meta["prepare"]["frames"] == [0, 1, 2, 3]
    assert data["rgb"].std() > 10


def test_no_identity_in_two_splits(data):
    split_of: dict[int, str] = {}
    for ident, split in zip(data["identity"], data["split"]):
        assert split_of.setdefault(int(ident), str(split)) == str(split)
    assert set(data["split"]) <= {"train", "val", "test"}


def test_the_crop_holds_the_person(clips, index, data):
    """A square box around every frame's person box; the crop is the frame cut there (black outside) and
    resized; the ground-truth joints seen in the image land inside the crop."""
    import cv2

    from hcgym.video import read_video

    for i, (e, doc) in enumerate(zip(index["clips"], docs(clips, index))):
        x0, y0, x1, y1 = (int(v) for v in data["crop_box"][i])
        assert x1 - x0 == y1 - y0
        for rec in doc["per_frame"]:
            bx0, by0, bx1, by1 = rec["bbox"]
            assert x0 <= bx0 and y0 <= by0 and bx1 <= x1 and by1 <= y1
        frames = read_video(clips / e["video"])
        pad = max(0, -x0, -y0, x1 - frames.shape[2], y1 - frames.shape[1])
        padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        for k in range(len(frames)):
            want = cv2.resize(padded[k, y0 + pad:y1 + pad, x0 + pad:x1 + pad], (SIZE, SIZE),
                              interpolation=cv2.INTER_AREA)
            assert np.array_equal(data["rgb"][i, k], want)
        px = data["skeleton_truth_px"][i]
        seen = px[..., 2] > 0
        assert seen.sum() > 50
        uv = px[..., :2][seen]
        assert np.all((uv >= 0) & (uv <= SIZE))
        sk = np.asarray([r["skeleton"] for r in doc["per_frame"]])[..., :2][seen]
        assert np.allclose(np.array([x0, y0]) + uv * (x1 - x0) / SIZE, sk, atol=1e-3)


def test_truth_skeletons_are_normalised_camera_joints(clips, index, data):
    """Spine joint at the origin in frame 0, unit mean torso length; undoing the normalisation gives camera-frame
    joints that project onto the clip's image skeleton."""
    torso = (NTU_JOINTS.index("spine_base"), NTU_JOINTS.index("spine_shoulder"))
    for i, doc in enumerate(docs(clips, index)):
        s = data["skeleton_truth"][i].astype(np.float64)
        assert np.allclose(s[0, SPINE], 0.0, atol=1e-6)
        assert np.linalg.norm(s[:, torso[1]] - s[:, torso[0]], axis=-1).mean() == pytest.approx(1.0, abs=1e-5)
        norm = data["norm_truth"][i].astype(np.float64)
        cam = s * norm[3] + norm[:3]
        c = doc["camera"]
        assert np.all(cam[..., 2] > 1.0) and 0.3 < norm[3] < 0.8  # metres
        uv = cam[..., :2] / cam[..., 2:] * [c["fx"], c["fy"]] + [c["cx"], c["cy"]]
        sk = np.asarray([r["skeleton"] for r in doc["per_frame"]])
        seen = sk[..., 2] > 0
        assert np.allclose(uv[seen], sk[..., :2][seen], atol=0.05)


def test_mediapipe_skeletons_near_the_truth(data):
    found = data["mediapipe_found"]
    assert found.mean() >= 0.5
    assert not data["skeleton_mediapipe"][~found].any() and not data["skeleton_mediapipe_px"][~found].any()
    for i in range(len(found)):
        if found[i].any():
            first = int(np.flatnonzero(found[i])[0])
            assert np.allclose(data["skeleton_mediapipe"][i, first, SPINE], 0.0, atol=1e-6)
    err = np.linalg.norm(data["skeleton_mediapipe"] - data["skeleton_truth"], axis=-1)[found]  # (F, 25) torso lengths
    assert np.median(err) < 0.3 and (np.median(err, axis=1) < 0.25).any()
    px = np.linalg.norm(data["skeleton_mediapipe_px"] - data["skeleton_truth_px"][..., :2], axis=-1)[found]
    assert np.median(px) < 0.04 * SIZE
    vis = data["mediapipe_visibility"][found]
    assert vis.min() >= 0 and vis.max() <= 1 and vis.mean() > 0.3


def test_the_same_input_gives_the_same_bytes(clips, cache, tmp_path):
    again = prepare(clips, tmp_path / "again.npz", size=SIZE, progress=False, workers=2)
    assert again.read_bytes() == cache.read_bytes()


def test_fewer_frames_and_truth_only(clips, data, tmp_path):
    out = prepare(clips, tmp_path / "two.npz", size=SIZE, frames=2, skeleton_source=("truth",), progress=False)
    two = load(out)
    sel = frame_indices(4, 2)
    assert list(sel) == [0, 3] and two["metadata"]["prepare"]["frames"] == [0, 3]
    assert two["rgb"].shape == (4, 2, SIZE, SIZE, 3) and "skeleton_mediapipe" not in two
    assert "mediapipe" not in two["metadata"] and "mediapipe" in data["metadata"]
    cam_all = data["skeleton_truth"] * data["norm_truth"][:, None, None, 3:] + data["norm_truth"][:, None, None, :3]
    cam_two = two["skeleton_truth"] * two["norm_truth"][:, None, None, 3:] + two["norm_truth"][:, None, None, :3]
    assert np.allclose(cam_two, cam_all[:, sel], atol=1e-4)


def test_model_inputs(cache, data, one_torch_thread):
    import torch

    from hcgym.perception.action.gcn import GCNConfig, build_gcn
    from hcgym.perception.action.x3d import X3DConfig, build_x3d

    d = ActionData.load(cache)
    assert len(d) == 4 and d.frames == 4 and d.label_names == tuple(data["labels"])
    train = d.select("train")
    assert list(train) == list(np.flatnonzero(data["split"] == "train"))
    assert np.array_equal(d.y("train"), data["label"][train])
    x = d.x3d(frames=3)
    assert x.shape == (4, 3, 3, SIZE, SIZE) and x.dtype == np.float32 and x.flags.c_contiguous
    raw = d.x3d(frames=3, normalised=False)
    assert raw.min() >= 0 and raw.max() <= 1
    assert np.allclose(raw[1, :, 2], data["rgb"][1, 3].transpose(2, 0, 1) / 255.0)
    assert np.allclose(x, (raw - 0.45) / 0.225, atol=1e-5)
    s = d.gcn([0, 2], source="mediapipe")
    assert s.shape == (2, 3, 4, 25, 1) and s.dtype == np.float32
    light = ActionData.load(cache, skip=("rgb",))  # what a skeleton model needs, without the video
    assert "rgb" not in light.arrays and light.frames == 4
    assert np.array_equal(light.gcn([0, 2], source="mediapipe"), s)
    assert np.array_equal(s[1, :, :, :, 0], data["skeleton_mediapipe"][2].transpose(2, 0, 1))
    x3d = build_x3d(X3DConfig(num_classes=24, frames=3, size=SIZE, temporal_padding=True)).eval()
    gcn = build_gcn(GCNConfig(num_classes=24, channels=(8, 8), strides=(1, 1), temporal_padding=True)).eval()
    with torch.no_grad():
        assert x3d(torch.from_numpy(x)).shape == (4, 24)
        assert gcn(torch.from_numpy(d.gcn("train"))).shape == (len(train), 24)
    with pytest.raises(SpecError, match="which"):
        d.select("holdout")
    with pytest.raises(SpecError, match="frames"):
        d.x3d(frames=5)
    with pytest.raises(SpecError, match="source"):
        d.gcn(source="kinect")


@pytest.mark.parametrize("case, field", [
    ("missing", "clips_dir"), ("not_clips", "clips_dir"), ("size_zero", "size"), ("size_text", "size"),
    ("frames", "frames"), ("source", "skeleton_source"), ("suffix", "out_file"), ("workers", "workers"),
])
def test_bad_input_raises_before_writing(clips, tmp_path, case, field):
    other = tmp_path / "other"
    other.mkdir()
    (other / "index.json").write_text(json.dumps({"format": "hcgym-dataset-1"}))
    out = tmp_path / "new" / "out.npz"
    kwargs: dict = {"clips_dir": clips, "out_file": out, "size": SIZE, "progress": False}
    kwargs.update({"missing": {"clips_dir": tmp_path / "nowhere"}, "not_clips": {"clips_dir": other},
                   "size_zero": {"size": 0}, "size_text": {"size": "112"}, "frames": {"frames": 5},
                   "source": {"skeleton_source": ("truth", "kinect")}, "suffix": {"out_file": tmp_path / "new" / "o.h5"},
                   "workers": {"workers": 0}}[case])
    with pytest.raises(SpecError) as err:
        prepare(**kwargs)
    assert err.value.field == field
    assert not (tmp_path / "new").exists()


def test_load_refuses_what_is_not_a_cache(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(SpecError, match="not an action data cache"):
        load(tmp_path / "other.npz")
