"""Training of the action models (``hcgym train action``): one resumable classification loop for every model.

Models are built by kind from a plain config dict (:func:`build_model`), so a checkpoint is ``{"kind",
"config", "state_dict", **meta}`` of tensors and plain values only (read back with ``weights_only=True``):

* ``x3d``: :class:`~.x3d.X3D` on video ``(N, 3, T, S, S)`` (pixel values 0-1);
* ``stgcn`` / ``agcn``: :class:`~.gcn.GCN` on skeletons ``(N, 3, T, 25, M)``;
* ``mmtm``: :class:`~.fusion.TwoStreamMMTM` of an X3D and a skeleton stream on both;
* ``tcn``: :class:`~.fusion.SkeletonTCN`, the skeleton stream of ``mmtm`` alone, on skeletons ``(N, 3, T, 25)``.

The loop (:func:`train_classifier`) draws its batches through a caller's ``batch_fn(indices, rng, train)``,
so clip sampling and augmentation live with the data (:mod:`hcgym.perception.action.clips`). Adam with a
linear warm-up and cosine decay to 1 % of ``lr``; after every epoch ``last.pt`` (model, optimiser, epoch,
history, settings) is written atomically, and a later call with the same settings resumes from it.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.training_common import save_training_state, warmup_cosine

#: Model kinds of :func:`build_model`.
KINDS = ("x3d", "stgcn", "agcn", "mmtm", "tcn")


@dataclass(frozen=True)
class ActionTrainConfig:
    """Optimisation settings of :func:`train_classifier`."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    label_smoothing: float = 0.0
    seed: int = 0
    threads: int = 2

    def check(self) -> ActionTrainConfig:
        for name in ("epochs", "batch_size", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(f"--{name.replace('_', '-')}", f"expected a positive integer, got {v!r}")
        if not self.lr > 0:
            raise SpecError("--lr", f"expected > 0, got {self.lr}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise SpecError("label_smoothing", f"expected 0 <= value < 1, got {self.label_smoothing}")
        return self


@dataclass
class TrainResult:
    model: Any
    history: list[dict[str, Any]] = field(default_factory=list)


def build_model(kind: str, config: dict[str, Any]) -> Any:
    """A fresh model of ``kind`` (:data:`KINDS`) from its config dict.

    ``x3d``: an :class:`~.x3d.X3DConfig` dict; ``stgcn``/``agcn``: a :class:`~.gcn.GCNConfig` dict (its
    ``model`` is set from ``kind``; an optional ``residuals`` list overrides the residual kinds, as a
    "*" model's does); ``mmtm``: ``{"x3d": X3DConfig dict, "skeleton_widths": [..],
    "joints": 25, "mode": attention mode, "alpha": a, "fuse": stage indices (default all)}``; ``tcn``:
    ``{"widths": [..], "num_classes": n}``.
    """
    if kind == "x3d":
        from hcgym.perception.action.x3d import X3DConfig, build_x3d

        return build_x3d(X3DConfig.from_dict(config))
    if kind in ("stgcn", "agcn"):
        from hcgym.perception.action.gcn import GCN, GCNConfig

        config = dict(config)
        residuals = config.pop("residuals", None)  # a "*" model keeps its clip model's residual kinds
        return GCN(GCNConfig.from_dict({**config, "model": kind}), None if residuals is None else tuple(residuals))
    if kind == "mmtm":
        from hcgym.perception.action.fusion import TwoStreamMMTM, skeleton_tcn, x3d_stages
        from hcgym.perception.action.x3d import X3DConfig, build_x3d

        xcfg = X3DConfig.from_dict(config["x3d"])
        rgb, rgb_channels = x3d_stages(build_x3d(xcfg))
        widths = list(config.get("skeleton_widths", [2 * w for w in rgb_channels]))
        skel = skeleton_tcn(3, widths)
        fuse = config.get("fuse")
        return TwoStreamMMTM(rgb, skel, rgb_channels, widths, xcfg.num_classes, fuse=None if fuse is None else list(fuse),
                             mode=config.get("mode", "plain"), alpha=float(config.get("alpha", 1.0)))
    if kind == "tcn":
        from hcgym.perception.action.fusion import SkeletonTCN

        return SkeletonTCN(3, list(config["widths"]), int(config["num_classes"]))
    raise SpecError("--model", f"unknown action model {kind!r} (allowed: {', '.join(KINDS)})")


def save_model(model: Any, kind: str, config: dict[str, Any], path: str | Path,
               meta: dict[str, Any] | None = None) -> Path:
    """Write ``{"kind", "config", "state_dict", **meta}`` atomically (``meta`` must be JSON data)."""
    import torch

    from hcgym.paths import atomic_write_bytes

    try:
        json.dumps([config, meta or {}])
    except (TypeError, ValueError) as e:
        raise SpecError("meta", f"checkpoint metadata must be JSON data ({e})") from None
    buf = io.BytesIO()
    torch.save({"kind": kind, "config": config, "state_dict": model.state_dict(), **(meta or {})}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def load_model(path: str | Path, field: str = "--model") -> tuple[Any, dict[str, Any]]:
    """The model of a checkpoint written by :func:`save_model` (eval mode) and the checkpoint's other entries."""
    from hcgym.perception.detection.sensor import load_tensors

    path = Path(path)
    if not path.is_file():
        raise SpecError(field, f"checkpoint not found: {path}")
    ckpt = load_tensors(path, field, "action-model checkpoint",
                        "Write checkpoints with hcgym.perception.action.training.save_model (`hcgym train action`).")
    try:
        model = build_model(ckpt["kind"], ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    except SpecError:
        raise
    except Exception as e:  # noqa: BLE001 - any other content gets one message
        raise SpecError(field, f"{path} is not an action-model checkpoint ({type(e).__name__}: {e})") from None
    return model.eval(), {k: v for k, v in ckpt.items() if k != "state_dict"}


def _run_key(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k != "threads"}


def train_classifier(model: Any, batch_fn: Callable[[np.ndarray, np.random.Generator, bool], tuple[tuple, Any]],
                     n_train: int, cfg: ActionTrainConfig, out_dir: str | Path | None = None,
                     validate: Callable[[Any], dict[str, float]] | None = None, progress: bool = True,
                     log: Callable[[str], None] = print) -> TrainResult:
    """Train ``model`` with cross-entropy on ``n_train`` samples.

    Args:
        batch_fn: ``(indices, rng, train) -> (inputs, labels)``: the model's input tensors for the samples
            ``indices`` (augmented from ``rng`` when ``train``) and their int64 label tensor.
        validate: called on the model (eval mode) after every epoch; its dict enters the history.
        out_dir: where ``last.pt`` goes (resumed from when it exists and matches these settings).
    """
    import torch
    from tqdm import tqdm

    cfg.check()
    if n_train < 1:
        raise SpecError("--data", "no training samples")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    batch = min(cfg.batch_size, n_train)
    steps_per_epoch = max(1, n_train // batch)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    history: list[dict[str, Any]] = []
    start = 0
    state_path = Path(out_dir) / "last.pt" if out_dir is not None else None
    if state_path is not None and state_path.is_file():
        from hcgym.perception.detection.sensor import load_tensors

        state = load_tensors(state_path, "--resume", "action training state",
                             "Delete it or use another --out to train from the start.")
        if not isinstance(state, dict) or _run_key(state.get("config", {})) != _run_key(asdict(cfg)) \
                or state.get("n_train") != n_train:
            raise SpecError("--out", f"{state_path} belongs to a run with other settings; use another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]), list(state["history"])
        log(f"[train] resuming after epoch {start}")
    for epoch in range(start, cfg.epochs):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n_train)
        torch.manual_seed(cfg.seed * 1000 + epoch)
        model.train()
        t0, losses, correct, seen = time.time(), [], 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False)
        for s in bar:
            for g in opt.param_groups:
                g["lr"] = warmup_cosine(epoch * steps_per_epoch + s, cfg.lr, cfg.warmup, total)
            idx = order[s * batch:(s + 1) * batch]
            inputs, labels = batch_fn(idx, np.random.default_rng([cfg.seed, epoch, s]), True)
            logits = model(*inputs)
            loss = loss_fn(logits, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            losses.append(float(loss.detach()))
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
        rec: dict[str, Any] = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4),
                               "train_acc": round(correct / max(seen, 1), 4), "seconds": round(time.time() - t0, 1)}
        if validate is not None:
            model.eval()
            with torch.no_grad():
                rec.update(validate(model))
        history.append(rec)
        if state_path is not None:
            save_training_state(state_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                             "epoch": epoch + 1, "history": history, "config": asdict(cfg),
                                             "n_train": n_train})
        log(f"[train] {json.dumps(rec)}")
    return TrainResult(model=model.eval(), history=history)
