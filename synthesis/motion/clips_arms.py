"""Arm and upper-body actions: wave, clap, point, raise arms, punch, phone call, drink and the arm postures
used to show a hand gesture to a camera.

Every action here drives only the arm chains (:data:`ARM_BONES`: clavicle, shoulder01, upperarm01/02,
lowerarm01/02 and wrist of each side) and, for ``point`` and ``punch``, a small twist of the upper spine
(:data:`TORSO_BONES`). Finger bones are never touched (the hand worker composes finger deltas on top),
and the wrist only turns where the action needs the palm to face a way (waving, clapping, holding a cup).
A behaviour timeline may therefore layer an arm action over a whole-body one (wave while walking) by
replacing the :data:`ARM_BONES` deltas; the whole-body action keeps its spine.

How the arms are posed: each key pose names, per side, the clavicle's elevation and protraction, the
directions of the upper arm and the forearm (or a wrist or palm target reached by two-bone inverse
kinematics with an elbow pole) and, optionally, where the palm should face and where the fingers should
point. :func:`_solve` turns that into accumulated rotations: the upper arm takes the frame (upper-arm
direction, elbow hinge axis), the forearm bends about the hinge (no twist at the elbow), the forearm
twist that turns the palm goes to lowerarm02 (40 % of it to lowerarm01, to spread the skin) and the wrist
takes what remains of the hand's orientation, limited to an anatomical range. Targets are written for
one side in side-local terms (``lateral`` = away from the midline, ``forward``, ``up``) and mirrored, and
they are solved on each side's own rest geometry, so left and right mirror exactly on a symmetric body.

Every action starts and ends in :func:`relaxed_arms` (arms hanging at the sides, elbows a little bent)
and blends in and out with :func:`~hcgym.synthesis.motion.base.envelope`. Instances differ through
``ctx.rng()`` (angles, reach, timing, phase), ``style.amplitude``, ``style.tempo`` and
``style.handedness`` (``hand: auto``).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hcgym.synthesis.motion.base import (
    Action,
    BodyPose,
    ClipContext,
    Param,
    Style,
    align,
    cross,
    deltas_from_accumulated,
    ease,
    envelope,
    identity_rotations,
    rot,
    slerp,
)
from hcgym.synthesis.motion.rig import BONE_INDEX, PosedBody, Rig

#: The arm bones of one side, parent to child (append ``.L`` / ``.R``).
ARM_CHAIN: tuple[str, ...] = ("clavicle", "shoulder01", "upperarm01", "upperarm02", "lowerarm01", "lowerarm02",
                              "wrist")
#: Every bone an arm action drives on the arms (both sides). A timeline layers an arm action over a
#: whole-body one by replacing these bones' deltas.
ARM_BONES: tuple[str, ...] = tuple(f"{b}.{s}" for s in ("L", "R") for b in ARM_CHAIN)
#: Upper-spine bones that ``point`` and ``punch`` twist a little (not part of the layering).
TORSO_BONES: tuple[str, ...] = ("spine02", "spine01")

_SIDE = {"left": "L", "right": "R"}
_HAND_BONES = ("wrist", "metacarpal1", "metacarpal2", "metacarpal3", "metacarpal4", "finger1-1", "finger2-1",
               "finger3-1", "finger4-1", "finger5-1")
_TORSO_SKIN = ("root", "spine05", "spine04", "spine03", "spine02", "spine01", "pelvis.L", "pelvis.R")


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(v))
    if n < 1e-12:
        raise ValueError("zero-length direction")
    return v / n


def _frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthonormal frame (columns): ``a``, the part of ``b`` orthogonal to ``a``, and their cross product."""
    a = _unit(a)
    b = _unit(b - a * (a @ b))
    return np.column_stack([a, b, cross(a, b)])


def _axis_rot(axis: np.ndarray, radians: float) -> np.ndarray:
    return rot(axis, math.degrees(radians)) if abs(radians) > 1e-12 else np.eye(3)


def _limit(r: np.ndarray, degrees: float) -> np.ndarray:
    """``r`` scaled down (about its own axis) to at most ``degrees``."""
    angle = math.degrees(math.acos(float(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))
    return r if angle <= degrees else slerp(np.eye(3), r, degrees / angle)


def _signed_angle(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> float:
    """Angle (radians) about ``axis`` that takes ``a`` to ``b`` (both projected onto the plane normal to ``axis``)."""
    a = a - axis * (a @ axis)
    b = b - axis * (b @ axis)
    if np.linalg.norm(a) < 1e-9 or np.linalg.norm(b) < 1e-9:
        return 0.0
    return math.atan2(float(cross(a, b) @ axis), float(a @ b))


# --------------------------------------------------------------------------- rest geometry
@dataclass(frozen=True)
class Arm:
    """One arm's rest geometry (reference A-pose, the rig's posing frame).

    ``out`` is -1 for the right arm and +1 for the left (the sign of x away from the midline); side-local
    vectors (lateral, forward, up) map to the avatar frame with :meth:`vec`.
    """

    side: str  #: "L" or "R".
    out: float
    clavicle: np.ndarray  #: clavicle head.
    shoulder: np.ndarray  #: upperarm01 head (the shoulder joint).
    upper_len: float
    fore_len: float
    u0: np.ndarray  #: rest upper-arm direction (shoulder -> elbow).
    f0: np.ndarray  #: rest forearm direction (elbow -> wrist).
    hinge0: np.ndarray  #: rest elbow hinge axis (u0 x f0, unit).
    flex0: float  #: rest elbow flexion, radians.
    h0: np.ndarray  #: rest hand direction (wrist -> middle knuckle).
    p0: np.ndarray  #: rest palm normal (out of the palm, orthogonal to h0).
    palm_offset: np.ndarray  #: rest palm-surface centre minus the wrist head.
    ear: np.ndarray  #: this side's COCO ear keypoint.

    def vec(self, lateral: float, forward: float, up: float) -> np.ndarray:
        """A side-local vector in the avatar frame (lateral = away from the midline)."""
        return np.array([self.out * lateral, -forward, up], dtype=np.float64)

    def bone(self, name: str) -> str:
        return f"{name}.{self.side}"


@dataclass(frozen=True)
class ArmGeometry:
    """What arm actions need to know about one body: both arms and a few landmarks (rig posing frame)."""

    arms: dict[str, Arm]
    nose: np.ndarray
    mouth: np.ndarray
    head_centre: np.ndarray
    head_top: float  #: highest z of the head.
    head_points: np.ndarray  #: (N, 3) head vertices (for surface look-ups).
    torso_z: np.ndarray  #: (K,) heights of the torso profile.
    torso_front: np.ndarray  #: (K,) most forward y of the torso near the midline at each height.
    torso_back: np.ndarray  #: (K,) most backward y.
    torso_half_width: np.ndarray  #: (K,) largest |x| of the torso at each height.
    spine_y: float  #: y of the spine axis (spine01 head).
    hip_z: float  #: height of the hip joints (upperleg01 heads).

    def front_y(self, z: float) -> float:
        return float(np.interp(z, self.torso_z, self.torso_front))

    def mid_y(self, z: float) -> float:
        return float(np.interp(z, self.torso_z, (self.torso_front + self.torso_back) / 2))

    def half_width(self, z: float) -> float:
        return float(np.interp(z, self.torso_z, self.torso_half_width))

    def head_surface(self, direction: np.ndarray) -> np.ndarray:
        """The head's surface point from its centre along ``direction`` (within a 20 degree cone)."""
        d = _unit(direction)
        rel = self.head_points - self.head_centre
        dist = np.linalg.norm(rel, axis=1)
        cone = rel @ d > np.cos(np.radians(20.0)) * dist
        reach = float((rel[cone] @ d).max()) if cone.any() else float(dist.max())
        return self.head_centre + reach * d


_GEOMETRY: OrderedDict[str, ArmGeometry] = OrderedDict()
_GEOMETRY_LOCK = threading.Lock()

# Rest directions of the right arm averaged over anny bodies (they vary by < 3 degrees between identities):
# used by relaxed_arms when no rig is given.
_CANONICAL_R = {"u0": (-0.665, -0.025, -0.746), "f0": (-0.509, -0.683, -0.525), "h0": (-0.421, -0.753, -0.507),
                "p0": (0.778, 0.045, -0.627)}


def _canonical_arm(side: str) -> Arm:
    m = np.array([1.0, 1.0, 1.0]) if side == "R" else np.array([-1.0, 1.0, 1.0])
    u0, f0, h0, p0 = (_unit(np.array(_CANONICAL_R[k]) * m) for k in ("u0", "f0", "h0", "p0"))
    p0 = _unit(p0 - h0 * (p0 @ h0))
    z = np.zeros(3)
    return Arm(side, -1.0 if side == "R" else 1.0, z, z, 0.28, 0.26, u0, f0, _unit(cross(u0, f0)),
               math.acos(float(u0 @ f0)), h0, p0, z, z)


def arm_geometry(rig: Rig) -> ArmGeometry:
    """The :class:`ArmGeometry` of a rig (computed once per identity, ~10 ms, then cached in memory)."""
    with _GEOMETRY_LOCK:
        if rig.key in _GEOMETRY:
            _GEOMETRY.move_to_end(rig.key)
            return _GEOMETRY[rig.key]
    geo = _build_geometry(rig)
    with _GEOMETRY_LOCK:
        _GEOMETRY[rig.key] = geo
        while len(_GEOMETRY) > 64:
            _GEOMETRY.popitem(last=False)
    return geo


def _build_geometry(rig: Rig) -> ArmGeometry:
    posed = rig.pose()
    heads, verts, kp = posed.heads, posed.vertices, posed.keypoints
    tmpl = rig.template
    dominant = tmpl.skin_index[np.arange(len(tmpl.skin_index)), np.argmax(tmpl.skin_weight, axis=1)]
    h = lambda name: heads[BONE_INDEX[name]]  # noqa: E731
    arms = {}
    for side, ear in (("L", kp[3]), ("R", kp[4])):
        b = lambda name: f"{name}.{side}"  # noqa: E731
        s, e, w = h(b("upperarm01")), h(b("lowerarm01")), h(b("wrist"))
        u0, f0 = _unit(e - s), _unit(w - e)
        h0 = _unit(h(b("finger3-1")) - w)
        out = -1.0 if side == "R" else 1.0
        p0 = _unit(cross(h(b("finger2-1")) - w, h(b("finger5-1")) - w))
        if p0[0] * out > 0:  # the palm faces the body's midline in the A-pose
            p0 = -p0
        p0 = _unit(p0 - h0 * (p0 @ h0))
        # Palm surface centre: the middle of the palm (wrist to knuckles) pushed out to the skin along the normal.
        knuckles = np.mean([h(b(f"finger{k}-1")) for k in (2, 3, 4, 5)], axis=0)
        centre = 0.55 * w + 0.45 * knuckles
        hand = np.isin(dominant, [BONE_INDEX[b(n)] for n in _HAND_BONES])
        rel = verts[hand] - centre
        along = rel @ p0
        near = np.linalg.norm(rel - np.outer(along, p0), axis=1) < 0.02
        palm = centre + (float(along[near].max()) if near.any() else 0.012) * p0
        arms[side] = Arm(side, out, h(b("clavicle")).copy(), s.copy(), float(np.linalg.norm(e - s)),
                         float(np.linalg.norm(w - e)), u0, f0, _unit(cross(u0, f0)), math.acos(float(u0 @ f0)),
                         h0, p0, palm - w, ear.copy())
    head = verts[dominant == BONE_INDEX["head"]]
    torso = verts[np.isin(dominant, [BONE_INDEX[n] for n in _TORSO_SKIN])]
    zs = np.arange(torso[:, 2].min() + 0.01, torso[:, 2].max(), 0.01)
    front, back, half = [], [], []
    for z in zs:
        band = torso[np.abs(torso[:, 2] - z) < 0.012]
        mid = band[np.abs(band[:, 0]) < 0.06]
        mid = mid if len(mid) else band
        front.append(mid[:, 1].min())
        back.append(mid[:, 1].max())
        half.append(np.abs(band[:, 0]).max())
    nose = kp[0].copy()
    eyes = (kp[1] + kp[2]) / 2
    # The mouth sits about 1.3 eye-to-nose heights below the nose, a little behind its tip.
    mouth = nose + np.array([0.0, 0.012, -1.3 * max(eyes[2] - nose[2], 0.02)])
    return ArmGeometry(arms, nose, mouth, head.mean(axis=0), float(head[:, 2].max()), head, zs,
                       np.array(front), np.array(back), np.array(half), float(h("spine01")[1]),
                       float((h("upperleg01.L")[2] + h("upperleg01.R")[2]) / 2))


# --------------------------------------------------------------------------- solving one arm
@dataclass(frozen=True)
class ArmTarget:
    """One arm's key pose (side-local targets are already mapped to the avatar frame).

    Either ``upper`` and ``fore`` (directions), or ``wrist`` (a position for the wrist head) with ``pole``
    (where the elbow points), or ``palm_at`` (a position for the palm-surface centre, which needs
    ``palm`` and ``fingers``). ``palm``: where the palm should face; ``fingers``: where the hand should
    point (the wrist turns, within ``wrist_limit`` degrees, to match both). ``elevation`` and
    ``protraction``: clavicle angles in degrees.
    """

    upper: np.ndarray | None = None
    fore: np.ndarray | None = None
    wrist: np.ndarray | None = None
    palm_at: np.ndarray | None = None
    pole: np.ndarray | None = None
    palm: np.ndarray | None = None
    fingers: np.ndarray | None = None
    elevation: float = 0.0
    protraction: float = 0.0
    wrist_limit: float = 70.0


def _clavicle_rotation(arm: Arm, elevation: float, protraction: float) -> np.ndarray:
    return rot("z", -arm.out * protraction) @ rot("y", -arm.out * elevation)


def _hand_rotation(arm: Arm, palm: np.ndarray, fingers: np.ndarray) -> np.ndarray:
    """The accumulated wrist rotation that makes the hand point along ``fingers`` with its palm towards ``palm``."""
    return _frame(fingers, palm) @ _frame(arm.h0, arm.p0).T


def _two_bone(arm: Arm, shoulder: np.ndarray, target: np.ndarray, pole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper-arm and forearm directions that put the wrist head at ``target`` (clamped to reach)."""
    l1, l2 = arm.upper_len, arm.fore_len
    d = target - shoulder
    dist = float(np.clip(np.linalg.norm(d), abs(l1 - l2) + 1e-4, (l1 + l2) * 0.999))
    d = _unit(d)
    p = pole - d * (pole @ d)
    if np.linalg.norm(p) < 1e-6:
        p = cross(d, [0.0, 1.0, 0.0])
    p = _unit(p)
    a = math.acos(float(np.clip((l1 ** 2 + dist ** 2 - l2 ** 2) / (2 * l1 * dist), -1.0, 1.0)))
    elbow = shoulder + l1 * (math.cos(a) * d + math.sin(a) * p)
    return _unit(elbow - shoulder), _unit(shoulder + dist * d - elbow)


def _solve(arm: Arm, t: ArmTarget) -> dict[str, np.ndarray]:
    """Local-ref deltas of one arm chain (clavicle .. wrist) for a key pose; the spine is taken as unrotated."""
    a_clav = _clavicle_rotation(arm, t.elevation, t.protraction)
    hand_goal = None
    if t.palm is not None and t.fingers is not None:
        hand_goal = _hand_rotation(arm, t.palm, t.fingers)
    if t.upper is not None:
        u, f = _unit(t.upper), _unit(t.fore)
    else:
        shoulder = arm.clavicle + a_clav @ (arm.shoulder - arm.clavicle)
        target = t.wrist
        if t.palm_at is not None:
            if hand_goal is None:
                raise ValueError("a palm target needs the palm and finger directions")
            target = t.palm_at - hand_goal @ arm.palm_offset
        pole = t.pole if t.pole is not None else arm.vec(1.0, -0.2, -1.0)
        u, f = _two_bone(arm, shoulder, target, _unit(pole))
    # Elbow hinge: from the two directions, or (nearly straight arm) from the pole / a default bend.
    v = cross(u, f)
    hint = t.pole if t.pole is not None else arm.vec(0.3, -1.0, -0.3)  # an elbow pointing back and out
    hinge_hint = cross(-hint, u)  # bending away from the pole
    if np.linalg.norm(hinge_hint) < 1e-6:
        hinge_hint = cross(arm.vec(0.0, 1.0, 0.0), u)
    w = min(1.0, float(np.linalg.norm(v)) / math.sin(math.radians(20.0)))
    hinge = w * (_unit(v) if w > 0 else 0.0) + (1.0 - w) * _unit(hinge_hint - u * (hinge_hint @ u))
    if np.linalg.norm(hinge) < 1e-6:
        hinge = _unit(hinge_hint - u * (hinge_hint @ u))
    hinge = _unit(hinge - u * (hinge @ u))
    flex = max(0.0, math.atan2(float(cross(u, f) @ hinge), float(u @ f)))
    a_up = _frame(u, hinge) @ _frame(arm.u0, arm.hinge0).T
    a_lo = _axis_rot(hinge, flex - arm.flex0) @ a_up
    fore = a_lo @ arm.f0
    # Forearm twist turns the palm towards where it should face (within +-110 degrees).
    psi = 0.0
    palm_goal = t.palm if hand_goal is None else hand_goal @ arm.p0
    if palm_goal is not None:
        psi = float(np.clip(_signed_angle(a_lo @ arm.p0, _unit(palm_goal), fore), -math.radians(110),
                            math.radians(110)))
    a_lo1 = _axis_rot(fore, 0.4 * psi) @ a_lo
    a_lo2 = _axis_rot(fore, psi) @ a_lo
    a_wr = a_lo2
    if hand_goal is not None:
        a_wr = _limit(hand_goal @ a_lo2.T, t.wrist_limit) @ a_lo2
    elif t.fingers is not None:
        a_wr = _limit(align(a_lo2 @ arm.h0, _unit(t.fingers)), t.wrist_limit) @ a_lo2
    acc = {arm.bone("clavicle"): a_clav, arm.bone("shoulder01"): a_clav, arm.bone("upperarm01"): a_up,
           arm.bone("upperarm02"): a_up, arm.bone("lowerarm01"): a_lo1, arm.bone("lowerarm02"): a_lo2,
           arm.bone("wrist"): a_wr}
    return deltas_from_accumulated(acc, [arm.bone(b) for b in ARM_CHAIN])


# --------------------------------------------------------------------------- relaxed arms
def _relaxed_target(arm: Arm, style: Style) -> ArmTarget:
    upper = _unit(arm.vec(math.sin(math.radians(7.0)), 0.04, -1.0))
    bend = math.radians(float(np.clip(style.elbow_bend, 0.0, 45.0)))
    towards = arm.vec(-0.15, 1.0, 0.0)
    towards = _unit(towards - upper * (towards @ upper))
    fore = math.cos(bend) * upper + math.sin(bend) * towards
    return ArmTarget(upper=upper, fore=fore, palm=arm.vec(-1.0, -0.25, 0.0))


def relaxed_arms(style: Style | None = None, rig: Rig | None = None) -> dict[str, np.ndarray]:
    """The neutral standing arm pose: arms hanging at the sides, elbows bent by ``style.elbow_bend``,
    palms towards the thighs. Every arm action starts and ends here.

    Returns (3, 3) local-ref deltas for every bone of :data:`ARM_BONES` (wrists at identity). Pass the
    ``rig`` to solve on that body's own rest arm directions (what the arm actions use); without it an
    average anny arm is used (the two differ by a few degrees).
    """
    return {k: v.copy() for k, v in _relaxed_arms(style or Style(), None if rig is None else rig.key, rig).items()}


@functools.lru_cache(maxsize=256)
def _relaxed_arms_cached(style: Style, key: str | None) -> dict[str, np.ndarray]:
    rig = _RIGS.get(key)
    arms = arm_geometry(rig).arms if rig is not None else {s: _canonical_arm(s) for s in ("L", "R")}
    out: dict[str, np.ndarray] = {}
    for side in ("L", "R"):
        out.update(_solve(arms[side], _relaxed_target(arms[side], style)))
    return out


_RIGS: dict[str, Rig] = {}


def _relaxed_arms(style: Style, key: str | None, rig: Rig | None) -> dict[str, np.ndarray]:
    """Cached per (style, rig): the neutral pose is asked for at every frame of every arm action."""
    if rig is not None:
        _RIGS.setdefault(key, rig)
    return _relaxed_arms_cached(style, key)


# --------------------------------------------------------------------------- helpers for checks
def palm_centre(posed: PosedBody, hand: str) -> np.ndarray:
    """The centre of the palm's skin surface of ``hand`` ("left" / "right") in a posed body."""
    side = _SIDE[_check_hand(hand, ("left", "right"))]
    arm = arm_geometry(posed.rig).arms[side]
    w = posed.bones[BONE_INDEX[arm.bone("wrist")]]
    rest_w = posed.rig.bone_poses(identity_rotations())[BONE_INDEX[arm.bone("wrist")]]
    return w[:3, :3] @ rest_w[:3, :3].T @ arm.palm_offset + w[:3, 3]


def palm_normal(posed: PosedBody, hand: str) -> np.ndarray:
    """The unit normal out of the palm of ``hand`` in a posed body."""
    side = _SIDE[_check_hand(hand, ("left", "right"))]
    arm = arm_geometry(posed.rig).arms[side]
    w = posed.bones[BONE_INDEX[arm.bone("wrist")]]
    rest_w = posed.rig.bone_poses(identity_rotations())[BONE_INDEX[arm.bone("wrist")]]
    return w[:3, :3] @ rest_w[:3, :3].T @ arm.p0


# --------------------------------------------------------------------------- action plumbing
def _check_hand(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"hand must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _params(ctx: ClipContext, spec: dict[str, Param]) -> dict[str, Any]:
    """The segment's parameters with defaults filled in, checked against ``spec``."""
    out = {}
    for name, p in spec.items():
        v = ctx.params.get(name, p.default)
        if p.choices is not None:
            if v not in p.choices:
                raise ValueError(f"{name} must be one of {', '.join(p.choices)}; got {v!r}")
        else:
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number in [{p.low}, {p.high}]; got {v!r}") from None
            if not (p.low <= v <= p.high):
                raise ValueError(f"{name} must be in [{p.low}, {p.high}]; got {v}")
        out[name] = v
    return out


def _sides(hand: str, style: Style) -> tuple[str, ...]:
    """Arm sides ("L", "R") a ``hand`` parameter selects."""
    if hand == "auto":
        hand = style.handedness if style.handedness in _SIDE else "right"
    if hand == "both":
        return ("L", "R")
    return (_SIDE[hand],)


def _tempo(style: Style) -> float:
    return float(np.clip(style.tempo, 0.5, 2.0))


def _amp(style: Style) -> float:
    return float(np.clip(style.amplitude, 0.6, 1.4))


def _timing(ctx: ClipContext, attack: float, release: float) -> tuple[float, float, float]:
    """(attack, release, envelope weight now): the ramps shrink to fit short segments."""
    d = max(float(ctx.duration), 1e-3)
    tempo = _tempo(ctx.style)
    att = min(attack / tempo, 0.45 * d)
    rel = min(release / tempo, 0.45 * d)
    return att, rel, envelope(float(ctx.time), d, att, rel)


def _compose(ctx: ClipContext, targets: dict[str, "ArmTarget | _Blended"], weight: float,
             spine_twist: float = 0.0, phase: float = 0.0) -> BodyPose:
    """A BodyPose: the relaxed arms blended (``weight``) towards the key poses of the acting sides."""
    geo = arm_geometry(ctx.rig)
    relaxed = relaxed_arms(ctx.style, ctx.rig)
    rotations = identity_rotations()
    names = list(relaxed)
    rotations[[BONE_INDEX[n] for n in names]] = np.stack([relaxed[n] for n in names])
    for side, target in targets.items():
        if isinstance(target, _Blended):
            bones = list(target.a)
            deltas = slerp(np.stack([target.a[n] for n in bones]), np.stack([target.b[n] for n in bones]),
                           ease(target.weight))
        else:
            solved = _solve(geo.arms[side], target)
            bones = list(solved)
            deltas = np.stack([solved[n] for n in bones])
        sel = [BONE_INDEX[n] for n in bones]
        rotations[sel] = slerp(rotations[sel], deltas, weight)
    if spine_twist:
        for name in TORSO_BONES:
            rotations[BONE_INDEX[name]] = rot("z", 0.5 * spine_twist * weight)
    return BodyPose(rotations, phase=float(phase))


@dataclass(frozen=True)
class _Blended:
    """Two solved key poses of one arm and the (eased) weight between them."""

    a: dict[str, np.ndarray]
    b: dict[str, np.ndarray]
    weight: float


def _wobble(rng: np.random.Generator, t: float, degrees: float) -> np.ndarray:
    """A slow, small, seeded idle drift (degrees about 3 axes) so held poses are not frozen."""
    f = rng.uniform(0.15, 0.35, 3)
    ph = rng.uniform(0.0, 2 * math.pi, 3)
    return degrees * np.sin(2 * math.pi * f * t + ph)


def _turn(v: np.ndarray, angles_deg: np.ndarray, arm: Arm) -> np.ndarray:
    """``v`` turned by small angles about x, y, z (mirrored for the left arm, so both sides drift alike)."""
    m = -arm.out  # +1 on the right, -1 on the left: a mirror keeps x-rotations and flips y and z ones
    r = rot("x", angles_deg[0]) @ rot("y", m * angles_deg[1]) @ rot("z", m * angles_deg[2])
    return r @ v


HAND_1 = ("right", "left", "auto")
HAND_2 = ("right", "left", "both", "auto")


# --------------------------------------------------------------------------- wave
_WAVE_PARAMS = {"hand": Param("auto", choices=HAND_2, help="waving hand (auto: the person's handedness)"),
                "cycles": Param(2.0, 1.0, 3.0, help="waves per second")}


def _wave_pose(ctx: ClipContext, p: dict[str, Any]) -> BodyPose:
    rng = ctx.rng()
    amp = _amp(ctx.style)
    abduction = rng.uniform(95.0, 118.0)
    front = rng.uniform(0.15, 0.45)
    swing = float(np.clip(rng.uniform(20.0, 30.0) * amp, 15.0, 35.0))
    cycles = float(p["cycles"]) * _tempo(ctx.style) * rng.uniform(0.9, 1.1)
    phase0 = rng.uniform(0.0, 1.0)
    lead = rng.uniform(-0.08, 0.08)  # phase lead of the left hand when both wave
    elev = rng.uniform(6.0, 14.0)
    lean = rng.uniform(-0.15, 0.1)
    _, _, w = _timing(ctx, rng.uniform(0.45, 0.7), rng.uniform(0.4, 0.6))
    t = float(ctx.time)
    targets = {}
    cyc = cycles * t + phase0
    for side in _sides(p["hand"], ctx.style):
        arm = arm_geometry(ctx.rig).arms[side]
        c = cyc + (lead if side == "L" else 0.0)
        theta = swing * math.sin(2 * math.pi * c) * (0.3 + 0.7 * w)
        a = math.radians(abduction)
        upper = _unit(arm.vec(math.sin(a), front, -math.cos(a)))
        fwd = arm.vec(0.0, 1.0, 0.0)
        # theta > 0 swings the hand away from the midline (rotation about the forward axis).
        fore = rot(fwd, -arm.out * theta) @ _unit(arm.vec(lean, 0.12, 1.0))
        fingers = rot(fwd, -arm.out * 0.35 * theta) @ fore
        targets[side] = ArmTarget(upper=upper, fore=fore, palm=arm.vec(0.0, 1.0, 0.0), fingers=fingers,
                                  elevation=elev)
    return _compose(ctx, targets, w, phase=cyc % 1.0)


def _wave(ctx: ClipContext) -> BodyPose:
    return _wave_pose(ctx, _params(ctx, _WAVE_PARAMS))


def _wave_both(ctx: ClipContext) -> BodyPose:
    p = _params(ctx, {"cycles": _WAVE_PARAMS["cycles"]})
    return _wave_pose(ctx, {**p, "hand": "both"})


# --------------------------------------------------------------------------- clap
_CLAP_PARAMS = {"cycles": Param(2.0, 1.5, 3.0, help="claps per second")}


def _clap(ctx: ClipContext) -> BodyPose:
    p = _params(ctx, _CLAP_PARAMS)
    rng = ctx.rng()
    geo = arm_geometry(ctx.rig)
    amp = _amp(ctx.style)
    cycles = float(p["cycles"]) * _tempo(ctx.style) * rng.uniform(0.92, 1.08)
    drop = rng.uniform(0.10, 0.18)
    reach = rng.uniform(0.20, 0.28)
    width = float(np.clip(rng.uniform(0.26, 0.36) * amp, 0.2, 0.45))
    tip = rng.uniform(0.45, 0.9)  # fingers forward (0) .. up (large)
    att, _, w = _timing(ctx, rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6))
    z = float(np.mean([a.shoulder[2] for a in geo.arms.values()])) - drop
    centre = np.array([0.0, geo.front_y(z) - reach, z])
    t = float(ctx.time)
    c = cycles * max(0.0, t - att)  # opens fully at the end of the attack, meets at half cycles
    gap = width * max(0.0, (0.5 + 0.5 * math.cos(2 * math.pi * c)) - 0.04) / 0.96
    targets = {}
    for side, arm in geo.arms.items():
        targets[side] = ArmTarget(palm_at=centre + arm.vec(gap / 2, 0.0, 0.0), palm=arm.vec(-1.0, 0.0, 0.0),
                                  fingers=_unit(arm.vec(0.05, 1.0, tip)), pole=arm.vec(1.0, -0.4, -1.0),
                                  protraction=6.0, wrist_limit=85.0)
    return _compose(ctx, targets, w, phase=(c + 0.5) % 1.0)


# --------------------------------------------------------------------------- point
_POINT_PARAMS = {"hand": Param("auto", choices=HAND_1, help="pointing hand"),
                 "yaw": Param(0.0, -60.0, 60.0, help="degrees from the body front, + = towards the person's left"),
                 "pitch": Param(0.0, -30.0, 30.0, help="degrees above the horizontal")}


def point_direction(yaw: float, pitch: float) -> np.ndarray:
    """Unit direction (avatar frame) of ``yaw`` degrees towards the person's left and ``pitch`` up from the front."""
    y, p = math.radians(yaw), math.radians(pitch)
    return np.array([math.sin(y) * math.cos(p), -math.cos(y) * math.cos(p), math.sin(p)])


def _point(ctx: ClipContext) -> BodyPose:
    p = _params(ctx, _POINT_PARAMS)
    rng = ctx.rng()
    geo = arm_geometry(ctx.rig)
    side = _sides(p["hand"], ctx.style)[0]
    arm = geo.arms[side]
    _, _, w = _timing(ctx, rng.uniform(0.4, 0.65), rng.uniform(0.4, 0.6))
    d = point_direction(p["yaw"], p["pitch"])
    # The torso turns a little towards where the hand points (more when pointing across the body).
    across = -arm.out * math.sin(math.radians(p["yaw"]))  # > 0 when pointing towards the other side
    twist = float(p["yaw"]) * (0.25 + 0.2 * max(0.0, across)) * rng.uniform(0.8, 1.2)
    d_chest = rot("z", -twist) @ d  # the arm's direction in the turned chest's frame
    lateral = float(d_chest @ arm.vec(1.0, 0.0, 0.0))
    elevation = 4.0 + 8.0 * max(0.0, float(p["pitch"])) / 30.0
    protraction = 6.0 + 12.0 * max(0.0, -lateral)
    a_clav = _clavicle_rotation(arm, elevation, protraction)
    shoulder = arm.clavicle + a_clav @ (arm.shoulder - arm.clavicle)
    reach = (arm.upper_len + arm.fore_len) * rng.uniform(0.95, 0.985)
    drift = _wobble(rng, float(ctx.time), 1.0)
    target = shoulder + reach * _turn(d_chest, drift, arm)
    palm = arm.vec(-0.35, 0.0, -1.0)
    t = ArmTarget(wrist=target, pole=arm.vec(0.6, -0.2, -1.0), palm=palm, elevation=elevation,
                  protraction=protraction)
    return _compose(ctx, {side: t}, w, spine_twist=twist, phase=ctx.progress)


# --------------------------------------------------------------------------- raise arms
_RAISE_PARAMS = {"hands": Param("both", choices=("both", "right", "left"), help="which arms go up")}


def _raise_arms(ctx: ClipContext) -> BodyPose:
    p = _params(ctx, _RAISE_PARAMS)
    rng = ctx.rng()
    _, _, w = _timing(ctx, rng.uniform(0.5, 0.8), rng.uniform(0.5, 0.8))
    spread = rng.uniform(12.0, 24.0)
    front = rng.uniform(0.05, 0.25)
    bend = rng.uniform(8.0, 20.0)
    elev = rng.uniform(14.0, 22.0)
    drift = _wobble(rng, float(ctx.time), 1.5)
    targets = {}
    for side in _sides(p["hands"], ctx.style):
        arm = arm_geometry(ctx.rig).arms[side]
        a = math.radians(spread)
        upper = _turn(_unit(arm.vec(math.sin(a), front, math.cos(a))), drift, arm)
        inward = arm.vec(-1.0, 0.2, 0.0)
        inward = _unit(inward - upper * (inward @ upper))
        b = math.radians(bend)
        fore = math.cos(b) * upper + math.sin(b) * inward
        targets[side] = ArmTarget(upper=upper, fore=fore, palm=arm.vec(0.0, 1.0, 0.0), fingers=fore,
                                  elevation=elev, pole=arm.vec(0.5, -0.5, 0.0), wrist_limit=30.0)
    return _compose(ctx, targets, w, phase=ctx.progress)


# --------------------------------------------------------------------------- punch
_PUNCH_PARAMS = {"hand": Param("both", choices=HAND_2, help="punching hand (both: alternating)"),
                 "reps": Param(2, 1, 8, help="number of punches")}


def _guard(arm: Arm, geo: ArmGeometry, rng_vals: np.ndarray) -> ArmTarget:
    chin_z = geo.mouth[2] - 0.04
    wrist = np.array([arm.out * (0.09 + rng_vals[0]), geo.front_y(arm.shoulder[2] - 0.1) - 0.12 - rng_vals[1],
                      chin_z - 0.14 + rng_vals[2]])
    return ArmTarget(wrist=wrist, pole=arm.vec(0.25, 0.0, -1.0), palm=arm.vec(-1.0, 0.0, 0.0),
                     fingers=_unit(arm.vec(-0.1, 0.55, 0.8)), protraction=4.0, wrist_limit=40.0)


def _strike(arm: Arm, rng_vals: np.ndarray) -> ArmTarget:
    a_clav = _clavicle_rotation(arm, 2.0, 16.0)
    shoulder = arm.clavicle + a_clav @ (arm.shoulder - arm.clavicle)
    d = _unit(arm.vec(-0.18 - rng_vals[0], 1.0, 0.06 + rng_vals[1]))
    wrist = shoulder + (arm.upper_len + arm.fore_len) * 0.97 * d
    return ArmTarget(wrist=wrist, pole=arm.vec(1.0, 0.0, -0.4), palm=arm.vec(0.0, 0.0, -1.0), fingers=d,
                     elevation=2.0, protraction=16.0, wrist_limit=30.0)


def _punch(ctx: ClipContext) -> BodyPose:
    p = _params(ctx, _PUNCH_PARAMS)
    rng = ctx.rng()
    geo = arm_geometry(ctx.rig)
    reps = int(round(p["reps"]))
    sides = _sides(p["hand"], ctx.style)
    first = sides[int(rng.integers(len(sides)))] if len(sides) == 2 else sides[0]
    if len(sides) == 2 and ctx.style.handedness in ("left", "right") and rng.random() < 0.7:
        first = "L" if ctx.style.handedness == "right" else "R"  # boxers lead with the jab of the front hand
    guard_vals = {s: rng.uniform([-0.02, -0.03, -0.03], [0.03, 0.04, 0.03]) for s in ("L", "R")}
    strike_vals = {s: rng.uniform([-0.05, -0.04], [0.08, 0.08]) for s in ("L", "R")}
    twist_deg = rng.uniform(8.0, 14.0) * _amp(ctx.style)
    att, rel, w = _timing(ctx, rng.uniform(0.35, 0.5), rng.uniform(0.35, 0.5))
    d = max(float(ctx.duration), 1e-3)
    window = max(d - att - rel, 1e-3)
    slot = window / reps
    strike_time = min(0.42 / _tempo(ctx.style), 0.95 * slot)
    t = float(ctx.time) - att
    k = int(np.clip(t // slot, 0, reps - 1)) if t >= 0 else -1
    extension, hitting = 0.0, first
    if 0 <= t < window:
        x = (t - k * slot) / strike_time
        if 0.0 <= x < 1.0:
            # Fast out (30 %), short hold, slower back.
            extension = ease(x / 0.3) if x < 0.3 else (1.0 if x < 0.45 else 1.0 - ease((x - 0.45) / 0.55))
        hitting = first if len(sides) == 1 or k % 2 == 0 else ("R" if first == "L" else "L")
    targets, twist = {}, 0.0
    for side in ("L", "R"):
        arm = geo.arms[side]
        g = _guard(arm, geo, guard_vals[side])
        if side == hitting and extension > 0:
            deltas_g, deltas_s = _solve(arm, g), _solve(arm, _strike(arm, strike_vals[side]))
            targets[side] = _Blended(deltas_g, deltas_s, extension)
            twist = -arm.out * twist_deg * extension
        else:
            targets[side] = g
    return _compose(ctx, targets, w, twist, phase=ctx.progress)


# --------------------------------------------------------------------------- phone call
_ONE_HAND = {"hand": Param("auto", choices=HAND_1, help="which hand (auto: the person's handedness)")}


def _phone_call(ctx: ClipContext) -> BodyPose:
    p = _params(ctx, _ONE_HAND)
    rng = ctx.rng()
    geo = arm_geometry(ctx.rig)
    side = _sides(p["hand"], ctx.style)[0]
    arm = geo.arms[side]
    _, _, w = _timing(ctx, rng.uniform(0.6, 0.9), rng.uniform(0.5, 0.8))
    drift = _wobble(rng, float(ctx.time), 1.0)
    # The palm covers the ear from the outside (a phone between them), fingers up and back.
    palm_at = arm.ear + arm.vec(0.028, rng.uniform(-0.01, 0.015), rng.uniform(-0.035, -0.015))
    fingers = _unit(arm.vec(0.0, -rng.uniform(0.15, 0.45), 1.0))
    pole = arm.vec(0.8, rng.uniform(0.5, 0.9), -rng.uniform(1.3, 1.8))
    t = ArmTarget(palm_at=palm_at, palm=arm.vec(-1.0, 0.0, 0.0), fingers=fingers, pole=_turn(pole, 4 * drift, arm),
                  elevation=rng.uniform(4.0, 10.0), protraction=4.0, wrist_limit=80.0)
    return _compose(ctx, {side: t}, w, phase=ctx.progress)


# --------------------------------------------------------------------------- drink
_DRINK_PARAMS = {**_ONE_HAND, "sips": Param(1, 1, 4, help="how many times the cup goes to the mouth")}


def _drink(ctx: ClipContext) -> BodyPose:
    p = _params(ctx, _DRINK_PARAMS)
    rng = ctx.rng()
    geo = arm_geometry(ctx.rig)
    side = _sides(p["hand"], ctx.style)[0]
    arm = geo.arms[side]
    sips = int(round(p["sips"]))
    d = max(float(ctx.duration), 1e-3)
    tilt = rng.uniform(20.0, 35.0)
    radius = 0.04  # the cup's axis lies this far from the palm
    mouth = geo.mouth + arm.vec(0.0, 0.0, 0.0)
    cup_mouth = mouth + arm.vec(0.01, rng.uniform(0.055, 0.07), -rng.uniform(0.045, 0.06))
    cup_chest = np.array([arm.out * rng.uniform(0.08, 0.14), geo.front_y(arm.shoulder[2] - 0.2) - 0.15,
                          arm.shoulder[2] - rng.uniform(0.18, 0.26)])
    palm = arm.vec(-1.0, 0.0, 0.0)
    fingers = _unit(arm.vec(-0.25, 1.0, 0.0))
    side_axis = arm.vec(1.0, 0.0, 0.0)

    def held(centre: np.ndarray, tilt_deg: float) -> ArmTarget:
        # Tilting the cup towards the mouth turns the hand about the lateral axis (the cup's top comes back).
        r = rot(side_axis, -arm.out * tilt_deg)  # the cup's top (the thumb side) comes back to the lips
        pa, fi = r @ palm, r @ fingers
        return ArmTarget(palm_at=centre + (r @ arm.vec(radius, 0.0, 0.0)), palm=pa, fingers=fi,
                         pole=arm.vec(0.25, 1.0, -1.2), wrist_limit=85.0,
                         protraction=4.0, elevation=4.0 + 0.25 * tilt_deg)

    att = min(0.8 / _tempo(ctx.style), 0.3 * d)
    rel = min(0.7 / _tempo(ctx.style), 0.3 * d)
    w = envelope(float(ctx.time), d, att, rel)
    # Between attack and release: sips evenly spaced; each: up (to the mouth), tilt, hold, untilt, down to the chest.
    t = float(ctx.time) - att
    window = max(d - att - rel, 1e-3)
    slot = window / sips
    k = int(np.clip(t // slot, 0, sips - 1)) if t > 0 else 0
    x = float(np.clip((t - k * slot) / slot, 0.0, 1.0)) if t > 0 else 0.0
    up = ease(x / 0.25) if x < 0.25 else (1.0 if x < 0.8 else (1.0 - ease((x - 0.8) / 0.2) if k < sips - 1 else 1.0))
    tip = ease((x - 0.25) / 0.2) if 0.25 <= x < 0.45 else (1.0 if 0.45 <= x < 0.65 else
                                                              (1.0 - ease((x - 0.65) / 0.15) if 0.65 <= x < 0.8
                                                               else 0.0))
    if t <= 0:
        up = 0.0
    centre = (1 - up) * cup_chest + up * cup_mouth + tip * arm.vec(0.0, -0.015, 0.02)
    return _compose(ctx, {side: held(centre, tip * tilt)}, w, phase=ctx.progress)


# --------------------------------------------------------------------------- postures
def _cross_arms(ctx: ClipContext) -> BodyPose:
    rng = ctx.rng()
    geo = arm_geometry(ctx.rig)
    _, _, w = _timing(ctx, rng.uniform(0.7, 1.0), rng.uniform(0.6, 0.9))
    top = "R" if rng.random() < 0.5 else "L"
    z0 = float(np.mean([a.shoulder[2] for a in geo.arms.values()])) - rng.uniform(0.17, 0.22)
    drift = _wobble(rng, float(ctx.time), 0.008)
    targets = {}
    for side, arm in geo.arms.items():
        over = side == top
        z = z0 + (0.025 if over else -0.03)
        depth = 0.085 if over else 0.035
        wrist = np.array([-arm.out * rng.uniform(0.09, 0.12), geo.front_y(z) - depth, z]) + drift
        # Each hand rests on the other upper arm (the lower one tucked behind it), fingers up and round it.
        fingers = arm.vec(-0.6, -0.45, 0.65) if over else arm.vec(-0.75, -0.55, 0.3)
        targets[side] = ArmTarget(wrist=wrist, pole=arm.vec(0.6, -0.1, -1.0), palm=arm.vec(0.0, -1.0, 0.0),
                                  fingers=_unit(fingers), protraction=10.0, wrist_limit=60.0)
    # Slerping from hanging arms would sweep the forearms through the belly: go via hands in front first.
    pose = _compose(ctx, targets, w, phase=ctx.progress)
    if w < 1.0:
        via = {side: ArmTarget(wrist=np.array([arm.out * 0.14, geo.front_y(z0 - 0.1) - 0.3, z0 - 0.1]),
                               pole=arm.vec(0.6, -0.3, -1.0), palm=arm.vec(-1.0, 0.0, 0.0))
               for side, arm in geo.arms.items()}
        a = _compose(ctx, via, 1.0)
        relaxed = _compose(ctx, {}, 0.0)
        if w < 0.5:
            pose.rotations = slerp(relaxed.rotations, a.rotations, ease(w / 0.5))
        else:
            pose.rotations = slerp(a.rotations, _compose(ctx, targets, 1.0).rotations, ease((w - 0.5) / 0.5))
    return pose


def _hands_on_hips(ctx: ClipContext) -> BodyPose:
    rng = ctx.rng()
    geo = arm_geometry(ctx.rig)
    _, _, w = _timing(ctx, rng.uniform(0.6, 0.9), rng.uniform(0.5, 0.8))
    z = geo.hip_z + rng.uniform(0.08, 0.12)
    drift = _wobble(rng, float(ctx.time), 0.004)
    targets = {}
    for side, arm in geo.arms.items():
        palm_at = np.array([arm.out * (geo.half_width(z) + 0.004), geo.mid_y(z) - rng.uniform(0.0, 0.03), z]) + drift
        targets[side] = ArmTarget(palm_at=palm_at, palm=arm.vec(-1.0, 0.0, 0.0),
                                  fingers=_unit(arm.vec(0.0, rng.uniform(0.4, 0.8), -1.0)),
                                  pole=arm.vec(1.0, -rng.uniform(0.3, 0.6), 0.1), wrist_limit=85.0)
    return _compose(ctx, targets, w, phase=ctx.progress)


def _scratch_head(ctx: ClipContext) -> BodyPose:
    p = _params(ctx, _ONE_HAND)
    rng = ctx.rng()
    geo = arm_geometry(ctx.rig)
    side = _sides(p["hand"], ctx.style)[0]
    arm = geo.arms[side]
    _, _, w = _timing(ctx, rng.uniform(0.6, 0.8), rng.uniform(0.5, 0.7))
    rate = rng.uniform(3.0, 4.5) * _tempo(ctx.style)
    where = _unit(arm.vec(rng.uniform(0.35, 0.6), rng.uniform(-0.15, 0.1), 1.0))
    surface = geo.head_surface(where)
    scrub = 0.018 * math.sin(2 * math.pi * rate * float(ctx.time))
    palm_at = surface + 0.012 * where + arm.vec(0.0, scrub, 0.0)
    fingers = arm.vec(-1.0, -0.3, 0.0)
    t = ArmTarget(palm_at=palm_at, palm=-where, fingers=_unit(fingers - where * (fingers @ where)),
                  pole=arm.vec(1.0, 0.4, 0.2), elevation=rng.uniform(10.0, 16.0), wrist_limit=85.0)
    return _compose(ctx, {side: t}, w, phase=(rate * float(ctx.time)) % 1.0)


def _arm_forward(ctx: ClipContext) -> BodyPose:
    p = _params(ctx, _ONE_HAND)
    rng = ctx.rng()
    side = _sides(p["hand"], ctx.style)[0]
    arm = arm_geometry(ctx.rig).arms[side]
    _, _, w = _timing(ctx, rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6))
    drift = _wobble(rng, float(ctx.time), 1.5)
    upper = _turn(_unit(arm.vec(rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.2), -1.0)), drift, arm)
    fore = _turn(_unit(arm.vec(-rng.uniform(0.05, 0.25), 1.0, rng.uniform(0.0, 0.25))), drift, arm)
    t = ArmTarget(upper=upper, fore=fore, palm=arm.vec(-1.0, 0.0, 0.0), fingers=fore, wrist_limit=30.0)
    return _compose(ctx, {side: t}, w, phase=ctx.progress)


_GESTURE_RAISE_PARAMS = {
    **_ONE_HAND,
    "point": Param("auto", choices=("auto", "up", "left", "right"),
                   help="where the hand points: up (palm forward) or to the person's left or right, thumb up "
                        "(how the left and right gestures are shown); auto: up, turned sideways while the "
                        "person's gesture track shows left or right"),
    "point_amount": Param(1.0, 0.0, 1.0, help="how far the hand has turned from up to point (0: up)"),
}


def _gesture_raise(ctx: ClipContext) -> BodyPose:
    from hcgym.synthesis.motion.hands import pointing

    p = _params(ctx, _GESTURE_RAISE_PARAMS)
    rng = ctx.rng()
    side = _sides(p["hand"], ctx.style)[0]
    arm = arm_geometry(ctx.rig).arms[side]
    _, _, w = _timing(ctx, rng.uniform(0.4, 0.65), rng.uniform(0.4, 0.6))
    drift = _wobble(rng, float(ctx.time), 1.5)
    upper = _turn(_unit(arm.vec(rng.uniform(0.25, 0.45), rng.uniform(0.35, 0.6), -0.85)), drift, arm)
    fore = _turn(_unit(arm.vec(-rng.uniform(0.0, 0.15), rng.uniform(0.05, 0.25), 1.0)), drift, arm)
    t = ArmTarget(upper=upper, fore=fore, palm=arm.vec(0.0, 1.0, 0.0), fingers=arm.vec(0.0, 0.0, 1.0),
                  elevation=3.0, wrist_limit=60.0)
    if p["point"] in ("auto", "up") or p["point_amount"] <= 0.0:
        return _compose(ctx, {side: t}, w, phase=ctx.progress)
    # Pointing sideways: the forearm leans that way and the hand turns (thumb up), as the gesture set shows it.
    fingers, palm = pointing(ctx.rig, "left" if side == "L" else "right", p["point"])
    sideways = ArmTarget(upper=upper, fore=_unit(fore + 0.5 * fingers), palm=palm, fingers=fingers,
                         elevation=3.0, wrist_limit=60.0)
    blended = _Blended(_solve(arm, t), _solve(arm, sideways), float(p["point_amount"]))
    return _compose(ctx, {side: blended}, w, phase=ctx.progress)


# --------------------------------------------------------------------------- registry
def _action(name: str, sample: Callable[[ClipContext], BodyPose], params: dict[str, Param],
            duration: tuple[float, float, float], cyclic: bool, description: str, label: str = "") -> Action:
    return Action(name=name, sample=sample, params=params, duration=duration, cyclic=cyclic, label=label or name,
                  description=description)


#: The arm actions by name.
ARM_ACTIONS: dict[str, Action] = {a.name: a for a in (
    _action("wave", _wave, _WAVE_PARAMS, (1.0, 3.0, 20.0), True,
            "raise a hand and wave the forearm side to side (hand: right, left, both or auto)"),
    _action("wave_both", _wave_both, {"cycles": _WAVE_PARAMS["cycles"]}, (1.0, 3.0, 20.0), True,
            "wave with both hands"),
    _action("clap", _clap, _CLAP_PARAMS, (1.0, 3.0, 20.0), True, "clap the hands in front of the chest"),
    _action("point", _point, _POINT_PARAMS, (1.0, 2.5, 8.0), False,
            "extend an arm towards a direction (yaw, pitch from the body front), hold, return"),
    _action("raise_arms", _raise_arms, _RAISE_PARAMS, (1.2, 3.0, 10.0), False,
            "arms up overhead (hands up), hold, lower"),
    _action("punch", _punch, _PUNCH_PARAMS, (1.0, 2.5, 8.0), False,
            "boxing guard and straight punches forward (one hand, or alternating)"),
    _action("phone_call", _phone_call, _ONE_HAND, (2.0, 6.0, 60.0), True,
            "hold a phone to the ear (the hand at the ear, elbow out)"),
    _action("drink", _drink, _DRINK_PARAMS, (2.0, 3.5, 10.0), False,
            "bring a cup to the mouth, tilt it, put it down (sips: repeats)"),
    _action("cross_arms", _cross_arms, {}, (2.0, 5.0, 60.0), True, "fold the arms across the chest"),
    _action("hands_on_hips", _hands_on_hips, {}, (2.0, 5.0, 60.0), True, "hands on the hips, elbows out"),
    _action("scratch_head", _scratch_head, _ONE_HAND, (1.5, 3.0, 10.0), True, "scratch the head with one hand"),
    _action("arm_forward", _arm_forward, _ONE_HAND, (1.0, 3.0, 60.0), True,
            "elbow at the side, forearm forward, palm to the midline (shows a thumbs-up to a camera)"),
    _action("gesture_raise", _gesture_raise, _GESTURE_RAISE_PARAMS, (1.0, 3.0, 60.0), True,
            "upper arm down and forward, forearm up, palm forward (shows a hand gesture to a camera)"),
)}
