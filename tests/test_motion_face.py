"""Facial tracks (expressions, blinks, visemes, gaze, head turns) and the 68-point face landmarks on the anny rig."""

from __future__ import annotations

import numpy as np
import pytest

from hcgym.synthesis.expressions import EXPRESSIONS
from hcgym.synthesis.labels import FACIAL_ACTIONS
from hcgym.synthesis.motion.face import (
    BlinkTrack,
    ExpressionTrack,
    GazeTrack,
    HeadTrack,
    apply_deltas,
    blinks,
    face68,
    face_state,
    gaze_direction,
    visemes,
)
from hcgym.synthesis.motion.rig import BONE_INDEX

IDX = {n: i for i, n in enumerate(FACIAL_ACTIONS)}


@pytest.fixture(scope="module")
def rig():
    from hcgym.synthesis.avatar_spec import AvatarSpec
    from hcgym.synthesis.motion.rig import rig_for

    return rig_for(AvatarSpec.random(0))


def test_expression_envelope_and_blend_clip():
    tr = ExpressionTrack("surprise", start=1.0, onset=0.3, apex=1.0, offset=0.5, intensity=0.8)
    assert not tr.facial(0.99).any()
    apex = tr.facial(1.8)
    assert apex[IDX["jawOpen"]] == pytest.approx(EXPRESSIONS["surprise"]["jawOpen"] * 0.8)
    assert apex[IDX["eyeWideLeft"]] == pytest.approx(0.9 * 0.8)
    assert 0 < tr.facial(1.15)[IDX["eyeWideLeft"]] < apex[IDX["eyeWideLeft"]]
    assert not tr.facial(2.81).any()
    # Two overlapping tracks sum, clipped to [0, 1].
    s = face_state(tr, ExpressionTrack("fear", start=1.0, onset=0.3, apex=1.0, offset=0.5), t=1.8)
    assert s.facial[IDX["eyeWideLeft"]] == 1.0 and s.facial.max() <= 1.0


def test_expression_label_timing():
    tracks = [ExpressionTrack("happy", start=0.0, onset=0.4, apex=1.0, offset=0.4, intensity=0.9),
              ExpressionTrack("sad", start=1.2, onset=0.4, apex=1.0, offset=0.4, intensity=0.5)]
    assert face_state(tracks, t=0.02).expression == "neutral"  # weight x intensity still below 0.2
    s = face_state(tracks, t=0.8)
    assert (s.expression, s.intensity) == ("happy", pytest.approx(0.9))
    assert face_state(tracks, t=2.2).expression == "sad"
    assert face_state(tracks, t=3.5).expression == "neutral"


def test_blinks_deterministic_at_the_requested_rate():
    a, b = blinks(7, rate_per_min=15, horizon=600), blinks(7, rate_per_min=15, horizon=600)
    assert a == b and a != blinks(8, rate_per_min=15, horizon=600)
    assert 12 <= len(a.times) / 10 <= 18
    assert all(0.1 <= d <= 0.25 for d in a.durations)
    t0, d = a.times[0], a.durations[0]
    assert a.closure(t0 + 0.4 * d) == pytest.approx(1.0)
    assert a.blinking(t0 + 0.4 * d) and not a.blinking(t0 + d + 0.01)
    f = face_state(a, t=t0 + 0.4 * d).facial
    assert f[IDX["eyeBlinkLeft"]] == f[IDX["eyeBlinkRight"]] == pytest.approx(1.0)
    assert BlinkTrack((), ()).closure(3.0) == 0.0


def test_visemes_open_the_jaw_for_vowels_and_close_for_mbp():
    tr = visemes("mama", start=0.5, rate=5)
    segs = [s for s in tr.segments if s[0] != "sil"]
    assert [s[0] for s in segs] == ["PP", "aa", "PP", "aa"]
    mid = [(a + b) / 2 for _, a, b in segs]
    vowel, closed = tr.facial(mid[1]), tr.facial(mid[2])
    assert vowel[IDX["jawOpen"]] > 0.4 and closed[IDX["jawOpen"]] < 0.15
    assert closed[IDX["mouthPressLeft"]] > 0.3 and vowel[IDX["mouthPressLeft"]] < 0.1
    s = face_state(tr, t=mid[1])
    assert s.talking and s.viseme == "aa"
    assert not face_state(tr, t=0.2).talking and not face_state(tr, t=tr.end + 0.5).talking
    # About 5 syllables a second; ARPAbet input gives the same classes.
    assert tr.end - tr.start == pytest.approx(2 / 5, rel=0.01)
    assert [s[0] for s in visemes(["M", "AA1", "B", "IY0"]).segments] == ["PP", "aa", "PP", "I"]
    with pytest.raises(ValueError, match="phoneme"):
        visemes(["M", "QQ"])


def test_gaze_follows_its_target_and_turns_the_eyeballs(rig):
    gaze = GazeTrack([(0.0, 0.0, 0.0), (1.0, 25.0, 10.0)], transition=0.1)
    s0, s1 = face_state(gaze, t=0.5), face_state(gaze, t=1.5)
    assert np.allclose(s0.gaze, [0, -1, 0])
    assert s1.gaze[0] > 0.35 and s1.gaze[2] > 0.1 and np.linalg.norm(s1.gaze) == pytest.approx(1.0)
    assert s1.facial[IDX["eyeLookOutLeft"]] > 0.5 and s1.facial[IDX["eyeLookInRight"]] > 0.5
    assert s1.facial[IDX["eyeLookUpLeft"]] > 0.3
    # The eye bones turn the eyeballs: the cornea moves towards the person's left (+x).
    rest = rig.pose()
    posed = rig.pose(s1.eyes, s1.facial)
    eye = BONE_INDEX["eye.L"]
    w = ((rig.template.skin_index == eye) * rig.template.skin_weight).sum(1)
    ball = np.flatnonzero(w > 0.9)
    front = ball[np.argsort(rest.vertices[ball, 1])[:10]]  # the most forward (-y) vertices
    shift = posed.vertices[front].mean(0) - rest.vertices[front].mean(0)
    assert shift[0] > 0.004 and shift[2] > 0.001
    assert np.allclose(gaze_direction(posed, *s1.eye_angles), s1.gaze, atol=0.03)


def test_head_track_turns_the_head(rig):
    head = HeadTrack([(0.0, 0.0, 0.0), (0.5, 40.0, 0.0)], transition=0.5)
    assert head.angles(0.75)[0] == pytest.approx(20.0)
    s = face_state(head, t=2.0)
    body = np.broadcast_to(np.eye(3), (len(BONE_INDEX), 3, 3))
    rest, turned = rig.pose(), rig.pose(apply_deltas(body, s.head))
    nose = turned.keypoints[0] - rest.keypoints[0]
    assert nose[0] > 0.04  # sideways towards the person's left
    # The chain's product is the whole head rotation.
    acc = turned.bones[BONE_INDEX["head"], :3, :3] @ rig.template.reference[BONE_INDEX["head"]].T
    acc0 = rest.bones[BONE_INDEX["head"], :3, :3] @ rig.template.reference[BONE_INDEX["head"]].T
    ang = np.degrees(np.arccos(np.clip((np.trace(acc @ acc0.T) - 1) / 2, -1, 1)))
    assert ang == pytest.approx(40.0, abs=0.5)
    assert np.allclose(gaze_direction(turned, 0, 0), s.gaze, atol=0.02)


def test_face68_lies_on_the_face_and_is_mirrored(rig):
    posed = rig.pose()
    p = face68(posed)
    assert p.shape == (68, 3)
    eyes = (posed.head("eye.L") + posed.head("eye.R")) / 2
    mid = eyes[0]
    # Within the face region: in front of the eyes' plane (give or take the jaw contour), eye level +- 13 cm.
    assert np.all(np.abs(p[:, 2] - eyes[2]) < 0.13) and np.all(np.abs(p[:, 0] - mid) < 0.09)
    assert np.all(p[17:, 1] < eyes[1] + 0.01)
    # Mirrored pairs (iBUG numbering): eye corners, brow ends, nose wings, mouth corners, jaw ends.
    for a, b in [(36, 45), (39, 42), (17, 26), (31, 35), (48, 54), (0, 16), (4, 12)]:
        assert abs((p[a, 0] - mid) + (p[b, 0] - mid)) < 0.01, (a, b)
        assert abs(p[a, 2] - p[b, 2]) < 0.01, (a, b)
    # The person's right eye (points 36-41) is on -x, the brows above the eyes, the chin lowest.
    assert p[36, 0] < mid < p[45, 0]
    assert p[19, 2] > p[37, 2] and p[8, 2] == p[:, 2].min()


def test_face68_follows_the_head(rig):
    body = np.broadcast_to(np.eye(3), (len(BONE_INDEX), 3, 3))
    rest = rig.pose()
    turned = rig.pose(apply_deltas(body, HeadTrack([(0.0, 35.0, -10.0, 5.0)], transition=0).deltas(0.0)))
    a, b = face68(rest), face68(turned)
    h = BONE_INDEX["head"]
    local = [np.linalg.solve(pb.bones[h], np.c_[pts, np.ones(68)].T)[:3].T for pb, pts in ((rest, a), (turned, b))]
    assert np.abs(local[0][17:] - local[1][17:]).max() < 0.003  # the inner face moves rigidly with the head
    assert np.abs(local[0] - local[1]).max() < 0.015  # the jaw line is partly skinned to the neck
    assert (b - a)[30, 0] > 0.03  # the nose tip swings to the person's left
