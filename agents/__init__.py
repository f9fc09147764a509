"""Policies that act in hcgym environments: ``act(observation, info) -> action``.

* :class:`StaticAgent`, :class:`RuleBasedAgent`: the baselines of OpenDR D3.2 section 2.2.
* :class:`PPOAgent` and :func:`make_ppo`: PPO (stable-baselines3) with the paper's network.
"""

from hcgym.agents.base import Agent
from hcgym.agents.baselines import RuleBasedAgent, StaticAgent

__all__ = ["Agent", "RuleBasedAgent", "StaticAgent", "PPOAgent", "make_ppo"]


def __getattr__(name: str):  # PPO pulls in stable-baselines3 only when used
    if name in ("PPOAgent", "make_ppo"):
        from hcgym.agents import ppo

        return getattr(ppo, name)
    raise AttributeError(name)
