"""Speed of the active face recognition env and of its agents.

Prints env steps/s (cached vs uncached lattice caches, 84x84 and 400x300 observations,
1 and 2 envs; and a precomputed on-disk lattice, first pass, against rendering) and agent decisions/s (PPO with the paper's network vs the rule-based agent,
which runs a face detector in its loop), with the ratios measured in this run.

    python benchmarks/active_fr.py [--steps 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

AVATARS = (300_000, 300_001, 300_002, 300_003, 300_004)


def _steps_per_s(obs_size, cache: bool, steps: int, n_envs: int = 1) -> float:
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    kwargs = {"obs_size": obs_size, "avatars": AVATARS, "cache_size": 50_000 if cache else 0, "max_steps": 10 ** 9}
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, (steps, n_envs))
    if n_envs == 1:
        env = gym.make("hcgym/ActiveFaceRecognition-v0", **kwargs)
        for _ in range(2 if cache else 1):  # the first pass fills the caches
            env.reset(seed=0)
            t0 = time.perf_counter()
            for a in actions[:, 0]:
                env.step(int(a))
            dt = time.perf_counter() - t0
        env.close()
        return steps / dt
    vec = make_vec_env("hcgym.envs:hcgym/ActiveFaceRecognition-v0", n_envs=n_envs, seed=0,
                       vec_env_cls=SubprocVecEnv, env_kwargs=kwargs)
    for _ in range(2 if cache else 1):
        vec.seed(0)
        vec.reset()
        t0 = time.perf_counter()
        for a in actions:
            vec.step(a)
        dt = time.perf_counter() - t0
    vec.close()
    return steps * n_envs / dt


def _lattice_steps_per_s(steps: int) -> tuple[float, float, float]:
    """(seconds to build one lattice, uncached steps/s, steps/s on the lattice) for a 4 m x 360 degree lattice."""
    import tempfile

    import gymnasium as gym

    from hcgym.envs.lattice import build_lattice

    kwargs = {"obs_size": (84, 84), "avatars": AVATARS, "max_distance": 4.0, "start_distance": (1.0, 4.0),
              "max_steps": 10 ** 9, "cache_size": 0}
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, steps)
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        build_lattice(root, kwargs, person=0, heading_index=0, recognition_range=4.0)
        build_s = time.perf_counter() - t0
        rates = []
        for lattice in (None, root):
            env = gym.make("hcgym/ActiveFaceRecognition-v0", **kwargs, lattice_dir=lattice)
            env.reset(seed=0, options={"person": 0, "heading_index": 0})
            t0 = time.perf_counter()
            for a in actions:
                env.step(int(a))
            rates.append(steps / (time.perf_counter() - t0))
            env.close()
    return build_s, rates[0], rates[1]


def _decisions_per_s(agent, obs_size, n: int) -> float:
    import gymnasium as gym

    env = gym.make("hcgym/ActiveFaceRecognition-v0", obs_size=obs_size, avatars=AVATARS)
    obs, info = env.reset(seed=0, options={"distance": 2.0, "angle": 0})
    agent.act(obs, info)
    t0 = time.perf_counter()
    for _ in range(n):
        agent.act(obs, info)
    env.close()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    import gymnasium as gym

    import hcgym.envs  # noqa: F401
    from hcgym.agents import RuleBasedAgent, make_ppo
    from hcgym.agents.ppo import PPOAgent

    rows = []
    for size in ((84, 84), (400, 300)):
        un = _steps_per_s(size, False, args.steps)
        ca = _steps_per_s(size, True, args.steps)
        rows.append((f"{size[0]}x{size[1]}, 1 env", un, ca))
    un2 = _steps_per_s((84, 84), False, args.steps // 2, 2)
    ca2 = _steps_per_s((84, 84), True, args.steps // 2, 2)
    rows.append(("84x84, 2 envs", un2, ca2))
    print(f"{'env steps/s':28s} {'uncached':>10s} {'cached':>10s} {'cached/uncached':>16s}")
    for name, un, ca in rows:
        print(f"{name:28s} {un:10.1f} {ca:10.1f} {ca / un:15.1f}x")
    build_s, un_l, la = _lattice_steps_per_s(args.steps)
    print(f"{'84x84, on-disk lattice':28s} {un_l:10.1f} {la:10.1f} {la / un_l:15.1f}x   "
          f"(first pass; building the 0.5-4 m x 36-angle lattice took {build_s:.0f} s)")
    env = gym.make("hcgym/ActiveFaceRecognition-v0", obs_size=(84, 84), avatars=AVATARS)
    ppo = PPOAgent(make_ppo(env, n_steps=16, batch_size=16))
    ppo_rate = _decisions_per_s(ppo, (84, 84), 200)
    rule_rate = _decisions_per_s(RuleBasedAgent(), (400, 300), 50)
    env.close()
    print(f"decisions/s: PPO (paper network, 84x84) {ppo_rate:.1f}, rule-based (MediaPipe at 400x300) "
          f"{rule_rate:.1f}; PPO/rule = {ppo_rate / rule_rate:.1f}x")


if __name__ == "__main__":
    main()
