"""``hcgym evaluate motion``: the motion library checked by off-the-shelf sensors on held-out avatars.

Avatars ``AvatarSpec.random(900000 + 1000 * SEED + k)`` (never used to build or fit the motion library).
Body actions: one clip per (avatar, action) rendered from a behaviour timeline with the embedded backend
(GL renderer), MediaPipe Pose PCK@0.2 over the visible shoulders, elbows, wrists, hips, knees and ankles of
the ground-truth NTU skeleton (target >= 90% per action). Gestures: the 16 hand gestures presented to the
camera by both hands in three views, the share MediaPipe Hands finds (target >= 80%) and the rule
classifier on the ground-truth 3-D points. Expressions: the 7 expressions at apex, MediaPipe Face Mesh
displacements, nearest-centroid and logistic-regression accuracy on held-out avatars (target >= 90%).
The protocol is :mod:`hcgym.synthesis.motion_fidelity`. Writes ``results.json``, ``table.md``,
``body_sheet.png``, ``gesture_sheet.png``, ``expression_sheet.png`` and ``expression_confusion.png`` into
``--out``; the same seed gives the same ``results.json``.
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
    """Add the ``motion`` target to ``hcgym evaluate``."""
    s = targets.add_parser("motion", help="body actions, gestures and expressions checked by MediaPipe",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--seed", type=_args.seed, default=0, help="picks the held-out avatars")
    s.add_argument("--out", type=Path, default=Path("out/evaluate-motion"), help="output directory")
    s.add_argument("--quick", action="store_true",
                   help="a small run (1 avatar x 4 actions, 6 gestures, 4 expression avatars; under a minute)")
    s.add_argument("--parts", type=_names, default=None, help="comma-separated subset of body,gestures,expressions")
    s.add_argument("--actions", type=_names, default=None, help="comma-separated actions (default: all checked)")
    s.add_argument("--gestures", type=_names, default=None, help="comma-separated gestures (default: all 16)")
    s.add_argument("--body-avatars", type=_args.positive_int, default=None, help="avatars per action")
    s.add_argument("--gesture-avatars", type=_args.positive_int, default=None, help="avatars per gesture")
    s.add_argument("--expression-avatars", type=_args.positive_int, default=None,
                   help="avatars for the expressions (the first --expression-train train, the others test)")
    s.add_argument("--expression-train", type=_args.positive_int, default=None, help="training avatars")
    s.add_argument("--fps", type=_args.positive_float, default=None, help="frames per second of the action clips")
    s.set_defaults(func=run_motion)


def run_motion(args: argparse.Namespace) -> int:
    import dataclasses

    from hcgym.errors import SpecError
    from hcgym.report import write_report
    from hcgym.synthesis import motion_fidelity as mf

    base = mf.quick_config(args.seed) if args.quick else mf.MotionFidelityConfig(seed=args.seed)
    over = {k: getattr(args, k) for k in ("parts", "actions", "gestures", "body_avatars", "gesture_avatars",
                                          "expression_avatars", "expression_train", "fps")
            if getattr(args, k) is not None}
    try:
        config = dataclasses.replace(base, **over)
    except SpecError as e:
        raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
    results = mf.run(config, progress=True)
    write_report(args.out, results, mf.table_markdown(results), mf.figures(results))
    parts = []
    if "body" in results:
        b = results["body"]
        parts.append(f"body PCK@0.2 {100 * b['pck']:.1f}% ({b['actions_at_target']}/{len(b['actions'])} actions "
                     f">= 90%)")
    if "gestures" in results:
        g = results["gestures"]
        parts.append(f"hands found {g['found']}/{g['renders']} ({100 * g['found_rate']:.1f}%), rule "
                     f"{g['rule_correct']}/{g['rule_total']}")
    if "expressions" in results:
        e = results["expressions"]
        parts.append(f"expressions NC {100 * e['nc_accuracy']:.1f}% / LR {100 * e['lr_accuracy']:.1f}%")
    seconds = sum(results["_seconds"].values())
    print(f"[motion] {'; '.join(parts)}; {seconds:.0f} s; wrote {args.out}/results.json, table.md and figures")
    return 0
