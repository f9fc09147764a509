"""``hcgym calibrate TARGET``: regenerate a calibrated table that hcgym ships (one sub-command per target).

``hcgym calibrate face-cutoffs``: the cut-off distance ``a`` of the active face recognition reward
(eq. 4-5) per recognizer, the distance with a 1 % false-accept rate in the identity study on held-out
avatars ``AvatarSpec.random(SEED..SEED+N-1)`` (gallery 1 m frontal, queries under another light, +-10
degrees of yaw, a mild expression). Writes ``--out`` and ``PROVENANCE_<name>.json`` beside it (command,
seed, avatars, recognizers, FAR, exact thresholds, rank-1; no dates, so the same seed gives the same
bytes). The defaults reproduce the shipped ``perception/face/models/cutoffs.json``; copy both files
there to ship new values.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from hcgym.scripts import _args


def register(sub: argparse._SubParsersAction) -> None:
    from hcgym.perception.face.calibration import AVATARS, FAR, RECOGNIZERS, SEED

    p = sub.add_parser("calibrate", help="regenerate a calibrated table (face-cutoffs)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    f = targets.add_parser("face-cutoffs", help="recognizer cut-offs of the active face recognition reward",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--avatars", type=_args.positive_int, default=AVATARS, help="held-out avatars (>= 2)")
    f.add_argument("--seed", type=_args.seed, default=SEED, help="first avatar seed (AvatarSpec.random(SEED + i))")
    f.add_argument("--far", type=_args.finite, default=FAR, help="false-accept rate of the cut-off, in (0, 1)")
    f.add_argument("--recognizers", default=",".join(RECOGNIZERS),
                   help=f"comma-separated, among {', '.join(RECOGNIZERS)}")
    f.add_argument("--out", type=Path, default=Path("out/calibrate/cutoffs.json"), help="the table to write (.json)")
    f.set_defaults(func=run_face_cutoffs)


def run_face_cutoffs(args: argparse.Namespace) -> int:
    from hcgym import __version__
    from hcgym.perception.face.calibration import calibrate_face_cutoffs, check_out, check_settings, write_cutoffs
    from hcgym.synthesis.identity_study import run_identity_study

    recognizers = [r.strip() for r in args.recognizers.split(",") if r.strip()]
    check_settings(recognizers, args.far, args.avatars)  # before anything is rendered or written
    check_out(args.out)
    cals = calibrate_face_cutoffs(lambda r: run_identity_study(args.avatars, args.seed, progress=True, recognizer=r),
                                  recognizers, args.far)
    settings = {"command": "hcgym " + " ".join(shlex.quote(a) for a in getattr(args, "argv", [])),
                "seed": args.seed, "avatars": args.avatars,
                "avatar_seeds": f"AvatarSpec.random({args.seed}..{args.seed + args.avatars - 1})",
                "protocol": "hcgym.synthesis.identity_study.run_identity_study (400x300, dlib HOG detections)",
                "hcgym": __version__}
    table, prov = write_cutoffs(args.out, cals, settings)
    for c in cals:
        print(f"[calibrate] {c.recognizer}: cut-off {c.cutoff:g} (threshold {c.threshold:.5f} at FAR {c.far:g}; "
              f"TAR {c.tar_at_cutoff:.3f}, rank-1 {c.rank1:.3f}, {c.impostor.size} impostor pairs)")
    print(f"[calibrate] wrote {table} and {prov}")
    return 0
