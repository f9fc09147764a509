"""The registry of body actions: whole-body and locomotion clips plus upper-body (arm) clips.

Upper-body actions drive only the arm bones, clavicle to wrist (``ARM_BONES``), so a
behaviour timeline may layer one over a whole-body action (wave while walking).
"""

from __future__ import annotations

import functools

from hcgym.synthesis.motion.base import Action


@functools.lru_cache(maxsize=1)
def _registry() -> tuple[dict[str, Action], frozenset[str]]:
    from hcgym.synthesis.motion.clips_arms import ARM_ACTIONS
    from hcgym.synthesis.motion.clips_body import BODY_ACTIONS

    clash = set(ARM_ACTIONS) & set(BODY_ACTIONS)
    if clash:
        raise RuntimeError(f"actions registered twice: {sorted(clash)}")
    return {**BODY_ACTIONS, **ARM_ACTIONS}, frozenset(ARM_ACTIONS)


def actions() -> dict[str, Action]:
    """Every body action by name."""
    return _registry()[0]


def upper_body_actions() -> frozenset[str]:
    """Names of the actions that drive only the arms (they may overlap a whole-body action)."""
    return _registry()[1]


def action(name: str) -> Action:
    """The action called ``name`` (KeyError naming the allowed ones otherwise)."""
    table = actions()
    if name not in table:
        raise KeyError(f"unknown action {name!r} (allowed: {', '.join(sorted(table))})")
    return table[name]
