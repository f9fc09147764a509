"""Named facial expressions as anny (ARKit-named) facial actions.

The apex coefficients follow the FACS action units of each basic emotion
(AU -> ARKit mapping: AU1 browInnerUp, AU2 browOuterUp, AU4 browDown, AU5
eyeWide, AU6 cheekSquint, AU7 eyeSquint, AU9 noseSneer, AU10 mouthUpperUp,
AU12 mouthSmile, AU15 mouthFrown, AU16 mouthLowerDown, AU17 mouthShrugLower,
AU20 mouthStretch, AU23/24 mouthPress, AU25/26 jawOpen). An intensity in
[0, 1] scales every coefficient.
"""

from __future__ import annotations

from hcgym.synthesis.labels import FACIAL_ACTIONS


def _lr(name: str, value: float) -> dict[str, float]:
    return {f"{name}Left": value, f"{name}Right": value}


#: Apex facial actions of the seven basic expressions.
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {**_lr("mouthSmile", 0.9), **_lr("cheekSquint", 0.6), **_lr("eyeSquint", 0.35),
              **_lr("mouthDimple", 0.2), "jawOpen": 0.08},
    "sad": {"browInnerUp": 0.9, **_lr("browDown", 0.35), **_lr("mouthFrown", 0.85), "mouthShrugLower": 0.45,
            **_lr("eyeSquint", 0.1), **_lr("eyeLookDown", 0.2)},
    "angry": {**_lr("browDown", 1.0), **_lr("eyeSquint", 0.45), **_lr("eyeWide", 0.2), **_lr("mouthPress", 0.7),
              **_lr("noseSneer", 0.3), "mouthShrugLower": 0.3},
    "surprise": {"browInnerUp": 0.9, **_lr("browOuterUp", 0.9), **_lr("eyeWide", 0.9), "jawOpen": 0.55},
    "fear": {"browInnerUp": 0.9, **_lr("browOuterUp", 0.45), **_lr("browDown", 0.35), **_lr("eyeWide", 0.9),
             **_lr("mouthStretch", 0.7), "jawOpen": 0.25},
    "disgust": {**_lr("noseSneer", 0.9), **_lr("mouthUpperUp", 0.7), **_lr("browDown", 0.45),
                **_lr("cheekSquint", 0.45), **_lr("mouthFrown", 0.35), **_lr("mouthLowerDown", 0.25),
                **_lr("eyeSquint", 0.3)},
}

assert all(k in FACIAL_ACTIONS for e in EXPRESSIONS.values() for k in e), "unknown facial action"


def expression_actions(name: str, intensity: float = 1.0) -> dict[str, float]:
    """Facial actions of a named expression scaled by ``intensity`` in [0, 1]."""
    return {k: round(v * intensity, 6) for k, v in EXPRESSIONS[name].items()}
