"""Every registered hcgym env (after Gymnasium's ``tests/envs/test_envs.py``).

Each id gets ``check_env``, a same-seed determinism rollout, a pickle taken mid-episode whose copy steps
exactly like the original, a 4-env ``SubprocVecEnv`` and a run on the Webots backend driven by the fake
``controller`` of ``tests/support/webots_fakes.py``. A new env joins by registering its id; give it a small
configuration in :data:`SMALL` if its defaults are slow.
"""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest

import hcgym.envs  # noqa: F401 - registers the ids
from hcgym.errors import SpecError

IDS = sorted(i for i in gym.registry if i.startswith("hcgym/"))
AFR = {"obs_size": (48, 36), "avatars": (300_000, 300_001, 300_002, 300_003, 300_004), "max_steps": 40,
       "recognition_size": (160, 120)}
#: Small configurations per id (others run with their defaults).
SMALL = {
    "hcgym/ActiveFaceRecognition-v0": AFR,
    "hcgym/ActiveFaceRecognitionOneAxis-v0": AFR,
    "hcgym/ActiveFaceRecognitionPan-v0": {"avatars": (300_010, 300_011), "max_steps": 6},
}
#: Options that start episodes where something happens (a face is recognisable).
OPTIONS = {"hcgym/ActiveFaceRecognition-v0": {"distance": 1.2, "angle": 0.0},
           "hcgym/ActiveFaceRecognitionOneAxis-v0": {"distance": 1.2}}


def test_every_env_is_here():
    assert len(IDS) >= 3 and "hcgym/ActiveFaceRecognitionPan-v0" in IDS


def _small(env_id: str, **extra):
    kw = dict(SMALL.get(env_id, {}))
    if env_id.endswith("Pan-v0"):
        from hcgym.synthesis.multiview import MultiViewSettings

        kw["settings"] = MultiViewSettings(pans=(-30, -15, 0, 15, 30), tilts=(-15, 0, 15), size=(160, 120))
    kw.update(extra)
    return kw


def _actions(env, n: int, seed: int) -> list[int]:
    """``n`` actions that keep the episode going (the first action of the Pan env ends it: avoid it)."""
    rng = np.random.default_rng(seed)
    lo = 1 if env.unwrapped.spec.id.endswith("Pan-v0") else 0
    return [int(rng.integers(lo, env.action_space.n)) for _ in range(n)]


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, **_small(env_id))
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def _rollout(env_id: str, seed: int, actions: list[int]):
    env = gym.make(env_id, **_small(env_id))
    obs, _ = env.reset(seed=seed, options=OPTIONS.get(env_id))
    out, rewards = [obs], []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        out.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    env.close()
    return np.stack(out), rewards


@pytest.mark.slow
@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_rollout(env_id):
    env = gym.make(env_id, **_small(env_id))
    actions = [0, *_actions(env, 8, 1)]
    env.close()
    a, b = _rollout(env_id, 4, actions), _rollout(env_id, 4, actions)
    assert a[0].tobytes() == b[0].tobytes() and a[1] == b[1]


@pytest.mark.parametrize("env_id", IDS)
def test_pickle_mid_episode_steps_like_the_original(env_id):
    env = gym.make(env_id, **_small(env_id)).unwrapped
    env.reset(seed=2, options=OPTIONS.get(env_id))
    for a in _actions(env, 3, 2):
        env.step(a)
    copy = pickle.loads(pickle.dumps(env))
    later = _actions(env, 5, 3)
    if env_id in OPTIONS:
        later = [0, *later, 0]  # recognise: the reward needs the rebuilt gallery
    for a in later:
        o1, r1, t1, u1, i1 = env.step(a)
        o2, r2, t2, u2, i2 = copy.step(a)
        assert np.array_equal(o1, o2) and (r1, t1, u1) == (r2, t2, u2) and i1 == i2
        if t1 or u1:
            break
    env.close()
    copy.close()


@pytest.mark.slow
@pytest.mark.parametrize("env_id", IDS)
def test_four_envs_in_subproc_vec_env(env_id):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # "module:id" makes each worker process import hcgym.envs (and so register the ids) first.
    vec = make_vec_env(f"hcgym.envs:{env_id}", n_envs=4, seed=0, vec_env_cls=SubprocVecEnv,
                       env_kwargs=_small(env_id))
    obs = vec.reset()
    assert obs.shape == (4, *vec.observation_space.shape)
    obs, rewards, dones, infos = vec.step(np.ones(4, dtype=int))
    assert obs.shape[0] == 4 and len(infos) == 4 and rewards.dtype.kind == "f"
    vec.close()


@pytest.mark.filterwarnings("ignore:.*render_mode")
@pytest.mark.parametrize("env_id", IDS)
def test_unknown_backend_and_render_mode_are_refused_at_construction(env_id):
    with pytest.raises(SpecError, match="backend"):
        gym.make(env_id, **_small(env_id, backend="gazebo"))
    with pytest.raises(SpecError, match="render_mode"):
        gym.make(env_id, **_small(env_id), render_mode="ansi")


# ---------------------------------------------------------------------------- Webots (fake controller)
class StubPipeline:
    """A face pipeline that 'finds' a face in every image: an embedding from the image's colours."""

    def embed(self, image, keypoints: bool = True):
        img = np.asarray(getattr(image, "rgb", image), dtype=np.float64)
        v = np.array([img[..., c].mean() for c in range(3)] + [img.std(), 1.0])
        return v, np.array([0.0, 0.0, img.shape[1], img.shape[0]])


@pytest.mark.parametrize("env_id", IDS)
def test_webots_backend_with_the_fake_controller(env_id, monkeypatch, tmp_path):
    from support.webots_fakes import install_fake_webots

    env = gym.make(env_id, **_small(env_id, backend="webots")).unwrapped
    world = env.make_world()
    if world is None:
        pytest.fail(f"{env_id} has no world in its default mode")
    mod = install_fake_webots(monkeypatch, world, tmp_path / "webots")
    env._pipeline = StubPipeline()
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and env.sim.name == "webots"
    sup = env.sim._sup
    light = sup.nodes["LIGHT_0"].fields
    for a in _actions(env, 4, 0):
        obs, r, term, trunc, info = env.step(a)
        assert obs.shape == env.observation_space.shape
        # the fake camera's test pattern: R = column (mod 256), B = 7
        assert (obs[..., 2] == 7).all() and (obs[0, :, 0] == np.arange(obs.shape[1]) % 256).all()
    assert sup.steps, "rendering must advance Webots"
    assert all(0.0 <= c <= 1.0 for c in light["color"].value)
    env.close()
    assert mod.Supervisor is not None
