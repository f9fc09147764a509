"""Skeleton layouts of a posed body: NTU RGB+D's 25 Kinect joints, MediaPipe's 21 hand points and the
68-point (iBUG/dlib) face layout, all as 3-D points in the avatar frame."""

from __future__ import annotations

import numpy as np

from hcgym.synthesis.motion.rig import BONE_INDEX, PosedBody

#: The 25 joints of NTU RGB+D (Kinect v2 order); "left" is the person's own left.
NTU_JOINTS: tuple[str, ...] = (
    "spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle",
    "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot", "spine_shoulder", "left_hand_tip",
    "left_thumb", "right_hand_tip", "right_thumb",
)

#: NTU RGB+D bones as pairs of 0-based joint indices (for drawing and graph models).
NTU_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 20), (20, 2), (2, 3), (20, 4), (4, 5), (5, 6), (6, 7), (7, 21), (7, 22), (20, 8), (8, 9),
    (9, 10), (10, 11), (11, 23), (11, 24), (0, 12), (12, 13), (13, 14), (14, 15), (0, 16), (16, 17), (17, 18),
    (18, 19),
)

# Joints that are bone heads.
_HEADS = {
    "spine_base": "spine05", "spine_mid": "spine03", "neck": "neck03", "spine_shoulder": "neck01",
    "left_shoulder": "upperarm01.L", "left_elbow": "lowerarm01.L", "left_wrist": "wrist.L",
    "right_shoulder": "upperarm01.R", "right_elbow": "lowerarm01.R", "right_wrist": "wrist.R",
    "left_hip": "upperleg01.L", "left_knee": "lowerleg01.L", "left_ankle": "foot.L", "left_foot": "toe3-1.L",
    "right_hip": "upperleg01.R", "right_knee": "lowerleg01.R", "right_ankle": "foot.R", "right_foot": "toe3-1.R",
}


def ntu_skeleton(posed: PosedBody) -> np.ndarray:
    """(25, 3) NTU RGB+D joints of a posed body (avatar frame).

    Bone heads where a joint is one; ``head`` is the midpoint of the head bone's head and the eyes;
    ``*_hand`` the midpoint of the wrist and the middle finger's knuckle; ``*_hand_tip`` and ``*_thumb``
    the middle-finger and thumb tips of the 21-point hand.
    """
    heads = posed.heads
    out = np.zeros((len(NTU_JOINTS), 3))
    for i, name in enumerate(NTU_JOINTS):
        if name in _HEADS:
            out[i] = heads[BONE_INDEX[_HEADS[name]]]
    kp = posed.keypoints
    out[NTU_JOINTS.index("head")] = (heads[BONE_INDEX["head"]] + (kp[1] + kp[2]) / 2) / 2
    for side, s in (("left", "L"), ("right", "R")):
        hand = hand_points(posed, side)
        out[NTU_JOINTS.index(f"{side}_hand")] = (heads[BONE_INDEX[f"wrist.{s}"]] + heads[BONE_INDEX[f"finger3-1.{s}"]]) / 2
        out[NTU_JOINTS.index(f"{side}_hand_tip")] = hand[12]
        out[NTU_JOINTS.index(f"{side}_thumb")] = hand[4]
    return out


def hand_points(posed: PosedBody, side: str) -> np.ndarray:
    """(21, 3) hand keypoints in MediaPipe order (see :func:`hcgym.synthesis.motion.hands.hand_keypoints`)."""
    from hcgym.synthesis.motion.hands import hand_keypoints

    return hand_keypoints(posed, side)


def face68(posed: PosedBody) -> np.ndarray:
    """(68, 3) face landmarks in the iBUG/dlib layout (see :func:`hcgym.synthesis.motion.face.face68`)."""
    from hcgym.synthesis.motion.face import face68 as _face68

    return _face68(posed)
