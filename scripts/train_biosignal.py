"""``hcgym train biosignal`` and ``hcgym train keywords``: the models of the wearable-ECG and keyword sensors.

``hcgym train biosignal --out DIR [--seed S] [--quick]`` trains the ECG sensor's beat model (the filtered CNN on
Kachuee-cut beats of simulated people) and rhythm model (TNBoF on 10 s windows at 100 Hz, the four CinC 2017
classes) and writes ``DIR/ecg_beat.pt``, ``DIR/ecg_rhythm.pt`` and their ``PROVENANCE_*.json`` (command, seeds,
data settings, per-epoch history, scores on held-out people, seconds); 77 s of CPU time on one core (4 minutes
of wall time on a shared 2-core machine). Training people are disjoint from every evaluation draw
(:mod:`hcgym.perception.biosignal.sensor_training`).

``hcgym train keywords --out DIR [--seed S] [--epochs N] [--data-dir D] [--quick]`` trains MatchboxNet A for the
keyword sensor on the synthetic keyword set's train speakers (NovoGrad, warmup-hold-decay) and writes
``DIR/keywords_matchboxnet.pt`` and its provenance (validation and test-speaker accuracy); 30 epochs, about 10
minutes of CPU time on one core; resumable (rerun the same command), the features cached in ``--data-dir``
(default ``DIR/data``; the Self-ONN study's cache has the same key). The shipped models in ``perception/biosignal/models`` and ``perception/speech/models`` were written by
these commands (their provenance files say which)::

    OMP_NUM_THREADS=1 hcgym train biosignal --out perception/biosignal/models
    OMP_NUM_THREADS=1 hcgym train keywords --out out/keywords   # then copy the .pt and its provenance there
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from hcgym.scripts import _args


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``biosignal`` and ``keywords`` targets to ``hcgym train``."""
    b = targets.add_parser("biosignal", help="the ECG sensor's beat and rhythm models on simulated people",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--out", type=Path, required=True, help="folder of the model files and their provenance")
    b.add_argument("--seed", type=_args.seed, default=0, help="data and training seed")
    b.add_argument("--quick", action="store_true", help="a seconds-long smoke configuration (tests, CI)")
    b.set_defaults(func=run_biosignal)

    k = targets.add_parser("keywords", help="the keyword sensor's MatchboxNet A on the synthetic keyword set",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    k.add_argument("--out", type=Path, required=True, help="folder of the model, its provenance and training state")
    k.add_argument("--seed", type=_args.seed, default=0, help="training seed")
    k.add_argument("--data-seed", type=_args.seed, default=0, help="seed of the keyword data sets")
    k.add_argument("--epochs", type=_args.positive_int, default=None, help="epochs (default 30; --quick 1)")
    k.add_argument("--data-dir", type=Path, default=None, help="feature cache (default OUT/data)")
    k.add_argument("--threads", type=_args.positive_int, default=1, help="torch CPU threads")
    k.add_argument("--quick", action="store_true", help="a seconds-long smoke configuration (tests, CI)")
    k.set_defaults(func=run_keywords)


def _command(args: argparse.Namespace) -> str:
    return "hcgym " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []))


def run_biosignal(args: argparse.Namespace) -> int:
    from hcgym.perception.biosignal.sensor_training import train_biosignal

    t0 = time.time()
    reports = train_biosignal(args.out, args.seed, quick=args.quick, command=_command(args))
    beat, rhythm = reports["beat"]["held_out"], reports["rhythm"]["held_out"]
    print(f"[biosignal] wrote {args.out}/ecg_beat.pt (held-out people: accuracy {beat['acc']:.3f}, F1 {beat['f1']:.3f})"
          f" and ecg_rhythm.pt (accuracy {rhythm['acc']:.3f}, macro F1 {rhythm['f1']:.3f}) in {time.time() - t0:.0f} s",
          flush=True)
    return 0


def run_keywords(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hcgym.perception.speech.sensor_training import DEFAULT_SETTINGS, QUICK_DATA, QUICK_SETTINGS, train_keywords
    from hcgym.perception.speech.training import DataSettings

    settings = QUICK_SETTINGS if args.quick else DEFAULT_SETTINGS
    if args.epochs is not None:
        settings = replace(settings, epochs=args.epochs)
    data = replace(QUICK_DATA if args.quick else DataSettings(), seed=args.data_seed)
    p = train_keywords(args.out, seed=args.seed, data=data, settings=settings, data_dir=args.data_dir,
                       threads=args.threads, quick=args.quick, command=_command(args))
    print(f"[keywords] wrote {args.out}/{p['file']} ({p['bytes'] / 1e3:.0f} kB): validation {p['val_acc']} %, "
          f"test speakers {p['test_acc']} % ({p['seconds']:.0f} s)", flush=True)
    return 0
