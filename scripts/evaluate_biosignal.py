"""``hcgym evaluate biosignal``: the §5.1 filter study and the §5.3 NBoF study on ECG simulated from the seed.

Trains (they are seed ablations of small models) every backbone of the seed's Table 22 with and without the
Gaussian-derivative filter bank, from paired seeds, on heartbeats of simulated people, at every noise level, and
scores them on beats of other people (:mod:`hcgym.perception.biosignal.protocol`); then the NBoF variants on the
order task and simulated atrial fibrillation. Writes ``results.json``, ``table.md`` (Table 22's layout beside the
seed's numbers, the gain against noise, the learned widths, the targets) and ``filter_gain.png``,
``filter_sigma.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from hcgym.scripts import _args


def _snr_list(text: str) -> tuple[float | None, ...]:
    out: list[float | None] = []
    for part in text.split(","):
        part = part.strip()
        if part == "clean":
            out.append(None)
            continue
        try:
            out.append(float(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected noise levels in dB or 'clean', comma separated; got {text!r}") from None
    return tuple(out)


def _snr(text: str) -> float | None:
    values = _snr_list(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one noise level (dB or 'clean'), got {text!r}")
    return values[0]


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``biosignal`` target to ``hcgym evaluate``."""
    s = targets.add_parser("biosignal", help="Gaussian-derivative filter study (Tables 22/24) and NBoF study "
                                             "(Table 26) on simulated ECG",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--seed", type=_args.seed, default=0, help="draws the simulated people and their noise")
    s.add_argument("--out", type=Path, default=Path("out/evaluate-biosignal"), help="output directory")
    s.add_argument("--train-people", type=_args.positive_int, default=None, help="training people (default 30; "
                                                                                 "200 beats each)")
    s.add_argument("--test-people", type=_args.positive_int, default=None, help="test people (default 10)")
    s.add_argument("--epochs", type=_args.positive_int, default=None, help="epochs per run (default 10)")
    s.add_argument("--seeds", type=_args.seed_range, default=None, help="paired training seeds (default 0-4)")
    s.add_argument("--snr", type=_snr_list, default=None, help="noise levels in dB or 'clean', comma separated "
                                                               "(default clean,10,0,-5)")
    s.add_argument("--main-snr", type=_snr, default=argparse.SUPPRESS, help="the level of the Table 22 layout, one of --snr "
                                                                 "(default 10)")
    s.add_argument("--no-nbof", action="store_true", help="skip the NBoF study")
    s.add_argument("--quick", action="store_true", help="a seconds-long run (2 backbones, 2 seeds, 2 levels)")
    s.set_defaults(func=run_biosignal)


def run_biosignal(args: argparse.Namespace) -> int:
    from hcgym.errors import SpecError
    from hcgym.perception.biosignal import protocol
    from hcgym.perception.biosignal.report import figures, table_markdown
    from hcgym.report import write_report

    if args.out.exists() and not args.out.is_dir():
        raise SpecError("--out", f"{args.out} is not a folder")
    base = protocol.quick_config(args.seed) if args.quick else protocol.BiosignalEvalConfig(seed=args.seed)
    try:
        config = protocol.with_overrides(
            base, train_people=args.train_people, test_people=args.test_people, epochs=args.epochs,
            seeds=None if args.seeds is None else tuple(args.seeds), snr_db=args.snr,
            nbof=False if args.no_nbof else None)
        if hasattr(args, "main_snr"):
            config = replace(config, main_snr=args.main_snr)
        config = config.check()
    except SpecError as e:
        raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
    results = protocol.run(config, progress=True)
    write_report(args.out, results, table_markdown(results), figures(results))
    c = results["checks"]["filter"]
    print(f"[biosignal] filtered >= plain for every backbone at the main level: {c['all_backbones']}; gain vs noise "
          f"(Spearman, acc / F1): {c['gain_grows_with_noise']['acc']} / {c['gain_grows_with_noise']['f1']}; "
          f"{results['seconds']['total']:.0f} s; wrote {args.out}/results.json, table.md and figures")
    return 0
