"""``hcgym evaluate gesture``: the shipped gesture models on fresh avatars, their latency, and the seed's Table 29.

Test data is drawn fresh from the seed (:func:`hcgym.synthesis.gesture_data.fresh_test_set`: ``identities``
people no training pool uses, each showing every gesture ``per_class`` times and ``none`` times ``per_class``
relaxed hands), rendered once at 112 x 112 and kept under ``data_dir`` for reruns, then resized to each model's
input side (:func:`~.study.resize_set`). For every backbone of :data:`~.backbones.BACKBONES`:

* ``rgb``, ``depth``, ``rgbd``: top-1 accuracy (%) on the fresh gesture samples with exact depth of the shipped
  model of that backbone and modality (every ``*.pt`` of the models folder, known by its own ``backbone`` and
  ``modality``; 16 gesture classes, or 17 with ``none``, whose answer ``none`` on a gesture is wrong);
  ``depth_noisy``, ``rgbd_noisy``: the same with the Kinect-like depth model (:func:`~.inputs.kinect_depth`,
  drawn from the seed); ``None`` where no model is shipped; models with ``none`` also get ``acc_all`` (every
  fresh sample) and the recall and precision of ``none`` (``<modality>_none``);
* ``ms_rgb``, ``ms_rgbd``, ``ms_depth``: batch-1 single-thread torch latency (median ms) and ``ratio``: the
  per-round RGB-D / RGB time (median) of one interleaved run (:func:`~.cost.latency`, random weights: the cost
  does not depend on them, so every backbone is timed); ``*_onnx``: the same in ONNX Runtime;
* ``params`` and ``macs`` (ptflops) per modality, ``first_conv_macs``.

Also: which model the sensor loads (``sensor``: ``gesture_rgbd.pt``, the MobileNetV2 RGB-D model), the confusion
matrix of the first backbone's RGB-D model (every fresh sample of its classes), accuracy by distance (0.5 m bins) and
max-softmax confidence of the models (``by_distance``, ``confidence``: AUROC of ``1 - max softmax`` flagging
errors, accuracy against the share of samples kept), the Table 29 timing (MobileNetV2 RGB-D at the seed's
224 x 224 and at the models' side), the issue's checks (``checks``) and McNemar's test of RGB-D against RGB and
against depth on the same samples (``paired``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.gesture.backbones import BACKBONES
from hcgym.synthesis.gesture_data import NONE
from hcgym.synthesis.motion.hands import GESTURES

MODALITIES = ("rgb", "depth", "rgbd")
#: The sensor's shipped model (17 classes: the gestures and ``none``).
SENSOR_MODEL = "gesture_rgbd.pt"
#: Distance bins (metres) of the accuracy-by-distance figure.
DISTANCE_BINS = (0.5, 1.0, 1.5, 2.0, 2.5)
#: The seed's Table 29 (MobileNetV2, one RGB-D image of 224 x 224, 1000 runs) and its HANDS accuracy.
SEED_TABLE29 = (("RTX 2080 Ti", 0.0076, 131.5), ("Ryzen 3970X", 0.1208, 8.2), ("Xavier AGX", 0.0263, 38.0))
SEED_ACCURACY = {"mobilenet_v2": 85.0}
SEED_SIZE = 224


def models_dir() -> Path:
    """The folder of the shipped gesture models."""
    return Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class GestureEvalConfig:
    """One ``hcgym evaluate gesture`` run (``data_dir``: where the fresh set is kept, default
    ``$HCGYM_CACHE/gesture-eval``; ``models``: the folder of the models scored, default the shipped ones;
    ``width``: width multiplier of the timed backbones, 1 = the published networks, smaller for smoke tests)."""

    seed: int = 0
    identities: int = 8
    per_class: int = 6
    none: int = 1
    repeats: int = 100
    table29_repeats: int = 30
    workers: int = 1
    data_dir: Path | None = None
    models: Path | None = None
    width: float = 1.0

    def check(self) -> GestureEvalConfig:
        for name, lo in (("seed", 0), ("identities", 1), ("per_class", 1), ("none", 0), ("repeats", 2),
                         ("table29_repeats", 0), ("workers", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise SpecError(name, f"expected an integer >= {lo}, got {v!r}")
        if self.seed > 10 ** 6:
            raise SpecError("seed", f"expected a seed up to 1000000, got {self.seed}")
        if not 0 < self.width <= 1:
            raise SpecError("width", f"expected a width multiplier in (0, 1], got {self.width}")
        if self.none > 8:
            raise SpecError("none", f"expected 0-8 (none samples per identity, in units of per_class), got {self.none}")
        for name in ("data_dir", "models"):
            p = getattr(self, name)
            if p is not None and Path(p).exists() and not Path(p).is_dir():
                raise SpecError(name, f"{p} is not a folder")
        if self.models is not None and not Path(self.models).is_dir():
            raise SpecError("models", f"no such folder: {self.models}")
        return self


def quick_config(seed: int = 0) -> GestureEvalConfig:
    """A small run (2 people, 2 samples per gesture, few timing rounds)."""
    return GestureEvalConfig(seed=seed, identities=2, per_class=2, none=1, repeats=10, table29_repeats=3)


def shipped(folder: Path) -> dict[tuple[str, str], tuple[Path, Any, dict[str, Any]]]:
    """``{(backbone, modality): (path, model, meta)}`` of every gesture model ``*.pt`` in ``folder`` (a
    :class:`SpecError` for a file that is not one, or for two models of one backbone and modality)."""
    from hcgym.perception.gesture.training import load_model

    out: dict[tuple[str, str], tuple[Path, Any, dict[str, Any]]] = {}
    for p in sorted(Path(folder).glob("*.pt")):
        model, meta = load_model(p, "models")
        key = (meta.get("backbone"), meta.get("modality"))
        if key[0] not in BACKBONES or key[1] not in MODALITIES or "size" not in meta or "labels" not in meta:
            raise SpecError("models", f"{p} lacks the backbone, modality, size or labels of a published model")
        if key in out:
            raise SpecError("models", f"{out[key][0].name} and {p.name} are both {key[0]} {key[1]} models; keep one")
        out[key] = (p, model, meta)
    return out


def fresh_data(config: GestureEvalConfig, progress: bool = False) -> Any:
    """The fresh test set of ``config`` at 112 x 112 (rendered once, then read from ``data_dir``)."""
    from hcgym.paths import cache_dir
    from hcgym.synthesis.gesture_data import fresh_test_set

    root = Path(config.data_dir) if config.data_dir is not None else cache_dir() / "gesture-eval"
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"fresh_s{config.seed}_i{config.identities}_p{config.per_class}_n{config.none}.npz"
    return fresh_test_set(config.seed, config.identities, config.per_class, workers=config.workers, out=path,
                          progress=progress, none=config.none)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, K)`` logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def auroc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of ``score`` ranking the ``positive`` samples first (ties count half: the
    Mann-Whitney U of the positives over ``n_pos * n_neg``); ``None`` without both classes."""
    from scipy.stats import mannwhitneyu

    score, positive = np.asarray(score, float), np.asarray(positive, bool)
    if positive.all() or not positive.any():
        return None
    u = mannwhitneyu(score[positive], score[~positive], alternative="two-sided", method="asymptotic").statistic
    return float(u / (positive.sum() * (~positive).sum()))


def _score(model: Any, meta: dict[str, Any], sets: dict[int, Any], idx: np.ndarray, seed: int) -> dict[str, Any]:
    """Logits of one model on the samples ``idx`` of the fresh set at its size, exact and Kinect-like depth."""
    from hcgym.perception.gesture.study import resize_set
    from hcgym.perception.gesture.training import predict

    size = int(meta["size"])
    if size not in sets:
        sets[size] = resize_set(sets[112], size)
    data = sets[size]
    x, y = data.arrays(idx, meta["modality"], depth_mode=meta["depth_mode"])
    out = {"logits": predict(model, x), "y": y}
    if meta["modality"] != "rgb":
        x, _ = data.arrays(idx, meta["modality"], noise=True, seed=seed, depth_mode=meta["depth_mode"])
        out["logits_noisy"] = predict(model, x)
    return out


def _acc(logits: np.ndarray, y: np.ndarray) -> float:
    return round(100.0 * float((logits.argmax(1) == y).mean()), 2)


def _none_scores(pred: np.ndarray, y: np.ndarray, none: int) -> dict[str, float | None]:
    """Recall and precision (%) of the class ``none`` (id ``none``) for predictions ``pred`` of labels ``y``."""
    is_none, said_none = y == none, pred == none
    return {"recall": round(100 * float(said_none[is_none].mean()), 2) if is_none.any() else None,
            "precision": round(100 * float(is_none[said_none].mean()), 2) if said_none.any() else None}


def run(config: GestureEvalConfig, progress: bool = False) -> dict[str, Any]:
    """Every measurement of the module docstring; keys beginning with ``_`` hold the arrays for the figures."""
    import torch

    from hcgym.perception.gesture.cost import latency, model_macs

    config.check()
    folder = Path(config.models) if config.models is not None else models_dir()
    files = shipped(folder)
    t0 = time.perf_counter()
    data = fresh_data(config, progress)
    t_data = time.perf_counter() - t0
    sets: dict[int, Any] = {112: data}
    labels = data.labels
    gesture_idx = np.flatnonzero(data.data["label"] < len(GESTURES))
    distance = data.data["distance"].astype(np.float64)
    results: dict[str, Any] = {"config": {**asdict(config), "data_dir": None if config.data_dir is None else
                                          str(config.data_dir), "models": str(folder)},
                               "samples": {"gestures": int(len(gesture_idx)), "none": int(len(data) - len(gesture_idx)),
                                           "identities": config.identities}, "models": {}}
    scores: dict[str, dict[str, Any]] = {}
    for b in BACKBONES:
        row: dict[str, Any] = {m: None for m in MODALITIES}
        row.update(depth_noisy=None, rgbd_noisy=None, size=None, classes=None, files={})
        for m in MODALITIES:
            if (b, m) not in files:
                continue
            path, model, meta = files[b, m]
            s = _score(model, meta, sets, np.arange(len(data)), config.seed)
            g = s["y"] < len(GESTURES)
            scores.setdefault(b, {})[m] = {**{k: v[g] for k, v in s.items()}, "all_logits": s["logits"],
                                           "all_y": s["y"]}
            row[m] = _acc(s["logits"][g], s["y"][g])
            if "logits_noisy" in s:
                row[f"{m}_noisy"] = _acc(s["logits_noisy"][g], s["y"][g])
            if meta["labels"][-1] == NONE:
                row.setdefault("acc_all", {})[m] = _acc(s["logits"], s["y"])
                row[f"{m}_none"] = _none_scores(s["logits"].argmax(1), s["y"], len(meta["labels"]) - 1)
            row["size"], row["classes"] = int(meta["size"]), len(meta["labels"])
            row["files"][m] = path.name
        results["models"][b] = row
    sizes = {r["size"] for r in results["models"].values() if r["size"]}
    size = max(sizes) if sizes else 64
    classes = max((r["classes"] for r in results["models"].values() if r["classes"]), default=len(GESTURES))
    sensor = next(((b, m) for (b, m), (p, _, _) in files.items() if p.name == SENSOR_MODEL), None)
    if sensor is not None:
        results["sensor"] = {"file": SENSOR_MODEL, "backbone": sensor[0], "modality": sensor[1],
                             "classes": results["models"][sensor[0]]["classes"],
                             "size": results["models"][sensor[0]]["size"]}
    # cost: every backbone, random weights, one interleaved run
    t1 = time.perf_counter()
    lat = latency(BACKBONES, MODALITIES, size=size, repeats=config.repeats, runtimes=("torch", "onnx"),
                  width=config.width, seed=config.seed)
    by = {(r["backbone"], r["modality"], r["runtime"]): r for r in lat["rows"]}
    ratios = {(r["backbone"], r["runtime"]): r for r in lat["ratios"]}
    from hcgym.perception.gesture.backbones import count_parameters, make_backbone
    from hcgym.perception.gesture.inputs import MODALITIES as CHANNELS

    for b in BACKBONES:
        row = results["models"][b]
        for m in MODALITIES:
            row[f"ms_{m}"] = round(by[b, m, "torch"]["median_ms"], 3)
            row[f"ms_{m}_onnx"] = round(by[b, m, "onnx"]["median_ms"], 3)
        row["ratio"] = round(ratios[b, "torch"]["median"], 4)
        row["ratio_onnx"] = round(ratios[b, "onnx"]["median"], 4)
        row["ratio_of_minima"] = round(ratios[b, "torch"]["of_minima"], 4)
        row["params"], row["macs"], row["first_conv_macs"] = {}, {}, {}
        for m in MODALITIES:
            net = make_backbone(b, CHANNELS[m], classes, config.width)
            row["params"][m] = count_parameters(net)
            row["macs"][m] = int(model_macs(net, size)["ptflops"])
            row["first_conv_macs"][m] = by[b, m, "torch"]["first_conv_macs"]
    results["latency"] = {"size": size, "repeats": config.repeats, "threads": 1, "torch": torch.__version__,
                          "rows": lat["rows"], "ratios": lat["ratios"]}
    results["table29"] = _table29(config, size)
    t_cost = time.perf_counter() - t1
    results.update(_analyses(scores, labels, distance[gesture_idx]))
    results["checks"] = _checks(results)
    results["paired"] = paired(scores)
    results["seconds"] = {"data": round(t_data, 1), "cost": round(t_cost, 1),
                          "total": round(time.perf_counter() - t0, 1)}
    results["_scores"] = scores
    results["_distance"] = distance[gesture_idx]
    results["_labels"] = list(labels)
    return results


def _table29(config: GestureEvalConfig, size: int) -> list[dict[str, Any]]:
    """MobileNetV2 RGB-D batch-1 single-thread time at the seed's 224 x 224 and at ``size`` (torch, ONNX Runtime)."""
    from hcgym.perception.gesture.cost import latency

    if not config.table29_repeats:
        return []
    rows = []
    for s in sorted({SEED_SIZE, size}, reverse=True):
        r = latency(("mobilenet_v2",), ("rgbd",), size=s, repeats=max(2, config.table29_repeats),
                    runtimes=("torch", "onnx"), width=config.width, seed=config.seed)
        for row in r["rows"]:
            sec = row["median_ms"] / 1000.0
            rows.append({"size": s, "runtime": row["runtime"], "seconds": round(sec, 5), "fps": round(1.0 / sec, 1)})
    return rows


def _analyses(scores: dict[str, Any], labels: tuple[str, ...], distance: np.ndarray) -> dict[str, Any]:
    """Confusion matrix of the first backbone's RGB-D model, accuracy by distance and confidence analyses."""
    out: dict[str, Any] = {"by_distance": {}, "confidence": {}}
    bins = np.asarray(DISTANCE_BINS)
    which = np.clip(np.digitize(distance, bins) - 1, 0, len(bins) - 2)
    for b, per in scores.items():
        if b.startswith("_"):
            continue
        out["by_distance"][b] = {}
        out["confidence"][b] = {}
        for m, s in per.items():
            ok = s["logits"].argmax(1) == s["y"]
            out["by_distance"][b][m] = [round(100 * float(ok[which == k].mean()), 2) if (which == k).any() else None
                                        for k in range(len(bins) - 1)]
            conf = softmax(s["logits"]).max(1)
            keep = {}
            for frac in (1.0, 0.9, 0.8, 0.7, 0.5):
                top = np.argsort(-conf, kind="mergesort")[:max(1, int(round(frac * len(conf))))]
                keep[str(frac)] = round(100 * float(ok[top].mean()), 2)
            a = auroc(1 - conf, ~ok)
            out["confidence"][b][m] = {"auroc_error": None if a is None else round(a, 4),
                                       "mean_conf_correct": round(float(conf[ok].mean()), 4) if ok.any() else None,
                                       "mean_conf_wrong": round(float(conf[~ok].mean()), 4) if (~ok).any() else None,
                                       "acc_at_coverage": keep}
    first = next((b for b in BACKBONES if "rgbd" in scores.get(b, {})), None)
    if first is not None:
        s = scores[first]["rgbd"]
        k = s["all_logits"].shape[1]
        known = s["all_y"] < k  # every fresh sample of the model's classes (with none when it has it)
        cm = np.zeros((k, k), np.int64)
        np.add.at(cm, (s["all_y"][known], s["all_logits"][known].argmax(1)), 1)
        out["confusion"] = {"model": f"{first} rgbd", "labels": list(labels[:k]), "matrix": cm.tolist()}
    out["distance_bins"] = list(DISTANCE_BINS)
    return out


def _checks(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's checks per backbone: RGB-D >= max(RGB, depth) on the fresh avatars (when all three are
    shipped), RGB-D / RGB latency ratio <= 1.05 (torch, one interleaved run)."""
    out: dict[str, Any] = {"rgbd_ge_max": {}, "ratio_le_1_05": {}}
    for b, r in results["models"].items():
        if all(r[m] is not None for m in MODALITIES):
            out["rgbd_ge_max"][b] = bool(r["rgbd"] >= max(r["rgb"], r["depth"]))
        out["ratio_le_1_05"][b] = bool(r["ratio"] <= 1.05)
    return out


def paired(scores: dict[str, Any]) -> dict[str, Any]:
    """RGB-D against RGB and against depth on the same fresh gesture samples, per backbone: ``rgbd_only`` (RGB-D
    right, the other wrong), ``other_only`` and McNemar's exact two-sided p-value (a binomial test of the
    discordant samples)."""
    from scipy.stats import binomtest

    out: dict[str, Any] = {}
    for b, per in scores.items():
        if "rgbd" not in per:
            continue
        ok = {m: s["logits"].argmax(1) == s["y"] for m, s in per.items()}
        for m in ("rgb", "depth"):
            if m in ok:
                n10, n01 = int((ok["rgbd"] & ~ok[m]).sum()), int((~ok["rgbd"] & ok[m]).sum())
                p = binomtest(n10, n10 + n01, 0.5).pvalue if n10 + n01 else 1.0
                out.setdefault(b, {})[f"rgbd_vs_{m}"] = {"rgbd_only": n10, "other_only": n01, "p": round(float(p), 4)}
    return out


def with_overrides(config: GestureEvalConfig, **values: Any) -> GestureEvalConfig:
    """``config`` with every value that is not ``None`` replaced."""
    return replace(config, **{k: v for k, v in values.items() if v is not None})
