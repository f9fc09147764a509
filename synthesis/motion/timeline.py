"""Behaviour timelines: what one person does over time, validated from a world spec, and the
pose, place and labels that follow at any moment.

A human in a world YAML may carry::

    path: {waypoints: [[0, 0], [4, 0], [4, 3]], speed: 1.2, loop: false}
    behaviour:                      # body actions; whole-body ones must not overlap each other,
      - {action: walk, start: 0, duration: 5}          # upper-body ones neither
      - {action: wave, start: 1, duration: 2, hand: right}   # layered over the walk
      - {action: turn, start: 6, duration: 1.5, angle: 90}
    expression: [{expression: happy, start: 2, onset: 0.4, apex: 2, offset: 0.6, intensity: 0.9}]
    gesture: [{gesture: five, hand: right, start: 1.2, duration: 1.5}]
    talk: [{text: "hello there", start: 3}]
    gaze: [{yaw: 20, pitch: 0, start: 4, duration: 1}]
    head: [{yaw: 30, pitch: -5, roll: 0, start: 4, duration: 1.5}]
    blink: {rate: 15}               # blinks per minute; false for none
    say: [{word: stop, start: 5, voice: en-gb, variant: f5, pitch: 50, speed: 170, volume: 100}]

``say`` words are spoken aloud (espeak-ng, :mod:`hcgym.synthesis.speech`) and heard by the robot's microphone
(:mod:`hcgym.synthesis.world_signals`); the mouth moves over the word's voiced span, so lips and audio agree.

Walks follow the path from where the previous walk stopped; the distance of all walks must fit
on the path (unless it loops). Between segments the person idles. Segments cross-fade over
:data:`FADE` seconds. The state at a time is a pure function of that time: the same seed gives
the same pose at a time whatever frame rate reached it.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.synthesis.expressions import EXPRESSIONS
from hcgym.synthesis.motion import face
from hcgym.synthesis.motion.actions import actions, upper_body_actions
from hcgym.synthesis.motion.base import Action, BodyPose, ClipContext, Style, blend, envelope, slerp
from hcgym.synthesis.motion.clips_arms import ARM_BONES, _sides
from hcgym.synthesis.motion.face import apply_deltas, face_state
from hcgym.synthesis.motion.hands import GESTURES, hand_deltas, relaxed_hand
from hcgym.synthesis.motion.path import Path
from hcgym.synthesis.motion.rig import BONE_INDEX
from hcgym.validate import Fields

#: Hand shapes of upper-body actions: action -> (gesture of hcgym.synthesis.motion.hands, amount).
ACTION_HANDS: dict[str, tuple[str, float]] = {
    "punch": ("punch", 1.0), "point": ("one", 1.0), "phone_call": ("punch", 0.55), "drink": ("punch", 0.6),
}
#: Seconds over which consecutive body segments cross-fade.
FADE = 0.3
#: Sharpest corner (degrees) a path may turn at one waypoint (a person does not walk a U-turn on the spot).
MAX_PATH_TURN = 150.0
#: Seconds a walk takes to reach its speed (and to stop).
WALK_RAMP = 0.5
#: Seconds over which a walk turns the person from their heading to the path's.
WALK_ALIGN = 0.6


@dataclass(frozen=True)
class Segment:
    """One body action over [start, start + duration)."""

    action: str
    start: float
    duration: float
    params: dict[str, Any] = field(default_factory=dict)
    index: int = 0  #: position in the spec's ``behaviour`` list.

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class PathSpec:
    waypoints: tuple[tuple[float, float], ...]
    speed: float = 1.2
    loop: bool = False


@dataclass(frozen=True)
class Behaviour:
    """A human's validated timeline (body segments, path and the face/hand tracks as plain data)."""

    segments: tuple[Segment, ...] = ()
    path: PathSpec | None = None
    expression: tuple[dict[str, Any], ...] = ()
    gesture: tuple[dict[str, Any], ...] = ()
    talk: tuple[dict[str, Any], ...] = ()
    gaze: tuple[dict[str, Any], ...] = ()
    head: tuple[dict[str, Any], ...] = ()
    blink: float = 15.0  #: blinks per minute (0: none).
    #: Words said aloud: dicts of word, start, voice, variant, pitch, speed, volume, field (the spec path), by start.
    say: tuple[dict[str, Any], ...] = ()

    @property
    def end(self) -> float:
        """When the last segment or track ends (seconds)."""
        ends = [s.end for s in self.segments]
        ends += [t["start"] + t.get("duration", t.get("onset", 0) + t.get("apex", 0) + t.get("offset", 0))
                 for t in (*self.expression, *self.gesture, *self.gaze, *self.head)]
        return max(ends, default=0.0)

    @property
    def moves(self) -> bool:
        """Whether anything in the timeline changes the body over time."""
        return bool(self.segments or self.expression or self.gesture or self.talk or self.gaze or self.head
                    or self.blink > 0 or self.say)


KEYS = ("path", "behaviour", "expression", "gesture", "talk", "gaze", "head", "blink", "say")


def parse_behaviour(hf: Fields, position: tuple[float, ...], inside) -> Behaviour | None:
    """Read the behaviour keys of one human's fields (``hf``); ``None`` if it has none.

    ``inside(fields, key, xy)`` raises when a point lies outside the world.
    """
    # ``expression:`` as a name or mapping is the avatar's fixed expression; as a list it is a track.
    if not any(hf.has(k) and (k != "expression" or isinstance(hf.raw(k), list)) for k in KEYS):
        return None
    src = hf.source
    table = actions()
    path = None
    if hf.has("path"):
        pf = Fields(hf.raw("path"), hf.sub("path"), src)
        raw = pf.raw("waypoints")
        if not isinstance(raw, list) or len(raw) < 1:
            raise pf.error("waypoints", "expected a list of at least one [x, y] point")
        pts = [tuple(float(v) for v in Fields({"p": p}, pf.sub(f"waypoints[{i}]"), src).vector("p", (2, 3))[:2])
               for i, p in enumerate(raw)]
        for i, p in enumerate(pts):
            inside(pf, f"waypoints[{i}]", p)
        start = tuple(position[:2])
        if math.dist(pts[0], start) > 1e-6:
            pts = [start, *pts]  # a path starts where the person stands
        for i in range(1, len(pts)):
            if math.dist(pts[i - 1], pts[i]) < 1e-3:
                raise pf.error("waypoints", f"consecutive waypoints {pts[i - 1]} and {pts[i]} coincide")
        for i in range(1, len(pts) - 1):
            (ax, ay), (bx, by), (cx, cy) = pts[i - 1], pts[i], pts[i + 1]
            turn = abs(math.degrees(math.atan2((bx - ax) * (cy - by) - (by - ay) * (cx - bx),
                                               (bx - ax) * (cx - bx) + (by - ay) * (cy - by))))
            if turn > MAX_PATH_TURN:
                raise pf.error("waypoints", f"the path turns back by {turn:.0f} degrees at {pts[i]} (at most "
                                            f"{MAX_PATH_TURN:g}: add a waypoint to turn in a wider arc, or walk there, "
                                            "turn in place and walk a second path)")
        path = PathSpec(tuple(pts), pf.number("speed", 1.2, 0.2, 3.0), pf.boolean("loop", False))
        pf.done()

    segments = []
    for i, item in enumerate(_items(hf, "behaviour")):
        sf = Fields(item, hf.sub(f"behaviour[{i}]"), src)
        name = sf.string("action", choices=tuple(table))
        act = table[name]
        lo, default, hi = act.duration
        start = sf.number("start", lo=0.0)
        if sf.has("duration") and not isinstance(sf.raw("duration"), bool) \
                and isinstance(sf.raw("duration"), (int, float)) and sf.raw("duration") <= 0:
            raise sf.error("duration", f"must be positive, got {sf.raw('duration')!r}")
        duration = sf.number("duration", default, lo, hi)
        params = {}
        for key, p in act.params.items():
            if p.choices is not None:
                params[key] = sf.string(key, p.default, p.choices)
            else:
                default = path.speed if key == "speed" and act.locomotion and path is not None else p.default
                params[key] = sf.number(key, default, p.low, p.high)
        sf.done()
        if act.locomotion and path is None:
            raise SpecError(hf.sub(f"behaviour[{i}].action"), f"{name!r} needs a path: give the human a "
                            "`path: {waypoints: [[x, y], ...]}`", src)
        segments.append(Segment(name, start, duration, params, i))

    upper = upper_body_actions()
    for group in (tuple(s for s in segments if s.action not in upper), tuple(s for s in segments if s.action in upper)):
        ordered = sorted(group, key=lambda s: s.start)
        for a, b in zip(ordered, ordered[1:]):
            if b.start < a.end - 1e-9:
                raise SpecError(hf.sub(f"behaviour[{b.index}].start"),
                                f"{b.action!r} at {b.start:g} s overlaps {a.action!r} (behaviour[{a.index}], "
                                f"{a.start:g}-{a.end:g} s); {'upper-body' if a.action in upper else 'whole-body'} "
                                "actions must not overlap", src)
    segments.sort(key=lambda s: (s.start, s.index))
    if path is not None and not path.loop:
        need = sum(_walk_distance(s, path.speed, s.duration) for s in segments if table[s.action].locomotion)
        length = Path(path.waypoints).length
        if need > length + 1e-6:
            last = max((s for s in segments if table[s.action].locomotion), key=lambda s: s.start)
            raise SpecError(hf.sub(f"behaviour[{last.index}].duration"),
                            f"the walks cover {need:.2f} m but the path is only {length:.2f} m long (the path "
                            "is unreachable in this time: shorten the walks, slow them down, lengthen the path "
                            "or set loop: true)", src)

    tracks = {k: tuple(_track(hf, k)) for k in ("gesture", "talk", "gaze", "head")}
    tracks["expression"] = tuple(_track(hf, "expression")) if isinstance(hf.raw("expression", []), list) else ()
    blink = 15.0
    if hf.has("blink"):
        raw = hf.raw("blink")
        if raw is False:
            blink = 0.0
        elif raw is True:
            blink = 15.0
        else:
            bf = Fields(raw, hf.sub("blink"), src)
            blink = bf.number("rate", 15.0, 0.0, 60.0)
            bf.done()
    return Behaviour(tuple(segments), path, blink=blink, say=_say(hf), **tracks)


#: Track fields: name -> (required keys, optional keys with defaults and ranges).
_TRACKS: dict[str, dict[str, Any]] = {
    "expression": {"expression": str, "start": (0.0, None), "onset": (0.4, 0.0, 10.0), "apex": (1.5, 0.0, 600.0),
                   "offset": (0.6, 0.0, 10.0), "intensity": (1.0, 0.0, 1.0)},
    "gesture": {"gesture": str, "hand": ("right", ("left", "right")), "start": (0.0, None),
                "duration": (1.5, 0.2, 600.0)},
    "talk": {"text": str, "start": (0.0, None), "rate": (5.0, 1.0, 10.0)},
    "gaze": {"yaw": (0.0, -45.0, 45.0), "pitch": (0.0, -35.0, 35.0), "start": (0.0, None),
             "duration": (1.0, 0.1, 600.0)},
    "head": {"yaw": (0.0, -80.0, 80.0), "pitch": (0.0, -40.0, 40.0), "roll": (0.0, -30.0, 30.0),
             "start": (0.0, None), "duration": (1.0, 0.2, 600.0)},
}


def _track(hf: Fields, key: str):
    choices = {"expression": tuple(EXPRESSIONS), "gesture": tuple(GESTURES)}
    for i, item in enumerate(_items(hf, key)):
        tf = Fields(item, hf.sub(f"{key}[{i}]"), hf.source)
        out: dict[str, Any] = {}
        for name, rule in _TRACKS[key].items():
            if rule is str:
                out[name] = tf.string(name, choices=choices.get(name))
            elif isinstance(rule[1], tuple):
                out[name] = tf.string(name, rule[0], rule[1])
            elif rule[1] is None:
                out[name] = tf.number(name, lo=0.0)
            else:
                out[name] = tf.number(name, rule[0], rule[1], rule[2])
        if key == "talk" and not out["text"].strip():
            raise tf.error("text", "must not be empty")
        tf.done()
        yield out


#: ``say`` voice settings: espeak-ng pitch (50 = the voice's own), speed (words per minute) and volume (100 = normal).
SAY_PITCH, SAY_SPEED, SAY_VOLUME = (30, 75), (120, 220), (10, 200)
#: Syllables per second of the letter-rule visemes of a ``say`` word before they are stretched onto its audio.
SAY_RATE = 5.0
_WORD = re.compile(r"[A-Za-z][A-Za-z' -]{0,39}")


def _say(hf: Fields) -> tuple[dict[str, Any], ...]:
    """The validated ``say`` items of one human, in order of start."""
    from hcgym.synthesis.speech.keywords import ACCENTS, VARIANTS

    variants = tuple(sorted({v for pool in VARIANTS.values() for v in pool if v}))
    out = []
    for i, item in enumerate(_items(hf, "say")):
        sf = Fields(item, hf.sub(f"say[{i}]"), hf.source)
        if isinstance(sf.raw("word"), bool):
            raise sf.error("word", f"got {sf.raw('word')!r}: YAML reads yes, no, on and off unquoted as true or "
                                   "false, so quote the word (word: \"yes\")")
        word = sf.string("word")
        if not _WORD.fullmatch(word.strip()):
            raise sf.error("word", f"expected a word of letters (at most 40 characters), got {word!r}")
        variant = sf.raw("variant", None)
        out.append({"word": word.strip(), "start": sf.number("start", lo=0.0),
                    "voice": sf.string("voice", "en-us", ACCENTS),
                    "variant": None if variant is None else sf.string("variant", choices=variants),
                    "pitch": sf.integer("pitch", 50, *SAY_PITCH), "speed": sf.integer("speed", 170, *SAY_SPEED),
                    "volume": sf.integer("volume", 100, *SAY_VOLUME), "field": sf.path})
        sf.done()
    return tuple(sorted(out, key=lambda e: e["start"]))


def say_audio(item: dict[str, Any], sample_rate: int = 16_000) -> np.ndarray:
    """The voiced span of a ``say`` item as said by its voice: float32 (samples,) at ``sample_rate`` Hz."""
    from hcgym.synthesis.speech import Speaker, spoken_word

    speaker = Speaker(item["voice"], item["variant"] or "", item["pitch"], item["speed"], item["volume"])
    return spoken_word(item["word"], speaker, sample_rate)


def say_spans(items: tuple[dict[str, Any], ...], sample_rate: int = 16_000,
              source: str | None = None) -> list[tuple[float, float]]:
    """(start, end) seconds of each ``say`` item's voiced span; SpecError when one person's words overlap."""
    spans = [(item["start"], item["start"] + len(say_audio(item, sample_rate)) / sample_rate) for item in items]
    for k in range(1, len(spans)):
        if spans[k][0] < spans[k - 1][1]:
            raise SpecError(f"{items[k]['field']}.start", f"{items[k]['word']!r} at {spans[k][0]:g} s starts before "
                            f"{items[k - 1]['word']!r} ends ({spans[k - 1][0]:g}-{spans[k - 1][1]:.2f} s): one "
                            "person says one word at a time", source)
    return spans


def _said(item: dict[str, Any], span: tuple[float, float]) -> face.VisemeTrack:
    """The mouth of a ``say`` item: its letter-rule visemes stretched onto the voiced span of its audio."""
    track = face.visemes(item["word"], span[0], SAY_RATE)
    k = (span[1] - span[0]) / max(track.end - span[0], 1e-9)
    return face.VisemeTrack(tuple((v, span[0] + (a - span[0]) * k, span[0] + (b - span[0]) * k)
                                  for v, a, b in track.segments), track.smoothing)


def _items(hf: Fields, key: str) -> list[Any]:
    raw = hf.raw(key, [])
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise hf.error(key, f"expected a list, got {type(raw).__name__}")
    return raw


def _targets(items, keys: tuple[str, ...]) -> list[tuple]:
    """(time, *angles) targets of timed head/gaze items: each item's angles at its start, back to 0 at its end."""
    out = []
    for item in sorted(items, key=lambda i: i["start"]):
        out.append((item["start"], *(item[k] for k in keys)))
        out.append((item["start"] + item["duration"], *(0.0 for _ in keys)))
    return out


def _walk_distance(seg: Segment, path_speed: float, tau: float) -> float:
    """Metres a walk segment has covered ``tau`` s after its start (trapezoid speed profile)."""
    v = float(seg.params.get("speed", path_speed))
    d = seg.duration
    ramp = min(WALK_RAMP, d / 2)
    tau = float(np.clip(tau, 0.0, d))

    def up(x: float) -> float:  # distance during the ramp up to x s (linear speed ramp)
        return v * x * x / (2 * ramp) if ramp > 0 else v * x

    if tau <= ramp:
        return up(tau)
    full = up(ramp)
    if tau <= d - ramp:
        return full + v * (tau - ramp)
    total = 2 * full + v * (d - 2 * ramp)
    return total - up(d - tau)


def _walk_speed(seg: Segment, path_speed: float, tau: float) -> float:
    v = float(seg.params.get("speed", path_speed))
    ramp = min(WALK_RAMP, seg.duration / 2)
    if ramp <= 0:
        return v
    return v * float(np.clip(min(tau, seg.duration - tau) / ramp, 0.0, 1.0))


# --------------------------------------------------------------------------- runtime
@dataclass
class MotionState:
    """Where a person is, how their body is posed and what they are doing at one time."""

    time: float
    position: np.ndarray  #: (3,) world position of the avatar frame's origin (feet), metres.
    heading: float  #: degrees (0 = facing +x).
    velocity: np.ndarray  #: (3,) world velocity of that origin, m/s.
    pose: BodyPose
    facial: np.ndarray  #: (52,) facial action values.
    rotations: np.ndarray  #: (J, 3, 3) final local-ref deltas (body, arms, hands, head and eyes).
    labels: dict[str, Any]


class HumanMotion:
    """Evaluates one person's :class:`Behaviour` at any time.

    Args:
        behaviour: the validated timeline.
        rig: the person's rig.
        position: (3,) where they stand at time 0; ``heading``: degrees.
        style: how they move (default: drawn from ``style_key``).
        seed: per-instance variation seed (with the world seed and the person's index).
    """

    def __init__(self, behaviour: Behaviour, rig, position, heading: float, style: Style | None = None,
                 seed: int = 0, style_key: str = "") -> None:
        self.behaviour, self.rig = behaviour, rig
        self.position0 = np.asarray(position, dtype=np.float64).reshape(3)
        self.heading0 = float(heading)
        self.style = style or Style.from_key(style_key or rig.key)
        self.seed = int(seed)
        self._actions = actions()
        upper = upper_body_actions()
        self.body = [s for s in behaviour.segments if s.action not in upper]
        self.upper = [s for s in behaviour.segments if s.action in upper]
        self.path = Path(behaviour.path.waypoints, behaviour.path.loop) if behaviour.path else None
        self._plan()
        self._utterances: tuple[tuple[float, float], ...] | None = None  #: (start, end) s of each utterance.
        self._face = self._face_tracks()

    def _face_tracks(self) -> list:
        """The facial tracks of the behaviour (expressions, blinks, talking, gaze, head turns)."""
        b = self.behaviour
        tracks: list = [face.ExpressionTrack(e["expression"], e["start"], e["onset"], e["apex"], e["offset"],
                                             e["intensity"]) for e in b.expression]
        if b.blink > 0:
            tracks.append(face.blinks(self.seed, b.blink, horizon=max(60.0, b.end + 30.0)))
        if b.talk or b.say:
            parts = [face.visemes(item["text"], item["start"], item["rate"]) for item in b.talk]
            parts += [_said(item, span) for item, span in zip(b.say, say_spans(b.say))]
            if b.say:  # spoken words are separate utterances: the mouth is still between them
                self._utterances = tuple((part.start, part.end) for part in parts)
            tracks.append(face.VisemeTrack(tuple(sorted((seg for p in parts for seg in p.segments),
                                                        key=lambda seg: (seg[1], seg[2]))), parts[0].smoothing))
        if b.gaze:
            tracks.append(face.GazeTrack(_targets(b.gaze, ("yaw", "pitch"))))
        if b.head:
            tracks.append(face.HeadTrack(_targets(b.head, ("yaw", "pitch", "roll"))))
        return tracks

    def _action_grip(self, t: float, side: str) -> tuple[str, float] | None:
        """The hand shape an active upper-body action gives ``side`` (a fist to punch, an index finger to point,
        a grip to hold a phone or a cup) and its weight, or ``None``."""
        k = self._active(self.upper, t)
        if k is None or self.upper[k].action not in ACTION_HANDS:
            return None
        seg = self.upper[k]
        gesture, amount = ACTION_HANDS[seg.action]
        if {"left": "L", "right": "R"}[side] not in _sides(str(seg.params.get("hand", "auto")), self.style):
            return None
        tau = t - seg.start
        return gesture, amount * float(np.clip(min(tau, seg.duration - tau) / 0.4, 0.0, 1.0))

    def _gesture_at(self, side: str, t: float) -> dict[str, Any] | None:
        """The gesture-track item of hand ``side`` active at ``t``, or ``None``."""
        return next((g for g in self.behaviour.gesture
                     if g["hand"] == side and g["start"] <= t < g["start"] + g["duration"]), None)

    def _pointing(self, seg: Segment, t: float) -> dict[str, Any]:
        """The parameters of upper-body segment ``seg`` at ``t``: an arm action that can point the hand sideways
        (``gesture_raise``) turns it while its hand shows the ``left`` or ``right`` gesture, in step with the
        finger shape (unless the segment sets ``point`` itself)."""
        if "point" not in self._actions[seg.action].params or seg.params.get("point", "auto") != "auto":
            return seg.params
        side = "left" if _sides(str(seg.params.get("hand", "auto")), self.style)[0] == "L" else "right"
        item = self._gesture_at(side, t)
        if item is None or item["gesture"] not in ("left", "right"):
            return seg.params
        amount = envelope(t - item["start"], item["duration"], 0.25, 0.25)
        return {**seg.params, "point": item["gesture"], "point_amount": float(amount)}

    def hands(self, t: float) -> tuple[dict[str, np.ndarray], dict[str, str | None]]:
        """Finger deltas of both hands at ``t`` and the gesture each hand shows (``None``: relaxed).

        A ``gesture`` track wins; otherwise an upper-body action may shape the hand (:data:`ACTION_HANDS`,
        not labelled as a gesture); otherwise the hand is relaxed.
        """
        deltas, labels = {}, {}
        for side in ("left", "right"):
            item = self._gesture_at(side, t)
            if item is None:
                grip = self._action_grip(t, side)
                deltas.update(relaxed_hand(self.rig, side) if grip is None or grip[1] <= 0
                              else hand_deltas(self.rig, grip[0], side, grip[1]))
                labels[side] = None
                continue
            amount = envelope(t - item["start"], item["duration"], 0.25, 0.25)
            deltas.update(hand_deltas(self.rig, item["gesture"], side, amount))
            labels[side] = item["gesture"] if amount >= 0.5 else None
        return deltas, labels

    # ------------------------------------------------------------------ planning
    def _plan(self) -> None:
        """Heading and path distance at the start of every whole-body segment (closed form afterwards)."""
        heading, s = self.heading0, 0.0
        self._starts: list[tuple[float, float]] = []  # (heading at segment start, path distance at start)
        for seg in self.body:
            self._starts.append((heading, s))
            act = self._actions[seg.action]
            if act.locomotion:
                s += _walk_distance(seg, self._path_speed(), seg.duration)
                heading = self.path.at(s)[1]
            elif seg.action == "turn":
                heading += float(seg.params.get("angle", 0.0))
        self._end_heading, self._end_s = heading, s

    def _path_speed(self) -> float:
        return self.behaviour.path.speed if self.behaviour.path else 1.2

    def _seed(self, seg: Segment, kind: str = "body") -> int:
        h = hashlib.sha256(f"{self.seed}:{kind}:{seg.index}:{seg.action}".encode()).hexdigest()
        return int(h[:12], 16)

    def _active(self, segs: list[Segment], t: float) -> int | None:
        for k, seg in enumerate(segs):
            if seg.start <= t < seg.end:
                return k
        return None

    # ------------------------------------------------------------------ placement
    def placement(self, t: float) -> tuple[np.ndarray, float, float, float]:
        """(world xy position (2,), heading degrees, path distance walked, current speed) at ``t``."""
        k = self._last_started(t)
        if k is None:
            return self.position0[:2].copy(), self.heading0, 0.0, 0.0
        seg = self.body[k]
        heading0, s0 = self._starts[k]
        tau = t - seg.start
        if tau >= seg.duration:  # after the segment: its end state
            heading1, s1 = (self._starts[k + 1] if k + 1 < len(self._starts) else (self._end_heading, self._end_s))
            return self._xy(s1), heading1, s1, 0.0
        act = self._actions[seg.action]
        if act.locomotion:
            s = s0 + _walk_distance(seg, self._path_speed(), tau)
            xy, path_heading, _ = self.path.at(s)
            w = min(1.0, tau / WALK_ALIGN)
            w = 0.5 - 0.5 * math.cos(math.pi * w)
            delta = (path_heading - heading0 + 180.0) % 360.0 - 180.0
            return xy, heading0 + w * delta, s, _walk_speed(seg, self._path_speed(), tau)
        return self._xy(s0), heading0, s0, 0.0

    def _xy(self, s: float) -> np.ndarray:
        if self.path is None or s <= 0:
            return self.position0[:2].copy()
        return self.path.at(s)[0]

    def _last_started(self, t: float) -> int | None:
        k = None
        for i, seg in enumerate(self.body):
            if seg.start <= t:
                k = i
        return k

    # ------------------------------------------------------------------ body pose
    def _sample(self, seg: Segment, tau: float, kind: str = "body") -> BodyPose:
        act: Action = self._actions[seg.action]
        params = self._pointing(seg, seg.start + tau) if kind == "upper" else seg.params
        ctx = ClipContext(rig=self.rig, time=float(np.clip(tau, 0.0, seg.duration)), duration=seg.duration,
                          params=params, style=self.style, seed=self._seed(seg, kind))
        if act.locomotion:
            k = self.body.index(seg)
            ctx.distance = _walk_distance(seg, self._path_speed(), ctx.time)
            ctx.speed = _walk_speed(seg, self._path_speed(), ctx.time)
            s = self._starts[k][1] + ctx.distance
            ctx.turn_rate = math.degrees(self.path.at(s)[2]) * ctx.speed
        return act.sample(ctx)

    def _idle(self, t: float) -> BodyPose:
        idle = self._actions["idle"]
        ctx = ClipContext(rig=self.rig, time=t, duration=max(t, 1.0), params={k: p.default for k, p in
                          idle.params.items()}, style=self.style, seed=self.seed)
        return idle.sample(ctx)

    def body_pose(self, t: float) -> tuple[BodyPose, str, float]:
        """(pose, action label, phase) of the whole-body track at ``t`` (idle between segments)."""
        k = self._active(self.body, t)
        if k is None:
            pose, label = self._idle(t), "idle"
            prev = self._last_started(t)
            if prev is not None and t - self.body[prev].end < FADE:  # fade out of the segment that ended
                last = self._sample(self.body[prev], self.body[prev].duration)
                pose = blend(last, pose, (t - self.body[prev].end) / FADE)
            return pose, label, pose.phase
        seg = self.body[k]
        tau = t - seg.start
        pose = self._sample(seg, tau)
        if tau < FADE:
            before = (self._sample(self.body[k - 1], self.body[k - 1].duration)
                      if k > 0 and abs(self.body[k - 1].end - seg.start) < 1e-6 else self._idle(seg.start))
            # Carry the previous pose's root yaw (turns) into the new segment's frame: yaw is per segment.
            before = BodyPose(before.rotations, before.root, 0.0, before.phase, before.contacts)
            pose = blend(before, pose, tau / FADE)
        label = self._actions[seg.action].label or seg.action
        return pose, label, pose.phase

    def upper_pose(self, t: float) -> tuple[BodyPose | None, float, str | None]:
        """(pose, weight, label) of the upper-body track at ``t`` (weight fades in and out)."""
        k = self._active(self.upper, t)
        if k is None:
            return None, 0.0, None
        seg = self.upper[k]
        tau = t - seg.start
        w = min(1.0, tau / FADE, (seg.duration - tau) / FADE)
        return self._sample(seg, tau, "upper"), float(np.clip(w, 0.0, 1.0)), self._actions[seg.action].label or seg.action

    # ------------------------------------------------------------------ everything
    def state(self, t: float) -> MotionState:
        """The person's full state at time ``t`` (seconds since the world started)."""
        t = float(t)
        xy, heading, _, speed = self.placement(t)
        pose, label, phase = self.body_pose(t)
        rotations = pose.rotations.copy()
        upper, w, upper_label = self.upper_pose(t)
        if upper is not None:
            idx = [BONE_INDEX[b] for b in ARM_BONES]
            rotations[idx] = slerp(rotations[idx], upper.rotations[idx], w)
        heading_now = heading + pose.yaw
        # Velocity by central difference of the closed-form placement (pure function of time).
        dt = 1e-3
        a, _, _, _ = self.placement(max(0.0, t - dt))
        b, _, _, _ = self.placement(t + dt)
        vel = np.zeros(3)
        vel[:2] = (b - a) / (t + dt - max(0.0, t - dt))
        position = np.array([xy[0], xy[1], self.position0[2]])
        fingers, gestures = self.hands(t)
        for name, d in fingers.items():
            rotations[BONE_INDEX[name]] = d
        face = face_state(*self._face, t=t)
        rotations = apply_deltas(rotations, face.deltas)
        if face.talking and self._utterances is not None:
            face.talking = any(a <= t < b for a, b in self._utterances)
        labels = {"action": label, "action_phase": round(float(phase), 4), "upper_action": upper_label,
                  "speed": round(float(speed), 4), "expression": face.expression,
                  "expression_intensity": round(float(face.intensity), 4), "talking": bool(face.talking),
                  "viseme": face.viseme if face.talking else None, "blinking": bool(face.blinking),
                  "eye_angles": tuple(float(a) for a in face.eye_angles),
                  "gesture_left": gestures["left"], "gesture_right": gestures["right"]}
        return MotionState(t, position, float(heading_now), vel, pose, face.facial, rotations, labels)
