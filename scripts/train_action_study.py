"""``hcgym train action-study``: the seed studies of §6.1 (learning to ignore; RGB + skeleton fusion).

Trains every variant of ``--study`` for each of ``--seeds`` on an action-data cache at ``--size`` (the
cache's crops area-averaged), resumably (``OUT/runs/...``), and once all runs are done writes
``OUT/action_<study>_study.pt`` (every trained model in one file, which ``hcgym evaluate action`` scores) and
``OUT/PROVENANCE_action_<study>_study.json`` (settings, per-run history and test-split accuracy). Split the
runs between processes with ``--shard K/N`` (the last to finish writes the bundle)::

    hcgym train action-study --data DATA/actions_112.npz --study ignore --out out/study --shard 0/2 &
    hcgym train action-study --data DATA/actions_112.npz --study ignore --out out/study --shard 1/2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hcgym.scripts import _args


def register(targets: argparse._SubParsersAction) -> None:
    d = targets.add_parser("action-study", help="the learning-to-ignore and fusion seed studies (small models)",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--data", type=Path, required=True, help="action-data cache (.npz from action_data.prepare)")
    d.add_argument("--study", choices=("ignore", "fusion"), required=True)
    d.add_argument("--seeds", default="0,1,2", help="training seeds, comma separated (default 0,1,2)")
    d.add_argument("--size", type=_args.positive_int, default=56, help="crop size (a divisor of the cache's)")
    d.add_argument("--frames", type=_args.positive_int, default=16, help="window length")
    d.add_argument("--epochs", type=_args.positive_int, default=10)
    d.add_argument("--batch-size", type=_args.positive_int, default=16)
    d.add_argument("--lr", type=float, default=2e-3)
    d.add_argument("--skeleton", choices=("truth", "mediapipe"), default="mediapipe",
                   help="skeleton source of the fusion study")
    d.add_argument("--shard", default=None, help="K/N: train the runs i with i %% N == K")
    d.add_argument("--threads", type=_args.positive_int, default=1, help="torch CPU threads")
    d.add_argument("--out", type=Path, default=Path("out/action_study"))
    d.add_argument("--tiny", action="store_true", help="a seconds-long smoke configuration (tests, CI)")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcgym.perception.action.study import StudySettings, parse_seeds, parse_shard, train_study

    t0 = time.time()
    settings = StudySettings(size=args.size, frames=args.frames, epochs=args.epochs, batch_size=args.batch_size,
                             lr=args.lr, skeleton=args.skeleton).check()
    bundle = train_study(args.data, args.study, args.out, parse_seeds(args.seeds), settings,
                         parse_shard(args.shard), args.threads, args.tiny)
    if bundle is None:
        print(f"[study] this shard is done ({time.time() - t0:.0f} s); other shards still have runs", flush=True)
    else:
        print(f"[study] wrote {bundle} ({time.time() - t0:.0f} s)", flush=True)
    return 0
