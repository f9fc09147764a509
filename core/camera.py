"""Camera poses and the one way hcgym aims a camera at a person.

Conventions (README "Conventions"):

* A :class:`CameraPose` is a position (metres, world frame, z up) and a camera-to-world rotation whose
  columns are the camera's OpenCV axes (x right, y down, z forward).
* :func:`orbit_pose` puts a camera on a sphere around a target point and aims it at the target:

  - ``pan``: the camera's azimuth about the target, in degrees, measured from the direction the person
    faces (``facing``); **positive towards the person's left** (counter-clockwise seen from above). It equals
    :attr:`hcgym.types.HumanTruth.face_yaw` of the rendered face.
  - ``tilt``: the camera's elevation in degrees, **positive above the target** (the camera looks down on
    the face; the face then appears to look up less, i.e. downwards in the image).

  An avatar placed with heading ``h`` faces the world direction ``h`` degrees (a heading of -90 faces -y,
  the pose every studio, portrait and multi-view camera uses).

The named points a face camera aims at live on :class:`hcgym.synthesis.builder.Avatar`
(``eye_midpoint``, ``face_centre``, ``head_centre``), in the avatar's own frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hcgym.geometry import camera_rotation, look_at_angles

__all__ = ["CameraPose", "look_at", "orbit_pose", "orbit_eye"]


@dataclass(frozen=True)
class CameraPose:
    """A camera in the world: position (metres) and camera-to-world rotation (OpenCV axes)."""

    position: np.ndarray
    rotation: np.ndarray

    @classmethod
    def from_angles(cls, position, yaw: float, pitch: float) -> "CameraPose":
        """A camera at ``position`` with ``yaw`` (0 = looking along +x, counter-clockwise) and ``pitch`` (up > 0)."""
        return cls(np.asarray(position, dtype=np.float64), camera_rotation(yaw, pitch))


def look_at(eye, target) -> CameraPose:
    """A level camera (no roll) at ``eye`` looking at ``target`` (both (3,) metres, world frame)."""
    eye = np.asarray(eye, dtype=np.float64)
    return CameraPose.from_angles(eye, *look_at_angles(eye, target))


def orbit_eye(target, pan: float, tilt: float, distance: float, facing: float = -90.0) -> np.ndarray:
    """The (3,) camera position of :func:`orbit_pose`, without the rotation."""
    az, el = math.radians(facing + pan), math.radians(tilt)
    return np.asarray(target, dtype=np.float64) + distance * np.array(
        [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def orbit_pose(target, pan: float = 0.0, tilt: float = 0.0, distance: float = 1.0,
               facing: float = -90.0) -> CameraPose:
    """A camera ``distance`` metres from ``target`` at (``pan``, ``tilt``) degrees, looking at ``target``.

    Args:
        target: (3,) point the camera looks at (metres, world frame), e.g. ``avatar.head_centre``.
        pan: azimuth from the person's facing direction, positive towards the person's left.
        tilt: elevation, positive above the target.
        distance: metres from ``target``.
        facing: the world direction (degrees, 0 = +x) the person faces: pan 0 puts the camera in front.
    """
    eye = orbit_eye(target, pan, tilt, distance, facing)
    return look_at(eye, target)
