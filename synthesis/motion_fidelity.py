"""The motion library checked by off-the-shelf sensors (``hcgym evaluate motion``).

Every check runs on HELD-OUT avatars, ``AvatarSpec.random(900_000 + 1000 * seed + k)`` for k = 0, 1, ...:
people never used to build or fit anything in the motion library (the face-68 fit used seeds 100-107, the
hand and body clips were checked on 0-11). Three parts:

1. **Body actions** (:data:`CHECKED_ACTIONS`, optionally :data:`EXTRA_ACTIONS`): one world per (avatar,
   action), built as a dict (:meth:`hcgym.worlds.WorldSpec.from_dict`) with a behaviour timeline: the
   person idles 0.5 s, then does the action for its default duration (``stand_up`` follows a
   ``sit_down``; ``walk`` crosses the view on a 3.2 m path). The embedded backend (OpenGL renderer)
   renders it at ``fps`` from a camera ``distance`` m away, ``side`` degrees to the person's right, 1 m
   up. MediaPipe Pose (video mode, complexity 1; a fresh tracker per clip) is scored by PCK@0.2 over the
   ground-truth joints that are visible (depth test) and inside the image: shoulders, elbows, wrists,
   hips, knees and ankles of the frame's NTU-25 skeleton (``MotionTruth.skeleton``); MediaPipe's "left"
   is the person's own left. A joint is correct when it lies within 0.2 x the torso diameter (the mean of
   the two shoulder-to-opposite-hip distances of the ground truth in the image) of the truth; a frame
   without a detection counts every visible joint as wrong. ``pck_in_image`` scores every joint inside the
   image whatever its visibility (the depth test calls most hip joints hidden: they lie deeper in the body
   than its 10 cm tolerance).
2. **Gestures** (:data:`~hcgym.synthesis.motion.hands.GESTURES`): each hand presents the gesture to the
   camera (:func:`~hcgym.synthesis.motion.hands.presenting_arm`, the arm ``variant`` = avatar index mod 3,
   ``point`` = the gesture's direction for ``left``/``right``), the other hand relaxed; rendered with
   :class:`~hcgym.envs.backends.gl.GLScene` at ``gesture_size`` from ``gesture_distance`` m away in
   :data:`GESTURE_VIEWS`. MediaPipe Hands (static images, two hands, complexity 1) "finds" the hand when
   one of its detections has a mean landmark error under 0.25 x the hand size (the larger side of the
   box of the projected ground-truth points). :func:`~hcgym.synthesis.motion.hands.classify_gesture` is
   run on the 21 ground-truth 3-D points of every (avatar, hand, gesture).
3. **Expressions** (:data:`~hcgym.synthesis.expressions.EXPRESSIONS`, neutral included): the apex of an
   :class:`~hcgym.synthesis.motion.face.ExpressionTrack` (intensity 1), frontal at ``face_distance`` m,
   ``face_size``. MediaPipe Face Mesh (static, refined, 478 points); features = (apex - the avatar's neutral
   render) x/y landmark displacements / the neutral inter-ocular distance; neutral is the zero vector by
   construction, so 6-class accuracies (without neutral) are reported too. Classifiers written in numpy: a
   nearest centroid and an L2 multinomial logistic regression on standardised features, trained on the
   first ``expression_train`` avatars and tested on the others; leave-one-avatar-out accuracies as well.

Protocol shape (:mod:`hcgym.report`): :func:`run`, :func:`table_markdown`, :func:`figures`
(``body_sheet.png``, ``gesture_sheet.png``, ``expression_sheet.png``, ``expression_confusion.png``). The
results are a function of the config alone (no timings in ``results.json``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from hcgym.errors import SpecError

#: Whole-body and upper-body actions the protocol checks by default (every action except ``idle``, ``sit``
#: and the posture helpers).
CHECKED_ACTIONS: tuple[str, ...] = (
    "walk", "turn", "sit_down", "stand_up", "wave", "wave_both", "clap", "point", "squat", "jump", "bow",
    "raise_arms", "punch", "kick", "phone_call", "drink", "stretch", "fall_down")
#: Posture helpers that may be checked as extras.
EXTRA_ACTIONS: tuple[str, ...] = ("arm_forward", "gesture_raise", "cross_arms", "hands_on_hips", "scratch_head")
#: Joints scored by PCK: (name, NTU-25 index, MediaPipe Pose index); "left" = the person's own left.
PCK_JOINTS: tuple[tuple[str, int, int], ...] = (
    ("left_shoulder", 4, 11), ("right_shoulder", 8, 12), ("left_elbow", 5, 13), ("right_elbow", 9, 14),
    ("left_wrist", 6, 15), ("right_wrist", 10, 16), ("left_hip", 12, 23), ("right_hip", 16, 24),
    ("left_knee", 13, 25), ("right_knee", 17, 26), ("left_ankle", 14, 27), ("right_ankle", 18, 28))
#: Bones drawn in the contact sheet (pairs of PCK_JOINTS indices).
SHEET_BONES = ((0, 1), (0, 2), (2, 4), (1, 3), (3, 5), (0, 6), (1, 7), (6, 7), (6, 8), (8, 10), (7, 9), (9, 11))
#: Gesture camera views: name -> (pan towards the hand's outer side, tilt) in degrees, looking at the hand.
GESTURE_VIEWS: dict[str, tuple[float, float]] = {"front": (0.0, 0.0), "outer40": (40.0, 0.0),
                                                 "inner35_up25": (-35.0, 25.0)}
#: Offset of the held-out avatar seeds: avatar k of ``seed`` is ``AvatarSpec.random(HELD_OUT + 1000 * seed + k)``.
HELD_OUT = 900_000
#: Targets of the issue (fractions).
TARGETS = {"body_pck": 0.90, "gesture_found": 0.80, "expression_accuracy": 0.90}
PCK_ALPHA = 0.2
HAND_ERROR = 0.25
LIGHT = {"light_direction": (0.3, 0.4, -1.0), "intensity": 1.0, "ambient": 0.5, "background": (0.72, 0.76, 0.80)}
PARTS = ("body", "gestures", "expressions")


def held_out_seed(seed: int, k: int) -> int:
    """The avatar seed of held-out person ``k`` of protocol seed ``seed``."""
    return HELD_OUT + 1000 * int(seed) + int(k)


@dataclass(frozen=True)
class MotionFidelityConfig:
    """Settings of the motion fidelity protocol (sizes are (width, height) pixels, angles degrees)."""

    seed: int = 0
    parts: tuple[str, ...] = PARTS
    # body actions
    body_avatars: int = 4
    actions: tuple[str, ...] = CHECKED_ACTIONS + EXTRA_ACTIONS
    fps: float = 10.0
    body_size: tuple[int, int] = (400, 300)
    body_hfov: float = 50.0
    distance: float = 3.25
    side: float = 20.0
    # gestures
    gesture_avatars: int = 4
    gestures: tuple[str, ...] = ()  #: empty: every gesture of hands.GESTURES
    hands: tuple[str, ...] = ("right", "left")
    views: tuple[str, ...] = tuple(GESTURE_VIEWS)
    gesture_size: tuple[int, int] = (640, 480)
    gesture_hfov: float = 60.0
    gesture_distance: float = 0.45
    # expressions
    expression_avatars: int = 12
    expression_train: int = 8
    face_size: tuple[int, int] = (640, 480)
    face_hfov: float = 40.0
    face_distance: float = 0.55

    def __post_init__(self) -> None:
        from hcgym.synthesis.motion.actions import actions
        from hcgym.synthesis.motion.hands import GESTURES

        bad = [p for p in self.parts if p not in PARTS]
        if bad or not self.parts:
            raise SpecError("parts", f"expected a non-empty subset of {', '.join(PARTS)}, got {self.parts}")
        table = actions()
        for a in self.actions:
            if a not in table or a in ("idle", "sit"):
                raise SpecError("actions", f"unknown or unchecked action {a!r} (allowed: "
                                f"{', '.join(CHECKED_ACTIONS + EXTRA_ACTIONS)})")
        for g in self.gestures:
            if g not in GESTURES:
                raise SpecError("gestures", f"unknown gesture {g!r} (allowed: {', '.join(GESTURES)})")
        for h in self.hands:
            if h not in ("left", "right"):
                raise SpecError("hands", f"expected left and/or right, got {h!r}")
        for v in self.views:
            if v not in GESTURE_VIEWS:
                raise SpecError("views", f"unknown view {v!r} (allowed: {', '.join(GESTURE_VIEWS)})")
        for name in ("body_avatars", "gesture_avatars"):
            if getattr(self, name) < 1:
                raise SpecError(name, f"need at least 1, got {getattr(self, name)}")
        if not 1 <= self.expression_train < self.expression_avatars:
            raise SpecError("expression_train", f"expected 1..{self.expression_avatars - 1} (the others are the "
                            f"test avatars), got {self.expression_train}")
        if not 0 < self.fps <= 60:
            raise SpecError("fps", f"expected (0, 60], got {self.fps}")
        if not 2.0 <= self.distance <= 6.0:
            raise SpecError("distance", f"expected 2..6 m, got {self.distance}")

    @property
    def gesture_list(self) -> tuple[str, ...]:
        from hcgym.synthesis.motion.hands import GESTURES

        return self.gestures or GESTURES


def quick_config(seed: int = 0) -> MotionFidelityConfig:
    """A small run (under a minute once the avatars are cached): 1 avatar x 4 actions at 5 fps, 1 avatar x
    6 gestures x the right hand x 2 views, 4 expression avatars (3 train, 1 test)."""
    return MotionFidelityConfig(seed=seed, body_avatars=1, actions=("wave", "squat", "walk", "sit_down"), fps=5.0,
                                gesture_avatars=1, gestures=("one", "two", "five", "punch", "left", "collab"),
                                hands=("right",), views=("front", "inner35_up25"), expression_avatars=4,
                                expression_train=3)


# ============================================================================ body actions
def action_world(action: str, avatar_seed: int, cfg: MotionFidelityConfig):
    """(world spec, start, end) of the clip of ``action``: the measured segment is [start, end) seconds."""
    from hcgym.camera import orbit_eye
    from hcgym.synthesis.motion.actions import action as get_action
    from hcgym.worlds import WorldSpec

    act = get_action(action)
    human: dict[str, Any] = {"name": "person", "avatar": {"seed": int(avatar_seed)}, "position": [0.0, 0.0],
                             "heading": -90.0, "blink": False}
    start = 0.5
    if action == "walk":  # crosses the view from the camera's left to its right
        human.update(position=[-1.6, 0.0], heading=0.0,
                     path={"waypoints": [[-1.6, 0.0], [1.6, 0.0]], "speed": 1.2})
        segs = [{"action": "walk", "start": start, "duration": 3.0}]
        duration = 3.0
    elif action == "stand_up":  # stands up from the chair pose sit_down ends in
        lo, d0, hi = get_action("sit_down").duration
        segs = [{"action": "sit_down", "start": start, "duration": d0}]
        start += d0
        duration = act.duration[1]
        segs.append({"action": "stand_up", "start": start, "duration": duration})
    else:
        duration = act.duration[1]
        segs = [{"action": action, "start": start, "duration": duration}]
    human["behaviour"] = segs
    target = np.array([0.0, 0.0, 1.0])
    eye = orbit_eye(target, pan=-cfg.side, tilt=0.0, distance=cfg.distance, facing=-90.0)
    yaw = math.degrees(math.atan2(target[1] - eye[1], target[0] - eye[0]))
    w, h = cfg.body_size
    data = {"name": f"motion_{action}", "room": {"size": [14.0, 14.0], "walls": False},
            "lights": [{"direction": list(LIGHT["light_direction"])}], "ambient": LIGHT["ambient"],
            "background": list(LIGHT["background"]), "humans": [human],
            "robots": [{"name": "cam", "body": "none", "position": [float(v) for v in eye], "yaw": yaw,
                        "cameras": [{"name": "c", "width": int(w), "height": int(h), "hfov": cfg.body_hfov}]}]}
    return WorldSpec.from_dict(data, f"motion_{action}.yaml"), start, start + duration


def torso_diameter(gt: np.ndarray) -> float:
    """Mean of the two shoulder-to-opposite-hip distances of (25, >=2) NTU image points."""
    return 0.5 * (float(np.linalg.norm(gt[4, :2] - gt[16, :2])) + float(np.linalg.norm(gt[8, :2] - gt[12, :2])))


def pck_frame(gt: np.ndarray, pred: np.ndarray | None, size: tuple[int, int], alpha: float = PCK_ALPHA,
              visible_only: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scored joints of one frame.

    Args:
        gt: (25, 3) NTU ``[u, v, visibility]`` of the frame's ground truth.
        pred: (33, 2) MediaPipe Pose pixel landmarks, or ``None`` (no detection).
        size: (width, height) of the image.
        visible_only: score only joints the depth test calls visible (else every joint inside the image).

    Returns:
        (12,) bool scored (visible and inside the image), (12,) bool correct, (12,) error / torso diameter
        (``nan`` where not scored or not detected), in :data:`PCK_JOINTS` order.
    """
    from hcgym.types import VISIBLE

    w, h = size
    idx = [j[1] for j in PCK_JOINTS]
    pts = gt[idx]
    scored = ((pts[:, 2] == VISIBLE) | (not visible_only)) & (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    err = np.full(len(PCK_JOINTS), np.nan)
    torso = torso_diameter(gt)
    if pred is not None and torso > 0:
        e = np.linalg.norm(pred[[j[2] for j in PCK_JOINTS]] - pts[:, :2], axis=1) / torso
        err = np.where(scored, e, np.nan)
    correct = scored & (np.nan_to_num(err, nan=np.inf) < alpha)
    return scored, correct, err


def _mp_pose():
    import mediapipe as mp

    return mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1)


def _pose_landmarks(tracker, rgb: np.ndarray) -> np.ndarray | None:
    r = tracker.process(rgb)
    if r.pose_landmarks is None:
        return None
    h, w = rgb.shape[:2]
    return np.array([[p.x * w, p.y * h] for p in r.pose_landmarks.landmark])


def _crop(rgb: np.ndarray, pts: np.ndarray, pad: float = 0.2, aspect: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """A crop around ``pts`` (N, 2) with width/height ``aspect``; returns the crop and its (x0, y0)."""
    ok = np.isfinite(pts).all(1)
    lo, hi = pts[ok].min(0), pts[ok].max(0)
    c, span = (lo + hi) / 2, (hi - lo) * (1 + 2 * pad)
    hgt = max(span[1], span[0] / aspect, 20.0)
    wid = hgt * aspect
    x0, y0 = int(round(c[0] - wid / 2)), int(round(c[1] - hgt / 2))
    x1, y1 = x0 + int(round(wid)), y0 + int(round(hgt))
    h, w = rgb.shape[:2]
    out = np.full((y1 - y0, x1 - x0, 3), 255, np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out, np.array([x0, y0], dtype=np.float64)


def run_body(cfg: MotionFidelityConfig, log: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Part 1: PCK@0.2 of MediaPipe Pose per action (see the module docstring); (results, figure examples)."""
    from hcgym.envs.backends import make_backend

    names = [j[0] for j in PCK_JOINTS]
    per_action: dict[str, dict[str, Any]] = {}
    joint_scored, joint_correct = np.zeros(len(names), int), np.zeros(len(names), int)
    examples: dict[str, dict[str, Any]] = {}
    sim = None
    try:
        for k in range(cfg.body_avatars):
            seed = held_out_seed(cfg.seed, k)
            for action in cfg.actions:
                world, start, end = action_world(action, seed, cfg)
                if sim is None:
                    sim = make_backend("embedded", world=world)
                sim.load(world, seed=0)
                n = max(1, int(math.floor((end - start) * cfg.fps + 1e-9)))
                times = [start + i / cfg.fps for i in range(n)]
                acc = per_action.setdefault(action, {"frames": 0, "detected": 0, "joints": 0, "correct": 0,
                                                     "inside": 0, "inside_correct": 0, "errors": []})
                tracker = _mp_pose()
                mid = times[len(times) // 2]
                try:
                    for t in times:
                        sim.set_time(t)
                        frame = sim.render()
                        gt = frame.humans[0].motion.skeleton
                        pred = _pose_landmarks(tracker, frame.rgb)
                        scored, correct, err = pck_frame(gt, pred, cfg.body_size)
                        inside, right, _ = pck_frame(gt, pred, cfg.body_size, visible_only=False)
                        acc["inside"] += int(inside.sum())
                        acc["inside_correct"] += int(right.sum())
                        acc["frames"] += 1
                        acc["detected"] += int(pred is not None)
                        acc["joints"] += int(scored.sum())
                        acc["correct"] += int(correct.sum())
                        acc["errors"] += [float(e) for e in err[scored & np.isfinite(err)]]
                        joint_scored += scored
                        joint_correct += correct
                        if k == 0 and t == mid:
                            idx = [j[1] for j in PCK_JOINTS]
                            crop, off = _crop(frame.rgb, gt[:, :2])
                            examples[action] = {"image": crop, "gt": gt[idx, :2] - off,
                                                "pred": None if pred is None else pred[[j[2] for j in PCK_JOINTS]] - off}
                finally:
                    tracker.close()
                log(f"[motion] body avatar {k} {action}: {acc['correct']}/{acc['joints']} joints so far")
    finally:
        if sim is not None:
            sim.close()
    actions_out = {}
    for action, a in per_action.items():
        errs = np.asarray(a.pop("errors"))
        actions_out[action] = {**a, "pck": a["correct"] / max(1, a["joints"]),
                               "pck_in_image": round(a["inside_correct"] / max(1, a["inside"]), 4),
                               "detection_rate": a["detected"] / max(1, a["frames"]),
                               "median_error": float(np.median(errs)) if len(errs) else None}
        actions_out[action]["median_error"] = (None if actions_out[action]["median_error"] is None
                                               else round(actions_out[action]["median_error"], 4))
        actions_out[action]["pck"] = round(actions_out[action]["pck"], 4)
        actions_out[action]["detection_rate"] = round(actions_out[action]["detection_rate"], 4)
    total_j = sum(a["joints"] for a in actions_out.values())
    total_c = sum(a["correct"] for a in actions_out.values())
    return {
        "avatars": [held_out_seed(cfg.seed, k) for k in range(cfg.body_avatars)],
        "actions": actions_out,
        "pck": round(total_c / max(1, total_j), 4),
        "pck_in_image": round(sum(a["inside_correct"] for a in actions_out.values())
                              / max(1, sum(a["inside"] for a in actions_out.values())), 4),
        "by_joint": {n: {"joints": int(s), "pck": round(int(c) / int(s), 4) if s else None}
                     for n, c, s in zip(names, joint_correct, joint_scored)},
        "actions_at_target": sum(a["pck"] >= TARGETS["body_pck"] for a in actions_out.values()),
        "target": TARGETS["body_pck"], "alpha": PCK_ALPHA,
    }, examples


# ============================================================================ rendering helpers
class _AvatarScene:
    """One avatar's mesh in a :class:`GLScene` (identity placement: the avatar frame is the world frame)."""

    def __init__(self, scene, avatar) -> None:
        m = avatar.mesh
        self.scene = scene
        self.handle = scene.add_mesh(m["positions"], m["normals"], m["indices"], uvs=m["uvs"],
                                     texture=avatar.texture_path, instance=1, dynamic=True)

    def render(self, posed, intrinsics, pose) -> np.ndarray:
        positions, normals = posed.render_arrays()
        self.scene.update_mesh(self.handle, positions, normals)
        rgb, _, _ = self.scene.render(intrinsics, pose, **LIGHT)
        return rgb

    def remove(self) -> None:
        self.scene.remove(self.handle)


def _project(points: np.ndarray, pose, intrinsics) -> np.ndarray:
    from hcgym.geometry import project, world_to_camera

    uv, _ = project(points, world_to_camera(pose.position, pose.rotation), intrinsics.matrix)
    return uv


# ============================================================================ gestures
def run_gestures(cfg: MotionFidelityConfig, log: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Part 2: MediaPipe Hands finds the presented hand; the rule classifier on ground-truth 3-D points;
    (results, figure examples)."""
    import mediapipe as mp

    from hcgym.camera import orbit_pose
    from hcgym.envs.backends.gl import GLScene
    from hcgym.synthesis.avatar_spec import AvatarSpec
    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.motion.hands import classify_gesture, hand_deltas, hand_keypoints, presenting_arm, relaxed_hand
    from hcgym.synthesis.motion.rig import rig_for
    from hcgym.types import CameraIntrinsics

    intr = CameraIntrinsics.from_hfov(*cfg.gesture_size, cfg.gesture_hfov)
    gestures = cfg.gesture_list
    per = {g: {"renders": 0, "found": 0, "any_hand": 0, "handedness_ok": 0, "rule_correct": 0, "rule_total": 0,
               "errors": []} for g in gestures}
    by_view = {v: [0, 0] for v in cfg.views}
    by_hand = {h: [0, 0] for h in cfg.hands}
    by_avatar: dict[str, list[int]] = {}
    rule_confusions: dict[str, str] = {}
    examples: dict[str, dict[str, Any]] = {}
    detector = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2, model_complexity=1,
                                        min_detection_confidence=0.5)
    scene = GLScene()
    try:
        for k in range(cfg.gesture_avatars):
            seed = held_out_seed(cfg.seed, k)
            spec = AvatarSpec.random(seed)
            rig, av = rig_for(spec), build_avatar(spec)
            body = _AvatarScene(scene, av)
            by_avatar[str(seed)] = [0, 0]
            for hand in cfg.hands:
                other = "left" if hand == "right" else "right"
                outer = -1.0 if hand == "right" else 1.0  # pan towards the hand's outer side (pan > 0: person's left)
                for g in gestures:
                    point = g if g in ("left", "right") else "up"
                    posed = rig.pose({**presenting_arm(rig, hand, point=point, variant=k % 3),
                                      **relaxed_hand(rig, other), **hand_deltas(rig, g, hand)})
                    kp3 = hand_keypoints(posed, hand)
                    label = classify_gesture(kp3)
                    per[g]["rule_total"] += 1
                    per[g]["rule_correct"] += int(label == g)
                    if label != g:
                        rule_confusions[f"{seed}/{hand}/{g}"] = label
                    centre = kp3.mean(0)
                    for view in cfg.views:
                        pan, tilt = GESTURE_VIEWS[view]
                        cam = orbit_pose(centre, pan=outer * pan, tilt=tilt, distance=cfg.gesture_distance,
                                         facing=-90.0)
                        rgb = body.render(posed, intr, cam)
                        gt = _project(kp3, cam, intr)
                        size = float(max(np.ptp(gt[:, 0]), np.ptp(gt[:, 1])))
                        res = detector.process(rgb)
                        best, best_err, best_label = None, np.inf, None
                        for lm, hd in zip(res.multi_hand_landmarks or [], res.multi_handedness or []):
                            pts = np.array([[p.x * intr.width, p.y * intr.height] for p in lm.landmark])
                            e = float(np.linalg.norm(pts - gt, axis=1).mean())
                            if e < best_err:
                                # MediaPipe labels handedness as in a mirrored (selfie) image: flip it.
                                mp_label = hd.classification[0].label.lower()
                                best, best_err, best_label = pts, e, "right" if mp_label == "left" else "left"
                        found = best is not None and best_err < HAND_ERROR * size
                        rec = per[g]
                        rec["renders"] += 1
                        rec["any_hand"] += int(best is not None)
                        rec["found"] += int(found)
                        rec["handedness_ok"] += int(found and best_label == hand)
                        if found:
                            rec["errors"].append(best_err / size)
                        for table, key in ((by_view, view), (by_hand, hand), (by_avatar, str(seed))):
                            table[key][0] += int(found)
                            table[key][1] += 1
                        if k == 0 and hand == cfg.hands[0] and view == cfg.views[0]:
                            crop, off = _crop(rgb, gt, pad=0.35, aspect=1.0)
                            examples[g] = {"image": crop, "gt": gt - off, "pred": None if best is None else best - off,
                                           "found": bool(found)}
            body.remove()
            log(f"[motion] gestures avatar {k}: {by_avatar[str(seed)][0]}/{by_avatar[str(seed)][1]} hands found")
    finally:
        detector.close()
        scene.release()
    out = {}
    for g, r in per.items():
        errs = r.pop("errors")
        out[g] = {**r, "found_rate": round(r["found"] / max(1, r["renders"]), 4),
                  "median_error": round(float(np.median(errs)), 4) if errs else None}
    renders = sum(r["renders"] for r in out.values())
    found = sum(r["found"] for r in out.values())
    rule_ok = sum(r["rule_correct"] for r in out.values())
    rule_n = sum(r["rule_total"] for r in out.values())
    rate = {key: {k2: {"found": v[0], "renders": v[1], "found_rate": round(v[0] / max(1, v[1]), 4)}
                  for k2, v in table.items()} for key, table in (("by_view", by_view), ("by_hand", by_hand),
                                                                  ("by_avatar", by_avatar))}
    return {"avatars": [held_out_seed(cfg.seed, k) for k in range(cfg.gesture_avatars)], "gestures": out,
            "renders": renders, "found": found, "found_rate": round(found / max(1, renders), 4),
            "any_hand": sum(r["any_hand"] for r in out.values()),
            "handedness_ok": sum(r["handedness_ok"] for r in out.values()),
            "rule_correct": rule_ok, "rule_total": rule_n, "rule_accuracy": round(rule_ok / max(1, rule_n), 4),
            "rule_confusions": rule_confusions, **rate, "target": TARGETS["gesture_found"],
            "max_error": HAND_ERROR}, examples


# ============================================================================ expressions
def nearest_centroid(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int) -> np.ndarray:
    """Predicted labels of ``x_test`` by the nearest class mean (Euclidean) of ``x_train``."""
    cents = np.stack([x_train[y_train == c].mean(0) if (y_train == c).any() else np.full(x_train.shape[1], np.inf)
                      for c in range(n_classes)])
    d = ((x_test[:, None, :] - cents[None]) ** 2).sum(-1)
    return np.argmin(np.nan_to_num(d, nan=np.inf, posinf=np.inf), axis=1)


def logistic_regression(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int,
                        l2: float = 1e-2, steps: int = 400, lr: float = 0.5) -> np.ndarray:
    """Predicted labels of an L2-regularised multinomial logistic regression (full-batch gradient descent on
    features standardised with the training mean and deviation; deterministic)."""
    mu, sd = x_train.mean(0), x_train.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    xs, xt = (x_train - mu) / sd, (x_test - mu) / sd
    n, d = xs.shape
    w, b = np.zeros((d, n_classes)), np.zeros(n_classes)
    onehot = np.eye(n_classes)[y_train]
    for _ in range(steps):
        z = xs @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / n
        w -= lr * (xs.T @ g + l2 * w)
        b -= lr * g.sum(0)
    return np.argmax(xt @ w + b, axis=1)


def _face_landmarks(mesh, rgb: np.ndarray) -> np.ndarray | None:
    r = mesh.process(rgb)
    if not r.multi_face_landmarks:
        return None
    h, w = rgb.shape[:2]
    return np.array([[p.x * w, p.y * h] for p in r.multi_face_landmarks[0].landmark])


def inter_ocular(lm: np.ndarray) -> float:
    """Distance between the eye centres (means of each eye's corners, Face Mesh 33/133 and 362/263)."""
    return float(np.linalg.norm((lm[33] + lm[133]) / 2 - (lm[362] + lm[263]) / 2))


def run_expressions(cfg: MotionFidelityConfig, log: Callable[[str], None]) -> tuple[dict[str, Any], dict[int, Any]]:
    """Part 3: expressions told apart from MediaPipe Face Mesh displacements on held-out avatars;
    (results, figure examples)."""
    import mediapipe as mp

    from hcgym.camera import orbit_pose
    from hcgym.envs.backends.gl import GLScene
    from hcgym.synthesis.avatar_spec import AvatarSpec
    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.expressions import EXPRESSIONS
    from hcgym.synthesis.motion.face import ExpressionTrack, face68, face_state
    from hcgym.synthesis.motion.rig import rig_for
    from hcgym.types import CameraIntrinsics

    labels = list(EXPRESSIONS)
    intr = CameraIntrinsics.from_hfov(*cfg.face_size, cfg.face_hfov)
    feats: dict[int, dict[str, np.ndarray | None]] = {}
    detected, rendered = 0, 0
    examples: dict[int, dict[str, Any]] = {}
    seeds = [held_out_seed(cfg.seed, k) for k in range(cfg.expression_avatars)]
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                                           min_detection_confidence=0.5)
    scene = GLScene()
    try:
        for k, seed in enumerate(seeds):
            spec = AvatarSpec.random(seed)
            rig, av = rig_for(spec), build_avatar(spec)
            body = _AvatarScene(scene, av)
            rest = rig.pose()
            target = face68(rest).mean(0)
            cam = orbit_pose(target, 0.0, 0.0, cfg.face_distance, facing=-90.0)
            marks: dict[str, np.ndarray | None] = {}
            images = {}
            for name in labels:
                if name == "neutral":
                    facial = np.zeros(len(ExpressionTrack("happy").apex_values))
                else:
                    track = ExpressionTrack(name, start=0.0, onset=0.3, apex=1.0, offset=0.4, intensity=1.0)
                    facial = face_state(track, t=0.8).facial
                rgb = body.render(rig.pose(facial=facial), intr, cam)
                marks[name] = _face_landmarks(mesh, rgb)
                rendered += 1
                detected += int(marks[name] is not None)
                images[name] = rgb
            body.remove()
            base = marks["neutral"]
            feats[k] = {}
            for name in labels:
                m = marks[name]
                feats[k][name] = None if m is None or base is None else ((m - base) / inter_ocular(base)).ravel()
            if k >= cfg.expression_train and len(examples) < 3:
                pts = base if base is not None else np.array([[intr.width / 2, intr.height / 2]])
                crops = {}
                for name in labels:
                    c, off = _crop(images[name], pts if marks[name] is None else marks[name], pad=0.12, aspect=0.8)
                    crops[name] = {"image": c, "pred": None if marks[name] is None else marks[name] - off}
                examples[seed] = crops
            log(f"[motion] expressions avatar {k} ({seed}): {sum(v is not None for v in marks.values())}/"
                f"{len(labels)} faces found")
    finally:
        mesh.close()
        scene.release()

    def dataset(avatars):
        xs, ys, miss = [], [], []
        for k in avatars:
            for c, name in enumerate(labels):
                if feats[k][name] is None:
                    miss.append(c)
                else:
                    xs.append(feats[k][name])
                    ys.append(c)
        dim = next((len(v) for f in feats.values() for v in f.values() if v is not None), 1)
        return (np.array(xs) if xs else np.zeros((0, dim))), np.array(ys, dtype=int), miss

    def evaluate(train, test, classes):
        xtr, ytr, _ = dataset(train)
        xte, yte, miss = dataset(test)
        keep_tr, keep_te = np.isin(ytr, classes), np.isin(yte, classes)
        miss = [m for m in miss if m in classes]
        out = {}
        for name, fn in (("nc", nearest_centroid), ("lr", logistic_regression)):
            pred = (fn(xtr[keep_tr], ytr[keep_tr], xte[keep_te], len(labels)) if keep_te.any() and keep_tr.any()
                    else np.zeros(0, int))
            out[name] = (yte[keep_te], pred, miss)
        return out

    all_classes, six = list(range(len(labels))), list(range(1, len(labels)))
    train = list(range(cfg.expression_train))
    test = list(range(cfg.expression_train, cfg.expression_avatars))
    res: dict[str, Any] = {"avatars": seeds, "train_avatars": [seeds[k] for k in train],
                           "test_avatars": [seeds[k] for k in test], "labels": labels,
                           "faces_found": detected, "faces_rendered": rendered,
                           "target": TARGETS["expression_accuracy"]}
    for tag, classes in (("", all_classes), ("_6", six)):
        split = evaluate(train, test, classes)
        for m, (y, p, miss) in split.items():
            total = len(y) + len(miss)
            res[f"{m}_accuracy{tag}"] = round(float((y == p).sum()) / max(1, total), 4)
            if not tag:
                conf = np.zeros((len(labels), len(labels) + 1), int)  # last column: face not found
                for a, b in zip(y, p):
                    conf[a, b] += 1
                for a in miss:
                    conf[a, -1] += 1
                res[f"confusion_{m}"] = conf.tolist()
        loao = {"nc": [0, 0], "lr": [0, 0]}
        for k in range(cfg.expression_avatars):
            split = evaluate([j for j in range(cfg.expression_avatars) if j != k], [k], classes)
            for m, (y, p, miss) in split.items():
                loao[m][0] += int((y == p).sum())
                loao[m][1] += len(y) + len(miss)
        for m, (ok, n) in loao.items():
            res[f"loao_{m}_accuracy{tag}"] = round(ok / max(1, n), 4)
    return res, examples


# ============================================================================ protocol
def run(config: MotionFidelityConfig, progress: bool = True) -> dict[str, Any]:
    """Run the parts of ``config``; returns the results (``_``-keys: figure artefacts and timings)."""
    log = print if progress else (lambda _msg: None)
    results: dict[str, Any] = {"config": _config_dict(config), "_seconds": {}, "_examples": {}}
    for part, fn in (("body", run_body), ("gestures", run_gestures), ("expressions", run_expressions)):
        if part in config.parts:
            t0 = time.perf_counter()
            results[part], results["_examples"][part] = fn(config, log)
            results["_seconds"][part] = time.perf_counter() - t0
    return results


def _config_dict(cfg: MotionFidelityConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["gestures"] = list(cfg.gesture_list)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def table_markdown(results: dict[str, Any]) -> str:
    """``table.md``: per-action PCK, per-gesture detection and rule accuracy, expression accuracies."""
    from hcgym.report import markdown_table

    lines = ["# Motion fidelity (held-out avatars)", ""]
    if "body" in results:
        b = results["body"]
        lines += [f"## Body actions: MediaPipe Pose PCK@{b['alpha']} (avatars {', '.join(map(str, b['avatars']))})", ""]
        rows = [[a, str(r["frames"]), _pct(r["detection_rate"]), str(r["joints"]), _pct(r["pck"]),
                 "-" if r["median_error"] is None else f"{r['median_error']:.3f}",
                 "yes" if r["pck"] >= b["target"] else "no", _pct(r["pck_in_image"])]
                for a, r in b["actions"].items()]
        rows.append(["**all**", str(sum(r["frames"] for r in b["actions"].values())), "",
                     str(sum(r["joints"] for r in b["actions"].values())), f"**{_pct(b['pck'])}**", "",
                     f"{b['actions_at_target']}/{len(b['actions'])}", _pct(b["pck_in_image"])])
        lines += markdown_table(["action", "frames", "detected", "visible joints", "PCK@0.2",
                                 "median error / torso", f">= {_pct(b['target'])}",
                                 "PCK@0.2, all joints in the image"], rows)
        lines += ["", "By joint (visible joints scored): " + ", ".join(
            f"{k} {_pct(v['pck'])} ({v['joints']})" for k, v in b["by_joint"].items()), ""]
    if "gestures" in results:
        g = results["gestures"]
        lines += [f"## Gestures: MediaPipe Hands finds the hand (error < {g['max_error']} x hand size); rule "
                  f"classifier on ground-truth 3-D points (avatars {', '.join(map(str, g['avatars']))})", ""]
        rows = [[name, f"{r['found']}/{r['renders']}", _pct(r["found_rate"]),
                 "-" if r["median_error"] is None else f"{r['median_error']:.3f}",
                 f"{r['rule_correct']}/{r['rule_total']}"] for name, r in g["gestures"].items()]
        rows.append(["**all**", f"{g['found']}/{g['renders']}", f"**{_pct(g['found_rate'])}**", "",
                     f"{g['rule_correct']}/{g['rule_total']} ({_pct(g['rule_accuracy'])})"])
        lines += markdown_table(["gesture", "hand found", "rate", "median error / hand size", "rule correct"], rows)
        lines += ["", "By view: " + ", ".join(f"{k} {v['found']}/{v['renders']}" for k, v in g["by_view"].items())
                  + "; by hand: " + ", ".join(f"{k} {v['found']}/{v['renders']}" for k, v in g["by_hand"].items())
                  + f"; handedness right in {g['handedness_ok']}/{g['found']} found hands.", ""]
    if "expressions" in results:
        e = results["expressions"]
        lines += [f"## Expressions: MediaPipe Face Mesh displacements (train {len(e['train_avatars'])} avatars, "
                  f"test {len(e['test_avatars'])}; faces found {e['faces_found']}/{e['faces_rendered']})", ""]
        rows = [["nearest centroid", _pct(e["nc_accuracy"]), _pct(e["nc_accuracy_6"]), _pct(e["loao_nc_accuracy"]),
                 _pct(e["loao_nc_accuracy_6"])],
                ["logistic regression (L2)", _pct(e["lr_accuracy"]), _pct(e["lr_accuracy_6"]),
                 _pct(e["loao_lr_accuracy"]), _pct(e["loao_lr_accuracy_6"])]]
        lines += markdown_table(["classifier", "test 7-class", "test 6-class", "leave-one-avatar-out 7",
                                 "leave-one-avatar-out 6"], rows)
        lines.append("")
    return "\n".join(lines) + "\n"


# ============================================================================ figures
def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """Contact sheets of the three parts and the expression confusion matrices."""
    out = {}
    ex = results.get("_examples", {})
    if ex.get("body"):
        out["body_sheet.png"] = _body_sheet(results["body"], ex["body"])
    if ex.get("gestures"):
        out["gesture_sheet.png"] = _gesture_sheet(ex["gestures"])
    if "expressions" in results:
        if ex.get("expressions"):
            out["expression_sheet.png"] = _expression_sheet(results["expressions"], ex["expressions"])
        out["expression_confusion.png"] = _confusion(results["expressions"])
    return out


def _grid(n: int, cols: int):
    from hcgym.report import pyplot

    plt = pyplot()
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.4 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes.ravel()


def _body_sheet(body: dict[str, Any], ex: dict[str, Any]) -> bytes:
    from hcgym.report import png_bytes

    fig, axes = _grid(len(ex), 6)
    for ax, (action, e) in zip(axes, ex.items()):
        ax.imshow(e["image"])
        for pts, color in ((e["gt"], "red"), (e["pred"], "lime")):
            if pts is None:
                continue
            for a, b in SHEET_BONES:
                ax.plot([pts[a, 0], pts[b, 0]], [pts[a, 1], pts[b, 1]], "-", color=color, lw=1.2)
            ax.plot(pts[:, 0], pts[:, 1], "o", color=color, ms=2)
        ax.set_title(f"{action} {_pct(body['actions'][action]['pck'])}", fontsize=8)
    fig.suptitle("MediaPipe Pose (green) vs ground truth (red), PCK@0.2 per action", fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)


_HAND_CHAINS = ((0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (0, 17, 18, 19, 20), (5, 9, 13, 17))


def _gesture_sheet(ex: dict[str, Any]) -> bytes:
    from hcgym.report import png_bytes

    fig, axes = _grid(len(ex), 8)
    for ax, (name, e) in zip(axes, ex.items()):
        ax.imshow(e["image"])
        ax.plot(e["gt"][:, 0], e["gt"][:, 1], "o", color="red", ms=2)
        if e["pred"] is not None:
            for chain in _HAND_CHAINS:
                ax.plot(e["pred"][list(chain), 0], e["pred"][list(chain), 1], "-", color="lime", lw=1)
        ax.set_title(f"{name} {'found' if e['found'] else 'missed'}", fontsize=8)
    fig.suptitle("MediaPipe Hands (green) vs ground truth (red), first avatar, front view", fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)


def _expression_sheet(e: dict[str, Any], ex: dict[int, Any]) -> bytes:
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    labels = e["labels"]
    fig, axes = plt.subplots(len(ex), len(labels), figsize=(1.6 * len(labels), 2.0 * len(ex)), dpi=100,
                             squeeze=False)
    for r, (seed, crops) in enumerate(ex.items()):
        for c, name in enumerate(labels):
            ax = axes[r, c]
            ax.axis("off")
            ax.imshow(crops[name]["image"])
            if crops[name]["pred"] is not None:
                p = crops[name]["pred"][::3]
                ax.plot(p[:, 0], p[:, 1], ".", color="lime", ms=1)
            if r == 0:
                ax.set_title(name, fontsize=8)
        axes[r, 0].text(-0.05, 0.5, str(seed), transform=axes[r, 0].transAxes, rotation=90, va="center",
                        ha="right", fontsize=7)
    fig.suptitle("Test avatars at apex, every third Face Mesh point", fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)


def _confusion(e: dict[str, Any]) -> bytes:
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    labels = e["labels"]
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.0), dpi=100)
    for ax, m, title in ((axes[0], "nc", "nearest centroid"), (axes[1], "lr", "logistic regression")):
        conf = np.asarray(e[f"confusion_{m}"])
        ax.imshow(conf, cmap="Blues", vmin=0)
        for i in range(conf.shape[0]):
            for j in range(conf.shape[1]):
                if conf[i, j]:
                    ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if conf[i, j] > conf.max() / 2 else "black")
        ax.set_xticks(range(conf.shape[1]), labels + ["none"], rotation=45, fontsize=7)
        ax.set_yticks(range(conf.shape[0]), labels, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}: {_pct(e[f'{m}_accuracy'])}", fontsize=9)
    fig.suptitle(f"Expressions on {len(e['test_avatars'])} held-out test avatars (Face Mesh displacements)",
                 fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)


__all__ = ["CHECKED_ACTIONS", "EXTRA_ACTIONS", "GESTURE_VIEWS", "MotionFidelityConfig", "PCK_JOINTS", "action_world",
           "figures", "held_out_seed", "inter_ocular", "logistic_regression", "nearest_centroid", "pck_frame",
           "quick_config", "run", "table_markdown", "torso_diameter"]
