"""The evaluation protocol of OpenDR D3.2 section 2.2 (Tables 2 and 3), run in the simulator.

* ``setup1``: the drone starts straight in front of the person at 1, 2, 3, 4, 5, 6, 7, 10, 15 and
  20 m (one-axis env).
* ``setup2``: at 3, 5 and 7 m and at 0, 60, 120, 180, 240 and 300 degrees around the person.

Each cell is the mean over the evaluated avatars (4 by default, never used in training) of the
confidence the agent reaches. **Scoring rule** (the same for every agent): an episode runs for
``steps`` steps and is scored by the confidence of its *last* stay (0 when that stay did not
identify the person correctly, or when the agent never stayed).

Protocol shape (:mod:`hcgym.report`): :func:`run` (an :class:`ActiveFrConfig`) -> results,
:func:`table_markdown`, :func:`figures` (``confidence.png`` and one episode GIF per agent) and
:func:`result_files` (``results.json`` for one agent, ``AGENT/results.json`` for several).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hcgym.agents.base import Agent
from hcgym.errors import SpecError

PROTOCOLS = {
    "setup1": [(d, 0.0) for d in (1, 2, 3, 4, 5, 6, 7, 10, 15, 20)],
    "setup2": [(d, a) for d in (3, 5, 7) for a in (0, 60, 120, 180, 240, 300)],
}
#: The deliverable's Tables 2 and 3 (static, rule-based, proposed PPO), keyed by (distance m, angle deg).
PAPER = {
    "setup1": {(d, 0.0): v for d, v in zip((1, 2, 3, 4, 5, 6, 7, 10, 15, 20), (
        (0.76, 0.77, 0.78), (0.55, 0.77, 0.78), (0.43, 0.78, 0.77), (0.19, 0.76, 0.76), (0, 0.77, 0.77),
        (0, 0.63, 0.75), (0, 0, 0.76), (0, 0, 0.71), (0, 0, 0.68), (0, 0, 0.48)))},
    "setup2": {(d, a): v for d, rows in ((3, ((0.48, 0.77, 0.76), (0.24, 0.32, 0.78), (0, 0, 0.78), (0, 0, 0.76),
                                               (0, 0, 0.79), (0, 0.14, 0.78))),
                                         (5, ((0.18, 0.53, 0.79), (0, 0.32, 0.79), (0, 0, 0.79), (0, 0, 0.77),
                                              (0, 0, 0.78), (0, 0.13, 0.79))),
                                         (7, ((0, 0, 0.78), (0, 0, 0.78), (0, 0, 0.77), (0, 0, 0.76), (0, 0, 0.77),
                                              (0, 0, 0.77))))
               for a, v in zip((0.0, 60.0, 120.0, 180.0, 240.0, 300.0), rows)},
}
PAPER_AGENTS = {"static": 0, "rule": 1, "ppo": 2}
#: Agents the protocol can build by name (:func:`make_agent`).
AGENTS = ("ppo", "rule", "static")
AGENT_NAMES = {"static": "Static", "rule": "Rule-based", "ppo": "PPO"}
#: Held-out avatars: the first ``n`` are the evaluated people, all of them form the gallery pool.
EVAL_AVATARS = tuple(range(400_000, 400_008))
#: Start cell of the recorded episode per protocol (distance m, angle deg).
GIF_START = {"setup1": (5.0, 0.0), "setup2": (3.0, 120.0)}


@dataclass(frozen=True)
class ActiveFrConfig:
    """One run of the protocol.

    Attributes:
        protocol: ``setup1`` or ``setup2``.
        agents: agent names among :data:`AGENTS` (one results entry and table column each).
        avatars: avatar seeds (at least 5: the gallery holds 5); the first ``persons`` are evaluated.
        persons: evaluated avatars per cell.
        steps: steps per episode.
        checkpoint: PPO model ``.zip`` (None: the shipped agent of the protocol's setup).
        trust_checkpoint: load a ``checkpoint`` from outside the package (SB3 zips are pickles, see
            :func:`hcgym.agents.ppo.trusted_checkpoint`).
        sample: PPO samples its actions (seeded, reproducible) instead of taking the most probable one.
        cells: a subset of (distance m, angle deg) start cells (None: the protocol's cells).
        gif_steps: at most this many steps in each agent's recorded episode.
    """

    protocol: str
    agents: tuple[str, ...]
    avatars: tuple[int, ...] = EVAL_AVATARS
    persons: int = 4
    steps: int = 300
    checkpoint: Path | None = None
    trust_checkpoint: bool = False
    sample: bool = False
    cells: tuple[tuple[float, float], ...] | None = None
    gif_steps: int = 120

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise SpecError("protocol", f"unknown protocol {self.protocol!r} (allowed: {', '.join(PROTOCOLS)})")
        bad = [a for a in self.agents if a not in AGENTS]
        if not self.agents or bad or len(set(self.agents)) != len(self.agents):
            raise SpecError("agent", f"expected distinct agents among {', '.join(AGENTS)} (comma-separated), "
                                     f"got {','.join(self.agents)!r}")
        if len(self.avatars) < 5:
            raise SpecError("avatars", f"need at least 5 avatar seeds (the gallery holds 5), got {len(self.avatars)}")
        if self.persons > len(self.avatars):
            raise SpecError("persons", f"{self.persons} is more than the {len(self.avatars)} avatars given")


@dataclass
class Episode:
    confidence: float
    recognised: bool
    frames: list[np.ndarray]
    actions: list[int]


def run_episode(env, agent: Agent, person: int, distance: float, angle: float, steps: int,
                record: bool = False) -> Episode:
    """One protocol episode from a fixed start; scored by the confidence of the last stay."""
    obs, info = env.reset(seed=0, options={"person": person, "distance": distance, "angle": angle,
                                           "heading_index": 0})
    agent.reset()
    last = 0.0
    recognised = False
    frames, actions = [], []
    for _ in range(steps):
        a = agent.act(obs, info)
        obs, r, term, trunc, info = env.step(a)
        actions.append(int(a))
        if record:
            frames.append(env.unwrapped.render_frame())
        if a == 0:
            last = float(r)
            recognised = r > 0
        if term or trunc:
            break
    return Episode(last, recognised, frames, actions)


def evaluate(protocol: str, make_env: Callable[[], Any], agent: Agent, persons: list[int], steps: int = 300,
             progress: bool = False, cells: Sequence[tuple[float, float]] | None = None) -> dict[str, Any]:
    """Mean confidence and recognised fraction per protocol cell over ``persons`` (indices in the env's pool).

    ``cells``: a subset of (distance, angle) start cells (default: the protocol's cells).
    """
    if protocol not in PROTOCOLS:
        raise SpecError("protocol", f"unknown protocol {protocol!r} (allowed: {', '.join(PROTOCOLS)})")
    it = PROTOCOLS[protocol] if cells is None else [(float(d), float(a)) for d, a in cells]
    rows = []
    env = make_env()
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"{protocol} {agent.name}", unit="cell")
    for d, a in it:
        eps = [run_episode(env, agent, p, float(d), float(a), steps) for p in persons]
        rows.append({"distance_m": float(d), "angle_deg": float(a),
                     "confidence": round(float(np.mean([e.confidence for e in eps])), 4),
                     "recognised_fraction": round(float(np.mean([e.recognised for e in eps])), 4)})
    env.close()
    return {"protocol": protocol, "agent": agent.name, "steps": steps, "cells": rows}


def make_agent(name: str, protocol: str, checkpoint: Path | None = None, sample: bool = False,
               trust: bool = False) -> Agent:
    """The named agent for a protocol (PPO: ``checkpoint`` or the shipped agent of that setup, ``trust`` as
    in :meth:`~hcgym.agents.ppo.PPOAgent.load`; ``sample``: actions drawn from the policy with a fixed seed
    instead of its most probable action)."""
    from hcgym.agents import RuleBasedAgent, StaticAgent

    if name == "ppo":
        from hcgym.agents.ppo import PPOAgent, shipped_agent

        return PPOAgent.load(checkpoint if checkpoint is not None else shipped_agent(protocol),
                             deterministic=not sample, trust=trust)
    if name == "rule":
        return RuleBasedAgent(one_axis=protocol == "setup1")
    return StaticAgent()


def run(config: ActiveFrConfig, progress: bool = True) -> dict[str, Any]:
    """Run the protocol for each agent of ``config``.

    Returns ``{"protocol", "agents": [one results dict per agent], "_episodes": {agent: Episode}}`` (the
    recorded episodes are for the figures only).
    """
    import gymnasium as gym

    import hcgym.envs  # noqa: F401 - registers the ids

    one_axis = config.protocol == "setup1"
    env_id = "hcgym/ActiveFaceRecognition" + ("OneAxis" if one_axis else "") + "-v0"
    avatars = tuple(config.avatars)
    results, episodes = [], {}
    for name in config.agents:
        agent = make_agent(name, config.protocol, config.checkpoint, config.sample, config.trust_checkpoint)
        # the agent's own observation size (PPO: its checkpoint's; rule-based: 400x300), else the env's default
        size = {"obs_size": agent.observation_size()} if hasattr(agent, "observation_size") else {}

        def make_env():
            return gym.make(env_id, **size, avatars=avatars, max_steps=config.steps)

        result = evaluate(config.protocol, make_env, agent, list(range(config.persons)), config.steps,
                          progress=progress, cells=config.cells)
        result["avatars"] = list(avatars[:config.persons])
        result["scoring"] = "confidence of the last stay within the episode (0 if not recognised or never stayed)"
        if name == "ppo":
            result["checkpoint"] = str(config.checkpoint) if config.checkpoint is not None \
                else f"shipped ({config.protocol})"
            result["policy"] = "sampled (seed 0, restarted each episode)" if config.sample else "most probable action"
        results.append(result)
        env = make_env()
        d, a = GIF_START[config.protocol]
        episodes[name] = run_episode(env.unwrapped, agent, 0, d, a, min(config.steps, config.gif_steps), record=True)
        env.close()
    return {"protocol": config.protocol, "agents": results, "_episodes": episodes}


def mean_confidence(result: dict[str, Any]) -> float:
    """Mean over the cells of one agent's results."""
    return float(np.mean([c["confidence"] for c in result["cells"]]))


def result_files(results: dict[str, Any]) -> dict[str, bytes]:
    """``results.json`` (one agent) or ``AGENT/results.json`` (several), in :func:`hcgym.report.json_bytes` form."""
    from hcgym.report import json_bytes

    agents = results["agents"]
    return {("results.json" if len(agents) == 1 else f"{r['agent']}/results.json"): json_bytes(r) for r in agents}


def table_markdown(results: dict[str, Any], paper: bool = True) -> str:
    """Tables 2 (setup1) / 3 (setup2) layout: one row per cell, one column per agent, and (``paper``) the
    deliverable's value for the same agent and cell beside it, where the cell is one of the paper's."""
    from hcgym.report import markdown_table

    protocol, agents = results["protocol"], results["agents"]
    ref = PAPER.get(protocol, {}) if paper else {}
    cells = agents[0]["cells"]
    with_paper = [r["agent"] for r in agents if r["agent"] in PAPER_AGENTS
                  and any((c["distance_m"], c["angle_deg"]) in ref for c in cells)]
    head = ["Distance" if protocol == "setup1" else "Distance, angle"]
    for r in agents:
        head.append(AGENT_NAMES.get(r["agent"], r["agent"]))
        if r["agent"] in with_paper:
            head.append(f"{AGENT_NAMES.get(r['agent'], r['agent'])} (paper)")
    rows = []
    for i, cell in enumerate(cells):
        row = [_cell_label(cell, protocol, " m", " m, ", "°")]
        for r in agents:
            row.append(f"{r['cells'][i]['confidence']:.2f}")
            if r["agent"] in with_paper:
                v = ref.get((cell["distance_m"], cell["angle_deg"]))
                row.append("" if v is None else f"{v[PAPER_AGENTS[r['agent']]]:.2f}")
        rows.append(row)
    mean_row = ["**mean**"]
    for r in agents:
        mean_row.append(f"**{mean_confidence(r):.2f}**")
        if r["agent"] in with_paper:
            vals = [ref[(c["distance_m"], c["angle_deg"])][PAPER_AGENTS[r["agent"]]] for c in cells
                    if (c["distance_m"], c["angle_deg"]) in ref]
            mean_row.append(f"{np.mean(vals):.2f}")
    rows.append(mean_row)
    return "\n".join(markdown_table(head, rows)) + "\n"


def _cell_label(cell: dict[str, Any], protocol: str, unit: str, sep: str, deg: str) -> str:
    if protocol == "setup1":
        return f"{cell['distance_m']:g}{unit}"
    return f"{cell['distance_m']:g}{sep}{cell['angle_deg']:g}{deg}"


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """``confidence.png`` (confidence per start cell, a bar per agent) and ``episode_AGENT.gif`` per recorded
    episode with frames."""
    from hcgym.report import gif_bytes, png_bytes, pyplot

    plt = pyplot()
    protocol, agents = results["protocol"], results["agents"]
    fig, ax = plt.subplots(figsize=(7.0, 3.4), dpi=110)
    cells = agents[0]["cells"]
    labels = [_cell_label(c, protocol, "", "m/", "°") for c in cells]
    x = np.arange(len(cells))
    w = 0.8 / len(agents)
    for k, r in enumerate(agents):
        ax.bar(x + (k - (len(agents) - 1) / 2) * w, [c["confidence"] for c in r["cells"]], w, label=r["agent"])
    ax.set_xticks(x, labels, rotation=60 if protocol == "setup2" else 0, fontsize=7)
    ax.set_xlabel("start distance (m)" if protocol == "setup1" else "start distance / angle")
    ax.set_ylabel("face recognition confidence")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = {"confidence.png": png_bytes(fig)}
    for name, ep in results.get("_episodes", {}).items():
        if ep.frames:
            out[f"episode_{name}.gif"] = gif_bytes(ep.frames)
    return out
