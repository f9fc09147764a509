"""Training of the expression models: SGD on landmark sequences with augmentation, and PST-BLN's search.

OpenDR D3.2 Sec. 4.1: SGD with momentum 0.9, weight decay 5e-4, cross-entropy. Inputs are raw landmark
sequences ``x`` (N, T, V, 2) in pixels (the models normalise them) and labels ``y`` (N,) int.

* Learning rate: ``cosine`` (default) decays from ``lr`` to 1 % of it over all steps after an optional
  linear warm-up (:func:`hcgym.perception.training_common.warmup_cosine`); ``step`` multiplies it by 0.1
  after 50 % and again after 75 % of the epochs (the seed's multi-step decay, milestones scaled to the run).
* Augmentation (:class:`Augmentation`, drawn per sequence from the run's seed, the same transform for every
  frame of a sequence): a horizontal mirror with the layout's left/right permutation (for
  :data:`~.graph.DLIB51` the dlib pairs, e.g. eye corners 36<->45 and mouth corners 48<->54), a rotation
  about the centre of frame 0, an anisotropic scale per axis and per-frame landmark jitter in units of the
  sequence's inter-ocular distance. The isotropic size and the position are normalised away by the model.
* ``balanced``: class weights ``N / (C n_c)`` in the loss (for unbalanced label sets).
* ``checkpoint``: a path where the training state is written atomically after every epoch; a later call
  with the same settings and data size resumes from it.

:func:`train` returns the per-epoch history (loss, training accuracy, learning rate, validation loss and
accuracy when validation data is given). :func:`fit_pstbln` runs :func:`~.progressive.grow` with
:func:`train` as the step (its loss: the training cross-entropy of the step's last epoch, or of the
fine-tuned network in eval mode) and fine-tunes the found network. Threads: ``settings.threads`` (None: as the
caller set them).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.expression.graph import FaceLayout
from hcgym.perception.expression.models import ExpressionNet, ExprModelConfig, build_model
from hcgym.perception.expression.progressive import GrowthResult, GrowthSettings, grow
from hcgym.perception.training_common import save_training_state, warmup_cosine

SCHEDULES: tuple[str, ...] = ("cosine", "step")
#: What a PST-BLN growth step reports as its training loss (see :func:`fit_pstbln`).
LOSS_MEASURES: tuple[str, ...] = ("last_epoch", "eval")


@dataclass(frozen=True)
class Augmentation:
    """Landmark-sequence augmentation: ``rotate`` degrees (uniform +-), ``scale`` (each axis times
    ``1 +- scale``), ``jitter`` (Gaussian std in inter-ocular units), ``flip`` (probability of a mirror)."""

    rotate: float = 10.0
    scale: float = 0.05
    jitter: float = 0.01
    flip: float = 0.5

    def check(self) -> Augmentation:
        for name in ("rotate", "scale", "jitter"):
            if not getattr(self, name) >= 0:
                raise SpecError(f"augment.{name}", f"must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.flip <= 1.0:
            raise SpecError("augment.flip", f"must be a probability, got {self.flip!r}")
        return self


def augment(x: np.ndarray, rng: np.random.Generator, aug: Augmentation, layout: FaceLayout) -> np.ndarray:
    """Augmented copy of landmark sequences ``x`` (N, T, V, 2) float32 (see the module docstring)."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    centre = x[:, :1].mean(axis=2, keepdims=True)
    d = (x - centre).astype(np.float64)
    if aug.flip > 0:
        if layout.flip is None:
            raise SpecError("augment.flip", "the landmark layout has no mirror permutation; set flip to 0")
        mirror = rng.random(n) < aug.flip
        d[mirror, ..., 0] *= -1
        d[mirror] = d[mirror][:, :, np.argsort(layout.flip)]
    angle = np.deg2rad(rng.uniform(-aug.rotate, aug.rotate, n))[:, None, None]
    sx, sy = (rng.uniform(1 - aug.scale, 1 + aug.scale, (2, n))[..., None, None])
    cos, sin = np.cos(angle), np.sin(angle)
    px, py = d[..., 0] * sx, d[..., 1] * sy
    d = np.stack([cos * px - sin * py, sin * px + cos * py], axis=-1)
    if aug.jitter > 0:
        eye_a, eye_b = x[:, 0, list(layout.eyes[0])].mean(1), x[:, 0, list(layout.eyes[1])].mean(1)
        iod = np.linalg.norm(eye_a - eye_b, axis=-1)
        d = d + rng.normal(0.0, aug.jitter, d.shape) * iod[:, None, None, None]
    return (d + centre).astype(np.float32)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of :func:`train` (``warmup`` in steps; ``threads`` None: leave torch's)."""

    epochs: int = 60
    lr: float = 0.05
    batch: int = 32
    seed: int = 0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "cosine"
    warmup: int = 0
    augment: Augmentation | None = Augmentation()
    balanced: bool = False
    threads: int | None = None

    def check(self) -> TrainSettings:
        """Raise :class:`SpecError` naming the first invalid field; return ``self``."""
        for name in ("epochs", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(f"train.{name}", f"must be a positive integer, got {v!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise SpecError("train.threads", f"must be a positive integer or null, got {self.threads!r}")
        if not self.lr > 0:
            raise SpecError("train.lr", f"must be > 0, got {self.lr!r}")
        if not (0 <= self.momentum < 1 and self.weight_decay >= 0 and self.warmup >= 0):
            raise SpecError("train", "momentum must be in [0, 1), weight_decay and warmup >= 0")
        if self.schedule not in SCHEDULES:
            raise SpecError("train.schedule", f"unknown {self.schedule!r} (allowed: {', '.join(SCHEDULES)})")
        if self.augment is not None:
            self.augment.check()
        return self

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate of optimisation step ``step`` of ``total``."""
        if self.schedule == "cosine":
            return warmup_cosine(step, self.lr, self.warmup, total)
        return self.lr * 0.1 ** ((step >= total // 2) + (step >= (3 * total) // 4))


@dataclass
class TrainResult:
    """The trained model (eval mode) and one record per epoch."""

    model: ExpressionNet
    history: list[dict[str, Any]] = field(default_factory=list)


def _check_data(model: ExpressionNet, x: Any, y: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    v, c = model.cfg.graph.layout.num_points, model.cfg.num_classes
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
    if x.ndim != 4 or x.shape[2:] != (v, 2) or len(x) < 1:
        raise SpecError(f"x_{name}", f"expected landmarks (N, T, {v}, 2) with N >= 1, got {x.shape}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (len(y) and not 0 <= y.min() <= y.max() < c):
        raise SpecError(f"y_{name}", f"expected {len(x)} integer labels in 0..{c - 1}")
    return x, y.astype(np.int64)


def predict_logits(model: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, C) eval-mode class scores of landmark sequences ``x`` (N, T, V, 2); the model's mode is restored."""
    mode = model.training
    model.eval()
    with torch.no_grad():
        out = [model(torch.from_numpy(np.asarray(x[i:i + batch], dtype=np.float32))) for i in range(0, len(x), batch)]
    model.train(mode)
    return torch.cat(out).numpy()


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 256) -> dict[str, float]:
    """``{"acc", "loss"}``: eval-mode accuracy and mean cross-entropy on ``(x, y)``."""
    logits = predict_logits(model, x, batch)
    loss = nn.functional.cross_entropy(torch.from_numpy(logits), torch.as_tensor(np.asarray(y), dtype=torch.long))
    return {"acc": float((logits.argmax(1) == np.asarray(y)).mean()), "loss": float(loss)}


def _run_key(settings: TrainSettings, n: int) -> dict[str, Any]:
    key = dataclasses.asdict(settings)
    key.pop("threads")
    return {**key, "n_train": n}


def train(model: ExpressionNet, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray | None = None,
          y_val: np.ndarray | None = None, settings: TrainSettings = TrainSettings(),
          log: Callable[[str], None] | None = None, checkpoint: str | Path | None = None) -> TrainResult:
    """Train ``model`` in place with SGD and cross-entropy (see the module docstring).

    Args:
        x_train, y_train: landmark sequences (N, T, V, 2) pixels and labels (N,).
        x_val, y_val: optional validation data, evaluated after every epoch.
        checkpoint: optional path of a resumable training state.
    Returns: the model (eval mode) and the history, one dict per epoch.
    """
    s = settings.check()
    x, y = _check_data(model, x_train, y_train, "train")
    val = None if x_val is None else _check_data(model, x_val, y_val, "val")
    if s.threads is not None:
        torch.set_num_threads(s.threads)
    layout = model.cfg.graph.layout
    if s.augment is not None and s.augment.flip > 0 and layout.flip is None:
        raise SpecError("augment.flip", "the landmark layout has no mirror permutation; set flip to 0")
    n, batch = len(x), min(s.batch, len(x))
    steps = max(1, n // batch)
    total = steps * s.epochs
    opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                          nesterov=s.nesterov and s.momentum > 0)
    weight = None
    if s.balanced:
        counts = np.bincount(y, minlength=model.cfg.num_classes).astype(np.float64)
        weight = torch.as_tensor(np.where(counts > 0, n / (len(counts) * np.maximum(counts, 1)), 0.0), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    history: list[dict[str, Any]] = []
    start = 0
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None and path.is_file():
        from hcgym.perception.detection.sensor import load_tensors

        state = load_tensors(path, "checkpoint", "expression training state", "Delete it to train from the start.")
        if not isinstance(state, dict) or state.get("key") != _run_key(s, n):
            raise SpecError("checkpoint", f"{path} belongs to a run with other settings or data")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]), list(state["history"])
    with torch.random.fork_rng(devices=[]):
        for epoch in range(start, s.epochs):
            rng = np.random.default_rng([s.seed, epoch])
            torch.manual_seed(s.seed * 100_003 + epoch)
            order = rng.permutation(n)
            model.train()
            t0, losses, correct = time.time(), [], 0
            for k in range(steps):
                lr = s.lr_at(epoch * steps + k, total)
                for g in opt.param_groups:
                    g["lr"] = lr
                idx = order[k * batch:(k + 1) * batch]
                xb = x[idx] if s.augment is None else augment(x[idx], rng, s.augment, layout)
                yb = torch.from_numpy(y[idx])
                logits = model(torch.from_numpy(xb))
                loss = loss_fn(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                correct += int((logits.argmax(1) == yb).sum())
            rec: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                                   "train_acc": correct / (steps * batch), "lr": lr, "seconds": time.time() - t0}
            if val is not None:
                rec.update({f"val_{k}": v for k, v in evaluate(model, *val).items()})
            history.append(rec)
            if path is not None:
                save_training_state(path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                           "epoch": epoch + 1, "history": history, "key": _run_key(s, n)})
            if log is not None:
                log("[train] " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()))
    return TrainResult(model=model.eval(), history=history)


@dataclass
class PSTBLNFit:
    """The found and fine-tuned PST-BLN, the search's result and the final fine-tuning's history."""

    model: ExpressionNet
    growth: GrowthResult
    history: list[dict[str, Any]] = field(default_factory=list)


def fit_pstbln(x_train: np.ndarray, y_train: np.ndarray, base: ExprModelConfig,
               growth: GrowthSettings = GrowthSettings(), step: TrainSettings = TrainSettings(epochs=10),
               final: TrainSettings | None = TrainSettings(), x_val: np.ndarray | None = None,
               y_val: np.ndarray | None = None, log: Callable[[str], None] | None = None,
               loss_measure: str = "last_epoch") -> PSTBLNFit:
    """PST-BLN: :func:`~.progressive.grow` with ``step`` training per growth step, then ``final`` fine-tuning.

    ``base`` gives the graph, frames, classes and dropout; each growth step trains for ``step.epochs`` with a
    fresh optimiser (its seed advanced by one per step) and is scored by its training cross-entropy,
    ``loss_measure``: ``last_epoch`` the mean loss of the step's last epoch as trained (dropout and
    augmentation on; what the OpenDR code compares), or ``eval`` the eval-mode cross-entropy of the
    fine-tuned network on the (unaugmented) training set. Either way the loss also falls with the extra
    epochs a step adds, so steps should train to convergence for the rules to measure capacity; the noisier
    ``last_epoch`` stops sooner. ``final`` None skips the fine-tuning.
    """
    step.check()
    if final is not None:
        final.check()
    if loss_measure not in LOSS_MEASURES:
        raise SpecError("loss_measure", f"unknown {loss_measure!r} (allowed: {', '.join(LOSS_MEASURES)})")
    probe = build_model(dataclasses.replace(base, widths=(growth.block,), residual="conv"))
    x, y = _check_data(probe, x_train, y_train, "train")
    calls = [0]

    def train_step(model: ExpressionNet) -> float:
        calls[0] += 1
        history = train(model, x, y, settings=dataclasses.replace(step, seed=step.seed + calls[0])).history
        return history[-1]["loss"] if loss_measure == "last_epoch" else evaluate(model, x, y)["loss"]

    result = grow(base, train_step, growth, log)
    history = []
    if final is not None:
        history = train(result.model, x, y, x_val, y_val, final, log).history
    return PSTBLNFit(model=result.model.eval(), growth=result, history=history)


def save_model(model: ExpressionNet, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``{"kind", "config", "state_dict", **meta}`` atomically (``meta``: JSON data)."""
    from hcgym.perception.action.training import save_model as save_checkpoint

    return save_checkpoint(model, model.cfg.model, model.cfg.to_dict(), path, meta)


def load_model(path: str | Path, field: str = "--model") -> tuple[ExpressionNet, dict[str, Any]]:
    """The model of a checkpoint written by :func:`save_model` (eval mode) and the checkpoint's other entries."""
    from hcgym.perception.detection.sensor import load_tensors
    from hcgym.perception.expression.storage import unpack

    path = Path(path)
    if not path.is_file():
        raise SpecError(field, f"checkpoint not found: {path}")
    ckpt = load_tensors(path, field, "expression-model checkpoint",
                        "Write checkpoints with hcgym.perception.expression.training.save_model.")
    try:
        model = ExpressionNet(ExprModelConfig.from_dict(ckpt["config"]))
        model.load_state_dict(unpack(ckpt["state_dict"]))  # float32 from float16 or packed shipped weights
    except SpecError:
        raise
    except Exception as e:  # noqa: BLE001 - any other content gets one message
        raise SpecError(field, f"{path} is not an expression-model checkpoint ({type(e).__name__}: {e})") from None
    return model.eval(), {k: v for k, v in ckpt.items() if k != "state_dict"}
