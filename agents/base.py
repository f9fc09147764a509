"""The agent interface shared by learned and hand-written policies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class Agent(ABC):
    """``act(observation, info) -> action``; ``reset()`` at the start of every episode."""

    name = "agent"

    def reset(self) -> None:  # noqa: B027 - stateless agents need nothing
        """Forget the previous episode."""

    @abstractmethod
    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        """The action for this observation (``info`` is the env's last info dict)."""
