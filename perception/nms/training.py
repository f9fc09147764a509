"""Training Seq2Seq-NMS on detector candidates (reference summary §2.2(d), (e); OpenDR learner).

One iteration = one image (batch size 1), its candidates sorted by detector score, descending:

1. **Augmentation**: a random 85 % of the candidates are kept (order preserved).
2. **Forward**: ``p = model.rescore(...)`` on the kept candidates (dropout on).
3. **Labels** (:func:`training_targets`): greedy matching ordered by the network's *current* output
   ``p`` (not the detector score), strict IoU > 0.5, against the non-ignored target boxes
   (:func:`~hcgym.perception.nms.seq2seq.match_labels`). A candidate that matches no person but lies
   inside an ignore region (intersection over its own area > 0.5, COCOeval's ``iscrowd`` overlap) is
   **left out of the loss**: the evaluation neither rewards nor punishes it, so training does not
   either.
4. **Label smoothing**: ``y <- y (1 - eps) + (1 - y) eps``, ``eps ~ U(0.02, 0.0205)`` per image.
5. **Loss**: weighted BCE (:func:`~hcgym.perception.nms.seq2seq.weighted_bce`, summed over the
   candidates) with the class weights of the whole training set (:func:`class_weights`, ``c = 0.1``,
   counts capped at ``max_candidates``; positives = non-ignored people).
6. **Optimiser**: Adam (0.9, 0.99, 1e-9); learning rate ``lr`` for the first half of the epochs,
   ``lr / 10`` for the next 3/8, ``lr / 100`` for the last 1/8 (8 epochs: 4 / 3 / 1; :func:`lr_factor`).

The FMoD descriptors of every candidate are computed once (they do not depend on the weights; the
image-brightness augmentation of the OpenDR code, which would change them, is not used) and kept in
memory as float32: ``315 x 4`` bytes per candidate, 0.5 MB per image at 400 candidates. The model's
z-score statistics come from the training descriptors (``set_normalisation``).

Deterministic for a seed on one thread: the seed fixes the initial weights; the image order, the
kept subsets and ``eps`` of epoch ``e`` come from ``numpy.random.default_rng([seed, e])``; dropout
draws from torch's global generator, whose state is saved with every epoch, so a resumed run gives
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hcgym.errors import SpecError
from hcgym.perception.nms.candidates import CandidateSet
from hcgym.perception.nms.seq2seq import (
    Seq2SeqConfig,
    Seq2SeqNMSNet,
    class_weights,
    edge_map,
    match_labels,
    weighted_bce,
)

STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainSettings:
    """Training hyperparameters (defaults: the seed's PETS/COCO settings).

    Attributes:
        epochs: passes over the training images (paper 8).
        lr: initial learning rate (paper 1e-4), divided by 10 and 100 by :func:`lr_factor`.
        betas, eps: Adam's (paper 0.9, 0.99 and 1e-9).
        c: the class-weight constant of eq. (12) (paper 0.1).
        smoothing: range of the label-smoothing ``eps``.
        keep_fraction: share of the candidates kept per iteration (augmentation).
        max_candidates: at most this many highest-scoring candidates per image.
        match_iou: labels need IoU strictly above it with a person.
        seed: weights, order and augmentation.
    """

    epochs: int = 8
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-9
    c: float = 0.1
    smoothing: tuple[float, float] = (0.02, 0.0205)
    keep_fraction: float = 0.85
    max_candidates: int = 400
    match_iou: float = 0.5
    seed: int = 0

    def check(self) -> TrainSettings:
        for name in ("epochs", "max_candidates"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(f"--{name.replace('_', '-')}", f"expected a positive integer, got {v!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SpecError("--lr", f"expected a positive learning rate, got {self.lr!r}")
        if not 0 < self.keep_fraction <= 1:
            raise SpecError("keep_fraction", f"expected a fraction in (0, 1], got {self.keep_fraction!r}")
        if not 0 < self.c < 1:
            raise SpecError("c", f"expected a number in (0, 1), got {self.c!r}")
        return self


def lr_factor(epoch: int, epochs: int) -> float:
    """Learning-rate factor of 0-based ``epoch``: 1 for the first ``ceil(E/2)`` epochs, 0.1 up to
    ``ceil(7E/8)``, 0.01 after (E = 8: 4 / 3 / 1; E = 12: 6 / 5 / 1)."""
    if epoch < math.ceil(epochs / 2):
        return 1.0
    if epoch < math.ceil(7 * epochs / 8):
        return 0.1
    return 0.01


# ------------------------------------------------------------------ examples and labels


@dataclass
class Example:
    """One image's model inputs: raw FMoD descriptors ``app`` (N, D), ``boxes`` (N, 4), ``scores``
    (N,), ``wh`` (2,) (torch float32, by score, descending), the non-ignored person boxes ``gt``
    (G, 4) and the ignore regions ``regions`` (R, 4) (numpy)."""

    app: torch.Tensor
    boxes: torch.Tensor
    scores: torch.Tensor
    wh: torch.Tensor
    gt: np.ndarray
    regions: np.ndarray


def prepare_examples(cset: CandidateSet, model: Seq2SeqNMSNet, max_candidates: int,
                     progress: bool = True, desc: str = "FMoD") -> list[Example]:
    """Edge maps and FMoD descriptors of the first ``max_candidates`` candidates of every image."""
    iterator: Any = cset.cap(max_candidates)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=desc, unit="img", dynamic_ncols=True)
    out = []
    for im in iterator:
        boxes = torch.as_tensor(np.asarray(im.boxes, np.float32)).reshape(-1, 4)
        wh = torch.tensor([float(im.width), float(im.height)])
        if len(boxes):
            edges, _ = edge_map(im.image(), model.config.max_side)
            with torch.no_grad():
                app = model.appearance(edges, boxes, wh)
        else:
            app = torch.zeros(0, model.config.d_appearance)
        out.append(Example(app, boxes, torch.as_tensor(np.asarray(im.scores, np.float32)), wh,
                           im.gt_boxes[~im.gt_ignore], im.gt_boxes[im.gt_ignore]))
    return out


def crowd_overlap(boxes: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """``(N, R)`` intersection over the box's own area: COCOeval's overlap with ``iscrowd`` regions."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    regions = np.asarray(regions, np.float64).reshape(-1, 4)
    if len(boxes) == 0 or len(regions) == 0:
        return np.zeros((len(boxes), len(regions)))
    iw = np.minimum(boxes[:, None, 2], regions[None, :, 2]) - np.maximum(boxes[:, None, 0], regions[None, :, 0])
    ih = np.minimum(boxes[:, None, 3], regions[None, :, 3]) - np.maximum(boxes[:, None, 1], regions[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[:, None]
    return np.where(area > 0, inter / np.where(area > 0, area, 1.0), 0.0)


def training_targets(boxes: np.ndarray, order_scores: np.ndarray, gt: np.ndarray, regions: np.ndarray,
                     iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (N,), in_loss (N,) bool)``: greedy labels in the order of ``order_scores`` against the
    non-ignored people ``gt``; unmatched candidates inside an ignore region are left out of the loss."""
    y = match_labels(boxes, order_scores, gt, iou_threshold)
    inside = crowd_overlap(boxes, regions).max(axis=1, initial=0.0) > iou_threshold
    return y, (y > 0) | ~inside


def dataset_class_weights(examples: list[Example], c: float, max_candidates: int) -> tuple[float, float]:
    """Eq. (12) over the training set: positives = non-ignored people, candidates = ``len(boxes)``."""
    return class_weights([len(e.gt) for e in examples], [len(e.boxes) for e in examples], c=c,
                         max_dets=max_candidates)


def example_loss(model: Seq2SeqNMSNet, ex: Example, w0: float, w1: float, settings: TrainSettings,
                 rng: np.random.Generator | None = None) -> torch.Tensor | None:
    """The loss of one image; ``rng`` draws the kept subset and ``eps`` (None: all candidates, no
    smoothing). None when no candidate is left in the loss."""
    n = len(ex.boxes)
    if n == 0:
        return None
    idx = np.arange(n)
    eps = 0.0
    if rng is not None:
        k = max(1, int(round(settings.keep_fraction * n)))
        idx = np.sort(rng.choice(n, size=k, replace=False))
        eps = float(rng.uniform(*settings.smoothing))
    dev = ex.app.device
    t = torch.as_tensor(idx, device=dev)
    boxes = ex.boxes[t]
    p = model.rescore(ex.app[t], boxes, ex.scores[t], ex.wh)[0]
    y, in_loss = training_targets(boxes.cpu().numpy(), p.detach().cpu().numpy(), ex.gt, ex.regions,
                                  settings.match_iou)
    if not in_loss.any():
        return None
    y = y * (1.0 - eps) + (1.0 - y) * eps
    sel = torch.as_tensor(np.flatnonzero(in_loss), device=dev)
    return weighted_bce(p[sel], torch.as_tensor(y[in_loss], dtype=p.dtype, device=dev), w0, w1)


def mean_loss(model: Seq2SeqNMSNet, examples: list[Example], w0: float, w1: float, settings: TrainSettings) -> float:
    """Mean per-image loss in eval mode, all candidates, no smoothing (labels by the model's own order)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        losses = [loss.item() for ex in examples
                  if (loss := example_loss(model, ex, w0, w1, settings)) is not None]
    model.train(was)
    return float(np.mean(losses)) if losses else float("nan")


def validation_ap50(model: Seq2SeqNMSNet, examples: list[Example], cset: CandidateSet, max_dets: int) -> float:
    """AP0.5 (fraction) of the model's rescored candidates (all kept) on a validation set."""
    from hcgym.perception.nms.metrics import coco_ap

    was = model.training
    model.eval()
    dets = []
    with torch.no_grad():
        for ex in examples:
            p = model.rescore(ex.app, ex.boxes, ex.scores, ex.wh)[0] if len(ex.boxes) else torch.zeros(0)
            dets.append((ex.boxes.numpy(), p.numpy()))
    model.train(was)
    return coco_ap(cset.images, dets, max_dets)["ap50"]


# ------------------------------------------------------------------ the loop


@dataclass
class TrainResult:
    """What :func:`train_seq2seq` returns: the trained ``model`` (eval mode), per-epoch ``history``
    (``epoch``, ``lr``, ``loss`` = mean per image, ``val_ap50``, ``seconds``), ``class_weights``
    ``(w0, w1)`` and whether training ``finished`` (False when stopped by ``stop_after``)."""

    model: Seq2SeqNMSNet
    history: list[dict[str, Any]] = field(default_factory=list)
    class_weights: tuple[float, float] = (1.0, 1.0)
    finished: bool = True


def _run_key(train: CandidateSet, settings: TrainSettings, config: Seq2SeqConfig) -> dict[str, Any]:
    """What a resumed run must share with the saved one."""
    return {"settings": json.loads(json.dumps(asdict(settings))), "config": asdict(config),
            "candidates": {k: train.meta.get(k) for k in ("detector", "fingerprint", "source", "pre_nms_iou")},
            "images": len(train), "n_candidates": train.n_candidates}


def _save_state(path: Path, state: dict[str, Any]) -> None:
    from hcgym.paths import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _to(ex: Example, device: str) -> Example:
    return Example(ex.app.to(device), ex.boxes.to(device), ex.scores.to(device), ex.wh.to(device), ex.gt, ex.regions)


def train_seq2seq(train: CandidateSet, val: CandidateSet | None = None, settings: TrainSettings | None = None,
                  config: Seq2SeqConfig | None = None, out_dir: str | Path | None = None, resume: bool = False,
                  progress: bool = True, stop_after: int | None = None, device: str = "cpu") -> TrainResult:
    """Train Seq2Seq-NMS on ``train`` (see the module docstring); validation AP0.5 on ``val`` per epoch.

    With ``out_dir``, the state after every epoch goes to ``out_dir/train_state.pt``; ``resume``
    continues from it (a :class:`SpecError` if it is missing or was made with other settings, data
    or model config). ``stop_after`` ends the run after that many epochs in total (for tests).
    ``device`` (``cpu``, ``cuda``) is where the network trains; features are computed on the CPU.
    """
    settings = (settings or TrainSettings()).check()
    config = (config or Seq2SeqConfig()).check()
    if len(train) == 0:
        raise SpecError("data", "the training set has no images")
    torch.manual_seed(settings.seed)
    model = Seq2SeqNMSNet(config)
    examples = prepare_examples(train, model, settings.max_candidates, progress, "FMoD train")
    if not any(len(e.boxes) for e in examples):
        raise SpecError("data", "the training set has no candidates")
    model.set_normalisation(torch.cat([e.app for e in examples]))
    val_examples = prepare_examples(val, model, settings.max_candidates, progress, "FMoD val") \
        if val is not None and len(val) else None
    w0, w1 = dataset_class_weights(examples, settings.c, settings.max_candidates)
    if device != "cpu":
        model.to(device)
        examples = [_to(e, device) for e in examples]
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=settings.betas, eps=settings.eps)
    key = _run_key(train, settings, config)
    history: list[dict[str, Any]] = []
    state_path = Path(out_dir) / STATE_FILE if out_dir is not None else None
    start = 0
    if resume:
        if state_path is None or not state_path.is_file():
            raise SpecError("--resume", f"no training state to resume from: {state_path}")
        state = torch.load(state_path, map_location=device, weights_only=True)
        if state.get("key") != key:
            raise SpecError("--resume", f"{state_path} was made with other settings, data or model config; "
                                        f"start without --resume (or use another --out)")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"].cpu())
        history, start = state["history"], int(state["epoch"])
    model.train()
    end = settings.epochs if stop_after is None else min(settings.epochs, stop_after)
    for epoch in range(start, end):
        t0 = time.perf_counter()
        lr = settings.lr * lr_factor(epoch, settings.epochs)
        for group in opt.param_groups:
            group["lr"] = lr
        rng = np.random.default_rng([settings.seed, epoch])
        order = rng.permutation(len(examples))
        iterator: Any = order
        if progress:
            from tqdm import tqdm

            iterator = tqdm(order, desc=f"epoch {epoch + 1}/{settings.epochs}", unit="img", dynamic_ncols=True)
        losses = []
        for i in iterator:
            loss = example_loss(model, examples[i], w0, w1, settings, rng)
            if loss is None:
                continue
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if progress and len(losses) % 10 == 0:
                iterator.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if val_examples:
            model.cpu()
            val_ap50 = validation_ap50(model, val_examples, val, settings.max_candidates)
            model.to(device)
        else:
            val_ap50 = None
        history.append({"epoch": epoch + 1, "lr": lr, "loss": float(np.mean(losses)) if losses else float("nan"),
                        "val_ap50": val_ap50, "seconds": round(time.perf_counter() - t0, 2)})
        if progress:
            ap = "n/a" if val_ap50 is None else f"{100 * val_ap50:.1f}%"
            print(f"[train] epoch {epoch + 1}: loss {history[-1]['loss']:.4f}, val AP0.5 {ap}", flush=True)
        if state_path is not None:
            _save_state(state_path, {"key": key, "epoch": epoch + 1, "model": model.state_dict(),
                                     "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                                     "history": history})
    model.cpu().eval()
    return TrainResult(model, history, (w0, w1), finished=end == settings.epochs)
