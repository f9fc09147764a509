"""The contract of body actions, and the small kinematic tools every clip uses.

A body action (``walk``, ``wave``, ...) is a function of time that returns a
:class:`BodyPose`: local-ref bone deltas for :meth:`hcgym.synthesis.motion.rig.Rig.pose`,
a root offset, an in-place turn and the action's phase. The behaviour timeline
(:mod:`hcgym.synthesis.motion.timeline`) picks the action of each moment, feeds it
a :class:`ClipContext` (time into the segment, distance walked, parameters, the
avatar's :class:`Style` and the rig for limb lengths) and blends transitions.

Rotations: ``local-ref`` deltas D_c rotate bone c about its head in the world-
aligned axes of the reference A-pose (x = the avatar's left, y = backwards,
z = up). They compose down the chain: the accumulated rotation of a bone is
``A_c = A_parent @ D_c``, so a wanted accumulated rotation gives
``D_c = A_parent.T @ A_c`` (:func:`deltas_from_accumulated`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy.spatial.transform import Rotation

from hcgym.synthesis.labels import BONES
from hcgym.synthesis.motion.rig import BONE_INDEX, Rig

N_BONES = len(BONES)
_AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


@dataclass(frozen=True)
class Style:
    """How one person moves: drawn once per avatar identity (see :meth:`from_key`).

    Attributes:
        amplitude: scales the size of gestures (0.8 .. 1.2).
        tempo: scales the speed of cyclic motion (0.85 .. 1.15).
        handedness: ``"right"`` or ``"left"``: the hand one-handed actions use by default.
        stride: scales the walking stride length (0.9 .. 1.1).
        arm_swing: scales the arm swing while walking (0.6 .. 1.3).
        posture: forward lean of the spine in degrees (-3 .. 6).
        elbow_bend: resting elbow flexion in degrees (5 .. 20).
    """

    amplitude: float = 1.0
    tempo: float = 1.0
    handedness: str = "right"
    stride: float = 1.0
    arm_swing: float = 1.0
    posture: float = 2.0
    elbow_bend: float = 10.0

    @classmethod
    def from_key(cls, key: str) -> "Style":
        """The style of an identity (any string, e.g. ``AvatarSpec.identity_key()``): deterministic."""
        rng = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16))
        return cls(amplitude=float(rng.uniform(0.8, 1.2)), tempo=float(rng.uniform(0.85, 1.15)),
                   handedness="left" if rng.random() < 0.15 else "right", stride=float(rng.uniform(0.9, 1.1)),
                   arm_swing=float(rng.uniform(0.6, 1.3)), posture=float(rng.uniform(-3.0, 6.0)),
                   elbow_bend=float(rng.uniform(5.0, 20.0)))


@dataclass
class ClipContext:
    """What an action sees at one moment of one segment.

    Attributes:
        rig: the avatar's rig (rest bone heads give limb lengths for inverse kinematics).
        time: seconds since the segment started.
        duration: the segment's length in seconds.
        params: the segment's validated parameters (see :attr:`Action.params`).
        style: the person's :class:`Style`.
        seed: per-instance variation seed (same segment, same seed).
        distance: metres walked since the segment started (locomotion only).
        speed: current walking speed, m/s (locomotion only).
        turn_rate: current turning rate, degrees/s (locomotion only, + = towards the person's left).
    """

    rig: Rig
    time: float
    duration: float
    params: dict[str, Any]
    style: Style = field(default_factory=Style)
    seed: int = 0
    distance: float = 0.0
    speed: float = 0.0
    turn_rate: float = 0.0

    @property
    def progress(self) -> float:
        """time / duration, clipped to [0, 1]."""
        return float(np.clip(self.time / self.duration, 0.0, 1.0)) if self.duration > 0 else 1.0

    def rng(self) -> np.random.Generator:
        """A generator for per-instance variation (the same at every time of the segment)."""
        return np.random.default_rng(self.seed)


@dataclass
class BodyPose:
    """A body pose (see the module docstring for the rotation convention).

    Attributes:
        rotations: (J, 3, 3) local-ref deltas; identity for bones the action does not drive.
        root: (3,) offset of the whole body in the avatar frame (metres), e.g. the pelvis dropping.
        yaw: degrees the whole body has turned about its vertical axis since the segment started
            (+ = towards its left); the timeline adds it to the heading (turning in place).
        phase: progress through the action in [0, 1) for cyclic actions, [0, 1] otherwise.
        contacts: (left, right) foot on the ground, when the action knows it (walking).
    """

    rotations: np.ndarray
    root: np.ndarray = field(default_factory=lambda: np.zeros(3))
    yaw: float = 0.0
    phase: float = 0.0
    contacts: tuple[bool, bool] | None = None

    @classmethod
    def rest(cls) -> "BodyPose":
        return cls(identity_rotations())


@dataclass(frozen=True)
class Param:
    """One action parameter: a number in [low, high] or one of ``choices``."""

    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    help: str = ""


@dataclass(frozen=True)
class Action:
    """A named body action.

    Attributes:
        name: the id used in behaviour timelines (``wave``, ``walk``, ...).
        sample: ``sample(ctx) -> BodyPose``.
        params: the parameters a timeline segment may set.
        duration: (min, default, max) seconds of one segment.
        cyclic: the action repeats for as long as its segment lasts (walk, wave, clap ...).
        locomotion: the body travels along the human's ``path`` (walk).
        label: the ground-truth action label (defaults to ``name``).
        description: one line for docs and ``hcgym`` listings.
    """

    name: str
    sample: Callable[[ClipContext], BodyPose]
    params: dict[str, Param] = field(default_factory=dict)
    duration: tuple[float, float, float] = (0.5, 2.0, 60.0)
    cyclic: bool = False
    locomotion: bool = False
    label: str = ""
    description: str = ""


# --------------------------------------------------------------------------- rotation tools
def identity_rotations() -> np.ndarray:
    """(J, 3, 3) identity deltas (the reference A-pose)."""
    return np.broadcast_to(np.eye(3), (N_BONES, 3, 3)).copy()


def unit(v) -> np.ndarray:
    """``v`` scaled to length 1 (a zero vector stays zero)."""
    v = np.asarray(v, dtype=np.float64)
    return v / max(math.sqrt(float(v @ v)), 1e-12)


def rotvec_matrix(v) -> np.ndarray:
    """3x3 rotation of a rotation vector in radians (identity for the zero vector)."""
    v = np.asarray(v, dtype=np.float64)
    angle = math.sqrt(float(v @ v))
    return np.eye(3) if angle < 1e-12 else _rodrigues(v / angle, angle)


def rot(axis, degrees: float) -> np.ndarray:
    """3x3 rotation of ``degrees`` about ``axis`` ("x", "y", "z" or a 3-vector; a zero vector gives the identity)."""
    a = np.asarray(_AXES.get(axis, axis) if isinstance(axis, str) else axis, dtype=np.float64)
    norm = math.sqrt(float(a @ a))
    return np.eye(3) if norm < 1e-12 else _rodrigues(a / norm, math.radians(degrees))


def _rodrigues(axis: np.ndarray, th: float) -> np.ndarray:
    """Rotation of ``th`` radians about the unit ``axis``."""
    x, y, z = axis
    c, s = math.cos(th), math.sin(th)
    t = 1.0 - c
    # Rodrigues' formula (scipy's Rotation costs ~100 us per call; clips call this dozens of times a frame).
    return np.array([[t * x * x + c, t * x * y - s * z, t * x * z + s * y],
                     [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
                     [t * x * z - s * y, t * y * z + s * x, t * z * z + c]])


def set_bones(rotations: np.ndarray, deltas: dict[str, np.ndarray]) -> np.ndarray:
    """Write named (3, 3) deltas (or rotation vectors in degrees) into ``rotations`` in place; returns it."""
    for name, r in deltas.items():
        r = np.asarray(r, dtype=np.float64)
        rotations[BONE_INDEX[name]] = r if r.shape == (3, 3) else Rotation.from_rotvec(np.radians(r)).as_matrix()
    return rotations


def deltas_from_accumulated(accumulated: dict[str, np.ndarray], chain: list[str]) -> dict[str, np.ndarray]:
    """Local-ref deltas of a parent-to-child ``chain`` of bones from wanted accumulated rotations.

    ``accumulated[b]`` is the rotation of bone b relative to the reference pose, in world-aligned axes
    (its world orientation is ``accumulated[b] @ U_b``). Bones of ``chain`` missing from ``accumulated``
    follow their parent (delta = identity). The first bone's parent is taken as unrotated.
    """
    out, parent = {}, np.eye(3)
    for b in chain:
        a = accumulated.get(b, parent)
        out[b] = parent.T @ a
        parent = a
    return out


def slerp(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """Spherical interpolation of (..., 3, 3) rotations: ``a`` at w = 0, ``b`` at w = 1."""
    w = float(w)
    if w <= 0.0:
        return np.array(a, dtype=np.float64, copy=True)
    if w >= 1.0:
        return np.array(b, dtype=np.float64, copy=True)
    ma, mb = np.asarray(a, dtype=np.float64).reshape(-1, 3, 3), np.asarray(b, dtype=np.float64).reshape(-1, 3, 3)
    rel = np.transpose(ma, (0, 2, 1)) @ mb  # a^T b, then a @ rel^w
    return (ma @ _matrix_power(rel, w)).reshape(np.shape(a))


def _matrix_power(r: np.ndarray, w: float) -> np.ndarray:
    """(N, 3, 3) rotations raised to the power w (the same axis, w times the angle), vectorised."""
    cos = np.clip((np.trace(r, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    axis = np.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], axis=1)
    small = angle < 1e-6
    near_pi = angle > math.pi - 1e-4
    if near_pi.any():  # the antisymmetric part vanishes: take the axis from the symmetric part
        rv = Rotation.from_matrix(r[near_pi]).as_rotvec()
        axis[near_pi] = rv
    norm = np.linalg.norm(axis, axis=1)
    axis = np.where(small[:, None], np.array([1.0, 0.0, 0.0]), axis / np.maximum(norm, 1e-300)[:, None])
    th = np.where(small, 0.0, angle) * w
    c, s = np.cos(th), np.sin(th)
    t = 1.0 - c
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    out = np.empty_like(r)
    out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = t * x * x + c, t * x * y - s * z, t * x * z + s * y
    out[:, 1, 0], out[:, 1, 1], out[:, 1, 2] = t * x * y + s * z, t * y * y + c, t * y * z - s * x
    out[:, 2, 0], out[:, 2, 1], out[:, 2, 2] = t * x * z - s * y, t * y * z + s * x, t * z * z + c
    return out


def blend(a: BodyPose, b: BodyPose, w: float) -> BodyPose:
    """``a`` at w = 0 to ``b`` at w = 1: rotations slerped, root and yaw interpolated, labels of the nearer."""
    w = float(np.clip(w, 0.0, 1.0))
    near = a if w < 0.5 else b
    return BodyPose(slerp(a.rotations, b.rotations, w), (1 - w) * a.root + w * b.root,
                    (1 - w) * a.yaw + w * b.yaw, near.phase, near.contacts)


def ease(x: float) -> float:
    """Cosine ease-in-out of x in [0, 1] (0 -> 0, 1 -> 1, zero slope at both ends)."""
    x = float(np.clip(x, 0.0, 1.0))
    return 0.5 - 0.5 * math.cos(math.pi * x)


def envelope(t: float, duration: float, attack: float, release: float) -> float:
    """0 -> 1 over ``attack`` s, 1 until ``release`` s before the end, then -> 0 (eased)."""
    up = ease(t / attack) if attack > 0 else 1.0
    down = ease((duration - t) / release) if release > 0 else 1.0
    return min(up, down)


def keyframes(times, poses: list[np.ndarray], t: float, eased: bool = True) -> np.ndarray:
    """Interpolate (J, 3, 3) rotation keyframes at ``t`` (clamped outside ``times``), slerp per segment."""
    times = list(times)
    if t <= times[0]:
        return poses[0].copy()
    if t >= times[-1]:
        return poses[-1].copy()
    k = int(np.searchsorted(times, t, side="right")) - 1
    x = (t - times[k]) / (times[k + 1] - times[k])
    return slerp(poses[k], poses[k + 1], ease(x) if eased else x)


def two_bone_ik(root: np.ndarray, mid: np.ndarray, end: np.ndarray, target: np.ndarray,
                pole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (accumulated, world axes) that bring a two-bone limb's ``end`` to ``target``.

    ``root``, ``mid``, ``end``: the joint positions of the limb as currently posed (e.g. hip, knee,
    ankle); ``pole``: a direction the middle joint should bend towards (e.g. forward for a knee).
    Returns (R_upper, R_lower): world rotations to prepend to the current accumulated rotations:
    the upper bone's becomes ``R_upper @ A_upper`` and the lower bone's ``R_lower @ R_upper @ A_lower``.
    The target is clamped to the reachable range.
    """
    l1 = np.linalg.norm(mid - root)
    l2 = np.linalg.norm(end - mid)
    d = target - root
    dist = float(np.clip(np.linalg.norm(d), abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6))
    d = d / max(np.linalg.norm(d), 1e-12)
    # Bend plane: contains d and the pole direction.
    p = pole - d * (pole @ d)
    if np.linalg.norm(p) < 1e-9:
        p = cross(d, [1.0, 0.0, 0.0])
    p = p / np.linalg.norm(p)
    cos_a = (l1 ** 2 + dist ** 2 - l2 ** 2) / (2 * l1 * dist)
    a = math.acos(float(np.clip(cos_a, -1.0, 1.0)))
    new_mid = root + l1 * (math.cos(a) * d + math.sin(a) * p)
    new_end = root + dist * d
    r_upper = _align(mid - root, new_mid - root)
    r_lower_world = _align(r_upper @ (end - mid), new_end - new_mid)
    return r_upper, r_lower_world


def cross(a, b) -> np.ndarray:
    """Cross product of two 3-vectors (numpy's ``np.cross`` costs ~40 us per call on small vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _align(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shortest-arc rotation taking direction u to direction v."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    u = u / math.sqrt(float(u @ u))
    v = v / math.sqrt(float(v @ v))
    axis = cross(u, v)
    s, c = math.sqrt(float(axis @ axis)), float(u @ v)
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        perp = cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
        return rot(perp, 180.0)
    return rot(axis, math.degrees(math.atan2(s, c)))


align = _align
