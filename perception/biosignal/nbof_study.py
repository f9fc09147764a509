"""The NBoF attention study of OpenDR D3.2 §5.3 at small scale: the order-sensitive task and simulated atrial
fibrillation (Table 26's AF column).

* :func:`order_study` trains each variant on :func:`~.order_task.order_task` (motif A then B, or B then A) once
  per seed and scores test accuracy. Run seed ``s`` draws its training series with ``order_task`` seed ``2 s``
  and its test series with ``2 s + 1``, and initialises and shuffles with ``s``: the spread over seeds covers
  data, initialisation and batch order. A time-averaged histogram of features whose receptive field is shorter
  than the motif margin (plain NBoF) cannot tell the classes apart; TNBoF's short histogram and attention that
  knows *when* a codeword fired can.
* :func:`af_study` draws one set of 30 s segments with :func:`~hcgym.synthesis.ecg.rhythm_dataset` (four
  classes: normal, AF, other, noisy; every segment its own simulated person, so segments are independent
  draws), splits it into ``folds`` stratified folds, and trains each variant ``folds`` times, each fold the test
  set once (cross-validation, as the document's 5 folds): macro F1 (the AF challenge's measure) and accuracy
  per fold. Every variant sees the same folds and, per fold, the same training seed, so differences between
  variants are paired; :func:`paired_difference` gives their mean and 95 % t-interval.

Settings (:class:`OrderSettings`, :class:`AFSettings`, or a preset name of :data:`ORDER_PRESETS` /
:data:`AF_PRESETS`) fix the data sizes, the model (:func:`~.nbof.make_nbof`'s options) and the training
(:func:`~.training.fit`: Adam, cross-entropy, fixed epochs, no early stopping). The defaults use the
toolkit's self-attention size (one head, ``d = 128``, 32 codewords) so that both studies over
:data:`DEFAULT_VARIANTS` finish in minutes on one CPU core (about 8 together); ``"quick"`` is a seconds-long
preset for tests. Results are deterministic for a seed on one thread (every study sets
``torch.set_num_threads(1)`` while it runs).

Training choices (the document fixes the equations, not these). The pre-processing has **BatchNorm** after each
convolution, Adam's learning rate is **1e-3**, and after training the BatchNorm statistics are recomputed over
the training set (:func:`precise_batchnorm`). Without BatchNorm the convolutions' default initialisation leaves
the features small, the logistic memberships ``Phi`` stay within a few hundredths of 0.5, and CTsA's position
signal (third order in ``Phi``) does not reach the codebook before the model settles on the class prior: the
sigmoid mask saturates at 0 within the first epoch (its logits' common part falls from 0 to about -6) and
NBoF-CTsA answers at chance on most seeds. A larger logistic slope ``a``, sparse memberships, an initial
``alpha`` of 0, larger projections, learning rates of 1e-2 and 1e-3, weight decay, a softmax mask, 2,048
training series and a linear classifier left it at chance; 20-40 epochs at smaller learning rates, and a
variance-keeping (Kaiming) initialisation of the convolutions, solved it on some seeds only. BatchNorm with learning rate 1e-3 made NBoF-CTsA (and NBoF-CsA) solve the
order task on every seed tried while NBoF stayed at chance. With BatchNorm, the running statistics kept during
training left TNBoF anywhere between chance and 90 % in evaluation mode, hence the recomputation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.biosignal.nbof import VARIANTS, make_nbof
from hcgym.perception.biosignal.order_task import order_task
from hcgym.perception.biosignal.training import fit, predict_proba, scores

#: The variants both studies train by default: the baselines, each attention on NBoF, and TNBoF-CTsA.
DEFAULT_VARIANTS = ("nbof", "tnbof", "nbof-ca", "nbof-ta", "nbof-csa", "nbof-tsa", "nbof-ctsa", "tnbof-ctsa")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ModelSettings:
    """Model (:func:`~.nbof.make_nbof` options) and training (:func:`~.training.fit`) of a study."""

    codewords: int = 32
    heads: int = 1
    d: int = 128
    layers: int = 3
    filters: int = 32
    kernel: int = 7
    pool: int = 2
    hidden: int = 64
    batchnorm: bool = True
    epochs: int = 10
    lr: float = 1e-3
    batch: int = 32

    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~.nbof.make_nbof` (besides variant, shape and seed)."""
        return {"codewords": self.codewords, "heads": self.heads, "d": self.d, "layers": self.layers,
                "filters": self.filters, "kernel": self.kernel, "pool": self.pool, "hidden": self.hidden,
                "batchnorm": self.batchnorm}

    def check(self) -> None:
        """SpecError naming the first field that is not a positive integer (``layers``, ``hidden``: >= 0), a
        positive learning rate or a bool."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", int):
                low = 0 if f.name in ("layers", "hidden") else 1
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                    raise SpecError(f.name, f"expected an integer >= {low}, got {v!r}")
            elif f.type in ("bool", bool) and not isinstance(v, bool):
                raise SpecError(f.name, f"expected true or false, got {v!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < 1:
            raise SpecError("lr", f"expected a learning rate in (0, 1), got {self.lr!r}")


@dataclass(frozen=True)
class OrderSettings(ModelSettings):
    """The order task: ``train`` / ``test`` series of ``length`` samples and ``channels`` channels, white noise
    of standard deviation ``noise`` (motif peaks about 1); model and training as :class:`ModelSettings`."""

    train: int = 512
    test: int = 400
    length: int = 512
    channels: int = 2
    noise: float = 0.3

    def check(self) -> OrderSettings:
        super().check()
        if isinstance(self.noise, bool) or not isinstance(self.noise, (int, float)) or not self.noise >= 0:
            raise SpecError("noise", f"expected a standard deviation >= 0, got {self.noise!r}")
        return self


@dataclass(frozen=True)
class AFSettings(ModelSettings):
    """Simulated AF: ``count`` segments of ``seconds`` at ``fs`` Hz, class ``shares`` (``None``: equal; see
    :data:`~hcgym.synthesis.ecg.CINC2017_SHARES`), ``snr_db`` noise on the normal, AF and other segments
    (``None``: clean; the default draws 5-20 dB per segment, a wearable's range), all split into folds. Pooling
    by 4 shortens 3,000 samples to 46 steps of a receptive field of 1.9 s (about two beats, so a codeword can see
    an RR interval); 16 filters keep a run near 6 s on one core."""

    count: int = 600
    fs: float = 100
    seconds: float = 30
    snr_db: float | tuple[float, float] | None = (5.0, 20.0)
    shares: tuple[float, ...] | None = None
    filters: int = 16
    pool: int = 4

    def check(self) -> AFSettings:
        super().check()
        return self


#: Named order-task settings: ``default`` (the study) and ``quick`` (a few seconds, for tests).
ORDER_PRESETS: dict[str, OrderSettings] = {
    "default": OrderSettings(),
    "quick": OrderSettings(train=64, test=48, length=128, codewords=8, d=16, hidden=16, filters=8, epochs=2),
}
#: Named AF settings: ``default`` (the study) and ``quick`` (a few seconds, for tests).
AF_PRESETS: dict[str, AFSettings] = {
    "default": AFSettings(),
    "quick": AFSettings(count=24, fs=50, seconds=4, codewords=8, d=16, hidden=16, filters=8, epochs=2, pool=2),
}


def _settings(value: Any, kind: type, presets: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if value not in presets:
            raise SpecError("settings", f"unknown preset {value!r} (allowed: {', '.join(presets)})")
        return presets[value].check()
    if not isinstance(value, kind):
        raise SpecError("settings", f"expected a {kind.__name__} or a preset name, got {type(value).__name__}")
    return value.check()


def _variants(variants: Sequence[str]) -> tuple[str, ...]:
    if isinstance(variants, str):
        variants = (variants,)
    out = tuple(variants)
    bad = [v for v in out if v not in VARIANTS]
    if bad or not out or len(set(out)) != len(out):
        raise SpecError("variants", f"expected distinct variants from {', '.join(VARIANTS)}, got {list(out)}")
    return out


def _seed(field: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise SpecError(field, f"expected an integer >= 0, got {v!r}")
    return int(v)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def precise_batchnorm(model: nn.Module, x: np.ndarray, batch: int) -> None:
    """Replace the running mean and variance of every BatchNorm layer of ``model`` by their plain averages over
    the mini-batches of ``x`` (N, C, L) in order ("precise BN"; no weights change); a model without BatchNorm
    is left as it is.

    The running statistics kept while training (momentum 0.1) trail weights that still move; on the order task
    a TNBoF whose training-mode accuracy was 0.90-0.94 answered anywhere between 0.50 and 0.90 in evaluation
    mode with them, and 0.90-0.94 after this pass.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was, momenta = model.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.train()
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        for i in range(0, len(xt), batch):
            model(xt[i:i + batch])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was)


def _train_and_score(variant: str, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, classes: int,
                     seed: int, s: ModelSettings) -> dict[str, float]:
    model = make_nbof(variant, x.shape[1], x.shape[2], classes, seed=seed, **s.model_options())
    fit(model, x, y, epochs=s.epochs, lr=s.lr, batch=s.batch, seed=seed)
    precise_batchnorm(model, x, s.batch)
    return scores(yt, predict_proba(model, xt))


class _OneThread:
    """torch on one thread while a study runs (determinism and the one-core budget), restored after."""

    def __enter__(self) -> None:
        self.old = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.old)


def order_study(variants: Sequence[str] = DEFAULT_VARIANTS, seeds: Sequence[int] = (0, 1, 2),
                settings: OrderSettings | str = "default",
                progress: Progress | None = None) -> dict[str, dict[str, Any]]:
    """``{variant: {"acc_mean", "acc_std", "per_seed"}}``: test accuracy on the order task, mean and sample
    standard deviation over ``seeds``, and the accuracies in ``seeds`` order (module docstring)."""
    variants, s = _variants(variants), _settings(settings, OrderSettings, ORDER_PRESETS)
    seeds = tuple(_seed("seeds", v) for v in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise SpecError("seeds", f"expected distinct seeds, got {list(seeds)}")
    acc: dict[str, list[float]] = {v: [] for v in variants}
    with _OneThread():
        for seed in seeds:
            kw = {"length": s.length, "channels": s.channels, "noise": s.noise}
            x, y = order_task(s.train, 2 * seed, **kw)
            xt, yt = order_task(s.test, 2 * seed + 1, **kw)
            for v in variants:
                acc[v].append(_train_and_score(v, x, y, xt, yt, 2, seed, s)["acc"])
                if progress is not None:
                    progress(f"order task, seed {seed}, {v}: accuracy {acc[v][-1]:.4f}")
    out = {}
    for v in variants:
        mean, std = _mean_std(acc[v])
        out[v] = {"acc_mean": mean, "acc_std": std, "per_seed": acc[v]}
    return out


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index (N,) in ``[0, folds)`` per sample: each class's samples in a seeded random order dealt round
    the folds, so every fold holds each class's count ``// folds`` or one more."""
    y = np.asarray(y)
    rng = np.random.default_rng([seed, folds])
    out = np.empty(len(y), np.int64)
    start = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        out[idx] = (start + np.arange(len(idx))) % folds
        start += len(idx)
    return out


def af_study(variants: Sequence[str] = DEFAULT_VARIANTS, folds: int = 5, seed: int = 0,
             settings: AFSettings | str = "default",
             progress: Progress | None = None) -> dict[str, dict[str, Any]]:
    """``{variant: {"f1_mean", "f1_std", "acc_mean", "per_fold"}}``: macro F1 over the four rhythm classes,
    mean and sample standard deviation over the folds, mean accuracy, and per fold ``{"f1", "acc"}``.

    One set of ``settings.count`` segments is drawn with ``seed``; fold ``f`` is the test set once, the other
    folds the training set; the model of fold ``f`` is initialised and shuffled with ``seed * folds + f``.
    """
    variants, s = _variants(variants), _settings(settings, AFSettings, AF_PRESETS)
    seed = _seed("seed", seed)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise SpecError("folds", f"expected an integer >= 2, got {folds!r}")
    from hcgym.synthesis.ecg import RHYTHMS, rhythm_dataset

    data = rhythm_dataset(s.count, seed, fs=s.fs, seconds=s.seconds, snr_db=s.snr_db, shares=s.shares)
    counts = np.bincount(data.y, minlength=len(RHYTHMS))
    if counts[counts > 0].min() < folds:
        raise SpecError("folds", f"{folds} folds need at least {folds} segments of every class; the set holds "
                                 f"{dict(zip(RHYTHMS, counts.tolist()))}")
    x, y = data.x[:, None, :], data.y
    fold_of = stratified_folds(y, int(folds), seed)
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with _OneThread():
        for f in range(int(folds)):
            test = fold_of == f
            for v in variants:
                sc = _train_and_score(v, x[~test], y[~test], x[test], y[test], len(RHYTHMS), seed * folds + f, s)
                runs[v].append({"f1": sc["f1"], "acc": sc["acc"]})
                if progress is not None:
                    progress(f"AF, fold {f}, {v}: macro F1 {sc['f1']:.4f}, accuracy {sc['acc']:.4f}")
    out = {}
    for v in variants:
        mean, std = _mean_std([r["f1"] for r in runs[v]])
        out[v] = {"f1_mean": mean, "f1_std": std, "acc_mean": float(np.mean([r["acc"] for r in runs[v]])),
                  "per_fold": runs[v]}
    return out


def paired_difference(results: dict[str, dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    """Variant ``a`` minus variant ``b`` of one study's results, paired per seed or fold (F1 for
    :func:`af_study`, accuracy for :func:`order_study`): ``{"metric", "mean", "std", "ci95": [low, high]
    (Student t), "per_run", "wins"}`` (``wins``: runs where ``a >= b``)."""
    from scipy import stats

    for name in (a, b):
        if name not in results:
            raise SpecError("variant", f"{name!r} is not in the results (have: {', '.join(results)})")
    if "per_fold" in results[a]:
        metric, va, vb = "f1", [r["f1"] for r in results[a]["per_fold"]], [r["f1"] for r in results[b]["per_fold"]]
    else:
        metric, va, vb = "acc", results[a]["per_seed"], results[b]["per_seed"]
    diff = np.asarray(va, np.float64) - np.asarray(vb, np.float64)
    mean, std = _mean_std(diff)
    half = float(stats.t.ppf(0.975, len(diff) - 1) * std / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return {"metric": metric, "mean": mean, "std": std, "ci95": [mean - half, mean + half],
            "per_run": diff.tolist(), "wins": int((diff >= 0).sum())}


def table_markdown(order: dict[str, dict[str, Any]] | None = None,
                   af: dict[str, dict[str, Any]] | None = None) -> str:
    """A markdown table: per variant the order-task accuracy and the AF macro F1 (percent, mean ± std)."""
    names = list(dict.fromkeys([*(order or {}), *(af or {})]))
    head = "| variant |" + (" order acc (%) |" if order else "") + (" AF F1 (%) | AF acc (%) |" if af else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for n in names:
        row = f"| {n} |"
        if order:
            r = order.get(n)
            row += f" {100 * r['acc_mean']:.1f} ± {100 * r['acc_std']:.1f} |" if r else " |"
        if af:
            r = af.get(n)
            row += f" {100 * r['f1_mean']:.2f} ± {100 * r['f1_std']:.2f} | {100 * r['acc_mean']:.2f} |" if r \
                else " | |"
        lines.append(row)
    return "\n".join(lines) + "\n"


__all__ = ["AFSettings", "AF_PRESETS", "DEFAULT_VARIANTS", "ModelSettings", "ORDER_PRESETS", "OrderSettings",
           "af_study", "order_study", "paired_difference", "precise_batchnorm", "stratified_folds", "table_markdown"]
