"""World specs (worlds/spec.py) and the validating reader behind them (core/validate.py).

Bad specs are written into ``tmp_path`` so that every error can be checked to name the file it
came from, the field path inside it and what is allowed there.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

from hcgym.errors import SpecError
from hcgym.geometry import rot_z
from hcgym.synthesis.avatar_spec import AvatarSpec
from hcgym.synthesis.expressions import EXPRESSIONS
from hcgym.synthesis.poses import POSES
from hcgym.validate import Fields, check_number, check_vector, parse_color
from hcgym.worlds import WorldSpec, load_world, shipped_worlds

#: A small valid world; every bad-spec case below is one change to it.
BASE: dict[str, Any] = {
    "name": "tiny",
    "room": {"size": [10.0, 8.0], "floor": {"color": [0.5, 0.5, 0.5], "pattern": "checker"}},
    "lights": [{"direction": [0.0, 0.3, -1.0]}],
    "props": [{"name": "box", "shape": "box", "size": [1.0, 1.0, 1.0], "position": [3.0, 3.0]}],
    "humans": [
        {"name": "alice", "avatar": {"seed": 1}, "position": [0.0, 0.0], "heading": -90},
        {"name": "bob", "avatar": "random", "position": [2.0, 1.0]},
    ],
    "robots": [
        {"name": "drone", "body": "drone", "position": [0.0, -2.0, 1.6], "yaw": 90,
         "cameras": [{"name": "front", "width": 320, "height": 240, "hfov": 60}]},
    ],
}


def write(tmp_path: Path, data: Any, name: str = "world.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def changed(edit: Callable[[dict], None]) -> dict:
    data = copy.deepcopy(BASE)
    edit(data)
    return data


def load_error(tmp_path: Path, data: Any) -> tuple[SpecError, Path]:
    path = write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_world(path)
    return info.value, path


def camera_of(data: dict) -> dict:
    return data["robots"][0]["cameras"][0]


# ===================================================================== shipped worlds
def test_shipped_worlds_are_listed_and_load():
    names = shipped_worlds()
    assert {"active_face_room", "crowd_street"} <= set(names)
    for name in names:
        world = load_world(name)
        assert isinstance(world, WorldSpec)
        assert world.name == name
        assert world.source is not None and Path(world.source).is_file()
        # The ".yaml" spelling names the same world.
        assert load_world(f"{name}.yaml") == world
        assert world.robots and world.camera() is not None


def _camera_frame(world: WorldSpec) -> tuple[np.ndarray, np.ndarray, float]:
    robot, cam = world.camera()
    pos = np.asarray(robot.position) + rot_z(robot.yaw) @ np.asarray(cam.mount_position)
    yaw = math.radians(robot.yaw + cam.mount_yaw)
    forward = np.array([math.cos(yaw), math.sin(yaw)])
    return pos, forward, cam.hfov


def test_crowd_street_has_a_crowd_at_distinct_depths():
    world = load_world("crowd_street")
    assert len(world.humans) >= 12
    assert len({h.name for h in world.humans}) == len(world.humans)
    cam_pos, forward, hfov = _camera_frame(world)
    left = np.array([-forward[1], forward[0]])
    depths, bearings = [], []
    for h in world.humans:
        d = np.asarray(h.position[:2]) - cam_pos[:2]
        depths.append(float(d @ forward))
        bearings.append(math.degrees(math.atan2(float(d @ left), float(d @ forward))))
    depths_sorted = np.sort(depths)
    assert depths_sorted[0] > 1.0, "everyone stands in front of the camera"
    assert np.min(np.diff(depths_sorted)) >= 0.25, f"people share a depth: {depths_sorted}"
    assert depths_sorted[-1] - depths_sorted[0] >= 8.0, f"depth spread too small: {depths_sorted}"
    assert max(abs(b) for b in bearings) < hfov / 2, "every person lies inside the horizontal field of view"
    # Every human has its own avatar (distinct identities), and the per-human pose shortcuts are applied.
    avatars = world.avatars(0)
    assert len({a.identity_key() for a in avatars}) == len(avatars)
    poses = {h.name: a.pose for h, a in zip(world.humans, avatars)}
    assert poses["p01"] == "wave" and poses["p04"] == "arms_up"
    assert avatars[1].expression == "happy"


def test_active_face_room_gives_20m_standoff_around_one_person():
    world = load_world("active_face_room")
    assert len(world.humans) == 1
    person = world.humans[0]
    assert np.allclose(person.position, (0.0, 0.0, 0.0))
    half_x, half_y = world.room.size[0] / 2, world.room.size[1] / 2
    assert world.room.size[0] >= 40.0 and world.room.size[1] >= 40.0
    assert world.room.walls
    # 20 m in every direction from the person stays inside the room.
    assert abs(person.position[0]) + 20.0 <= half_x
    assert abs(person.position[1]) + 20.0 <= half_y
    assert len(world.robots) == 1
    robot = world.robots[0]
    assert len(robot.cameras) == 1
    cam = robot.cameras[0]
    assert (cam.width, cam.height, cam.hfov) == (400, 300, 60.0)
    # The camera looks at the person, who faces it.
    cam_pos, forward, _ = _camera_frame(world)
    to_person = np.asarray(person.position[:2]) - cam_pos[:2]
    assert to_person @ forward > 0.9 * np.linalg.norm(to_person)
    facing = np.array([math.cos(math.radians(person.heading)), math.sin(math.radians(person.heading))])
    assert facing @ -to_person > 0.9 * np.linalg.norm(to_person)


# ===================================================================== a valid spec
def test_base_spec_loads(tmp_path):
    world = load_world(write(tmp_path, BASE))
    assert world.name == "tiny"
    assert world.source == str(tmp_path / "world.yaml")
    assert world.room.size == (10.0, 8.0)
    assert world.room.floor.pattern == "checker"
    assert [h.name for h in world.humans] == ["alice", "bob"]
    assert world.humans[0].avatar == AvatarSpec.random(1)
    assert world.humans[1].avatar is None  # random: drawn at load time from the seed
    assert world.humans[1].position == (2.0, 1.0, 0.0)
    robot, cam = world.camera("drone/front")
    assert world.camera("front") == (robot, cam)
    assert cam.intrinsics().width == 320
    assert world.props[0].size == (1.0, 1.0, 1.0)


def test_unknown_camera_names_the_cameras(tmp_path):
    world = load_world(write(tmp_path, BASE))
    with pytest.raises(SpecError) as info:
        world.camera("rear")
    assert info.value.field == "camera"
    assert "drone/front" in str(info.value) and "'rear'" in str(info.value)


def test_defaults_fill_missing_sections(tmp_path):
    world = load_world(write(tmp_path, {"humans": [{"position": [0, 0]}]}, "bare.yaml"))
    assert world.name == "bare"
    assert len(world.lights) == 1
    assert world.props == () and world.robots == ()
    assert world.humans[0].name == "human0"


# ===================================================================== bad specs
#: (case id, edit of BASE, field path the error must name, fragments of what is allowed)
BAD_SPECS = [
    ("unknown top-level key", lambda d: d.update(colour=[1, 0, 0]), "colour", ["unknown key", "humans", "robots"]),
    ("unknown nested key", lambda d: d["humans"][0].update(postion=[1, 1]), "humans[0].postion",
     ["unknown key", "position"]),
    ("unknown camera key", lambda d: camera_of(d).update(fov=60), "robots[0].cameras[0].fov",
     ["unknown key", "hfov"]),
    ("string for a number", lambda d: camera_of(d).update(hfov="wide"), "robots[0].cameras[0].hfov",
     ["expected a number", "'wide'"]),
    ("string for a heading", lambda d: d["humans"][1].update(heading="north"), "humans[1].heading",
     ["expected a number"]),
    ("mapping for a list", lambda d: d.update(humans={"alice": {"position": [0, 0]}}), "humans",
     ["expected a list", "dict"]),
    ("bool for an integer", lambda d: camera_of(d).update(width=True), "robots[0].cameras[0].width",
     ["expected an integer"]),
    ("hfov 200", lambda d: camera_of(d).update(hfov=200), "robots[0].cameras[0].hfov", ["out of range", "170"]),
    ("negative room size", lambda d: d["room"].update(size=[10, -8]), "room.size[1]", ["out of range", "0.5"]),
    ("room size length", lambda d: d["room"].update(size=[10, 8, 3]), "room.size", ["expected a list of 2"]),
    ("colour component 1.5", lambda d: d["room"]["floor"].update(color=[0.2, 1.5, 0.2]), "room.floor.color[1]",
     ["out of range", "[0, 1]"]),
    ("bad hex colour", lambda d: d.update(background="#12345z"), "background", ["#rrggbb"]),
    ("human outside the room", lambda d: d["humans"][1].update(position=[6.0, 0.0]), "humans[1].position",
     ["outside the room", "x in [-5, 5]"]),
    ("prop outside the room", lambda d: d["props"][0].update(position=[0.0, 4.5]), "props[0].position",
     ["outside the room", "y in [-4, 4]"]),
    ("robot outside the room", lambda d: d["robots"][0].update(position=[0.0, -9.0, 1.6]), "robots[0].position",
     ["outside the room"]),
    ("unknown pose", lambda d: d["humans"][0].update(pose="jump"), "humans[0].pose", ["'jump'", "stand", "wave"]),
    ("unknown expression", lambda d: d["humans"][0].update(expression="bored"), "humans[0].expression",
     ["'bored'", "happy", "neutral"]),
    ("unknown pattern", lambda d: d["room"]["floor"].update(pattern="zigzag"), "room.floor.pattern",
     ["'zigzag'", "checker", "tiles"]),
    ("unknown prop shape", lambda d: d["props"][0].update(shape="cone"), "props[0].shape",
     ["'cone'", "box", "cylinder", "sphere"]),
    ("unknown body", lambda d: d["robots"][0].update(body="tank"), "robots[0].body", ["'tank'", "drone", "wheeled"]),
    ("unknown avatar pose", lambda d: d["humans"][0].update(avatar={"seed": 1, "pose": "jump"}),
     "humans[0].avatar.pose", ["'jump'", "stand"]),
    ("unknown avatar key", lambda d: d["humans"][0].update(avatar={"seed": 1, "hat": "red"}),
     "humans[0].avatar.hat", ["unknown key", "phenotype"]),
    ("unknown phenotype", lambda d: d["humans"][0].update(avatar={"phenotype": {"wings": 0.5}}),
     "humans[0].avatar.phenotype.wings", ["unknown phenotype", "age"]),
    ("negative avatar seed", lambda d: d["humans"][0].update(avatar={"seed": -3}), "humans[0].avatar.seed",
     ["out of range"]),
    ("unknown expression in a mapping",
     lambda d: d["humans"][0].update(expression={"expression": "bored", "expression_intensity": 0.5}),
     "humans[0].expression.expression", ["'bored'", "happy"]),
    ("expression intensity out of range",
     lambda d: d["humans"][0].update(expression={"expression": "sad", "expression_intensity": 2}),
     "humans[0].expression.expression_intensity", ["out of range", "[0, 1]"]),
    ("expression of the wrong type", lambda d: d["humans"][0].update(expression=3), "humans[0].expression",
     ["expected a name"]),
    ("duplicate human names", lambda d: d["humans"][1].update(name="alice"), "humans[1].name",
     ["duplicate name", "'alice'"]),
    ("far <= near", lambda d: camera_of(d).update(near=2.0, far=2.0), "robots[0].cameras[0].far",
     ["greater than near"]),
    ("pitch out of range", lambda d: camera_of(d).update(mount={"pitch": 95}), "robots[0].cameras[0].mount.pitch",
     ["out of range"]),
    ("zero light direction", lambda d: d["lights"][0].update(direction=[0, 0, 0]), "lights[0].direction",
     ["zero vector"]),
    ("no lights", lambda d: d.update(lights=[]), "lights", ["at least one light"]),
]


@pytest.mark.parametrize("edit,field,allowed", [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_names_file_field_and_allowed(tmp_path, edit, field, allowed):
    err, path = load_error(tmp_path, changed(edit))
    msg = str(err)
    assert err.field == field, msg
    assert err.source == str(path), msg
    assert msg.startswith(f"{path}: {field}: "), msg
    for fragment in allowed:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_error_is_a_value_error_with_one_field(tmp_path):
    err, _ = load_error(tmp_path, changed(lambda d: camera_of(d).update(hfov=200)))
    assert isinstance(err, ValueError)
    assert str(err).count("hfov") == 1


def test_missing_floor_texture(tmp_path):
    err, path = load_error(tmp_path, changed(lambda d: d["room"]["floor"].update(texture="textures/wood.png")))
    msg = str(err)
    assert err.field == "room.floor.texture" and err.source == str(path)
    assert "file not found" in msg and str(tmp_path / "textures" / "wood.png") in msg


def test_floor_texture_resolves_next_to_the_world_file(tmp_path):
    from PIL import Image

    (tmp_path / "textures").mkdir()
    Image.new("RGB", (4, 4), (10, 200, 30)).save(tmp_path / "textures" / "wood.png")
    world = load_world(write(tmp_path, changed(lambda d: d["room"]["floor"].update(texture="textures/wood.png"))))
    assert world.room.floor.texture == tmp_path / "textures" / "wood.png"


def test_missing_avatar_file(tmp_path):
    err, path = load_error(tmp_path, changed(lambda d: d["humans"][0].update(avatar="some.json")))
    msg = str(err)
    assert err.field == "humans[0].avatar" and err.source == str(path)
    assert "file not found" in msg and str(tmp_path / "some.json") in msg


@pytest.mark.parametrize("wrapped", [False, True], ids=["spec", "avatar.json"])
def test_avatar_file_is_loaded(tmp_path, wrapped):
    spec = AvatarSpec.random(42).with_(expression="sad", pose="t_pose")
    data = {"spec": spec.to_dict(), "key": spec.content_key()} if wrapped else spec.to_dict()
    (tmp_path / "people").mkdir()
    (tmp_path / "people" / "p42.json").write_text(json.dumps(data))
    world = load_world(write(tmp_path, changed(lambda d: d["humans"][0].update(avatar="people/p42.json"))))
    assert world.humans[0].avatar == spec


def test_bad_avatar_file_names_that_file(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"pose": "jump"}))
    err, _ = load_error(tmp_path, changed(lambda d: d["humans"][0].update(avatar="p.json")))
    assert err.source == str(tmp_path / "p.json")
    assert "pose" in err.field and "'jump'" in str(err)


def test_missing_world_file(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(SpecError) as info:
        load_world(missing)
    msg = str(info.value)
    assert str(missing) in msg and "file not found" in msg
    assert "active_face_room" in msg and "crowd_street" in msg  # what is allowed: the shipped names


def test_unknown_world_name_lists_shipped_worlds():
    with pytest.raises(SpecError) as info:
        load_world("no_such_world")
    msg = str(info.value)
    assert "no_such_world" in msg and "active_face_room" in msg and "crowd_street" in msg


def test_invalid_yaml(tmp_path):
    err, path = load_error(tmp_path, "name: [unclosed\nroom: {size: [4, 4]\n")
    assert err.source == str(path)
    assert str(err).startswith(f"{path}: ")
    assert "not valid YAML" in str(err)
    assert "line" in str(err)  # where in the file


@pytest.mark.parametrize("text", ["", "- 1\n- 2\n", "just a string\n"], ids=["empty", "list", "scalar"])
def test_world_that_is_not_a_mapping(tmp_path, text):
    err, path = load_error(tmp_path, text)
    assert err.source == str(path)
    assert "expected a mapping" in str(err)


# ===================================================================== avatars of humans
RANDOM_WORLD = {
    "room": {"size": [10.0, 10.0]},
    "humans": [
        {"name": "a", "avatar": "random", "position": [0, 0]},
        {"name": "b", "position": [1, 1]},  # avatar defaults to random
        {"name": "c", "avatar": "random", "position": [2, 2], "pose": "wave",
         "expression": {"expression": "sad", "expression_intensity": 0.4}},
    ],
}


def test_random_avatars_follow_the_seed(tmp_path):
    world = load_world(write(tmp_path, RANDOM_WORLD))
    assert all(h.avatar is None for h in world.humans)
    a0, a0_again, a1 = world.avatars(0), world.avatars(0), world.avatars(1)
    assert a0 == a0_again
    assert [a.content_key() for a in a0] == [a.content_key() for a in load_world(write(tmp_path, RANDOM_WORLD)).avatars(0)]
    assert len(a0) == 3
    for x, y in zip(a0, a1):
        assert x.identity_key() != y.identity_key()
    assert len({a.identity_key() for a in a0}) == 3, "humans of one world get different avatars"
    # Different seeds draw different sets of people, not a permutation of the same ones.
    assert not {a.identity_key() for a in a0} & {a.identity_key() for a in world.avatars(7)}


def test_overrides_apply_to_random_avatars(tmp_path):
    world = load_world(write(tmp_path, RANDOM_WORLD))
    assert world.humans[2].overrides == {"pose": "wave", "expression": "sad", "expression_intensity": 0.4}
    plain_humans = RANDOM_WORLD["humans"][:2] + [{"name": "c", "position": [2, 2]}]
    plain_world = load_world(write(tmp_path, {**RANDOM_WORLD, "humans": plain_humans}, "plain.yaml"))
    for seed in (0, 3):
        a, b, c = world.avatars(seed)
        assert (c.pose, c.expression, c.expression_intensity) == ("wave", "sad", 0.4)
        assert (a.pose, a.expression) == ("stand", "neutral")
        # The override changes pose and expression only: the same person as without it.
        plain = plain_world.avatars(seed)[2]
        assert (plain.pose, plain.expression) == ("stand", "neutral")
        assert c.identity_key() == plain.identity_key()
        assert c.content_key() != plain.content_key()


def test_overrides_replace_the_avatar_pose_and_expression(tmp_path):
    avatar = {"seed": 5, "pose": "arms_up", "expression": "angry", "expression_intensity": 0.9}
    data = changed(lambda d: d["humans"][0].update(avatar=avatar, pose="wave", expression="happy"))
    world = load_world(write(tmp_path, data))
    spec = world.humans[0].avatar
    assert spec.pose == "wave" and spec.expression == "happy"
    assert spec.identity_key() == AvatarSpec.random(5).identity_key()
    assert world.avatars(0)[0] == spec == world.avatars(9)[0]  # explicit avatars ignore the world seed
    # Without the shortcuts the avatar's own pose and expression stay.
    world2 = load_world(write(tmp_path, changed(lambda d: d["humans"][0].update(avatar=avatar)), "w2.yaml"))
    assert (world2.humans[0].avatar.pose, world2.humans[0].avatar.expression) == ("arms_up", "angry")
    assert world2.humans[0].avatar.expression_intensity == 0.9


def test_avatar_seed_integer_shortcut(tmp_path):
    world = load_world(write(tmp_path, changed(lambda d: d["humans"][0].update(avatar=11))))
    assert world.humans[0].avatar == AvatarSpec.random(11)


# ===================================================================== core/validate.py
def test_fields_reader():
    f = Fields({"a": 1, "b": "x", "c": [1, 2, 3], "d": True}, "root.sub", "f.yaml")
    assert f.integer("a", lo=0, hi=2) == 1
    assert f.string("b", choices=("x", "y")) == "x"
    assert f.vector("c", 3) == (1.0, 2.0, 3.0)
    assert f.boolean("d") is True
    assert f.number("missing", 2.5) == 2.5
    f.done()
    with pytest.raises(SpecError) as info:
        f.raw("required")
    assert str(info.value) == "f.yaml: root.sub.required: is required"
    g = Fields({"a": 1, "zz": 2, "yy": 3}, "", None)
    g.number("a")
    with pytest.raises(SpecError) as info:
        g.done()
    assert info.value.field == "yy"  # the first unknown key, sorted
    assert "allowed here: a" in str(info.value)
    with pytest.raises(SpecError, match=r"^x\.b: unknown value 'z' \(allowed: x, y\)$"):
        Fields({"b": "z"}, "x").string("b", choices=("y", "x"))
    with pytest.raises(SpecError, match="expected true or false"):
        Fields({"d": "yes"}, "").boolean("d")
    with pytest.raises(SpecError, match="expected a mapping, got list"):
        Fields([1], "p")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "1", None])
def test_check_number_rejects_non_numbers(value):
    with pytest.raises(SpecError, match="expected a number"):
        check_number(value, "k", "s.yaml")


def test_check_number_and_vector_ranges():
    assert check_number(0, "k", None, 0.0, 1.0) == 0.0
    assert check_number(1, "k", None, 0.0, 1.0) == 1.0
    with pytest.raises(SpecError, match=r"out of range \[0, 1\]"):
        check_number(1.01, "k", None, 0.0, 1.0)
    with pytest.raises(SpecError, match=r"out of range \[-inf, 3\]"):
        check_number(4, "k", None, None, 3.0)
    assert check_vector([1, 2], "v", None, (2, 3)) == (1.0, 2.0)
    with pytest.raises(SpecError, match="expected a list of 2 or 3 numbers"):
        check_vector([1], "v", None, (2, 3))
    with pytest.raises(SpecError, match="expected a list of 3 numbers"):
        check_vector("abc", "v", None, 3)
    with pytest.raises(SpecError) as info:
        check_vector([0, 1, "x"], "v", None, 3)
    assert info.value.field == "v[2]"


def test_parse_color():
    assert parse_color("#ff0080", "c", None) == pytest.approx((1.0, 0.0, 128 / 255))
    assert parse_color([0, 0.5, 1], "c", None) == (0.0, 0.5, 1.0)
    for bad in ("#fff", "red", [0.1, 0.2], [0, 0, -0.1]):
        with pytest.raises(SpecError) as info:
            parse_color(bad, "c", "w.yaml")
        assert info.value.field.startswith("c") and info.value.source == "w.yaml"


def test_every_shipped_pose_and_expression_is_accepted(tmp_path):
    humans = [{"name": f"h{i}", "avatar": {"seed": i}, "position": [0, 0], "pose": pose,
               "expression": expr} for i, (pose, expr) in enumerate(zip(sorted(POSES), sorted(EXPRESSIONS)))]
    world = load_world(write(tmp_path, {"room": {"size": [4, 4]}, "humans": humans}))
    assert [h.avatar.pose for h in world.humans] == sorted(POSES)[:len(humans)]
    assert [h.avatar.expression for h in world.humans] == sorted(EXPRESSIONS)[:len(humans)]
