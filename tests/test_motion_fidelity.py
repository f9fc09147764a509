"""The motion fidelity protocol (hcgym.synthesis.motion_fidelity): scoring rules, classifiers, worlds, a tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.report import json_bytes
from hcgym.synthesis import motion_fidelity as mf
from hcgym.types import OCCLUDED, VISIBLE


def _skeleton() -> np.ndarray:
    """(25, 3) NTU image points of an upright person, all visible; torso diameter 100 px."""
    gt = np.zeros((25, 3))
    gt[:, 2] = VISIBLE
    gt[:, :2] = 200.0
    gt[4, :2], gt[8, :2] = (240, 100), (160, 100)  # shoulders (left = person's left, image right)
    gt[12, :2], gt[16, :2] = (240 - 20, 100 + 80), (160 + 20, 100 + 80)  # hips
    return gt


def _mediapipe_from(gt: np.ndarray) -> np.ndarray:
    pred = np.zeros((33, 2))
    for _, ntu, mp_index in mf.PCK_JOINTS:
        pred[mp_index] = gt[ntu, :2]
    return pred


def test_pck_counts_visible_joints_within_a_fifth_of_the_torso():
    gt = _skeleton()
    torso = mf.torso_diameter(gt)
    assert torso == pytest.approx(np.hypot(60, 80))
    pred = _mediapipe_from(gt)
    scored, correct, err = mf.pck_frame(gt, pred, (400, 300))
    assert scored.all() and correct.all() and np.allclose(err, 0)
    # Left wrist 0.25 torso away: wrong; right wrist 0.15 away: right.
    pred[15] += [0.25 * torso, 0]
    pred[16] += [0, 0.15 * torso]
    _, correct, err = mf.pck_frame(gt, pred, (400, 300))
    names = [j[0] for j in mf.PCK_JOINTS]
    assert not correct[names.index("left_wrist")] and correct[names.index("right_wrist")]
    assert err[names.index("left_wrist")] == pytest.approx(0.25)
    # Occluded or off-image joints are not scored; no detection scores every visible joint as wrong.
    gt[5, 2] = OCCLUDED
    gt[14, :2] = (450, 100)
    scored, correct, _ = mf.pck_frame(gt, None, (400, 300))
    assert scored.sum() == 10 and not correct.any()
    assert not scored[names.index("left_elbow")] and not scored[names.index("left_ankle")]


def test_classifiers_separate_clusters_and_are_deterministic():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 30)) * 3
    y = np.repeat(np.arange(4), 10)
    x = centres[y] + rng.normal(size=(40, 30)) * 0.3
    xt = centres[np.arange(4)] + rng.normal(size=(4, 30)) * 0.3
    assert (mf.nearest_centroid(x, y, xt, 4) == np.arange(4)).all()
    a = mf.logistic_regression(x, y, xt, 4)
    assert (a == np.arange(4)).all() and (a == mf.logistic_regression(x, y, xt, 4)).all()
    # A class absent from training is never predicted by the nearest centroid.
    keep = y != 2
    assert 2 not in mf.nearest_centroid(x[keep], y[keep], xt, 4)


@pytest.mark.parametrize("kwargs,field", [
    ({"actions": ("moonwalk",)}, "actions"), ({"actions": ("idle",)}, "actions"),
    ({"gestures": ("thumbs_sideways",)}, "gestures"), ({"views": ("top",)}, "views"),
    ({"expression_avatars": 4, "expression_train": 4}, "expression_train"), ({"parts": ("speech",)}, "parts"),
    ({"body_avatars": 0}, "body_avatars"), ({"hands": ("middle",)}, "hands")])
def test_bad_configs_name_the_field(kwargs, field):
    with pytest.raises(SpecError) as err:
        mf.MotionFidelityConfig(**kwargs)
    assert err.value.field == field


def test_held_out_avatars_avoid_the_fitting_seeds():
    seeds = [mf.held_out_seed(s, k) for s in range(3) for k in range(12)]
    assert min(seeds) >= 900_000 and len(set(seeds)) == len(seeds)
    assert mf.held_out_seed(1, 0) == 901_000


def test_action_worlds():
    cfg = mf.MotionFidelityConfig()
    world, start, end = mf.action_world("walk", 900_000, cfg)
    h = world.humans[0]
    assert h.behaviour.path is not None and h.behaviour.segments[0].action == "walk" and end - start == 3.0
    world, start, end = mf.action_world("stand_up", 900_000, cfg)
    segs = world.humans[0].behaviour.segments
    assert [s.action for s in segs] == ["sit_down", "stand_up"] and segs[1].start == start == segs[0].end
    world, start, end = mf.action_world("wave", 900_000, cfg)
    cam = world.robots[0]
    dist = np.linalg.norm(np.asarray(cam.position[:2]) - 0.0)
    assert dist == pytest.approx(cfg.distance, abs=1e-6) and cam.position[0] < 0  # on the person's right (-x)


@pytest.fixture(scope="module")
def tiny():
    from hcgym.envs.backends.gl import gl_available

    if not gl_available()[0]:
        pytest.skip("no OpenGL through EGL")
    cfg = mf.MotionFidelityConfig(body_avatars=1, actions=("wave",), fps=2.0, gesture_avatars=1,
                                  gestures=("five", "punch"), hands=("right",), views=("front",),
                                  expression_avatars=2, expression_train=1)
    return cfg, mf.run(cfg, progress=False)


def test_tiny_run_scores_and_reports(tiny):
    cfg, r = tiny
    body = r["body"]["actions"]["wave"]
    assert body["frames"] == 6 and body["joints"] > 30 and body["pck"] >= 0.8
    g = r["gestures"]
    assert g["renders"] == 2 and g["rule_correct"] == g["rule_total"] == 2
    e = r["expressions"]
    assert e["faces_found"] == 14 and len(e["confusion_nc"]) == 7 and e["test_avatars"] == [900_001]
    data = json.loads(json_bytes(r))
    assert set(data) == {"config", "body", "gestures", "expressions"}
    table = mf.table_markdown(r)
    assert "| wave | 6 |" in table and "| five |" in table and "nearest centroid" in table
    figs = mf.figures(r)
    assert set(figs) == {"body_sheet.png", "gesture_sheet.png", "expression_sheet.png", "expression_confusion.png"}
    assert all(v[:4] == b"\x89PNG" for v in figs.values())


def test_same_seed_same_results(tiny):
    import dataclasses

    cfg, r = tiny
    again = mf.run(dataclasses.replace(cfg, parts=("gestures",)), progress=False)
    assert json.dumps(again["gestures"]) == json.dumps(r["gestures"])
