"""The embedded PyBullet backend: determinism, RGB order, depth, segmentation and ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from hcgym.envs.backends import make_backend
from hcgym.envs.backends.base import CameraPose
from hcgym.errors import SpecError
from hcgym.types import OCCLUDED, VISIBLE
from hcgym.worlds import WorldSpec, load_world

RANDOM_WORLD = {
    "name": "random_pair",
    "room": {"size": [10, 10]},
    "humans": [{"avatar": "random", "position": [0.0, 1.0], "heading": -90},
               {"avatar": "random", "position": [1.2, 2.5], "heading": -120, "pose": "wave"}],
    "robots": [{"name": "cam", "position": [0.0, -2.0, 1.5], "yaw": 90,
                "cameras": [{"name": "c", "width": 160, "height": 120}]}],
}


def _render(seed: int) -> np.ndarray:
    with make_backend("embedded") as sim:
        sim.load(WorldSpec.from_dict(RANDOM_WORLD, "random_pair"), seed=seed)
        return sim.render().rgb


def test_same_seed_gives_identical_rgb_bytes_and_other_seed_differs():
    a, b, c = _render(11), _render(11), _render(12)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_frame_types_and_rgb_order():
    world = load_world("active_face_room")
    with make_backend("embedded") as sim:
        sim.load(world)
        f = sim.render()
    assert f.rgb.dtype == np.uint8 and f.rgb.shape == (300, 400, 3)
    assert f.depth.dtype == np.float32 and f.segmentation.dtype == np.int32
    # Pixels where nothing was hit show the world's background colour, in RGB order.
    empty = ~np.isfinite(f.depth)
    assert empty.any()
    expected = np.round(np.asarray(world.background) * 255).astype(np.uint8)
    assert (f.rgb[empty] == expected).all()
    assert (f.segmentation[empty] == 0).all()
    # The person is in view: segmentation id 1, depth about 2 m (drone 2 m in front).
    person = f.segmentation == 1
    assert person.sum() > 500
    assert 1.6 < np.median(f.depth[person]) < 2.4
    assert f.humans[0].bbox is not None and f.humans[0].pixels == int(person.sum())


def test_depth_at_nose_tip_matches_camera_distance(studio_portraits):
    for i, f in studio_portraits:
        h = f.humans[i]
        u, v, vis = h.face_landmarks[2]  # nose tip
        assert vis == VISIBLE
        true = np.linalg.norm(h.face_landmarks_3d[2] - f.camera_position)
        assert abs(float(f.depth[int(v), int(u)]) - true) < 0.05


def test_visible_keypoints_fall_inside_the_avatar_mask(studio):
    from hcgym.synthesis.studio import portrait_pose, show_only

    n_visible = n_occluded = 0
    for i, h in enumerate(studio.humans[:10]):
        show_only(studio, i)
        for yaw in (0.0, 70.0, 180.0):
            f = studio.render(pose=portrait_pose(h.avatar, 3.0, yaw, target="body"))
            kp = f.humans[i].keypoints
            for u, v, vis in kp:
                if vis == VISIBLE:
                    n_visible += 1
                    assert f.segmentation[int(v), int(u)] == i + 1
                elif vis == OCCLUDED:
                    n_occluded += 1
            if yaw == 0.0:
                assert (kp[:, 2] == VISIBLE).sum() >= 13  # frontal full body: nearly all joints visible
    # Side and back views hide some joints (the far ear, the face from behind).
    assert n_occluded > 10 and n_visible > 200


def test_crowd_has_partial_occlusion_and_depth_ordering(crowd):
    f = crowd.render()
    assert len(f.humans) >= 12
    visible = [h for h in f.humans if h.pixels > 0]
    assert len(visible) >= 12
    dists = sorted(h.distance for h in visible)
    assert dists[-1] - dists[0] > 8.0
    occluded_kp = sum(int((h.keypoints[:, 2] == OCCLUDED).sum()) for h in visible)
    assert occluded_kp > 5
    # Somebody is partly hidden: the visible box is clearly smaller than the amodal box.
    partial = [h for h in visible if (h.bbox[3] - h.bbox[1]) < 0.8 * (h.bbox_amodal[3] - h.bbox_amodal[1])]
    assert partial


def test_moving_a_human_moves_its_ground_truth():
    with make_backend("embedded") as sim:
        sim.load(load_world("active_face_room"))
        before = sim.render().humans[0]
        assert abs(before.face_yaw) < 5
        sim.set_human_pose("person", position=(0.0, 1.0), heading=0.0)  # 1 m further, turned 90 degrees
        after = sim.render().humans[0]
        assert after.distance == pytest.approx(before.distance + 1.0, abs=0.1)
        assert abs(abs(after.face_yaw) - 90) < 5
        with pytest.raises(SpecError, match="nobody"):
            sim.set_human_pose("nobody", position=(0, 0))


def test_camera_pose_override_and_robot_move():
    with make_backend("embedded") as sim:
        sim.load(load_world("active_face_room"))
        h = sim.humans[0]
        eyes = (h.avatar.face_points["left_eye"] + h.avatar.face_points["right_eye"]) / 2
        eyes_world = h.transform[:3, :3] @ eyes + h.transform[:3, 3]
        f = sim.render(pose=CameraPose.from_angles(eyes_world + (0.0, -1.0, 0.0), 90.0, 0.0))
        assert f.humans[0].distance == pytest.approx(1.0, abs=1e-6)
        mount = 0.18  # the camera sits 0.18 m in front of the drone's centre
        sim.set_robot_pose("drone", position=eyes_world + (0.0, -5.0 - mount, 0.0), yaw=90.0)
        g = sim.render()
        assert g.humans[0].distance == pytest.approx(5.0, abs=1e-6)
        assert g.humans[0].pixels < f.humans[0].pixels


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(SpecError, match="allowed: embedded, webots"):
        make_backend("gazebo")
