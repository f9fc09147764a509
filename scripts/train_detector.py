"""``hcgym train detector``: train (or fine-tune) the person detector on an ``hcgym generate`` folder.

Trains :class:`hcgym.perception.detection.centernet.CenterNet` on the ``train`` split of ``--data``
(full-body boxes of the generator's COCO files; several folders are trained on together, e.g.
domain-randomised scenes with replayed plain ones), scores AP0.5 on the ``val`` split of the first
folder after every epoch, and writes ``OUT/person_centernet.pt``, its ONNX export (checked against PyTorch),
``OUT/PROVENANCE.json`` (command, seed, data, settings, per-epoch loss and AP) and
``OUT/training_curve.png``. Epochs are resumable (``--resume``). ``--init shipped`` fine-tunes the
shipped detector, e.g. on ``--max-images 10`` images of a new domain.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import time
from pathlib import Path

from hcgym.errors import SpecError
from hcgym.scripts import _args


def register(targets: argparse._SubParsersAction) -> None:
    d = targets.add_parser("detector", help="the person detector (CenterNet) on generated scenes",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(d)
    d.set_defaults(func=run)


def add_arguments(d: argparse.ArgumentParser) -> None:
    d.add_argument("--data", type=Path, nargs="+", required=True,
                   help="`hcgym generate` scene folders (train splits trained on together; the first one's val "
                        "split is scored after every epoch)")
    d.add_argument("--out", type=Path, default=Path("out/detector"), help="where the model files go")
    d.add_argument("--epochs", type=_args.positive_int, default=30)
    d.add_argument("--batch-size", type=_args.positive_int, default=16)
    d.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (Adam, cosine decay)")
    d.add_argument("--seed", type=_args.seed, default=0)
    d.add_argument("--person-zoom", type=float, default=0.0,
                   help="probability of a close-up crop around one person (portrait framing; 0 = off)")
    d.add_argument("--init", default=None, help="start from a checkpoint (PATH or 'shipped') to fine-tune")
    d.add_argument("--max-images", type=_args.positive_int, default=None,
                   help="use the first K training images of each --data folder")
    d.add_argument("--width", type=float, default=1.0, help="channel width multiplier of a new model")
    d.add_argument("--input-size", type=_args.size, default=(384, 288), help="canvas WxH of a new model")
    d.add_argument("--device", default="cpu", help="torch device (cpu, cuda); the result is the same model either way")
    d.add_argument("--threads", type=_args.positive_int, default=2, help="torch CPU threads")
    d.add_argument("--loader-workers", type=int, default=0, help="data-loading processes (0: in the main one)")
    d.add_argument("--no-val", action="store_true", help="skip the per-epoch validation AP")
    d.add_argument("--resume", action="store_true", help="continue from OUT/train_state/last.pt")
    d.add_argument("--tiny", action="store_true", help="a seconds-long smoke configuration (tests, CI)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    import numpy as np
    import torch

    from hcgym.perception.base import OnnxSensor
    from hcgym.perception.detection.centernet import CenterNet, CenterNetConfig
    from hcgym.perception.detection.sensor import PersonDetector, _shipped, load_model, save_checkpoint
    from hcgym.perception.detection.training import DetectorTrainConfig, load_split, train_detector

    t0 = time.time()
    if args.lr <= 0:
        raise SpecError("--lr", f"expected > 0, got {args.lr}")
    if not 0.0 <= args.person_zoom <= 1.0:
        raise SpecError("--person-zoom", f"expected a probability 0-1, got {args.person_zoom}")
    state = args.out / "train_state" / "last.pt"
    if state.is_file() and not args.resume:
        raise SpecError("--out", f"{state} exists: pass --resume to continue it, or choose another --out")
    cfg = DetectorTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                              threads=args.threads, device=args.device, loader_workers=args.loader_workers,
                              person_zoom=args.person_zoom)
    if args.tiny:
        cfg = replace(cfg, batch_size=min(cfg.batch_size, 2), warmup=2)
    if args.init is not None:
        init = _shipped() if args.init == "shipped" else Path(args.init)
        model = load_model(init, "--init")
        cfg = replace(cfg, warmup=min(cfg.warmup, 10))
    else:
        init = None
        model = CenterNet(CenterNetConfig(input_size=tuple(args.input_size), width=0.25 if args.tiny else args.width))
    items = [it for data in args.data for it in load_split(data, "train", args.max_images)]
    val = None if args.no_val else load_split(args.data[0], "val", 8 if args.tiny else None)
    if len(items) < cfg.batch_size:
        cfg = replace(cfg, batch_size=len(items))
    print(f"[train] {len(items)} training images, {0 if val is None else len(val)} validation images; "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; {cfg.epochs} epochs on {cfg.device}", flush=True)
    result = train_detector(items, cfg, model=model, out_dir=args.out / "train_state", val_items=val)
    args.out.mkdir(parents=True, exist_ok=True)
    configs = [json.loads((d / "manifest.json").read_text()).get("dataset") if (d / "manifest.json").is_file()
               else None for d in args.data]
    provenance = {
        "command": "hcgym " + " ".join(shlex.quote(a) for a in getattr(args, "argv", [])),
        "seed": args.seed, "data": " ".join(str(d) for d in args.data), "train_images": len(items),
        "data_config": configs[0] if len(configs) == 1 else configs,
        "init": None if init is None else str(init), "model_config": result.model.config.to_dict(),
        "parameters": sum(p.numel() for p in result.model.parameters()), "train_config": asdict(cfg),
        "history": result.history, "seconds": round(time.time() - t0, 1),
        "torch": torch.__version__, "device": args.device, "host": platform.machine(),
    }
    ckpt = save_checkpoint(result.model, args.out / "person_centernet.pt")
    detector = PersonDetector(ckpt)
    onnx = detector.export_onnx(args.out / "person_centernet.onnx")
    probe = (items + (val or []))[:4]
    gap = max(float(np.abs(detector.maps(it["image"])[0] - OnnxSensor(onnx).maps(it["image"])[0]).max()) for it in probe)
    provenance["onnx_max_abs_diff"] = gap
    provenance["fingerprint"] = detector.fingerprint
    from hcgym.paths import atomic_write_bytes
    from hcgym.report import training_curve

    atomic_write_bytes(args.out / "PROVENANCE.json", json.dumps(provenance, indent=1).encode())
    atomic_write_bytes(args.out / "training_curve.png", training_curve(result.history, **CURVE))
    last = result.history[-1] if result.history else {}
    print(f"[train] wrote {ckpt} and {onnx} (ONNX vs PyTorch max |diff| {gap:.2e}); last epoch {last}", flush=True)
    return 0


#: :func:`hcgym.report.training_curve` settings of the detector's training (loss and validation AP0.5).
CURVE = {"title": "person detector (CenterNet) on generated scenes", "loss_label": "training loss",
         "metric": "val_ap50", "metric_label": "validation AP0.5 (%)", "marker_size": 3}


def main(argv: list[str] | None = None) -> int:
    """Run without the rest of the CLI (``python -m hcgym.scripts.train_detector ...``)."""
    import sys

    parser = argparse.ArgumentParser(prog="hcgym train detector", description=__doc__)
    add_arguments(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = ["train", "detector", *argv]
    try:
        return run(args)
    except SpecError as e:
        print(f"hcgym train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
