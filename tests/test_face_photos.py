"""Face detectors on real photos shipped by installed packages: the pipeline's default holds (docs/face.md)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import hcgym.perception as hp
from hcgym.errors import SpecError
from hcgym.perception.face.mediapipe_models import tile_origins
from hcgym.perception.face.pipeline import FacePipeline
from hcgym.perception.face.real_photos import (
    GROUP_FACE_CENTRES,
    PORTRAIT_FACE_CENTRE,
    group_photo,
    portrait_photo,
    run_detector,
    score,
)

DEFAULT = inspect.signature(FacePipeline).parameters["detector"].default


@pytest.fixture(scope="module")
def photos():
    return group_photo(), portrait_photo()


def test_the_photos_are_the_packages_samples(photos):
    group, portrait = photos
    assert group.shape == (886, 1280, 3) and portrait.shape == (512, 512, 3)
    assert group.dtype == portrait.dtype == np.uint8


def test_the_pipeline_default_finds_the_group_and_no_false_face(photos):
    assert DEFAULT == "face/mediapipe-tiled"
    r = run_detector(hp.make(DEFAULT), *photos, DEFAULT)
    assert r.found >= 5 and r.group_false == 0, r
    assert r.portrait_found == 1 and r.portrait_false == 0, r


def test_whole_image_mediapipe_loses_small_faces_of_a_large_photo(photos):
    """Why the default adds windows: MediaPipe sees its input at 192 pixels."""
    found, false = score(hp.make("face/mediapipe-full")(photos[0]).boxes, GROUP_FACE_CENTRES)
    assert found <= 4 and false == 0


def test_pipeline_default_embeds_the_portrait_face(photos):
    vec, box = FacePipeline(recognizer="face/hcgym-irnet").embed(photos[1])
    assert vec is not None and vec.shape == (512,)
    assert score(box, PORTRAIT_FACE_CENTRE) == (1, 0)


def test_score_counts_faces_found_and_false_boxes():
    boxes = np.array([[100, 300, 120, 340], [90, 310, 130, 330], [0, 0, 10, 10], [300, 200, 320, 210]])
    assert score(boxes, GROUP_FACE_CENTRES) == (2, 1)
    assert score(np.zeros((0, 4)), GROUP_FACE_CENTRES) == (0, 0)


def test_windows_overlap_by_half_and_reach_the_far_edge():
    assert tile_origins(400, 480) == [0] and tile_origins(480, 480) == [0]
    for length in (481, 886, 1280, 1999):
        o = tile_origins(length, 480)
        assert o[0] == 0 and o[-1] == length - 480 and np.diff(o).max() <= 240


def test_tiled_detector_is_whole_image_mediapipe_on_small_frames(studio_portraits):
    full, tiled = hp.make("face/mediapipe-full"), hp.make("face/mediapipe-tiled")
    assert tiled.name == "face/mediapipe-tiled"
    for _, frame in studio_portraits[:4]:
        a, b = full(frame), tiled(frame)
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.keypoints, b.keypoints)
    with pytest.raises(SpecError, match="tile"):
        hp.make("face/mediapipe-tiled", tile=8)
