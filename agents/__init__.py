"""Policies that act in hcgym environments: ``act(observation, info) -> action``.

* :class:`StaticAgent`, :class:`RuleBasedAgent`: the baselines of OpenDR D3.2 section 2.2.
* :class:`PPOAgent` and :func:`make_ppo`: PPO (stable-baselines3) with the paper's network.
* :class:`SynthesizedViewAgent`: section 2.4's Algorithm 1 (with :class:`OracleMoveAgent`, :class:`RecogniseAgent`).

Their evaluation protocols (Tables 2, 3 and 8) are in :mod:`hcgym.agents.evaluation`.
"""

from hcgym.agents.base import Agent
from hcgym.agents.baselines import RuleBasedAgent, StaticAgent
from hcgym.agents.synthesized_view import OracleMoveAgent, RecogniseAgent, SynthesizedViewAgent

__all__ = ["Agent", "RuleBasedAgent", "StaticAgent", "PPOAgent", "make_ppo", "SynthesizedViewAgent", "OracleMoveAgent",
           "RecogniseAgent"]


def __getattr__(name: str):  # PPO pulls in stable-baselines3 only when used
    if name in ("PPOAgent", "make_ppo"):
        from hcgym.agents import ppo

        return getattr(ppo, name)
    raise AttributeError(name)
