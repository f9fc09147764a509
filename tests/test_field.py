"""The field domain: the farm-field worlds, ``--empty-fraction`` and ``--distortion``.

One tiny distorted dataset of the ``field`` world (160x120, 8 images, half of them empty) is the
reference; its annotations must stay as consistent as undistorted ones (COCO self-evaluation AP
1.0, visible keypoints inside their masks, boxes from masks) and a 2-worker run must give the
same bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from hcgym.errors import SpecError
from hcgym.geometry import RadialDistortion, project
from hcgym.scripts.cli import main

SPLITS = ("train", "val", "test")
LENS = (-0.25, 0.05)


def run_cli(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 1


def field_config(out: Path, **changes):
    from hcgym.synthesis.dataset import GenerateConfig, SceneSettings

    scene = SceneSettings(humans=(1, 3), identities=6, variants=2, distance=(3.0, 25.0), hfov=(70.0, 100.0),
                          camera_height=(1.5, 3.0), splits=(1.0, 0.0, 0.0), empty_fraction=0.5, distortion=LENS)
    kw = dict(out=out, n=8, seed=3, world="field", size=(160, 120), shard_size=4, scene=scene)
    kw.update(changes)
    return GenerateConfig(**kw)


@pytest.fixture(scope="module")
def field_data(tmp_path_factory) -> Path:
    from hcgym.synthesis.dataset import generate

    out = tmp_path_factory.mktemp("field") / "data"
    generate(field_config(out), progress=False)
    return out


@pytest.fixture(scope="module")
def coco(field_data):
    return json.loads((field_data / "annotations" / "train.json").read_text())


def decode(ann) -> np.ndarray:
    from pycocotools import mask as mask_utils

    seg = ann["segmentation"]
    return mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)


# ================================================================ the lens
def test_distortion_maps_a_known_point_as_the_formula_says():
    lens = RadialDistortion(*LENS)
    x, y = 0.5, -0.3
    r2 = x * x + y * y
    factor = 1 + LENS[0] * r2 + LENS[1] * r2 * r2
    assert np.allclose(lens.distort(np.array([[x, y]])), [[x * factor, y * factor]], atol=1e-15)
    assert np.allclose(lens.undistort(lens.distort(np.array([[x, y]]))), [[x, y]], atol=1e-10)
    # Pixels: the pinhole projection, then the lens on coordinates normalised by the focal length.
    k = np.array([[200.0, 0, 160.0], [0, 200.0, 120.0], [0, 0, 1]])
    uv, z = project(np.array([[x * 4.0, y * 4.0, 4.0]]), np.eye(4), k, lens)
    assert z[0] == 4.0 and np.allclose(uv, [[160 + 200 * x * factor, 120 + 200 * y * factor]], atol=1e-9)
    # Beyond the fold of a barrel without k2 no ray reaches the image.
    barrel = RadialDistortion(-0.2)
    assert barrel.max_radius == pytest.approx(1 / math.sqrt(0.6))
    assert np.isnan(barrel.distort(np.array([[1.3, 0.0]]))).all()
    assert np.isnan(barrel.undistort_radius(np.array([0.9]))).all()  # past the largest imaged radius
    assert RadialDistortion(-0.2, 0.03).max_radius == math.inf  # k2 keeps it monotonic


def test_lens_warp_moves_a_pixel_where_the_formula_puts_it():
    from hcgym.synthesis.dataset.lens import LensWarp
    from hcgym.types import CameraIntrinsics

    output = CameraIntrinsics.from_hfov(160, 120, 90.0)
    warp = LensWarp.build(output, RadialDistortion(*LENS))
    canvas = warp.canvas
    assert canvas.width > output.width and canvas.height > output.height  # barrel sees more than the pinhole
    assert (canvas.fx, canvas.cx, canvas.cy) == (output.fx, canvas.width / 2, canvas.height / 2)
    assert warp.valid.all()  # with k2 the whole frame is imaged
    # A 3x3 bright square at a pinhole pixel lands where the formula maps its centre.
    for cu, cv in ((150.5, 40.5), (20.5, 100.5)):  # continuous canvas coordinates
        img = np.zeros((canvas.height, canvas.width, 3), np.uint8)
        img[int(cv) - 1:int(cv) + 2, int(cu) - 1:int(cu) + 2] = 255
        out = warp.image(img)[..., 0].astype(float)
        got = np.array([(out * np.arange(160)[None, :]).sum(), (out * np.arange(120)[:, None]).sum()]) / out.sum()
        xy = np.array([[(cu - canvas.cx) / canvas.fx, (cv - canvas.cy) / canvas.fy]])
        want = RadialDistortion(*LENS).distort(xy)[0] * output.fx + (output.cx, output.cy) - 0.5
        assert np.allclose(got, want, atol=0.25), (got, want)
    # Ids follow the canvas pixel that holds each output pixel centre.
    ids = np.arange(canvas.width * canvas.height, dtype=np.int32).reshape(canvas.height, canvas.width)
    out_ids = warp.nearest(ids, -1)
    assert np.array_equal(out_ids, np.floor(warp.map_v).astype(int) * canvas.width + np.floor(warp.map_u).astype(int))


def test_zero_distortion_is_the_pinhole_camera(tmp_path):
    from hcgym.scripts.cli import build_parser
    from hcgym.scripts.generate import config_from_args
    from hcgym.synthesis.dataset.config import SceneSettings
    from hcgym.synthesis.dataset.lens import LensWarp
    from hcgym.synthesis.dataset.scene import lens_of
    from hcgym.types import CameraIntrinsics

    base = ["generate", "--n", "4", "--out", str(tmp_path / "x")]
    default = config_from_args(build_parser().parse_args(base))
    for text in ("0", "0,0", "0.0,-0.0"):
        zero = config_from_args(build_parser().parse_args([*base, "--distortion", text]))
        assert zero == default and zero.dataset_key("w", None) == default.dataset_key("w", None)
    assert lens_of(SceneSettings()) is None and lens_of(SceneSettings(distortion=(0.0, 0.0))) is None
    # The warp of an identity lens is the identity, byte for byte.
    intr = CameraIntrinsics.from_hfov(97, 61, 75.0)
    warp = LensWarp.build(intr, RadialDistortion(0.0, 0.0))
    rgb = np.random.default_rng(0).integers(0, 256, (61, 97, 3), dtype=np.uint8)
    assert warp.canvas == intr and np.array_equal(warp.image(rgb), rgb)
    assert np.array_equal(warp.nearest(rgb[..., 0], 0), rgb[..., 0])


# ================================================================ the distorted, half-empty dataset
def test_self_evaluation_is_perfect_after_distortion(coco, coco_self_eval):
    assert coco_self_eval(coco) >= 4


def test_distorted_annotations_are_consistent(coco):
    from pycocotools import mask as mask_utils

    images = {im["id"]: im for im in coco["images"]}
    visible = inside = moved = 0
    for a in coco["annotations"]:
        m = decode(a)
        rle = {"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"].encode()}
        assert mask_utils.toBbox(rle).tolist() == a["bbox"] and a["area"] == int(m.sum()) > 0
        kp = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
        for u, v, flag in kp:
            if flag == 2:
                visible += 1
                inside += bool(m[int(v), int(u)])
        # Keypoints are the 3D keypoints seen through the recorded camera and lens.
        cam = images[a["image_id"]]["camera"]
        assert cam["distortion"] == list(LENS)
        k = np.array([[cam["fx"], 0, cam["cx"]], [0, cam["fy"], cam["cy"]], [0, 0, 1]])
        w2c = np.asarray(cam["world_to_camera"])
        uv, _ = project(np.asarray(a["keypoints_3d"]), w2c, k, RadialDistortion(*cam["distortion"]))
        pinhole, _ = project(np.asarray(a["keypoints_3d"]), w2c, k)
        lab = kp[:, 2] > 0
        assert np.allclose(uv[lab], kp[lab, :2], atol=0.05)
        assert np.all((kp[lab, 0] >= 0) & (kp[lab, 0] < 160) & (kp[lab, 1] >= 0) & (kp[lab, 1] < 120))
        moved += int(np.any(np.abs(pinhole[lab] - uv[lab]) > 1.0))
        # The amodal box holds the visible box and the labelled keypoints.
        x, y, w, h = a["bbox_amodal"]
        bx, by, bw, bh = a["bbox"]
        assert x <= bx + 1 and y <= by + 1 and x + w >= bx + bw - 1 and y + h >= by + bh - 1
        if a["face_box"] is not None:
            assert a["face_box"][2] > 0 and a["face_box"][3] > 0
    assert visible > 20 and inside == visible
    assert moved > 0, "the lens moved no keypoint by more than a pixel"


def test_empty_fraction_gives_the_expected_empty_images(field_data, coco):
    from hcgym.synthesis.dataset.sampling import is_empty

    with_people = {a["image_id"] for a in coco["annotations"]}
    empty = sorted(im["id"] - 1 for im in coco["images"] if im["id"] not in with_people)
    assert empty == [i for i in range(8) if is_empty(3, i, 0.5)]  # every other image has people
    assert abs(len(empty) - 0.5 * 8) <= 1
    summary = json.loads((field_data / "summary.json").read_text())
    assert summary["splits"]["train"]["images_without_persons"] == len(empty) and summary["images"] == 8
    for f in (0.0, 0.2, 0.8, 1.0):  # every prefix keeps the fraction
        flags = np.array([is_empty(7, i, f) for i in range(2000)])
        assert np.abs(np.cumsum(flags) - f * np.arange(1, 2001)).max() <= 4


def test_field_people_are_small_and_distant(coco):
    dist = [a["distance"] for a in coco["annotations"]]
    assert min(dist) >= 3.0 and max(dist) > 8.0
    assert min(a["bbox"][3] for a in coco["annotations"]) < 30  # small people at 160x120


@pytest.mark.slow
def test_two_workers_give_the_same_bytes_with_the_new_options(field_data, tmp_path):
    from hcgym.synthesis.dataset import generate

    out = tmp_path / "two"
    generate(field_config(out, workers=2), progress=False)
    a = {str(p.relative_to(field_data)): p.read_bytes() for p in sorted(field_data.rglob("*")) if p.is_file()}
    b = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []


@pytest.mark.parametrize("extra, message", [
    (["--empty-fraction", "1.5"], "--empty-fraction: expected a number in [0, 1], got 1.5"),
    (["--distortion", "abc"], "--distortion: expected K1 or K1,K2"),
    (["--distortion", "0.1,0.2,0.3"], "--distortion: expected K1 or K1,K2"),
    (["--distortion", "3"], "--distortion: expected K1 or K1,K2 with each in [-1, 1]"),
    (["--distortion=-0.2", "--backgrounds", "."], "--distortion: not used with --backgrounds"),
])
def test_bad_values_give_one_clear_error_and_write_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert run_cli(["generate", "--n", "4", "--size", "160x120", "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hcgym generate: error: ") and message in err[0], err
    assert not out.exists()


# ================================================================ the field worlds
@pytest.mark.parametrize("name", ["field", "field_green", "field_ploughed"])
def test_field_worlds_load_and_are_written_by_their_layout(name):
    from hcgym.worlds import load_world
    from hcgym.worlds.field_layout import shipped_text

    world = load_world(name)
    assert world.name == name and not world.room.walls and world.room.size == (160.0, 160.0)
    assert world.room.floor.pattern in ("crop_rows", "soil") and world.room.floor.repeat == 30.0
    assert len(world.props) > 200 and world.robots and len(world.humans) == 3
    assert Path(world.source).read_text() == shipped_text(name), "rerun python -m hcgym.worlds.field_layout"
    kinds = {p.name.rstrip("0123456789_").rstrip("0123456789") for p in world.props}
    assert {"hedge", "tree", "fencepost", "marker", "roundbale", "squarebale", "scarecrow", "bush", "stone",
            "pole", "tractor", "tank"} <= kinds


def test_random_field_views_contain_clutter():
    """The generator's cameras stand anywhere on free floor: nearly every view has clutter within 40 m."""
    from hcgym.synthesis.dataset import sampling
    from hcgym.worlds import load_world

    world = load_world("field")
    ground = sampling.ground_of_world(world)
    objects = {}
    for p in world.props:
        if not p.name.startswith("hedge"):
            objects.setdefault(p.name.split("_")[0], p.position[:2])
    xy = np.asarray(list(objects.values()))
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(200):
        cam = sampling.sample_camera(rng, ground, (384, 288), (1.5, 3.0), (-20.0, 5.0), (70.0, 100.0), 6.0)
        assert ground.free(cam.position[0], cam.position[1], 0.4)
        d = xy - cam.position[:2]
        bearing = (np.degrees(np.arctan2(d[:, 1], d[:, 0])) - cam.yaw + 180) % 360 - 180
        seen.append(int(np.sum((np.hypot(d[:, 0], d[:, 1]) < 40) & (np.abs(bearing) < cam.intrinsics.hfov_deg / 2))))
    assert np.mean(np.asarray(seen) >= 1) >= 0.95 and np.median(seen) >= 3
    assert cam.intrinsics.far >= 200  # the far plane reaches across the field


def test_crop_rows_tile_seamlessly_and_look_like_rows():
    from hcgym.worlds.spec import Surface
    from hcgym.worlds.textures import floor_uv, surface_image

    s = Surface(color=(0.45, 0.34, 0.25), secondary=(0.3, 0.5, 0.16), pattern="crop_rows", tile_size=0.75,
                repeat=6.0, cover=0.4)
    img = surface_image(s, (160.0, 160.0)).astype(float)
    assert img.shape == (384, 384, 3)  # one 6 m copy at 64 px/m
    assert floor_uv(s, (160.0, 160.0)) == (160 / 6, 160 / 6)
    step = np.abs(np.diff(img, axis=1)).mean()
    assert np.abs(img[:, 0] - img[:, -1]).mean() < 1.5 * step  # the copies join like neighbouring texels
    assert np.abs(img[0] - img[-1]).mean() < 1.5 * np.abs(np.diff(img, axis=0)).mean()
    green = (img[..., 1] > img[..., 0] * 1.1).mean(axis=1)  # share of plant texels per texel row
    period = 0.75 * 64
    phase = (np.arange(384) + 0.5) % period / period
    assert green[np.abs(phase - 0.5) < 0.1].mean() > 0.3 and green[np.abs(phase - 0.5) > 0.4].mean() < 0.02


def test_repeat_must_hold_whole_pattern_periods(tmp_path):
    from hcgym.worlds import load_world

    data = yaml.safe_load(Path(load_world("field").source).read_text())
    data["room"]["floor"]["repeat"] = 10.0  # not a multiple of the 0.75 m rows
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"room\.floor\.repeat: 10 must be a whole multiple of the crop_rows period"):
        load_world(path)
