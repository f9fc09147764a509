"""Pieces every training loop of the perception package shares: the learning-rate schedule and the
atomic write of a resumable training state."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any


def warmup_cosine(step: int, lr: float, warmup: int, total: int, floor: float = 0.01) -> float:
    """Learning rate at ``step`` of ``total``: a linear warm-up over ``warmup`` steps to ``lr``, then a cosine
    decay to ``floor * lr`` at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return lr * (floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` atomically (a crash never leaves a half-written state to resume from)."""
    import torch

    from hcgym.paths import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(state, buf)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(path), buf.getvalue())
