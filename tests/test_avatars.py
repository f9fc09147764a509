"""Avatar building: cache, files, ground truth that follows the pose, clothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcgym.synthesis import AvatarSpec
from hcgym.synthesis import builder
from hcgym.synthesis.builder import build_avatar


def test_second_build_is_a_cache_hit(tmp_path, monkeypatch):
    spec = AvatarSpec.random(42)
    first = build_avatar(spec, cache=tmp_path)

    def boom(*a, **k):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(builder, "_build_into", boom)
    second = build_avatar(spec, cache=tmp_path)
    assert second.key == first.key and second.path == first.path
    with pytest.raises(AssertionError):  # a new spec is not a hit
        build_avatar(spec.with_(expression="happy"), cache=tmp_path)


def test_build_writes_obj_mtl_png_and_metadata(tmp_path):
    from PIL import Image

    a = build_avatar(AvatarSpec.random(43), cache=tmp_path)
    lines = a.obj_path.read_text().splitlines()
    assert sum(l.startswith("v ") for l in lines) == 13718
    assert sum(l.startswith("f ") for l in lines) == 27420
    assert sum(l.startswith("vt ") for l in lines) > 13718
    assert "map_Kd texture.png" in (a.path / "avatar.mtl").read_text()
    assert Image.open(a.texture_path).size == (2048, 2048)
    meta = json.loads((a.path / "avatar.json").read_text())
    assert meta["identity"] == a.identity and len(meta["keypoints_3d"]) == 17
    assert AvatarSpec.from_dict(meta["spec"]) == a.spec
    # Avatar frame: feet on the floor, face towards -y, plausible adult height.
    v = a.mesh["vertices"]
    assert abs(v[:, 2].min()) < 1e-4 and 1.45 < a.height < 2.05
    assert a.face_points["nose_tip"][1] < a.keypoints_3d[3][1]  # nose in front of the ears
    # No temporary directories left behind.
    assert [p.name for p in tmp_path.iterdir()] == [a.path.name]


def test_keypoints_and_face_points_follow_pose_and_expression(tmp_path):
    base = AvatarSpec.random(44)
    stand = build_avatar(base.with_(pose="stand"), cache=tmp_path)
    up = build_avatar(base.with_(pose="arms_up"), cache=tmp_path)
    head_z = stand.keypoints_3d[0][2]
    assert (stand.keypoints_3d[[9, 10], 2] < stand.keypoints_3d[[11, 12], 2] + 0.1).all()  # wrists near hips
    assert (up.keypoints_3d[[9, 10], 2] > head_z).all()  # wrists above the nose
    assert stand.identity == up.identity and stand.key != up.key
    open_mouth = build_avatar(base.with_(facial_actions={"jawOpen": 1.0}), cache=tmp_path)
    assert open_mouth.face_points["chin"][2] < stand.face_points["chin"][2] - 0.01
    assert np.allclose(open_mouth.face_points["forehead"], stand.face_points["forehead"], atol=2e-3)


def test_avatars_are_dressed_and_distinct(tmp_path):
    from PIL import Image

    from hcgym.synthesis.anny_model import get_template

    t = get_template()
    torso = (t.vertices[:, 2] > 0.0) & (t.vertices[:, 2] < 0.35) & (np.abs(t.vertices[:, 0]) < 0.12)
    uv_idx = np.unique(t.uv_faces[np.isin(t.faces, np.flatnonzero(torso)).all(axis=1)])
    textures = []
    for seed in (45, 46):
        a = build_avatar(AvatarSpec.random(seed), cache=tmp_path)
        tex = np.asarray(Image.open(a.texture_path)).astype(int)
        uv = t.uv[uv_idx]
        px = tex[((1 - uv[:, 1]) * 2047).astype(int), (uv[:, 0] * 2047).astype(int)]
        ap = a.spec.appearance
        cloth = np.stack([np.asarray(ap.shirt), np.asarray(ap.shirt_secondary), np.asarray(ap.trousers)]) * 255
        skin = np.asarray(ap.skin) * 255
        d_cloth = np.min(np.linalg.norm(px[:, None, :] - cloth[None], axis=-1), axis=1)
        d_skin = np.linalg.norm(px - skin, axis=-1)
        assert (d_cloth < d_skin).mean() > 0.95, "torso must be covered by clothing"
        textures.append(tex)
    assert np.abs(textures[0] - textures[1]).mean() > 5
