"""``hcgym train TARGET``: train the project's models (one sub-command per target).

``hcgym train face-embedder``: render aligned face crops of avatar identities
(resumable shards), train the IRNet with the ArcFace loss (resumable epochs),
fit the early-exit heads, export ONNX and write the provenance beside the
checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from hcgym.scripts import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (face-embedder)", description=__doc__)
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    f = targets.add_parser("face-embedder", help="the in-house face recognizer (IRNet + ArcFace) and its exits")
    f.add_argument("--identities", type=_args.positive_int, default=500, help="training identities (avatars)")
    f.add_argument("--per-identity", type=_args.positive_int, default=40, help="face crops per identity")
    f.add_argument("--epochs", type=_args.positive_int, default=24)
    f.add_argument("--batch-size", type=_args.positive_int, default=128)
    f.add_argument("--lr", type=float, default=0.1)
    f.add_argument("--seed", type=_args.seed, default=0)
    f.add_argument("--workers", type=_args.positive_int, default=2, help="processes rendering face crops")
    f.add_argument("--data", type=Path, default=Path("out/face-embedder/data"), help="face-crop folder (resumable)")
    f.add_argument("--out", type=Path, default=Path("out/face-embedder"), help="where the model files go")
    f.add_argument("--tiny", action="store_true", help="a seconds-long smoke configuration (tests, CI)")
    f.set_defaults(func=run_face_embedder)


def run_face_embedder(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    import numpy as np

    from hcgym.perception.face.irnet import HcgymFaceEmbedder, save_checkpoint
    from hcgym.perception.face.training import TrainConfig, train_embedder
    from hcgym.synthesis.face_crops import CropSettings, generate_face_crops, load_face_crops

    t0 = time.time()
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    settings = CropSettings()
    if args.tiny:
        cfg = replace(cfg, units=(1, 1, 1, 1), widths=(8, 16, 16, 32), expansions=(1, 2, 2, 2), embedding_dim=64,
                      val_identities=2, batch_size=16)
        settings = replace(settings, variants=1)
    seeds = range(100_000, 100_000 + args.identities)
    print(f"[train] face crops: {args.identities} identities x {args.per_identity} -> {args.data}", flush=True)
    generate_face_crops(args.data, seeds, args.per_identity, settings, seed=args.seed, workers=args.workers)
    data = load_face_crops(args.data)
    print(f"[train] {len(data['chips'])} chips; training IRNet ({cfg.epochs} epochs)", flush=True)
    result = train_embedder(data["chips"], data["labels"], cfg, out_dir=args.out / "train_state")
    args.out.mkdir(parents=True, exist_ok=True)
    provenance = {
        "command": "hcgym " + " ".join(shlex.quote(a) for a in getattr(args, "argv", [])),
        "seed": args.seed, "identities": f"AvatarSpec.random({seeds.start}..{seeds.stop - 1})",
        "per_identity": args.per_identity, "crop_settings": asdict(settings), "train_config": asdict(cfg),
        "history": result.history, "metrics": {k: v for k, v in result.final.items() if k.startswith("val")},
        "seconds": round(time.time() - t0, 1),
    }
    # Early exits (OpenDR D3.2 section 2.1): placed by FLOP fraction, heads fitted on training identities.
    from hcgym.perception.face.early_exits import fit_exit_heads
    from hcgym.perception.face.irnet import choose_exits
    from hcgym.perception.face.training import split_identities

    exits, fractions = choose_exits(result.model)
    train_mask, _ = split_identities(data["labels"], cfg.val_identities, cfg.seed)
    print(f"[train] fitting exit heads at blocks {exits} (FLOP fractions {[round(f, 3) for f in fractions]})",
          flush=True)
    heads = fit_exit_heads(result.model, data["chips"][train_mask], exits, n_codewords=16 if args.tiny else 64,
                           iterations=20 if args.tiny else 2000, seed=args.seed, progress=True)
    heads.save(args.out / "exit_heads.pt")
    provenance["exits"] = {"blocks": exits, "flop_fractions": [round(f, 4) for f in fractions]}
    ckpt = save_checkpoint(result.model, args.out / "irnet.pt", config={"exits": exits}, extra_meta=provenance)
    sensor = HcgymFaceEmbedder(ckpt)
    onnx = sensor.export_onnx(args.out / "irnet.onnx")
    # The ONNX file must give the same embeddings as PyTorch.
    from hcgym.perception.base import OnnxSensor

    chips = data["chips"][:16]
    gap = float(np.abs(sensor.embed_aligned(chips) - OnnxSensor(onnx).embed_aligned(chips)).max())
    provenance["onnx_max_abs_diff"] = gap
    (args.out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=1))
    training_curve(result.history, args.out / "training_curve.png")
    print(f"[train] wrote {ckpt}, {onnx} (ONNX vs PyTorch max |diff| {gap:.2e}); "
          f"validation verification {provenance['metrics']}", flush=True)
    return 0


def training_curve(history: list[dict], path: Path) -> None:
    """Loss and held-out verification accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5.6, 3.2), dpi=110)
    ax.plot(ep, [h["loss"] for h in history], "o-", color="tab:blue", label="ArcFace loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color="tab:blue")
    if any("val_verification" in h for h in history):
        ax2 = ax.twinx()
        ax2.plot(ep, [h.get("val_verification", float("nan")) for h in history], "s-", color="tab:red")
        ax2.set_ylabel("held-out verification (%)", color="tab:red")
    ax.set_title("IRNet training on avatar face crops")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
