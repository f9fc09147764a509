"""Sim-to-real check of the person detector (``hcgym evaluate detector --domain real``).

Detectors (e.g. before and after domain-randomised training) are scored side by side, at one fixed score
threshold chosen beforehand (the sensor's default, 0.3), on

* **real photos**: an annotated folder of real images (COCO, category ``person``; images without people are
  negatives): recall at IoU ``iou`` (0.5), false positives per image (every detection at or above the
  threshold that matches no person, negatives included), precision, COCO AP0.5 and AP0.5:0.95, and per image
  the people found, the false positives and the best score a detection gives each person;
* **simulated scenes**: the ``val`` (or ``test``) split of a generated folder (the detector's own validation
  data, or the urban test set): AP0.5, AP0.5:0.95 and precision/recall at the same threshold.

Recall and false positives per image are also traced over thresholds (``sim2real.png``), so the operating
point is visible but never chosen on the real photos. Matching is greedy by score, as in
:func:`hcgym.perception.scoring.precision_at`; ignored (``iscrowd``) people count neither way.

Protocol shape (:mod:`hcgym.report`): :func:`run`, :func:`table_markdown`, :func:`figures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError

#: Thresholds of the recall / false-positive curves.
CURVE_THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.05, 0.96, 0.05))


def load_real(annotations: str | Path | None = None, images: str | Path | None = None) -> list[dict[str, Any]]:
    """Images and person targets of a COCO file of real photos, sorted by file name.

    ``annotations`` defaults to the shipped real test set (:mod:`hcgym.perception.real_images`); ``images`` to
    the file's folder, or its ``images/`` subfolder where a name is not found beside the file. Person boxes are
    the labelled (visible) boxes; ``iscrowd`` people are ignore regions; images without people are negatives.
    Each item is ``{"file_name", "width", "height", "boxes" (G, 4), "ignore" (G,), "image" (H, W, 3) uint8}``.
    """
    from hcgym.perception.bench_source import read_coco, read_rgb

    if annotations is None:
        from hcgym.perception.real_images import ANNOTATIONS as annotations
    path = Path(annotations)
    if not path.is_file():
        raise SpecError("real", f"COCO file not found: {path}")
    try:
        labels = read_coco(path)
    except SpecError as e:
        raise SpecError("real", e.problem) from None
    root = Path(images) if images is not None else path.parent
    items = []
    for name, lab in sorted(labels.items()):
        file = root / name
        if not file.is_file() and images is None:
            file = root / "images" / name
        try:
            rgb = read_rgb(file)
        except SpecError as e:
            raise SpecError("real", e.problem) from None
        if rgb.shape[:2] != (lab.height, lab.width):
            raise SpecError("real", f"{file} is {rgb.shape[1]}x{rgb.shape[0]}, its labels say {lab.width}x{lab.height}")
        items.append({**lab.scoring_item(), "image": rgb})
    if not items:
        raise SpecError("real", f"{path} lists no images")
    if not any((~it["ignore"]).any() for it in items):
        raise SpecError("real", f"{path} holds no person to find")
    return items


def per_image(items: list[dict[str, Any]], dets: list[tuple[np.ndarray, np.ndarray]], threshold: float,
              iou: float = 0.5) -> list[dict[str, Any]]:
    """Per image: ``people`` (not ignored), ``found`` and ``false_positives`` among the detections scoring at
    least ``threshold``, and ``person_scores``: the best score of any detection (no threshold) overlapping each
    person at ``iou`` (0 when none does), in ground-truth order."""
    from hcgym.geometry import iou_matrix
    from hcgym.perception.bench_base import greedy_match

    rows = []
    for it, (boxes, scores) in zip(items, dets):
        keep = np.asarray(scores) >= threshold
        _, _, tp, fp = greedy_match(np.asarray(boxes)[keep], np.asarray(scores)[keep], it["boxes"], it["ignore"], iou)
        gt = np.asarray(it["boxes"], np.float64).reshape(-1, 4)
        best = np.zeros(len(gt))
        if len(gt) and len(boxes):
            ious = iou_matrix(np.concatenate([np.asarray(boxes, np.float64), gt]))[: len(boxes), len(boxes):]
            best = np.where(ious >= iou, np.asarray(scores, np.float64)[:, None], 0.0).max(0)
        rows.append({"file_name": it["file_name"], "people": int((~it["ignore"]).sum()), "found": int(tp),
                     "false_positives": int(fp),
                     "person_scores": [round(float(s), 3) for s, ig in zip(best, it["ignore"]) if not ig],
                     "detections": [[round(float(v), 1) for v in b] + [round(float(sc), 3)]
                                    for b, sc in zip(np.asarray(boxes)[keep], np.asarray(scores)[keep])]})
    return rows


def real_metrics(items: list[dict[str, Any]], dets: list[tuple[np.ndarray, np.ndarray]], threshold: float,
                 iou: float = 0.5) -> dict[str, Any]:
    """Recall, false positives per image, precision (at ``threshold``), AP0.5, AP0.5:0.95, the per-image rows
    and the recall / false-positive curves over :data:`CURVE_THRESHOLDS`."""
    from hcgym.perception.scoring import coco_ap

    def counts(t: float) -> tuple[float, float, float, list[dict[str, Any]]]:
        rows = per_image(items, dets, t, iou)
        people, found, fps = (sum(r[k] for r in rows) for k in ("people", "found", "false_positives"))
        return found / max(people, 1), fps / max(len(rows), 1), found / max(found + fps, 1), rows

    recall, fp_per_image, precision, rows = counts(threshold)
    curve = [counts(t)[:2] for t in CURVE_THRESHOLDS]
    return {**coco_ap(items, dets), "recall": round(recall, 4), "fp_per_image": round(fp_per_image, 3),
            "precision": round(precision, 4), "images": len(items),
            "negatives": int(sum(not (~it["ignore"]).any() for it in items)),
            "people": int(sum(r["people"] for r in rows)), "per_image": rows,
            "curve": {"thresholds": list(CURVE_THRESHOLDS), "recall": [round(r, 4) for r, _ in curve],
                      "fp_per_image": [round(f, 3) for _, f in curve]}}


def run(detectors: dict[str, Any], real: list[dict[str, Any]], sim: list[dict[str, Any]], threshold: float = 0.3,
        iou: float = 0.5, nms: str = "greedy_0.5", sim_name: str = "simulated") -> dict[str, Any]:
    """Score every detector (name -> sensor with ``candidates``) on the ``real`` and ``sim`` items."""
    from hcgym.perception.detection.evaluation import score
    from hcgym.perception.detection.training import detect_all

    if not 0 <= threshold <= 1:
        raise SpecError("score_threshold", f"expected 0-1, got {threshold}")
    rows = []
    for name, det in detectors.items():
        dets = detect_all(det, real, nms)
        rows.append({"model": name, "fingerprint": det.fingerprint, "real": real_metrics(real, dets, threshold, iou),
                     "sim": score(det, sim, nms, threshold)})
    return {"score_threshold": threshold, "iou": iou, "nms": nms, "sim_set": sim_name, "rows": rows}


def table_markdown(results: dict[str, Any]) -> str:
    """Markdown: one row per detector (real and simulated metrics side by side), then the per-image table."""
    from hcgym.report import markdown_table

    t = results["score_threshold"]
    head = ["model", f"real recall @ {t}", f"real FP / image @ {t}", "real precision", "real AP0.5", "real AP",
            "sim AP0.5", "sim AP", f"sim P / R @ {t}"]
    body = [[r["model"], f"{100 * r['real']['recall']:.1f}", f"{r['real']['fp_per_image']:.2f}",
             f"{100 * r['real']['precision']:.1f}", f"{r['real']['ap50']:.1f}", f"{r['real']['ap']:.1f}",
             f"{r['sim']['ap50']:.1f}", f"{r['sim']['ap']:.1f}", f"{r['sim']['precision']:.1f} / {r['sim']['recall']:.1f}"]
            for r in results["rows"]]
    r0 = results["rows"][0]
    lines = [f"Person detectors at score threshold {t} (fixed beforehand), NMS `{results['nms']}`, IoU "
             f"{results['iou']}. Real: {r0['real']['images']} photos ({r0['real']['negatives']} without people, "
             f"{r0['real']['people']} people). Simulated: {results['sim_set']} ({r0['sim']['images']} images, "
             f"{r0['sim']['people']} people). Recall, precision and AP in percent.", "",
             *markdown_table(head, body), ""]
    names = [r["model"] for r in results["rows"]]
    per = ["image", "people"] + [f"{n}: found / FP / person scores" for n in names]
    cells = []
    for k, row in enumerate(r0["real"]["per_image"]):
        line = [row["file_name"], str(row["people"])]
        for r in results["rows"]:
            p = r["real"]["per_image"][k]
            scores = ", ".join(f"{s:.2f}" for s in p["person_scores"]) or "-"
            line.append(f"{p['found']} / {p['false_positives']} / {scores}")
        cells.append(line)
    lines += ["Per real image (at the threshold; person scores: the best score any detection gives each person, "
              "0 when none overlaps it at the IoU):", "", *markdown_table(per, cells)]
    return "\n".join(lines) + "\n"


def figures(results: dict[str, Any], real: list[dict[str, Any]] | None = None) -> dict[str, bytes]:
    """``sim2real.png``: recall and false positives per image on the real photos against the threshold; with the
    ``real`` items also ``real_examples.png``: every photo with each detector's detections at the threshold."""
    out = {"sim2real.png": _curves(results)}
    if real is not None:
        out["real_examples.png"] = _examples(results, real)
    return out


def _examples(results: dict[str, Any], real: list[dict[str, Any]], height: int = 150, per_row: int = 4) -> bytes:
    """PNG: per photo one tile per detector side by side (ground truth white, ignore regions grey, detections
    green with scores), ``per_row`` photos a row."""
    import cv2

    from hcgym.perception.detection.evaluation import draw

    tiles = []
    for k, it in enumerate(real):
        pair = []
        for r in results["rows"]:
            row = r["real"]["per_image"][k]
            d = np.asarray(row["detections"], np.float32).reshape(-1, 5)
            img = draw(it["image"], d[:, :4], d[:, 4], it["boxes"][~it["ignore"]])
            for b in it["boxes"][it["ignore"]]:
                cv2.rectangle(img, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (150, 150, 150), 1)
            w = max(1, round(img.shape[1] * height / img.shape[0]))
            tile = cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)
            cv2.putText(tile, _short(r["model"]), (3, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1,
                        cv2.LINE_AA)
            pair.append(tile)
        pair.append(np.full((height, 6, 3), 255, np.uint8))
        tiles.append(np.concatenate(pair, 1))
    width = max(sum(t.shape[1] for t in tiles[i:i + per_row]) for i in range(0, len(tiles), per_row))
    rows = []
    for i in range(0, len(tiles), per_row):
        row = np.concatenate(tiles[i:i + per_row], 1)
        rows.append(np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0)), constant_values=255))
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    return buf.tobytes()


def _short(name: str, width: int = 24) -> str:
    """A detector's name for a figure: as given when short, else ``folder/stem`` of its path (at most ``width``)."""
    if len(name) > width:
        name = f"{Path(name).parent.name}/{Path(name).stem}"
    return name[-width:]


def _curves(results: dict[str, Any]) -> bytes:
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.0, 3.2), dpi=110)
    for r in results["rows"]:
        c = r["real"]["curve"]
        a.plot(c["thresholds"], [100 * v for v in c["recall"]], marker=".", label=_short(r["model"]))
        b.plot(c["thresholds"], c["fp_per_image"], marker=".", label=_short(r["model"]))
    for ax, label in ((a, "real recall @ IoU 0.5 (%)"), (b, "real false positives / image")):
        ax.axvline(results["score_threshold"], color="grey", lw=0.8, ls="--")
        ax.set_xlabel("score threshold")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    a.set_ylim(0, 105)
    a.legend(fontsize=8)
    fig.suptitle("person detector on real photos", fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


__all__ = ["load_real", "per_image", "real_metrics", "run", "table_markdown", "figures", "CURVE_THRESHOLDS"]
