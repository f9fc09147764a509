"""The ``hcgym`` command line (scripts/cli.py, scripts/_args.py, scripts/render.py), run in-process.

Rendering uses the embedded (PyBullet TinyRenderer) backend and the avatar cache; the three renders
of ``active_face_room`` are shared by the tests through a module fixture.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hcgym.scripts._args import floats, seed_range
from hcgym.scripts.cli import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[1]
FILES = ("rgb.png", "depth.npy", "segmentation.png", "ground_truth.json")
#: Cameras 1.5 m and 2.5 m in front of the person (who stands at the origin facing -y), at 1.6 m, looking at +y.
NEAR_POSE, FAR_POSE = "0,-1.5,1.6,90,0", "0,-2.5,1.6,90,0"


def run_cli(args: list[str]) -> int:
    """Exit code of ``hcgym ARGS`` (argparse errors exit through SystemExit)."""
    try:
        return main(args)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 1


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no message on stderr"
    return err[-1]


def read_render(out: Path) -> dict:
    return {
        "rgb": np.asarray(Image.open(out / "rgb.png")),
        "rgb_mode": Image.open(out / "rgb.png").mode,
        "depth": np.load(out / "depth.npy"),
        "seg": np.asarray(Image.open(out / "segmentation.png")),
        "seg_mode": Image.open(out / "segmentation.png").mode,
        "truth": json.loads((out / "ground_truth.json").read_text()),
    }


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    out = {}
    for name, extra in (("default", []), ("near", ["--pose", NEAR_POSE]), ("far", ["--pose", FAR_POSE])):
        code = main(["render", "active_face_room", "--seed", "0", "--out", str(root / name), *extra])
        assert code == 0
        out[name] = read_render(root / name)
        out[name]["dir"] = root / name
    return out


# ===================================================================== render
def test_render_writes_all_files(renders):
    out = renders["default"]["dir"]
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    # No temporary files are left behind by the atomic writers.
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_render_images(renders):
    r = renders["default"]
    assert r["rgb_mode"] == "RGB" and r["rgb"].shape == (300, 400, 3) and r["rgb"].dtype == np.uint8
    assert r["rgb"].std() > 5, "not a blank image"
    depth = r["depth"]
    assert depth.dtype == np.float32 and depth.shape == (300, 400)
    seg = r["seg"]
    assert seg.shape[:2] == (300, 400)
    assert r["seg_mode"].startswith("I")  # 16-bit instance ids, not colours
    assert set(np.unique(seg)) == {0, 1}  # background and human 0
    person = seg.reshape(300, 400, -1).any(axis=-1)
    human = r["truth"]["humans"][0]
    assert person.sum() == human["pixels"] > 500
    assert np.isfinite(depth[person]).all()
    # The person is about as far as the camera-to-eyes distance.
    assert abs(float(np.median(depth[person])) - human["distance"]) < 0.5
    assert (depth[np.isfinite(depth)] > 0).all()
    # The person's pixels lie inside its box.
    x0, y0, x1, y1 = human["bbox"]
    rows, cols = np.nonzero(person)
    assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x0, y0, x1, y1)


def test_render_ground_truth(renders):
    truth = renders["default"]["truth"]
    assert truth["camera"] == "front"
    assert truth["intrinsics"]["width"] == 400 and truth["intrinsics"]["height"] == 300
    assert len(truth["humans"]) == 1
    h = truth["humans"][0]
    assert h["id"] == 0
    for key in ("bbox", "face_box", "keypoints", "distance"):
        assert key in h, key
    assert len(h["bbox"]) == 4 and len(h["face_box"]) == 4
    assert 0 <= h["bbox"][0] < h["bbox"][2] <= 400 and 0 <= h["bbox"][1] < h["bbox"][3] <= 300
    fx0, fy0, fx1, fy1 = h["face_box"]
    assert fx0 < fx1 and fy0 < fy1
    kp = np.asarray(h["keypoints"])
    assert kp.shape == (17, 3)
    assert set(kp[:, 2]) <= {0.0, 1.0, 2.0}
    # The face of a person facing the camera is visible, and its keypoints lie in the face box.
    nose_eyes = kp[:3]
    assert (nose_eyes[:, 2] == 2).all()
    assert ((nose_eyes[:, 0] > fx0) & (nose_eyes[:, 0] < fx1) & (nose_eyes[:, 1] > fy0)
            & (nose_eyes[:, 1] < fy1)).all()
    # The face is above the hips in the image (y down).
    assert kp[0, 1] < kp[11, 1] and kp[0, 1] < kp[12, 1]
    # The drone camera (y = -1.82) sees the person (at the origin) from 1.5-2.2 m.
    assert 1.5 < h["distance"] < 2.2
    assert abs(h["face_yaw"]) < 10


def _eyes_and_camera(truth: dict) -> tuple[np.ndarray, np.ndarray]:
    eyes = np.asarray(truth["humans"][0]["face_landmarks_3d"])[:2].mean(axis=0)
    w2c = np.asarray(truth["world_to_camera"])
    return eyes, -w2c[:3, :3].T @ w2c[:3, 3]


def test_pose_moves_the_camera(renders):
    near, far, default = renders["near"], renders["far"], renders["default"]
    _, cam = _eyes_and_camera(near["truth"])
    assert cam == pytest.approx([0.0, -1.5, 1.6], abs=1e-6)
    _, cam_far = _eyes_and_camera(far["truth"])
    assert cam_far == pytest.approx([0.0, -2.5, 1.6], abs=1e-6)
    assert not np.array_equal(near["rgb"], default["rgb"])
    assert not np.array_equal(near["rgb"], far["rgb"])


def test_pose_changes_the_reported_distance(renders):
    near, far = renders["near"]["truth"], renders["far"]["truth"]
    d_near, d_far = near["humans"][0]["distance"], far["humans"][0]["distance"]
    # The distance is to the eyes, which are a little in front of (and above) the feet position.
    eyes, cam = _eyes_and_camera(near)
    assert d_near == pytest.approx(float(np.linalg.norm(eyes - cam)), abs=2e-3)
    assert -0.25 < eyes[1] < 0.05 and 1.4 < eyes[2] < 2.0
    assert abs(d_near - 1.5) < 0.25
    # One metre further back: about one metre further away.
    assert d_far - d_near == pytest.approx(1.0, abs=0.05)


def test_pose_looks_at_the_face(renders):
    near, far = renders["near"]["truth"]["humans"][0], renders["far"]["truth"]["humans"][0]
    for h in (near, far):
        x0, y0, x1, y1 = h["face_box"]
        assert abs((x0 + x1) / 2 - 200) < 30, "the face is centred horizontally"
        assert 0 <= y0 < y1 <= 300 and 0 <= x0 < x1 <= 400
        assert abs(h["face_yaw"]) < 10
    # Closer means a bigger face: size scales about inversely with the distance.
    w_near = near["face_box"][2] - near["face_box"][0]
    w_far = far["face_box"][2] - far["face_box"][0]
    assert w_near / w_far == pytest.approx(far["distance"] / near["distance"], rel=0.1)
    assert renders["near"]["truth"]["humans"][0]["pixels"] > renders["far"]["truth"]["humans"][0]["pixels"]


def test_render_is_deterministic(renders, tmp_path):
    assert main(["render", "active_face_room", "--seed", "0", "--out", str(tmp_path / "again")]) == 0
    again = read_render(tmp_path / "again")
    first = renders["default"]
    assert np.array_equal(again["rgb"], first["rgb"])
    assert np.array_equal(again["depth"], first["depth"])
    assert again["truth"] == first["truth"]


# ===================================================================== bad arguments
@pytest.mark.parametrize("args,argument", [
    (["render", "active_face_room", "--pose", "1,2"], "--pose"),
    (["render", "active_face_room", "--pose", "1,2,3,4,x"], "--pose"),
    (["render", "active_face_room", "--seed", "zero"], "--seed"),
    (["avatars", "--seeds", "5-1"], "--seeds"),
    (["avatars", "--seeds", "a-b"], "--seeds"),
], ids=["pose-short", "pose-not-number", "seed", "seeds-reversed", "seeds-letters"])
def test_bad_arguments_exit_2(tmp_path, capsys, args, argument):
    out = tmp_path / "out"
    assert run_cli([*args, "--out", str(out)]) == 2
    line = error_line(capsys)
    assert line.startswith(f"hcgym {args[0]}: error: argument {argument}"), line
    assert not out.exists()


@pytest.mark.parametrize("pose", ["nan,-1.5,1.6,90,0", "0,-1.5,inf,90,0"])
def test_non_finite_pose_exits_2(tmp_path, capsys, pose):
    out = tmp_path / "out"
    assert run_cli(["render", "active_face_room", "--pose", pose, "--out", str(out)]) == 2
    assert "--pose" in error_line(capsys)
    assert not out.exists()


def test_negative_seed_exits_2(tmp_path, capsys):
    world = tmp_path / "random.yaml"
    world.write_text("room: {size: [10, 10]}\nhumans: [{avatar: random, position: [0, 0]}]\n"
                     "robots: [{position: [0, -2, 1.6], yaw: 90, cameras: [{name: c}]}]\n")
    out = tmp_path / "out"
    assert run_cli(["render", str(world), "--seed", "-1", "--out", str(out)]) == 2
    assert "seed" in error_line(capsys)
    assert not out.exists()


def test_unknown_world_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(["render", "no_such_world", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("hcgym render: error: ")
    assert "no_such_world" in err and "active_face_room" in err
    assert not out.exists()


def test_unknown_camera_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(["render", "active_face_room", "--camera", "rear", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("hcgym render: error: ")
    assert "camera" in err and "'rear'" in err and "drone/front" in err
    assert not out.exists()


def test_bad_world_file_exits_2(tmp_path, capsys):
    world = tmp_path / "bad.yaml"
    world.write_text("room: {size: [10, 10]}\nhumans: [{position: [0, 0], pose: jump}]\n")
    assert run_cli(["render", str(world), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(world) in err and "humans[0].pose" in err and "stand" in err
    assert not (tmp_path / "out").exists()


def test_no_command_prints_help(capsys):
    assert run_cli([]) == 2
    assert "usage: hcgym" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys):
    assert run_cli(["fly"]) == 2
    assert "invalid choice" in error_line(capsys)


# ===================================================================== argument parsers
@pytest.mark.parametrize("text,seeds", [
    ("1-8", [1, 2, 3, 4, 5, 6, 7, 8]),
    ("3,5,9", [3, 5, 9]),
    ("1-3,7", [1, 2, 3, 7]),
    ("0", [0]),
    ("4-4", [4]),
    ("10-12,0-1", [10, 11, 12, 0, 1]),
    (" 2 , 6 ", [2, 6]),
])
def test_seed_range(text, seeds):
    assert seed_range(text) == seeds


@pytest.mark.parametrize("text", ["5-1", "-1", "-3-2", "a", "", "1-", "1,,2", "1.5", "1--3", "2-x"])
def test_seed_range_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        seed_range(text)
    assert repr(text) in str(info.value)
    assert "1-8" in str(info.value)  # the message shows what is expected


def test_floats_parser():
    parse = floats(5, "--pose x,y,z,yaw,pitch")
    assert parse("0,-1.5,1.6,90,0") == (0.0, -1.5, 1.6, 90.0, 0.0)
    for bad in ("1,2", "1,2,3,4,5,6", "1,2,3,4,a", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="--pose x,y,z,yaw,pitch as 5"):
            parse(bad)


def test_parser_lists_every_command():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {c.replace("_", "-") for c in COMMANDS}
    args = parser.parse_args(["render", "crowd_street", "--pose", NEAR_POSE])
    assert args.pose == (0.0, -1.5, 1.6, 90.0, 0.0) and args.seed == 0 and args.camera is None
    assert parser.parse_args(["avatars", "--seeds", "2-4"]).seeds == [2, 3, 4]


# ===================================================================== console script
def test_console_script_help(tmp_path):
    script = Path(sys.executable).parent / "hcgym"
    assert script.is_file(), f"console script not installed next to {sys.executable}"
    proc = subprocess.run([str(script), "--help"], cwd=tmp_path, env=dict(os.environ), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: hcgym")
    for command in ("demo", "avatars", "render", "export-webots"):
        assert command in proc.stdout, command
    assert list(tmp_path.iterdir()) == []


# ===================================================================== quiet third-party output
def _hcgym(args: list[str], cwd: Path) -> str:
    script = Path(sys.executable).parent / "hcgym"
    proc = subprocess.run([str(script), *args], cwd=cwd, env=dict(os.environ), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return (proc.stdout + proc.stderr).decode(errors="replace")


def test_cli_output_is_quiet_unless_verbose(tmp_path):
    from hcgym.logs import strip_noise

    quiet = _hcgym(["render", "active_face_room", "--out", str(tmp_path / "q")], tmp_path)
    assert quiet.startswith("wrote ") and len(quiet.splitlines()) == 1, quiet
    loud = _hcgym(["--verbose", "render", "active_face_room", "--out", str(tmp_path / "v")], tmp_path)
    assert "pybullet build time" in loud and "wrote " in loud
    assert strip_noise(loud.encode()).decode().strip() == quiet.strip().replace("/q/", "/v/")


_MEDIAPIPE_RUN = """
import sys
import numpy as np
from hcgym.logs import quiet_output
with quiet_output(verbose=sys.argv[1] == "verbose"):
    import hcgym.perception as hp
    image = np.zeros((120, 160, 3), np.uint8)
    print("faces", len(hp.make("face/mediapipe-full")(image)), len(hp.make("face/mediapipe-mesh")(image)))
"""


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_mediapipe_logs_only_with_verbose(tmp_path, mode):
    """The mechanism behind ``hcgym [--verbose]``, on MediaPipe (TF Lite, absl C++ logging to fd 2)."""
    proc = subprocess.run([sys.executable, "-c", _MEDIAPIPE_RUN, mode], cwd=tmp_path, capture_output=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    if mode == "quiet":
        assert out == "faces 0 0\n", out
    else:
        assert "INFO: Created TensorFlow Lite XNNPACK delegate" in out and "faces 0 0" in out


def test_noise_filter_keeps_everything_else():
    from hcgym.logs import strip_noise

    noise = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
             b"W0000 00:00:1796406551.815058   14540 inference_feedback_manager.cc:114] Feedback manager ...\n"
             b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
             b"libpng warning: iCCP: known incorrect sRGB profile\n"
             b"2026-12-04 17:39:00.123456789 [W:onnxruntime:, graph.cc:4285 CleanUnusedInitializers] Removing\n"
             b"Warp 1.19.0 initialized:\n   CUDA Toolkit 13.4\n   Devices:\n     \"cpu\"      : \"CPU\"\n"
             b"Module anny.skinning.warp_skinning 1fd9882 load on device 'cpu' took 20.43 ms  (cached)\n"
             b"Using cpu device\n")
    kept = b"step 1/3\r step 2/3\r[evaluate] wrote out/table.md\nWarning: a user-facing hcgym line\n"
    bar = b"setup1 static:   0%|          | 0/10 [00:00<?, ?cell/s]"
    assert strip_noise(noise + kept) == kept
    assert strip_noise(bar + b"pybullet build time: Jan 29 2025 23:17:20\n" + kept) == bar + kept
