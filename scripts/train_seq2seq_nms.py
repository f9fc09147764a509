"""``hcgym train seq2seq-nms``: train Seq2Seq-NMS on detector candidates of a generated dataset.

Trains on the ``train`` split of ``--data`` (a ``hcgym generate`` folder) and reports AP0.5 on its
``val`` split after every epoch. Candidates come from ``--detector`` (``shipped``, a detector file,
or ``simulated``: boxes drawn around the ground truth, for tests and demos only) and are cached in
``OUT/candidates_{split}.npz`` (reused while the detector fingerprint and the dataset are the same).
Writes ``OUT/seq2seq_nms.pt`` (load with ``nms.make("seq2seq", checkpoint=...)``),
``OUT/seq2seq_nms.onnx`` (unless ``--no-onnx``), ``OUT/PROVENANCE.json`` and
``OUT/training_curve.png``; ``--resume`` continues after the last finished epoch.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from hcgym.scripts import _args

#: ``--tiny``: a seconds-long configuration for tests
TINY_MAX_CANDIDATES = 30
#: :func:`hcgym.report.training_curve` settings (mean loss per image, validation AP0.5 as a fraction)
CURVE = {"title": "Seq2Seq-NMS training", "title_size": 10, "loss_label": "weighted BCE per image",
         "metric": "val_ap50", "metric_label": "validation AP0.5 (%)", "metric_scale": 100.0}


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``seq2seq-nms`` target to ``hcgym train``."""
    s = targets.add_parser("seq2seq-nms", help="Seq2Seq-NMS on detector candidates of a generated dataset",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--data", type=Path, required=True, help="a `hcgym generate` folder (train and val splits)")
    s.add_argument("--detector", default="shipped", help="shipped, simulated or a detector file (default shipped)")
    s.add_argument("--epochs", type=_args.positive_int, default=8, help="epochs (lr 1e-4 / 1e-5 / 1e-6 for 1/2, 3/8, 1/8)")
    s.add_argument("--lr", type=float, default=1e-4, help="initial learning rate")
    s.add_argument("--max-candidates", type=_args.positive_int, default=400, help="candidates per image")
    s.add_argument("--seed", type=_args.seed, default=0)
    s.add_argument("--paper-size", action="store_true", help="the paper's model size (Seq2SeqConfig.paper())")
    s.add_argument("--no-mask", action="store_true", help="ablation: plain attention without the IoU mask")
    s.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    s.add_argument("--threads", type=_args.positive_int, default=1, help="torch CPU threads")
    s.add_argument("--device", default="cpu", help="torch device of the network (cpu, cuda); features stay on the CPU")
    s.add_argument("--out", type=Path, default=Path("out/seq2seq-nms"), help="where the model files go")
    s.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")
    s.add_argument("--tiny", action="store_true", help="a seconds-long smoke configuration (tests, CI)")
    s.set_defaults(func=run_seq2seq_nms)


def tiny_config():
    from hcgym.perception.nms.seq2seq import Seq2SeqConfig

    return Seq2SeqConfig(fmod_levels=2, fmod_size=8, fmod_sampling_ratio=1, max_side=96, d_fuse=8, d_m=16, heads=2,
                         n_blocks=1)


def run_seq2seq_nms(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    import torch

    from hcgym.errors import SpecError
    from hcgym.paths import atomic_write_bytes
    from hcgym.perception.nms.candidates import cached_candidates, coco_file, make_detector
    from hcgym.perception.nms.seq2seq import Seq2SeqConfig, save_model
    from hcgym.perception.nms.training import STATE_FILE, TrainSettings, train_seq2seq
    from hcgym.report import training_curve

    torch.set_num_threads(args.threads)
    t0 = time.time()
    if args.paper_size and args.tiny:
        raise SpecError("--tiny", "cannot be combined with --paper-size")
    try:
        coco_file(args.data, "train")
    except SpecError as e:
        raise SpecError("--data", e.problem) from None
    max_candidates = min(args.max_candidates, TINY_MAX_CANDIDATES) if args.tiny else args.max_candidates
    settings = TrainSettings(epochs=args.epochs, lr=args.lr, max_candidates=max_candidates, seed=args.seed).check()
    config = tiny_config() if args.tiny else Seq2SeqConfig.paper() if args.paper_size else Seq2SeqConfig()
    config = replace(config, mask=not args.no_mask).check()
    detector = make_detector(args.detector)
    out: Path = args.out
    if args.resume and not (out / STATE_FILE).is_file():
        raise SpecError("--resume", f"no training state to resume from: {out / STATE_FILE}")
    out.mkdir(parents=True, exist_ok=True)
    cands = {}
    for split in ("train", "val"):
        try:
            coco_file(args.data, split)
        except SpecError:
            continue
        cands[split] = cached_candidates(out / f"candidates_{split}.npz", args.data, detector, max_candidates,
                                         split=split)
    train, val = cands["train"], cands.get("val")
    print(f"[train] {len(train)} training images, {train.n_candidates} candidates ({detector.name}); "
          f"{len(val) if val else 0} validation images", flush=True)
    result = train_seq2seq(train, val, settings, config, out_dir=out, resume=args.resume, device=args.device)
    ckpt = save_model(result.model, out / "seq2seq_nms.pt")
    provenance = {
        "command": "hcgym " + " ".join(shlex.quote(a) for a in getattr(args, "argv", [])),
        "seed": args.seed, "data": str(Path(args.data).resolve()),
        "detector": {"name": detector.name, "fingerprint": detector.fingerprint,
                     "simulated": bool(getattr(detector, "uses_ground_truth", False))},
        "train_images": len(train), "train_candidates": train.n_candidates,
        "val_images": len(val) if val else 0, "epochs": args.epochs,
        "settings": asdict(settings), "model_config": asdict(config), "class_weights": list(result.class_weights),
        "history": result.history, "device": args.device, "torch": torch.__version__,
        "labels": "greedy matching by current output, IoU > 0.5, ignore-region-only candidates left out of the loss",
    }
    if not args.no_onnx:
        provenance["onnx"] = _export(result.model, train, out / "seq2seq_nms.onnx")
    provenance["wall_seconds"] = round(time.time() - t0, 1)
    atomic_write_bytes(out / "PROVENANCE.json", json.dumps(provenance, indent=1).encode())
    atomic_write_bytes(out / "training_curve.png", training_curve(result.history, **CURVE))
    last = result.history[-1] if result.history else {}
    ap = last.get("val_ap50")
    print(f"[train] wrote {ckpt}; final loss {last.get('loss', float('nan')):.4f}, val AP0.5 "
          f"{'n/a' if ap is None else f'{100 * ap:.1f}%'} ({provenance['wall_seconds']} s)", flush=True)
    return 0


def _export(model, cset, path: Path) -> dict:
    """ONNX export at the edge-map size of the training images; max |ONNX - PyTorch| on one image."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from hcgym.perception.nms.seq2seq import edge_map, export_onnx

    im = next((im for im in cset if len(im.scores) >= 2), cset[0])
    edges, _ = edge_map(im.image(), model.config.max_side)
    tmp = path.with_name(f".{path.name}.tmp")
    export_onnx(model, tmp, edge_hw=tuple(edges.shape[-2:]))
    tmp.replace(path)
    boxes = torch.as_tensor(np.asarray(im.boxes, np.float32))
    scores = torch.as_tensor(np.asarray(im.scores, np.float32))
    wh = torch.tensor([float(im.width), float(im.height)])
    gap = None
    if len(boxes) >= 2:
        with torch.no_grad():
            want = model(edges, boxes, scores, wh).numpy()
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"edges": edges.numpy(), "boxes": boxes.numpy(), "scores": scores.numpy(),
                              "image_wh": wh.numpy()})[0]
        gap = float(np.abs(got - want).max())
    return {"file": path.name, "edge_hw": list(edges.shape[-2:]), "max_abs_diff": gap}
