"""The synthetic dataset generator (synthesis/dataset/, scripts/generate.py).

Tiny datasets (160x120, 12 images in shards of 4, a pool of 6 identities) rendered with the
embedded backend on CPU. One uninterrupted run is the reference: a run with 2 workers, a run
on a local Ray and a run killed with SIGKILL and resumed must all give the same bytes.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hcgym.scripts.cli import main

#: The reference dataset, as ``hcgym generate`` arguments.
SMALL = ["--n", "12", "--seed", "3", "--size", "160x120", "--shard-size", "4", "--humans", "1,4",
         "--identities", "6", "--variants", "2", "--distance", "2,10", "--quiet"]
SPLITS = ("train", "val", "test")


def run_cli(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 1


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_tree(a: Path, b: Path) -> None:
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb), set(ta) ^ set(tb)
    differ = [k for k in ta if ta[k] != tb[k]]
    assert not differ, f"files differ: {differ[:10]}"


def config(out: Path, **changes):
    from hcgym.synthesis.dataset import GenerateConfig, SceneSettings

    scene = SceneSettings(humans=(1, 4), identities=6, variants=2, distance=(2.0, 10.0))
    kw = dict(out=out, n=12, seed=3, size=(160, 120), shard_size=4, scene=scene)
    kw.update(changes)
    return GenerateConfig(**kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "reference"
    assert run_cli(["generate", *SMALL, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def coco(reference):
    return {s: json.loads((reference / "annotations" / f"{s}.json").read_text()) for s in SPLITS}


def decode(ann) -> np.ndarray:
    from pycocotools import mask as mask_utils

    seg = ann["segmentation"]
    return mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)


# ================================================================ format
def test_layout_and_manifest(reference, coco):
    names = {p.name for p in reference.iterdir()}
    assert {"images", "annotations", "shards", "manifest.json", "summary.json", "histograms.png",
            "preview.png"} <= names
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["complete"] and manifest["finished"] == [0, 1, 2] and manifest["shards_total"] == 3
    ids = sorted(im["id"] for s in SPLITS for im in coco[s]["images"])
    assert ids == list(range(1, 13))
    assert sorted(p.name for p in (reference / "images").iterdir()) == [f"{i:08d}.jpg" for i in ids]
    assert len(coco["train"]["images"]) == 10 and len(coco["val"]["images"]) == 1
    for s in SPLITS:
        for im in coco[s]["images"]:
            with Image.open(reference / "images" / im["file_name"]) as pic:
                assert pic.size == (im["width"], im["height"]) == (160, 120) and pic.mode == "RGB"
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["images"] == 12 and summary["persons"] == sum(len(coco[s]["annotations"]) for s in SPLITS)
    assert summary["persons"] >= 12
    assert not [p for p in reference.rglob(".*")], "temporary files left behind"


def test_pycocotools_loads_and_self_evaluation_is_perfect(reference, coco_self_eval):
    from pycocotools.coco import COCO

    gt = COCO(str(reference / "annotations" / "train.json"))
    assert gt.getCatIds() == [1] and gt.loadCats(1)[0]["name"] == "person"
    assert coco_self_eval(gt.dataset) > 0


def test_boxes_and_areas_match_masks(coco):
    from pycocotools import mask as mask_utils

    for s in SPLITS:
        for a in coco[s]["annotations"]:
            rle = {"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"].encode()}
            assert mask_utils.toBbox(rle).tolist() == a["bbox"]
            assert int(mask_utils.area(rle)) == a["area"] > 0
            m = decode(a)
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            assert a["bbox"] == [cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]]
            assert a["iscrowd"] == 0 and a["category_id"] == 1


def test_visible_keypoints_lie_in_their_mask(coco):
    inside = total = 0
    for s in SPLITS:
        for a in coco[s]["annotations"]:
            m = decode(a)
            kp = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
            assert a["num_keypoints"] == int((kp[:, 2] > 0).sum())
            assert np.all(kp[kp[:, 2] == 0, :2] == 0)
            for u, v, vis in kp:
                if vis == 2:
                    total += 1
                    inside += bool(m[int(v), int(u)])
    assert total > 50
    assert inside / total >= 0.99


def test_masks_of_one_image_do_not_overlap(coco):
    for s in SPLITS:
        by_image: dict[int, list] = {}
        for a in coco[s]["annotations"]:
            by_image.setdefault(a["image_id"], []).append(decode(a))
        for masks in by_image.values():
            assert int(np.sum(masks, axis=0).max()) <= 1


def test_extra_fields_are_consistent(coco):
    from hcgym.geometry import project
    from hcgym.synthesis import AvatarSpec
    from hcgym.synthesis.builder import avatar_key

    data = coco["train"]
    images = {im["id"]: im for im in data["images"]}
    faces = 0
    for a in data["annotations"]:
        im = images[a["image_id"]]
        cam = im["camera"]
        k = np.array([[cam["fx"], 0, cam["cx"]], [0, cam["fy"], cam["cy"]], [0, 0, 1]])
        uv, z = project(np.asarray(a["keypoints_3d"]), np.asarray(cam["world_to_camera"]), k)
        kp = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
        lab = kp[:, 2] > 0
        assert np.all(z[lab] > 0)
        assert np.allclose(uv[lab], kp[lab, :2], atol=0.05)
        spec = AvatarSpec.from_dict(data["avatars"][a["avatar"]])
        assert avatar_key(spec) == a["avatar"] and spec.identity_key() == a["identity"]
        assert 0 <= a["identity_id"] < 6
        assert 0.0 <= a["occlusion"] <= 1.0
        if a["face_box"] is not None:
            faces += 1
            assert a["face_box"][2] > 0 and a["face_box"][3] > 0
    assert faces > 0
    assert math.isclose(images[data["annotations"][0]["image_id"]]["camera"]["cx"], 80.0)


def test_people_stand_on_the_ground_without_interpenetrating(coco):
    from hcgym.synthesis.dataset.sampling import FEET_LIFT

    for s in SPLITS:
        by_image: dict[int, list] = {}
        for a in coco[s]["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
            p = a["placement"]
            assert p["position"][2] == pytest.approx(FEET_LIFT)
            ankles = np.asarray(a["keypoints_3d"])[15:17, 2]
            assert np.all((ankles > 0.0) & (ankles < 0.25)), ankles
        for anns in by_image.values():
            assert len(anns) <= 4
            for i in range(len(anns)):
                for j in range(i + 1, len(anns)):
                    pi, pj = anns[i]["placement"], anns[j]["placement"]
                    d = math.dist(pi["position"][:2], pj["position"][:2])
                    assert d >= pi["radius"] + pj["radius"]


def test_report_files(reference):
    for name in ("histograms.png", "preview.png"):
        with Image.open(reference / name) as im:
            assert im.mode == "RGB" and im.size[0] > 200 and np.asarray(im).std() > 10


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
def test_sigkill_mid_shard_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hcgym.scripts.cli", "generate", *SMALL, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    finished: list[int] = []
    deadline = time.monotonic() + 240
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
    assert 1 <= len(manifest["finished"]) < 3 and not manifest["complete"]
    assert not (out / "annotations").exists()
    for p in (out / "images").glob("*.jpg"):  # whatever is there is a whole image
        with Image.open(p) as im:
            im.load()
    assert run_cli(["generate", *SMALL, "--out", str(out)]) == 0
    assert_same_tree(reference, out)


def test_rerunning_a_complete_dataset_changes_nothing(reference):
    before = tree(reference)
    assert run_cli(["generate", *SMALL, "--out", str(reference)]) == 0
    assert tree(reference) == before


def test_resume_with_other_settings_is_refused(reference, capsys):
    before = tree(reference)
    args = [a if a != "3" else "4" for a in SMALL]  # another seed
    assert run_cli(["generate", *args, "--out", str(reference)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("hcgym generate: error: --out:") and "seed: 4 here, 3 there" in line
    assert tree(reference) == before


# ================================================================ bad input
def _photo(path: Path, horizon: int = 40, size=(200, 150)) -> None:
    """A stand-in photo: sky above ``horizon``, textured ground below."""
    w, h = size
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.uint8)
    img[:horizon] = (150, 180, 220)
    img[horizon:] = np.clip(rng.normal(110, 20, (h - horizon, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "a_file").write_text("x")
    (tmp / "empty_bg").mkdir()
    (tmp / "empty_bg" / "notes.txt").write_text("no photos here")
    (tmp / "bad_side").mkdir()
    _photo(tmp / "bad_side" / "street.jpg")
    (tmp / "bad_side" / "street.json").write_text('{"horizon_row": 40, ')
    (tmp / "bad_key").mkdir()
    _photo(tmp / "bad_key" / "street.png")
    (tmp / "bad_key" / "street.json").write_text('{"horizon": 40}')
    return {
        "missing world": (["--world", str(tmp / "nope.yaml")], "world: file not found"),
        "negative n": (["--n", "-5"], "--n: expected a positive integer, got -5"),
        "zero n": (["--n", "0"], "--n: expected a positive integer"),
        "out under a file": (["--out", str(tmp / "a_file" / "data")], "is not a folder"),
        "out is a file": (["--out", str(tmp / "a_file")], "exists and is not a folder"),
        "unwritable out": (["--out", "/proc/hcgym-generate-test"], "cannot write in /proc"),
        "no photos": (["--backgrounds", str(tmp / "empty_bg")], "--backgrounds: no images"),
        "malformed sidecar": (["--backgrounds", str(tmp / "bad_side")], "street.json: sidecar: not valid JSON"),
        "unknown sidecar key": (["--backgrounds", str(tmp / "bad_key")], "street.json: horizon: unknown key"),
        "bad mode": (["--mode", "video"], "--mode: unknown value 'video'"),
        "too many humans": (["--humans", "1,9", "--identities", "4"], "--humans:"),
    }


@pytest.mark.parametrize("case", ["missing world", "negative n", "zero n", "out under a file", "out is a file",
                                  "unwritable out", "no photos", "malformed sidecar", "unknown sidecar key",
                                  "bad mode", "too many humans"])
def test_bad_input_gives_one_clear_error_and_writes_nothing(tmp_path, capsys, case):
    extra, message = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    args = ["generate", "--n", "4", "--size", "160x120", "--out", str(out), "--quiet", *extra]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("hcgym generate: error: ") and message in err[0], err[0]
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before, "something was written"


# ================================================================ backgrounds, faces, multiview
def test_blending_onto_photos(tmp_path):
    from hcgym.synthesis.dataset import generate

    bg = tmp_path / "photos"
    bg.mkdir()
    _photo(bg / "a.jpg", horizon=40)
    (bg / "a.json").write_text(json.dumps({"horizon_row": 40, "camera_height": 1.4, "hfov": 70}))
    _photo(bg / "b.png", horizon=75)  # no sidecar: the default camera (horizon through the centre)
    out = tmp_path / "blend"
    generate(config(out, n=8, backgrounds=bg), progress=False)
    data = {s: json.loads((out / "annotations" / f"{s}.json").read_text()) for s in SPLITS}
    photos = set()
    checked = 0
    for s in SPLITS:
        images = {im["id"]: im for im in data[s]["images"]}
        for im in images.values():
            photos.add(im["background"]["photo"])
            assert abs(im["camera"]["height"] - (1.4 if im["background"]["photo"] == "a.jpg" else 1.6)) < 1e-9
        for a in data[s]["annotations"]:
            im = images[a["image_id"]]
            cam = im["camera"]
            horizon = cam["cy"] + cam["fy"] * math.tan(math.radians(cam["pitch"]))
            kp = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
            for ankle in (15, 16):
                if kp[ankle, 2] > 0:  # feet stand on the photo's ground plane, below its horizon
                    assert kp[ankle, 1] > horizon
                    checked += 1
    assert photos == {"a.jpg", "b.png"} and checked > 0
    rgb = np.asarray(Image.open(out / "images" / "00000001.jpg"))
    assert rgb.shape == (120, 160, 3)  # the top rows show the photo's sky, not a rendered room
    assert np.abs(rgb[:10].astype(int) - (150, 180, 220)).mean() < 8


def test_faces_mode_image_folder_and_pairs(tmp_path):
    from hcgym.synthesis.dataset import FaceSettings, generate

    out = tmp_path / "faces"
    generate(config(out, mode="faces", n=3, shard_size=2, faces=FaceSettings(per_identity=4, size=56)),
             progress=False)
    folders = sorted(p.name for p in (out / "faces").iterdir() if p.is_dir())
    assert folders == ["00000", "00001", "00002"]
    for f in folders:
        files = sorted((out / "faces" / f).iterdir())
        assert len(files) == 4
        with Image.open(files[0]) as im:
            assert im.size == (56, 56) and im.mode == "RGB"
    idents = json.loads((out / "faces" / "identities.json").read_text())["identities"]
    assert [i["label"] for i in idents] == [0, 1, 2] and len({i["identity"] for i in idents}) == 3
    rows = (out / "pairs.csv").read_text().strip().splitlines()
    assert rows[0] == "a,b,same"
    pairs = [r.split(",") for r in rows[1:]]
    assert {p[2] for p in pairs} == {"0", "1"}
    for a, b, same in pairs:
        assert (out / a).is_file() and (out / b).is_file()
        assert (Path(a).parent == Path(b).parent) == (same == "1")


def test_multiview_mode_grid(tmp_path):
    from hcgym.synthesis.dataset import generate

    out = tmp_path / "mv"
    generate(config(out, mode="multiview", n=1, size=(96, 72)), progress=False)
    series = sorted(p.name for p in (out / "multiview" / "Person01").iterdir())
    assert series == ["1", "2"]
    files = sorted(str(p.relative_to(out / "multiview")) for p in (out / "multiview").rglob("*.jpg"))
    assert len(files) == 2 * 13 * 5
    assert "Person01/1/-90/+30.jpg" in files and "Person01/2/0/0.jpg" in files
    index = json.loads((out / "multiview" / "index.json").read_text())
    assert index["format"] == "hcgym-multiview-1"
    assert len(index["images"]) == 130 and index["persons"][0]["person"] == "Person01"
    for im in index["images"]:
        assert (out / "multiview" / im["file"]).is_file()
        if abs(im["pan"]) <= 75:  # pan follows the face-yaw convention of the ground truth (the sphere's
            assert abs(im["face_yaw"] - im["pan"]) < 6.0, im  # centre is behind the eyes: a few degrees apart)
    frontal = next(im for im in index["images"] if im["pan"] == 0 and im["tilt"] == 0)
    assert frontal["face_box"] is not None
    # tilt > 0 puts the camera above the head (the README's convention)
    def camera_height(tilt):
        im = next(i for i in index["images"] if i["pan"] == 0 and i["tilt"] == tilt and i["series"] == 1)
        w2c = np.asarray(im["world_to_camera"])
        return float((-w2c[:3, :3].T @ w2c[:3, 3])[2])
    assert camera_height(-30) < camera_height(0) < camera_height(30)
    assert camera_height(30) - camera_height(0) == pytest.approx(1.2 * np.sin(np.radians(30)), abs=1e-3)


@pytest.mark.slow
def test_generated_multiview_set_runs_in_the_pan_env(tmp_path):
    """``hcgym generate --mode multiview`` writes what ``ActiveFaceRecognitionPan-v0(dataset=...)`` reads."""
    import gymnasium as gym

    import hcgym.envs  # noqa: F401
    from hcgym.synthesis.dataset import MultiviewSettings, generate
    from hcgym.synthesis.multiview import read_folder

    out = tmp_path / "mv"
    mv = MultiviewSettings(pans=(-30, -15, 0, 15, 30), tilts=(-15, 0, 15), distance=1.0)
    generate(config(out, mode="multiview", n=2, size=(192, 144), multiview=mv, image_format="png"), progress=False)
    data = read_folder(out)
    assert data.persons == ["Person01", "Person02"] and data.n_series == 2
    assert data.pans == mv.pans and data.tilts == mv.tilts and data.present.all()
    assert np.isfinite(data.boxes).all()  # face boxes come from index.json
    env = gym.make("hcgym/ActiveFaceRecognitionPan-v0", dataset=str(out))
    obs, info = env.reset(seed=0)
    assert obs.shape == (144, 192, 3) and info["pan"] in (-30, 30)
    done, steps = False, 0
    while not done:
        action = 2 if info["pan"] < 0 else 1 if info["pan"] > 0 else 0  # move towards frontal, then recognise
        obs, reward, terminated, truncated, info = env.step(action)
        done, steps = terminated or truncated, steps + 1
    assert steps == 3 and info["pan"] == 0 and reward == 1.0
    env.close()


# ================================================================ pieces
def test_splits_follow_the_fractions():
    from hcgym.synthesis.dataset.sampling import split_of

    counts = np.bincount([split_of(i, (0.7, 0.2, 0.1)) for i in range(1000)], minlength=3)
    assert np.allclose(counts / 1000, (0.7, 0.2, 0.1), atol=0.01)


def test_occlusion_knob_queues_people_up():
    from hcgym.synthesis.dataset import sampling
    from hcgym.types import CameraIntrinsics

    cam = sampling.CameraSample((0.0, 0.0, 1.6), 0.0, -5.0, CameraIntrinsics.from_hfov(320, 240, 70.0))

    def spread(occlusion: float) -> float:
        out = []
        for seed in range(20):
            rng = np.random.default_rng(seed)
            spots = sampling.place_people(rng, [0.3] * 5, cam, sampling.Ground(), (2.0, 12.0), occlusion, 0.05)
            bearings = sorted(math.atan2(p.position[1], p.position[0]) for p in spots if p is not None)
            out.append(np.median(np.diff(bearings)))
        return float(np.mean(out))

    assert spread(1.0) < 0.5 * spread(0.0)


def test_backend_add_human(tmp_path):
    from hcgym.envs.backends.base import CameraPose
    from hcgym.envs.backends.embedded import EmbeddedBackend
    from hcgym.errors import SpecError
    from hcgym.synthesis import AvatarSpec
    from hcgym.worlds import load_world

    with EmbeddedBackend() as sim:
        sim.load(load_world("active_face_room"), seed=0)
        sim.add_human("guest", AvatarSpec.random(7001), position=(1.0, 0.0), heading=-90)
        frame = sim.render(pose=CameraPose.from_angles((0.5, -3.0, 1.2), 90, 0))
        assert len(frame.humans) == 2 and frame.humans[1].pixels > 100
        assert (frame.segmentation == 2).sum() == frame.humans[1].pixels
        with pytest.raises(SpecError, match="already in the world"):
            sim.add_human("guest", AvatarSpec.random(7002))

    class NoAdd(EmbeddedBackend):  # a backend that cannot add people leaves the world as it was
        def _add_human(self, index: int) -> None:
            raise NotImplementedError("no")

    with NoAdd() as sim:
        sim.load(load_world("active_face_room"), seed=0)
        with pytest.raises(NotImplementedError):
            sim.add_human("guest", AvatarSpec.random(7001))
        assert [h.name for h in sim.humans] == [h.name for h in load_world("active_face_room").humans]


def test_ray_engine_without_ray_names_the_install(monkeypatch):
    from hcgym.errors import DependencyNotInstalled
    from hcgym.synthesis.dataset import engines

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(DependencyNotInstalled, match=r"pip install 'ray>=2.9'"):
        engines.run_ray([], 2, lambda r: None)
