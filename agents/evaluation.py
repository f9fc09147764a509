"""The evaluation protocol of OpenDR D3.2 section 2.2 (Tables 2 and 3), run in the simulator.

* ``setup1``: the drone starts straight in front of the person at 1, 2, 3, 4, 5, 6, 7, 10, 15 and
  20 m (one-axis env).
* ``setup2``: at 3, 5 and 7 m and at 0, 60, 120, 180, 240 and 300 degrees around the person.

Each cell is the mean over the evaluated avatars (4 by default, never used in training) of the
confidence the agent reaches. **Scoring rule** (the same for every agent): an episode runs for
``steps`` steps and is scored by the confidence of its *last* stay (0 when that stay did not
identify the person correctly, or when the agent never stayed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hcgym.agents.base import Agent

PROTOCOLS = {
    "setup1": [(d, 0.0) for d in (1, 2, 3, 4, 5, 6, 7, 10, 15, 20)],
    "setup2": [(d, a) for d in (3, 5, 7) for a in (0, 60, 120, 180, 240, 300)],
}
#: Held-out avatars: the first ``n`` are the evaluated people, all of them form the gallery pool.
EVAL_AVATARS = tuple(range(400_000, 400_008))


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
             progress: bool = False) -> dict[str, Any]:
    """Mean confidence and recognised fraction per protocol cell over ``persons`` (indices in the env's pool)."""
    cells = []
    env = make_env()
    it = PROTOCOLS[protocol]
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"{protocol} {agent.name}", unit="cell")
    for d, a in it:
        eps = [run_episode(env, agent, p, float(d), float(a), steps) for p in persons]
        cells.append({"distance_m": float(d), "angle_deg": float(a),
                      "confidence": round(float(np.mean([e.confidence for e in eps])), 4),
                      "recognised_fraction": round(float(np.mean([e.recognised for e in eps])), 4)})
    env.close()
    return {"protocol": protocol, "agent": agent.name, "steps": steps, "cells": cells}


def table_markdown(results: list[dict[str, Any]], protocol: str) -> str:
    """Tables 2 (setup1) / 3 (setup2) layout: one row per cell, one column per agent."""
    agents = [r["agent"] for r in results]
    head = ["Distance" if protocol == "setup1" else "Distance / angle", *[a.capitalize() for a in agents]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, cell in enumerate(results[0]["cells"]):
        if protocol == "setup1":
            label = f"{cell['distance_m']:g} m"
        else:
            label = f"{cell['distance_m']:g} m, {cell['angle_deg']:g}°"
        lines.append("| " + " | ".join([label, *[f"{r['cells'][i]['confidence']:.2f}" for r in results]]) + " |")
    means = [np.mean([c["confidence"] for c in r["cells"]]) for r in results]
    lines.append("| **mean** | " + " | ".join(f"**{m:.2f}**" for m in means) + " |")
    return "\n".join(lines) + "\n"
