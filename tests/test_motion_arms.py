"""Arm actions (hcgym.synthesis.motion.clips_arms): contract, determinism and geometry on one anny rig."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hcgym.synthesis.motion.base import ClipContext, Style
from hcgym.synthesis.motion.clips_arms import (
    ARM_ACTIONS,
    ARM_BONES,
    TORSO_BONES,
    arm_geometry,
    palm_centre,
    point_direction,
    relaxed_arms,
)
from hcgym.synthesis.motion.rig import BONE_INDEX, rig_for

STYLE = Style(amplitude=1.0, tempo=1.0, handedness="right", elbow_bend=12.0)
#: Actions whose hands stay clear of the torso (the others touch the body on purpose).
CLEAR_OF_BODY = ("wave", "wave_both", "clap", "point", "raise_arms", "punch", "arm_forward", "gesture_raise")


@pytest.fixture(scope="module")
def rig():
    from hcgym.synthesis.avatar_spec import AvatarSpec

    return rig_for(AvatarSpec.random(0))  # the first build needs the anny model (~90 s), then it is cached


def _sample(rig, name, t, params=None, seed=0, style=STYLE, duration=None):
    action = ARM_ACTIONS[name]
    d = action.duration[1] if duration is None else duration
    return action.sample(ClipContext(rig=rig, time=t, duration=d, params=params or {}, style=style, seed=seed))


def _track(rig, name, params=None, seed=0, fps=25, duration=None, style=STYLE):
    """Posed bodies over one segment at ``fps``."""
    d = ARM_ACTIONS[name].duration[1] if duration is None else duration
    times = np.linspace(0.0, d, int(round(d * fps)) + 1)
    return times, [rig.pose(_sample(rig, name, t, params, seed, style, d).rotations) for t in times]


def _hold(times, duration, margin=0.9):
    return (times > margin) & (times < duration - margin)


def test_registry_contract():
    assert {"wave", "wave_both", "clap", "point", "raise_arms", "punch", "phone_call", "drink", "cross_arms",
            "hands_on_hips", "scratch_head", "arm_forward", "gesture_raise"} <= set(ARM_ACTIONS)
    assert ARM_ACTIONS["wave_both"].label == "wave_both"
    assert "hand" not in ARM_ACTIONS["wave_both"].params
    for name, a in ARM_ACTIONS.items():
        lo, default, hi = a.duration
        assert 0 < lo <= default <= hi, name
        assert not a.locomotion and a.label, name
    assert len(ARM_BONES) == 14 and all(b.split(".")[0] in ("clavicle", "shoulder01", "upperarm01", "upperarm02",
                                                            "lowerarm01", "lowerarm02", "wrist") for b in ARM_BONES)


@pytest.mark.parametrize("name", sorted(ARM_ACTIONS))
def test_action_drives_only_arms_and_is_deterministic(rig, name):
    d = ARM_ACTIONS[name].duration[1]
    allowed = {BONE_INDEX[b] for b in ARM_BONES + TORSO_BONES}
    relaxed = relaxed_arms(STYLE, rig)
    for t in np.linspace(0.0, d, 9):
        pose = _sample(rig, name, t, seed=5)
        r = pose.rotations
        assert r.shape == (len(BONE_INDEX), 3, 3) and np.isfinite(r).all()
        assert np.allclose(np.linalg.det(r), 1.0, atol=1e-9)
        assert np.allclose(r @ np.transpose(r, (0, 2, 1)), np.eye(3), atol=1e-9)
        moved = {j for j in range(len(r)) if not np.allclose(r[j], np.eye(3), atol=1e-12)}
        assert moved <= allowed, sorted(moved - allowed)
        assert 0.0 <= pose.phase <= 1.0
        again = _sample(rig, name, t, seed=5)
        assert np.array_equal(r, again.rotations)
    # Every action starts and ends in the relaxed arms.
    for t in (0.0, d):
        r = _sample(rig, name, t, seed=5).rotations
        for b, m in relaxed.items():
            assert np.allclose(r[BONE_INDEX[b]], m, atol=1e-9), (name, t, b)
    # Another instance (seed) moves differently.
    a = _sample(rig, name, 0.5 * d, seed=1).rotations
    b = _sample(rig, name, 0.5 * d, seed=2).rotations
    assert np.abs(a - b).max() > 1e-3


def test_relaxed_arms_hang_at_the_sides(rig):
    geo = arm_geometry(rig)
    with_rig = relaxed_arms(STYLE, rig)
    without = relaxed_arms(STYLE)
    assert set(with_rig) == set(ARM_BONES) == set(without)
    for b in ARM_BONES:  # the average anny arm is within a few degrees of this body's
        cos = (np.trace(with_rig[b].T @ without[b]) - 1) / 2
        assert math.degrees(math.acos(np.clip(cos, -1, 1))) < 6.0, b
    posed = rig.pose(with_rig)
    for side, sign in (("L", 1.0), ("R", -1.0)):
        wrist, shoulder = posed.head(f"wrist.{side}"), posed.head(f"upperarm01.{side}")
        assert wrist[2] < geo.hip_z + 0.1  # hanging down to the thighs
        assert sign * wrist[0] > geo.half_width(wrist[2]) * 0.9  # beside the body, not in it
        assert abs(wrist[0] - shoulder[0]) < 0.12
    bent = rig.pose(relaxed_arms(Style(elbow_bend=20.0), rig)).head("wrist.R")
    straight = rig.pose(relaxed_arms(Style(elbow_bend=5.0), rig)).head("wrist.R")
    assert bent[1] < straight[1] - 0.02  # more elbow bend: the hand further forward


def test_clap_palms_meet_and_open(rig):
    times, bodies = _track(rig, "clap", duration=3.0, fps=50)
    gap = np.array([np.linalg.norm(palm_centre(p, "left") - palm_centre(p, "right")) for p in bodies])
    hold = _hold(times, 3.0, 0.7)
    assert gap[hold].min() < 0.03
    assert gap[hold].max() > 0.15
    # The hands meet in front of the chest, between the shoulders' heights and the waist.
    k = np.flatnonzero(hold)[np.argmin(gap[hold])]
    mid = (palm_centre(bodies[k], "left") + palm_centre(bodies[k], "right")) / 2
    geo = arm_geometry(rig)
    assert abs(mid[0]) < 0.03 and mid[1] < geo.front_y(mid[2]) - 0.1
    assert geo.hip_z < mid[2] < geo.arms["R"].shoulder[2]


@pytest.mark.parametrize("hand", ["right", "left"])
def test_phone_call_hand_at_the_ear(rig, hand):
    times, bodies = _track(rig, "phone_call", {"hand": hand}, duration=4.0)
    ear = 3 if hand == "left" else 4  # COCO ears
    side = "L" if hand == "left" else "R"
    dist = np.array([np.linalg.norm(p.head(f"wrist.{side}") - p.keypoints[ear]) for p in bodies])
    hold = _hold(times, 4.0)
    assert dist[hold].max() < 0.12
    assert dist[0] > 0.3 and dist[-1] > 0.3  # from and back to the side
    elbow = bodies[int(np.flatnonzero(hold)[0])].head(f"lowerarm01.{side}")
    shoulder = bodies[0].head(f"upperarm01.{side}")
    assert (elbow[0] - shoulder[0]) * (1 if hand == "left" else -1) > -0.05  # elbow out, not across the chest


def test_wave_hand_up_and_side_to_side(rig):
    times, bodies = _track(rig, "wave", {"hand": "right", "cycles": 2.0}, duration=3.0, fps=30)
    hold = _hold(times, 3.0)
    wrist = np.array([p.head("wrist.R") for p in bodies])
    shoulder = np.array([p.head("upperarm01.R") for p in bodies])
    assert (wrist[hold, 2] > shoulder[hold, 2] + 0.1).all()
    assert np.ptp(wrist[hold, 0]) > 0.1  # side to side
    x = wrist[hold, 0] - wrist[hold, 0].mean()
    assert np.count_nonzero(np.diff(np.sign(x)) != 0) >= 4  # several swings
    assert (wrist[0, 2] < shoulder[0, 2]) and (wrist[-1, 2] < shoulder[-1, 2])  # lowered at both ends
    # The other arm stays down; waving both raises both.
    assert all(p.head("wrist.L")[2] < p.head("upperarm01.L")[2] for p in bodies)
    _, both = _track(rig, "wave_both", duration=3.0, fps=10)
    mid = both[len(both) // 2]
    assert all(mid.head(f"wrist.{s}")[2] > mid.head(f"upperarm01.{s}")[2] + 0.1 for s in "LR")


def test_raise_arms_above_the_head(rig):
    geo = arm_geometry(rig)
    times, bodies = _track(rig, "raise_arms", duration=3.0)
    hold = _hold(times, 3.0)
    for k in np.flatnonzero(hold):
        for s in "LR":
            assert bodies[k].head(f"wrist.{s}")[2] > geo.head_top
    _, one = _track(rig, "raise_arms", {"hands": "left"}, duration=3.0, fps=4)
    mid = one[len(one) // 2]
    assert mid.head("wrist.L")[2] > geo.head_top and mid.head("wrist.R")[2] < geo.hip_z + 0.1


@pytest.mark.parametrize("hand,yaw,pitch", [("right", 0, 0), ("right", -50, 20), ("right", 45, -20),
                                            ("left", 55, 10), ("left", -30, -25), ("right", 60, 30)])
def test_point_towards_the_direction(rig, hand, yaw, pitch):
    side = "L" if hand == "left" else "R"
    want = point_direction(yaw, pitch)
    for seed in (0, 1):
        posed = rig.pose(_sample(rig, "point", 1.25, {"hand": hand, "yaw": yaw, "pitch": pitch}, seed).rotations)
        v = posed.head(f"wrist.{side}") - posed.head(f"upperarm01.{side}")
        angle = math.degrees(math.acos(np.clip(v @ want / np.linalg.norm(v), -1, 1)))
        assert angle < 15.0, angle
        assert np.linalg.norm(v) > 0.85 * sum(arm_geometry(rig).arms[side].__getattribute__(k)
                                              for k in ("upper_len", "fore_len"))


def test_left_right_mirror(rig):
    # (Hand-to-head actions follow this body's head, which anny may shift off the midline: not mirrored.)
    for name, params in (("point", {"yaw": 30, "pitch": 10}), ("wave", {}), ("arm_forward", {}),
                         ("gesture_raise", {})):
        right = rig.pose(_sample(rig, name, 1.3, {**params, "hand": "right"}).rotations)
        mirrored = {**params, "hand": "left"}
        if "yaw" in params:
            mirrored["yaw"] = -params["yaw"]
        left = rig.pose(_sample(rig, name, 1.3, mirrored).rotations)
        for bone in ("lowerarm01", "wrist"):
            r, lft = right.head(f"{bone}.R"), left.head(f"{bone}.L")
            assert np.linalg.norm(r * [-1, 1, 1] - lft) < 0.03, (name, bone)
    # hand: auto follows the handedness.
    lefty = Style(handedness="left")
    a = _sample(rig, "point", 1.3, {"hand": "auto"}, style=lefty).rotations
    b = _sample(rig, "point", 1.3, {"hand": "left"}, style=lefty).rotations
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", CLEAR_OF_BODY)
def test_hands_stay_out_of_the_torso(rig, name):
    geo = arm_geometry(rig)
    _, bodies = _track(rig, name, fps=15)
    for p in bodies:
        for s in "LR":
            w = p.head(f"wrist.{s}")
            if geo.hip_z - 0.1 < w[2] < geo.arms[s].shoulder[2] + 0.05:
                assert math.hypot(w[0], w[1] - geo.spine_y) > 0.08, (name, s, w)


def test_punch_reaches_forward_from_a_guard(rig):
    times, bodies = _track(rig, "punch", {"hand": "right", "reps": 2}, duration=2.5, fps=50)
    reach = np.array([np.linalg.norm(p.head("wrist.R") - p.head("upperarm01.R")) for p in bodies])
    fwd = np.array([p.head("upperarm01.R")[1] - p.head("wrist.R")[1] for p in bodies])
    arm = arm_geometry(rig).arms["R"]
    assert reach.max() > 0.9 * (arm.upper_len + arm.fore_len) and fwd.max() > 0.45
    hold = _hold(times, 2.5, 0.5)
    hits = np.flatnonzero(hold & (fwd > 0.8 * fwd.max()))
    assert np.count_nonzero(np.diff(hits) > 1) + 1 == 2  # two separate punches
    left = np.array([p.head("wrist.L")[1] for p in bodies])
    assert np.ptp(left[_hold(times, 2.5, 0.6)]) < 0.05  # the other fist stays in guard


def test_bad_parameters_are_named(rig):
    with pytest.raises(ValueError, match="hand"):
        _sample(rig, "wave", 1.0, {"hand": "middle"})
    with pytest.raises(ValueError, match="yaw"):
        _sample(rig, "point", 1.0, {"yaw": 120})
