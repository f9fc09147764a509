"""Active face recognition with synthesized views (OpenDR D3.2 section 2.4).

Algorithm 1's decisions with scripted confidences (every branch); the geometry of the view synthesis on a
synthetic textured mesh; the ``hcgym/ActiveFaceRecognitionPan-v0`` env (check_env, determinism, pickle,
dataset mode, SB3); the protocol end to end on a tiny configuration through the CLI.
"""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest

import hcgym.envs  # noqa: F401 - registers the ids
from hcgym.agents.synthesized_view import (
    OracleMoveAgent,
    RecogniseAgent,
    SynthBias,
    SynthesizedViewAgent,
    Trace,
    candidate_moves,
    run_decisions,
    synthesized_view_decisions,
)
from hcgym.errors import SpecError

ENV_ID = "hcgym/ActiveFaceRecognitionPan-v0"
NEG_INF = float("-inf")


# ------------------------------------------------------------------ Algorithm 1, scripted
class Script:
    """Images are tokens ``("real", pan)`` / ``("synth", pan)`` (pan relative to the start); FRCs come from tables."""

    def __init__(self, real: dict[float, float], synth: dict[float, float], axis: str = "pan") -> None:
        self.real, self.synth, self.axis = real, synth, axis
        self.acquired: list[float] = []

    def _k(self, move) -> float:
        return move[0] if self.axis == "pan" else move[1]

    def frc(self, img) -> float:
        kind, at = img
        return (self.real if kind == "real" else self.synth)[at]

    def synthesize(self, img, pan, tilt):
        at = img[1] + (pan if self.axis == "pan" else tilt)
        return None if self.synth.get(at) is None else ("synth", at)

    def acquire(self, offset) -> tuple[str, float]:
        self.acquired.append(self._k(offset))
        return ("real", self._k(offset))

    def run(self, **kwargs) -> Trace:
        return run_decisions(("real", 0.0), self.acquire, self.frc, self.synthesize, **kwargs)


def answered_from_real(trace: Trace) -> bool:
    answer = trace.events[-1]
    reals = [e for e in trace.events if e[0] == "real"]
    return answer[0] == "answer" and reals[-1][1] == answer[1] and reals[-1][2] == answer[2]


def test_stay_when_the_real_image_is_most_confident():
    s = Script(real={0: 0.5}, synth={-15: 0.4, 15: 0.3})
    t = s.run()
    assert t.branch == "stay" and t.moves == 0 and s.acquired == [] and t.offset == (0.0, 0.0)
    assert answered_from_real(t)


def test_ties_go_to_the_real_image():
    # Algorithm 1 line 9: FRC >= FRC_i stays.
    t = Script(real={0: 0.4}, synth={-15: 0.4, 15: 0.4}).run()
    assert t.branch == "stay" and t.moves == 0
    # No face anywhere: -inf ties -inf, stay.
    t = Script(real={0: NEG_INF}, synth={-15: None, 15: None}).run()
    assert t.branch == "stay" and t.events[1][2] == NEG_INF and t.events[2][2] == NEG_INF


def test_move_toward_the_best_synthesised_view_then_answer_above_threshold():
    s = Script(real={0: 0.1, 15: 0.6}, synth={-15: 0.2, 15: 0.5})
    t = s.run(threshold=0.3)
    assert t.branch == "threshold" and t.moves == 1 and s.acquired == [15] and t.offset == (15.0, 0.0)
    assert answered_from_real(t) and t.events[-1][2] == 0.6
    s = Script(real={0: 0.1, -15: 0.6}, synth={-15: 0.5, 15: 0.2})
    assert s.run(threshold=0.3).offset == (-15.0, 0.0) and s.acquired == [-15]


def test_below_threshold_the_real_image_beats_the_next_synthesised_view():
    # FRC(I_r+) = 0.2 <= threshold; the synthesised I_s++ scores less: answer with I_r+.
    s = Script(real={0: 0.0, 15: 0.2}, synth={-15: -0.1, 15: 0.25, 30: 0.1})
    t = s.run(threshold=0.3)
    assert t.branch == "real_beats_synth" and t.moves == 1 and s.acquired == [15]
    assert [e[:2] for e in t.events if e[0] == "synth"] == [("synth", (-15.0, 0.0)), ("synth", (15.0, 0.0)),
                                                           ("synth", (30.0, 0.0))]
    assert answered_from_real(t)


def test_second_move_when_the_next_synthesised_view_is_better():
    s = Script(real={0: -0.5, 15: -0.2, 30: 0.1}, synth={-15: -0.6, 15: -0.3, 30: 0.0})
    t = s.run(threshold=0.3)
    assert t.branch == "max_moves" and t.moves == 2 and s.acquired == [15, 30] and t.offset == (30.0, 0.0)
    # The answer comes from the real image acquired there, even though it is below the threshold.
    assert answered_from_real(t) and t.events[-1][2] == 0.1


def test_equal_real_and_next_synthesised_view_moves_again():
    # The seed answers only when FRC(I_r+) > FRC(I_s++) (strict).
    s = Script(real={0: -0.5, 15: -0.2, 30: 0.0}, synth={-15: -0.6, 15: -0.3, 30: -0.2})
    assert s.run(threshold=0.3).moves == 2


def test_synthesised_ties_go_to_the_first_candidate_and_missing_views_score_minus_inf():
    s = Script(real={0: 0.0, -15: 0.5}, synth={-15: 0.2, 15: 0.2})
    assert s.run().offset == (-15.0, 0.0)
    s = Script(real={0: 0.0, 15: 0.5}, synth={-15: None, 15: 0.2})
    assert s.run().offset == (15.0, 0.0)


def test_move_budget_and_step_are_parameters():
    # One move: answer after it, whatever its confidence.
    s = Script(real={0: -0.5, 15: -0.4}, synth={-15: -0.6, 15: -0.1, 30: 0.9})
    t = s.run(max_moves=1, threshold=0.3)
    assert t.moves == 1 and t.branch == "max_moves" and s.acquired == [15]
    # Three moves of 10 degrees: the procedure goes on in the same direction.
    s = Script(real={0: -0.9, 10: -0.7, 20: -0.5, 30: -0.3}, synth={-10: -1.0, 10: -0.8, 20: -0.6, 30: -0.4})
    t = s.run(max_moves=3, step=10, threshold=0.3)
    assert s.acquired == [10, 20, 30] and t.moves == 3 and t.branch == "max_moves"
    # No moves: the static recogniser.
    t = Script(real={0: 0.1}, synth={}).run(max_moves=0)
    assert t.moves == 0 and t.branch == "max_moves" and answered_from_real(t)


def test_tilt_works_the_same_way_and_bad_arguments_are_named():
    s = Script(real={0: 0.0, 15: 0.6}, synth={-15: 0.1, 15: 0.4}, axis="tilt")
    t = s.run(axes=("tilt",))
    assert t.offset == (0.0, 15.0) and t.branch == "threshold"
    assert candidate_moves(15, ("pan", "tilt")) == [(-15, 0.0), (15, 0.0), (0.0, -15), (0.0, 15)]
    with pytest.raises(SpecError, match="axes"):
        next(synthesized_view_decisions(("real", 0), s.frc, s.synthesize, axes=("roll",)))
    with pytest.raises(SpecError, match="max_moves"):
        next(synthesized_view_decisions(("real", 0), s.frc, s.synthesize, max_moves=-1))


def test_synth_bias_is_added_to_every_synthesised_view_only():
    # Raw FRCs: the real image wins (stay). A bias of 0.15 lifts the synthesised +15 view above it.
    s = Script(real={0: 0.3, 15: 0.6}, synth={-15: 0.1, 15: 0.2})
    assert s.run().branch == "stay"
    t = s.run(synth_bias=0.15)
    assert t.branch == "threshold" and t.moves == 1 and s.acquired == [15]
    # The trace records the corrected scores of synthesised views and the raw ones of real images.
    assert [e[2] for e in t.events if e[0] == "synth"] == pytest.approx([0.25, 0.35])
    assert [e[2] for e in t.events if e[0] == "real"] == [0.3, 0.6] and answered_from_real(t)
    # It applies at the second decision as well: FRC(I_r+) = 0.0 against FRC(I_s++) = -0.1 + bias.
    s = Script(real={0: -0.5, 15: 0.0, 30: 0.2}, synth={-15: -0.9, 15: -0.2, 30: -0.1})
    assert s.run(threshold=0.3).branch == "real_beats_synth"
    assert s.run(threshold=0.3, synth_bias=0.2).moves == 2
    # A negative bias makes synthesised views count less; a missing view stays at -inf.
    s = Script(real={0: 0.0}, synth={-15: None, 15: 0.05})
    assert s.run(synth_bias=-0.1).branch == "stay"
    with pytest.raises(SpecError, match="synth_bias"):
        next(synthesized_view_decisions(("real", 0), s.frc, s.synthesize, synth_bias=float("nan")))
    with pytest.raises(SpecError, match="synth_bias"):
        SynthesizedViewAgent(s.frc, s.synthesize, synth_bias=float("inf"))
    with pytest.raises(SpecError, match="synth_bias.toward"):
        SynthBias(toward=float("nan"))


class PosedView:
    """A synthesised-view token that knows whether it turns the face toward the camera."""

    def __init__(self, at: float, toward: bool) -> None:
        self.at, self.turns_toward_camera = at, toward


def test_synth_bias_by_the_way_a_view_turns_the_face():
    bias = SynthBias(toward=0.2, away=-0.1, other=0.05)
    assert bias(PosedView(15, True)) == 0.2 and bias(PosedView(-15, False)) == -0.1 and bias(("synth", 15)) == 0.05
    assert bias.scaled(2.0) == SynthBias(0.4, -0.2, 0.1)
    # Start turned to the right: +15 turns the face toward the camera. Raw FRCs prefer -15 (0.25 vs 0.2);
    # the correction (0.2 vs -0.1) prefers +15.
    real = {0: 0.1, 15: 0.6, -15: 0.3}
    synth = {-15: 0.25, 15: 0.2}
    frc = lambda img: real[img[1]] if isinstance(img, tuple) else synth[img.at]  # noqa: E731
    make = lambda img, pan, tilt: PosedView(img[1] + pan, pan > 0)  # noqa: E731
    acquired = []

    def acquire(offset):
        acquired.append(offset[0])
        return ("real", offset[0])

    assert run_decisions(("real", 0.0), acquire, frc, make).offset == (-15.0, 0.0)
    t = run_decisions(("real", 0.0), acquire, frc, make, synth_bias=bias)
    assert t.offset == (15.0, 0.0) and t.branch == "threshold"
    assert [e[2] for e in t.events if e[0] == "synth"] == pytest.approx([0.15, 0.4])


def test_calibrated_synth_bias_is_shipped_and_used_by_for_env():
    from hcgym.agents.synthesized_view import CALIBRATION_FILE, calibrated_synth_bias

    table = json.loads(CALIBRATION_FILE.read_text())
    entry = table["face/mediapipe-full+face/dlib"]
    bias = calibrated_synth_bias("face/mediapipe-full", "face/dlib")
    assert bias == SynthBias(entry["toward"], entry["away"], entry["distance_bias"])
    # Views that turn the face toward the camera lose more to synthesis than the others.
    assert 0 < entry["distance_bias"] < entry["toward"] < 0.2 and entry["away"] < entry["distance_bias"]
    assert entry["pairs"] == entry["pairs_toward"] + entry["pairs_away"] > 500
    assert entry["avatar_seeds"] == list(range(910000, 910006))  # calibration avatars, never the protocol's
    assert calibrated_synth_bias("face/mediapipe-full", "face/unknown") == SynthBias()
    env = gym.make(ENV_ID, **small_env_kwargs())  # nothing is built before the first reset
    agent = SynthesizedViewAgent.for_env(env)
    assert agent.synth_bias == bias.scaled(1 / 0.385)
    assert SynthesizedViewAgent.for_env(env, synth_bias=0.0).synth_bias == 0.0
    env.close()


def test_agent_acts_through_the_env_actions():
    from hcgym.envs.active_fr_pan import PAN_MINUS, PAN_PLUS, RECOGNISE, TILT_PLUS

    # Observations encode the camera pan in their pixel value; FRC is highest at pan 0 (frontal).
    def img(pan):
        return np.full((4, 4, 3), 100 + pan, np.uint8)

    def frc(x):
        return -abs(float(x[0, 0, 0]) - 100) / 100

    def synth(x, pan, tilt):
        return img(int(x[0, 0, 0]) - 100 + int(pan))

    agent = SynthesizedViewAgent(frc, synth, threshold=0.5)
    agent.reset()
    assert agent.act(img(45), {}) == PAN_MINUS  # toward frontal
    assert agent.act(img(30), {}) == PAN_MINUS  # -0.3 < 0.5 and the synthesised 15 beats it
    assert agent.act(img(15), {}) == RECOGNISE  # the budget of 2 moves is spent
    assert agent.last_trace.moves == 2 and agent.last_trace.offset == (-30.0, 0.0)
    agent.reset()
    assert agent.act(img(-30), {}) == PAN_PLUS
    assert agent.act(img(-15), {}) == PAN_PLUS
    agent.reset()
    assert agent.act(img(0), {}) == RECOGNISE and agent.last_trace.branch == "stay"
    oracle = OracleMoveAgent()
    assert [oracle.act(None, {"pan": p}) for p in (60, 45, 30)] == [PAN_MINUS, PAN_MINUS, RECOGNISE]
    oracle.reset()
    assert [oracle.act(None, {"pan": p}) for p in (-15, 0)] == [PAN_PLUS, RECOGNISE]
    assert RecogniseAgent().act(None, {}) == RECOGNISE
    tilt_agent = SynthesizedViewAgent(frc, lambda x, p, t: synth(x, t, 0), axes=("tilt",))
    assert tilt_agent.act(img(-30), {}) == TILT_PLUS

    # A synthesiser may return view objects (with .image and the way they turn the face); frc still gets images.
    class View:
        def __init__(self, image, toward):
            self.image, self.turns_toward_camera = image, toward

    seen = []

    def frc_images(x):
        assert isinstance(x, np.ndarray)
        seen.append(int(x[0, 0, 0]) - 100)
        return frc(x)

    def synth_views(x, pan, tilt):
        here = int(x[0, 0, 0]) - 100
        return View(img(here + int(pan)), abs(here + pan) < abs(here))

    agent = SynthesizedViewAgent(frc_images, synth_views, synth_bias=SynthBias(toward=0.0, away=-1.0))
    assert agent.act(img(45), {}) == PAN_MINUS and seen == [45, 30, 60]


# ------------------------------------------------------------------ synthesis geometry
def test_topology_is_consistent():
    from hcgym.synthesis.views import mesh_points, topology

    topo = topology()
    m = topo.mirror
    assert len(m) == 479 and np.array_equal(m[m], np.arange(479))
    assert m[33] == 263 and m[61] == 291 and m[1] == 1 and m[468] == 473 and m[478] == 478
    assert topo.triangles.max() == 478 and len(topo.triangles) == 852 + 52
    ref = mesh_points(topo.reference)
    p = ref[topo.triangles[:852], :2]
    area = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])
    assert (area > 0).mean() > 0.98  # a frontal face shows (nearly) all its triangles from the front
    # Every interior edge is shared by two triangles wound in opposite directions.
    edges = {}
    for t in topo.triangles[:852]:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            assert (a, b) not in edges
            edges[(a, b)] = True


def test_rotation_moves_points_as_the_camera_orbits():
    from hcgym.synthesis.views import rotate_points, view_rotation

    c = np.array([100.0, 80.0, 50.0])
    front = c + np.array([0.0, 0.0, -40.0])  # a point 40 px in front of the centre (the nose)
    for pan in (15, 30, -30):
        p = rotate_points(front[None], pan, 0.0, c)[0]
        # Camera towards the person's left (image right): the nose turns to image-left.
        assert p[0] == pytest.approx(c[0] - 40 * math.sin(math.radians(pan)))
        assert p[2] == pytest.approx(c[2] - 40 * math.cos(math.radians(pan)))
        assert p[1] == pytest.approx(c[1])
    p = rotate_points(front[None], 0.0, 20.0, c)[0]  # camera above, looking down: the nose drops in the image
    assert p[1] == pytest.approx(c[1] + 40 * math.sin(math.radians(20)))
    r = view_rotation(25, -10)
    assert np.allclose(r @ r.T, np.eye(3)) and np.linalg.det(r) == pytest.approx(1.0)


def test_rasterizer_z_buffer_and_culling():
    from hcgym.synthesis.views import rasterize

    v = np.array([[2, 2, 5], [18, 2, 5], [2, 18, 5],  # far triangle (positive winding)
                  [2, 2, 1], [18, 2, 1], [2, 18, 1],  # near copy
                  [2, 2, 0], [2, 18, 0], [18, 2, 0]], dtype=float)  # nearest, but wound backwards
    tid, bary, depth = rasterize(v, np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]]), (20, 20))
    assert tid[5, 5] == 1 and depth[5, 5] == pytest.approx(1.0)  # z-buffer: the near one; culled: the back one
    assert tid[17, 17] == -1 and np.isinf(depth[17, 17])
    assert np.allclose(bary[tid >= 0].sum(1), 1.0)
    # The centre of pixel (i, j) is (i + 0.5, j + 0.5): barycentrics reproduce it.
    ys, xs = np.nonzero(tid == 1)
    rec = np.einsum("nk,kd->nd", bary[ys, xs], v[3:6, :2])
    assert np.allclose(rec, np.stack([xs + 0.5, ys + 0.5], 1))
    tid2, _, _ = rasterize(v, np.array([[6, 7, 8]]), (20, 20), cull_back=False)
    assert (tid2 == 0).sum() > 50


def _textured_head(pan: float, size: int = 160):
    """A synthetic head: the reference mesh (inter-ocular distance 40 px) with a left/right-symmetric texture
    that is a smooth function of the 3D point, seen after the camera orbited by ``pan``. Returns the image, the
    (posed) mesh points (as MediaPipe landmarks) and the colour function."""
    from hcgym.synthesis.views import head_centre, mesh_points, rasterize, rotate_points, topology

    topo = topology()
    base = topo.reference * 40.0 + np.array([size / 2, size / 2 - 5, 0.0])
    pts = rotate_points(mesh_points(base), pan, 0.0, head_centre(mesh_points(base)))
    ref = mesh_points(topo.reference)

    def colour(q):  # q: (N, 3) reference coordinates
        return np.stack([128 + 90 * np.cos(2.5 * q[:, 0]), 128 + 90 * np.sin(3.0 * q[:, 1]),
                         128 + 90 * np.cos(2.0 * q[:, 2] + q[:, 1])], 1)

    tid, bary, _ = rasterize(pts, topo.triangles, (size, size))
    img = np.full((size, size, 3), 60.0)
    ys, xs = np.nonzero(tid >= 0)
    q = np.einsum("nk,nkd->nd", bary[ys, xs], ref[topo.triangles[tid[ys, xs]]])
    img[ys, xs] = colour(q)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), pts[:478], tid


def test_synthesised_view_of_a_textured_mesh_lands_where_the_true_view_is():
    from hcgym.synthesis.views import INPAINTED, MIRRORED, RENDERED, head_centre, rotate_points, synthesize_view

    src, lm, _ = _textured_head(0.0)
    true, lm_true, tid_true = _textured_head(25.0)
    view = synthesize_view(src, 25.0, 0.0, landmarks=lm)
    assert view.image.shape == src.shape and view.mask.shape == src.shape[:2]
    # The mesh moved exactly as the camera's orbit says (the nose tip, point 1, included).
    assert np.allclose(view.landmarks[:478], lm_true, atol=1e-6)
    assert np.allclose(view.landmarks[1], rotate_points(lm[1:2], 25.0, 0.0, head_centre(lm))[0])
    # Pixels re-rendered from visible texture carry the colours of the true view.
    seen = (view.source == RENDERED) & (tid_true >= 0)
    assert seen.sum() > 0.6 * (tid_true >= 0).sum()
    err = np.abs(view.image.astype(int) - true.astype(int))[seen].mean()
    assert err < 6, err
    # The far side, hidden in a frontal source only at its edge, is filled by mirror symmetry or inpainting.
    assert ((view.source == MIRRORED) | (view.source == INPAINTED)).any()
    assert np.array_equal(view.mask, (view.source == MIRRORED) | (view.source == INPAINTED))
    # A turned source: the near side is seen, the far side comes from the mirror and matches the true view too.
    src2, lm2, _ = _textured_head(40.0)
    true2, _, tid2 = _textured_head(10.0)
    view2 = synthesize_view(src2, -30.0, 0.0, landmarks=lm2)
    mirrored = (view2.source == MIRRORED) & (tid2 >= 0)
    assert mirrored.sum() > 100
    assert np.abs(view2.image.astype(int) - true2.astype(int))[mirrored].mean() < 12
    # No rotation reproduces the face.
    same = synthesize_view(src, 0.0, 0.0, landmarks=lm)
    face = same.source == RENDERED
    assert np.abs(same.image.astype(int) - src.astype(int))[face].mean() < 2


def test_face_yaw_and_the_direction_of_a_synthesised_move():
    from hcgym.synthesis.views import euler_rotation, face_yaw, head_centre, rotate_points, topology

    ref = topology().reference
    assert face_yaw(ref * 40 + [200, 150, 0]) == pytest.approx(0.0, abs=1e-6)
    for yaw in (-50, -20, 20, 50):
        pts = (ref @ euler_rotation(yaw, 0, 0).T) * 40 + [200, 150, 0]
        assert abs(face_yaw(pts)) == pytest.approx(abs(yaw), abs=1e-6)
    # A face turned 30 degrees: one 15-degree camera move turns it toward the camera (15), the other away (45).
    pts = (ref @ euler_rotation(30, 0, 0).T) * 40 + [200, 150, 0]
    after = sorted(abs(face_yaw(rotate_points(pts, p, 0, head_centre(pts)))) for p in (-15, 15))
    assert after == pytest.approx([15.0, 45.0], abs=1e-6)


def test_synthesis_on_a_render_and_bad_landmarks(studio_portraits, monkeypatch):
    import hcgym.synthesis.views as views_module
    from hcgym.synthesis.views import ViewSynthesizer, mesh_points

    _, frame = studio_portraits[0]
    synth = ViewSynthesizer()
    views = synth.views(frame.rgb, [(-15.0, 0.0), (15.0, 0.0)])
    assert all(v is not None and v.image.shape == frame.rgb.shape for v in views)
    assert synth.last_ms > 0
    # The camera moving to the person's left turns the face to image-left: the nose tip moves left.
    assert views[1].landmarks[1, 0] < views[0].landmarks[1, 0]
    # From a frontal portrait both moves turn the face away from the camera, by about 15 degrees.
    assert abs(views[0].source_yaw) < 8 and not any(v.turns_toward_camera for v in views)
    assert all(8 < abs(v.yaw) < 25 for v in views)
    # The yaw of a view is that of its rotated mesh; the face fit of the last image is reused.
    assert all(v.yaw == pytest.approx(views_module.face_yaw(v.landmarks), abs=1e-6) for v in views)
    fits = []
    real_fit = views_module.face_landmarks
    monkeypatch.setattr(views_module, "face_landmarks", lambda img: fits.append(1) or real_fit(img))
    again = synth(frame.rgb, -15.0, 0.0)
    assert fits == [] and np.array_equal(again.image, views[0].image)
    synth(frame.rgb[::-1].copy(), 15.0, 0.0)
    assert fits == [1]  # a new image is fitted
    monkeypatch.undo()
    assert synth(np.full((64, 64, 3), 128, np.uint8)) is None  # no face
    with pytest.raises(SpecError, match="landmarks"):
        mesh_points(np.zeros((10, 3)))


# ------------------------------------------------------------------ the env
def small_env_kwargs():
    from hcgym.synthesis.multiview import MultiViewSettings

    return {"avatars": (600_000, 600_001), "database_pans": (0,), "max_steps": 6,
            "settings": MultiViewSettings(pans=(-30, -15, 0, 15, 30), tilts=(-15, 0), size=(192, 144))}


@pytest.fixture(scope="module")
def tiny_set():
    """A rendered 2-person multi-view set (pans -30..30, tilts -15..0) at 192x144."""
    from hcgym.synthesis.multiview import render_multiview_set

    return render_multiview_set((600_000, 600_001), small_env_kwargs()["settings"])


def _rollout(seed, actions, **kw):
    env = gym.make(ENV_ID, **{**small_env_kwargs(), **kw})
    obs, info = env.reset(seed=seed)
    out, rewards, infos = [obs], [], [info]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append(obs)
        rewards.append(r)
        infos.append(info)
        if term or trunc:
            break
    env.close()
    return np.stack(out), rewards, infos


def test_moves_info_recognise_and_determinism():
    from hcgym.envs.active_fr_pan import PAN_MINUS, PAN_PLUS, RECOGNISE, TILT_MINUS, TILT_PLUS

    acts = [PAN_PLUS, PAN_PLUS, PAN_MINUS, TILT_MINUS, TILT_PLUS, RECOGNISE]
    a = _rollout(3, acts)
    b = _rollout(3, acts)
    assert a[0].tobytes() == b[0].tobytes() and a[1] == b[1]
    infos = a[2]
    pans = [i["pan"] for i in infos]
    assert pans[0] in (-30, -15, 15, 30) and all(p in (-30, -15, 0, 15, 30) for p in pans)
    steps = [(q - p) for p, q in zip(pans, pans[1:])]
    assert all(s in (0, 15, -15) for s in steps)
    last = infos[-1]
    assert "identity" in last and last["correct"] == (last["identity"] == last["person"])
    assert a[1][-1] == (1.0 if last["correct"] else 0.0)
    env = gym.make(ENV_ID, **small_env_kwargs(), render_mode="rgb_array")
    obs, info = env.reset(seed=0, options={"person": 1, "series": 1, "pan": -30, "tilt": 0})
    assert (info["pan"], info["tilt"], info["series"], info["person"]) == (-30, 0, 2, "avatar600001")
    _, _, _, _, info = env.step(PAN_MINUS)  # off the grid: the camera stays
    assert info["pan"] == -30 and info["moves"] == 0
    _, _, _, _, info = env.step(PAN_PLUS)
    assert info["pan"] == -15 and info["moves"] == 1
    assert env.render().shape == (144, 192, 3)
    _, r, term, trunc, info = env.step(RECOGNISE)
    assert term and not trunc and info["correct"] and r == 1.0
    env.reset(seed=0, options={"pan": 30})
    flags = [env.step(PAN_MINUS)[3] for _ in range(6)]
    assert flags == [False] * 5 + [True]  # truncated after max_steps
    env.close()


def test_bad_arguments_name_the_field():
    with pytest.raises(SpecError, match="avatars"):
        gym.make(ENV_ID, avatars=(1,))
    with pytest.raises(SpecError, match="database_pans"):
        gym.make(ENV_ID, database_pans=(7,))
    with pytest.raises(SpecError, match="step"):
        gym.make(ENV_ID, step=10)
    with pytest.raises(SpecError, match="dataset"):
        gym.make(ENV_ID, dataset="/nonexistent/folder")


def test_dataset_mode_over_a_folder_and_the_hpid_layout(tiny_set, tmp_path):
    from PIL import Image

    from hcgym.agents.evaluation.synth_view import run_queries
    from hcgym.synthesis.multiview import read_folder, write_folder

    root = write_folder(tiny_set, tmp_path / "set")
    assert (root / "avatar600000" / "2" / "+15" / "-15.png").is_file()
    back = read_folder(root)
    assert back.persons == tiny_set.persons and back.pans == tiny_set.pans and back.tilts == tiny_set.tilts
    assert np.array_equal(back.images, tiny_set.images)
    # HPID's own names: PersonXX/personneXX<series><nn><tilt><pan>.jpg
    hp = tmp_path / "hpid" / "Person01"
    hp.mkdir(parents=True)
    Image.fromarray(tiny_set.images[0, 0, 0, 1]).save(hp / "personne01146+0-30.jpg")
    one = read_folder(tmp_path / "hpid")
    assert one.pans == (-30,) and one.tilts == (0,) and one.persons == ["Person01"]
    env = gym.make(ENV_ID, dataset=str(root), database_pans=(0,), max_steps=6)
    from gymnasium.utils.env_checker import check_env

    check_env(env.unwrapped, skip_render_check=True)
    agent = SynthesizedViewAgent.for_env(env)
    rows = run_queries(env.unwrapped, agent, "synthesized_view", [(0, 0, 30, 0), (1, 1, -30, -15)])
    assert len(rows) == 2 and all(abs(r.final_pan) <= 30 for r in rows)
    env.close()


@pytest.mark.slow
def test_protocol_on_a_dataset_folder(tiny_set, tmp_path, capsys):
    """``hcgym evaluate synth-view --dataset DIR`` runs on a multi-view folder (the generator's format)."""
    from hcgym.scripts.cli import main
    from hcgym.synthesis.multiview import write_folder

    root = write_folder(tiny_set, tmp_path / "set")
    out = tmp_path / "sv"
    args = ["evaluate", "synth-view", "--dataset", str(root), "--database-pans", "0", "--tilts=-15,0",
            "--no-quality", "--out", str(out)]
    assert main([*args, "--query-pans=-30,30"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["set"]["folder"] == str(root) and res["set"]["persons"] == tiny_set.persons
    assert res["queries"] == 2 * 2 * 2 * 2 and 0.0 <= res["synthesized_view"] <= 100.0
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main([*args[:-1], str(bad), "--query-pans=-45,30"]) == 2
    err = capsys.readouterr().err
    assert "--query-pans" in err and "[-45]" in err and not bad.exists()


def test_sb3_agent_acts_in_the_env():
    from stable_baselines3 import PPO

    env = gym.make(ENV_ID, **small_env_kwargs())
    model = PPO("CnnPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, verbose=0)
    model.learn(8)
    action, _ = model.predict(env.reset(seed=0)[0])
    assert env.action_space.contains(int(action))
    env.close()


# ------------------------------------------------------------------ protocol, end to end
@pytest.mark.slow
def test_protocol_end_to_end_on_a_tiny_configuration(tmp_path, capsys):
    from hcgym.scripts.cli import main

    out = tmp_path / "sv"
    rc = main(["evaluate", "synth-view", "--seed", "1", "--avatars", "3", "--test-persons", "2",
               "--query-pans=-45,-30,30,45", "--tilts", "0", "--size", "192x144", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    for k in ("static", "synthesized_view", "oracle_move"):
        assert 0.0 <= res[k] <= 100.0
    assert set(res["per_pan"]["synthesized_view"]) == {"-45", "-30", "30", "45"}
    assert res["queries"] == 2 * 2 * 4
    assert res["set"]["gallery_images"] <= 2 * 2 * 3
    q = res["synthesis_quality"]["offsets"]
    assert set(q) == {"-30", "-15", "15", "30"} and q["15"]["pairs"] > 0 and res["synthesis_quality"]["ms_per_view"]["n"] > 0
    table = (out / "table.md").read_text()
    assert "58.33%" in table and "91.09%" in table and "Oracle" in table
    assert (out / "accuracy_vs_pan.png").stat().st_size > 1000 and (out / "synthesis_strip.png").is_file()
    assert "synthesized view" in capsys.readouterr().out
    # The calibrated synthesis bias is used and recorded; the uncorrected agent is a diagnostic row.
    assert res["synth_bias"]["source"] == "calibrated" and res["synth_bias"]["distance"]["toward"] > 0
    assert 0.0 <= res["synthesized_view_uncorrected"] <= 100.0 and "no bias correction" in table
    assert 0.0 <= res["synthesized_view_constant_bias"] <= 100.0 and "one bias for every view" in table


@pytest.mark.slow
def test_synthesis_bias_calibration_on_a_tiny_set(tiny_set):
    from hcgym.agents.evaluation.synth_view_calibration import calibrate_synth_bias

    res = calibrate_synth_bias(tiny_set, database_pans=(0,), min_pan=15)
    # Sources at |pan| >= 15 with a target 15 degrees away on the grid (-30..30): 2 persons x 2 series x
    # 2 tilts x (4 sources x 2 directions - 2 off the grid).
    assert res["pairs_tried"] == 2 * 2 * 2 * 6 and 0 < res["pairs"] <= res["pairs_tried"]
    assert np.isfinite(res["distance_bias"]) and abs(res["distance_bias"]) < 0.5
    # From +-30 and +-15 the synthesiser's yaw estimate says which moves turn the face toward the camera:
    # about half of them (the other half turn it away).
    assert res["pairs_toward"] + res["pairs_away"] == res["pairs"] and res["pairs_toward"] > 0 and res["pairs_away"] > 0
    w = res["pairs_toward"] / res["pairs"]
    assert res["distance_bias"] == pytest.approx(w * res["toward"] + (1 - w) * res["away"], abs=2e-4)
    assert calibrate_synth_bias(tiny_set, database_pans=(0,), min_pan=15) == res  # deterministic


def test_calibrate_command_writes_the_shipped_file_format(tiny_set, tmp_path, monkeypatch, capsys):
    import hcgym.synthesis.multiview as multiview
    from hcgym.agents.synthesized_view import CALIBRATION_FILE
    from hcgym.scripts.cli import main

    asked = {}

    def render(avatars, settings, progress=False):  # the tiny set stands in for the calibration avatars
        asked.update(avatars=tuple(avatars), pans=settings.pans, tilts=settings.tilts, size=settings.size)
        return tiny_set

    monkeypatch.setattr(multiview, "render_multiview_set", render)
    out = tmp_path / "cal"
    assert main(["evaluate", "synth-view", "--calibrate", "--database-pans", "0", "--query-pans=-30,30",
                 "--tilts=-15,0", "--size", "192x144", "--out", str(out)]) == 0
    assert asked == {"avatars": tuple(range(910000, 910006)), "pans": (-30, -15, 0, 15, 30), "tilts": (-15, 0),
                     "size": (192, 144)}
    text = (out / "synthesized_view_calibration.json").read_text()
    table, shipped = json.loads(text), json.loads(CALIBRATION_FILE.read_text())
    assert text.endswith("}\n") and table["about"] == shipped["about"] and set(table) == set(shipped)
    entry = table["face/mediapipe-full+face/dlib"]
    assert set(entry) == set(shipped["face/mediapipe-full+face/dlib"])
    assert entry["avatar_seeds"] == list(range(910000, 910006)) and entry["database_pans"] == [0]
    assert entry["pairs"] > 0 and f"over {entry['pairs']} pairs" in capsys.readouterr().out


@pytest.mark.parametrize("args, field", [(["--test-persons", "20"], "--test-persons"),
                                         (["--query-pans=-15,30"], "--query-pans"),
                                         (["--max-moves", "-1"], "--max-moves")])
def test_protocol_bad_arguments_exit_2(tmp_path, capsys, args, field):
    from hcgym.scripts.cli import main

    assert main(["evaluate", "synth-view", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert field in err and err.count("\n") == 1


def test_protocol_non_finite_synth_bias_exits_2(tmp_path, capsys):
    from hcgym.scripts.cli import main

    with pytest.raises(SystemExit) as exc:  # argparse's own errors exit through SystemExit
        main(["evaluate", "synth-view", "--out", str(tmp_path / "x"), "--synth-bias", "nan"])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --synth-bias: expected a finite number" in last
    assert not (tmp_path / "x").exists()
