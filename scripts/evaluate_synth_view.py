"""``hcgym evaluate synth-view``: OpenDR D3.2 section 2.4 (Table 8) in simulation.

An HPID-like set of 15 avatars (``--seed`` picks them), two series each, pans -90..90 and tilts -30..30 in
15 degree steps; Set 1 = 4 test persons; gallery = pans {-15, 0, 15} x all tilts; queries = the other pans.
Compares the static recogniser, the synthesized-view agent (Algorithm 1) and oracle moves toward frontal
(an upper bound), all with MediaPipe detection + dlib 128-d embeddings, plus Algorithm 1 fed the true views
(a diagnostic: perfect synthesis), and measures the view synthesis (SSIM, dlib distances, ms per view).
Writes ``results.json``, ``table.md``, ``accuracy_vs_pan.png`` and ``synthesis_strip.png`` into ``--out``.
The protocol is :mod:`hcgym.agents.evaluation.synth_view`; ``--calibrate`` runs
:mod:`hcgym.agents.evaluation.synth_view_calibration` instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def _angles(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if not vals or any(abs(v) > 90 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated degrees within +-90, e.g. -30,0,30, got {text!r}")
    return vals


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``synth-view`` target to ``hcgym evaluate``."""
    s = targets.add_parser("synth-view", help="OpenDR D3.2 Table 8: active face recognition with synthesized views",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--seed", type=_args.seed, default=0, help="picks the 15 avatars and the 4 test persons")
    s.add_argument("--out", type=Path, default=Path("out/evaluate-synth-view"), help="output directory")
    s.add_argument("--avatars", type=_args.positive_int, default=15, help="persons in the HPID-like set")
    s.add_argument("--test-persons", type=_args.positive_int, default=4, help="Set 1 size (test persons)")
    s.add_argument("--max-moves", type=int, default=2, help="moves the agent may make (the seed: 2)")
    s.add_argument("--threshold", type=_args.finite, default=0.0,
                   help="FRC a moved-to real image must exceed to answer at once (default 0: within the cut-off)")
    s.add_argument("--query-pans", type=_angles, default=(-90, -75, -60, -45, -30, 30, 45, 60, 75, 90),
                   help="starting pans (degrees, comma-separated)")
    s.add_argument("--database-pans", type=_angles, default=(-15, 0, 15), help="gallery pans")
    s.add_argument("--tilts", type=_angles, default=(-30, -15, 0, 15, 30), help="tilts (degrees)")
    s.add_argument("--size", type=_args.size, default=(384, 288), help="image size WxH (HPID: 384x288)")
    s.add_argument("--dataset", type=Path, default=None,
                   help="a multi-view folder to run the protocol on instead of rendering Set 1: the output of "
                        "`hcgym generate --mode multiview`, a write_folder layout or the original HPID files "
                        "(its grid must hold --database-pans, --query-pans and --tilts)")
    s.add_argument("--no-quality", action="store_true", help="skip the synthesis quality study")
    s.add_argument("--save-images", type=Path, default=None,
                   help="also write the rendered Set 1 as <person>/<series>/<pan>/<tilt>.png under this folder")
    s.add_argument("--synth-bias", type=_args.finite, default=None,
                   help="one embedding distance credited to every synthesised view's FRC (default: the calibrated "
                        "correction, by whether a view turns the face toward the camera; 0: compare raw FRCs)")
    s.add_argument("--calibrate", action="store_true",
                   help="instead of the protocol, measure the synthesis bias on the calibration avatars "
                        "(seeds 910000-910005) and write --out/synthesized_view_calibration.json")
    s.set_defaults(func=run_synth_view)


def run_calibration(args: argparse.Namespace) -> int:
    """``--calibrate``: the synthesis bias on the calibration avatars, in the shipped file's format."""
    from hcgym.agents.evaluation import synth_view_calibration as calibration
    from hcgym.report import write_files

    table = calibration.run(database_pans=args.database_pans, query_pans=args.query_pans, tilts=args.tilts,
                            size=args.size, progress=True)
    write_files(args.out, {"synthesized_view_calibration.json": calibration.table_bytes(table)})
    entry = table[calibration.CALIBRATED_PAIR]
    print(f"[synth-view] distance bias {entry['distance_bias']:+.4f} over {entry['pairs']} pairs "
          f"(turning the face toward the camera {entry['toward']:+.4f}, {entry['pairs_toward']} pairs; away "
          f"{entry['away']:+.4f}, {entry['pairs_away']} pairs); wrote {args.out}/synthesized_view_calibration.json")
    return 0


def run_synth_view(args: argparse.Namespace) -> int:
    from hcgym.agents.evaluation import synth_view, synth_view_report
    from hcgym.errors import SpecError
    from hcgym.report import write_report

    if args.max_moves < 0:
        raise SpecError("--max-moves", f"must be >= 0, got {args.max_moves}")
    if args.calibrate:
        return run_calibration(args)
    if args.test_persons > args.avatars:
        raise SpecError("--test-persons", f"{args.test_persons} is more than the {args.avatars} avatars")
    try:
        proto = synth_view.SynthViewProtocol(seed=args.seed, avatars=args.avatars, test_persons=args.test_persons,
                                             database_pans=args.database_pans, query_pans=args.query_pans,
                                             tilts=args.tilts, max_moves=args.max_moves, threshold=args.threshold,
                                             size=args.size, quality=not args.no_quality, synth_bias=args.synth_bias)
    except SpecError as e:
        raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
    try:
        data = None if args.dataset is None else synth_view.load_dataset(args.dataset, proto)
    except SpecError as e:
        raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
    results = synth_view.run(proto, progress=True, data=data)
    write_report(args.out, results, synth_view_report.table_markdown(results), synth_view_report.figures(results))
    if args.save_images is not None:
        from hcgym.synthesis.multiview import write_folder

        write_folder(results["_data"], args.save_images)
    gain = results["synthesized_view"] - results["static"]
    print(f"[synth-view] static {results['static']:.2f}%, synthesized view {results['synthesized_view']:.2f}% "
          f"({gain:+.2f} points), oracle moves {results['oracle_move']:.2f}%, Algorithm 1 with true views "
          f"{results['algorithm1_true_views']:.2f}% (seed: 58.33% / 91.09%); "
          f"wrote {args.out}/results.json, table.md, accuracy_vs_pan.png, synthesis_strip.png")
    return 0
