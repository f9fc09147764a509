"""``hcgym evaluate TARGET``: evaluation protocols (one sub-command per target).

``hcgym evaluate face --out DIR``: verification accuracy (6,000 pairs, 10-fold
cross-validation) on held-out avatar identities in three simulated settings
(LFW-, CPLFW- and CALFW-like) for the in-house network's final layer, every
early exit x head (Raw, LR, BoF, Proposed) and dlib; FLOPs per exit. Writes
``results.json``, ``table.md`` and figures.

Each target parses its options, calls its protocol and writes the files
(:mod:`hcgym.report`): ``face`` :mod:`hcgym.perception.face.evaluation`,
``active-fr`` :mod:`hcgym.agents.evaluation.active_fr`, ``synth-view``
:mod:`hcgym.agents.evaluation.synth_view`, ``nms``
:mod:`hcgym.perception.nms.evaluation`, ``detector``
:mod:`hcgym.perception.detection.evaluation`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from hcgym.scripts import _args

if TYPE_CHECKING:
    from hcgym.agents.evaluation.active_fr import ActiveFrConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="run an evaluation protocol (face, active-fr, synth-view, detector, nms)", description=__doc__)
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    f = targets.add_parser("face", help="face verification: final layer, early exits x heads, dlib")
    f.add_argument("--out", type=Path, default=Path("out/evaluate-face"), help="output directory")
    f.add_argument("--seed", type=_args.seed, default=0, help="picks the held-out identities and the pairs")
    f.add_argument("--identities", type=_args.positive_int, default=300, help="held-out identities per set")
    f.add_argument("--per-identity", type=_args.positive_int, default=10, help="images per identity")
    f.add_argument("--pairs", type=_args.positive_int, default=6000, help="pairs per set (half same identity)")
    f.add_argument("--sets", default="lfw_like,cplfw_like,calfw_like", help="comma-separated subset of the sets")
    f.add_argument("--checkpoint", type=Path, default=None, help="IRNet checkpoint (default: the shipped one)")
    f.add_argument("--heads", type=Path, default=None, help="exit heads file (default: beside the checkpoint)")
    f.add_argument("--no-dlib", action="store_true", help="skip the dlib comparison (faster)")
    f.add_argument("--workers", type=_args.positive_int, default=2, help="rendering processes")
    f.set_defaults(func=run_face)

    a = targets.add_parser("active-fr", help="OpenDR D3.2 Tables 2/3 protocol for an active face recognition agent")
    a.add_argument("--protocol", choices=("setup1", "setup2"), required=True)
    a.add_argument("--agent", required=True, help="ppo, rule or static, or several comma-separated "
                                                  "(one table with a column per agent)")
    a.add_argument("--checkpoint", type=Path, default=None,
                   help="PPO model .zip (default: the shipped agent of the protocol's setup)")
    a.add_argument("--trust-checkpoint", action="store_true",
                   help="allow a --checkpoint from outside hcgym (SB3 zips are pickles: only files you trust)")
    a.add_argument("--avatars", type=_args.seed_range, default=None,
                   help="avatar seeds (>= 5; the first 4 are evaluated, all form the gallery); default 400000-400007")
    a.add_argument("--sample", action="store_true",
                   help="PPO samples its actions (seeded, reproducible) instead of taking the most probable one")
    a.add_argument("--persons", type=_args.positive_int, default=4, help="how many of the avatars are evaluated")
    a.add_argument("--steps", type=_args.positive_int, default=300, help="steps per episode")
    a.add_argument("--out", type=Path, default=Path("out/evaluate-active-fr"))
    a.set_defaults(func=run_active_fr)

    from hcgym.scripts import evaluate_action, evaluate_motion, evaluate_nms, evaluate_synth_view

    evaluate_synth_view.register(targets)
    evaluate_nms.register(targets)
    evaluate_motion.register(targets)
    evaluate_action.register(targets)

    from hcgym.scripts import evaluate_detector

    evaluate_detector.register(targets)

    from hcgym.scripts import evaluate_sensor

    evaluate_sensor.register(targets)

    from hcgym.scripts import evaluate_expression

    evaluate_expression.register(targets)

    from hcgym.scripts import evaluate_gesture

    evaluate_gesture.register(targets)

    from hcgym.scripts import evaluate_biosignal

    evaluate_biosignal.register(targets)

    from hcgym.scripts import evaluate_speech

    evaluate_speech.register(targets)


def run_face(args: argparse.Namespace) -> int:
    from hcgym.errors import SpecError
    from hcgym.perception.face import evaluation as ev
    from hcgym.perception.face.early_exits import ExitHeads
    from hcgym.perception.face.irnet import load_checkpoint
    from hcgym.perception.face.models import shipped_checkpoint
    from hcgym.report import write_report
    from hcgym.synthesis.face_sets import SETS, held_out_identities, make_pairs, render_set

    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    for s in sets:
        if s not in SETS:
            raise SpecError("--sets", f"unknown set {s!r} (allowed: {', '.join(SETS)})")
    ckpt = args.checkpoint or shipped_checkpoint()
    heads_path = args.heads or ckpt.with_name("exit_heads.pt")
    model, arch, _ = load_checkpoint(ckpt)
    heads = ExitHeads.load(heads_path)
    ids = held_out_identities(args.seed, args.identities)

    def render(kind: str):
        data = render_set(kind, ids, args.per_identity, model.input_size, seed=args.seed, progress=True,
                          with_dlib=not args.no_dlib, workers=args.workers)
        return data, make_pairs(data, kind, args.pairs, seed=args.seed)

    config = ev.FaceVerificationConfig(sets=tuple(sets), seed=args.seed, identities=args.identities,
                                       per_identity=args.per_identity, pairs=args.pairs, checkpoint=str(ckpt))
    results = ev.run(config, model, heads, render)
    write_report(args.out, results, ev.table_markdown(results), ev.figures(results))
    print(f"[evaluate] wrote {args.out}/results.json, table.md, accuracy_by_exit.png, accuracy_vs_flops.png")
    return 0


def run_active_fr(args: argparse.Namespace) -> int:
    from hcgym.agents.evaluation import active_fr
    from hcgym.errors import SpecError

    names = tuple(a.strip() for a in args.agent.split(",") if a.strip())
    try:
        config = active_fr.ActiveFrConfig(
            protocol=args.protocol, agents=names, avatars=tuple(args.avatars or active_fr.EVAL_AVATARS),
            persons=args.persons, steps=args.steps, checkpoint=args.checkpoint,
            trust_checkpoint=args.trust_checkpoint, sample=args.sample)
    except SpecError as e:
        raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
    if "ppo" in names and args.checkpoint is not None:  # refused before any episode runs
        from hcgym.agents.ppo import trusted_checkpoint

        trusted_checkpoint(args.checkpoint, args.trust_checkpoint, "--checkpoint")
    for r in publish_active_fr(config, args.out):
        print(f"[evaluate] {args.protocol} {r['agent']}: mean confidence {active_fr.mean_confidence(r):.3f}")
    print(f"[evaluate] wrote {args.out}/ (results.json, table.md, confidence.png, episode GIFs)")
    return 0


def publish_active_fr(config: ActiveFrConfig, out: Path) -> list[dict]:
    """Run :mod:`hcgym.agents.evaluation.active_fr` and write results.json (one agent) or AGENT/results.json
    (several), table.md in the layout of Tables 2/3, confidence.png and one episode GIF per agent (every file
    complete before the first is written, each renamed into place). Returns the results of each agent."""
    from hcgym.agents.evaluation import active_fr
    from hcgym.report import write_files

    results = active_fr.run(config)
    write_files(Path(out), {**active_fr.result_files(results), "table.md": active_fr.table_markdown(results),
                            **active_fr.figures(results)})
    return results["agents"]
