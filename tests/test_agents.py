"""Agents for active face recognition: baselines, the paper's PPO policy, and the training command."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import hcgym.envs  # noqa: F401
from hcgym.agents import RuleBasedAgent, StaticAgent, make_ppo
from hcgym.agents.ppo import PPOAgent
from hcgym.errors import SpecError
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_train_active_fr_command_checkpoints_and_resumes(tmp_path):
    out = tmp_path / "afr"
    args = ["train", "active-fr", "--steps", "32", "--envs", "1", "--obs-size", "48x48", "--episode-steps", "20",
            "--checkpoint-every", "16", "--setup", "1", "--headings", "0", "--recognition-range", "1",
            "--out", str(out)]
    assert main(args) == 0
    assert (out / "checkpoints" / "last.zip").is_file() and (out / "ppo.zip").is_file()
    assert main([*args[:3], "64", *args[4:], "--resume"]) == 2  # a pickle from outside the package: refused
    assert main([*args[:3], "64", *args[4:], "--resume", "--trust-checkpoint"]) == 0
    prov = json.loads((out / "PROVENANCE.json").read_text())
    assert prov["steps"] >= 64 and len(prov["chunks"]) == 2
    assert prov["chunks"][0]["command"].startswith("hcgym train active-fr")
    assert prov["env_kwargs"]["headings"] == [0] and len(list((out / "lattice").iterdir())) == 8  # one per avatar
    agent = PPOAgent.load(out / "ppo.zip", trust=True)
    assert agent.observation_size() == (48, 48)
    env = gym.make("hcgym/ActiveFaceRecognitionOneAxis-v0", avatars=AVATARS, obs_size=(48, 48))
    obs, info = env.reset(seed=0)
    assert 0 <= agent.act(obs, info) < 3
    # The slim copy (no Adam moments) is smaller and acts identically.
    slim = PPOAgent.load(out / "agent.zip", trust=True)
    assert (out / "agent.zip").stat().st_size < 0.6 * (out / "ppo.zip").stat().st_size
    np.testing.assert_array_equal(slim.action_probabilities(obs), agent.action_probabilities(obs))
    env.close()
    assert np.isfinite(prov["reward_scale"])


@pytest.mark.slow
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
    assert main(["evaluate", "active-fr", "--protocol", "setup2", "--agent", "ppo,bogus", "--out", str(out)]) == 2
    assert main(["evaluate", "active-fr", "--protocol", "setup2", "--agent", "ppo", "--checkpoint",
                 str(tmp_path / "missing.zip"), "--out", str(out)]) == 2


def test_ppo_agent_acts_like_sb3_predict():
    env = gym.make("hcgym/ActiveFaceRecognition-v0", avatars=AVATARS, obs_size=(48, 48))
    model = make_ppo(env, n_steps=16, batch_size=16)
    agent = PPOAgent(model)
    rng = np.random.default_rng(0)
    for _ in range(10):
        obs = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        expected, _ = model.predict(obs, deterministic=True)
        assert agent.act(obs, {}) == int(expected)
        # The same action distribution as SB3's own preprocessing (images scaled by 1/255 exactly once).
        with torch.no_grad():
            tensor, _ = model.policy.obs_to_tensor(obs)
            probs = model.policy.get_distribution(tensor).distribution.probs[0].numpy()
        np.testing.assert_allclose(agent.action_probabilities(obs), probs, rtol=1e-5, atol=1e-7)
    dark = agent.action_probabilities(np.zeros((48, 48, 3), np.uint8))
    bright = agent.action_probabilities(np.full((48, 48, 3), 255, np.uint8))
    assert not np.allclose(dark, bright, atol=1e-6)  # the policy does see the image
    env.close()


def test_shipped_agents_are_installed_and_recognise_a_held_out_person():
    """The pretrained agents ship as package data; setup 1's approaches from 5 m (static: 0 there)."""
    from hcgym.agents.evaluation.active_fr import EVAL_AVATARS, run_episode
    from hcgym.agents.ppo import shipped_agent

    for protocol in ("setup1", "setup2"):
        path = shipped_agent(protocol)
        assert path.is_file() and path.stat().st_size < 10 * 2 ** 20
        assert (path.parent / f"PROVENANCE_{protocol}.json").is_file()
    agent = PPOAgent.load(shipped_agent("setup1"))
    env = gym.make("hcgym/ActiveFaceRecognitionOneAxis-v0", obs_size=agent.observation_size(), avatars=EVAL_AVATARS)
    ep = run_episode(env.unwrapped, agent, person=1, distance=5.0, angle=0.0, steps=120)
    env.close()
    assert ep.recognised and ep.confidence > 0.2
    assert ep.actions.count(1) >= 10  # it flew forward to get there
    with pytest.raises(SpecError, match="protocol"):
        shipped_agent("setup3")
