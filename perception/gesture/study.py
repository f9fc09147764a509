"""Training runs of the gesture models (``hcgym train gesture``): backbones x modalities x seeds on one data set.

Each run trains one :func:`~.training.train_gesture` model on a gesture set (:mod:`hcgym.synthesis.gesture_data`)
whose crops are resized to ``settings.size`` at load time (:func:`resize_set`: the sets are rendered at 112 x 112
and CPU training at that size costs several hours per model). Runs are keyed by everything that sets their
result (backbone, modality, classes, seed, settings, the data's configuration key) and live in
``OUT/runs/<backbone>-<modality>-c<classes>-s<seed>-<key>/``: ``state.pt`` is the per-epoch resumable training
state, ``model.pt`` the finished model (float32, with its history and its accuracy on the set's held-out
``test`` identities, exact and Kinect-like depth). ``shard = (k, n)`` trains the runs ``i`` with ``i % n == k``.

As each run finishes, its model is published as ``OUT/<name>.pt`` (:func:`model_name`; float16 weights,
cast back to float32 by :func:`~.training.load_model`, its test accuracy checked against the float32 model's),
with ``OUT/PROVENANCE_<name>.json`` and ``OUT/<name>_training.png`` (:func:`training_png`). A published
model's checkpoint holds, beside the weights and ``config``:

``labels`` (class names in logit order), ``modality`` (``rgb``, ``depth``, ``rgbd``), ``size`` (input side S),
``depth_mode`` (:func:`~.inputs.depth_channel`), ``backbone``, ``num_classes``, ``width``, ``seed``,
``rgb_normalised`` (RGB as ``(rgb / 255 - RGB_MEAN) / RGB_STD``, :func:`~.inputs.channels`), ``settings``,
``data`` (file and configuration key), ``history``, ``best_epoch``, ``val_acc``, ``test`` (accuracy on the
set's test identities), ``weights_dtype``.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.gesture.backbones import BACKBONES, MODALITIES
from hcgym.perception.gesture.inputs import DEPTH_MODES


@dataclass(frozen=True)
class GestureSettings:
    """What every run of one ``hcgym train gesture`` call shares (``size``: the input side, pixels)."""

    size: int = 64
    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    depth_mode: str = "relative"
    width: float = 1.0

    def check(self) -> GestureSettings:
        for name in ("size", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(f"--{name.replace('_', '-')}", f"expected a positive integer, got {v!r}")
        if self.size < 32:
            raise SpecError("--size", f"expected an input side of at least 32 pixels, got {self.size}")
        if not self.lr > 0:
            raise SpecError("--lr", f"expected > 0, got {self.lr}")
        if self.depth_mode not in DEPTH_MODES:
            raise SpecError("--depth-mode", f"unknown depth mode {self.depth_mode!r} (allowed: {', '.join(DEPTH_MODES)})")
        if not 0 < self.width <= 4:
            raise SpecError("--width", f"expected a width multiplier in (0, 4], got {self.width}")
        return self


def parse_names(text: str, allowed: Sequence[str], field: str) -> tuple[str, ...]:
    """Comma-separated distinct names of ``allowed`` (a :class:`SpecError` naming ``field`` otherwise)."""
    names = tuple(s.strip() for s in str(text).split(",") if s.strip())
    bad = [n for n in names if n not in allowed]
    if not names or bad or len(set(names)) != len(names):
        raise SpecError(field, f"expected distinct names of {', '.join(allowed)} separated by commas, got {text!r}")
    return names


def resize_set(data: Any, size: int) -> Any:
    """A copy of a :class:`~hcgym.synthesis.gesture_data.GestureData` with its crops resized to ``size x size``:
    RGB by area averaging when shrinking (bilinear when enlarging), depth by the nearest pixel (as
    :func:`~.inputs.crop_rgbd` cuts a crop of that size from a frame), crop-pixel keypoints scaled. The same
    set when it already has that size."""
    import cv2

    from hcgym.synthesis.gesture_data import GestureData

    s = data.size
    if size == s:
        return data
    interp = cv2.INTER_AREA if size < s else cv2.INTER_LINEAR
    a = dict(data.data)
    a["rgb"] = np.stack([cv2.resize(x, (size, size), interpolation=interp) for x in a["rgb"]]) if len(data) else \
        np.zeros((0, size, size, 3), np.uint8)
    depth = [cv2.resize(x.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST) for x in a["depth"]]
    a["depth"] = (np.stack(depth) if depth else np.zeros((0, size, size), np.float32)).astype(a["depth"].dtype)
    if "keypoints" in a:
        kp = a["keypoints"].copy()
        kp[..., :2] *= size / s
        a["keypoints"] = kp
    return GestureData(a, dict(data.metadata))


def model_name(backbone: str, modality: str, seed: int, first_seed: int) -> str:
    """``gesture_<backbone>_<modality>``, ``_s<seed>`` for seeds after the first (the classes are in the file)."""
    return f"gesture_{backbone}_{modality}" + (f"_s{seed}" if seed != first_seed else "")


def run_key(backbone: str, modality: str, classes: int, seed: int, settings: GestureSettings,
            data_key: dict[str, Any], tiny: bool, drop: tuple[float, float] = (0.0, 0.0),
            init: dict[str, str] | None = None) -> str:
    """Eight hex digits naming everything that sets a run's result (``drop``: the modality dropout of an RGB-D
    run, :func:`run_augment`; ``init``: the model it starts from, :func:`~.training.init_key`; each counted only when set,
    so the keys of runs without them are unchanged)."""
    from hcgym.perception.action.study import run_key as key

    config: dict[str, Any] = {"classes": classes, "tiny": tiny}
    if modality == "rgbd" and any(drop):
        config["drop"] = [float(drop[0]), float(drop[1])]
    if init is not None:
        config["init"] = init
    return key(f"{backbone}-{modality}", config, seed, settings, {"dataset": data_key})


def run_augment(modality: str, drop: tuple[float, float]) -> Any:
    """The training augmentation of a run: the default, with ``drop = (drop_rgb, drop_depth)`` modality dropout
    for an RGB-D run (:mod:`.augment`; ignored for one input)."""
    from hcgym.perception.gesture.augment import Augment

    if modality != "rgbd" or not any(drop):
        return Augment()
    try:
        return Augment(drop_rgb=float(drop[0]), drop_depth=float(drop[1])).check()
    except SpecError as e:
        raise SpecError("--drop-rgb", e.problem) from None


@dataclass(frozen=True)
class Run:
    """One model to train: its backbone, modality, seed, folder and published name."""

    backbone: str
    modality: str
    seed: int
    folder: Path
    name: str

    @property
    def final(self) -> Path:
        return self.folder / "model.pt"


def plan(out: Path, backbones: Sequence[str], modalities: Sequence[str], seeds: Sequence[int],
         settings: GestureSettings, labels: Sequence[str], data_key: dict[str, Any], tiny: bool = False,
         name: str | None = None, drop: tuple[float, float] = (0.0, 0.0),
         init: dict[str, str] | None = None) -> list[Run]:
    """Every run, backbone-major then modality then seed; ``name`` replaces the published name of a single run."""
    runs = []
    for b in backbones:
        for m in modalities:
            for s in seeds:
                key = run_key(b, m, len(labels), s, settings, data_key, tiny, drop, init)
                runs.append(Run(b, m, s, out / "runs" / f"{b}-{m}-c{len(labels)}-s{s}-{key}",
                                model_name(b, m, s, seeds[0])))
    if name is not None:
        if len(runs) != 1:
            raise SpecError("--name", f"a name is for a single run (one backbone, modality and seed), not {len(runs)}")
        if not name or any(c in name for c in "/\\.") or name.startswith("-"):
            raise SpecError("--name", f"expected a file stem (no folder, no suffix), got {name!r}")
        runs = [Run(runs[0].backbone, runs[0].modality, runs[0].seed, runs[0].folder, name)]
    return runs


def half_copy(model: Any) -> Any:
    """A copy of a :class:`~.training.GestureNet` whose weights and batch-norm statistics are float16 (the input
    normalisation stays float32)."""
    half = copy.deepcopy(model).half()
    half.mean, half.std = model.mean.clone(), model.std.clone()
    return half


def _test_accuracy(model: Any, data: Any, modality: str, depth_mode: str) -> dict[str, float]:
    """Accuracy (%) on the set's ``test`` split with exact depth and, for depth inputs, Kinect-like depth (seed 0)."""
    from hcgym.perception.gesture.training import accuracy

    if not len(data.select("test")):
        return {}
    x, y = data.arrays("test", modality, depth_mode=depth_mode)
    out = {"exact": round(100 * accuracy(model, x, y), 2)}
    if modality != "rgb":
        x, y = data.arrays("test", modality, noise=True, seed=0, depth_mode=depth_mode)
        out["kinect"] = round(100 * accuracy(model, x, y), 2)
    return out


def train_runs(data_path: str | Path, out: str | Path, backbones: Sequence[str], modalities: Sequence[str],
               seeds: Sequence[int], settings: GestureSettings = GestureSettings(), shard: tuple[int, int] = (0, 1),
               threads: int = 1, tiny: bool = False, name: str | None = None, command: str = "",
               log: Callable[[str], None] = print, progress: bool = False,
               drop: tuple[float, float] = (0.0, 0.0), init: str | Path | None = None) -> dict[str, Any]:
    """Train this process's share of the runs and publish each finished one (module docstring); ``drop``:
    ``(drop_rgb, drop_depth)`` modality dropout of the RGB-D runs (:func:`run_augment`); ``init``: a published
    model of the same backbone, width and classes every run starts from
    (:func:`~.training.transfer_weights`; e.g. an RGB-D run from the depth model) instead of from scratch.

    Returns ``{"published": [paths written by this call], "remaining": [run folders not finished]}``.
    """
    from hcgym.synthesis.gesture_data import GestureData

    settings.check()
    backbones = parse_names(",".join(backbones), BACKBONES, "--backbones")
    modalities = parse_names(",".join(modalities), tuple(MODALITIES), "--modalities")
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise SpecError("--seeds", f"expected distinct non-negative seeds, got {list(seeds)}")
    k, n = shard
    if not (isinstance(n, int) and isinstance(k, int) and n >= 1 and 0 <= k < n):
        raise SpecError("--shard", f"expected 0 <= K < N, got {k}/{n}")
    run_augment("rgbd", drop)
    out, data_path = Path(out), Path(data_path)
    if out.exists() and not out.is_dir():
        raise SpecError("--out", f"{out} is not a folder")
    try:
        data = GestureData.load(data_path)
    except SpecError as e:
        raise SpecError("--data", e.problem) from None
    data_key = data.metadata.get("key", {"folder": data.metadata.get("root", str(data_path))})
    labels = data.labels
    init_id = None
    if init is not None:
        from hcgym.perception.gesture.training import init_key

        try:
            init_id = init_key(init)
        except SpecError as e:
            raise SpecError("--init-from", e.problem) from None
    runs = plan(out, backbones, modalities, seeds, settings, labels, data_key, tiny, name, drop, init_id)
    train_idx, val_idx, test_idx = (data.select(s) for s in ("train", "val", "test"))
    if tiny:
        train_idx, val_idx, test_idx = train_idx[:24], val_idx[:8], test_idx[:8]
    if not len(train_idx):
        raise SpecError("--data", f"{data_path} has no training samples")
    data = resize_set(data.subset(np.concatenate([train_idx, val_idx, test_idx])), settings.size)
    published = []
    for i, run in enumerate(runs):
        if i % n != k:
            continue
        if not run.final.is_file():
            log(f"[gesture] run {i + 1}/{len(runs)}: {run.backbone} {run.modality} seed {run.seed} -> {run.folder}")
            _train_one(run, data, labels, settings, threads, tiny, data_path, data_key, progress, log, drop, init,
                       init_id)
        target = out / f"{run.name}.pt"
        if not target.is_file() or target.stat().st_mtime < run.final.stat().st_mtime:
            published.append(_publish(run, data, out, settings, command))
            log(f"[gesture] published {published[-1]}")
    return {"published": published, "remaining": [str(r.folder) for r in runs if not r.final.is_file()]}


def _train_one(run: Run, data: Any, labels: Sequence[str], settings: GestureSettings, threads: int, tiny: bool,
               data_path: Path, data_key: dict[str, Any], progress: bool, log: Callable[[str], None],
               drop: tuple[float, float], init: str | Path | None = None,
               init_id: dict[str, str] | None = None) -> None:
    from hcgym.perception.gesture.training import save_model, train_gesture

    t0 = time.time()
    x_train, y_train = data.arrays("train", run.modality, depth_mode=settings.depth_mode)
    x_val, y_val = data.arrays("val", run.modality, depth_mode=settings.depth_mode)
    has_val = len(y_val) > 0
    width = 0.25 if tiny else settings.width

    def on_epoch(rec: dict[str, Any]) -> None:
        log(f"[gesture] {run.name} epoch {rec['epoch']}/{settings.epochs}: loss {rec['loss']:.3f}, train "
            f"{100 * rec['train_acc']:.1f}%" + (f", val {100 * rec['val_acc']:.1f}%" if "val_acc" in rec else "")
            + f" ({rec['seconds']:.0f} s)")

    run.folder.mkdir(parents=True, exist_ok=True)
    result = train_gesture(run.backbone, run.modality, x_train, y_train, x_val if has_val else None,
                           y_val if has_val else None, epochs=settings.epochs, lr=settings.lr,
                           batch=settings.batch_size, seed=run.seed, threads=threads, checkpoint=run.folder / "state.pt",
                           log=on_epoch, num_classes=len(labels), width=width, progress=progress,
                           aug=run_augment(run.modality, drop), init=init)
    del x_train, x_val
    meta = {"labels": list(labels), "modality": run.modality, "size": settings.size,
            "depth_mode": settings.depth_mode, "backbone": run.backbone, "num_classes": len(labels),
            "width": width, "seed": run.seed, "rgb_normalised": True, "settings": asdict(settings),
            "data": {"file": data_path.name, "key": data_key}, "val_acc": result.best_val_acc,
            "test": _test_accuracy(result.model, data, run.modality, settings.depth_mode),
            "train_seconds": round(time.time() - t0, 1), "weights_dtype": "float32"}
    if run.modality == "rgbd" and any(drop):
        meta["modality_dropout"] = {"rgb": float(drop[0]), "depth": float(drop[1])}
    if init_id is not None:
        meta["init"] = init_id
    save_model(result, run.final, meta)


def _publish(run: Run, data: Any, out: Path, settings: GestureSettings, command: str) -> Path:
    """``OUT/<name>.pt`` with float16 weights and ``OUT/PROVENANCE_<name>.json`` of a finished run."""
    from hcgym.paths import atomic_write_bytes
    from hcgym.perception.gesture.training import GestureTrainResult, load_model, save_model

    model, meta = load_model(run.final, "--out")
    half = half_copy(model)
    meta_half = {k: v for k, v in meta.items() if k not in ("kind", "config", "history", "best_epoch")}
    meta_half["weights_dtype"] = "float16"
    target = out / f"{run.name}.pt"
    save_model(GestureTrainResult(half, meta["config"], meta["history"], meta["best_epoch"]), target, meta_half)
    loaded, _ = load_model(target, "--out")
    test16 = _test_accuracy(loaded, data, run.modality, settings.depth_mode)
    provenance = {"name": run.name, "command": command, "run": run.folder.name, **{
        k: v for k, v in meta.items() if k not in ("kind",)}, "test_float16": test16,
        "file_bytes": target.stat().st_size}
    atomic_write_bytes(out / f"PROVENANCE_{run.name}.json", json.dumps(provenance, indent=1).encode())
    atomic_write_bytes(out / f"{run.name}_training.png", training_png(run.name, meta["history"]))
    return target


def training_png(name: str, history: Sequence[dict[str, Any]]) -> bytes:
    """PNG of a run's training loss and validation accuracy (%) per epoch."""
    from hcgym.report import training_curve

    return training_curve(history, title=f"{name}: training", loss_label="training loss",
                          metric="val_acc", metric_label="validation accuracy (%)", metric_scale=100.0)
