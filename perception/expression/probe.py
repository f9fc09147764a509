"""How much of an expression cache's labels the landmarks can show at all: linear probes.

A multinomial logistic regression on simple clip features (each sampled frame's landmarks minus the first
frame's, plus the first frame, after centring and scaling every frame) is trained on a cache's ``train``
split and scored on its ``test`` split, per landmark source and number of frames. It answers two questions
that a deep model's numbers alone do not:

* ``acc``: how separable the seven expressions are in that source (an easy baseline for the graph models);
* ``blend_detector_auroc``: whether a *blend* (a second expression mixed in, ``label2 >= 0``) is visible at
  all: a logistic regression trained to tell blended from clean non-neutral clips, scored by AUROC on the
  test split. ``entropy_auroc`` gives the AUROCs of the 7-class probe's predictive entropy (wrong or
  blended vs correct clean, wrong vs right, blended vs clean among the non-neutral clips), the quantities the Monte Carlo dropout
  target is about.

``python -m hcgym.perception.expression.probe CACHE.npz [--frames 8 32] [--sources truth mesh51 mesh dlib]``
prints the table; :func:`observability` returns it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hcgym.errors import SpecError

PROBE_SOURCES = ("truth", "mesh51", "mesh", "dlib")


def source_points(data: dict[str, Any], source: str) -> np.ndarray:
    """(N, T, V, 2) float32 landmarks of ``source`` from a cache's arrays, frames where the detector lost the
    face filled from the last found one (:func:`~hcgym.synthesis.expression_data.fill_missing`)."""
    from hcgym.synthesis.expression_data import MESH51, MESH_DENSE, fill_missing

    if source == "truth":
        return np.asarray(data["truth51"], np.float32)
    if source in ("mesh51", "mesh"):
        raw, found = np.asarray(data["mesh"], np.float32), np.asarray(data["mesh_found"], bool)
        raw = raw[:, :, MESH51 if source == "mesh51" else MESH_DENSE]
    elif source == "dlib":
        raw, found = np.asarray(data["dlib51"], np.float32), np.asarray(data["dlib_found"], bool)
    else:
        raise SpecError("sources", f"unknown landmark source {source!r}; choose from {', '.join(PROBE_SOURCES)}")
    return np.stack([fill_missing(raw[i], found[i]) for i in range(len(raw))]).astype(np.float32)


def clip_features(points: np.ndarray, frames: int) -> np.ndarray:
    """(N, F) features of (N, T, V, 2) landmark clips: ``frames`` frames at equal intervals, each centred and
    scaled to unit RMS radius; the displacement of every sampled frame from the first, then the first frame."""
    points = np.asarray(points, np.float64)
    if points.ndim != 4 or points.shape[-1] != 2:
        raise SpecError("points", f"expected (clips, frames, points, 2) landmarks, got shape {points.shape}")
    if frames < 2:
        raise SpecError("frames", f"need at least 2 frames, got {frames}")
    index = np.linspace(0, points.shape[1] - 1, frames).round().astype(int)
    p = points[:, index]
    p = p - p.mean(axis=2, keepdims=True)
    p = p / (np.sqrt((p ** 2).sum(-1).mean(-1))[..., None, None] + 1e-9)
    n = len(p)
    return np.concatenate([(p - p[:, :1]).reshape(n, -1), p[:, 0].reshape(n, -1)], axis=1)


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, classes: int,
                 weight_decay: float = 1e-2, iterations: int = 400, seed: int = 0) -> np.ndarray:
    """Class probabilities of ``x_test`` from an L2-regularised multinomial logistic regression fitted with
    L-BFGS on standardised ``x_train`` (deterministic for a seed)."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    gen = torch.Generator().manual_seed(seed)
    xt = torch.tensor((x_train - mu) / sd, dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y_train, np.int64))
    weight = torch.nn.Parameter(torch.randn(classes, xt.shape[1], generator=gen) * 1e-3)
    bias = torch.nn.Parameter(torch.zeros(classes))
    opt = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ weight.T + bias, yt) + weight_decay * (weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        xs = torch.tensor((x_test - mu) / sd, dtype=torch.float32)
        return torch.softmax(xs @ weight.T + bias, dim=1).numpy()


def observability(data: dict[str, Any], sources: Sequence[str] = PROBE_SOURCES,
                  frames: Sequence[int] = (8, 32)) -> list[dict[str, Any]]:
    """One row per (source, frames): ``acc`` of the 7-class probe on the test split, ``entropy_auroc``
    (``wrong_or_blended``, ``wrong``, ``blended``) and ``blend_detector_auroc`` (see the module doc)."""
    from .protocol import auroc

    split, label = np.asarray(data["split"]), np.asarray(data["label"], np.int64)
    blend = np.asarray(data["label2"]) >= 0
    train, test = split == "train", split == "test"
    if not train.any() or not test.any():
        raise SpecError("data", "the cache needs clips in both its train and test splits")
    classes = int(max(label.max() + 1, len(data.get("labels", ())) or 0))
    expressive = label != 0
    rows = []
    for source in sources:
        points = source_points(data, source)
        for n in frames:
            x = clip_features(points, int(n))
            prob = linear_probe(x[train], label[train], x[test], classes)
            entropy = -(prob * np.log(prob + 1e-12)).sum(1)
            wrong = prob.argmax(1) != label[test]
            b, e = blend[test], expressive[test]
            row: dict[str, Any] = {"source": source, "frames": int(n), "acc": float(1.0 - wrong.mean()),
                                   "entropy_auroc": {"wrong_or_blended": auroc(entropy, wrong | b),
                                                     "wrong": auroc(entropy, wrong),
                                                     "blended": auroc(entropy[e], b[e])}}
            fit = train & expressive
            if blend[fit].any() and (~blend[fit]).any():
                pb = linear_probe(x[fit], blend[fit].astype(np.int64), x[test & expressive], 2)[:, 1]
                row["blend_detector_auroc"] = auroc(pb, blend[test & expressive])
            else:
                row["blend_detector_auroc"] = None
            rows.append(row)
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    out = ["| source | frames | 7-class acc | entropy AUROC wrong or blended | wrong | blended vs clean "
           "| blend detector AUROC |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r["entropy_auroc"]
        out.append(f"| {r['source']} | {r['frames']} | {r['acc']:.3f} | {_fmt(e['wrong_or_blended'])} | "
                   f"{_fmt(e['wrong'])} | {_fmt(e['blended'])} | {_fmt(r['blend_detector_auroc'])} |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    from hcgym.synthesis.expression_data import load

    parser = argparse.ArgumentParser(prog="python -m hcgym.perception.expression.probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache", help="an expression data cache (.npz) written by expression_data.prepare")
    parser.add_argument("--sources", nargs="+", default=list(PROBE_SOURCES), choices=PROBE_SOURCES)
    parser.add_argument("--frames", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = observability(load(args.cache), args.sources, args.frames)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
