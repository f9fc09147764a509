"""``hcgym evaluate expression``: the shipped expression models on fresh clips of people never seen in training.

Generates posed and wild expression clips of ``--identities`` avatars never used in training (dataset seed
6,000,000 + SEED; each shows every expression ``--per-identity`` times per style, as long and as fast as the
training clips), prepares them as the training caches were (dlib, MediaPipe Face Mesh; kept under
``--data-dir`` for reuse), and scores, for each protocol (``ck``, ``afew``) and landmark source (``dlib``,
``mesh51``), ST-GCN, AGCN, ST-BLN and PST-BLN with and without Monte Carlo dropout, the Monte Carlo dropout
seed study, the AUROC of the predictive entropy for flagging wrong or blended sequences, and the stream model
of the live sensor. The protocol is :mod:`hcgym.perception.expression.protocol`. Writes ``results.json``,
``table.md`` (the layouts of the seed's Tables 19-21 with its numbers beside ours), ``confusion_ck.png``,
``confusion_afew.png``, ``uncertainty.png`` and ``growth.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def _names(text: str) -> tuple[str, ...]:
    vals = tuple(v.strip() for v in text.split(",") if v.strip())
    if not vals:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return vals


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``expression`` target to ``hcgym evaluate``."""
    s = targets.add_parser("expression", help="expression models (ST-GCN, AGCN, ST-BLN, PST-BLN; MC dropout, "
                                              "uncertainty) on fresh people", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--seed", type=_args.seed, default=0, help="picks the test avatars and the dropout masks")
    s.add_argument("--out", type=Path, default=Path("out/evaluate-expression"), help="output directory")
    s.add_argument("--identities", type=_args.positive_int, default=None, help="test avatars (default 8)")
    s.add_argument("--per-identity", type=_args.positive_int, default=None,
                   help="clips of each expression per avatar and style (default 2)")
    s.add_argument("--passes", type=_args.positive_int, default=None,
                   help="Monte Carlo dropout passes of PST-BLN and the seed study (default 100)")
    s.add_argument("--passes-fixed", type=_args.positive_int, default=None,
                   help="Monte Carlo dropout passes of ST-GCN, AGCN and ST-BLN (default 20)")
    s.add_argument("--protocols", type=_names, default=None, help="comma-separated: ck, afew (default both)")
    s.add_argument("--sources", type=_names, default=None, help="comma-separated: dlib, mesh51 (default both)")
    s.add_argument("--models", type=Path, default=None, help="model bundle (default: the shipped one)")
    s.add_argument("--stream", type=Path, default=None, help="stream model (default: the shipped one)")
    s.add_argument("--workers", type=_args.positive_int, default=None, help="processes making the clips (default 2)")
    s.add_argument("--data-dir", type=Path, default=None, help="where the test clips go (default: the hcgym cache)")
    s.add_argument("--quick", action="store_true", help="a small run (1 avatar, 7 clips per style, 20 / 5 passes)")
    s.set_defaults(func=run_expression)


def run_expression(args: argparse.Namespace) -> int:
    from hcgym.errors import SpecError
    from hcgym.perception.expression import protocol
    from hcgym.perception.expression.protocol_report import figures, table_markdown
    from hcgym.report import write_report

    base = protocol.quick_config(args.seed) if args.quick else protocol.ExprEvalConfig(seed=args.seed)
    try:
        config = protocol.with_overrides(base, identities=args.identities, per_identity=args.per_identity,
                                         passes=args.passes, passes_fixed=args.passes_fixed,
                                         protocols=args.protocols, sources=args.sources,
                                         models=args.models, stream=args.stream, workers=args.workers,
                                         data_dir=args.data_dir).check()
    except SpecError as e:
        raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
    results = protocol.run(config, progress=True)
    labels = results["data"]["labels"]
    write_report(args.out, protocol.public_results(results), table_markdown(results), figures(results, labels))
    parts = []
    for p, by in results["protocols"].items():
        for s, r in by.items():
            best = max(r["models"].items(), key=lambda kv: kv[1]["acc_mcd"])
            parts.append(f"{p}/{s}: best {best[0]} {best[1]['acc_mcd']:.1f}, AUROC {r['uncertainty_auroc']}")
    print(f"[expression] {'; '.join(parts)}; {results['seconds']['total']:.0f} s; wrote {args.out}/results.json, "
          "table.md and figures")
    return 0
