"""Webots export and backend, checked without Webots.

The exported files are tokenized and parsed by the small VRML reader of ``tests/support/vrml.py``; the
backend runs against the fake ``controller`` module of ``tests/support/webots_fakes.py``, whose Supervisor
is built from the exported ``.wbt``.
Nothing here proves that Webots itself accepts the files or behaves as its documentation says.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hcgym.camera import CameraPose
from hcgym.envs.backends import webots as wb
from hcgym.errors import DependencyNotInstalled, SpecError
from hcgym.geometry import camera_rotation, rot_z
from hcgym.synthesis.builder import Avatar, build_avatar
from hcgym.worlds import WorldSpec, load_world
from hcgym.worlds import webots_export as wx
from support.vrml import Parser, read_proto, read_wbt, rotation_of, tokenize
from support.webots_fakes import fake_controller

WORLDS = ("active_face_room", "crowd_street")
BASE_NODES = {"WorldInfo", "Viewpoint", "Background", "DirectionalLight", "Solid", "Shape", "PBRAppearance", "Box",
              "Cylinder", "Sphere", "Mesh", "ImageTexture", "Robot", "Camera", "RangeFinder", "Recognition"}


# ========================================================================= fixtures
@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[WorldSpec, Path]]:
    out = {}
    for name in WORLDS:
        world = load_world(name)
        wbt = wx.export_webots(world, tmp_path_factory.mktemp("webots") / name, seed=0)
        out[name] = (world, wbt)
    return out


# ===================================================================== (a) syntax
@pytest.mark.parametrize("name", WORLDS)
def test_export_parses_as_vrml(exported, name):
    world, wbt = exported[name]
    assert wbt.name == f"{name}.wbt" and wbt.parent.name == name
    w = read_wbt(wbt)
    types_ = [n.type for n in w.nodes]
    assert types_[:3] == ["WorldInfo", "Viewpoint", "Background"]
    info = w.nodes[0].fields
    assert info["coordinateSystem"] == "ENU" and info["basicTimeStep"] == (wx.BASIC_TIME_STEP_MS,)
    assert w.nodes[2].fields["skyColor"] == pytest.approx(list(world.background), abs=1e-6)
    lights = [n for n in w.nodes if n.type == "DirectionalLight"]
    assert len(lights) == len(world.lights)
    for n, light in zip(lights, world.lights):
        assert n.fields["direction"] == pytest.approx(light.direction)
        assert n.fields["color"] == pytest.approx(light.color)
        assert n.fields["intensity"] == pytest.approx((light.intensity,))
    solids = {n.fields["name"]: n for n in w.nodes if n.type == "Solid"}
    assert "hcgym_floor" in solids
    walls = [k for k in solids if k.startswith("hcgym_wall")]
    assert len(walls) == (4 if world.room.walls else 0)
    for prop in world.props:
        n = solids[prop.name]
        geom = n.children()[0].fields["geometry"]
        assert geom.type == {"box": "Box", "cylinder": "Cylinder", "sphere": "Sphere"}[prop.shape]
        assert n.fields["translation"][:2] == pytest.approx(prop.position[:2])
        assert rotation_of(n.fields["rotation"]) == pytest.approx(rot_z(prop.yaw), abs=1e-6)
    # every PROTO parses, is named like its file, and has the instance fields
    for rel in w.externprotos:
        proto = read_proto(wbt.parent / rel)
        assert proto.name == Path(rel).stem
        assert set(proto.interface) == {"translation", "rotation", "name", "recognitionColors"}
        assert proto.body.type == "Solid"
        shape = proto.body.children()[0]
        assert shape.fields["geometry"].type == "Mesh"
        app = shape.fields["appearance"]
        assert app.type == "PBRAppearance" and app.fields["roughness"] == (1.0,) and app.fields["metalness"] == (0.0,)
        assert app.fields["baseColorMap"].type == "ImageTexture"


def test_tokenizer_rejects_bad_input():
    with pytest.raises(AssertionError):
        tokenize("Solid { name \"a\" ")
    with pytest.raises(AssertionError):
        tokenize("Solid { ] }")
    with pytest.raises(AssertionError):
        tokenize("Solid { name @ }")
    with pytest.raises(AssertionError):
        Parser(tokenize("Solid { translation 1 2 3 translation 1 2 3 }")).node()
    n = Parser(tokenize('DEF A Solid { children [ Shape { } ] name "x\\"y" c [ 1 0 0, 0 1 0 ] b TRUE }')).node()
    assert n.def_ == "A" and n.fields["name"] == 'x"y' and n.fields["c"] == [1, 0, 0, 0, 1, 0]


# ========================================================= (b) referenced files
@pytest.mark.parametrize("name", WORLDS)
def test_references_are_local_and_exist(exported, name):
    world, wbt = exported[name]
    w = read_wbt(wbt)
    declared = set()
    strings = list(w.strings)
    for rel in w.externprotos:
        assert not Path(rel).is_absolute()
        assert (wbt.parent / rel).is_file(), rel
        declared.add(Path(rel).stem)
        proto = read_proto(wbt.parent / rel)
        strings += proto.strings
        urls = [u for n in proto.body.walk() for u in n.fields.get("url", [])]
        assert len(urls) == 2
        for u in urls:
            assert not Path(u).is_absolute()
            assert (proto.path.parent / u).resolve().is_file(), u
            assert (proto.path.parent / u).resolve().is_relative_to(wbt.parent.resolve())
    for n in w.all_nodes():
        assert n.type in BASE_NODES or n.type in declared, f"{n.type} is neither a base node nor an EXTERNPROTO"
        for u in n.fields.get("url", []):
            assert (wbt.parent / u).is_file(), u
    assert len(declared) == len({a.key for a in map(build_avatar, world.avatars(0))})
    for s in strings:
        assert not s.lower().startswith(("http:", "https:", "webots:")), s
    assert not re.search(r"https?://|webots://", wbt.read_text())
    for mesh_dir in (wbt.parent / "meshes").iterdir():
        assert {p.name for p in mesh_dir.iterdir()} == {"avatar.obj", "avatar.mtl", "texture.png"}


# ============================================================ (c) matches the spec
@pytest.mark.parametrize("name", WORLDS)
def test_humans_and_robots_match_spec(exported, name):
    world, wbt = exported[name]
    w = read_wbt(wbt)
    defs = w.defs
    avatars = [build_avatar(s) for s in world.avatars(0)]
    for i, (h, a) in enumerate(zip(world.humans, avatars)):
        n = defs[wx.human_def(i)]
        assert n.type == wx.proto_name(a.key)
        assert n.fields["name"] == h.name
        place = Avatar.placement(h.position, h.heading)
        assert n.fields["translation"] == pytest.approx(place[:3, 3], abs=1e-6)
        r = rotation_of(n.fields["rotation"])
        assert r == pytest.approx(place[:3, :3], abs=1e-5)
        assert r == pytest.approx(rot_z(h.heading + 90.0), abs=1e-5)
        # the recognition colour decodes to this human's segmentation id
        rgb = np.rint(np.array(n.fields["recognitionColors"]) * 255).astype(np.uint8)
        bgra = bytes([rgb[2], rgb[1], rgb[0], 255])
        assert wb.segmentation_ids(bgra, 1, 1, len(world.humans))[0, 0] == i + 1
    for robot in world.robots:
        n = defs[wx.robot_def(robot.name)]
        assert n.type == "Robot"
        assert n.fields["name"] == robot.name
        assert n.fields["controller"] == "<extern>" and n.fields["supervisor"] is True
        assert n.fields["translation"] == pytest.approx(robot.position, abs=1e-6)
        r_body = rotation_of(n.fields["rotation"])
        assert r_body == pytest.approx(rot_z(robot.yaw), abs=1e-5)
        devices = {c.fields["name"]: c for c in n.children() if c.type in ("Camera", "RangeFinder")}
        for cam in robot.cameras:
            c, d = devices[cam.name], devices[cam.name + "_depth"]
            assert (c.type, d.type) == ("Camera", "RangeFinder")
            for dev in (c, d):
                assert dev.fields["width"] == (cam.width,) and dev.fields["height"] == (cam.height,)
                assert dev.fields["fieldOfView"][0] == pytest.approx(math.radians(cam.hfov), abs=1e-6)
                assert dev.fields["translation"] == pytest.approx(cam.mount_position, abs=1e-6)
                # Webots camera axes (x forward, y left, z up) in the world vs the spec's OpenCV pose
                r_cam = r_body @ rotation_of(dev.fields["rotation"])
                r_cv = camera_rotation(robot.yaw + cam.mount_yaw, cam.mount_pitch)
                assert r_cam[:, 0] == pytest.approx(r_cv[:, 2], abs=1e-5)  # forward
                assert -r_cam[:, 1] == pytest.approx(r_cv[:, 0], abs=1e-5)  # right
                assert -r_cam[:, 2] == pytest.approx(r_cv[:, 1], abs=1e-5)  # down
            assert c.fields["near"][0] == pytest.approx(cam.near) and c.fields["far"][0] == pytest.approx(cam.far)
            rec = c.fields["recognition"]
            assert rec.type == "Recognition" and rec.fields["segmentation"] is True
            assert d.fields["minRange"][0] == pytest.approx(cam.near)
            assert d.fields["maxRange"][0] == pytest.approx(cam.far)


# ================================================================ (d) atomic export
def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    world = load_world("active_face_room")
    out = tmp_path / "out"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(wx, "_write_proto", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        wx.export_webots(world, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_reexport_keeps_previous(tmp_path, monkeypatch):
    world = load_world("active_face_room")
    out = tmp_path / "out"
    wbt = wx.export_webots(world, out)
    before = wbt.read_text()
    monkeypatch.setattr(wx, "_world_text", lambda *a, **k: (_ for _ in ()).throw(OSError("no space")))
    with pytest.raises(OSError):
        wx.export_webots(world, out)
    assert wbt.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    monkeypatch.undo()
    assert wx.export_webots(world, out) == wbt  # a previous export is replaced
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_export_refuses_foreign_directory(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(SpecError, match="not an hcgym Webots export"):
        wx.export_webots(load_world("active_face_room"), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    with pytest.raises(SpecError, match="seed"):
        wx.export_webots(load_world("active_face_room"), tmp_path / "x", seed=-1)


def test_random_avatars_follow_the_seed(tmp_path, monkeypatch):
    import hcgym.synthesis.builder as builder

    def fake_build(spec):
        d = tmp_path / "cache" / spec.content_key()
        d.mkdir(parents=True, exist_ok=True)
        for f in ("avatar.obj", "avatar.mtl", "texture.png"):
            (d / f).write_text(f)
        return types.SimpleNamespace(key=spec.content_key(), path=d)

    monkeypatch.setattr(builder, "build_avatar", fake_build)
    world = WorldSpec.from_dict({"name": "rnd", "humans": [{"name": "a", "position": [1, 2]}],
                                 "robots": [{"name": "r"}]})
    types_ = []
    for seed in (1, 2):
        w = read_wbt(wx.export_webots(world, tmp_path / f"s{seed}", seed=seed))
        types_.append(w.defs["HUMAN_0"].type)
        assert types_[-1] == wx.proto_name(world.avatars(seed)[0].content_key())
    assert types_[0] != types_[1]


def test_cli_prints_wbt_path(tmp_path, capsys):
    from hcgym.scripts import export_webots as cmd

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["export-webots", "active_face_room", str(tmp_path / "o"), "--seed", "3"])
    assert args.func(args) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == tmp_path / "o" / "active_face_room.wbt" and printed.is_file()


# ========================================================= (e) backend, fake Webots
def test_backend_without_webots(monkeypatch):
    monkeypatch.setitem(sys.modules, "controller", None)  # makes `import controller` fail
    with pytest.raises(DependencyNotInstalled) as e:
        wb.WebotsBackend()
    msg = str(e.value)
    for part in ("R2023b", "hcgym export-webots", "webots-controller", "WEBOTS_HOME", "extern controller"):
        assert part in msg
    from hcgym.envs.backends import make_backend

    with pytest.raises(DependencyNotInstalled):
        make_backend("webots")


def _loaded(exported, monkeypatch, name="active_face_room", **kw):
    world, wbt = exported[name]
    mod = fake_controller(wbt, world.robots[0].name, **kw)
    monkeypatch.setitem(sys.modules, "controller", mod)
    backend = wb.WebotsBackend()
    backend.load(world, seed=0)
    return world, backend, backend._sup


def test_backend_loads_moves_and_renders(exported, monkeypatch):
    world, backend, sup = _loaded(exported, monkeypatch)
    assert backend.name == "webots"
    person = sup.nodes["HUMAN_0"].fields
    backend.set_human_pose("person", position=(1.0, 2.5), heading=30.0)
    assert person["translation"].value == pytest.approx([1.0, 2.5, 0.0])
    assert person["rotation"].value == pytest.approx([0.0, 0.0, 1.0, math.radians(120.0)])
    drone = sup.nodes["ROBOT_DRONE"].fields
    backend.set_robot_pose("drone", position=(0.5, -3.0, 1.4), yaw=80.0)
    assert drone["translation"].value == pytest.approx([0.5, -3.0, 1.4])
    assert drone["rotation"].value == pytest.approx([0.0, 0.0, 1.0, math.radians(80.0)])
    n = len(sup.steps)
    backend.step(0.32)
    assert len(sup.steps) == n + 10

    frame = backend.render()
    assert frame.rgb.shape == (300, 400, 3) and frame.rgb.dtype == np.uint8
    assert (frame.rgb[..., 0] == np.arange(400)[None, :] % 256).all()  # R
    assert (frame.rgb[..., 1] == np.arange(300)[:, None] % 256).all()  # G
    assert (frame.rgb[..., 2] == 7).all()  # B
    assert frame.depth.dtype == np.float32 and frame.depth.shape == (300, 400)
    assert np.array_equal(frame.depth[:, :-3], sup.devices["front_depth"].ranges()[:, :-3])
    assert frame.depth[:, 0] == pytest.approx(1.0)
    assert np.isinf(frame.depth[:, -3:]).all() and np.isfinite(frame.depth[:, :-3]).all()
    assert frame.segmentation.dtype == np.int32
    assert (frame.segmentation[:5, :5] == 1).all()
    assert (frame.segmentation[-5:, -5:] == 0).all() and frame.segmentation.sum() == 25
    assert frame.camera == "front" and len(frame.humans) == 1
    # rendering used the robot pose it had, then left the robot there
    assert sup.steps[-1]["ROBOT_DRONE.translation"] == pytest.approx([0.5, -3.0, 1.4])
    assert drone["rotation"].value == pytest.approx([0.0, 0.0, 1.0, math.radians(80.0)])
    assert frame.world_to_camera[:3, :3].T @ [0, 0, 1] == pytest.approx(
        camera_rotation(80.0, 0.0)[:, 2], abs=1e-9)


def test_backend_pose_override_moves_robot_for_one_render(exported, monkeypatch):
    world, backend, sup = _loaded(exported, monkeypatch, name="crowd_street")
    w = read_wbt(exported["crowd_street"][1])
    cam_node = next(c for c in w.defs["ROBOT_DRONE"].children() if c.type == "Camera")
    pose = CameraPose.from_angles((1.0, 2.0, 1.7), yaw=35.0, pitch=12.0)
    frame = backend.render(pose=pose)
    at_step = sup.steps[-1]
    r_body = rotation_of(at_step["ROBOT_DRONE.rotation"])
    t_body = np.array(at_step["ROBOT_DRONE.translation"])
    cam_pos = t_body + r_body @ np.array(cam_node.fields["translation"])
    r_cam = r_body @ rotation_of(cam_node.fields["rotation"])  # Webots camera axes in the world
    assert cam_pos == pytest.approx(pose.position, abs=1e-6)
    assert r_cam[:, 0] == pytest.approx(pose.rotation[:, 2], abs=1e-6)
    assert -r_cam[:, 1] == pytest.approx(pose.rotation[:, 0], abs=1e-6)
    assert -r_cam[:, 2] == pytest.approx(pose.rotation[:, 1], abs=1e-6)
    # the frame reports the requested pose, and the robot goes back to its own pose afterwards
    assert frame.camera_position == pytest.approx(pose.position)
    robot = world.robots[0]
    assert sup.nodes["ROBOT_DRONE"].fields["translation"].value == pytest.approx(robot.position)
    assert sup.nodes["ROBOT_DRONE"].fields["rotation"].value == pytest.approx([0, 0, 1, math.radians(robot.yaw)])
    # three humans painted in the fake segmentation: ids 1..3, all 14 humans found by DEF
    assert [int((frame.segmentation == k).sum()) for k in (1, 2, 3)] == [25, 25, 25]
    assert len(backend._human_fields) == 14


def test_backend_reports_missing_defs_and_wrong_robot(exported, monkeypatch):
    with pytest.raises(SpecError, match="DEF HUMAN_0 not found"):
        _loaded(exported, monkeypatch, drop=("HUMAN_0",))
    world, wbt = exported["active_face_room"]
    monkeypatch.setitem(sys.modules, "controller", fake_controller(wbt, "drone"))
    with pytest.raises(SpecError, match="--robot-name=other"):
        wb.WebotsBackend(robot="other").load(world)
    # a seed that gives other avatars than the exported ones is caught by the PROTO type names
    other = replace(world, humans=(replace(world.humans[0], avatar=load_world("crowd_street").avatars(0)[0]),))
    with pytest.raises(SpecError, match="other avatars"):
        wb.WebotsBackend().load(other)


# ===================================================================== (f) conversions
def test_bgra_to_rgb():
    bgra = np.array([[[1, 2, 3, 255], [4, 5, 6, 0]]], np.uint8)
    rgb = wb.bgra_to_rgb(bgra.tobytes(), 2, 1)
    assert rgb.tolist() == [[[3, 2, 1], [6, 5, 4]]] and rgb.flags.c_contiguous
    with pytest.raises(ValueError):
        wb.bgra_to_rgb(bytes(7), 2, 1)


def test_range_to_depth():
    r = np.array([[1.0, 2.0, np.inf], [60.0, 0.0, 0.02]], np.float32)
    d = wb.range_to_depth(r.ravel().tolist(), 3, 2, max_range=60.0, min_range=0.03)
    assert d.dtype == np.float32
    assert d[0, :2].tolist() == [1.0, 2.0] and np.isinf(d[0, 2]) and np.isinf(d[1]).all()
    assert np.array_equal(wb.range_to_depth(r.tobytes(), 3, 2, 60.0, 0.03), d)
    # Euclidean ranges of a wall 2 m in front of the camera become a constant z-depth of 2
    w, h, hfov = 8, 6, 90.0
    f = (w / 2) / math.tan(math.radians(hfov) / 2)
    u = (np.arange(w) + 0.5 - w / 2) / f
    v = (np.arange(h) + 0.5 - h / 2) / f
    euclid = 2.0 * np.sqrt(1 + u[None, :] ** 2 + v[:, None] ** 2)
    assert wb.range_to_depth(euclid, w, h, 60.0, planar=False, hfov_deg=hfov) == pytest.approx(np.full((h, w), 2.0))


def test_segmentation_colors_round_trip():
    n = wx.MAX_HUMANS
    colors = np.array([wx.recognition_color(k) for k in range(n)], np.uint8)
    assert len({tuple(c) for c in colors}) == n and not (colors == 0).all(axis=1).any()
    assert set(np.unique(colors)) <= {17 * level for level in range(16)}
    bgra = np.concatenate([colors[:, ::-1], np.full((n, 1), 255, np.uint8)], axis=1)
    assert wb.segmentation_ids(bgra.tobytes(), n, 1, n)[0].tolist() == list(range(1, n + 1))
    # off by a few levels of 8-bit rounding still decodes; ids beyond the humans and black give 0
    noisy = np.clip(bgra.astype(int) + np.array([3, -4, 8, 0]), 0, 255).astype(np.uint8)
    assert wb.segmentation_ids(noisy.tobytes(), n, 1, n)[0].tolist() == list(range(1, n + 1))
    assert wb.segmentation_ids(bgra.tobytes(), n, 1, 5)[0].tolist() == [1, 2, 3, 4, 5] + [0] * (n - 5)
    assert wb.segmentation_ids(bytes(4), 1, 1, 3)[0, 0] == 0
    assert wx.recognition_color(0) == (136, 0, 0)  # human 0: a clear red in the Webots overlay
    with pytest.raises(ValueError):
        wx.recognition_color(n)


def test_pose_field_values():
    t, r = wb.human_field_values((1.0, 2.0, 0.0), -90.0)
    assert t == [1.0, 2.0, 0.0] and r == pytest.approx([0, 0, 1, 0])
    t, r = wb.robot_field_values(np.array([0.0, -2.0, 1.55]), 90.0)
    assert t == [0.0, -2.0, 1.55] and r == pytest.approx([0, 0, 1, math.pi / 2])
    assert all(type(x) is float for x in t + r)
    # a camera pose that the mount gives directly leaves the body unrotated and behind the mount
    world = load_world("crowd_street")
    robot, cam = world.camera()
    yaw, pitch = robot.yaw + cam.mount_yaw, cam.mount_pitch
    mount_world = np.asarray(robot.position) + rot_z(robot.yaw) @ np.asarray(cam.mount_position)
    t, r = wb.robot_pose_for_camera(cam, mount_world, camera_rotation(yaw, pitch))
    assert t == pytest.approx(robot.position, abs=1e-9)
    assert rotation_of(tuple(r)) == pytest.approx(rot_z(robot.yaw), abs=1e-9)
    # SFRotation round trip
    m = rot_z(33.0) @ wx.rot_y(-20.0)
    assert wx.rotation_matrix(wx.rotation_field(m)) == pytest.approx(m, abs=1e-12)
