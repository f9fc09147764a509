"""NMS evaluation: AP of every NMS method on the candidates of a held-out generated test set.

Protocol (``hcgym evaluate nms``; the seed's Tables 5-7 layout):

* **Test sets**: fresh scenes from the generator, one per density
  (:data:`hcgym.synthesis.dataset.test_sets.CROWD_DENSITIES`): ``sparse`` (1-5 people, occlusion 0.3;
  COCO-like), ``medium`` (12-16, 0.5; PETS-like) and ``dense`` (20-40, 0.7; CrowdHuman-like), world
  ``crowd_street``, 384x288, distance 2-14 m, 48 identities, all images in the ``test`` split
  (:func:`hcgym.synthesis.dataset.test_sets.generate_test_set`, called through the ``make_set`` the
  caller passes to :func:`run`: perception does not drive the generator); or a COCO file of your own.
* **Candidates**: the detector's boxes after the pre-NMS at IoU 0.8; for a cap ``N`` every method
  sees the first (highest-scoring) ``N`` of each image.
* **AP**: pycocotools ``COCOeval`` (``bbox``) with ``params.maxDets = [N]`` as the OpenDR evaluation
  does; ground truth = the target boxes of :func:`hcgym.perception.detection.load_coco_boxes`, ignore
  flags as ``iscrowd = 1`` regions (a detection inside one, intersection over the detection's area
  > the IoU threshold, is neither a true nor a false positive; missing one is not a miss);
  detections = the method's kept candidates with their final scores, no score threshold. AP0.5 is
  ``precision[0]`` and AP0.5:0.95 the mean over the 10 IoU thresholds of ``eval['precision']``
  (area ``all``), read directly because ``summarize()`` assumes three ``maxDets``.
* **Time**: wall-clock of one method call per image (``time.perf_counter``), the **median** over
  the images, in ms, one CPU thread, image decoding excluded. Seq2Seq-NMS times include its edge
  map, which the seed excludes (it runs beside the detector); ``edge_ms`` reports it separately.

Protocol shape (:mod:`hcgym.report`): :func:`build_methods` (the methods to compare), :func:`run`,
:func:`table_markdown`, :func:`figures` (``ap_vs_candidates.png``, ``examples.png``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.nms.base import NmsMethod
from hcgym.perception.nms.candidates import CandidateSet, ImageCandidates
from hcgym.perception.nms.metrics import Detections, coco_ap

#: The Seq2Seq-NMS ablation trained without the attention mask (``hcgym train seq2seq-nms --no-mask``).
ABLATION = "seq2seq_nomask"
#: ``make_set(split, seed, n) -> folder``: generate (or reuse) a test set of a crowd density.
MakeSet = Callable[[str, int, int], Path]


@dataclass(frozen=True)
class NmsEvalConfig:
    """Settings of the NMS protocol.

    Attributes:
        split: crowd density of the generated test set (or, with ``annotations``, a name for it).
        seed: test-set seed (training data uses 100).
        n_images: test images.
        caps: candidates per image N (every method sees the first N of each image), ascending.
        annotations: a COCO file of your own images to evaluate on instead of a generated set.
        cache_dir: where the candidates of an ``annotations`` set are cached (a generated set keeps its own).
    """

    split: str = "dense"
    seed: int = 1000
    n_images: int = 200
    caps: tuple[int, ...] = (100, 200, 400)
    annotations: Path | None = None
    cache_dir: Path = Path(".")

    def __post_init__(self) -> None:
        if not self.caps or min(self.caps) < 1:
            raise SpecError("caps", f"expected positive candidate counts, got {self.caps!r}")
        if self.annotations is not None and not Path(self.annotations).is_file():
            raise SpecError("annotations", f"COCO file not found: {self.annotations}")


# ------------------------------------------------------------------ AP


# ------------------------------------------------------------------ the methods


def build_methods(names: str, checkpoint: Path | None, ablation: Path | None) -> tuple[dict[str, NmsMethod], list[str]]:
    """``({name: NmsMethod}, notes)`` for ``names`` (``all`` or comma-separated names of
    :func:`hcgym.perception.nms.list_methods` and :data:`ABLATION`). Seq2Seq-NMS rows need ``checkpoint``
    (with the mask) and ``ablation`` (without it); under ``all`` a missing one is left out with a note,
    never reported untrained. Errors name ``methods``, ``checkpoint`` or ``ablation_checkpoint``."""
    from hcgym.perception import nms

    known = [*nms.list_methods(), ABLATION]
    wanted = known if names.strip() == "all" else [n.strip() for n in names.split(",") if n.strip()]
    for n in wanted:
        if n not in known:
            raise SpecError("methods", f"unknown method {n!r} (allowed: all or {', '.join(known)})")
    if not wanted:
        raise SpecError("methods", "no method given (allowed: all or comma-separated names)")
    explicit = names.strip() != "all"
    paths = {"seq2seq": ("checkpoint", checkpoint), ABLATION: ("ablation_checkpoint", ablation)}
    methods, notes = {}, []
    for n in wanted:
        if n not in paths:
            methods[n] = nms.make(n)
            continue
        field, path = paths[n]
        flag = "--" + field.replace("_", "-")
        if path is None:
            if explicit:
                raise SpecError(field, f"method {n} needs a trained checkpoint")
            notes.append(f"{n} left out: no {flag} given (an untrained model is never reported)")
            continue
        try:
            method = nms.make("seq2seq", checkpoint=path)
        except SpecError as e:
            raise SpecError(field, e.problem) from None
        except Exception as e:  # a file torch cannot read
            raise SpecError(field, f"{path} is not a Seq2Seq-NMS checkpoint ({type(e).__name__}: {e})") from None
        if method.model.config.mask != (n == "seq2seq"):
            want = "with the attention mask" if n == "seq2seq" else "without the mask (hcgym train ... --no-mask)"
            raise SpecError(field, f"{path} was not trained {want}")
        method.name = n
        methods[n] = method
    return methods, notes


def run_method(method: NmsMethod, cset: CandidateSet, images: Sequence[np.ndarray] | None = None
               ) -> tuple[list[Detections], np.ndarray]:
    """Run ``method`` on every image of ``cset``: ``(kept detections per image, ms per image)``.

    Detections are the kept boxes (``result.boxes[keep]``, moved only by weighted Cluster-NMS) with
    their final scores. ``images`` (RGB) are needed by methods with ``requires_image``.
    """
    if method.requires_image and images is None:
        raise SpecError("images", f"{method.name or type(method).__name__} needs the images")
    dets, ms = [], []
    for i, im in enumerate(cset):
        rgb = images[i] if method.requires_image else None
        t0 = time.perf_counter()
        res = method(im.boxes, im.scores, rgb)
        ms.append((time.perf_counter() - t0) * 1e3)
        dets.append((res.boxes[res.keep].astype(np.float32), res.scores[res.keep].astype(np.float32)))
    return dets, np.asarray(ms)


def edge_map_ms(images: Sequence[np.ndarray], max_side: int) -> float:
    """Median ms of Seq2Seq-NMS's edge map alone (part of its timed call; the seed excludes it)."""
    from hcgym.perception.nms.seq2seq import edge_map

    ms = []
    for rgb in images:
        t0 = time.perf_counter()
        edge_map(rgb, max_side)
        ms.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ms)) if ms else float("nan")


def evaluate_methods(cset: CandidateSet, methods: dict[str, NmsMethod], caps: Sequence[int],
                     progress: bool = True) -> tuple[dict[str, Any], dict[str, list[Detections]]]:
    """Every method at every cap: ``(per-method results, detections per method at the largest cap)``.

    Results per method: ``ap50``, ``ap``, ``ms`` at the largest cap and ``by_cap[str(N)]`` with
    ``ap50``, ``ap``, ``ms`` (median per image) and ``kept`` (mean kept per image).
    """
    caps = sorted(set(int(c) for c in caps))
    need_images = any(m.requires_image for m in methods.values())
    images = [im.image() for im in cset] if need_images else None
    out: dict[str, Any] = {}
    largest: dict[str, list[Detections]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(methods) * len(caps), desc="evaluate nms", unit="run", dynamic_ncols=True)
    for name, method in methods.items():
        row: dict[str, Any] = {"by_cap": {}}
        for cap in caps:
            if bar is not None:
                bar.set_postfix_str(f"{name} N={cap}")
            dets, ms = run_method(method, cset.cap(cap), images)
            ap = coco_ap(cset.images, dets, cap)
            row["by_cap"][str(cap)] = {**ap, "ms": float(np.median(ms)) if len(ms) else float("nan"),
                                       "kept": float(np.mean([len(d[1]) for d in dets])) if dets else 0.0}
            if bar is not None:
                bar.update(1)
            largest[name] = dets
        row.update({k: row["by_cap"][str(caps[-1])][k] for k in ("ap50", "ap", "ms")})
        if method.requires_image and images is not None and hasattr(method, "model"):
            row["edge_ms"] = edge_map_ms(images, method.model.config.max_side)
        out[name] = row
    if bar is not None:
        bar.close()
    return out, largest


def run(config: NmsEvalConfig, methods: dict[str, NmsMethod], detector: Any, make_set: MakeSet | None = None,
        notes: Sequence[str] = (), progress: bool = True) -> dict[str, Any]:
    """Every method at every cap on the candidates of ``detector`` (cached by its fingerprint) on the test set
    ``make_set`` generates (or ``config.annotations``); returns the results (AP as fractions), with the example
    image and each method's kept boxes under ``_example`` for :func:`figures`."""
    from hcgym.perception.nms.candidates import cached_candidates

    t0 = time.time()
    notes = list(notes)
    split, seed = config.split, config.seed
    if config.annotations is not None:
        data = Path(config.annotations)
        cache = Path(config.cache_dir) / f"candidates_{detector.fingerprint[:16]}.npz"
        split, seed = data.stem, None
    else:
        if make_set is None:
            raise SpecError("make_set", "a generated test set needs make_set (or give annotations)")
        data = make_set(config.split, config.seed, config.n_images)
        cache = data / f"candidates_{detector.name}_{detector.fingerprint[:16]}.npz"
    caps = sorted(set(int(c) for c in config.caps))
    cset = cached_candidates(cache, data, detector, max(caps), split="test")
    rows, dets = evaluate_methods(cset, methods, caps, progress)
    simulated = bool(getattr(detector, "uses_ground_truth", False))
    if simulated:
        notes.append("candidates from the detector simulator (drawn around the ground truth): not a result")
    results: dict[str, Any] = {
        "split": split, "seed": seed, "n_images": len(cset),
        "detector": {"name": detector.name, "fingerprint": detector.fingerprint, "simulated": simulated},
        "caps": caps, "pre_nms_iou": cset.meta.get("pre_nms_iou"),
        "candidates_per_image": float(np.mean([len(im.scores) for im in cset])),
        "people_per_image": float(np.mean([int((~im.gt_ignore).sum()) for im in cset])),
        "ignored_per_image": float(np.mean([int(im.gt_ignore.sum()) for im in cset])),
        "timing": "median over images of the wall-clock ms of one method call (one CPU thread, image decoding "
                  "excluded; Seq2Seq-NMS includes its edge map, edge_ms alone)",
        "methods": rows, "notes": notes, "data": str(data), "seconds": round(time.time() - t0, 1),
    }
    i = example_index(cset)
    soft = next((n for n in ("soft_linear", "soft_gaussian") if n in dets), None)
    panels = {n: dets[n][i] for n in ("greedy_0.5", soft, "seq2seq") if n in dets}
    thresholds = {n: best_f1_threshold(cset.images, dets[n]) for n in panels}
    for n, t in thresholds.items():
        rows[n]["f1_threshold"] = t
    results["_example"] = {"image": cset[i], "panels": panels, "thresholds": thresholds}
    return results


# ------------------------------------------------------------------ the seed's numbers

#: The seed's numbers (reference summary §2.4), AP0.5 / AP0.5:0.95 / ms, per comparable split: sparse ~
#: COCO person minitest (Table 6), medium ~ PETS (Table 5, greedy rows = the TorchVision ones),
#: dense ~ CrowdHuman val (Table 7). GPU times except Soft-NMS (CPU).
SEED_TABLES: dict[str, dict[str, Any]] = {
    "sparse": {"source": "COCO 2014 person, minitest (seed Table 6)", "columns": ["all"], "rows": {
        "greedy_0.4": ["65.4% / 35.6% / 0.59"], "greedy_0.5": ["65.2% / 35.8% / 0.60"],
        "greedy_0.6": ["63.1% / 35.5% / 0.60"], "soft_linear": ["66.6% / 36.9% / 5.8"],
        "soft_gaussian": ["66.2% / 36.7% / 6.6"], "fast": ["64.1% / 35.3% / 2.5"], "cluster": ["65.4% / 35.5% / 4.9"],
        "cluster_s": ["65.3% / 36.0% / 4.8"], "cluster_d": ["65.5% / 35.6% / 7.6"],
        "cluster_sd": ["65.8% / 36.6% / 7.6"], "cluster_sdw": ["65.8% / 37.6% / 9.7"],
        "seq2seq": ["**67.5%** / 36.9% / 10.1"]}},
    "medium": {"source": "PETS (seed Table 5)", "columns": ["N=400", "N=800", "N=1200"], "rows": {
        "greedy_0.4": ["75.6% / 31.7% / 0.4", "76.4% / 31.3% / 0.5", "76.4% / 31.3% / 0.8"],
        "greedy_0.5": ["72.7% / 30.8% / 0.6", "73.2% / 30.8% / 0.5", "73.2% / 30.8% / 0.7"],
        "greedy_0.6": ["65.1% / 28.5% / 0.5", "65.1% / 28.5% / 0.5", "65.1% / 28.5% / 0.7"],
        "soft_linear": ["76.6% / 31.8% / 27.1", "76.5% / 31.3% / 64.0", "76.3% / 31.2% / 98.5"],
        "soft_gaussian": ["77.4% / 32.7% / 23.8", "76.7% / 32.0% / 54.4", "76.0% / 31.8% / 89.5"],
        "fast": ["75.3% / 31.5% / 3.2", "75.0% / 31.0% / 1.5", "74.5% / 30.8% / 2.8"],
        "cluster": ["75.9% / 31.4% / 2.9", "76.4% / 31.3% / 3.7", "76.4% / 31.3% / 5.5"],
        "cluster_s": ["75.4% / 31.6% / 4.8", "74.0% / 30.8% / 3.8", "73.6% / 30.7% / 5.0"],
        "cluster_d": ["76.2% / 31.6% / 5.4", "76.5% / 31.2% / 5.1", "76.5% / 31.1% / 7.7"],
        "cluster_sd": ["76.4% / 31.9% / 3.7", "75.9% / 31.3% / 5.4", "75.2% / 31.0% / 8.4"],
        "cluster_sdw": ["76.4% / 31.9% / 28.3", "75.9% / 31.3% / 88.2", "75.2% / 31.0% / 171.9"],
        "seq2seq": ["**80.9%** / 36.5% / 11.1", "**83.9%** / 37.3% / 11.9", "**84.7%** / 37.3% / 14.7"]}},
    "dense": {"source": "CrowdHuman val (seed Table 7; Seq2Seq-NMS at N=800)", "columns": ["all"], "rows": {
        "greedy_0.4": ["77.1% / 44.9% / 0.4"], "greedy_0.5": ["80.7% / 47.0% / 0.4"],
        "greedy_0.6": ["82.0% / 48.3% / 0.4"], "soft_linear": ["82.5% / 49.3% / 30.8"],
        "soft_gaussian": ["81.7% / 48.6% / 39.8"], "fast": ["81.0% / 48.0% / 1.6"], "cluster": ["82.0% / 48.2% / 4.7"],
        "cluster_s": ["80.3% / 47.3% / 3.4"], "cluster_d": ["82.2% / 48.6% / 5.1"],
        "cluster_sd": ["81.4% / 48.2% / 5.5"], "cluster_sdw": ["81.4% / 48.2% / 47.9"],
        "seq2seq": ["**83.7%** / 49.1% / 11.1"]}},
}

LABELS = {"greedy_0.4": "Greedy NMS IoU>0.4", "greedy_0.5": "Greedy NMS IoU>0.5", "greedy_0.6": "Greedy NMS IoU>0.6",
          "soft_linear": "Soft-NMS_L", "soft_gaussian": "Soft-NMS_G", "fast": "Fast-NMS", "cluster": "Cluster-NMS",
          "cluster_s": "Cluster-NMS_S", "cluster_d": "Cluster-NMS_D", "cluster_sd": "Cluster-NMS_{S+D}",
          "cluster_sdw": "Cluster-NMS_{S+D+W}", "seq2seq": "Seq2Seq-NMS",
          "seq2seq-onnx": "Seq2Seq-NMS, shipped ONNX export", "seq2seq_nomask": "Seq2Seq-NMS without mask (ablation)"}


# ------------------------------------------------------------------ reports


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def table_markdown(results: dict[str, Any]) -> str:
    """``table.md``: our table (rows = methods, a column per cap) and the seed's numbers for reference."""
    from hcgym.report import markdown_table

    caps = [str(c) for c in results["caps"]]
    methods: dict[str, Any] = results["methods"]
    det = results["detector"]
    where = (f"the {results['split']} test set (seed {results['seed']}, {results['n_images']} images)"
             if results.get("seed") is not None else f"{results['split']} ({results['n_images']} images)")
    lines = [f"# NMS on {where}", ""]
    if det.get("simulated"):
        lines += ["**Candidates come from the detector SIMULATOR (boxes drawn around the ground truth), not from a "
                  "detector: a pipeline check, not a result.**", ""]
    lines += [f"Detector `{det['name']}` (fingerprint `{det['fingerprint']}`), pre-NMS IoU 0.8; "
              f"{results['candidates_per_image']:.1f} candidates, {results['people_per_image']:.1f} people "
              f"({results['ignored_per_image']:.1f} ignore regions) per image on average. Cells: AP0.5 / AP0.5:0.95 / "
              f"median ms per image (CPU, one thread); best AP0.5 per column in bold.", ""]
    best = {c: max((m["by_cap"][c]["ap50"] for m in methods.values() if m["by_cap"][c]["ap50"] == m["by_cap"][c]["ap50"]),
                   default=None) for c in caps}
    rows = []
    for name, m in methods.items():
        cells = [LABELS.get(name, name)]
        for c in caps:
            r = m["by_cap"][c]
            ap50 = _pct(r["ap50"])
            if best[c] is not None and r["ap50"] == best[c]:
                ap50 = f"**{ap50}**"
            cells.append(f"{ap50} / {_pct(r['ap'])} / {r['ms']:.2f}")
        rows.append(cells)
    lines += markdown_table(["Method", *(f"N={c}" for c in caps)], rows)
    for name, m in methods.items():
        if "edge_ms" in m:
            lines += ["", f"{LABELS.get(name, name)} times include its edge map (median {m['edge_ms']:.2f} ms per "
                          f"image), which the seed excludes."]
    for note in results.get("notes", []):
        lines += ["", f"Note: {note}"]
    seed = SEED_TABLES.get(results["split"])
    if seed is None:  # a user's own COCO file: no seed table of that density
        return "\n".join(lines) + "\n"
    lines += ["", f"## The seed's numbers for reference: {seed['source']}", "",
              "Other data, detector and hardware (GPU times except Soft-NMS); not comparable cell by cell.", ""]
    lines += markdown_table(["Method", *seed["columns"]],
                            [[LABELS.get(name, name), *seed["rows"].get(name, ["-"] * len(seed["columns"]))]
                             for name in methods])
    return "\n".join(lines) + "\n"


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """``ap_vs_candidates.png`` and ``examples.png`` (from ``results["_example"]`` of :func:`run`)."""
    ex = results["_example"]
    im = ex["image"]
    title = (f"{results['split']} test image {im.image_id}: kept boxes above each method's best-F1 score threshold "
             f"(N = {results['caps'][-1]})" + (", SIMULATED candidates" if results["detector"]["simulated"] else ""))
    return {"ap_vs_candidates.png": ap_figure(results),
            "examples.png": examples_figure(im, ex["panels"] or {"ground truth": (np.zeros((0, 4)), np.zeros(0))},
                                            ex["thresholds"], title=title)}


def ap_figure(results: dict[str, Any]) -> bytes:
    """``ap_vs_candidates.png``: AP0.5 against the cap N, one line per method."""
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    caps = results["caps"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for name, m in results["methods"].items():
        style = "o-" if name.startswith("seq2seq") else ".--"
        ax.plot(caps, [100 * m["by_cap"][str(c)]["ap50"] for c in caps], style, label=LABELS.get(name, name))
    ax.set_xscale("log", base=2)
    ax.set_xticks(caps, [str(c) for c in caps])
    ax.set_xlabel("candidates per image N")
    ax.set_ylabel("AP0.5 (%)")
    sim = " (SIMULATED candidates)" if results["detector"].get("simulated") else ""
    ax.set_title(f"NMS on the {results['split']} test set{sim}", fontsize=10)
    ax.legend(fontsize=6.5, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return png_bytes(fig)


def best_f1_threshold(images: Sequence[ImageCandidates], detections: Sequence[Detections],
                      iou_threshold: float = 0.5) -> float:
    """The score threshold with the best F1 over all images (detections matched greedily by score at
    IoU > ``iou_threshold`` to non-ignored people; those only inside ignore regions do not count)."""
    from hcgym.perception.nms.training import training_targets

    scores, hits = [], []
    n_gt = 0
    for im, (boxes, s) in zip(images, detections):
        gt, regions = im.gt_boxes[~im.gt_ignore], im.gt_boxes[im.gt_ignore]
        n_gt += len(gt)
        y, counted = training_targets(np.asarray(boxes, np.float64), np.asarray(s), gt, regions, iou_threshold)
        scores.append(np.asarray(s, np.float64)[counted])
        hits.append(y[counted])
    s, y = np.concatenate(scores), np.concatenate(hits)
    if not len(s):
        return 0.0
    order = np.argsort(-s, kind="stable")
    s, tp = s[order], np.cumsum(y[order])
    f1 = 2 * tp / (np.arange(1, len(s) + 1) + n_gt)
    return float(s[int(np.argmax(f1))])


def example_index(cset: CandidateSet) -> int:
    """The image with the most non-ignored people (first of ties)."""
    return int(np.argmax([int((~im.gt_ignore).sum()) for im in cset])) if len(cset) else 0


def examples_figure(im: ImageCandidates, panels: dict[str, Detections], thresholds: dict[str, float],
                    title: str = "") -> bytes:
    """``examples.png``: one image, a panel per method with its kept boxes scoring at least the
    method's ``thresholds[name]`` (red) over the ground truth (green; ignore regions dashed grey)."""
    from matplotlib.patches import Rectangle

    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    rgb = im.image()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), dpi=110, squeeze=False)
    for ax, (name, (boxes, scores)) in zip(axes[0], panels.items()):
        ax.imshow(rgb)
        for b, ign in zip(im.gt_boxes, im.gt_ignore):
            ax.add_patch(Rectangle(b[:2], b[2] - b[0], b[3] - b[1], fill=False, lw=1.6 if not ign else 1.0,
                                   ec="lime" if not ign else "0.7", ls="-" if not ign else "--"))
        threshold = thresholds.get(name, 0.0)
        shown = np.asarray(scores) >= threshold
        for b in np.asarray(boxes)[shown]:
            ax.add_patch(Rectangle(b[:2], b[2] - b[0], b[3] - b[1], fill=False, lw=0.9, ec="red"))
        ax.set_title(f"{LABELS.get(name, name)}: {int(shown.sum())} boxes, score >= {threshold:.3g}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)
