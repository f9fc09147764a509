"""The shipped real-image test set: files, provenance records and labels agree, and its ground truth builds."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from hcgym.perception import real_images
from hcgym.perception.bench_source import humans_of

COCO = json.loads(real_images.ANNOTATIONS.read_text())
SOURCES = {s["file_name"]: s for s in json.loads(real_images.SOURCES.read_text())}
#: Pictures without any person (every other picture holds at least one person box).
NEGATIVES = {"brick.png", "chelsea.jpg", "coffee.jpg", "grass.png", "gravel.png", "horse.png", "mask_black.jpg",
             "mask_blue.jpg", "mask_green.jpg", "mask_white.jpg"}


def test_every_file_is_labelled_recorded_and_small():
    on_disk = {p.name for p in real_images.IMAGES.iterdir()}
    listed = {img["file_name"] for img in COCO["images"]}
    assert on_disk == listed == set(SOURCES)
    total = sum(p.stat().st_size for p in real_images.IMAGES.iterdir())
    assert total < 4 * 2**20
    licences = (real_images.ROOT / "LICENCES.md").read_text()
    for name, s in SOURCES.items():
        assert hashlib.sha256((real_images.IMAGES / name).read_bytes()).hexdigest() == s["sha256"], name
        assert all(s[k] for k in ("package", "version", "path", "package_licence", "origin", "processing")), name
        assert f"`{name}`" in licences
        with Image.open(real_images.IMAGES / name) as im:
            assert list(im.size) == s["size"] and max(im.size) <= 1280


def test_coco_references_and_boxes():
    images = {img["id"]: img for img in COCO["images"]}
    assert {c["id"]: c["name"] for c in COCO["categories"]} == {1: "person", 2: "face"}
    ann_ids = {a["id"]: a for a in COCO["annotations"]}
    assert len(ann_ids) == len(COCO["annotations"])
    people = {name: 0 for name in SOURCES}
    for a in COCO["annotations"]:
        img = images[a["image_id"]]
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0, a
        assert x + w <= img["width"] + 0.05 and y + h <= img["height"] + 0.05, a
        if a["category_id"] == 1:
            people[img["file_name"]] += 1
        else:
            person = ann_ids[a["person_id"]]
            assert person["category_id"] == 1 and person["image_id"] == a["image_id"]
            px, py, pw, ph = person["bbox"]  # a face lies (mostly) inside its person's box
            ix = min(x + w, px + pw) - max(x, px)
            iy = min(y + h, py + ph) - max(y, py)
            assert ix * iy >= 0.9 * w * h, a
    assert {n for n, k in people.items() if k == 0} == NEGATIVES


def test_loader_gives_rgb_and_labels_in_name_order():
    items = real_images.load()
    assert [lab.file_name for _, lab in items] == sorted(SOURCES)
    for rgb, lab in items:
        assert rgb.dtype == np.uint8 and rgb.shape == (lab.height, lab.width, 3)
    by_name = {lab.file_name: lab for _, lab in items}
    t1 = by_name["t1.jpg"]
    assert len(t1.persons) == 6 and len(t1.faces) == 6 and not t1.person_ignore.any()
    assert list(t1.face_person) == list(range(6))
    item = by_name["bus.jpg"].scoring_item()
    assert item["boxes"].shape == (4, 4) and item["ignore"].tolist() == [False, False, False, True]


def test_ground_truth_of_frames():
    """Persons carry their faces; an ignored person has no pixels; a face crop's face stands alone."""
    frames = {f.camera: f for f in real_images.frames()}
    bus = frames["bus.jpg"].humans
    assert [h.pixels > 0 for h in bus] == [True, True, True, False]
    assert [h.face_box is not None for h in bus] == [True, True, False, False]
    assert all(np.array_equal(h.bbox, h.bbox_amodal) for h in bus)
    crop = frames["Tom_Hanks_54745.png"].humans
    assert crop[0].pixels == 0 and crop[0].face_box is None
    assert crop[1].bbox_amodal is None and crop[1].face_box is not None
    assert (crop[1].face_landmarks[:, 2] == 2).all()
    assert frames["coffee.jpg"].humans == []
    assert sum(len(humans_of(lab)) for _, lab in real_images.load()) == 24 + 1


@pytest.mark.parametrize("name", ["obama_partial_face.jpg", "obama_partial_face2.jpg"])
def test_partial_faces_match_the_full_portrait(name):
    """The two crops of obama.jpg carry its labels shifted by the crop offset (419 and 0 columns)."""
    labs = real_images.labels()
    full, part = labs["obama.jpg"], labs[name]
    dx = 419 if name == "obama_partial_face.jpg" else 0
    expect = np.clip(full.faces[0] - [dx, 0, dx, 0], 0, part.width)
    assert np.allclose(part.faces[0], expect, atol=1.0)
