"""Training of the in-house face embedder (IRNet + ArcFace loss) on aligned face chips.

Data come as arrays (chips (N, S, S, 3) uint8 RGB aligned to the ArcFace template, labels (N,));
``hcgym train face-embedder`` renders them from avatars with
:func:`hcgym.synthesis.face_crops.generate_face_crops`. Training is resumable: every epoch
writes ``last.pt`` (model) and ``last.state.pt`` (optimizer, scheduler, RNG, history).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hcgym.perception.face.gallery import kfold_verification
from hcgym.perception.face.irnet import (
    DEFAULT_UNITS,
    ArcFaceLoss,
    IRNet,
    chips_to_input,
    save_checkpoint,
)


@dataclass
class TrainConfig:
    """Hyper-parameters (defaults train in about 15-25 minutes on 2 CPU cores for 500 x 40 chips)."""

    epochs: int = 24
    batch_size: int = 128
    lr: float = 0.1  #: SGD (momentum 0.9, Nesterov) with one warm-up epoch and cosine decay.
    weight_decay: float = 5e-4
    arcface_s: float = 32.0
    arcface_m: float = 0.5
    # Slimmer than irnet.DEFAULT_* (about half the FLOPs: 44 MFLOPs per 56x56 face) so that 24 epochs fit
    # in about half an hour of CPU, yet with enough late-stage compute that exit 1 *including* its BoF
    # head stays under a quarter of the full network.
    units: tuple[int, ...] = DEFAULT_UNITS
    widths: tuple[int, ...] = (16, 48, 96, 192)
    expansions: tuple[int, ...] = (1, 4, 4, 4)
    input_size: int = 56
    embedding_dim: int = 512
    val_identities: int = 25  #: identities held out of training for the per-epoch verification check.
    seed: int = 0
    threads: int = 2


@dataclass
class TrainResult:
    model: IRNet
    history: list[dict] = field(default_factory=list)

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def split_identities(labels: np.ndarray, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, val) holding out ``n_val`` whole identities."""
    ids = np.unique(labels)
    rng = np.random.default_rng(seed)
    val_ids = rng.choice(ids, size=min(n_val, max(len(ids) - 2, 0)), replace=False) if n_val else np.array([], int)
    val = np.isin(labels, val_ids)
    return ~val, val


def embed_chips(model: IRNet, chips: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, S, S, 3) uint8 aligned chips -> (N, D) embeddings (eval mode)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(chips), batch):
            x = torch.from_numpy(chips_to_input(chips[i:i + batch], model.input_size))
            out.append(model(x).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.embedding_dim), np.float32)


def verification_pairs(labels: np.ndarray, n_pairs: int, seed: int) -> np.ndarray:
    """(n, 3) random (a, b, same) pairs, half same identity."""
    rng = np.random.default_rng(seed)
    by = {int(lab): np.flatnonzero(labels == lab) for lab in np.unique(labels)}
    ids = [k for k, v in by.items() if len(v) >= 2]
    rows = []
    for i in range(n_pairs):
        if i % 2 == 0:
            a, b = rng.choice(by[int(rng.choice(ids))], 2, replace=False)
            rows.append((a, b, 1))
        else:
            la, lb = rng.choice(list(by), 2, replace=False)
            rows.append((rng.choice(by[int(la)]), rng.choice(by[int(lb)]), 0))
    return np.asarray(rows, dtype=np.int64)


def pair_accuracy(emb: np.ndarray, pairs: np.ndarray) -> tuple[float, float]:
    """10-fold verification accuracy (mean, std in %) of L2-normalised embeddings on pairs."""
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    d = np.linalg.norm(e[pairs[:, 0]] - e[pairs[:, 1]], axis=1)
    cv = kfold_verification(d, pairs[:, 2].astype(bool))
    return cv.mean, cv.std


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Flip, shift (+-3 px), brightness/contrast jitter on a normalised batch (N, 3, S, S)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = 3
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
    s = x.shape[-1]
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    x = torch.stack([xp[i, :, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(n)])
    contrast = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    bright = 0.3 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    return (x * contrast + bright).clamp(-1.0, 1.0)


def train_embedder(chips: np.ndarray, labels: np.ndarray, cfg: TrainConfig = TrainConfig(),
                   out_dir: str | Path | None = None, log: Callable[[str], None] = print,
                   progress: bool = True) -> TrainResult:
    """Train an IRNet with the ArcFace loss; resumes from ``out_dir/last.pt`` when it exists."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    train_m, val_m = split_identities(labels, cfg.val_identities, cfg.seed)
    classes, y_all = np.unique(labels[train_m], return_inverse=True)
    x_train = torch.from_numpy(chips_to_input(chips[train_m], cfg.input_size))
    y_train = torch.from_numpy(y_all.astype(np.int64))
    val_chips, val_pairs = chips[val_m], None
    if val_m.any():
        val_pairs = verification_pairs(labels[val_m], 2000, cfg.seed)
    model = IRNet(cfg.units, cfg.widths, cfg.expansions, cfg.input_size, cfg.embedding_dim)
    head = ArcFaceLoss(cfg.embedding_dim, len(classes), cfg.arcface_s, cfg.arcface_m)
    params = [{"params": model.parameters()}, {"params": head.parameters()}]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(x_train) / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        if step < steps_per_epoch:
            return cfg.lr * (step + 1) / steps_per_epoch
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - steps_per_epoch) / max(1, total - steps_per_epoch)))

    history: list[dict] = []
    start_epoch = 0
    g = torch.Generator().manual_seed(cfg.seed)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and (out / "last.state.pt").exists():
        state = torch.load(out / "last.state.pt", map_location="cpu", weights_only=True)
        if state.get("config") == asdict(cfg):
            model.load_state_dict(state["model"])
            head.load_state_dict(state["head"])
            opt.load_state_dict(state["opt"])
            g.set_state(state["rng"])
            history, start_epoch = state["history"], state["epoch"]
            log(f"resuming from epoch {start_epoch}")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start_epoch * steps_per_epoch, desc="train face-embedder", unit="step")
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        head.train()
        perm = torch.randperm(len(x_train), generator=g)
        t0, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
        for k in range(steps_per_epoch):
            step = epoch * steps_per_epoch + k
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            idx = perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            xb, yb = _augment(x_train[idx], g), y_train[idx]
            emb = model(xb)
            loss = head(emb, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                correct += int((head.logits(emb, yb).argmax(1) == yb).sum())
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
            if bar:
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.3f}")
        rec = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "train_acc": 100.0 * correct / max(seen, 1),
               "seconds": time.perf_counter() - t0}
        if val_pairs is not None:
            rec["val_verification"], rec["val_verification_std"] = pair_accuracy(embed_chips(model, val_chips),
                                                                                 val_pairs)
        history.append(rec)
        log(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rec.items()}))
        if out is not None:
            import io

            from hcgym.paths import atomic_write_bytes

            out.mkdir(parents=True, exist_ok=True)
            save_checkpoint(model, out / "last.pt", extra_meta={"history": history, "train_config": asdict(cfg)})
            buf = io.BytesIO()
            torch.save({"config": asdict(cfg), "model": model.state_dict(), "head": head.state_dict(),
                        "opt": opt.state_dict(), "rng": g.get_state(), "history": history, "epoch": epoch + 1}, buf)
            atomic_write_bytes(out / "last.state.pt", buf.getvalue())
    if bar:
        bar.close()
    model.eval()
    return TrainResult(model, history)
