"""``clips`` mode: short labelled videos of one moving person, for action, expression and gesture recognition.

Each item is one clip of one person doing one thing, drawn from the dataset seed and the clip index
only (:func:`plan_clip`):

* ``--labels actions``: every body action of :func:`hcgym.synthesis.motion.actions.actions` except
  ``idle`` (whole-body ones as the body segment, upper-body ones layered over idling; ``walk`` on a
  straight path across the view; ``sit``, ``sit_down`` and ``stand_up`` on a stool), parameters drawn
  within each action's :class:`~hcgym.synthesis.motion.base.Param` ranges;
* ``--labels expressions``: the seven expressions of :data:`hcgym.synthesis.expressions.EXPRESSIONS`
  as an expression track (intensity 0.5-1) over an idling body, with blinks and head turns, in one of two
  styles (``--style``, :mod:`hcgym.synthesis.dataset.expression_clips`): ``posed`` (CK+-like: from neutral
  to an apex held to the last frame, a small head turn, a frontal-ish camera) or ``wild`` (AFEW-like:
  onset, apex and offset, blends of two expressions, talking, big head turns, small faces, varied light,
  a hand in front of the face);
* ``--labels gestures``: the hand gestures of :data:`hcgym.synthesis.motion.hands.GESTURES` shown with
  the ``gesture_raise`` arm posture and a gesture track on the same hand (the person's handedness, or
  the other hand one time in four).

Labels are balanced: every block of consecutive clips as long as the label list holds each label once.
People come from a pool of ``identities`` random avatars (:func:`identity_spec`); the pool is split into
train/val/test **by identity** (:func:`identity_splits`), so no person appears in two splits, and clips
cycle through the pool the same way as through the labels. Every clip is its own world (a floor, a light,
the person with a behaviour timeline, a camera; :func:`clip_world`) rendered with the embedded backend's
OpenGL renderer; the camera looks at what the clip is about (the body, the face or the hand over the
clip's frames) from a distance, side angle and height drawn per clip, with a field of view that frames it.

Cyclic actions (walk, wave, clap ...) and gestures start :attr:`ClipPlan.start` seconds before the first
frame, so the clip shows the action under way; one-off actions (jump, bow, sit_down ...) and
expressions start in the clip. Layout::

    clips/<split>/<label>/<clip>.mp4   the video (MPEG-4 part 2, ``hcgym.video``), frame k at start + k / fps
    clips/<split>/<label>/<clip>.json  label, split, identity, avatar, world seed, camera, light, the
                                       timeline, the world itself and the ground truth of every frame
    index.json                         every clip (split, label, files) and every identity (split, spec)
    summary.json, preview.png          counts per label and split; the middle frame of one clip per label
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.synthesis.dataset.config import (
    BACKEND_NEEDS,
    SPLITS,
    ClipSettings,
    GenerateConfig,
    label_names,
    split_fractions,
)
from hcgym.synthesis.dataset.expression_clips import expression_view, face_px_hfov, occluder_shapes, plan_expression
from hcgym.synthesis.dataset.shards import ShardJob, ShardResult

#: Format tag of the per-clip JSON files and of ``index.json``.
CLIP_FORMAT = "hcgym-clip-1"
INDEX_FORMAT = "hcgym-clips-1"
#: Actions that need something to sit on: a stool is put under the hips.
SEATED = ("sit", "sit_down", "stand_up")
#: Arm posture that shows a hand gesture to the camera.
GESTURE_ARM = "gesture_raise"
#: Camera distance ranges (metres) by label set: to the body centre (horizontal), the face or the hand.
DISTANCE = {"actions": (2.5, 5.0), "expressions": (0.6, 1.2), "gestures": (0.6, 1.0)}
#: Largest camera angle (degrees) to either side of the direction the person faces.
YAW = 45.0
#: Field of view limits (degrees) of the fitted cameras.
HFOV = (12.0, 100.0)
FLOOR_PATTERNS = ("plain", "plain", "tiles", "checker")


# ----------------------------------------------------------------------------- labels, pool, splits
def identity_spec(seed: int, identity: int):
    """The :class:`~hcgym.synthesis.avatar_spec.AvatarSpec` of pool identity ``identity`` (the scene pool's avatars)."""
    from hcgym.synthesis.avatar_spec import AvatarSpec
    from hcgym.synthesis.dataset.sampling import identity_seed

    return AvatarSpec.random(identity_seed(seed, identity))


def identity_splits(seed: int, identities: int, fractions: tuple[float, float, float]) -> list[str]:
    """Split of every pool identity.

    Split sizes follow ``fractions`` by largest remainders, with at least one identity in every split of
    non-zero fraction when the pool is large enough; which identities go where is a permutation drawn
    from ``seed``.
    """
    fr = np.asarray(split_fractions(fractions), dtype=np.float64)
    counts = np.floor(fr * identities).astype(int)
    order = np.argsort(-(fr * identities - counts), kind="stable")
    for k in order[: identities - int(counts.sum())]:
        counts[k] += 1
    if identities >= int((fr > 0).sum()):
        for k in np.flatnonzero((fr > 0) & (counts == 0)):
            counts[k] += 1
            counts[int(np.argmax(counts))] -= 1
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B17])).permutation(identities)
    out = [""] * identities
    start = 0
    for split, c in zip(SPLITS, counts):
        for j in perm[start:start + int(c)]:
            out[int(j)] = split
        start += int(c)
    return out


def _cycled(seed: int, tag: int, index: int, size: int) -> int:
    """Element ``index % size`` of the permutation of block ``index // size`` (every block holds each once)."""
    block, k = divmod(int(index), int(size))
    return int(np.random.default_rng(np.random.SeedSequence([int(seed), tag, block])).permutation(size)[k])


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of clip ``index``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0xC11F, int(index)]))


def clip_id(index: int) -> str:
    return f"{index:06d}"


# ----------------------------------------------------------------------------- one clip's plan
@dataclass
class ClipPlan:
    """Everything drawn for one clip before rendering (a pure function of the seed, the index and the settings).

    Attributes:
        human: the person's world-spec entry (avatar, position, heading and timeline keys).
        start: timeline time of the first frame (seconds).
        props: world props (the stool of seated actions is added once the hips are known).
        view: camera draws: ``distance`` (metres), ``yaw`` (degrees from the person's front, + = the
            person's left), ``height`` (camera height, actions) or ``elevation`` (degrees, faces and hands).
    """

    index: int
    label: str
    label_id: int
    identity: int
    split: str
    spec: Any
    world_seed: int
    human: dict[str, Any]
    start: float
    floor: dict[str, Any]
    background: list[float]
    light: dict[str, Any]
    ambient: float
    view: dict[str, float]
    hand: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    props: list[dict[str, Any]] = field(default_factory=list)
    seat: float | None = None


def plan_clip(cfg: GenerateConfig, index: int, names: tuple[str, ...], splits: list[str]) -> ClipPlan:
    """Draw clip ``index``: label, person, timeline, scene and camera view."""
    from hcgym.synthesis.dataset.sampling import sample_light
    from hcgym.synthesis.motion.base import Style

    c: ClipSettings = cfg.clips
    rng = clip_rng(cfg.seed, index)
    label_id = _cycled(cfg.seed, 0x1AB, index, len(names))
    identity = _cycled(cfg.seed, 0x1D5, index, c.identities)
    label = names[label_id]
    spec = identity_spec(cfg.seed, identity)
    style = Style.from_key(spec.identity_key())
    world_seed = int(rng.integers(0, 2 ** 31 - 1))
    heading = round(float(rng.uniform(-180.0, 180.0)), 3)
    human: dict[str, Any] = {"name": "person", "avatar": spec.to_dict(), "position": [0.0, 0.0], "heading": heading,
                             "blink": {"rate": round(float(rng.uniform(8.0, 25.0)), 3)}}
    T = float(c.seconds)
    plan = ClipPlan(index=index, label=label, label_id=label_id, identity=identity, split=splits[identity],
                    spec=spec, world_seed=world_seed, human=human, start=0.0, floor={}, background=[], light={},
                    ambient=0.0, view={})
    if c.labels == "actions":
        _plan_action(plan, rng, T, style)
    elif c.labels == "expressions":
        _plan_expression(plan, rng, c, cfg.seed, style)
    else:
        _plan_gesture(plan, rng, T, style)
    # scene: floor, backdrop and light
    tint = rng.uniform(-0.08, 0.08, 3)
    grey = float(rng.uniform(0.3, 0.75))
    plan.floor = {"color": _rgb(grey + tint), "pattern": str(FLOOR_PATTERNS[int(rng.integers(len(FLOOR_PATTERNS)))])}
    if plan.floor["pattern"] != "plain":
        plan.floor["secondary"] = _rgb(grey + tint - rng.uniform(0.05, 0.15))
    plan.background = _rgb(rng.uniform(0.45, 0.9) + rng.uniform(-0.08, 0.08, 3))
    light = sample_light(rng)
    plan.light = {"direction": list(light.direction), "color": list(light.color), "intensity": light.intensity}
    plan.ambient = light.ambient
    # camera view
    lo, hi = DISTANCE[c.labels]
    yaw = float(rng.uniform(-YAW, YAW))
    if label == "walk":  # the walker crosses the view: seen from 45-90 degrees off their path
        yaw = float(np.sign(yaw) or 1.0) * (90.0 - abs(yaw))
    plan.view = {"distance": round(float(rng.uniform(lo, hi)), 4), "yaw": round(yaw, 4)}
    if c.labels == "actions":
        plan.view["height"] = round(float(rng.uniform(0.9, 2.2)), 4)
    else:
        plan.view["elevation"] = round(float(rng.uniform(-15.0, 20.0)), 4)
    if c.labels == "expressions":
        expression_view(plan, rng, c.style)
    return plan


def _rgb(v) -> list[float]:
    return [round(float(x), 4) for x in np.clip(v, 0.02, 0.98)]


def _draw_params(rng: np.random.Generator, act) -> dict[str, Any]:
    """Parameters of ``act`` drawn uniformly within their ranges (integers stay integers)."""
    out: dict[str, Any] = {}
    for key, p in act.params.items():
        if p.choices is not None:
            out[key] = str(p.choices[int(rng.integers(len(p.choices)))])
        elif isinstance(p.default, int) and not isinstance(p.default, bool):
            out[key] = int(rng.integers(int(p.low), int(p.high) + 1))
        else:
            out[key] = round(float(rng.uniform(p.low, p.high)), 4)
    return out


def _plan_action(plan: ClipPlan, rng: np.random.Generator, T: float, style) -> None:
    from hcgym.synthesis.motion.actions import action

    act = action(plan.label)
    lo, _, hi = act.duration
    params = _draw_params(rng, act)
    if act.cyclic:  # under way when the clip starts, still going when it ends
        plan.start = round(float(rng.uniform(0.4, 0.8)), 4)
        seg_start, duration = 0.0, float(np.clip(plan.start + T + 0.5, lo, hi))
    else:  # the whole action inside the clip (as far as its duration range allows)
        seg_start = round(float(rng.uniform(0.0, 0.1)) * T, 4)
        duration = float(np.clip(float(rng.uniform(0.8, 0.95)) * T, lo, hi))
    segment = {"action": plan.label, "start": seg_start, "duration": round(duration, 4), **params}
    plan.human["behaviour"] = [segment]
    plan.params = params
    if act.locomotion:  # a straight path that puts the walker near the origin in the middle of the clip
        speed = float(params.get("speed", 1.2))
        length = speed * duration + 0.1
        middle = min(length - 0.05, max(0.0, speed * (plan.start + T / 2 - 0.25)))
        h = math.radians(plan.human["heading"])
        u = np.array([math.cos(h), math.sin(h)])
        a, b = -middle * u, (length - middle) * u
        plan.human["position"] = [round(float(x), 4) for x in a]
        plan.human["path"] = {"waypoints": [[round(float(x), 4) for x in a], [round(float(x), 4) for x in b]],
                              "speed": round(speed, 4)}
    if plan.label in SEATED:
        plan.seat = float(params["seat"])
    if "hand" in params:
        plan.hand = style.handedness if params["hand"] == "auto" else params["hand"]


def _plan_expression(plan: ClipPlan, rng: np.random.Generator, c: ClipSettings, seed: int, person) -> None:
    """An expression clip of ``c.style`` (:mod:`hcgym.synthesis.dataset.expression_clips`); blends and occlusion
    (wild clips) each come in every block of three clips once (:func:`_cycled`)."""
    plan_expression(plan, rng, c.seconds, c.fps, frame_count(c), c.style, person.handedness,
                    blend=_cycled(seed, 0xB1E, plan.index, 3) == 0, occlude=_cycled(seed, 0x0CC, plan.index, 3) == 0)


def _plan_gesture(plan: ClipPlan, rng: np.random.Generator, T: float, style) -> None:
    own = style.handedness
    hand = own if rng.random() < 0.75 else ("left" if own == "right" else "right")
    plan.hand = hand
    plan.start = round(float(rng.uniform(0.5, 0.8)), 4)
    plan.human["behaviour"] = [{"action": GESTURE_ARM, "start": 0.0, "duration": round(max(1.0, plan.start + T + 0.6), 4),
                                "hand": hand}]
    g_start = float(rng.uniform(0.1, plan.start))
    g_end = plan.start + float(rng.uniform(0.85, 1.2)) * T
    plan.human["gesture"] = [{"gesture": plan.label, "hand": hand, "start": round(g_start, 4),
                              "duration": round(max(0.2, g_end - g_start), 4)}]
    plan.params = {"hand": hand}


# ----------------------------------------------------------------------------- the world and its camera
def clip_world(plan: ClipPlan, size: tuple[int, int], camera: dict[str, Any] | None = None) -> dict[str, Any]:
    """The clip's world as a world-spec dict (``WorldSpec.from_dict``): open floor, one light, the person,
    the props and a bodiless robot ``cam`` carrying the clip camera (a placeholder until it is fitted)."""
    reach = 6.0
    for p in [plan.human["position"], *plan.human.get("path", {}).get("waypoints", [])]:
        reach = max(reach, abs(p[0]) + 6.0, abs(p[1]) + 6.0)
    cam = camera or {"position": [0.0, -2.0, 1.5], "yaw": 90.0, "pitch": 0.0, "hfov": 60.0}
    w, h = size
    return {
        "name": f"clip_{clip_id(plan.index)}",
        "room": {"size": [2 * reach, 2 * reach], "walls": False, "floor": plan.floor},
        "lights": [plan.light], "ambient": plan.ambient, "background": plan.background,
        "props": plan.props, "humans": [plan.human],
        "robots": [{"name": "cam", "body": "none", "position": cam["position"], "yaw": cam["yaw"],
                    "cameras": [{"name": "camera", "width": w, "height": h, "hfov": cam["hfov"], "near": 0.02,
                                 "mount": {"pitch": cam["pitch"]}}]}],
    }


def frame_times(settings: ClipSettings, start: float) -> np.ndarray:
    """Timeline times of the clip's frames (frame ``k`` at ``start + k / fps``)."""
    n = frame_count(settings)
    return start + np.arange(n) / float(settings.fps)


def frame_count(settings: ClipSettings) -> int:
    return max(1, int(round(settings.seconds * settings.fps)))


def _world_points(motion, t: float, hand: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(17, 3) COCO keypoints, (21, 3) points of ``hand`` (or empty) and the (3,) face centre, world frame, at ``t``."""
    from hcgym.synthesis.builder import Avatar
    from hcgym.synthesis.motion.hands import hand_keypoints

    st = motion.state(t)
    posed = motion.rig.pose(st.rotations, st.facial, st.pose.root)
    m = Avatar.placement(tuple(float(x) for x in st.position), st.heading)

    def world(p: np.ndarray) -> np.ndarray:
        return p @ m[:3, :3].T + m[:3, 3]

    kp = world(posed.keypoints)
    hand_pts = world(hand_keypoints(posed, hand)) if hand in ("left", "right") else np.zeros((0, 3))
    face = kp[[1, 2, 3, 4]].mean(axis=0)  # eyes and ears
    return kp, hand_pts, face


def _sphere(centre: np.ndarray, r: float) -> np.ndarray:
    d = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
    return centre + r * np.vstack([d, np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]) / math.sqrt(3)])


def fit_camera(plan: ClipPlan, labels: str, motion, times: np.ndarray, size: tuple[int, int]) -> dict[str, Any]:
    """The clip camera: placed by the plan's view draws around the target (body, face or hand over ``times``)
    and given the horizontal field of view that frames the target's points with a margin."""
    from hcgym.geometry import camera_rotation, look_at_angles, world_to_camera

    sample = times[np.linspace(0, len(times) - 1, min(len(times), 9)).round().astype(int)]
    body, hands, faces = [], [], []
    for t in sample:
        kp, hp, face = _world_points(motion, float(t), plan.hand if labels == "gestures" else None)
        body.append(kp)
        hands.append(hp)
        faces.append(face)
    kp_all = np.concatenate(body)
    if labels == "actions":
        up = np.array([0.0, 0.0, 0.2])
        pts = np.concatenate([kp_all, np.stack([b[0] for b in body]) + up,  # head top
                              np.concatenate([b[15:17] for b in body]) - np.array([0.0, 0.0, 0.12])])  # soles
        margin = 1.08
    elif labels == "expressions":  # wild clips frame the face itself tighter, then widen the view (face_px)
        pts = np.concatenate([_sphere(f, 0.16 if "face_px" not in plan.view else 0.13) for f in faces])
        margin = 1.05
    else:
        hp = np.concatenate(hands)
        pts = np.concatenate([hp, _sphere(hp.mean(axis=0), 0.2)])  # the hand and some of the arm and face
        margin = 1.05
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2.0
    v = plan.view
    az = math.radians(float(plan.human["heading"]) + v["yaw"])
    if "height" in v:
        eye = np.array([centre[0] + v["distance"] * math.cos(az), centre[1] + v["distance"] * math.sin(az), v["height"]])
    else:
        el = math.radians(v["elevation"])
        eye = centre + v["distance"] * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    eye = np.round(eye, 4)
    yaw, pitch = (round(float(a), 4) for a in look_at_angles(eye, centre))
    w2c = world_to_camera(eye, camera_rotation(yaw, pitch))
    pc = pts @ w2c[:3, :3].T + w2c[:3, 3]
    z = np.maximum(pc[:, 2], 0.05)
    w, h = size
    need = max(float(np.max(np.abs(pc[:, 0]) / z)), float(np.max(np.abs(pc[:, 1]) / z)) * w / h) * margin
    hfov = float(np.clip(2.0 * math.degrees(math.atan(need)), *HFOV))
    if "face_px" in v:  # wild expression clips: a wider view, so the face is at most about face_px wide
        depth = float(np.mean((np.stack(faces) @ w2c[:3, :3].T + w2c[:3, 3])[:, 2]))
        hfov = float(np.clip(max(hfov, face_px_hfov(v["face_px"], depth, w)), *HFOV))
    return {"position": [float(x) for x in eye], "yaw": yaw, "pitch": pitch, "hfov": round(hfov, 4),
            "target": [round(float(x), 4) for x in centre]}


def _stool(plan: ClipPlan, motion, times: np.ndarray, seed: int) -> dict[str, Any]:
    """A stool of the seat's height under the hips where they are lowest during the clip."""
    best = None
    seg = plan.human["behaviour"][0]
    for t in np.linspace(0.0, max(float(times[-1]), seg["start"] + seg["duration"]), 13):
        kp, _, _ = _world_points(motion, float(t), None)
        hips = kp[[11, 12]].mean(axis=0)
        if best is None or hips[2] < best[2]:
            best = hips
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5700]))
    brown = np.array([0.42, 0.30, 0.2]) * rng.uniform(0.7, 1.3)
    side = 0.4
    return {"name": "stool", "shape": "box", "size": [side, side, round(float(plan.seat) - 0.02, 4)],
            "position": [round(float(best[0]), 4), round(float(best[1]), 4)],
            "yaw": round(float(plan.human["heading"]), 3), "color": _rgb(brown)}


# ----------------------------------------------------------------------------- before the workers start
def prepare_clips(cfg: GenerateConfig, indices) -> None:
    """Solve, once and in this process, the cached hand poses the clips ``indices`` need.

    The thumb of every hand shape (the relaxed hand of every person, and each shown gesture) is solved by
    inverse kinematics the first time a rig needs it and then read from the disk cache
    (:mod:`hcgym.synthesis.motion.hands`). A fresh solve can differ from the cached value in the last
    digits, so if workers solved shapes themselves, the first clips of a cold cache could depend on which
    worker rendered them. Solving everything here first makes every worker read the same cached values.
    """
    from hcgym.synthesis.motion.hands import GESTURES, HANDS, thumb_residual
    from hcgym.synthesis.motion.rig import rig_for

    c = cfg.clips
    names = label_names(c.labels)
    splits = identity_splits(cfg.seed, c.identities, c.splits)
    shapes: set[tuple[int, str, str]] = set()
    full = c.identities * (1 + len(GESTURES) * len(HANDS))
    for index in indices:
        identity = _cycled(cfg.seed, 0x1D5, index, c.identities)
        shapes.update((identity, "relaxed", hand) for hand in HANDS)
        if c.labels == "gestures":
            plan = plan_clip(cfg, index, names, splits)
            shapes.add((identity, plan.label, str(plan.hand)))
        elif c.labels == "expressions" and c.style == "wild":  # hands raised in front of the face
            shapes.update(occluder_shapes(plan_clip(cfg, index, names, splits)))
        elif len(shapes) == 2 * c.identities:
            break
        if len(shapes) >= full:
            break
    rigs: dict[int, Any] = {}
    for identity, gesture, hand in sorted(shapes):
        if identity not in rigs:
            rigs[identity] = rig_for(identity_spec(cfg.seed, identity))
        thumb_residual(rigs[identity], gesture, hand)


# ----------------------------------------------------------------------------- rendering
class ClipStage:
    """One embedded backend per worker, reloaded with every clip's world (the OpenGL renderer frees what a
    world used when the next one is loaded, so nothing accumulates; avatar builds come from the disk cache)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.sim = None

    def load(self, world, seed: int) -> Any:
        from hcgym.envs.backends import make_backend

        if self.sim is None:
            self.sim = make_backend(self.backend, BACKEND_NEEDS["clips"], world=world)
        self.sim.load(world, seed=seed)
        return self.sim


_STAGES: dict[str, ClipStage] = {}


def _stage(backend: str) -> ClipStage:
    if backend not in _STAGES:
        _STAGES[backend] = ClipStage(backend)
    return _STAGES[backend]


def render_clips_shard(job: ShardJob) -> ShardResult:
    """Clips ``job.start .. job.start + job.count - 1``: videos, per-clip JSON files and the shard record."""
    cfg: GenerateConfig = job.config
    names = label_names(cfg.clips.labels)
    splits = identity_splits(cfg.seed, cfg.clips.identities, cfg.clips.splits)
    stage = _stage(cfg.backend)
    timings: dict[str, float] = {}
    cpu0 = time.process_time()
    files: list[tuple[str, bytes]] = []
    entries, avatars = [], {}
    scratch = Path(cfg.out) / ".scratch"  # inside the output: a killed worker leaves nothing elsewhere
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"shard{job.index}-", dir=scratch) as tmp:
        for index in range(job.start, job.start + job.count):
            video, annotation, entry, avatar = render_clip(stage, cfg, index, names, splits, Path(tmp), timings)
            files += [(entry["video"], video), (entry["annotation"], annotation)]
            entries.append(entry)
            avatars.update(avatar)
    record = json.dumps({"shard": job.index, "clips": entries, "avatars": dict(sorted(avatars.items()))},
                        separators=(",", ":")).encode()
    timings["cpu"] = time.process_time() - cpu0
    return ShardResult(job.index, files, record, job.count, timings)


def _tick(timings: dict[str, float], key: str, t0: float) -> float:
    now = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + now - t0
    return now


def render_clip(stage: ClipStage, cfg: GenerateConfig, index: int, names: tuple[str, ...], splits: list[str],
                tmp: Path, timings: dict[str, float]) -> tuple[bytes, bytes, dict[str, Any], dict[str, Any]]:
    """Plan, render and annotate clip ``index``: (video bytes, JSON bytes, index entry, {avatar key: spec})."""
    from hcgym.camera import CameraPose
    from hcgym.geometry import world_to_camera
    from hcgym.video import VideoWriter
    from hcgym.worlds.spec import WorldSpec

    c = cfg.clips
    t0 = time.perf_counter()
    plan = plan_clip(cfg, index, names, splits)
    times = frame_times(c, plan.start)
    name = f"clip_{clip_id(index)}"
    world = WorldSpec.from_dict(clip_world(plan, cfg.size), name)
    t0 = _tick(timings, "plan", t0)
    sim = stage.load(world, plan.world_seed)
    motion = sim.humans[0].motion
    if plan.seat is not None:  # the stool goes where the hips come down, then the world is loaded again
        plan.props = [_stool(plan, motion, times, plan.world_seed)]
    camera = fit_camera(plan, c.labels, motion, times, cfg.size)
    data = clip_world(plan, cfg.size, camera)
    world = WorldSpec.from_dict(data, name)
    if plan.seat is not None:
        sim = stage.load(world, plan.world_seed)
    robot, cam = world.camera("camera")
    pose = CameraPose.from_angles(np.asarray(robot.position, dtype=np.float64), robot.yaw, cam.mount_pitch)
    intr = cam.intrinsics()
    t0 = _tick(timings, "load", t0)
    w, h = cfg.size
    per_frame = []
    writer = VideoWriter(tmp / f"{clip_id(index)}.mp4", c.fps, (w, h))
    try:
        for k, t in enumerate(times):
            sim.set_time(float(t))
            frame = sim.render(pose=pose, intrinsics=intr)
            t0 = _tick(timings, "render", t0)
            writer.write(frame.rgb)
            t0 = _tick(timings, "encode", t0)
            per_frame.append(_frame_record(k, float(t), frame.humans[0], c.labels, plan.hand))
            t0 = _tick(timings, "truth", t0)
    finally:
        writer.close()
    video = writer.path.read_bytes()
    writer.path.unlink()
    state = sim.humans[0]
    folder = f"clips/{plan.split}/{plan.label}"
    entry = {"clip": clip_id(index), "split": plan.split, "label": plan.label, "label_id": plan.label_id,
             "identity_id": plan.identity, "identity": plan.spec.identity_key(), "avatar": state.avatar.key,
             "video": f"{folder}/{clip_id(index)}.mp4", "annotation": f"{folder}/{clip_id(index)}.json",
             "frames": len(times)}
    k = intr
    w2c = world_to_camera(pose.position, pose.rotation)
    doc = {
        "format": CLIP_FORMAT, "clip": clip_id(index), "labels": c.labels, "label": plan.label,
        "label_id": plan.label_id, "split": plan.split, "identity": entry["identity"],
        "identity_id": plan.identity, "avatar": entry["avatar"], "dataset_seed": cfg.seed, "world_seed": plan.world_seed,
        "video": f"{clip_id(index)}.mp4", "fps": c.fps, "seconds": c.seconds, "frames": len(times),
        "start_time": plan.start, "width": w, "height": h, "hand": plan.hand, "params": plan.params,
        "camera": {"fx": round(k.fx, 4), "fy": round(k.fy, 4), "cx": k.cx, "cy": k.cy, "hfov": camera["hfov"],
                   "near": k.near, "far": k.far, "position": camera["position"], "yaw": camera["yaw"],
                   "pitch": camera["pitch"], "target": camera["target"], "distance": plan.view["distance"],
                   "yaw_from_front": plan.view["yaw"],
                   **({"elevation": plan.view["elevation"]} if "elevation" in plan.view else {}),
                   "world_to_camera": [[round(float(x), 6) for x in row] for row in w2c]},
        "light": {**plan.light, "ambient": plan.ambient},
        "timeline": {key: plan.human[key] for key in ("path", "behaviour", "expression", "gesture", "head", "blink")
                     if key in plan.human},
        "world": data,
        "per_frame": per_frame,
    }
    annotation = json.dumps(doc, separators=(",", ":")).encode()
    _tick(timings, "json", t0)
    return video, annotation, entry, {state.avatar.key: plan.spec.to_dict()}


def _frame_record(k: int, t: float, truth, labels: str, hand: str | None) -> dict[str, Any]:
    """One frame's ground truth (the fields of the label set; see docs/datasets.md)."""
    d = truth.to_dict()
    m = d["motion"]
    if labels == "actions":
        label = m["label"]
    elif labels == "expressions":
        label = m["expression"]
    else:
        label = m["gestures"].get(hand)
    rec: dict[str, Any] = {"frame": k, "time": round(t, 6), "label": label, "action": m["action"],
                           "upper_action": m["upper_action"], "bbox": d["bbox"], "bbox_amodal": d["bbox_amodal"],
                           "pixels": d["pixels"], "skeleton": m["skeleton"], "skeleton_3d": m["skeleton_3d"]}
    if labels == "actions":
        rec.update(action_phase=m["action_phase"], root_velocity=m["root_velocity"])
    elif labels == "expressions":
        rec.update(expression=m["expression"], expression_intensity=m["expression_intensity"],
                   facial_actions=m["facial_actions"], face_box=d["face_box"], face68=m["face68"],
                   face68_3d=m["face68_3d"], face_yaw=d["face_yaw"], gaze=m["gaze"], talking=m["talking"],
                   viseme=m["viseme"])
    else:
        rec.update(gestures=m["gestures"], hand_keypoints=m["hand_keypoints"],
                   hand_keypoints_3d=m["hand_keypoints_3d"])
    return rec


# ----------------------------------------------------------------------------- the end of a run
def finalize_clips(out: Path, records: list[dict[str, Any]], config: GenerateConfig,
                   key: dict[str, Any]) -> dict[str, Any]:
    """Write ``index.json``, ``summary.json`` and ``preview.png`` from the shard records."""
    import shutil

    from hcgym.synthesis.dataset.report import write_json, write_png
    from hcgym.synthesis.dataset.sampling import identity_seed

    shutil.rmtree(Path(out) / ".scratch", ignore_errors=True)  # left by killed workers
    c = config.clips
    names = label_names(c.labels)
    clips = [e for r in records for e in r["clips"]]
    splits = identity_splits(config.seed, c.identities, c.splits)
    identities = []
    for j, split in enumerate(splits):
        spec = identity_spec(config.seed, j)
        identities.append({"identity_id": j, "identity": spec.identity_key(), "split": split,
                           "avatar_seed": identity_seed(config.seed, j), "spec": spec.to_dict()})
    w, h = config.size
    write_json(out / "index.json", {"format": INDEX_FORMAT, "labels": c.labels, "label_names": list(names),
                                    "fps": c.fps, "seconds": c.seconds, "frames": frame_count(c), "width": w,
                                    "height": h, "identities": identities, "clips": clips})
    per_split = {s: {"clips": 0, "identities": sum(1 for x in splits if x == s),
                     "identities_seen": len({e["identity_id"] for e in clips if e["split"] == s}),
                     "labels": {n: 0 for n in names}} for s in SPLITS}
    for e in clips:
        per_split[e["split"]]["clips"] += 1
        per_split[e["split"]]["labels"][e["label"]] += 1
    summary = {"mode": "clips", "labels": c.labels, "clips": len(clips), "frames": len(clips) * frame_count(c),
               "fps": c.fps, "seconds": c.seconds, "size": [w, h],
               "per_label": {n: sum(1 for e in clips if e["label"] == n) for n in names},
               "splits": per_split, "dataset": key}
    write_json(out / "summary.json", summary)
    write_png(out / "preview.png", clips_preview(out, clips, names))
    return summary


def clips_preview(out: Path, clips: list[dict[str, Any]], names: tuple[str, ...], tile_w: int = 128) -> np.ndarray:
    """The middle frame of the first clip of each label, read back from the written files, with the frame's
    person box and skeleton (or hand points / face points) drawn and the label written under it."""
    from PIL import Image, ImageDraw

    from hcgym.synthesis.dataset.report import tile_grid
    from hcgym.video import read_video

    first: dict[str, dict] = {}
    for e in clips:
        first.setdefault(e["label"], e)
    tiles = []
    for n in names:
        if n not in first:
            continue
        e = first[n]
        frames = read_video(out / e["video"])
        doc = json.loads((out / e["annotation"]).read_text())
        k = len(frames) // 2
        rec = doc["per_frame"][k]
        h0, w0 = frames.shape[1:3]
        scale = tile_w / w0
        tile = Image.fromarray(frames[k]).resize((tile_w, max(1, round(h0 * scale))), Image.BILINEAR)
        draw = ImageDraw.Draw(tile)
        if rec["bbox"] is not None:
            draw.rectangle([v * scale for v in rec["bbox"]], outline=(255, 200, 0), width=1)
        pts = rec.get("hand_keypoints") or ([rec["face68"]] if "face68" in rec else [rec["skeleton"]])
        for group in pts:
            for u, v, vis in group:
                if vis > 0:
                    draw.point((u * scale, v * scale), fill=(0, 255, 120))
        canvas = Image.new("RGB", (tile.width, tile.height + 12), (255, 255, 255))
        canvas.paste(tile, (0, 0))
        ImageDraw.Draw(canvas).text((2, tile.height), n[:20], fill=(0, 0, 0))
        tiles.append(np.asarray(canvas))
    if not tiles:
        return np.full((16, 16, 3), 255, np.uint8)
    return tile_grid(tiles, cols=6, pad=2)
