"""``hcgym evaluate speech``: the Self-ONN seed study of §5.2 (Table 25) on clips of fresh test speakers.

Scores every model of a study bundle (``hcgym train speech``) on keyword clips drawn fresh from the seed (voices
never heard in training), per configuration mean ± std over the seeds beside the seed's Table 25, with MACs and
parameters, the orderings E >= A and F < A and the paired per-seed differences; then configurations A and E on
the same words re-heard in a simulated room at several talker distances and reverberation times
(:mod:`hcgym.perception.speech.protocol`). Writes ``results.json``, ``table.md``, ``configs.png`` and
``by_distance.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    return values


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``speech`` target to ``hcgym evaluate``."""
    s = targets.add_parser("speech", help="Self-ONN keyword spotters (Table 25) on fresh test speakers, and "
                                          "against distance and reverberation",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--seed", type=_args.seed, default=0, help="draws the clips (from seed 7000000 + SEED)")
    s.add_argument("--out", type=Path, default=Path("out/evaluate-speech"), help="output directory")
    s.add_argument("--bundle", type=Path, default=None,
                   help="study bundle of `hcgym train speech` (default perception/speech/models/"
                        "speech_selfonn_study.pt)")
    s.add_argument("--count", type=_args.positive_int, default=None, help="fresh clips (default 2000)")
    s.add_argument("--distance-count", type=_args.positive_int, default=None,
                   help="speech clips re-heard at every distance and RT60 (default 300)")
    s.add_argument("--distances", type=_floats, default=None, help="talker distances in m (default 0.5,1,2,4,6)")
    s.add_argument("--rt60", type=_floats, default=None, help="target reverberation times in s (default 0.2,0.5,0.8)")
    s.add_argument("--quick", action="store_true", help="a seconds-long run (48 clips of 4 speakers, 2 distances)")
    s.set_defaults(func=run_speech)


def run_speech(args: argparse.Namespace) -> int:
    from hcgym.errors import SpecError
    from hcgym.perception.speech import protocol
    from hcgym.perception.speech.report import figures, table_markdown
    from hcgym.report import write_report

    if args.out.exists() and not args.out.is_dir():
        raise SpecError("--out", f"{args.out} is not a folder")
    base = protocol.quick_config(args.seed) if args.quick else protocol.SpeechEvalConfig(seed=args.seed)
    try:
        config = protocol.with_overrides(
            base, bundle=None if args.bundle is None else str(args.bundle), count=args.count,
            distance_count=args.distance_count, distances=args.distances, rt60s=args.rt60).check()
    except SpecError as e:
        field = {"rt60s": "rt60"}.get(e.field, e.field)
        raise SpecError(field if field.startswith("--") else "--" + field.replace("_", "-"), e.problem) from None
    results = protocol.run(config, progress=True)
    write_report(args.out, results, table_markdown(results), figures(results))
    c = results["checks"]
    print(f"[speech] E >= A: {c['e_ge_a']}, F < A: {c['f_lt_a']}, MACs E/A: {c['mac_ratio_e_a']}; "
          f"{results['seconds']['total']:.0f} s; wrote {args.out}/results.json, table.md, configs.png, by_distance.png")
    return 0
