"""Fit the early-exit heads of an IRNet: the :class:`ExitHeads` container (tensor file + JSON, nothing
pickled), exit feature extraction (:class:`ExitModel`) and :func:`fit_exit_heads`, which fits every
method's head at every exit. See :mod:`hcgym.perception.face.early_exits` for the overview.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.face.exit_heads import (
    HEAD_TYPES,
    METHODS,
    BoFHead,
    ExitHead,
    LRHead,
    ProposedHead,
    RawHead,
    _chunks,
    _num_threads,
    _progress,
    _subset,
)
from hcgym.perception.face.irnet import IRNet, chips_to_input, choose_exits

HEADS_FORMAT = "hcgym-exit-heads"


# ---------------------------------------------------------------- heads of all exits
class ExitHeads(nn.Module):
    """The heads of every method at every exit: ``heads["proposed"][i]`` is exit ``i``'s (block ``exits[i]``).

    ``save(path)`` writes ``path`` (tensor state_dict) and ``path.json`` (exits + head configs);
    ``ExitHeads.load(path)`` rebuilds them (``torch.load(weights_only=True)``, nothing pickled).
    """

    def __init__(self, exits: Sequence[int], heads: dict[str, Sequence[ExitHead]], meta: dict[str, Any] | None = None):
        super().__init__()
        self.exits = [int(k) for k in exits]
        for m, hs in heads.items():
            if m not in HEAD_TYPES or len(hs) != len(self.exits):
                raise SpecError("heads", f"method {m!r} with {len(hs)} heads (allowed methods {list(HEAD_TYPES)}, "
                                         f"one head per exit {self.exits})")
        self.heads = nn.ModuleDict({m: nn.ModuleList(hs) for m, hs in heads.items()})
        self.meta = dict(meta or {})

    def __getitem__(self, method: str) -> list[ExitHead]:
        if method not in self.heads:
            raise SpecError("method", f"{method!r} not fitted (available: {list(self.heads)})")
        return list(self.heads[method])

    @property
    def methods(self) -> list[str]:
        return list(self.heads)

    def config(self) -> dict[str, Any]:
        return {"format": HEADS_FORMAT, "version": 1, "exits": self.exits,
                "heads": {m: [h.config() for h in hs] for m, hs in self.heads.items()}, "meta": self.meta}

    def save(self, path: str | Path) -> Path:
        from hcgym.paths import atomic_write_bytes

        path = Path(path)
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, buf)
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_bytes(path.with_suffix(path.suffix + ".json"), json.dumps(self.config(), indent=1).encode())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ExitHeads":
        path = Path(path).expanduser()
        jpath = path.with_suffix(path.suffix + ".json")
        if not path.is_file() or not jpath.is_file():
            raise SpecError("heads", f"need {path} and {jpath.name} (written by ExitHeads.save)")
        cfg = json.loads(jpath.read_text())
        if cfg.get("format") != HEADS_FORMAT:
            raise SpecError("heads", f"{jpath} is not an {HEADS_FORMAT} file (format={cfg.get('format')!r})")
        heads = {m: [HEAD_TYPES[c.pop("kind")](**c) for c in (dict(c) for c in hs)] for m, hs in cfg["heads"].items()}
        obj = cls(cfg["exits"], heads, cfg.get("meta"))
        obj.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return obj.eval()


# ---------------------------------------------------------------- feature extraction and fitting
class ExitModel(nn.Module):
    """An IRNet with exits: ``forward(x) -> ([exit maps (N, C_i, H_i, W_i)], embedding (N, M))`` in one pass."""

    def __init__(self, model: IRNet, exits: Sequence[int]) -> None:
        super().__init__()
        self.model, self.exits = model, [int(k) for k in exits]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        return self.model.forward_features(x, self.exits)

    @torch.no_grad()
    def extract(self, chips: np.ndarray, batch_size: int = 128, dtype: torch.dtype = torch.float32,
                progress: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(N, S, S, 3) uint8 aligned chips -> exit maps (stored as ``dtype``) and final embeddings (N, M) float32."""
        was = self.model.training
        self.model.eval()
        n = len(chips)
        maps: list[torch.Tensor] | None = None
        final = torch.empty(n, self.model.embedding_dim)
        bar = _progress(n, "exit features", progress)
        try:
            for s in _chunks(n, batch_size):
                x = torch.from_numpy(chips_to_input(chips[s], self.model.input_size))
                feats, emb = self(x)
                if maps is None:
                    maps = [torch.empty((n, *f.shape[1:]), dtype=dtype) for f in feats]
                for buf, f in zip(maps, feats):
                    buf[s] = f.to(dtype)
                final[s] = emb
                if bar is not None:
                    bar.update(s.stop - s.start)
        finally:
            self.model.train(was)
            if bar is not None:
                bar.close()
        if maps is None:
            raise SpecError("chips", "no chips given")
        return maps, final


def fit_exit_heads(model: IRNet, chips: np.ndarray, exits: Sequence[int] | None = None, n_codewords: int = 512,
                   iterations: int = 2000, seed: int = 0, methods: Sequence[str] = METHODS,
                   max_samples: int | None = 16000, batch_size: int = 32, lr: float = 1e-3, lr_weight: float = 1e-4,
                   ridge: float = 1e-5, max_vectors: int = 20000, kmeans_iters: int = 25,
                   l2_targets: bool = False, lr_bias: bool = False, feature_dtype: torch.dtype = torch.float16,
                   threads: int | None = 1, progress: bool = False) -> ExitHeads:
    """Fit every method's head at every exit of a fixed ``model`` on aligned ``chips`` (N, S, S, 3) uint8.

    ``exits`` defaults to :func:`~hcgym.perception.face.irnet.choose_exits` (22/38/50 % of the FLOPs).
    ``n_codewords`` defaults to the paper's 512; a BoF head costs ``2 N_K (H W C + M)`` FLOPs, which
    on the default 56x56 IRNet is 76 % of the backbone cost of exit 1 (13.4 of 17.6 MFLOPs) for
    N_K = 512 and 9.5 % for N_K = 64 (the paper's ~10 % overhead).
    Up to ``max_samples`` chips (seeded subset) are used for everything; their exit features are kept
    in memory as ``feature_dtype`` (float16 halves it: about 62 KB per chip for the default IRNet).
    Targets are the final embeddings (L2-normalised when ``l2_targets``). The Proposed head starts
    from the fitted BoF head of the same exit (same k-means and sigma), as in the paper. ``lr_bias``
    gives the LR heads an intercept (off by default, as in the paper). ``threads`` sets torch's
    intra-op threads for the whole fit (restored after; ``None`` = leave as is; see
    :meth:`ProposedHead.train_bof` for why one is the default).
    """
    for m in methods:
        if m not in HEAD_TYPES:
            raise SpecError("methods", f"unknown method {m!r} (allowed: {list(HEAD_TYPES)})")
    with _num_threads(threads):
        return _fit_exit_heads(model, chips, exits, n_codewords, iterations, seed, methods, max_samples, batch_size,
                               lr, lr_weight, ridge, max_vectors, kmeans_iters, l2_targets, lr_bias, feature_dtype,
                               progress)


def _fit_exit_heads(model: IRNet, chips: np.ndarray, exits: Sequence[int] | None, n_codewords: int, iterations: int,
                    seed: int, methods: Sequence[str], max_samples: int | None, batch_size: int, lr: float,
                    lr_weight: float, ridge: float, max_vectors: int, kmeans_iters: int, l2_targets: bool,
                    lr_bias: bool, feature_dtype: torch.dtype, progress: bool) -> ExitHeads:
    if exits is None:
        exits = choose_exits(model)[0]
    chips = np.asarray(chips)
    idx = _subset(len(chips), max_samples, seed).numpy()
    maps, targets = ExitModel(model, exits).extract(chips[idx], dtype=feature_dtype, progress=progress)
    if l2_targets:
        targets = nn.functional.normalize(targets, dim=1)
    dim = targets.shape[1]
    common = {"ridge": ridge, "max_samples": None, "max_vectors": max_vectors, "kmeans_iters": kmeans_iters, "seed": seed}
    heads: dict[str, list[ExitHead]] = {m: [] for m in methods}
    for feats in maps:
        c = feats.shape[1]
        if "raw" in heads:
            heads["raw"].append(RawHead(c, dim).fit(feats))
        if "lr" in heads:
            heads["lr"].append(LRHead(c, dim, lr_bias).fit(feats, targets, **common))
        bof = BoFHead(c, dim, n_codewords).fit(feats, targets, **common) if {"bof", "proposed"} & set(heads) else None
        if "bof" in heads:
            heads["bof"].append(bof)
        if "proposed" in heads:
            heads["proposed"].append(ProposedHead(c, dim, n_codewords).fit(
                feats, targets, iterations=iterations, batch_size=batch_size, lr=lr, lr_weight=lr_weight,
                init=bof, progress=progress, threads=None, **common))
    meta = {"n_samples": int(len(idx)), "n_codewords": int(n_codewords), "iterations": int(iterations), "seed": int(seed),
            "l2_targets": bool(l2_targets), "lr_bias": bool(lr_bias), "input_size": model.input_size}
    return ExitHeads(exits, heads, meta).eval()
