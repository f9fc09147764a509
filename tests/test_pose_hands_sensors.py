"""MediaPipe Pose and Hands as registered sensors, scored on frames of living worlds.

Pose: the shipped ``greeting`` world at t = 4 s (a person waving in front of the robot's camera), scored
with PCK@0.2 against the visible ground-truth NTU joints. Hands: a person holding up an open right hand
(``gesture_raise`` + ``five``) 0.6 m in front of a camera, scored point for point against the ground-truth
hand. Empty images give 0 rows; the registry makes both sensors.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import hcgym.perception as hp
from hcgym.errors import DependencyNotInstalled, SpecError
from hcgym.types import KEYPOINT_SCHEMES, VISIBLE, Keypoints
from hcgym.worlds import WorldSpec, load_world

#: A person holding up an open right hand; the camera 0.6 m in front of them, level with the hand.
HAND_WORLD = {
    "name": "hand",
    "room": {"size": [8.0, 8.0], "walls": False},
    "lights": [{"direction": [0.3, 0.4, -1.0]}],
    "humans": [{
        "name": "presenter", "avatar": {"seed": 3}, "position": [0.0, 0.6], "heading": -90,
        "behaviour": [{"action": "gesture_raise", "start": 0.0, "duration": 3.0, "hand": "right"}],
        "gesture": [{"gesture": "five", "hand": "right", "start": 0.0, "duration": 3.0}],
    }],
    "robots": [{"name": "cam", "body": "none", "position": [-0.2, 0.0, 1.35], "yaw": 90,
                "cameras": [{"name": "front", "width": 320, "height": 240, "hfov": 60, "near": 0.02}]}],
}


def render(world: WorldSpec, t: float):
    from hcgym.envs.backends import make_backend

    with make_backend("embedded", world=world) as sim:
        sim.load(world, seed=0)
        sim.set_time(t)
        return sim.render()


@pytest.fixture(scope="module")
def greeting_frame():
    return render(load_world("greeting"), 4.0)


@pytest.fixture(scope="module")
def hand_frame():
    return render(WorldSpec.from_dict(copy.deepcopy(HAND_WORLD), "hand.yaml"), 1.5)


@pytest.fixture(scope="module")
def pose():
    sensor = hp.make("pose/mediapipe")
    yield sensor
    sensor.close()


@pytest.fixture(scope="module")
def hands():
    sensor = hp.make("hands/mediapipe")
    yield sensor
    sensor.close()


def pck(kp: Keypoints, skeleton: np.ndarray, alpha: float = 0.2) -> tuple[float, int]:
    """PCK@alpha of row 0 over the visible ground-truth joints the scheme maps (threshold: alpha x torso
    diameter, left shoulder to right hip) and how many joints were scored."""
    from hcgym.synthesis.motion.skeleton import NTU_JOINTS

    gt = {name: skeleton[NTU_JOINTS.index(name)] for name in NTU_JOINTS}
    torso = np.linalg.norm(gt["left_shoulder"][:2] - gt["right_hip"][:2])
    hits = [np.linalg.norm(kp.points[0, i] - gt[name][:2]) <= alpha * torso
            for i, name in KEYPOINT_SCHEMES[kp.scheme].items() if gt[name][2] == VISIBLE]
    return float(np.mean(hits)), len(hits)


# ------------------------------------------------------------------------------------ pose
def test_pose_finds_the_person_and_its_joints(pose, greeting_frame):
    pose.reset()
    kp = pose(greeting_frame)
    assert isinstance(kp, Keypoints) and kp.scheme == "mediapipe33" and len(kp) == 1
    assert kp.points.shape == (1, 33, 2) and kp.scores.shape == (1, 33) and kp.world.shape == (1, 33, 3)
    assert kp.sides == [None] and np.all((kp.scores >= 0) & (kp.scores <= 1))
    lo, hi = kp.points[0].min(axis=0), kp.points[0].max(axis=0)
    assert np.allclose(kp.boxes[0], np.clip([*lo, *hi], 0, [320, 240, 320, 240]))
    score, n = pck(kp, greeting_frame.humans[0].motion.skeleton)
    assert n >= 8 and score >= 0.8, (score, n)
    # "left" is the person's own left: the person faces the camera, so their left shoulder is on the image right
    assert kp.points[0, 11, 0] > kp.points[0, 12, 0]


def test_pose_tracks_a_stream_and_resets(pose, greeting_frame):
    pose.reset()
    first = pose(greeting_frame)
    again = pose(greeting_frame.rgb)  # a Frame or its image; the second call tracks
    assert len(first) == len(again) == 1
    assert np.abs(first.points - again.points).max() < 10
    pose.reset()
    assert len(pose(np.zeros((240, 320, 3), np.uint8))) == 0  # a new stream: nothing tracked over


# ------------------------------------------------------------------------------------ hands
def test_hands_find_the_presented_right_hand(hands, hand_frame):
    gt = hand_frame.humans[0].motion.hand_keypoints[1]  # the right hand (left first)
    assert hand_frame.humans[0].motion.gestures["right"] == "five"
    kp = hands(hand_frame)
    assert kp.scheme == "mediapipe21" and len(kp) >= 1
    assert kp.points.shape == (len(kp), 21, 2) and kp.world.shape == (len(kp), 21, 3)
    assert kp.scores.shape == (len(kp), 21) and np.all(kp.scores == kp.scores[:, :1]) and kp.scores[0, 0] > 0.5
    size = float(np.max(gt[:, :2].max(axis=0) - gt[:, :2].min(axis=0)))  # hand size: longer side of its box
    errors = [float(np.linalg.norm(p - gt[:, :2], axis=1).mean()) for p in kp.points]
    best = int(np.argmin(errors))
    assert errors[best] < 0.25 * size, (errors, size)
    assert kp.sides[best] == "right"  # MediaPipe says "Left" (mirrored); the sensor gives the person's own hand
    x0, y0, x1, y1 = kp.boxes[best]
    assert x0 < gt[:, 0].mean() < x1 and y0 < gt[:, 1].mean() < y1


def test_empty_image_gives_no_rows(pose, hands):
    pose.reset()
    for sensor, k in ((pose, 33), (hands, 21)):
        kp = sensor(np.full((240, 320, 3), 200, np.uint8))
        assert len(kp) == 0 and kp.points.shape == (0, k, 2) and kp.scores.shape == (0, k)
        assert kp.boxes.shape == (0, 4) and kp.sides == []


# ------------------------------------------------------------------------------------ registry, options, close
def test_registry_makes_both_sensors():
    for id, kind, cls in (("pose/mediapipe", "body keypoints", "MediaPipePose"),
                          ("hands/mediapipe", "hand keypoints", "MediaPipeHands")):
        s = hp.spec(id)
        assert (s.kind, s.input, s.output, s.onnx) == (kind, "rgb frame", "Keypoints", None)
        sensor = hp.make(id, min_detection_confidence=0.4)
        try:
            assert type(sensor).__name__ == cls and sensor.name == id and sensor.min_detection_confidence == 0.4
        finally:
            sensor.close()
        sensor.close()  # twice is harmless
        assert sensor.closed
        with pytest.raises(RuntimeError, match="closed"):
            sensor(np.zeros((8, 8, 3), np.uint8))
    for id, static in (("pose/mediapipe", False), ("hands/mediapipe", True)):
        with hp.make(id) as sensor:
            assert sensor.static_image_mode is static
        assert sensor.closed


def test_bad_options_name_the_option():
    with pytest.raises(SpecError, match="model_complexity"):
        hp.make("pose/mediapipe", model_complexity=3)
    with pytest.raises(SpecError, match="model_complexity"):
        hp.make("hands/mediapipe", model_complexity=2)
    from hcgym.perception.pose.mediapipe import landmark_model_path

    if not landmark_model_path(2).is_file():  # not in the wheel: refused, never downloaded
        with pytest.raises(DependencyNotInstalled, match="model_complexity=2 needs pose_landmark_heavy"):
            hp.make("pose/mediapipe", model_complexity=2)
        assert not landmark_model_path(2).exists()
    with pytest.raises(SpecError, match="max_num_hands"):
        hp.make("hands/mediapipe", max_num_hands=0)
    with pytest.raises(SpecError, match="min_detection_confidence"):
        hp.make("pose/mediapipe", min_detection_confidence=1.5)
    with hp.make("hands/mediapipe") as hands, pytest.raises(SpecError, match="image"):
        hands(np.zeros((8, 8), np.uint8))
