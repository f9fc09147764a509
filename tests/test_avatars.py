"""Avatar building: cache, files, ground truth that follows the pose, clothing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from hcgym.synthesis import AvatarSpec, builder
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


def _fake_entry(root, name, size, used):
    d = root / name
    d.mkdir()
    (d / "texture.png").write_bytes(b"x" * size)
    (d / "avatar.json").write_text("{}")
    os.utime(d / "avatar.json", (used, used))
    return d


def test_avatar_cache_prunes_least_recently_used(tmp_path):
    now = 1_000_000.0
    for i, age in enumerate([5000, 4000, 3000, 2000, 100]):  # a0 is the oldest; a4 was used 100 s ago
        _fake_entry(tmp_path, f"a{i}", 1000, now - age)
    stale = tmp_path / ".a9.tmp"
    stale.mkdir()
    os.utime(stale, (now - 7200, now - 7200))
    fresh_tmp = tmp_path / ".a8.tmp"  # a build in progress elsewhere
    fresh_tmp.mkdir()
    os.utime(fresh_tmp, (now - 10, now - 10))
    removed = builder.prune_avatar_cache(tmp_path, max_bytes=2500, keep=("a0",), now=now)
    # a0 is kept by request, so a1, a2 and a3 go; a4 is within the grace period anyway.
    assert removed == ["a1", "a2", "a3"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".a8.tmp", "a0", "a4"]
    # Under the bound nothing is removed; 0 means no bound.
    assert builder.prune_avatar_cache(tmp_path, max_bytes=10_000, now=now) == []
    assert builder.prune_avatar_cache(tmp_path, max_bytes=0, now=now + 1e6) == []
    # The grace period protects entries in use even above the bound.
    assert builder.prune_avatar_cache(tmp_path, max_bytes=1, now=now) == ["a0"]


def test_avatar_cache_counts_shared_textures_once_and_drops_orphaned_ones(tmp_path):
    now = 1_000_000.0
    root, textures = tmp_path / "avatars", tmp_path / "textures"
    root.mkdir()
    textures.mkdir()

    def texture(name, age):
        path = textures / name
        path.write_bytes(b"t" * 1000)
        os.utime(path, (now - age, now - age))
        return path

    shared = texture("k1-aa-t2p2-2048.png", 5000)
    for name, age in (("a0", 5000), ("a1", 4000)):  # two poses of one person share the texture file
        d = _fake_entry(root, name, 10, now - age)
        os.link(shared, d / "shared.png")
    _fake_entry(root, "a2", 10, now - 3000)
    texture("k2-bb-t2p2-2048.png", 5000)  # its avatars are gone: an orphan
    texture("k2-bb-t2p2-1024.png", 10)  # a resampled copy used 10 s ago
    texture("floor-abc.png", 5000)  # not an avatar texture
    # 1000 (shared once) + 3 x 20 bytes = 1060 fit in 1100: nothing is removed but the old orphan.
    assert builder.prune_avatar_cache(root, 1100, textures=textures, now=now) == []
    assert sorted(p.name for p in textures.iterdir()) == ["floor-abc.png", "k1-aa-t2p2-2048.png",
                                                          "k2-bb-t2p2-1024.png"]
    # The shared texture counts for its most recent user (a1): dropping a0 frees 12 bytes, not 1012, so
    # both poses go, which orphans the shared texture, and it goes too (after the grace period).
    assert builder.prune_avatar_cache(root, 50, textures=textures, now=now) == ["a0", "a1"]
    assert not shared.exists() and (textures / "k2-bb-t2p2-1024.png").exists()
    builder.prune_avatar_cache(root, 50, textures=textures, now=now + 1000)
    assert sorted(p.name for p in textures.iterdir()) == ["floor-abc.png"]


def test_avatar_cache_limit_reads_the_environment(monkeypatch):
    from hcgym.errors import SpecError

    monkeypatch.delenv(builder.AVATAR_CACHE_ENV, raising=False)
    assert builder.avatar_cache_limit() == 4096 * 2**20
    monkeypatch.setenv(builder.AVATAR_CACHE_ENV, "1.5")
    assert builder.avatar_cache_limit() == int(1.5 * 2**20)
    for bad in ("-1", "lots", "inf"):
        monkeypatch.setenv(builder.AVATAR_CACHE_ENV, bad)
        with pytest.raises(SpecError, match=builder.AVATAR_CACHE_ENV):
            builder.avatar_cache_limit()


def test_cache_hits_mark_use_and_new_builds_prune(tmp_path, monkeypatch):
    spec = AvatarSpec.random(42)
    first = build_avatar(spec, cache=tmp_path)
    os.utime(first.path / "avatar.json", (1.0, 1.0))
    build_avatar(spec, cache=tmp_path)  # a hit refreshes the entry's last use
    assert (first.path / "avatar.json").stat().st_mtime > 1.0
    old = _fake_entry(tmp_path, "old", 10, 1.0)
    monkeypatch.setenv(builder.AVATAR_CACHE_ENV, "0.000001")  # about one byte
    build_avatar(spec.with_(expression="happy"), cache=tmp_path)
    assert not old.exists() and first.path.exists()  # the fresh entries are within the grace period


def test_build_writes_obj_mtl_png_and_metadata(tmp_path):
    from PIL import Image

    a = build_avatar(AvatarSpec.random(43), cache=tmp_path)
    lines = a.obj_path.read_text().splitlines()
    assert sum(ln.startswith("v ") for ln in lines) == 13718
    assert sum(ln.startswith("f ") for ln in lines) == 27420
    assert sum(ln.startswith("vt ") for ln in lines) > 13718
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
