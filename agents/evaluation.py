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
             progress: bool = False, cells: list[tuple[float, float]] | None = None) -> dict[str, Any]:
    """Mean confidence and recognised fraction per protocol cell over ``persons`` (indices in the env's pool).

    ``cells``: a subset of (distance, angle) start cells (default: the protocol's cells).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    it = PROTOCOLS[protocol] if cells is None else [(float(d), float(a)) for d, a in cells]
    cells = []
    env = make_env()
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


def table_markdown(results: list[dict[str, Any]], protocol: str, paper: bool = True) -> str:
    """Tables 2 (setup1) / 3 (setup2) layout: one row per cell, one column per agent, and (``paper``) the
    deliverable's value for the same agent and cell beside it, where the cell is one of the paper's."""
    agents = [r["agent"] for r in results]
    names = {"static": "Static", "rule": "Rule-based", "ppo": "PPO"}
    ref = PAPER.get(protocol, {}) if paper else {}
    cells = results[0]["cells"]
    with_paper = [a for a in agents if a in PAPER_AGENTS and any((c["distance_m"], c["angle_deg"]) in ref
                                                                   for c in cells)]
    head = ["Distance" if protocol == "setup1" else "Distance, angle"]
    for a in agents:
        head.append(names.get(a, a))
        if a in with_paper:
            head.append(f"{names.get(a, a)} (paper)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, cell in enumerate(cells):
        if protocol == "setup1":
            label = f"{cell['distance_m']:g} m"
        else:
            label = f"{cell['distance_m']:g} m, {cell['angle_deg']:g}°"
        row = [label]
        for r in results:
            row.append(f"{r['cells'][i]['confidence']:.2f}")
            if r["agent"] in with_paper:
                v = ref.get((cell["distance_m"], cell["angle_deg"]))
                row.append("" if v is None else f"{v[PAPER_AGENTS[r['agent']]]:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    mean_row = ["**mean**"]
    for r in results:
        mean_row.append(f"**{np.mean([c['confidence'] for c in r['cells']]):.2f}**")
        if r["agent"] in with_paper:
            vals = [ref[(c["distance_m"], c["angle_deg"])][PAPER_AGENTS[r["agent"]]] for c in cells
                    if (c["distance_m"], c["angle_deg"]) in ref]
            mean_row.append(f"{np.mean(vals):.2f}")
    lines.append("| " + " | ".join(mean_row) + " |")
    return "\n".join(lines) + "\n"
