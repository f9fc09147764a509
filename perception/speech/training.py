"""Training of the keyword spotters (OpenDR D3.2 §5.2): MatchboxNet with Self-ONN layers on cached MFCCs.

* Features (:func:`load_features`): the 64 MFCCs (:class:`~.features.MFCC`, per-utterance normalised, 101
  frames a second) of every clip of a :func:`~hcgym.synthesis.speech.keyword_dataset` split, computed once in
  batches and cached in ``DATA/kws-<split>-<count>-s<seed>-<key>.npz``, the key a hash of the data set's
  settings; a file lock lets concurrent processes share one computation.
* :func:`train_run`: the MatchboxNet recipe: NovoGrad (betas 0.95 / 0.5, weight decay 1e-3), the
  warmup-hold-decay schedule set at every step (0.001 to 0.05), batches of 128, cross-entropy, light
  augmentation of the features (:func:`augment`), validation accuracy after every epoch. After every epoch the
  training state (model, optimiser, step, random-generator states, history) is written atomically to
  ``OUT_DIR/last.pt``; a later call with the same run resumes from it and ends with the same weights as an
  uninterrupted run.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError

FEATURE_FORMAT = 1  #: version of the feature cache's layout and front-end
N_MFCC = 64


def _positive(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SpecError(name, f"expected an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class DataSettings:
    """The keyword data sets of a study: ``train_count`` / ``val_count`` / ``test_count`` clips of the train /
    val / test speaker pools, all drawn from ``seed``, with the :func:`~hcgym.synthesis.speech.keyword_dataset`
    options ``snr_db``, ``reverb``, ``rooms`` and ``n_speakers`` (``None``: the split's default pool size)."""

    seed: int = 0
    train_count: int = 6000
    val_count: int = 1200
    test_count: int = 1200
    snr_db: tuple[float, float] = (5.0, 30.0)
    reverb: bool = True
    rooms: int = 24
    n_speakers: int | None = None

    def check(self) -> DataSettings:
        _positive("--seed", self.seed, 0)
        for name in ("train_count", "val_count", "test_count"):
            _positive(f"--{name.replace('_', '-')}", getattr(self, name))
        _positive("rooms", self.rooms)
        if self.n_speakers is not None:
            _positive("n_speakers", self.n_speakers)
        return self

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """The arguments of :func:`~hcgym.synthesis.speech.keyword_dataset` for ``split``."""
        return {"count": int(getattr(self, f"{split}_count")), "seed": int(self.seed), "split": split,
                "snr_db": [float(v) for v in self.snr_db], "reverb": bool(self.reverb), "rooms": int(self.rooms),
                "n_speakers": self.n_speakers}


@dataclass
class Features:
    """MFCCs ``x`` (N, 64, frames) float32 and labels ``y`` (N,) int64 (indices of ``CLASSES``) of one split,
    the clips' ``meta`` (see :class:`~hcgym.synthesis.speech.KeywordSet`), the data set's ``settings`` and the
    cache ``key``."""

    x: np.ndarray
    y: np.ndarray
    meta: list[dict]
    settings: dict[str, Any]
    key: str

    def __len__(self) -> int:
        return int(self.y.shape[0])


def feature_key(kwargs: dict[str, Any]) -> str:
    """Ten hex digits naming the features of the data set made by ``kwargs`` (and the front-end's version)."""
    blob = json.dumps({"format": FEATURE_FORMAT, "mfcc": {"n_mfcc": N_MFCC, "normalize": True}, "dataset": kwargs},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def mfcc_batches(audio: np.ndarray, batch: int = 256) -> np.ndarray:
    """``(N, samples)`` 16 kHz audio -> ``(N, 64, 1 + samples // 160)`` float32 normalised MFCCs, ``batch`` clips
    at a time."""
    import torch

    from hcgym.perception.speech.features import MFCC

    mfcc = MFCC(N_MFCC).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(audio), batch):
            out.append(mfcc(torch.from_numpy(np.ascontiguousarray(audio[i:i + batch], np.float32))).numpy())
    return np.concatenate(out)


def load_features(data_dir: str | Path, split: str, data: DataSettings, progress: bool = False,
                  log: Callable[[str], None] = print) -> Features:
    """The features of ``split`` of ``data``, from the cache in ``data_dir`` or computed (and cached) now."""
    import fcntl

    from hcgym.paths import atomic_write_bytes
    from hcgym.synthesis.speech import dataset as keyword_data
    from hcgym.synthesis.speech.keywords import check_split

    check_split(split)
    kwargs = data.check().dataset_kwargs(split)
    key = feature_key(kwargs)
    data_dir = Path(data_dir)
    path = data_dir / f"kws-{split}-{kwargs['count']}-s{kwargs['seed']}-{key}.npz"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / f".{path.stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process computing the same set: wait for its file
        if not path.is_file():
            t0 = time.time()
            clips = keyword_data.keyword_dataset(**{**kwargs, "snr_db": tuple(kwargs["snr_db"])}, progress=progress)
            x = mfcc_batches(clips.audio)
            buf = io.BytesIO()
            np.savez(buf, x=x, y=clips.y, meta=np.array(json.dumps(clips.meta)), settings=np.array(json.dumps(kwargs)))
            atomic_write_bytes(path, buf.getvalue())
            log(f"[speech] {split}: {len(clips)} clips -> MFCC {x.shape} in {time.time() - t0:.0f} s -> {path}")
    with np.load(path, allow_pickle=False) as z:
        if json.loads(str(z["settings"])) != kwargs:
            raise SpecError("--data-dir", f"{path} holds another data set; delete it")
        return Features(x=z["x"], y=z["y"], meta=json.loads(str(z["meta"])), settings=kwargs, key=key)


@dataclass(frozen=True)
class TrainSettings:
    """What a training run of :func:`train_run` is made of (besides configuration, seed and data).

    ``width``: C of MatchboxNet-3x1xC. Augmentation (:func:`augment`): a time shift of up to ``shift`` frames
    either way, ``freq_masks`` frequency masks of up to ``freq_width`` coefficients and ``time_masks`` time
    masks of up to ``time_width`` frames."""

    epochs: int = 8
    batch_size: int = 128
    lr_max: float = 0.05
    lr_min: float = 0.001
    betas: tuple[float, float] = (0.95, 0.5)
    weight_decay: float = 1e-3
    width: int = 64
    shift: int = 10
    freq_masks: int = 2
    freq_width: int = 10
    time_masks: int = 2
    time_width: int = 10

    def check(self) -> TrainSettings:
        for name in ("epochs", "batch_size", "width"):
            _positive(f"--{name.replace('_', '-')}", getattr(self, name))
        for name in ("shift", "freq_masks", "freq_width", "time_masks", "time_width"):
            _positive(name, getattr(self, name), 0)
        if not 0 < self.lr_min <= self.lr_max:
            raise SpecError("lr_min", f"expected 0 < lr_min <= lr_max, got {self.lr_min!r}, {self.lr_max!r}")
        if not self.weight_decay >= 0:
            raise SpecError("weight_decay", f"expected >= 0, got {self.weight_decay!r}")
        return self


def augment(x: np.ndarray, rng: np.random.Generator, settings: TrainSettings) -> np.ndarray:
    """A new ``(B, F, T)`` float32 array: every item of ``x`` shifted in time by a whole number of frames
    uniform in ``[-shift, shift]`` (later for positive shifts; the edge frame repeated into the gap), then
    SpecAugment masks set to 0 (the mean of the normalised coefficients): ``freq_masks`` bands of a width
    uniform in ``[0, freq_width]`` coefficients and ``time_masks`` spans of ``[0, time_width]`` frames, each
    at a uniform start, all drawn from ``rng``."""
    b, f, t = x.shape
    shifts = rng.integers(-settings.shift, settings.shift + 1, b)
    idx = np.clip(np.arange(t)[None, :] - shifts[:, None], 0, t - 1)
    out = np.take_along_axis(x, np.broadcast_to(idx[:, None, :], x.shape), axis=2).astype(np.float32)
    for axis, masks, width, size in ((1, settings.freq_masks, settings.freq_width, f),
                                     (2, settings.time_masks, settings.time_width, t)):
        pos = np.arange(size)[None, :]
        for _ in range(masks):
            w = rng.integers(0, min(width, size) + 1, b)
            start = rng.integers(0, size - w + 1)
            band = (pos >= start[:, None]) & (pos < (start + w)[:, None])  # (B, size)
            out[np.broadcast_to(np.expand_dims(band, 3 - axis), out.shape)] = 0.0
    return out


def build_model(config: str, classes: int, settings: TrainSettings, tanh: bool = True) -> Any:
    """A fresh :class:`~.matchboxnet.MatchboxNet` of ``config`` on 64 MFCCs, ``settings.width`` channels."""
    from hcgym.perception.speech.matchboxnet import MatchboxNet

    return MatchboxNet(classes, config, in_features=N_MFCC, width=settings.width, tanh=tanh)


def predict(model: Any, features: Features) -> np.ndarray:
    """(N,) int64 predicted classes of ``model`` (evaluation mode) on ``features``."""
    from hcgym.perception.biosignal.training import predict_proba

    return predict_proba(model, features.x).argmax(axis=1)


def accuracy(model: Any, features: Features) -> float:
    """Accuracy (%) of ``model`` on ``features``, rounded to 0.01."""
    return round(100.0 * float(np.mean(predict(model, features) == features.y)), 2)


def _run_identity(config: str, seed: int, tanh: bool, settings: TrainSettings, train: Features,
                  val: Features) -> dict[str, Any]:
    return {"config": config, "seed": int(seed), "tanh": bool(tanh), "settings": asdict(settings),
            "train": train.key, "val": val.key}


def train_run(config: str, seed: int, train: Features, val: Features, settings: TrainSettings, *,
              tanh: bool = True, out_dir: str | Path | None = None, threads: int = 1, classes: int | None = None,
              log: Callable[[str], None] = print) -> tuple[Any, list[dict[str, Any]]]:
    """Train MatchboxNet ``config`` (A-F) from ``seed`` on ``train`` and return ``(model, history)``.

    ``history`` holds per epoch: ``epoch``, mean training ``loss``, ``train_acc`` (%, on the augmented
    batches), ``val_acc`` (%), the last step's ``lr``, ``nonfinite`` (steps whose loss was NaN or infinite) and
    ``seconds``. The model is in evaluation mode. With ``out_dir`` the run resumes from ``out_dir/last.pt``
    (it must belong to the same run). ``classes``: default ``max(label) + 1`` over both sets.
    """
    import torch

    from hcgym.perception.detection.sensor import load_tensors
    from hcgym.perception.speech.optim import NovoGrad, warmup_hold_decay
    from hcgym.perception.training_common import save_training_state

    settings.check()
    _positive("--seeds", seed, 0)
    _positive("--threads", threads)
    if not len(train) or not len(val):
        raise SpecError("--train-count", "the training and validation sets must not be empty")
    torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))
    classes = int(classes or max(int(train.y.max()), int(val.y.max())) + 1)
    model = build_model(config, classes, settings, tanh)
    opt = NovoGrad(model.parameters(), lr=settings.lr_min, betas=settings.betas, weight_decay=settings.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = min(settings.batch_size, len(train))
    steps_per_epoch = len(train) // batch
    total = steps_per_epoch * settings.epochs
    rng = np.random.default_rng([int(seed), 1])
    identity = _run_identity(config, seed, tanh, settings, train, val)
    history: list[dict[str, Any]] = []
    start = 0
    state_path = Path(out_dir) / "last.pt" if out_dir is not None else None
    if state_path is not None and state_path.is_file():
        state = load_tensors(state_path, "--out", "keyword-spotter training state",
                             "Delete it or use another --out to train from the start.")
        if not isinstance(state, dict) or state.get("run") != identity:
            raise SpecError("--out", f"{state_path} belongs to another run; delete it or use another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        start, history = int(state["epoch"]), list(state["history"])
        log(f"[speech] {config} seed {seed}: resuming after epoch {start}")
    for epoch in range(start, settings.epochs):
        t0, losses, correct, nonfinite = time.time(), [], 0, 0
        order = rng.permutation(len(train))
        model.train()
        for s in range(steps_per_epoch):
            lr = warmup_hold_decay(epoch * steps_per_epoch + s, total, settings.lr_min, settings.lr_max)
            for group in opt.param_groups:
                group["lr"] = lr
            idx = np.sort(order[s * batch:(s + 1) * batch])
            inputs = torch.from_numpy(augment(train.x[idx], rng, settings))
            labels = torch.from_numpy(train.y[idx])
            logits = model(inputs)
            loss = loss_fn(logits, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            nonfinite += not np.isfinite(value)
            losses.append(value)
            correct += int((logits.detach().argmax(1) == labels).sum())
        record = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4),
                  "train_acc": round(100.0 * correct / (steps_per_epoch * batch), 2),
                  "val_acc": accuracy(model, val), "lr": round(lr, 6), "nonfinite": int(nonfinite),
                  "seconds": round(time.time() - t0, 1)}
        history.append(record)
        if state_path is not None:
            save_training_state(state_path, {
                "run": identity, "model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                "step": (epoch + 1) * steps_per_epoch, "numpy_rng": json.dumps(rng.bit_generator.state),
                "torch_rng": torch.get_rng_state(), "history": history})
        log(f"[speech] {config}{'' if tanh else ' (no tanh)'} seed {seed} {json.dumps(record)}")
    return model.eval(), history
