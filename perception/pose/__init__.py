"""Body pose: keypoint sensors that find people and their joints. Registered as ``pose/mediapipe``.

>>> import hcgym.perception as hp
>>> pose = hp.make("pose/mediapipe")        # tracks across the frames of one stream; pose.reset() between streams
>>> kp = pose(frame)                         # Keypoints, scheme "mediapipe33": (1, 33, 2) pixels, or 0 rows
>>> pose.close()

Importing this package does not import MediaPipe: the sensor loads it when it is made.
"""

from __future__ import annotations

from hcgym.perception.registry import register

__all__ = ["POSE", "register_all"]

#: Registry id of the MediaPipe Pose sensor.
POSE = "pose/mediapipe"


def register_all() -> None:
    """Register the pose sensors (called by the registry on its first look-up)."""
    register(POSE, "hcgym.perception.pose.mediapipe:MediaPipePose", kind="body keypoints", input="rgb frame",
             output="Keypoints", description="MediaPipe Pose: 33 body points of one person, tracked over a stream")
