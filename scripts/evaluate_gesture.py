"""``hcgym evaluate gesture``: the shipped gesture models on fresh avatars, their latency, and the seed's Table 29.

Renders ``--identities`` people no training set uses (from ``--seed``), each showing the 16 gestures
``--per-class`` times and ``--none`` times ``--per-class`` relaxed hands (kept under ``--data-dir`` so a rerun is
fast), and scores every shipped backbone's RGB, depth and RGB-D models (exact and Kinect-like depth), the
17-class sensor model, and the batch-1 single-thread latency of all four backbones in one interleaved run
(:mod:`hcgym.perception.gesture.protocol`). Writes ``results.json``, ``table.md`` (Table 29 with the seed's
numbers beside ours, accuracy and latency per backbone), ``confusion.png``, ``accuracy_by_distance.png`` and
``confidence.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``gesture`` target to ``hcgym evaluate``."""
    s = targets.add_parser("gesture", help="gesture models (RGB, depth, RGB-D) on fresh avatars; latency; Table 29",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--seed", type=_args.seed, default=0, help="picks the test avatars and the depth noise")
    s.add_argument("--out", type=Path, default=Path("out/evaluate-gesture"), help="output directory")
    s.add_argument("--identities", type=_args.positive_int, default=None, help="test people (default 8)")
    s.add_argument("--per-class", type=_args.positive_int, default=None, help="samples per gesture and person "
                                                                               "(default 6)")
    s.add_argument("--none", type=int, default=None, help="relaxed-hand samples per person, in units of "
                                                          "--per-class (default 1; 0: none)")
    s.add_argument("--repeats", type=_args.positive_int, default=None, help="interleaved timing rounds (default 100)")
    s.add_argument("--models", type=Path, default=None, help="folder of the models (default: the shipped ones)")
    s.add_argument("--workers", type=_args.positive_int, default=None, help="rendering processes (default 1)")
    s.add_argument("--data-dir", type=Path, default=None, help="where the fresh set is kept (default: the hcgym "
                                                               "cache)")
    s.add_argument("--quick", action="store_true", help="a small run (2 people, 2 samples per gesture)")
    s.set_defaults(func=run_gesture)


def run_gesture(args: argparse.Namespace) -> int:
    from hcgym.errors import SpecError
    from hcgym.perception.gesture import protocol
    from hcgym.perception.gesture.report import figures, table_markdown
    from hcgym.report import write_report

    if args.out.exists() and not args.out.is_dir():
        raise SpecError("--out", f"{args.out} is not a folder")
    base = protocol.quick_config(args.seed) if args.quick else protocol.GestureEvalConfig(seed=args.seed)
    try:
        config = protocol.with_overrides(base, identities=args.identities, per_class=args.per_class,
                                         none=args.none, repeats=args.repeats, models=args.models,
                                         workers=args.workers, data_dir=args.data_dir).check()
    except SpecError as e:
        raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
    results = protocol.run(config, progress=True)
    write_report(args.out, results, table_markdown(results), figures(results))
    parts = [f"{b} rgb {r['rgb']} / depth {r['depth']} / rgbd {r['rgbd']}" for b, r in results["models"].items()
             if r["rgbd"] is not None]
    parts += [f"{b} RGB-D/RGB {r['ratio']:.3f}" for b, r in results["models"].items()]
    print(f"[gesture] {'; '.join(parts)}; {results['seconds']['total']:.0f} s; wrote {args.out}/results.json, "
          "table.md and figures")
    return 0
