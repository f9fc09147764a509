"""Hands: keypoint sensors that find hands and their 21 points. Registered as ``hands/mediapipe``.

>>> import hcgym.perception as hp
>>> hands = hp.make("hands/mediapipe")      # static images by default; static_image_mode=False tracks
>>> kp = hands(frame)                        # Keypoints, scheme "mediapipe21": (N, 21, 2) pixels, sides
>>> hands.close()

Importing this package does not import MediaPipe: the sensor loads it when it is made.
"""

from __future__ import annotations

from hcgym.perception.registry import register

__all__ = ["HANDS", "register_all"]

#: Registry id of the MediaPipe Hands sensor.
HANDS = "hands/mediapipe"


def register_all() -> None:
    """Register the hand sensors (called by the registry on its first look-up)."""
    register(HANDS, "hcgym.perception.hands.mediapipe:MediaPipeHands", kind="hand keypoints", input="rgb frame",
             output="Keypoints", description="MediaPipe Hands: 21 points per hand and the person's own side")
