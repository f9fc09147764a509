"""Domain randomisation of scene images (synthesis/dataset/randomise.py, ``hcgym generate --randomise``).

Tiny datasets (160x120, the identity pool of tests/test_generate.py so the avatars come from the cache) and
the image-space randomisations on synthetic arrays.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hcgym.synthesis.dataset import randomise, sampling
from hcgym.types import CameraIntrinsics

#: Randomised scenes: seed and pool of tests/test_generate.py (cached avatars), close-ups included.
N_IMAGES = 8


def _config(out: Path, randomise_on: bool = True, **changes):
    from hcgym.synthesis.dataset import GenerateConfig, SceneSettings

    scene = SceneSettings(humans=(1, 4), identities=6, variants=2, distance=(2.0, 10.0), randomise=randomise_on)
    kw = dict(out=out, n=N_IMAGES, seed=3, size=(160, 120), shard_size=4, scene=scene)
    kw.update(changes)
    return GenerateConfig(**kw)


@pytest.fixture(scope="module")
def randomised(tmp_path_factory) -> Path:
    from hcgym.synthesis.dataset import generate

    out = tmp_path_factory.mktemp("dr") / "a"
    generate(_config(out), progress=False)
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _coco(root: Path) -> tuple[list[dict], list[dict]]:
    images, anns = [], []
    for split in ("train", "val", "test"):
        data = json.loads((root / "annotations" / f"{split}.json").read_text())
        images += data["images"]
        anns += data["annotations"]
    return images, anns


def test_same_seed_same_bytes_and_the_switch_is_in_the_key(randomised, tmp_path):
    from hcgym.synthesis.dataset import generate

    again = tmp_path / "b"
    generate(_config(again, workers=2), progress=False)
    a, b = _tree(randomised), _tree(again)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    key = json.loads((randomised / "manifest.json").read_text())["dataset"]
    assert key["scene"]["randomise"] is True
    # off (the default): the key has no such field, so older datasets keep their key and resume
    off = _config(tmp_path / "c", randomise_on=False).dataset_key("w", None)
    assert "randomise" not in off["scene"]


def test_randomised_images_differ_from_plain_ones_and_record_what_was_drawn(randomised, tmp_path):
    from hcgym.synthesis.dataset import generate

    plain = tmp_path / "plain"
    generate(_config(plain, randomise_on=False), progress=False)
    images, _ = _coco(randomised)
    plain_images, _ = _coco(plain)
    assert all("randomise" in im for im in images) and not any("randomise" in im for im in plain_images)
    for im in images:
        r = im["randomise"]
        assert abs(r["roll"]) <= randomise.ROLL_DEG and im["camera"]["roll"] == pytest.approx(r["roll"], abs=1e-3)
        assert randomise.LIGHT_KELVIN[0] <= r["light_kelvin"] <= randomise.LIGHT_KELVIN[1]
        assert randomise.JPEG_QUALITY[0] <= r["jpeg_quality"] <= randomise.JPEG_QUALITY[1]
    a = _tree(randomised / "images")
    b = _tree(plain / "images")
    assert all(a[k] != b[k] for k in a)


def test_annotations_of_randomised_and_truncated_people_stay_exact(randomised):
    """Boxes are the visible pixels of the masks, inside the image; truncated people's target boxes are their
    full-body boxes clipped to the image; visible keypoints lie in their masks."""
    from pycocotools import mask as mask_utils

    from hcgym.perception.scoring import person_boxes

    images, anns = _coco(randomised)
    by_id = {im["id"]: im for im in images}
    assert any(im["randomise"]["close_up"] for im in images)
    truncated = [a for a in anns if a["truncated"]]
    assert truncated, "no truncated person in the randomised set"
    for a in anns:
        im = by_id[a["image_id"]]
        w, h = im["width"], im["height"]
        m = mask_utils.decode(a["segmentation"])
        assert m.sum() == a["area"] > 0
        assert np.allclose(mask_utils.toBbox(a["segmentation"]), a["bbox"])
        x, y, bw, bh = a["bbox"]
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h
        kp = np.asarray(a["keypoints"]).reshape(-1, 3)
        for u, v, flag in kp:
            if flag == 2:
                assert m[min(int(v), h - 1), min(int(u), w - 1)]
    for a in truncated:
        im = by_id[a["image_id"]]
        w, h = im["width"], im["height"]
        xa, ya, wa, ha = a["bbox_amodal"]
        assert xa < 0 or ya < 0 or xa + wa > w or ya + ha > h  # the body crosses the border
        (box,), _ = person_boxes([a], w, h)
        x, y, bw, bh = a["bbox"]
        # (the full-body box is the projected mesh; a visible pixel it only grazes may stick out by a pixel)
        assert 0 <= box[0] <= x + 1.5 and 0 <= box[1] <= y + 1.5
        assert x + bw - 1.5 <= box[2] <= w and y + bh - 1.5 <= box[3] <= h


def test_close_ups_bring_people_near_facing_the_camera(randomised):
    images, anns = _coco(randomised)
    close = {im["id"] for im in images if im["randomise"]["close_up"]}
    near = [a for a in anns if a["image_id"] in close]
    cams = {im["id"]: im["camera"]["position"] for im in images}

    def ground(a: dict) -> float:
        (x, y, _), (cx, cy, _) = a["placement"]["position"], cams[a["image_id"]]
        return math.hypot(x - cx, y - cy)

    assert near
    for image_id in {a["image_id"] for a in near}:  # the first person is placed within the range (others
        nearest = min(ground(a) for a in near if a["image_id"] == image_id)  # may queue up behind them)
        assert randomise.CLOSE_UP_DISTANCE[0] - 1e-3 <= nearest <= randomise.CLOSE_UP_DISTANCE[1] + 1e-3
    for a in near:
        x, y, _ = a["placement"]["position"]
        cx, cy, _ = cams[a["image_id"]]
        to_camera = math.degrees(math.atan2(cy - y, cx - x))
        diff = (a["placement"]["heading"] - to_camera + 180.0) % 360.0 - 180.0
        assert abs(diff) <= randomise.CLOSE_UP_FACING + 0.01


def test_roll_turns_the_scene_in_the_image():
    """A point right of a level camera's axis moves up the image when the camera rolls +90 degrees."""
    intr = CameraIntrinsics.from_hfov(100, 100, 60.0)
    level = sampling.CameraSample((0.0, 0.0, 1.0), 0.0, 0.0, intr)
    rolled = sampling.CameraSample((0.0, 0.0, 1.0), 0.0, 0.0, intr, roll=90.0)
    point = np.array([[5.0, -1.0, 1.0]])  # ahead (+x) and to the right (-y)
    (u0, v0), = level.project(point)[0]
    (u1, v1), = rolled.project(point)[0]
    assert u0 > 50 and v0 == pytest.approx(50)
    assert u1 == pytest.approx(50) and v1 < 50 and (50 - v1) == pytest.approx(u0 - 50)


def test_light_colour_temperature_and_ranges():
    warm, cold = randomise.kelvin_rgb(2700), randomise.kelvin_rgb(9000)
    assert warm[0] == 1.0 and warm[2] < 0.6 and cold[2] == 1.0 and cold[0] < 0.9
    rng = np.random.default_rng(0)
    for _ in range(50):
        light, kelvin = randomise.sample_light(rng)
        elevation = math.degrees(math.asin(-light.direction[2]))
        assert randomise.LIGHT_ELEVATION[0] - 0.01 <= elevation <= randomise.LIGHT_ELEVATION[1] + 0.01
        assert randomise.LIGHT_INTENSITY[0] <= light.intensity <= randomise.LIGHT_INTENSITY[1]
        assert randomise.LIGHT_AMBIENT[0] <= light.ambient <= randomise.LIGHT_AMBIENT[1]


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A 60x80 image: grey background, person 1 skin-coloured on the left, person 2 blue clothes on the right."""
    rgb = np.full((60, 80, 3), 128, np.uint8)
    seg = np.zeros((60, 80), np.int32)
    seg[10:50, 10:30] = 1
    rgb[10:50, 10:30] = (205, 150, 120)
    seg[10:50, 50:70] = 2
    rgb[10:50, 50:70] = (40, 60, 170)
    return rgb, seg


def test_tints_change_the_people_only():
    rgb, seg = _scene()
    out, params = randomise.tint_people(rgb, seg, 2, np.random.default_rng(3))
    assert len(params) == 2
    assert np.array_equal(out[seg == 0], rgb[seg == 0])
    skin_value, hue, _ = params[0]
    if abs(skin_value - 1.0) > 0.05:
        assert not np.array_equal(out[seg == 1], rgb[seg == 1])
    assert abs(params[1][1]) < 2 or not np.array_equal(out[seg == 2], rgb[seg == 2])
    assert randomise.skin_like(np.array([[[10, 100, 200]]], np.uint8))[0, 0]  # orange, mid saturation: skin
    assert not randomise.skin_like(np.array([[[120, 200, 170]]], np.uint8))[0, 0]  # blue: clothes


def test_garments_repaint_clothes_not_skin_nor_background():
    rgb, seg = _scene()
    rng = np.random.default_rng(0)
    dressed = []
    for _ in range(20):
        out, params = randomise.dress_people(rgb, seg, 2, rng)
        assert len(params) == 2
        assert np.array_equal(out[seg == 0], rgb[seg == 0])  # background untouched
        assert np.array_equal(out[seg == 1], rgb[seg == 1])  # skin-coloured person untouched
        if params[1] is not None:
            assert not np.array_equal(out[seg == 2], rgb[seg == 2])
            assert set(params[1]) == {"upper", "lower", "split", "pattern"}
            dressed.append(params[1])
    assert 0 < len(dressed) < 20  # a share of the people, not all or none
    again = randomise.dress_people(rgb, seg, 2, np.random.default_rng(0))
    first = randomise.dress_people(rgb, seg, 2, np.random.default_rng(0))
    assert np.array_equal(again[0], first[0]) and again[1] == first[1]


@pytest.mark.parametrize("kind", randomise.BACKGROUND_KINDS)
def test_every_background_kind_is_a_textured_image(kind):
    img, got = randomise.background(np.random.default_rng(0), 48, 64, kind)
    assert got == kind and img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert img.reshape(-1, 3).std(0).max() > 3.0
    again, _ = randomise.background(np.random.default_rng(0), 48, 64, kind)
    assert np.array_equal(img, again)


def test_distractors_draw_shapes():
    img = np.zeros((60, 80, 3), np.uint8)
    kinds = randomise.draw_distractors(img, np.random.default_rng(1), 8)
    assert len(kinds) == 8 and set(kinds) <= set(randomise.DISTRACTOR_KINDS)
    assert (img.sum(2) > 0).mean() > 0.05


def test_backgrounds_and_distractors_stay_behind_the_people(monkeypatch):
    """With the people's colours and the camera effects switched off, person pixels are untouched while the
    background changes."""
    monkeypatch.setattr(randomise, "tint_people", lambda rgb, seg, count, rng: (rgb, []))
    monkeypatch.setattr(randomise, "dress_people", lambda rgb, seg, count, rng: (rgb, []))
    monkeypatch.setattr(randomise, "camera_effects", lambda rgb, rng: (rgb, {}))
    rgb, seg = _scene()
    changed = 0
    for seed in range(6):
        out, info = randomise.apply(rgb, seg, 2, np.random.default_rng(seed))
        assert np.array_equal(out[seg > 0], rgb[seg > 0])
        if "background" in info or "distractors" in info:
            changed += 1
            assert not np.array_equal(out[seg == 0], rgb[seg == 0])
    assert changed


def test_camera_effects_blur_noise_grey_and_jpeg():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, 32:] = 255
    rgb[:, :, 1] = np.arange(64, dtype=np.uint8)[None] * 3
    seen: set[str] = set()
    for seed in range(300):
        out, info = randomise.camera_effects(rgb, np.random.default_rng(seed))
        assert out.shape == rgb.shape and out.dtype == np.uint8
        assert randomise.JPEG_QUALITY[0] <= info["jpeg_quality"] <= randomise.JPEG_QUALITY[1]
        seen.update(k for k in ("grey", "motion_blur", "defocus_sigma", "noise_sigma") if k in info)
        if info.get("grey") and "noise_sigma" not in info:  # (sensor noise is drawn per channel)
            assert np.abs(out.astype(int) - out.mean(2, keepdims=True)).max() <= 6  # JPEG chroma error only
        if ("motion_blur" in info or "defocus_sigma" in info) and "noise_sigma" not in info:
            edge = np.abs(np.diff(out[24, :, 0].astype(int))).max()
            assert edge < 200  # the sharp 0 -> 255 step is spread over several pixels
    assert seen == {"grey", "motion_blur", "defocus_sigma", "noise_sigma"}


def test_randomise_with_photos_is_refused_before_anything_is_written(tmp_path):
    from hcgym.errors import SpecError
    from hcgym.synthesis.dataset import generate

    photos = tmp_path / "photos"
    photos.mkdir()
    out = tmp_path / "out"
    with pytest.raises(SpecError, match="--randomise"):
        generate(_config(out, backgrounds=photos), progress=False)
    assert not out.exists()
