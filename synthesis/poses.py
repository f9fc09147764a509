"""Named body poses as bone rotations.

A pose maps bone names to rotation vectors in **degrees**, expressed in anny's
default ``local-ref`` parameterisation: each rotation turns the bone about its
head, in the world-aligned axes of the reference pose (x = the avatar's left,
y = backwards, z = up), and rotations compose down the kinematic chain. The
reference pose is anny's A-pose (arms about 45 degrees down).
"""

from __future__ import annotations

#: Named poses: bone -> rotation vector (degrees).
POSES: dict[str, dict[str, tuple[float, float, float]]] = {
    "a_pose": {},
    "stand": {
        "upperarm01.L": (0.0, 36.0, 0.0), "upperarm01.R": (0.0, -36.0, 0.0),
        "lowerarm01.L": (-6.0, 0.0, 0.0), "lowerarm01.R": (-6.0, 0.0, 0.0),
    },
    "t_pose": {"upperarm01.L": (0.0, -46.0, 0.0), "upperarm01.R": (0.0, 46.0, 0.0)},
    "arms_up": {
        "upperarm01.L": (0.0, -115.0, 0.0), "upperarm01.R": (0.0, 115.0, 0.0),
        "lowerarm01.L": (0.0, -15.0, 0.0), "lowerarm01.R": (0.0, 15.0, 0.0),
    },
    "wave": {
        "upperarm01.L": (0.0, 36.0, 0.0),
        "upperarm01.R": (0.0, 60.0, 0.0), "lowerarm01.R": (0.0, 75.0, 0.0),
        "wrist.R": (0.0, 10.0, 0.0),
    },
    "point": {
        "upperarm01.L": (0.0, 36.0, 0.0),
        "upperarm01.R": (-80.0, 0.0, 45.0),
    },
}
