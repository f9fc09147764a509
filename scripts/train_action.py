"""``hcgym train action``: train an action model on an action-data cache (clip generator + ``prepare``).

Models (``--model``): ``x3d`` (RGB clips, the X3D-like 3D CNN with ``--attention``), ``stgcn`` / ``agcn``
(skeletons from ``--skeleton truth|mediapipe``), ``mmtm`` (both streams fused). ``--star-from CKPT``
fine-tunes the stride-1 "*" variant of a trained ST-GCN/AGCN from its weights. Scores the ``val`` split
after every epoch; writes ``OUT/action_<model>.pt``, ``OUT/PROVENANCE.json`` (command, seed, data,
settings, per-epoch loss and accuracy) and ``OUT/training_curve.png``. Epochs are resumable
(``--resume``). The data::

    hcgym generate --mode clips --labels actions --n 1616 --seed 7 --identities 24 --splits 0.7,0.1,0.2 \\
        --clip-seconds 3.2 --fps 12.5 --workers 2 --out DATA/clips
    python -c "from hcgym.synthesis.action_data import prepare; prepare('DATA/clips', 'DATA/actions_112.npz')"
    hcgym train action --data DATA/actions_112.npz --model stgcn --out out/stgcn
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hcgym.errors import SpecError
from hcgym.scripts import _args

#: ``--attention`` choices: ``BLOCK[-MODE]`` with BLOCK se|cbam (or ``none``) and MODE ign1|ign2|ign3.
ATTENTION = ("none", "se", "se-ign1", "se-ign2", "se-ign3", "cbam", "cbam-ign1", "cbam-ign2", "cbam-ign3")
#: Default model sizes for the cached clips (40 frames at 112x112): X3D on 16-frame windows; GCNs with a
#: temporal kernel of 5 so the unpadded receptive field (29 frames, 21 for "*") fits the clip.
X3D_DEFAULT = {"frames": 16, "size": 112}
GCN_DEFAULT = {"channels": [24, 24, 48, 48, 96], "strides": [1, 1, 2, 1, 1], "temporal_kernel": 5}


def register(targets: argparse._SubParsersAction) -> None:
    d = targets.add_parser("action", help="an action model (X3D, ST-GCN, AGCN, MMTM) on generated clips",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(d)
    d.set_defaults(func=run)


def add_arguments(d: argparse.ArgumentParser) -> None:
    d.add_argument("--data", type=Path, required=True, help="action-data cache (.npz from action_data.prepare)")
    d.add_argument("--model", choices=("x3d", "stgcn", "agcn", "mmtm"), default="stgcn")
    d.add_argument("--attention", choices=ATTENTION, default="se", help="X3D / MMTM attention and ignore mode")
    d.add_argument("--alpha", type=float, default=0.5, help="the ign1 factor")
    d.add_argument("--skeleton", choices=("truth", "mediapipe"), default="truth", help="skeleton source")
    d.add_argument("--star-from", type=Path, default=None, help="fine-tune the stride-1 '*' variant of this GCN")
    d.add_argument("--out", type=Path, default=Path("out/action"), help="where the model files go")
    d.add_argument("--epochs", type=_args.positive_int, default=30)
    d.add_argument("--batch-size", type=_args.positive_int, default=16)
    d.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (Adam, cosine decay)")
    d.add_argument("--seed", type=_args.seed, default=0)
    d.add_argument("--threads", type=_args.positive_int, default=2, help="torch CPU threads")
    d.add_argument("--resume", action="store_true", help="continue from OUT/train_state/last.pt")
    d.add_argument("--tiny", action="store_true", help="a seconds-long smoke configuration (tests, CI)")


def model_config(args: argparse.Namespace, num_classes: int, frames: int, size: int) -> dict[str, Any]:
    """The config dict of :func:`hcgym.perception.action.training.build_model` for the arguments."""
    block, _, mode = args.attention.partition("-")
    x3d = {**X3D_DEFAULT, "size": size, "num_classes": num_classes, "attention": block,
           "attention_mode": mode or "plain", "alpha": args.alpha if mode == "ign1" else 1.0}
    gcn = {**GCN_DEFAULT, "num_classes": num_classes}
    if args.tiny:
        x3d.update(frames=8, widths=[8, 16], depths=[1, 1], stem_temporal_kernel=3)
        gcn.update(channels=[8, 16], strides=[1, 2])
    x3d["frames"] = min(x3d["frames"], frames)
    if args.model == "x3d":
        return x3d
    if args.model == "mmtm":
        return {"x3d": x3d, "mode": mode or "plain", "alpha": x3d["alpha"]}
    return gcn


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from hcgym.perception.action import batches
    from hcgym.perception.action.gcn import star_variant
    from hcgym.perception.action.training import (
        ActionTrainConfig,
        build_model,
        load_model,
        save_model,
        train_classifier,
    )
    from hcgym.synthesis.action_data import RGB_MEAN, RGB_STD, ActionData

    t0 = time.time()
    if args.lr <= 0:
        raise SpecError("--lr", f"expected > 0, got {args.lr}")
    if not 0.0 <= args.alpha <= 1.0:
        raise SpecError("--alpha", f"expected 0-1, got {args.alpha}")
    if args.star_from is not None and args.model not in ("stgcn", "agcn"):
        raise SpecError("--star-from", f"only for --model stgcn or agcn, not {args.model}")
    state = args.out / "train_state" / "last.pt"
    if state.is_file() and not args.resume:
        raise SpecError("--out", f"{state} exists: pass --resume to continue it, or choose another --out")
    if not args.data.is_file():
        raise SpecError("--data", f"not found: {args.data}")
    data = ActionData.load(args.data, skip=() if args.model in ("x3d", "mmtm") else ("rgb",))
    a = data.arrays
    train, val = data.select("train"), data.select("val")
    if args.tiny:
        train, val = train[:8], val[:4]
    if not len(train):
        raise SpecError("--data", f"{args.data} has no training clips")
    labels = data.label_names
    if args.model in ("x3d", "mmtm"):
        rgb = a["rgb"]
        size, total = int(rgb.shape[2]), int(rgb.shape[1])
    else:
        size, total = 0, int(data.frames)
    skeleton = a.get(f"skeleton_{args.skeleton}") if args.model != "x3d" else None
    if args.model != "x3d" and skeleton is None:
        raise SpecError("--skeleton", f"{args.data} has no {args.skeleton!r} skeletons")
    torch.manual_seed(args.seed)  # the initial weights
    if args.star_from is not None:
        base, meta = load_model(args.star_from, "--star-from")
        if meta["kind"] != args.model:
            raise SpecError("--star-from", f"{args.star_from} holds a {meta['kind']} model, not {args.model}")
        model = star_variant(base)
        config = {**meta["config"], "strides": [1] * len(model.cfg.strides), "residuals": list(model.residuals)}
    else:
        config = model_config(args, len(labels), total, size)
        model = build_model(args.model, config)
    frames = config["frames"] if args.model == "x3d" else config["x3d"]["frames"] if args.model == "mmtm" else None

    def batch(idx: np.ndarray, rng: np.random.Generator | None) -> tuple[tuple, Any]:
        return batches.model_batch(args.model, idx, rng, labels=a["label"], rgb=a.get("rgb"), skeleton=skeleton,
                                   frames=frames, mean=RGB_MEAN, std=RGB_STD)

    def validate(m: Any) -> dict[str, float]:
        return {"val_acc": round(batches.accuracy(m, lambda i: batch(i, None), val), 2)} if len(val) else {}

    cfg = ActionTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            threads=args.threads, warmup=2 if args.tiny else 50)
    print(f"[train] {args.model} on {len(train)} training clips ({len(val)} validation), {len(labels)} actions; "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; {cfg.epochs} epochs", flush=True)
    result = train_classifier(model, lambda i, rng, _t: batch(train[i], rng), len(train), cfg,
                              out_dir=args.out / "train_state", validate=validate)
    from hcgym.paths import atomic_write_bytes
    from hcgym.report import training_curve

    args.out.mkdir(parents=True, exist_ok=True)
    provenance = {
        "command": "hcgym " + " ".join(shlex.quote(x) for x in getattr(args, "argv", [])),
        "seed": args.seed, "data": str(args.data), "data_metadata": data.meta,
        "model": args.model, "model_config": config, "labels": list(labels), "skeleton": args.skeleton,
        "star_from": None if args.star_from is None else str(args.star_from), "train_clips": int(len(train)),
        "val_clips": int(len(val)), "parameters": sum(p.numel() for p in result.model.parameters()),
        "train_config": asdict(cfg), "history": result.history,
        "seconds": round(time.time() - t0, 1), "torch": torch.__version__, "host": platform.machine(),
    }
    name = f"action_{args.model}{'_star' if args.star_from is not None else ''}.pt"
    ckpt = save_model(result.model, args.model, config, args.out / name,
                      {"labels": list(labels), "skeleton": args.skeleton, "history": result.history})
    atomic_write_bytes(args.out / "PROVENANCE.json", json.dumps(provenance, indent=1, default=str).encode())
    atomic_write_bytes(args.out / "training_curve.png", training_curve(
        result.history, title=f"action {args.model} on generated clips", loss_label="training loss",
        metric="val_acc", metric_label="validation accuracy (%)", marker_size=3))
    print(f"[train] wrote {ckpt}; last epoch {result.history[-1] if result.history else {}}", flush=True)
    return 0
