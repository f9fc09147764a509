"""Agents for active face recognition: baselines, the paper's PPO policy, and the training command."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import torch

import hcgym.envs  # noqa: F401
from hcgym.agents import RuleBasedAgent, StaticAgent, make_ppo
from hcgym.agents.ppo import PPOAgent
from hcgym.scripts.cli import main

AVATARS = (300_000, 300_001, 300_002, 300_003, 300_004)


def test_static_agent_always_stays_and_rule_agent_turns_to_a_side_face():
    env = gym.make("hcgym/ActiveFaceRecognition-v0", avatars=AVATARS, max_steps=50)
    obs, info = env.reset(seed=0, options={"distance": 1.5, "angle": -40})
    assert StaticAgent().act(obs, info) == 0
    rule = RuleBasedAgent()
    actions = []
    for _ in range(12):
        a = rule.act(obs, info)
        actions.append(a)
        obs, _, _, _, info = env.step(a)
    assert actions[0] in (3, 4)  # an arc towards the frontal view first
    assert abs(info["angle"]) < 40
    env.close()


def test_rule_agent_approaches_while_confidence_rises():
    env = gym.make("hcgym/ActiveFaceRecognitionOneAxis-v0", avatars=AVATARS, max_steps=80)
    obs, info = env.reset(seed=0, options={"distance": 3.0})
    rule = RuleBasedAgent(one_axis=True)
    best = 0.0
    for _ in range(80):
        obs, r, _, trunc, info = env.step(rule.act(obs, info))
        best = max(best, r)
        if trunc:
            break
    assert info["distance"] < 3.0 and best > 0.3


def test_paper_policy_has_the_paper_network():
    env = gym.make("hcgym/ActiveFaceRecognition-v0", avatars=AVATARS, obs_size=(84, 84))
    model = make_ppo(env, n_steps=16, batch_size=16)
    convs = [m for m in model.policy.features_extractor.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(16, (8, 8)), (32, (4, 4))]
    assert model.policy.features_extractor.features_dim == 256
    assert isinstance(model.policy.value_net[-1], torch.nn.Tanh)
    assert model.policy.action_net.out_features == 5
    assert isinstance(model.policy.optimizer, torch.optim.Adam) and model.learning_rate == 3e-4
    env.close()


def test_train_active_fr_command_checkpoints_and_resumes(tmp_path):
    out = tmp_path / "afr"
    args = ["train", "active-fr", "--steps", "32", "--envs", "1", "--obs-size", "48x48", "--episode-steps", "20",
            "--checkpoint-every", "16", "--out", str(out)]
    assert main(args) == 0
    assert (out / "checkpoints" / "last.zip").is_file() and (out / "ppo.zip").is_file()
    assert main([*args[:3], "64", *args[4:], "--resume"]) == 0
    prov = json.loads((out / "PROVENANCE.json").read_text())
    assert prov["steps"] >= 64 and len(prov["chunks"]) == 2
    assert prov["chunks"][0]["command"].startswith("hcgym train active-fr")
    agent = PPOAgent.load(out / "ppo.zip")
    env = gym.make("hcgym/ActiveFaceRecognition-v0", avatars=AVATARS, obs_size=(48, 48))
    obs, info = env.reset(seed=0)
    assert 0 <= agent.act(obs, info) < 5
    env.close()
    assert np.isfinite(prov["reward_scale"])


def test_evaluate_active_fr_writes_results_table_plot_and_gif(tmp_path):
    out = tmp_path / "ev"
    rc = main(["evaluate", "active-fr", "--protocol", "setup1", "--agent", "static", "--steps", "3", "--persons", "1",
               "--avatars", "400000-400004", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["protocol"] == "setup1" and res["agent"] == "static"
    assert [c["distance_m"] for c in res["cells"]] == [1, 2, 3, 4, 5, 6, 7, 10, 15, 20]
    conf = [c["confidence"] for c in res["cells"]]
    assert conf[0] > 0.3 and conf[-1] == 0.0  # recognised at 1 m, not at 20 m
    assert all(c["recognised_fraction"] in (0.0, 1.0) for c in res["cells"])
    assert "| 1 m |" in (out / "table.md").read_text()
    assert (out / "confidence.png").is_file() and (out / "episode_static.gif").is_file()
    assert main(["evaluate", "active-fr", "--protocol", "setup2", "--agent", "ppo", "--out", str(out)]) == 2


def test_ppo_agent_acts_like_sb3_predict():
    env = gym.make("hcgym/ActiveFaceRecognition-v0", avatars=AVATARS, obs_size=(48, 48))
    model = make_ppo(env, n_steps=16, batch_size=16)
    agent = PPOAgent(model)
    rng = np.random.default_rng(0)
    for _ in range(10):
        obs = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        expected, _ = model.predict(obs, deterministic=True)
        assert agent.act(obs, {}) == int(expected)
    env.close()
