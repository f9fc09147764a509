"""``hcgym generate --mode clips``: labelled video clips of one moving person (synthesis/dataset/clips.py).

Tiny datasets (64x64, 0.4-s clips at 5 fps, a pool of 2 identities) rendered with the embedded backend's
OpenGL renderer. One uninterrupted run is the reference: a run with 2 workers, a run on a local Ray and a
run killed with SIGKILL after its first shard and resumed must all give the same bytes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hcgym.scripts.cli import main

#: The reference dataset, as ``hcgym generate`` arguments: 4 action clips in 2 shards.
SMALL = ["--mode", "clips", "--labels", "actions", "--count", "4", "--seed", "5", "--size", "64x64",
         "--shard-size", "2", "--identities", "2", "--splits", "0.5,0.5,0", "--clip-seconds", "0.4", "--fps", "5",
         "--quiet"]


def run_cli(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 1


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_tree(a: Path, b: Path) -> None:
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb), set(ta) ^ set(tb)
    differ = [k for k in ta if ta[k] != tb[k]]
    assert not differ, f"files differ: {differ[:10]}"


def config(out: Path, **changes):
    from hcgym.synthesis.dataset import GenerateConfig
    from hcgym.synthesis.dataset.config import ClipSettings

    clips = changes.pop("clips", ClipSettings(labels="actions", seconds=0.4, fps=5.0, identities=2,
                                              splits=(0.5, 0.5, 0.0)))
    kw = dict(out=out, n=4, seed=5, mode="clips", size=(64, 64), shard_size=2, clips=clips)
    kw.update(changes)
    return GenerateConfig(**kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clips") / "reference"
    assert run_cli(["generate", *SMALL, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def index(reference) -> dict:
    return json.loads((reference / "index.json").read_text())


# ================================================================ format
def test_layout_index_and_summary(reference, index):
    from hcgym.synthesis.dataset.clips import label_names

    names = {p.name for p in reference.iterdir()}
    assert names == {"clips", "shards", "manifest.json", "index.json", "summary.json", "preview.png"}
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["complete"] and manifest["finished"] == [0, 1]
    assert index["format"] == "hcgym-clips-1" and index["labels"] == "actions"
    assert index["label_names"] == list(label_names("actions")) and "idle" not in index["label_names"]
    assert len(index["label_names"]) == 24
    assert [c["clip"] for c in index["clips"]] == ["000000", "000001", "000002", "000003"]
    assert len({c["label"] for c in index["clips"]}) == 4  # the first clips of a block have distinct labels
    files = sorted(str(p.relative_to(reference)) for p in (reference / "clips").rglob("*") if p.is_file())
    expected = sorted(f for c in index["clips"] for f in (c["video"], c["annotation"]))
    assert files == expected
    for c in index["clips"]:
        assert c["video"] == f"clips/{c['split']}/{c['label']}/{c['clip']}.mp4"
        assert index["label_names"][c["label_id"]] == c["label"]
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["clips"] == 4 and summary["frames"] == 8 and sum(summary["per_label"].values()) == 4
    assert sum(s["clips"] for s in summary["splits"].values()) == 4
    assert summary["splits"]["train"]["identities"] == summary["splits"]["val"]["identities"] == 1
    assert not [p for p in reference.rglob(".*")], "temporary files left behind"


def test_identities_never_cross_splits(index):
    split_of = {i["identity_id"]: i["split"] for i in index["identities"]}
    assert sorted(split_of.values()) == ["train", "val"]
    for c in index["clips"]:
        assert c["split"] == split_of[c["identity_id"]]
    assert {c["split"] for c in index["clips"]} == {"train", "val"}


def test_videos_and_per_frame_truth(reference, index):
    from hcgym.geometry import project
    from hcgym.video import read_video

    for c in index["clips"]:
        frames = read_video(reference / c["video"])
        assert frames.shape == (2, 64, 64, 3) and frames.std() > 5
        doc = json.loads((reference / c["annotation"]).read_text())
        assert doc["label"] == c["label"] and doc["split"] == c["split"] and doc["identity"] == c["identity"]
        assert doc["fps"] == 5.0 and doc["frames"] == 2 and doc["world"]["humans"][0]["avatar"]
        assert doc["timeline"]["behaviour"][0]["action"] == c["label"]
        cam = doc["camera"]
        k = np.array([[cam["fx"], 0, cam["cx"]], [0, cam["fy"], cam["cy"]], [0, 0, 1]])
        assert cam["cx"] == 32.0 and 2.5 <= cam["distance"] <= 5.0 and abs(cam["yaw_from_front"]) <= 90.0
        for k_, rec in enumerate(doc["per_frame"]):
            assert rec["frame"] == k_ and rec["time"] == pytest.approx(doc["start_time"] + k_ / 5.0)
            assert rec["label"] in (c["label"], "idle")
            x0, y0, x1, y1 = rec["bbox"]
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 and rec["pixels"] > 20
            sk, sk3 = np.asarray(rec["skeleton"]), np.asarray(rec["skeleton_3d"])
            assert sk.shape == (25, 3) and sk3.shape == (25, 3)
            uv, z = project(sk3, np.asarray(cam["world_to_camera"]), k)
            lab = sk[:, 2] > 0
            assert lab.sum() > 10 and np.all(z[lab] > 0)
            assert np.allclose(uv[lab], sk[lab, :2], atol=0.05)
        assert any(rec["label"] == c["label"] for rec in doc["per_frame"])


def test_clip_world_renders_again_the_same(reference, index):
    """The world stored with a clip is a complete world spec: rendering it gives the clip's frames."""
    from hcgym.envs.backends import make_backend
    from hcgym.video import read_video
    from hcgym.worlds.spec import WorldSpec

    c = index["clips"][0]
    doc = json.loads((reference / c["annotation"]).read_text())
    world = WorldSpec.from_dict(doc["world"], "again")
    frames = read_video(reference / c["video"])
    with make_backend("embedded", world=world) as sim:
        sim.load(world, seed=doc["world_seed"])
        sim.set_time(doc["start_time"])
        frame = sim.render()
    assert np.abs(frame.rgb.astype(int) - frames[0].astype(int)).mean() < 4  # MPEG-4 is lossy
    bbox = frame.humans[0].to_dict()["bbox"]
    assert bbox == doc["per_frame"][0]["bbox"]


def test_preview(reference):
    from PIL import Image

    with Image.open(reference / "preview.png") as im:
        assert im.mode == "RGB" and im.size[0] > 200 and np.asarray(im).std() > 10


# ================================================================ expressions and gestures
def test_expression_and_gesture_clips(tmp_path):
    from hcgym.synthesis.dataset import generate
    from hcgym.synthesis.dataset.config import ClipSettings
    from hcgym.synthesis.expressions import EXPRESSIONS
    from hcgym.synthesis.motion.hands import GESTURES

    for labels, names in (("expressions", tuple(EXPRESSIONS)), ("gestures", GESTURES)):
        out = tmp_path / labels
        generate(config(out, n=1, clips=ClipSettings(labels=labels, seconds=0.4, fps=5.0, identities=2)),
                 progress=False)
        index = json.loads((out / "index.json").read_text())
        assert index["label_names"] == list(names) and len(index["clips"]) == 1
        c = index["clips"][0]
        doc = json.loads((out / c["annotation"]).read_text())
        assert doc["label"] == c["label"] and doc["labels"] == labels
        last = doc["per_frame"][-1]
        assert last["label"] == c["label"], [r["label"] for r in doc["per_frame"]]
        if labels == "expressions":
            assert 0.6 <= doc["camera"]["distance"] <= 1.2
            track = doc["timeline"]["expression"][0]
            assert track["expression"] == c["label"] and 0.5 <= track["intensity"] <= 1.0
            assert np.asarray(last["face68"]).shape == (68, 3) and len(last["facial_actions"]) == 52
            assert last["face_box"] is not None and last["expression"] == c["label"]
        else:
            assert 0.6 <= doc["camera"]["distance"] <= 1.0 and doc["hand"] in ("left", "right")
            assert doc["timeline"]["gesture"][0]["hand"] == doc["hand"]
            assert doc["timeline"]["behaviour"][0] == {**doc["timeline"]["behaviour"][0], "action": "gesture_raise",
                                                      "hand": doc["hand"]}
            hands = np.asarray(last["hand_keypoints"])
            assert hands.shape == (2, 21, 3) and last["gestures"][doc["hand"]] == c["label"]
            shown = hands[0 if doc["hand"] == "left" else 1]
            assert (shown[:, 2] > 0).sum() >= 15  # the hand is in view
            assert np.all((shown[:, :2] >= 0) & (shown[:, :2] < 64))


# ================================================================ determinism and resuming
@pytest.mark.slow
def test_two_workers_give_the_same_bytes(reference, tmp_path):
    from hcgym.synthesis.dataset import generate

    generate(config(tmp_path / "two", workers=2), progress=False)
    assert_same_tree(reference, tmp_path / "two")


@pytest.mark.slow
def test_ray_engine_gives_the_same_dataset(reference, tmp_path):
    from hcgym.synthesis.dataset import generate

    generate(config(tmp_path / "ray", workers=2, engine="ray"), progress=False)
    assert_same_tree(reference, tmp_path / "ray")


@pytest.mark.slow
def test_sigkill_after_a_shard_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hcgym.scripts.cli", "generate", *SMALL, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                finished = json.loads((out / "manifest.json").read_text())["finished"]
            except (OSError, ValueError):
                finished = []
            if finished:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finished"] == [0] and not manifest["complete"]
    assert not (out / "index.json").exists()
    assert run_cli(["generate", *SMALL, "--out", str(out)]) == 0
    assert_same_tree(reference, out)


def test_rerunning_a_complete_dataset_changes_nothing(reference):
    before = tree(reference)
    assert run_cli(["generate", *SMALL, "--out", str(reference)]) == 0
    assert tree(reference) == before


def test_resume_with_other_settings_is_refused(reference, capsys):
    before = tree(reference)
    args = [a if a != "actions" else "gestures" for a in SMALL]
    assert run_cli(["generate", *args, "--out", str(reference)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("hcgym generate: error: --out:") and "clips.labels: 'gestures' here, 'actions' there" in line
    assert tree(reference) == before


# ================================================================ bad input
@pytest.mark.parametrize("extra, message", [
    (["--labels", "dances"], "--labels: unknown value 'dances' (allowed: actions, expressions, gestures)"),
    (["--size", "65x64"], "--size: clips need an even width and height"),
    (["--fps", "0"], "--fps: expected a number in [1, 120]"),
    (["--clip-seconds", "-1"], "--clip-seconds: expected a number"),
    (["--identities", "0"], "--identities: expected a positive integer"),
    (["--backend", "webots"], "--backend:"),
])
def test_bad_input_gives_one_clear_error_and_writes_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert run_cli(["generate", "--mode", "clips", "--count", "2", "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hcgym generate: error: ") and message in err[0], err
    assert not out.exists()


# ================================================================ pieces
def test_identity_splits_follow_the_fractions_and_cover_every_split():
    from hcgym.synthesis.dataset.clips import identity_splits

    for n in (3, 7, 12, 50):
        s = identity_splits(0, n, (0.8, 0.1, 0.1))
        counts = {k: s.count(k) for k in ("train", "val", "test")}
        assert sum(counts.values()) == n and min(counts.values()) >= 1
        assert abs(counts["train"] - 0.8 * n) <= 1.5
    assert identity_splits(0, 12, (0.8, 0.1, 0.1)) != identity_splits(1, 12, (0.8, 0.1, 0.1))
    assert identity_splits(4, 5, (1, 0, 0)) == ["train"] * 5


def test_labels_are_balanced_in_blocks():
    from hcgym.synthesis.dataset.clips import _cycled

    for block in range(3):
        assert sorted(_cycled(9, 0x1AB, block * 7 + k, 7) for k in range(7)) == list(range(7))
    assert [_cycled(9, 0x1AB, k, 7) for k in range(7)] != [_cycled(9, 0x1AB, k, 7) for k in range(7, 14)]
