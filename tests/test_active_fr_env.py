"""The active face recognition envs: Gymnasium API, determinism, pickling, vectorisation, SB3."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest

import hcgym.envs  # noqa: F401 - registers the ids
from hcgym.errors import SpecError

SMALL = {"obs_size": (48, 36), "avatars": (300_000, 300_001, 300_002, 300_003, 300_004), "max_steps": 40}
IDS = ("hcgym/ActiveFaceRecognition-v0", "hcgym/ActiveFaceRecognitionOneAxis-v0")


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_passes(env_id):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, **SMALL)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def _rollout(env_id, seed, actions):
    env = gym.make(env_id, **SMALL)
    obs, info = env.reset(seed=seed)
    out = [obs]
    rewards = []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append(obs)
        rewards.append(r)
    env.close()
    return np.stack(out), np.asarray(rewards), info


def test_same_seed_same_observations_and_rewards():
    actions = [1, 1, 3, 0, 2, 4, 0, 1, 0, 0]
    a = _rollout(IDS[0], 5, actions)
    b = _rollout(IDS[0], 5, actions)
    assert a[0].tobytes() == b[0].tobytes() and np.array_equal(a[1], b[1])
    c = _rollout(IDS[0], 6, actions)
    assert a[0].tobytes() != c[0].tobytes()


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


def test_pickle_round_trip_gives_the_same_episode():
    env = gym.make(IDS[0], **SMALL).unwrapped
    obs1, _ = env.reset(seed=9)
    clone = pickle.loads(pickle.dumps(env))
    obs2, _ = clone.reset(seed=9)
    assert np.array_equal(obs1, obs2)
    env.close()
    clone.close()


def test_frame_stack_and_bad_arguments():
    env = gym.make(IDS[0], **SMALL, frame_stack=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (36, 48, 9)
    env.close()
    with pytest.raises(SpecError, match="avatars"):
        gym.make(IDS[0], avatars=(1, 2))
    with pytest.raises(SpecError, match="obs_size"):
        gym.make(IDS[0], obs_size=(4, 4))


def test_eight_envs_in_subproc_vec_env_and_sb3_ppo_cnn_policy():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    kwargs = {**SMALL, "obs_size": (64, 64)}
    # "module:id" makes each worker process import hcgym.envs (and so register the ids) first.
    vec = make_vec_env(f"hcgym.envs:{IDS[0]}", n_envs=8, seed=0, vec_env_cls=SubprocVecEnv, env_kwargs=kwargs)
    obs = vec.reset()
    assert obs.shape == (8, 64, 64, 3)
    obs, rewards, dones, infos = vec.step(np.zeros(8, dtype=int))
    assert len(infos) == 8 and all("confidence" in i for i in infos)
    vec.close()
    env = gym.make(IDS[0], **kwargs)
    model = PPO("CnnPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0, verbose=0)
    model.learn(64)
    action, _ = model.predict(env.reset(seed=0)[0])
    assert env.action_space.contains(int(action))
    env.close()


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
