"""``hcgym evaluate action``: the shipped action models, clip and continual, on fresh clips of unseen people.

Generates ``--people`` avatars never used in training (dataset seed 5,000,000 + SEED) doing each of the 24
body actions, prepares them as the training caches were (112x112 crops, true and MediaPipe skeletons; kept
under ``--data-dir`` for reuse), and scores every shipped model: clip and continual accuracy, exactness,
MACs per prediction, single-thread predictions per second, parameters, state and delay; the CoX3D pool-size
curve; the cold-start transient; and the learning-to-ignore and fusion seed studies (mean +- std over their
training seeds). The protocol is :mod:`hcgym.perception.action.protocol`. Writes ``results.json``,
``table.md`` (the layouts of the seed's Tables 15/16, 18, 27 and 28 with its numbers beside ours),
``pool_size.png`` and ``transient.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def _names(text: str) -> tuple[str, ...]:
    vals = tuple(v.strip() for v in text.split(",") if v.strip())
    if not vals and text.strip() != "none":
        raise argparse.ArgumentTypeError(f"expected comma-separated names or 'none', got {text!r}")
    return tuple(v for v in vals if v != "none")


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``action`` target to ``hcgym evaluate``."""
    s = targets.add_parser("action", help="action models (CoX3D, CoST-GCN, CoAGCN; ignore and fusion studies)",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--seed", type=_args.seed, default=0, help="picks the test avatars")
    s.add_argument("--out", type=Path, default=Path("out/evaluate-action"), help="output directory")
    s.add_argument("--people", type=_args.positive_int, default=None, help="test avatars (default 5; 24 clips each)")
    s.add_argument("--models", type=_names, default=None, help="comma-separated shipped models (default: all)")
    s.add_argument("--studies", type=_names, default=None, help="comma-separated studies, or 'none' (default: all)")
    s.add_argument("--workers", type=_args.positive_int, default=None, help="processes making the clips (default 2)")
    s.add_argument("--data-dir", type=Path, default=None, help="where the test clips go (default: the hcgym cache)")
    s.add_argument("--quick", action="store_true", help="a small run (1 avatar, 24 clips; a few minutes)")
    s.set_defaults(func=run_action)


def run_action(args: argparse.Namespace) -> int:
    from hcgym.errors import SpecError
    from hcgym.perception.action import protocol
    from hcgym.report import write_report

    base = protocol.quick_config(args.seed) if args.quick else protocol.ActionEvalConfig(seed=args.seed)
    try:
        config = protocol.with_overrides(base, people=args.people, models=args.models, studies=args.studies,
                                         workers=args.workers, data_dir=args.data_dir).check()
    except SpecError as e:
        raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
    results = protocol.run(config, progress=True)
    write_report(args.out, results, protocol.table_markdown(results), protocol.figures(results))
    parts = [f"{n} clip {m['clip_acc']:.1f} / continual {m['continual_acc']:.1f}"
             for n, m in results["models"].items() if m.get("continual_acc") is not None]
    for study in config.studies:
        best = max(results[study].items(), key=lambda kv: kv[1])
        parts.append(f"{study}: best {best[0]} {best[1]:.1f}")
    if results["exactness_max_abs_diff"] is not None:
        parts.append(f"exactness {results['exactness_max_abs_diff']:.1e}")
    print(f"[action] {'; '.join(parts)}; {results['_seconds']['total']:.0f} s; wrote {args.out}/results.json, "
          "table.md and figures")
    return 0
