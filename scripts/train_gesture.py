"""``hcgym train gesture``: gesture classifiers (RGB, depth, RGB-D early fusion) on a rendered gesture set.

Trains every ``--backbones`` x ``--modalities`` x ``--seeds`` run on a gesture set (``hcgym generate --mode
gestures``; with ``--with-none`` the 17-class set the live sensor uses) whose crops are resized to ``--size`` at
load time, resumably (``OUT/runs/...``, one training state per run, saved after every epoch: rerun the same
command to continue). As each run finishes it is published as ``OUT/gesture_<backbone>_<modality>.pt``
(float16 weights; ``--name`` for a single run) with ``OUT/PROVENANCE_<name>.json`` (command, settings, data key,
per-epoch history, accuracy on the set's held-out test identities) and its training curve. ``--drop-rgb`` /
``--drop-depth`` train the RGB-D runs with modality dropout. Split the runs between processes with ``--shard K/N``
(:mod:`hcgym.perception.gesture.study`)::

    hcgym generate --mode gestures --n 42 --splits 30,4,8 --per-class 8,4,6 --seed 0 --with-none 2 \\
        --out DATA/gestures17_112.npz
    hcgym train gesture --data DATA/gestures17_112.npz --out out/gesture --backbones mobilenet_v2 \\
        --modalities rgb,depth,rgbd --size 64 --epochs 24 --shard 0/3 &      # and --shard 1/3, 2/3
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from hcgym.scripts import _args


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``gesture`` target to ``hcgym train``."""
    d = targets.add_parser("gesture", help="gesture classifiers (RGB, depth, RGB-D) on a rendered gesture set",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--data", type=Path, required=True, help="gesture set (.npz of hcgym generate --mode gestures)")
    d.add_argument("--out", type=Path, default=Path("out/gesture"), help="runs and published models")
    d.add_argument("--backbones", default="mobilenet_v2",
                   help="comma-separated: mobilenet_v2, mnasnet1_0, mnasnet0_5, resnet18")
    d.add_argument("--modalities", default="rgb,depth,rgbd", help="comma-separated: rgb, depth, rgbd")
    d.add_argument("--seeds", default="0", help="training seeds, comma separated (default 0)")
    d.add_argument("--size", type=_args.positive_int, default=64, help="input side in pixels (crops resized)")
    d.add_argument("--epochs", type=_args.positive_int, default=20)
    d.add_argument("--batch-size", type=_args.positive_int, default=32)
    d.add_argument("--lr", type=_args.positive_float, default=2e-3, help="peak learning rate (AdamW, cosine)")
    d.add_argument("--depth-mode", choices=("relative", "absolute", "metres"), default="relative",
                   help="the depth channel's encoding (hcgym.perception.gesture.inputs)")
    d.add_argument("--width", type=_args.positive_float, default=1.0, help="backbone width multiplier")
    d.add_argument("--drop-rgb", type=_args.finite, default=0.0,
                   help="RGB-D runs: probability of blanking a training sample's RGB planes (modality dropout)")
    d.add_argument("--drop-depth", type=_args.finite, default=0.0,
                   help="RGB-D runs: probability of blanking a training sample's depth plane")
    d.add_argument("--init-from", type=Path, default=None,
                   help="start every run from this published gesture model of the same backbone, width and classes "
                        "(an RGB-D run from the depth model computes the depth model's function at the start)")
    d.add_argument("--shard", default=None, help="K/N: train the runs i with i %% N == K")
    d.add_argument("--name", default=None, help="published file stem of a single run (default "
                                                "gesture_<backbone>_<modality>)")
    d.add_argument("--threads", type=_args.positive_int, default=1, help="torch CPU threads")
    d.add_argument("--progress", action="store_true", help="a progress bar over each epoch's batches")
    d.add_argument("--tiny", action="store_true", help="a seconds-long smoke configuration (tests, CI)")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcgym.perception.action.study import parse_seeds, parse_shard
    from hcgym.perception.gesture.backbones import BACKBONES, MODALITIES
    from hcgym.perception.gesture.study import GestureSettings, parse_names, train_runs

    t0 = time.time()
    settings = GestureSettings(size=args.size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               depth_mode=args.depth_mode, width=args.width).check()
    backbones = parse_names(args.backbones, BACKBONES, "--backbones")
    modalities = parse_names(args.modalities, tuple(MODALITIES), "--modalities")
    command = "hcgym " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []))
    done = train_runs(args.data, args.out, backbones, modalities, parse_seeds(args.seeds), settings,
                      parse_shard(args.shard), args.threads, args.tiny, args.name, command, progress=args.progress,
                      drop=(args.drop_rgb, args.drop_depth), init=args.init_from)
    left = done["remaining"]
    print(f"[gesture] published {len(done['published'])} model(s) in {time.time() - t0:.0f} s; "
          + (f"{len(left)} run(s) not finished (other shards, or rerun to resume)" if left else "every run finished"),
          flush=True)
    return 0
