"""The active face recognition envs: reward, actions, truncation, frame stacking, lattices, SB3.

The Gymnasium API checks every env gets (check_env, determinism, pickling, vectorisation, Webots) are in
``tests/test_envs.py``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hcgym.envs  # noqa: F401 - registers the ids
from hcgym.errors import SpecError

SMALL = {"obs_size": (48, 36), "avatars": (300_000, 300_001, 300_002, 300_003, 300_004), "max_steps": 40}
IDS = ("hcgym/ActiveFaceRecognition-v0", "hcgym/ActiveFaceRecognitionOneAxis-v0")


def test_reward_is_the_confidence_of_a_correct_identification():
    env = gym.make(IDS[0], **SMALL)
    env.reset(seed=0, options={"distance": 1.2, "angle": 0})
    _, r, _, _, info = env.step(0)
    assert info["identity"] == info["person"] and 0 < r == info["confidence"] <= 1
    _, r_move, _, _, info = env.step(1)  # moving gives nothing
    assert r_move == 0.0 and info["distance"] == pytest.approx(1.1)
    env.reset(seed=0, options={"distance": 15.0, "angle": 0})
    assert env.step(0)[1] == 0.0  # too far: not recognised
    env.reset(seed=0, options={"distance": 1.2, "angle": 180})
    assert env.step(0)[1] == 0.0  # from behind: no face
    env.close()


def test_one_axis_keeps_the_person_in_front():
    env = gym.make(IDS[1], **SMALL)
    assert env.action_space.n == 3
    _, info = env.reset(seed=3)
    assert info["angle"] == 0.0
    for a in (1, 2, 1, 0):
        _, _, _, _, info = env.step(a)
        assert info["angle"] == 0.0
    env.close()


def test_truncated_after_max_steps_and_render():
    env = gym.make(IDS[0], **{**SMALL, "max_steps": 5}, render_mode="rgb_array")
    env.reset(seed=1)
    flags = [env.step(1)[3] for _ in range(5)]
    assert flags == [False, False, False, False, True]
    assert env.render().shape == (36, 48, 3)
    env.close()


def test_frame_stack_and_bad_arguments():
    env = gym.make(IDS[0], **SMALL, frame_stack=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (36, 48, 9)
    env.close()
    with pytest.raises(SpecError, match="avatars"):
        gym.make(IDS[0], avatars=(1, 2))
    with pytest.raises(SpecError, match="obs_size"):
        gym.make(IDS[0], obs_size=(4, 4))


@pytest.mark.slow
def test_sb3_ppo_cnn_policy_learns_in_the_env():
    from stable_baselines3 import PPO

    env = gym.make(IDS[0], **{**SMALL, "obs_size": (64, 64)})
    model = PPO("CnnPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0, verbose=0)
    model.learn(64)
    action, _ = model.predict(env.reset(seed=0)[0])
    assert env.action_space.contains(int(action))
    env.close()


def test_webots_refuses_video_sizes_it_cannot_render(monkeypatch, tmp_path):
    """Off-camera sizes of ``render_frame`` need a backend that renders any camera model: refused by name."""
    from support.webots_fakes import install_fake_webots

    env = gym.make(IDS[1], **SMALL, backend="webots").unwrapped
    install_fake_webots(monkeypatch, env.make_world(), tmp_path / "w")

    class Stub:
        def embed(self, image, keypoints=True):
            return np.ones(4), None

    env._pipeline = Stub()
    env.reset(seed=0)
    assert env.render_frame().shape == (300, 400, 3)  # the recognition camera
    with pytest.raises(SpecError, match="webots backend cannot render with a camera model"):
        env.render_frame((320, 240))
    env.close()


@pytest.mark.slow
def test_precomputed_lattice_gives_identical_episodes_and_is_used(tmp_path):
    """The on-disk lattice is a cache: the same observations, rewards and infos as rendering on line."""
    from hcgym.envs.lattice import Lattice, build_lattice

    kw = {**SMALL, "max_distance": 2.0, "start_distance": (1.0, 2.0), "arc_step": 30.0}
    path = build_lattice(tmp_path, kw, person=1, heading_index=2, recognition_range=1.5)
    lat = Lattice(path)
    assert lat.obs.shape == (12, 16, 36, 48, 3) and lat.found.shape == (12, 11) and lat.found.any()
    assert build_lattice(tmp_path, kw, person=1, heading_index=2, recognition_range=1.5) == path  # kept as is
    envs = [gym.make(IDS[0], **kw).unwrapped, gym.make(IDS[0], **kw, lattice_dir=str(tmp_path)).unwrapped]
    starts = {"person": 1, "heading_index": 2, "distance": 1.0, "angle": 0}
    rng = np.random.default_rng(3)
    for env in envs:
        env.reset(seed=1, options=starts)
    assert envs[0]._lattice is None and envs[1]._lattice is not None
    total = 0.0
    for a in rng.choice(5, 120, p=[0.4, 0.2, 0.2, 0.1, 0.1]):
        (o0, r0, *_, i0), (o1, r1, *_, i1) = (env.step(int(a)) for env in envs)
        assert o0.tobytes() == o1.tobytes() and r0 == r1 and i0 == i1
        total += r0
    assert total > 0  # the walk did recognise the person
    # A different heading (no lattice for it) falls back to rendering.
    envs[1].reset(seed=1, options={**starts, "heading_index": 3})
    assert envs[1]._lattice is None
    for env in envs:
        env.close()
    with pytest.raises(SpecError, match="lattice_dir"):
        gym.make(IDS[0], **SMALL, lattice_dir=str(tmp_path / "missing"))
    with pytest.raises(SpecError, match="headings"):
        gym.make(IDS[0], **SMALL, headings=(40,))
