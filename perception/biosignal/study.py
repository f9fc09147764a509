"""The filter study of OpenDR D3.2 §5.1 (Tables 22 and 24) on simulated heartbeats.

Each backbone of :data:`~.backbones.BACKBONES` is trained with and without the Gaussian-derivative filter bank in
front, with the same seeds (paired: the same weight-initialisation seed and the same batches), at every noise
level of ``snr_db`` (``None`` is the clean signal), on beats of people that the test beats never come from.
Per level, backbone and variant the mean and standard deviation over seeds of the Table 22 scores are kept,
the gains (filtered minus plain) per seed, and the widths (σ of g, g', g'') the filter learned.

:func:`run_filter_study` takes the beats from a ``beats(split, snr_db) -> (x, y)`` callable, so the protocol
(:mod:`.protocol`) decides where they come from; :func:`~.protocol.simulated_beats` draws them from the ECG
simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hcgym.errors import SpecError
from hcgym.perception.biosignal.backbones import BACKBONES, count_parameters, make_model
from hcgym.perception.biosignal.training import fit, predict_proba, scores

#: The scores kept per run (the seed's Table 22 columns).
METRICS = ("acc", "f1", "loss", "precision", "recall")

BeatSource = Callable[[str, "float | None"], "tuple[np.ndarray, np.ndarray]"]


@dataclass(frozen=True)
class FilterStudyConfig:
    """What the filter study trains: backbones, noise levels (dB; ``None`` = clean), paired seeds, epochs."""

    backbones: tuple[str, ...] = BACKBONES
    snr_db: tuple[float | None, ...] = (None, 20.0, 10.0, 5.0, 0.0)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 10
    lr: float = 1e-3
    batch: int = 64

    def check(self) -> FilterStudyConfig:
        bad = [b for b in self.backbones if b not in BACKBONES]
        if bad or not self.backbones:
            raise SpecError("backbones", f"unknown or no backbones {bad}; choose from {', '.join(BACKBONES)}")
        if not self.snr_db or any(s is not None and not np.isfinite(s) for s in self.snr_db):
            raise SpecError("snr_db", f"expected noise levels in dB (or None for clean), got {self.snr_db!r}")
        if len(set(self.seeds)) != len(self.seeds) or not self.seeds:
            raise SpecError("seeds", f"expected distinct training seeds, got {self.seeds!r}")
        if self.epochs < 1 or self.batch < 1 or self.lr <= 0:
            raise SpecError("epochs", "epochs, batch and lr must be positive")
        return self


def _summary(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in METRICS:
        v = np.array([r[m] for r in runs], np.float64)
        out[m], out[f"{m}_std"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return out


def train_pair(backbone: str, seed: int, data: dict[str, tuple[np.ndarray, np.ndarray]],
               config: FilterStudyConfig) -> dict[str, Any]:
    """One paired run: ``backbone`` without and with the filter bank, both from ``seed``; their test scores,
    parameter counts and the learned widths."""
    out: dict[str, Any] = {}
    (x, y), (xt, yt) = data["train"], data["test"]
    classes = int(max(y.max(), yt.max()) + 1)
    for variant, filtered in (("plain", False), ("filtered", True)):
        torch.manual_seed(seed)
        model = make_model(backbone, channels=1, length=x.shape[-1], classes=classes, filtered=filtered)
        t0 = time.perf_counter()
        fit(model, x, y, epochs=config.epochs, lr=config.lr, batch=config.batch, seed=seed)
        row = scores(yt, predict_proba(model, xt))
        row.update(params=count_parameters(model), seconds=round(time.perf_counter() - t0, 2))
        if filtered:
            row["sigma"] = [round(float(s), 4) for s in model.filter.sigma.detach()]
        out[variant] = row
    return out


def run_filter_study(beats: BeatSource, config: FilterStudyConfig = FilterStudyConfig(),
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``{"levels": [{"snr_db", "backbones": {B: {"plain", "filtered": summaries, "gain_acc", "gain_f1",
    "gain_acc_per_seed", "gain_f1_per_seed", "sigma", "sigma_std", "wins_acc", "wins_f1", "runs"}}}], "config"}``.

    ``beats(split, snr_db)`` returns ``(x (N, L) float32, y (N,) int64)`` for ``split`` ``train`` or ``test``.
    """
    config = config.check()
    levels = []
    torch.set_num_threads(1)
    for snr in config.snr_db:
        data = {split: beats(split, snr) for split in ("train", "test")}
        per: dict[str, Any] = {}
        for backbone in config.backbones:
            runs = [train_pair(backbone, s, data, config) for s in config.seeds]
            plain, filt = [r["plain"] for r in runs], [r["filtered"] for r in runs]
            ga = [f["acc"] - p["acc"] for p, f in zip(plain, filt)]
            gf = [f["f1"] - p["f1"] for p, f in zip(plain, filt)]
            sig = np.array([f["sigma"] for f in filt])
            per[backbone] = {"plain": _summary(plain), "filtered": _summary(filt),
                             "params": {"plain": plain[0]["params"], "filtered": filt[0]["params"]},
                             "gain_acc": float(np.mean(ga)), "gain_f1": float(np.mean(gf)),
                             "gain_acc_per_seed": ga, "gain_f1_per_seed": gf,
                             "wins_acc": int(sum(g >= 0 for g in ga)), "wins_f1": int(sum(g >= 0 for g in gf)),
                             "sigma": sig.mean(0).round(4).tolist(), "sigma_std": sig.std(0).round(4).tolist(),
                             "runs": runs}
            if progress is not None:
                progress(f"snr {snr} dB, {backbone}: plain acc {per[backbone]['plain']['acc']:.4f}, filtered "
                         f"{per[backbone]['filtered']['acc']:.4f}")
        levels.append({"snr_db": snr, "train": int(len(data["train"][1])), "test": int(len(data["test"][1])),
                       "backbones": per})
    return {"levels": levels, "config": {"backbones": list(config.backbones), "snr_db": list(config.snr_db),
                                         "seeds": list(config.seeds), "epochs": config.epochs, "lr": config.lr,
                                         "batch": config.batch}}


def run_table24(beats: BeatSource, snr_db: float | None, config: FilterStudyConfig,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The seed's Table 24 at one noise level: the slimmed network (``deep-light``, about 0.56 of the
    parameters) with and without the filter bank against the full one (``deep``), from ``config.seeds``:
    ``{"lightweight", "lightweight_filtered", "baseline": summaries, "params": {...}, "gain_f1_over_baseline"}``."""
    config = config.check()
    torch.set_num_threads(1)
    data = {split: beats(split, snr_db) for split in ("train", "test")}
    light = [train_pair("deep-light", s, data, config) for s in config.seeds]
    (x, y), (xt, yt) = data["train"], data["test"]
    base = []
    for s in config.seeds:
        torch.manual_seed(s)
        model = make_model("deep", length=x.shape[-1], classes=int(max(y.max(), yt.max()) + 1))
        fit(model, x, y, epochs=config.epochs, lr=config.lr, batch=config.batch, seed=s)
        base.append({**scores(yt, predict_proba(model, xt)), "params": count_parameters(model)})
    out = {"snr_db": snr_db, "lightweight": _summary([r["plain"] for r in light]),
           "lightweight_filtered": _summary([r["filtered"] for r in light]), "baseline": _summary(base),
           "params": {"lightweight": light[0]["plain"]["params"], "lightweight_filtered": light[0]["filtered"]["params"],
                      "baseline": base[0]["params"]}}
    for m in ("acc", "f1"):
        out[f"gain_{m}_over_baseline"] = out["lightweight_filtered"][m] - out["baseline"][m]
    if progress is not None:
        progress(f"table 24 at {snr_db} dB: lightweight {out['lightweight']['acc']:.4f}, + filter "
                 f"{out['lightweight_filtered']['acc']:.4f}, baseline {out['baseline']['acc']:.4f}")
    return out


__all__ = ["FilterStudyConfig", "METRICS", "run_filter_study", "run_table24", "train_pair"]
