"""``hcgym train speech``: the Self-ONN seed study of §5.2 (MatchboxNet configurations A-F of Table 25).

Makes the synthetic keyword data sets (train / val / test speaker pools) and their MFCCs once
(``--data-dir``, default ``OUT/data``, shared by every run), trains every configuration of ``--configs`` for
each of ``--seeds`` resumably (``OUT/runs/...``), and once all runs are done writes
``OUT/speech_selfonn_study.pt`` (every model, float16 weights) and ``OUT/PROVENANCE_speech_selfonn_study.json``
(data, settings, per run: parameters, MACs, per-epoch history, validation and test accuracy, seconds).
``--ablation`` adds the configurations with Self-ONN layers trained without the tanh before them. Split the
runs between processes with ``--shard K/N`` (the last to finish writes the bundle)::

    OMP_NUM_THREADS=1 hcgym train speech --out out/speech --shard 0/2 &
    OMP_NUM_THREADS=1 hcgym train speech --out out/speech --shard 1/2

The defaults (6,000 training clips, 8 epochs) fit the 30 runs of the default study into about 2.5 hours on
two single-thread processes of a 2-core machine.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from hcgym.scripts import _args

#: Defaults of the full study and of ``--tiny`` (a seconds-long smoke run), for options left unset.
DEFAULTS = {"train_count": 6000, "val_count": 1200, "test_count": 1200, "epochs": 8}
TINY = {"train_count": 48, "val_count": 24, "test_count": 24, "epochs": 1}


def register(targets: argparse._SubParsersAction) -> None:
    d = targets.add_parser("speech", help="the Self-ONN keyword-spotting seed study (MatchboxNet A-F)",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--out", type=Path, required=True, help="study folder (runs, bundle, provenance)")
    d.add_argument("--configs", default="A,B,C,D,E,F", help="configurations, comma separated (default A-F)")
    d.add_argument("--seeds", default="0,1,2,3,4", help="training seeds, comma separated (default 0-4)")
    for name, help_ in (("train", "training"), ("val", "validation"), ("test", "test")):
        d.add_argument(f"--{name}-count", type=_args.positive_int, default=None,
                       help=f"{help_} clips (default {DEFAULTS[name + '_count']}; --tiny {TINY[name + '_count']})")
    d.add_argument("--epochs", type=_args.positive_int, default=None,
                   help=f"epochs per run (default {DEFAULTS['epochs']}; --tiny {TINY['epochs']})")
    d.add_argument("--data-seed", type=_args.seed, default=0, help="seed of the keyword data sets")
    d.add_argument("--data-dir", type=Path, default=None, help="feature cache (default OUT/data)")
    d.add_argument("--shard", default=None, help="K/N: train this process's share of the runs")
    d.add_argument("--threads", type=_args.positive_int, default=1, help="torch CPU threads")
    d.add_argument("--ablation", action="store_true", help="also train the Self-ONN configurations without tanh")
    d.add_argument("--tiny", action="store_true",
                   help="a seconds-long smoke configuration (tiny data sets, 4 speakers, 2 rooms, width 16)")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcgym.perception.action.study import parse_seeds, parse_shard
    from hcgym.perception.speech.study import parse_configs, train_study
    from hcgym.perception.speech.training import DataSettings, TrainSettings

    t0 = time.time()
    base = TINY if args.tiny else DEFAULTS
    value = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    tiny = {"rooms": 2, "n_speakers": 4} if args.tiny else {}
    data = DataSettings(seed=args.data_seed, train_count=value["train_count"], val_count=value["val_count"],
                        test_count=value["test_count"], **tiny).check()
    settings = TrainSettings(epochs=value["epochs"], **({"batch_size": 16, "width": 16} if args.tiny else {})).check()
    configs, seeds, shard = parse_configs(args.configs), parse_seeds(args.seeds), parse_shard(args.shard)
    command = "hcgym " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []))
    bundle = train_study(args.out, configs, seeds, data, settings, data_dir=args.data_dir, shard=shard,
                         threads=args.threads, ablation=args.ablation, command=command)
    if bundle is None:
        print(f"[study] this shard is done ({time.time() - t0:.0f} s); other shards still have runs", flush=True)
    else:
        print(f"[study] wrote {bundle} ({bundle.stat().st_size / 1e6:.1f} MB, {time.time() - t0:.0f} s)", flush=True)
    return 0
