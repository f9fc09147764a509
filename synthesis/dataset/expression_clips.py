"""What an expression clip of ``clips`` mode shows, in the two styles of ``--style`` (see
:mod:`hcgym.synthesis.dataset.clips`).

* ``posed`` (CK+/Oulu-CASIA-like): one expression from neutral: the person starts neutral (the first
  0-10 % of the clip), the expression rises over 30-50 % of the clip and its apex is held to the last
  frame (CK+ sequences end at the apex); intensity 0.5-1; a small head turn (yaw within 15, pitch 8,
  roll 5 degrees); no talking; the camera within :data:`POSED_YAW` degrees of the face's front.
* ``wild`` (AFEW-like): the expression rises, holds and falls inside the clip (onset 10-20 %, apex
  20-40 %, offset 10-20 % of it, starting in its first 20 %), intensity 0.5-1. One non-neutral clip in
  three (chosen by the caller, deterministically per clip) is a **blend**: a second, different expression
  at :data:`BLEND_WEIGHT` times the first one's intensity, starting while the first rises or holds; the
  clip keeps the dominant label. About half the clips **talk** for 30-60 % of the clip (a ``talk``
  timeline entry: plain words turned into visemes). One or two head turns up to :data:`WILD_HEAD`
  degrees; the camera anywhere within 45 degrees of the person's front, 0.8-2 m away, with a field of
  view that makes the face about 60-120 px wide (:data:`WILD_FACE_PX`, at 224 x 224); light intensity,
  ambient level and colour varied more widely than the posed clips. One clip in three (chosen by the
  caller) is **occluded**: a hand raised in front of the mouth for part of the clip (the ``drink`` action
  of :data:`OCCLUDERS`, 2-3 sips over 50-75 % of the clip, layered over idling). The occluder is part of
  the rendered world, so the videos show it; ground-truth landmarks more than 3 cm behind it are marked
  hidden (the hand at the lips often lies closer than that, so the hidden share understates it).

Every clip's ``params`` (stored in its JSON) records what the recognisers downstream need: ``style``,
``intensity`` (0 for neutral), ``label2`` / ``label2_id`` / ``blend_weight`` (``None`` / -1 / 0 without a
blend), ``talking`` and its ``talk`` text, ``occluded`` and the ``occluder`` segment, and ``apex_frames``:
the indices of three frames at the apex of the dominant expression (the last three frames of a posed
clip; the three around the middle of the apex of a wild one), the CK+ protocol's "peak" frames.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Expression clip styles (``--style``).
STYLES = ("posed", "wild")
#: Largest camera angle (degrees) to either side of the face's front in posed clips.
POSED_YAW = 20.0
#: Largest head turn of wild clips (degrees): yaw, pitch, roll.
WILD_HEAD = {"yaw": 40.0, "pitch": 15.0, "roll": 8.0}
#: Camera distance (metres) from the face in wild clips.
WILD_DISTANCE = (0.8, 2.0)
#: Width of the face box in pixels that wild clips are framed for (the field of view is widened until the
#: face is no wider; it stays wider only if the moving head would otherwise leave the frame).
WILD_FACE_PX = (60.0, 120.0)
#: Width (metres, at the face's depth) of a face box as dlib or MediaPipe put it (0.13-0.175 m measured on
#: the pool's avatars): converts :data:`WILD_FACE_PX` into a field of view.
FACE_WIDTH = 0.15
#: The second expression of a blend has this share (min, max) of the first one's intensity.
BLEND_WEIGHT = (0.3, 0.6)
#: Upper-body actions that bring a hand in front of the face (``phone_call``, a hand at the ear, was tried
#: and dropped: seen from the front the hand stays beside the face).
OCCLUDERS = ("drink",)
#: Words that talking clips say (drawn with replacement).
TALK_WORDS = ("hello", "there", "what", "is", "this", "we", "should", "go", "now", "I", "think", "so", "look",
              "at", "that", "really", "nothing", "maybe", "later", "please", "come", "here", "no", "yes", "why",
              "never", "again", "about", "time", "you", "see", "it")


def plan_expression(plan, rng: np.random.Generator, seconds: float, fps: float, frames: int, style: str,
                    handedness: str, blend: bool, occlude: bool) -> None:
    """Fill ``plan`` (a :class:`~hcgym.synthesis.dataset.clips.ClipPlan` of an expression clip): the person's
    expression, head, talk and behaviour timeline keys, its ``hand`` (occluded clips) and ``params``.

    ``blend`` and ``occlude`` say whether a wild clip is a blend (ignored for neutral clips) and whether a
    hand hides part of its face; posed clips have neither.
    """
    from hcgym.synthesis.expressions import EXPRESSIONS

    T = float(seconds)
    names = tuple(EXPRESSIONS)
    wild = style == "wild"
    start = float(rng.uniform(0.0, 0.2 if wild else 0.1)) * T
    if wild:
        onset, apex, offset = (float(rng.uniform(a, b)) * T for a, b in ((0.1, 0.2), (0.2, 0.4), (0.1, 0.2)))
    else:  # the apex is held past the last frame
        onset = float(rng.uniform(0.3, 0.5)) * T
        apex, offset = T - start - onset + 1.0, 0.5
    intensity = round(float(rng.uniform(0.5, 1.0)), 4)
    first = _track(plan.label, start, onset, apex, offset, intensity)
    tracks = [first]
    params: dict[str, Any] = {"style": style, "intensity": 0.0 if plan.label == "neutral" else intensity,
                              "label2": None, "label2_id": -1, "blend_weight": 0.0, "talking": False, "talk": None,
                              "occluded": False, "occluder": None}
    if wild and blend and plan.label != "neutral":
        others = [n for n in names if n not in ("neutral", plan.label)]
        second = others[int(rng.integers(len(others)))]
        weight = round(float(rng.uniform(*BLEND_WEIGHT)), 4)
        s2 = start + float(rng.uniform(0.0, 1.0)) * (onset + 0.5 * apex)
        on2, ap2, off2 = (float(rng.uniform(a, b)) * T for a, b in ((0.1, 0.2), (0.15, 0.35), (0.1, 0.2)))
        tracks.append(_track(second, s2, on2, ap2, off2, round(weight * intensity, 4)))
        params.update(label2=second, label2_id=names.index(second), blend_weight=weight)
    plan.human["expression"] = tracks
    plan.human["head"] = _head(rng, T, wild)
    if wild and rng.random() < 0.5:
        talk = _talk(rng, T)
        plan.human["talk"] = [talk]
        params.update(talking=True, talk=talk["text"])
    if wild and occlude:
        segment = _occluder(rng, T, handedness)
        plan.human["behaviour"] = [segment]
        plan.hand = segment["hand"]
        params.update(occluded=True, occluder=dict(segment))
    if wild:
        mid = first["start"] + first["onset"] + 0.5 * first["apex"]
        k = int(round(mid * float(fps)))
        apex_frames = [k - 1, k, k + 1]
    else:
        apex_frames = [frames - 3, frames - 2, frames - 1]
    params["apex_frames"] = [int(np.clip(i, 0, frames - 1)) for i in apex_frames]
    plan.params = params


def _track(name: str, start: float, onset: float, apex: float, offset: float, intensity: float) -> dict[str, Any]:
    return {"expression": name, "start": round(start, 4), "onset": round(onset, 4), "apex": round(max(0.0, apex), 4),
            "offset": round(offset, 4), "intensity": intensity}


def _head(rng: np.random.Generator, T: float, wild: bool) -> list[dict[str, Any]]:
    """Head turns: one small one (posed) or one or two big ones (wild), each returning to the front at its end."""
    if not wild:
        h_start = float(rng.uniform(0.0, 0.3)) * T
        return [{"yaw": round(float(rng.uniform(-15.0, 15.0)), 3), "pitch": round(float(rng.uniform(-8.0, 8.0)), 3),
                 "roll": round(float(rng.uniform(-5.0, 5.0)), 3), "start": round(h_start, 4),
                 "duration": round(max(0.2, float(rng.uniform(0.4, 0.7)) * T), 4)}]
    count = 1 + int(rng.random() < 0.5)
    span = T / count
    out = []
    for j in range(count):
        angles = {k: round(float(rng.uniform(-v, v)), 3) for k, v in WILD_HEAD.items()}
        out.append({**angles, "start": round(j * span + float(rng.uniform(0.0, 0.3)) * span, 4),
                    "duration": round(max(0.2, float(rng.uniform(0.4, 0.7)) * span), 4)})
    return out


def _talk(rng: np.random.Generator, T: float) -> dict[str, Any]:
    """A ``talk`` entry lasting about 30-60 % of the clip (words are added until the speech is that long)."""
    from hcgym.synthesis.motion.face import visemes

    target = float(rng.uniform(0.3, 0.6)) * T
    rate = round(float(rng.uniform(4.0, 6.0)), 3)
    words: list[str] = []
    while not words or visemes(" ".join(words), 0.0, rate).end < target:
        words.append(TALK_WORDS[int(rng.integers(len(TALK_WORDS)))])
    length = visemes(" ".join(words), 0.0, rate).end
    return {"text": " ".join(words), "start": round(float(rng.uniform(0.0, max(0.0, T - length))), 4), "rate": rate}


def _occluder(rng: np.random.Generator, T: float, handedness: str) -> dict[str, Any]:
    """An upper-body action (layered over idling) that raises a hand in front of part of the face."""
    action = OCCLUDERS[int(rng.integers(len(OCCLUDERS)))]
    other = "left" if handedness == "right" else "right"
    hand = handedness if rng.random() < 0.75 else other
    start = float(rng.uniform(0.05, 0.3)) * T
    duration = max(2.0, float(rng.uniform(0.5, 0.75)) * T)  # the action lasts at least 2 s
    return {"action": action, "start": round(start, 4), "duration": round(duration, 4), "hand": hand,
            "sips": int(rng.integers(2, 4))}


def expression_view(plan, rng: np.random.Generator, style: str) -> None:
    """Camera and light draws of an expression clip on top of the common ones: a frontal-ish camera for posed
    clips; distance, face size in pixels (``view["face_px"]``) and a wider light range for wild ones."""
    if style != "wild":
        plan.view["yaw"] = round(float(rng.uniform(-POSED_YAW, POSED_YAW)), 4)
        return
    plan.view["distance"] = round(float(rng.uniform(*WILD_DISTANCE)), 4)
    plan.view["face_px"] = round(float(rng.uniform(*WILD_FACE_PX)), 2)
    warm = float(rng.uniform(-0.3, 0.3))
    plan.light["color"] = [round(v, 4) for v in (1.0, 1.0 - abs(warm) * 0.5 + warm * 0.3, min(1.0, 1.0 - warm))]
    plan.light["intensity"] = round(float(rng.uniform(0.55, 1.35)), 3)
    plan.ambient = round(float(rng.uniform(0.12, 0.7)), 3)


def face_px_hfov(face_px: float, depth: float, width: int) -> float:
    """Horizontal field of view (degrees) at which a face box of :data:`FACE_WIDTH` at ``depth`` metres spans
    ``face_px`` pixels of an image ``width`` pixels wide."""
    focal = float(face_px) * float(depth) / FACE_WIDTH
    return 2.0 * math.degrees(math.atan(0.5 * width / focal))


def occluder_shapes(plan) -> set[tuple[int, str, str]]:
    """``(identity, hand shape, hand)`` of the cached hand poses the clip's occluding action needs."""
    from hcgym.synthesis.motion.timeline import ACTION_HANDS

    out = set()
    for seg in plan.human.get("behaviour", []):
        if seg["action"] in ACTION_HANDS:
            out.add((plan.identity, ACTION_HANDS[seg["action"]][0], seg["hand"]))
    return out
