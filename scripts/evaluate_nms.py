"""``hcgym evaluate nms``: every NMS method on a held-out generated crowd test set (seed Tables 5-7 layout).

Generates (or reuses) a fresh test set of ``--n-images`` scenes of one density (``sparse`` 1-5 people,
``medium`` 12-16, ``dense`` 20-40; seed 1000 and up, apart from the training data), runs the detector
once (cached by fingerprint), then runs every NMS method on the first N candidates of each image for
every cap N, scoring AP0.5 and AP0.5:0.95 with pycocotools (maxDets = [N], ignore regions as
iscrowd) and timing each call (median ms per image). Seq2Seq-NMS rows use ``--checkpoint``
(default: the shipped model) and ``--ablation-checkpoint`` (default: the shipped no-mask model);
with ``none`` they are left out, never reported untrained. ``--annotations COCO.json`` evaluates on
your own images and ground truth instead of a generated set (``--detector`` may then be a COCO
results file of candidates). Writes ``results.json``, ``table.md``,
``ap_vs_candidates.png`` and ``examples.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hcgym.scripts import _args

ABLATION = "seq2seq_nomask"
TEST_SIZE = (384, 288)
TEST_WORLD = "crowd_street"


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
    from hcgym.perception.nms.evaluation import SPLITS

    s = targets.add_parser("nms", help="NMS methods (greedy, Soft, Fast, Cluster, Seq2Seq) on generated crowds",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--split", choices=tuple(SPLITS), default="dense", help="crowd density of the test set")
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


def split_scene_settings(split: str):
    """The generator's :class:`~hcgym.synthesis.dataset.SceneSettings` of a test density: people and
    occlusion from :data:`hcgym.perception.nms.evaluation.SPLITS`, distance 2-14 m, 48 identities,
    every image in the ``test`` split."""
    from hcgym.errors import SpecError
    from hcgym.perception.nms.evaluation import SPLITS
    from hcgym.synthesis.dataset import SceneSettings

    if split not in SPLITS:
        raise SpecError("--split", f"unknown split {split!r} (allowed: {', '.join(SPLITS)})")
    humans, occlusion = SPLITS[split]
    return SceneSettings(humans=humans, occlusion=occlusion, distance=(2.0, 14.0), identities=48,
                         splits=(0.0, 0.0, 1.0))


def generate_test_set(split: str, seed: int, n_images: int, root: Path, workers: int = 1,
                      progress: bool = True) -> Path:
    """Generate (or reuse: the generator resumes and checks its key) ``root/{split}_seed{seed}_n{n}``."""
    from hcgym.synthesis.dataset import GenerateConfig, generate

    out = Path(root) / f"{split}_seed{seed}_n{n_images}"
    generate(GenerateConfig(out=out, n=n_images, seed=seed, world=TEST_WORLD, size=TEST_SIZE,
                            scene=split_scene_settings(split), workers=workers), progress=progress)
    return out


def build_methods(names: str, checkpoint: Path | None, ablation: Path | None) -> tuple[dict, list[str]]:
    """``({name: NmsMethod}, notes)`` for ``--methods`` (checked before anything runs)."""
    from hcgym.errors import SpecError
    from hcgym.perception import nms

    known = [*nms.list_methods(), ABLATION]
    wanted = known if names.strip() == "all" else [n.strip() for n in names.split(",") if n.strip()]
    for n in wanted:
        if n not in known:
            raise SpecError("--methods", f"unknown method {n!r} (allowed: all or {', '.join(known)})")
    if not wanted:
        raise SpecError("--methods", "no method given (allowed: all or comma-separated names)")
    explicit = names.strip() != "all"
    paths = {"seq2seq": ("--checkpoint", checkpoint), ABLATION: ("--ablation-checkpoint", ablation)}
    methods, notes = {}, []
    for n in wanted:
        if n not in paths:
            methods[n] = nms.make(n)
            continue
        flag, path = paths[n]
        if path is None:
            if explicit:
                raise SpecError(flag, f"method {n} needs a trained checkpoint")
            notes.append(f"{n} left out: no {flag} given (an untrained model is never reported)")
            continue
        try:
            method = nms.make("seq2seq", checkpoint=path)
        except SpecError as e:
            raise SpecError(flag, e.problem) from None
        except Exception as e:  # a file torch cannot read
            raise SpecError(flag, f"{path} is not a Seq2Seq-NMS checkpoint ({type(e).__name__}: {e})") from None
        if method.model.config.mask != (n == "seq2seq"):
            want = "with the attention mask" if n == "seq2seq" else "without the mask (hcgym train ... --no-mask)"
            raise SpecError(flag, f"{path} was not trained {want}")
        method.name = n
        methods[n] = method
    return methods, notes


def run_nms(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    import torch

    from hcgym.paths import atomic_write_bytes
    from hcgym.perception.nms import evaluation as ev
    from hcgym.perception.nms.candidates import cached_candidates, make_detector

    from hcgym.errors import SpecError

    torch.set_num_threads(1)
    methods, notes = build_methods(args.methods, *(None if str(c).lower() == "none" else c
                                                   for c in (args.checkpoint, args.ablation_checkpoint)))
    detector = make_detector(args.detector)
    for note in notes:
        print(f"[nms] note: {note}", flush=True)
    t0 = time.time()
    root = args.data_cache or args.out / "data"
    if args.annotations is not None:
        if not args.annotations.is_file():
            raise SpecError("--annotations", f"COCO file not found: {args.annotations}")
        data = args.annotations
        cache = args.out / f"candidates_{detector.fingerprint[:16]}.npz"
        args.split = args.annotations.stem
    else:
        data = generate_test_set(args.split, args.seed, args.n_images, root, workers=args.workers)
        cache = data / f"candidates_{detector.name}_{detector.fingerprint[:16]}.npz"
    cset = cached_candidates(cache, data, detector, max(args.caps), split="test")
    rows, dets = ev.evaluate_methods(cset, methods, args.caps)
    simulated = bool(getattr(detector, "uses_ground_truth", False))
    if simulated:
        notes.append("candidates from the detector simulator (drawn around the ground truth): not a result")
    results = {
        "split": args.split, "seed": None if args.annotations is not None else args.seed, "n_images": len(cset),
        "detector": {"name": detector.name, "fingerprint": detector.fingerprint, "simulated": simulated},
        "caps": list(args.caps), "pre_nms_iou": cset.meta.get("pre_nms_iou"),
        "candidates_per_image": float(np.mean([len(im.scores) for im in cset])),
        "people_per_image": float(np.mean([int((~im.gt_ignore).sum()) for im in cset])),
        "ignored_per_image": float(np.mean([int(im.gt_ignore.sum()) for im in cset])),
        "timing": "median over images of the wall-clock ms of one method call (one CPU thread, image decoding "
                  "excluded; Seq2Seq-NMS includes its edge map, edge_ms alone)",
        "methods": rows, "notes": notes, "data": str(data), "seconds": 0.0,
    }
    results["seconds"] = round(time.time() - t0, 1)
    i = ev.example_index(cset)
    soft = next((n for n in ("soft_linear", "soft_gaussian") if n in dets), None)
    panels = {n: dets[n][i] for n in ("greedy_0.5", soft, "seq2seq") if n in dets}
    thresholds = {n: ev.best_f1_threshold(cset.images, dets[n]) for n in panels}
    for n, t in thresholds.items():
        rows[n]["f1_threshold"] = t
    title = (f"{args.split} test image {cset[i].image_id}: kept boxes above each method's best-F1 score threshold "
             f"(N = {args.caps[-1]})" + (", SIMULATED candidates" if simulated else ""))
    files = {
        "results.json": json.dumps(results, indent=1).encode(),
        "table.md": ev.table_markdown(results).encode(),
        "ap_vs_candidates.png": ev.ap_figure(results),
        "examples.png": ev.examples_figure(cset[i], panels or {"ground truth": (np.zeros((0, 4)), np.zeros(0))},
                                           thresholds, title=title),
    }
    for name, payload in files.items():
        atomic_write_bytes(args.out / name, payload)
    best = max(rows, key=lambda n: rows[n]["ap50"] if rows[n]["ap50"] == rows[n]["ap50"] else -1.0)
    print(f"[nms] {args.split}, {len(cset)} images, N = {args.caps[-1]}: best AP0.5 {best} "
          f"{100 * rows[best]['ap50']:.1f}%; wrote {args.out}/results.json, table.md, ap_vs_candidates.png, "
          f"examples.png", flush=True)
    return 0
