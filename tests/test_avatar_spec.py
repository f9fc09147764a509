"""AvatarSpec (synthesis/avatar_spec.py): sampling, validation, serialisation and derived values.

No avatar is built here; only ``test_labels_match_the_installed_anny_model`` loads the anny model.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.geometry import rotvec_to_matrix
from hcgym.synthesis.avatar_spec import HAIR_STYLES, SHIRT_PATTERNS, SLEEVES, Appearance, AvatarSpec
from hcgym.synthesis.expressions import EXPRESSIONS
from hcgym.synthesis.labels import BODY_LOCAL_CHANGES, BONES, FACE_LOCAL_CHANGES, FACIAL_ACTIONS, PHENOTYPES
from hcgym.synthesis.poses import POSES

SEEDS = range(40)
RACES = ("african", "asian", "caucasian")


# ===================================================================== random specs
def test_random_is_deterministic():
    for seed in (0, 1, 12345, 2**40):
        a, b = AvatarSpec.random(seed), AvatarSpec.random(seed)
        assert a == b
        assert a.content_key() == b.content_key()
        assert a.identity_key() == b.identity_key()
        assert a.to_dict() == b.to_dict()


def test_random_differs_across_seeds():
    specs = [AvatarSpec.random(s) for s in SEEDS]
    assert len({s.content_key() for s in specs}) == len(specs)
    assert len({s.identity_key() for s in specs}) == len(specs)
    # Not just the keys: the face shapes themselves differ.
    faces = np.array([[s.local_changes[k] for k in FACE_LOCAL_CHANGES] for s in specs])
    assert np.min(np.abs(faces[1:] - faces[:-1]).max(axis=1)) > 0.1
    # The population is mixed: both genders, several hair styles, several shirt patterns.
    genders = {s.phenotype["gender"] > 0.5 for s in specs}
    assert genders == {True, False}
    assert len({s.appearance.hair_style for s in specs}) >= 3
    assert len({s.appearance.shirt_pattern for s in specs}) >= 3


def test_random_face_local_changes_are_mirrored_and_bounded():
    for seed in SEEDS:
        lc = AvatarSpec.random(seed).local_changes
        assert set(lc) == set(FACE_LOCAL_CHANGES), "every face local change is set, no body ones"
        assert all(-0.6 <= v <= 0.6 for v in lc.values())
        for name in FACE_LOCAL_CHANGES:
            if name.startswith("l-"):
                assert lc[name] == lc["r-" + name[2:]], name
    # The values use the range: not all tiny, not all equal.
    values = np.array(list(AvatarSpec.random(3).local_changes.values()))
    assert values.std() > 0.2 and np.abs(values).max() > 0.45


def test_random_phenotypes_are_adult():
    for seed in SEEDS:
        ph = AvatarSpec.random(seed).phenotype
        assert set(ph) == set(PHENOTYPES)
        assert all(0.0 <= v <= 1.0 for v in ph.values())
        # anny's age anchors: child 1/3, young adult 2/3, old 1.
        assert 0.5 < ph["age"] <= 1.0, ph["age"]
        assert ph["gender"] <= 0.15 or ph["gender"] >= 0.85  # clearly female or male
        for k in ("muscle", "weight", "height", "proportions"):
            assert 0.2 <= ph[k] <= 0.85, (k, ph[k])
        assert sum(ph[r] for r in RACES) == pytest.approx(1.0)


def test_random_appearance_is_valid():
    for seed in SEEDS:
        a = AvatarSpec.random(seed).appearance
        assert a.hair_style in HAIR_STYLES and a.shirt_pattern in SHIRT_PATTERNS and a.sleeves in SLEEVES
        for c in (a.skin, a.eyes, a.hair, a.shirt, a.shirt_secondary, a.trousers, a.shoes):
            assert len(c) == 3 and all(0.0 <= x <= 1.0 for x in c)
        assert a.shirt != a.shirt_secondary


# ===================================================================== serialisation
def _rich_spec() -> AvatarSpec:
    return AvatarSpec.random(9).with_(
        expression="surprise", expression_intensity=0.6, pose="wave",
        facial_actions={"eyeBlinkLeft": 0.7, "tongueOut": 0.2},
        bone_rotations={"head": (10.0, 0.0, -5.0), "wrist.R": (0.0, 20.0, 0.0)},
        appearance=replace(AvatarSpec.random(9).appearance, brows=(0.1, 0.1, 0.1), lips=None),
    )


@pytest.mark.parametrize("spec", [AvatarSpec(), AvatarSpec.random(4), _rich_spec()], ids=["default", "random", "rich"])
def test_to_dict_from_dict_round_trip(spec):
    d = spec.to_dict()
    back = AvatarSpec.from_dict(d)
    assert back == spec
    assert back.content_key() == spec.content_key()
    assert back.identity_key() == spec.identity_key()
    # Through JSON, as written to avatar.json.
    via_json = AvatarSpec.from_dict(json.loads(json.dumps(d)))
    assert via_json == spec
    assert via_json.content_key() == spec.content_key()


def test_to_dict_is_plain_json_data():
    d = _rich_spec().to_dict()
    assert json.loads(json.dumps(d)) == d  # no tuples or numpy scalars left over
    assert d["bone_rotations"]["head"] == [10.0, 0.0, -5.0]
    assert d["appearance"]["lips"] is None


def test_from_dict_seed_with_overrides():
    spec = AvatarSpec.from_dict({"seed": 7, "expression": "happy", "phenotype": {"age": 0.9},
                                 "appearance": {"hair_style": "bald"}})
    base = AvatarSpec.random(7)
    assert spec.expression == "happy"
    assert spec.phenotype == {**base.phenotype, "age": 0.9}
    assert spec.local_changes == base.local_changes
    assert spec.appearance == replace(base.appearance, hair_style="bald")
    assert AvatarSpec.from_dict({"seed": 7}) == base


def test_content_key_covers_every_field():
    base = AvatarSpec.random(2)
    variants = [
        base.with_(pose="t_pose"), base.with_(expression="sad"), base.with_(expression_intensity=0.5),
        base.with_(facial_actions={"jawOpen": 0.3}), base.with_(bone_rotations={"head": (0.0, 0.0, 5.0)}),
        base.with_(appearance=replace(base.appearance, shirt=(1.0, 0.0, 0.0))),
        base.with_(local_changes={**base.local_changes, "nose-hump-incr": 0.9}),
        base.with_(phenotype={**base.phenotype, "weight": 0.66}),
    ]
    keys = {v.content_key() for v in variants} | {base.content_key()}
    assert len(keys) == len(variants) + 1


def test_identity_key_ignores_pose_expression_and_clothes():
    base = AvatarSpec.random(5)
    app = base.appearance
    dressed = base.with_(
        pose="arms_up", expression="angry", expression_intensity=0.3, facial_actions={"cheekPuff": 0.5},
        bone_rotations={"neck01": (0.0, 0.0, 30.0)},
        appearance=replace(app, shirt=(0.9, 0.1, 0.1), shirt_secondary=(0.1, 0.9, 0.1), trousers=(0.5, 0.5, 0.5),
                           shoes=(1.0, 1.0, 1.0), shirt_pattern="checks" if app.shirt_pattern != "checks" else "plain",
                           sleeves="long" if app.sleeves == "short" else "short"),
    )
    assert dressed.identity_key() == base.identity_key()
    assert dressed.content_key() != base.content_key()


def test_identity_key_changes_with_identity():
    base = AvatarSpec.random(5)
    name = "nose-hump-incr"
    face = base.with_(local_changes={**base.local_changes, name: base.local_changes[name] + 0.1})
    assert face.identity_key() != base.identity_key()
    assert base.with_(phenotype={**base.phenotype, "age": 0.7}).identity_key() != base.identity_key()
    assert base.with_(appearance=replace(base.appearance, skin=(0.2, 0.1, 0.05))).identity_key() != base.identity_key()
    assert base.with_(appearance=replace(base.appearance, hair_style="long" if base.appearance.hair_style != "long"
                                         else "bald")).identity_key() != base.identity_key()


# ===================================================================== validation
BAD_CONSTRUCTIONS = [
    ("unknown phenotype", dict(phenotype={"wingspan": 0.5}), "phenotype.wingspan", "unknown phenotype"),
    ("phenotype out of range", dict(phenotype={"age": 1.5}), "phenotype.age", "out of range"),
    ("phenotype not a number", dict(phenotype={"age": "old"}), "phenotype.age", "expected a number"),
    ("unknown local change", dict(local_changes={"nose-length-incr": 0.2}), "local_changes.nose-length-incr",
     "unknown anny local change"),
    ("local change out of range", dict(local_changes={"nose-hump-incr": -1.2}), "local_changes.nose-hump-incr",
     "out of range"),
    ("unknown expression", dict(expression="bored"), "expression", "allowed: neutral, happy"),
    ("intensity out of range", dict(expression_intensity=1.5), "expression_intensity", "out of range"),
    ("unknown pose", dict(pose="jump"), "pose", "allowed: a_pose, stand"),
    ("unknown bone", dict(bone_rotations={"tail": (0.0, 0.0, 1.0)}), "bone_rotations.tail", "unknown bone"),
    ("bone rotation length", dict(bone_rotations={"head": (0.0, 1.0)}), "bone_rotations.head",
     "expected a list of 3"),
    ("unknown facial action", dict(facial_actions={"wink": 0.5}), "facial_actions.wink", "unknown facial action"),
    ("facial action out of range", dict(facial_actions={"jawOpen": 2.0}), "facial_actions.jawOpen", "out of range"),
    ("appearance not an Appearance", dict(appearance={"skin": (1, 1, 1)}), "appearance", "Appearance"),
]


@pytest.mark.parametrize("kwargs,field,problem", [c[1:] for c in BAD_CONSTRUCTIONS],
                         ids=[c[0] for c in BAD_CONSTRUCTIONS])
def test_construction_validates(kwargs, field, problem):
    with pytest.raises(SpecError) as info:
        AvatarSpec(**kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert problem in str(info.value)


@pytest.mark.parametrize("kwargs,field", [
    (dict(hair_style="mohawk"), "appearance.hair_style"),
    (dict(skin=(1.2, 0.5, 0.5)), "appearance.skin[0]"),
    (dict(hairline=2.0), "appearance.hairline"),
    (dict(sleeves="none"), "appearance.sleeves"),
])
def test_appearance_validates(kwargs, field):
    with pytest.raises(SpecError) as info:
        Appearance(**kwargs)
    assert info.value.field == field


def test_with_validates_too():
    with pytest.raises(SpecError, match="pose"):
        AvatarSpec.random(1).with_(pose="jump")


@pytest.mark.parametrize("data,field", [
    ({"phenotype": {"wingspan": 0.5}}, "a.phenotype.wingspan"),
    ({"local_changes": {"nose-hump-incr": 3}}, "a.local_changes.nose-hump-incr"),
    ({"expression": "bored"}, "a.expression"),
    ({"pose": "jump"}, "a.pose"),
    ({"bone_rotations": {"tail": [0, 0, 1]}}, "a.bone_rotations.tail"),
    ({"facial_actions": {"wink": 0.1}}, "a.facial_actions.wink"),
    ({"appearance": {"hat": "red"}}, "a.appearance.hat"),
    ({"seed": "seven"}, "a.seed"),
    ({"mood": "ok"}, "a.mood"),
])
def test_from_dict_names_field_and_source(data, field):
    with pytest.raises(SpecError) as info:
        AvatarSpec.from_dict(data, "a", "people.yaml")
    assert info.value.field == field
    assert info.value.source == "people.yaml"
    assert str(info.value).startswith(f"people.yaml: {field}: ")


# ===================================================================== derived values
def test_resolved_facial_actions_scale_with_intensity():
    apex = EXPRESSIONS["happy"]
    assert apex, "happy has facial actions"
    full = AvatarSpec(expression="happy").resolved_facial_actions()
    assert full == pytest.approx(apex)
    half = AvatarSpec(expression="happy", expression_intensity=0.5).resolved_facial_actions()
    assert set(half) == set(apex)
    assert half == pytest.approx({k: 0.5 * v for k, v in apex.items()})
    zero = AvatarSpec(expression="happy", expression_intensity=0.0).resolved_facial_actions()
    assert all(v == 0.0 for v in zero.values())
    assert AvatarSpec().resolved_facial_actions() == {}  # neutral


def test_resolved_facial_actions_add_explicit_actions_clipped():
    spec = AvatarSpec(expression="happy", expression_intensity=1.0,
                      facial_actions={"mouthSmileLeft": 0.5, "tongueOut": 0.3})
    acts = spec.resolved_facial_actions()
    assert acts["mouthSmileLeft"] == 1.0  # 0.9 + 0.5, clipped
    assert acts["mouthSmileRight"] == pytest.approx(EXPRESSIONS["happy"]["mouthSmileRight"])
    assert acts["tongueOut"] == pytest.approx(0.3)
    assert all(k in FACIAL_ACTIONS and 0.0 <= v <= 1.0 for k, v in acts.items())
    # The expression table itself is left alone.
    assert "tongueOut" not in EXPRESSIONS["happy"]


def test_every_expression_uses_known_actions():
    assert "neutral" in EXPRESSIONS and len(EXPRESSIONS) >= 7
    for name, acts in EXPRESSIONS.items():
        assert all(k in FACIAL_ACTIONS and 0.0 < v <= 1.0 for k, v in acts.items()), name


def test_resolved_pose_is_the_named_pose_without_extras():
    for name in POSES:
        assert AvatarSpec(pose=name).resolved_pose() == POSES[name]
    assert all(b in BONES for p in POSES.values() for b in p)


def test_resolved_pose_composes_bone_rotations():
    stand = dict(POSES["stand"])
    base_l = stand["upperarm01.L"]
    assert base_l == (0.0, 36.0, 0.0)
    # Same axis: angles add. A bone the pose does not move: the extra rotation itself.
    spec = AvatarSpec(pose="stand", bone_rotations={"upperarm01.L": (0.0, 10.0, 0.0), "head": (0.0, 0.0, 25.0)})
    pose = spec.resolved_pose()
    assert pose["upperarm01.L"] == pytest.approx((0.0, 46.0, 0.0), abs=1e-9)
    assert pose["head"] == pytest.approx((0.0, 0.0, 25.0), abs=1e-9)
    for bone in stand:
        if bone != "upperarm01.L":
            assert pose[bone] == stand[bone]
    # Different axes: the extra rotation is applied after (on the left of) the pose's.
    extra = (30.0, 0.0, 0.0)
    pose = AvatarSpec(pose="stand", bone_rotations={"upperarm01.L": extra}).resolved_pose()
    got = rotvec_to_matrix(np.radians(pose["upperarm01.L"]))
    r_base, r_extra = rotvec_to_matrix(np.radians(base_l)), rotvec_to_matrix(np.radians(extra))
    assert np.allclose(got, r_extra @ r_base, atol=1e-9)
    assert not np.allclose(got, r_base @ r_extra, atol=1e-3)
    # The named pose table is not modified.
    assert POSES["stand"] == stand


# ===================================================================== labels vs anny
def test_labels_match_the_installed_anny_model():
    from hcgym.synthesis.anny_model import get_model

    model = get_model()
    assert tuple(model.phenotype_labels) == PHENOTYPES
    local = FACE_LOCAL_CHANGES + BODY_LOCAL_CHANGES
    assert len(set(local)) == len(local), "a local change is listed twice"
    assert not set(FACE_LOCAL_CHANGES) & set(BODY_LOCAL_CHANGES)
    assert sorted(model.local_change_labels) == sorted(local)
    assert tuple(model.facial_action_labels) == FACIAL_ACTIONS
    assert tuple(model.bone_labels) == BONES
