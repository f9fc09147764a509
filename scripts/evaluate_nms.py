"""``hcgym evaluate nms``: every NMS method on a held-out generated crowd test set (seed Tables 5-7 layout).

Generates (or reuses) a fresh test set of ``--n-images`` scenes of one density (``sparse`` 1-5 people,
``medium`` 12-16, ``dense`` 20-40; seed 1000 and up, apart from the training data), runs the detector
once (cached by fingerprint), then runs every NMS method on the first N candidates of each image for
every cap N, scoring AP0.5 and AP0.5:0.95 with pycocotools (maxDets = [N], ignore regions as
iscrowd) and timing each call (median ms per image); the protocol is :mod:`hcgym.perception.nms.evaluation`,
the test sets :mod:`hcgym.synthesis.dataset.test_sets`. Seq2Seq-NMS rows use ``--checkpoint``
(default: the shipped model) and ``--ablation-checkpoint`` (default: the shipped no-mask model);
with ``none`` they are left out, never reported untrained. ``--annotations COCO.json`` evaluates on
your own images and ground truth instead of a generated set (``--detector`` may then be a COCO
results file of candidates). Writes ``results.json``, ``table.md``,
``ap_vs_candidates.png`` and ``examples.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def _caps(text: str) -> list[int]:
    try:
        vals = sorted({int(v) for v in text.split(",")})
    except ValueError:
        vals = []
    if not vals or vals[0] < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive candidate counts, e.g. 100,200,400, "
                                         f"got {text!r}")
    return vals


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``nms`` target to ``hcgym evaluate``."""
    from hcgym.perception.nms.evaluation import ABLATION
    from hcgym.synthesis.dataset.test_sets import CROWD_DENSITIES

    s = targets.add_parser("nms", help="NMS methods (greedy, Soft, Fast, Cluster, Seq2Seq) on generated crowds",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--split", choices=tuple(CROWD_DENSITIES), default="dense", help="crowd density of the test set")
    s.add_argument("--seed", type=_args.seed, default=1000, help="test-set seed (training data uses 100)")
    s.add_argument("--n-images", type=_args.positive_int, default=200, help="test images")
    s.add_argument("--caps", type=_caps, default=[100, 200, 400], help="candidates per image N, comma-separated")
    s.add_argument("--methods", default="all", help="all, or comma-separated names (hcgym.perception.nms."
                                                    f"list_methods() and {ABLATION})")
    s.add_argument("--checkpoint", default="shipped",
                   help="trained Seq2Seq-NMS (hcgym train seq2seq-nms): a path, 'shipped' (default) or 'none'")
    s.add_argument("--ablation-checkpoint", default="shipped-nomask",
                   help="Seq2Seq-NMS trained with --no-mask: a path, 'shipped-nomask' (default) or 'none'")
    s.add_argument("--detector", default="shipped",
                   help="shipped, simulated, a detector file (.pt/.onnx) or a COCO results file of candidates (.json)")
    s.add_argument("--annotations", type=Path, default=None,
                   help="evaluate on this COCO file and its images instead of a generated set (--split/--seed unused)")
    s.add_argument("--workers", type=_args.positive_int, default=1, help="processes rendering the test set")
    s.add_argument("--data-cache", type=Path, default=None, help="where test sets are kept (default OUT/data)")
    s.add_argument("--out", type=Path, default=Path("out/evaluate-nms"), help="output directory")
    s.set_defaults(func=run_nms)


def run_nms(args: argparse.Namespace) -> int:
    import torch

    from hcgym.errors import SpecError
    from hcgym.perception.nms import evaluation as ev
    from hcgym.perception.nms.candidates import make_detector
    from hcgym.report import write_report
    from hcgym.synthesis.dataset.test_sets import generate_test_set

    torch.set_num_threads(1)
    try:
        config = ev.NmsEvalConfig(split=args.split, seed=args.seed, n_images=args.n_images, caps=tuple(args.caps),
                                  annotations=args.annotations, cache_dir=args.out)
        methods, notes = ev.build_methods(args.methods, *(None if str(c).lower() == "none" else c
                                                          for c in (args.checkpoint, args.ablation_checkpoint)))
    except SpecError as e:
        raise SpecError("--" + e.field.replace("_", "-"), e.problem) from None
    detector = make_detector(args.detector)
    for note in notes:
        print(f"[nms] note: {note}", flush=True)
    root = args.data_cache or args.out / "data"

    def make_set(split: str, seed: int, n: int) -> Path:
        return generate_test_set(root / f"{split}_seed{seed}_n{n}", split, n, seed, workers=args.workers)

    results = ev.run(config, methods, detector, make_set, notes)
    write_report(args.out, results, ev.table_markdown(results), ev.figures(results))
    rows = results["methods"]
    best = max(rows, key=lambda n: rows[n]["ap50"] if rows[n]["ap50"] == rows[n]["ap50"] else -1.0)
    print(f"[nms] {results['split']}, {results['n_images']} images, N = {results['caps'][-1]}: best AP0.5 {best} "
          f"{100 * rows[best]['ap50']:.1f}%; wrote {args.out}/results.json, table.md, ap_vs_candidates.png, "
          f"examples.png", flush=True)
    return 0
