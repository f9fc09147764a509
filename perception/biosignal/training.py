"""Training and scoring of series classifiers ``(N, C, L) -> (N, classes)`` (the filter study, NBoF, the ECG
sensor's model).

:func:`fit` trains with Adam (the seed's §5.1 recipe: learning rate 1e-3) on mini-batches drawn from a seeded
generator, so the same seed gives the same weights; :func:`predict_proba` runs a model in evaluation mode;
:func:`scores` gives the seed's Table 22 columns (accuracy, F1, loss, precision, recall): binary problems score
the positive class 1 (the "non-healthy" beats), multi-class ones the unweighted mean over classes (macro F1,
the AF challenge's measure).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from hcgym.errors import SpecError


def _arrays(x: Any, y: Any | None, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or not len(x):
        raise SpecError(name, f"expected series (N, C, L) or (N, L) with N > 0, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise SpecError(name, "the series hold NaN or infinite values")
    if y is None:
        return x, None
    y = np.asarray(y, np.int64)
    if y.shape != (len(x),):
        raise SpecError(name, f"expected {len(x)} labels, got shape {y.shape}")
    return x, y


def predict_proba(model: nn.Module, x: Any, batch: int = 512) -> np.ndarray:
    """(N, classes) class probabilities of ``model`` (evaluation mode) on series ``x``."""
    x, _ = _arrays(x, None, "x")
    was = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(torch.softmax(model(torch.from_numpy(x[i:i + batch])), dim=1).numpy())
    model.train(was)
    return np.concatenate(out).astype(np.float64)


def scores(y: Any, proba: Any) -> dict[str, float]:
    """``acc``, ``f1``, ``precision``, ``recall`` (binary: of class 1; more classes: macro means) and ``loss``
    (mean cross-entropy) of probabilities ``proba`` (N, classes) against labels ``y``."""
    y, proba = np.asarray(y, np.int64), np.asarray(proba, np.float64)
    if proba.ndim != 2 or len(proba) != len(y) or not len(y):
        raise SpecError("proba", f"expected ({len(y)}, classes) probabilities, got shape {proba.shape}")
    k = proba.shape[1]
    pred = proba.argmax(1)
    loss = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean())
    per = []
    for c in ([1] if k == 2 else range(k)):
        tp = float(((pred == c) & (y == c)).sum())
        p = tp / max(float((pred == c).sum()), 1.0)
        r = tp / max(float((y == c).sum()), 1.0)
        per.append((p, r, 0.0 if p + r == 0 else 2 * p * r / (p + r)))
    prec, rec, f1 = (float(np.mean([v[i] for v in per])) for i in range(3))
    return {"acc": float((pred == y).mean()), "f1": f1, "precision": prec, "recall": rec, "loss": loss}


def fit(model: nn.Module, x_train: Any, y_train: Any, *, epochs: int = 10, lr: float = 1e-3, batch: int = 64,
        seed: int = 0, x_val: Any = None, y_val: Any = None, weight_decay: float = 0.0,
        keep_best: bool = False, progress: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train ``model`` in place with Adam and cross-entropy; returns ``{"history": [{epoch, loss, val...}]}``.

    ``keep_best`` restores the weights of the epoch with the best validation F1 (needs ``x_val``).
    ``progress(epoch, row)`` is called after every epoch. Deterministic for a seed on one thread.
    """
    x, y = _arrays(x_train, y_train, "x_train")
    for name, v in (("epochs", epochs), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(name, f"expected a positive integer, got {v!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise SpecError("lr", f"expected a positive learning rate, got {lr!r}")
    val = None
    if x_val is not None:
        val = _arrays(x_val, y_val, "x_val")
    elif keep_best:
        raise SpecError("keep_best", "keeping the best epoch needs validation data (x_val, y_val)")
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, Any]] | None = None
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.from_numpy(gen.permutation(len(x)))
        total = 0.0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        row: dict[str, float] = {"epoch": epoch, "loss": total / len(x)}
        if val is not None:
            s = scores(val[1], predict_proba(model, val[0]))
            row.update({f"val_{k}": v for k, v in s.items()})
            if keep_best and (best is None or s["f1"] > best[0]):
                best = (s["f1"], copy.deepcopy(model.state_dict()))
        history.append(row)
        if progress is not None:
            progress(epoch, row)
    if best is not None:
        model.load_state_dict(best[1])
    return {"history": history, "best_val_f1": None if best is None else best[0]}


__all__ = ["fit", "predict_proba", "scores"]
