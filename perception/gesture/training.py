"""Training of the gesture classifiers from scratch, prediction, accuracy, checkpoints and ONNX export.

:func:`train_gesture` trains a :class:`GestureNet` (a backbone of :mod:`.backbones` behind a per-channel
normalisation whose mean and standard deviation are measured on the training images) on ``(N, C, S, S)``
float32 images of one modality (:mod:`.augment` for the channel layout and the augmentation):

* AdamW (decoupled weight decay on convolution and linear weights only, not on batch-norm parameters or
  biases) with a linear warm-up and a cosine decay to 1 % of ``lr`` (:func:`~hcgym.perception.training_common.
  warmup_cosine`); cross-entropy, optionally label-smoothed. AdamW rather than SGD: from scratch, on a few
  thousand images and a few tens of epochs, it reaches a good model with less tuning of ``lr`` per backbone;
* batches in a fixed random order per epoch (the last incomplete batch dropped), augmented in torch;
* after every epoch the validation accuracy and loss; the weights of the best validation accuracy (the
  earliest on ties) are kept;
* a checkpoint file, written atomically after every epoch (model, optimiser, history, best weights,
  settings): a later call with the same settings and data resumes after the last finished epoch.

Every random draw comes from ``seed`` (per epoch and batch), so on one thread two runs, or a run
interrupted and resumed, give the same weights.
"""

from __future__ import annotations

import copy
import hashlib
import io
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from hcgym.errors import SpecError
from hcgym.perception.gesture.augment import Augment, augment, channel_roles
from hcgym.perception.gesture.backbones import BACKBONES, MODALITIES, make_backbone
from hcgym.perception.training_common import save_training_state, warmup_cosine

#: ONNX opsets :func:`export_onnx` writes.
OPSETS = (17, 18)


class GestureNet(nn.Module):
    """``backbone((x - mean) / std)``: ``(N, C, S, S)`` images as the training data holds them ->
    ``(N, num_classes)`` logits; ``mean``, ``std`` ``(C,)`` are buffers (saved with the weights)."""

    def __init__(self, backbone: nn.Module, mean: Any, std: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone((x - self.mean) / self.std)


def build_model(config: dict[str, Any]) -> GestureNet:
    """A :class:`GestureNet` from ``{"backbone", "modality", "num_classes", "width"}`` (normalisation 0 / 1
    until weights are loaded)."""
    try:
        channels = MODALITIES[config["modality"]]
        net = make_backbone(config["backbone"], channels, int(config["num_classes"]), float(config.get("width", 1.0)))
    except KeyError as e:
        raise SpecError("config", f"gesture model config lacks or has a bad {e} (allowed modalities: "
                                  f"{', '.join(MODALITIES)})") from None
    return GestureNet(net, torch.zeros(channels), torch.ones(channels))


@dataclass
class GestureTrainResult:
    """``model``: the best-validation weights (eval mode); ``config``: :func:`build_model`'s argument;
    ``history``: one dict per epoch (``epoch``, ``lr``, ``loss``, ``train_acc``, ``val_acc``, ``val_loss``,
    ``seconds``); ``best_epoch``: the epoch of ``model`` (1-based)."""

    model: GestureNet
    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_acc: float | None = None


def check_images(x: Any, y: Any, modality: str, num_classes: int, name: str, aug: Augment | None = None) -> None:
    """Refuse anything but finite float32 ``(N, C, S, S)`` images of ``modality`` whose RGB channels are
    normalised RGB in [0, 1] (``aug.rgb_mean``, ``aug.rgb_std``), with int labels ``(N,)`` in ``[0, num_classes)``."""
    rgb, _ = channel_roles(modality)
    c = MODALITIES[modality]
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4 or x.shape[1] != c \
            or x.shape[2] != x.shape[3] or len(x) == 0:
        raise SpecError(f"x_{name}", f"expected non-empty float32 (N, {c}, S, S) images for {modality}, got "
                                     f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    if not np.isfinite(x).all():
        raise SpecError(f"x_{name}", "holds NaN or infinite values")
    if rgb is not None:
        aug = aug or Augment()
        lo = min(float(x[:, i].min()) * s + m for i, (m, s) in enumerate(zip(aug.rgb_mean, aug.rgb_std)))
        hi = max(float(x[:, i].max()) * s + m for i, (m, s) in enumerate(zip(aug.rgb_mean, aug.rgb_std)))
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise SpecError(f"x_{name}", f"RGB channels must be (rgb - {aug.rgb_mean}) / {aug.rgb_std} with rgb in "
                                         f"[0, 1]; they hold rgb in [{lo:.3f}, {hi:.3f}]")
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
        raise SpecError(f"y_{name}", f"expected {len(x)} integer labels in [0, {num_classes}), got "
                                     f"{y.dtype} {y.shape}")


def channel_stats(x: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (float32 ``(C,)``, the std at least 1e-6) of ``x`` ``(N, C, S, S)``,
    accumulated in float64 over chunks of ``chunk`` images."""
    total, squares = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for i in range(0, len(x), chunk):
        part = x[i:i + chunk].astype(np.float64)
        total += part.sum((0, 2, 3))
        squares += (part ** 2).sum((0, 2, 3))
    count = len(x) * x.shape[2] * x.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def _data_key(x: np.ndarray, y: np.ndarray) -> str:
    """A fingerprint of the training set (its shape, every label, a strided sample of the images)."""
    h = hashlib.sha256(repr(x.shape).encode())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(x[:: max(1, len(x) // 64)]).tobytes())
    return h.hexdigest()


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def train_gesture(backbone: str, modality: str, x_train: np.ndarray, y_train: np.ndarray,
                  x_val: np.ndarray | None = None, y_val: np.ndarray | None = None, *, epochs: int = 30,
                  lr: float = 2e-3, batch: int = 32, seed: int = 0, threads: int = 1,
                  checkpoint: str | Path | None = None, log: Callable[[dict[str, Any]], None] | None = None,
                  num_classes: int = 16, width: float = 1.0, weight_decay: float = 0.05,
                  label_smoothing: float = 0.1, warmup_epochs: float = 1.0,
                  aug: Augment | None = None, progress: bool = False,
                  init: str | Path | None = None) -> GestureTrainResult:
    """Train ``backbone`` on ``modality`` images from scratch, or from ``init`` (module docstring).

    Args:
        backbone: a name of :data:`~.backbones.BACKBONES`; ``width`` scales it (:func:`~.backbones.make_backbone`).
        modality: ``rgb``, ``depth`` or ``rgbd``; ``x_*`` have its channels (3, 1, 4).
        x_train, y_train: float32 ``(N, C, S, S)`` (:mod:`.augment` for the channels' encoding) and int labels
            ``(N,)`` in ``[0, num_classes)``.
        x_val, y_val: the validation set (no augmentation); without it the last epoch's weights are kept.
        epochs, lr, batch, weight_decay, label_smoothing, warmup_epochs: optimisation settings.
        seed: every random draw (weights, order, augmentation, dropout).
        threads: torch threads during training (restored after); 1 for bit-identical reruns.
        checkpoint: the resumable training state's file (``None``: none written).
        log: called with each epoch's history record after its checkpoint is written.
        progress: a tqdm bar over each epoch's batches.
        aug: augmentation ranges and the encoding of the RGB and depth channels (default
            :class:`~.augment.Augment`: ImageNet-normalised RGB, holes at +1; ``Augment.none()`` for none).
        init: a :func:`save_model` file of the same backbone, width and classes to start from
            (:func:`transfer_weights`: an RGB-D network from a depth or RGB one computes that network's function
            at the start, the other input's first-layer weights at zero); its content is part of the settings.
    """
    aug = (aug or Augment()).check()
    channel_roles(modality)
    if backbone not in BACKBONES:
        raise SpecError("backbone", f"unknown backbone {backbone!r} (allowed: {', '.join(BACKBONES)})")
    for name, v in (("epochs", epochs), ("batch", batch), ("threads", threads), ("num_classes", num_classes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(name, f"expected a positive integer, got {v!r}")
    if not lr > 0 or not weight_decay >= 0 or not 0 <= label_smoothing < 1 or not warmup_epochs >= 0:
        raise SpecError("lr", f"expected lr > 0, weight_decay >= 0, 0 <= label_smoothing < 1, warmup_epochs >= 0; "
                              f"got {lr}, {weight_decay}, {label_smoothing}, {warmup_epochs}")
    check_images(x_train, y_train, modality, num_classes, "train", aug)
    if (x_val is None) != (y_val is None):
        raise SpecError("x_val", "give both x_val and y_val, or neither")
    if x_val is not None:
        check_images(x_val, y_val, modality, num_classes, "val", aug)
    config = {"backbone": backbone, "modality": modality, "num_classes": num_classes, "width": float(width)}
    settings = {**config, "epochs": epochs, "lr": lr, "batch": batch, "seed": seed, "weight_decay": weight_decay,
                "label_smoothing": label_smoothing, "warmup_epochs": warmup_epochs, "augment": aug.to_dict(),
                "data": _data_key(x_train, np.asarray(y_train))}
    source = None
    if init is not None:
        settings["init"] = init_key(init)
        source, source_meta = load_model(init, "init")
        source_config = source_meta["config"]
        for k in ("backbone", "num_classes", "width"):
            if source_config.get(k) != config[k]:
                raise SpecError("init", f"{init} has {k} {source_config.get(k)!r}, this run {config[k]!r}")
    state = _resume_state(checkpoint, settings)

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        model = build_model(config)
        mean, std = channel_stats(x_train)
        model.mean.copy_(torch.from_numpy(mean).view(1, -1, 1, 1))
        model.std.copy_(torch.from_numpy(std).view(1, -1, 1, 1))
        if source is not None:
            transfer_weights(source, source_meta["config"]["modality"], model, modality)
        return _fit(model, config, settings, state, x_train, np.asarray(y_train, np.int64), x_val, y_val,
                    aug, checkpoint, log, progress)
    finally:
        torch.set_num_threads(old_threads)


def init_key(path: str | Path) -> dict[str, str]:
    """``{"file", "sha256"}`` naming a model file a training starts from (a missing file is refused)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("init", f"no gesture model at {path}")
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def transfer_weights(src: GestureNet, src_modality: str, dst: GestureNet, dst_modality: str) -> None:
    """Copy ``src``'s weights into ``dst`` (same backbone, width and classes), in place.

    Tensors of equal shape are copied. Those that take the input channels (the first convolution and the input
    normalisation) get ``src``'s values at the channels both modalities have (RGB at RGB, depth at depth); the
    other input channels keep ``dst``'s normalisation and get zero first-layer weights, so ``dst`` computes
    ``src``'s function until training moves them (an RGB-D network from a depth network: the depth network).
    """
    s_rgb, s_depth = channel_roles(src_modality)
    d_rgb, d_depth = channel_roles(dst_modality)
    pairs = ([(0, 0), (1, 1), (2, 2)] if s_rgb is not None and d_rgb is not None else [])
    if s_depth is not None and d_depth is not None:
        pairs.append((s_depth, d_depth))
    if not pairs:
        raise SpecError("init", f"a {src_modality} network shares no input with a {dst_modality} one")
    c_src, c_dst = MODALITIES[src_modality], MODALITIES[dst_modality]
    target = dst.state_dict()
    out = {}
    for name, value in src.state_dict().items():
        have = target.get(name)
        if have is None:
            raise SpecError("init", f"the init network's {name!r} has no counterpart")
        value = value.to(have.dtype)
        if value.shape == have.shape:  # an input layer differs in its channel count (a depthwise one does not)
            out[name] = value.clone()
            continue
        if value.ndim != have.ndim or value.shape[1] != c_src or have.shape[1] != c_dst \
                or value.shape[:1] + value.shape[2:] != have.shape[:1] + have.shape[2:]:
            raise SpecError("init", f"the init network's {name!r} {tuple(value.shape)} does not fit "
                                    f"{tuple(have.shape)}")
        merged = have.clone() if name in ("mean", "std") else torch.zeros_like(have)
        for i, j in pairs:
            merged[:, j] = value[:, i]
        out[name] = merged
    dst.load_state_dict(out)


def _resume_state(checkpoint: str | Path | None, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The training state to resume from (``None``: start), refused when it belongs to other settings."""
    if checkpoint is not None and Path(checkpoint).is_dir():
        raise SpecError("checkpoint", f"{checkpoint} is a directory; name the training state's file")
    if checkpoint is None or not Path(checkpoint).is_file():
        return None
    from hcgym.perception.detection.sensor import load_tensors

    state = load_tensors(Path(checkpoint), "checkpoint", "gesture training state",
                         "Delete it or name another checkpoint file to train from the start.")
    if not isinstance(state, dict) or state.get("settings") != settings:
        raise SpecError("checkpoint", f"{checkpoint} belongs to a run with other settings or data; "
                                      "name another checkpoint file")
    return state


def _fit(model: GestureNet, config: dict[str, Any], settings: dict[str, Any], state: dict[str, Any] | None,
         x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray | None, y_val: Any, aug: Augment,
         checkpoint: str | Path | None, log: Callable[[dict[str, Any]], None] | None,
         progress: bool) -> GestureTrainResult:
    from tqdm import tqdm

    seed, epochs, n = settings["seed"], settings["epochs"], len(x_train)
    batch = min(settings["batch"], n)
    steps = n // batch
    total, warmup = steps * epochs, int(round(settings["warmup_epochs"] * steps))
    opt = torch.optim.AdamW(_param_groups(model, settings["weight_decay"]), lr=settings["lr"])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings["label_smoothing"])
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"state": copy.deepcopy(model.state_dict()), "epoch": 0, "val_acc": None}
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history, best = list(state["history"]), dict(state["best"])
    for epoch in range(len(history), epochs):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        torch.manual_seed(seed * 1000 + epoch)  # dropout
        model.train()
        t0, losses, correct, lr = time.perf_counter(), [], 0, settings["lr"]
        for s in tqdm(range(steps), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False):
            lr = warmup_cosine(epoch * steps + s, settings["lr"], warmup, total)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = np.sort(order[s * batch:(s + 1) * batch])
            gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, epoch, s]).integers(2 ** 62)))
            xb = augment(torch.from_numpy(x_train[idx]), settings["modality"], aug, gen)
            yb = torch.from_numpy(y_train[idx])
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            correct += int((logits.argmax(1) == yb).sum())
        rec: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "loss": float(np.mean(losses)),
                               "train_acc": correct / (steps * batch)}
        if x_val is not None:
            logits = torch.from_numpy(predict(model, x_val))
            rec["val_acc"] = float((logits.argmax(1).numpy() == np.asarray(y_val)).mean())
            rec["val_loss"] = float(nn.functional.cross_entropy(logits, torch.as_tensor(np.asarray(y_val, np.int64))))
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        history.append(rec)
        if x_val is None or best["val_acc"] is None or rec["val_acc"] > best["val_acc"]:
            best = {"state": copy.deepcopy(model.state_dict()), "epoch": epoch + 1, "val_acc": rec.get("val_acc")}
        if checkpoint is not None:
            save_training_state(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                             "history": history, "best": best, "settings": settings})
        if log is not None:
            log(rec)
    model.load_state_dict(best["state"])
    return GestureTrainResult(model.eval(), config, history, best["epoch"], best["val_acc"])


def predict(model: nn.Module, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Logits ``(N, num_classes)`` float32 of ``model`` (run in eval mode, its mode restored) on ``x``
    ``(N, C, S, S)`` float32, ``batch`` images at a time."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SpecError("batch", f"expected a positive integer, got {batch!r}")
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = [model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32))).numpy()
                   for i in range(0, len(x), batch)]
    finally:
        model.train(training)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 64) -> float:
    """Fraction of ``x`` whose arg-max logit is the label ``y`` ``(N,)``."""
    y = np.asarray(y)
    if y.shape != (len(x),) or len(x) == 0:
        raise SpecError("y", f"expected {len(x)} labels (at least one), got shape {y.shape}")
    return float((predict(model, x, batch).argmax(1) == y).mean())


def save_model(result: GestureTrainResult, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``{"kind": "gesture", "config", "state_dict", "history", **meta}`` atomically (``meta``: JSON data)."""
    from hcgym.perception.action.training import save_model as save_checkpoint

    return save_checkpoint(result.model, "gesture", result.config, path,
                           {"history": result.history, "best_epoch": result.best_epoch, **(meta or {})})


def load_model(path: str | Path, field: str = "model") -> tuple[GestureNet, dict[str, Any]]:
    """The :class:`GestureNet` of a :func:`save_model` file (eval mode) and the file's other entries."""
    from hcgym.perception.detection.sensor import load_tensors

    path = Path(path)
    if not path.is_file():
        raise SpecError(field, f"gesture model not found: {path}")
    ckpt = load_tensors(path, field, "gesture model", "Write gesture models with hcgym.perception.gesture."
                                                      "training.save_model.")
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "gesture":
        raise SpecError(field, f"{path} is not a gesture model")
    model = build_model(ckpt["config"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise SpecError(field, f"{path} does not fit its own config ({e})") from None
    return model.eval(), {k: v for k, v in ckpt.items() if k != "state_dict"}


def export_onnx(model: nn.Module, in_channels: int, size: int, path: str | Path, opset: int = 17) -> Path:
    """Write ``model`` as ONNX (input ``image`` ``(batch, in_channels, size, size)`` float32, output ``logits``,
    dynamic batch) to ``path`` atomically; ``model`` is traced in eval mode and its mode restored."""
    from hcgym.paths import atomic_write_bytes

    if opset not in OPSETS:
        raise SpecError("opset", f"expected one of {OPSETS}, got {opset!r}")
    if in_channels not in MODALITIES.values() or isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise SpecError("in_channels", f"expected 1, 3 or 4 channels and an integer size >= 32, got "
                                       f"{in_channels!r}, {size!r}")
    training = model.training
    model.eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notes
            torch.onnx.export(model, (torch.zeros(1, in_channels, size, size),), buf, input_names=["image"],
                              output_names=["logits"], opset_version=opset, dynamo=False,
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    finally:
        model.train(training)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
