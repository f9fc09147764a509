"""Budgeted face embedding with early exits: :class:`AdaptiveFaceEmbedder` picks the deepest exit of an
IRNet (with fitted :class:`~hcgym.perception.face.exit_fitting.ExitHeads`) whose cost fits a per-frame
budget. See :mod:`hcgym.perception.face.early_exits` for the overview.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hcgym.perception.face.exit_fitting import ExitHeads
from hcgym.perception.face.irnet import IRNet, chips_to_input, flops_per_block


@dataclass
class AdaptiveEmbedding:
    """Result of :meth:`AdaptiveFaceEmbedder.embed`.

    Attributes:
        vectors: (N, M) float64 estimates of the final embeddings.
        exit: 1-based exit number used, or ``None`` for the final layer.
        block: IRNet block index of that exit (``None`` for the final layer).
        level: 0..K-1 for the exits, K for the final layer (larger = deeper).
        flops_per_face: FLOPs per face of the path taken (backbone up to the exit + head).
        fits: whether the chosen path fits the budget (``False`` when even exit 1 does not).
    """

    vectors: np.ndarray
    exit: int | None
    block: int | None
    level: int
    flops_per_face: int
    fits: bool = True


class AdaptiveFaceEmbedder:
    """An IRNet with fitted exit heads that answers within a per-frame compute budget.

    ``embed(chips, budget_flops=, budget_ms=, n_faces=)`` uses the deepest level (exit 1..K with the
    ``method`` head, or the final layer) whose per-face cost times the number of faces fits every
    given budget; with no budget, the final layer. FLOP costs come from FlopCounterMode; millisecond
    costs from :meth:`calibrate_timing`, which times this machine once (machine- and load-dependent).
    """

    def __init__(self, model: IRNet, heads: ExitHeads, method: str = "proposed") -> None:
        self.model = model.eval()
        self.exits = list(heads.exits)
        self.method = method
        self.heads = [h.eval() for h in heads[method]]
        self.all_heads = heads
        fl = flops_per_block(model)
        self.flops_per_face: list[int] = [
            int(fl["cumulative"][k] + h.flops(model.block_hw(k), model.block_hw(k))) for k, h in zip(self.exits, self.heads)
        ] + [int(fl["total"])]
        self.ms_per_face: list[float] | None = None

    @property
    def n_levels(self) -> int:
        return len(self.exits) + 1

    def costs(self) -> list[dict[str, Any]]:
        """Per level: exit number, block, FLOPs per face, fraction of the full network, ms per face (if calibrated)."""
        total = self.flops_per_face[-1]
        out = []
        for lv in range(self.n_levels):
            final = lv == len(self.exits)
            out.append({"level": lv, "exit": None if final else lv + 1, "block": None if final else self.exits[lv],
                        "flops_per_face": self.flops_per_face[lv], "fraction": self.flops_per_face[lv] / total,
                        "ms_per_face": None if self.ms_per_face is None else self.ms_per_face[lv]})
        return out

    def choose(self, n_faces: int, budget_flops: float | None = None, budget_ms: float | None = None) -> tuple[int, bool]:
        """(level, fits): the deepest level whose cost x ``n_faces`` fits the budgets; level 0 if none fits."""
        if budget_ms is not None and self.ms_per_face is None:
            self.calibrate_timing()
        n = max(int(n_faces), 1)
        for lv in reversed(range(self.n_levels)):
            ok = budget_flops is None or self.flops_per_face[lv] * n <= budget_flops
            ok = ok and (budget_ms is None or self.ms_per_face[lv] * n <= budget_ms)  # type: ignore[index]
            if ok:
                return lv, True
        return 0, False

    @torch.no_grad()
    def embed_level(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """(N, 3, S, S) normalised input -> (N, M) at ``level`` (0..K-1 exits, K final)."""
        if level == len(self.exits):
            return self.model(x)
        return self.heads[level](self.model.forward_to(x, self.exits[level]))

    def embed(self, chips: np.ndarray, budget_flops: float | None = None, budget_ms: float | None = None,
              n_faces: int | None = None) -> AdaptiveEmbedding:
        """(N, S, S, 3) uint8 aligned chips -> :class:`AdaptiveEmbedding` within the per-frame budget.

        ``n_faces`` (default ``len(chips)``) is the number of faces the budget must cover this frame.
        """
        x = torch.from_numpy(chips_to_input(chips, self.model.input_size))
        lv, fits = self.choose(len(x) if n_faces is None else n_faces, budget_flops, budget_ms)
        vecs = self.embed_level(x, lv).double().numpy() if len(x) else np.zeros((0, self.model.embedding_dim))
        final = lv == len(self.exits)
        return AdaptiveEmbedding(vecs, None if final else lv + 1, None if final else self.exits[lv], lv,
                                 self.flops_per_face[lv], fits)

    @torch.no_grad()
    def calibrate_timing(self, batch: int = 4, repeats: int = 20, seed: int = 0) -> list[float]:
        """Median ms per face of each level on this machine (interleaved runs, batch ``batch``).

        Stored in ``self.ms_per_face``. Wall-clock numbers depend on the CPU, thread count and load.
        """
        g = torch.Generator().manual_seed(int(seed))
        s = self.model.input_size
        x = torch.rand(batch, 3, s, s, generator=g) * 2 - 1
        times: list[list[float]] = [[] for _ in range(self.n_levels)]
        for lv in range(self.n_levels):  # warm-up
            self.embed_level(x, lv)
        for _ in range(int(repeats)):
            for lv in range(self.n_levels):
                t = time.perf_counter()
                self.embed_level(x, lv)
                times[lv].append((time.perf_counter() - t) * 1e3 / batch)
        self.ms_per_face = [float(np.median(t)) for t in times]
        return self.ms_per_face

    # -- files
    def save(self, checkpoint: str | Path, heads_path: str | Path, extra_meta: dict[str, Any] | None = None) -> None:
        """Write the IRNet checkpoint (``save_checkpoint``) and the heads (``ExitHeads.save``)."""
        from hcgym.perception.face.irnet import save_checkpoint

        save_checkpoint(self.model, checkpoint, {"exits": self.exits}, extra_meta)
        self.all_heads.save(heads_path)

    @classmethod
    def load(cls, checkpoint: str | Path, heads_path: str | Path, method: str = "proposed") -> "AdaptiveFaceEmbedder":
        from hcgym.perception.face.irnet import load_checkpoint

        model = load_checkpoint(checkpoint)[0]
        return cls(model, ExitHeads.load(heads_path), method)
