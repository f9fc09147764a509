"""``hcgym evaluate expression``: the shipped expression models on fresh clips of people never seen in training.

Test data is drawn fresh from the seed: expression clips of ``identities`` avatars of the clip generator's pool
for dataset seed ``EVAL_DATASET_SEED + seed`` (checked to share no identity with the training sets, whose
dataset keys the shipped bundle records), each showing every expression ``per_identity`` times, in both
styles (``posed`` for protocol ``ck``, ``wild`` for ``afew``) with the training sets' clip length, frame rate
and size, prepared by :func:`hcgym.synthesis.expression_data.prepare` (dlib, Face Mesh, truth) exactly as the
training caches were. Then, for each protocol and landmark source (:mod:`.study` gives the inputs):

* ``models``: every table model (ST-GCN, AGCN, ST-BLN, PST-BLN): ``acc`` (one deterministic pass, the
  seed's "wo/MCD"), ``acc_mcd`` (the mean of Monte Carlo dropout passes, "w/MCD": ``passes`` for PST-BLN,
  ``passes_fixed`` for the fixed-width models, whose passes cost up to 15 times more), ``params``
  (all trainable) and ``params_no_graph`` (without the learnable graph matrices: the seed's tables count so),
  the AUROC of its predictive entropy, and its widths;
* ``mcd``: the seed study (the network PST-BLN's search found, fine-tuned with each seed): per seed and the mean
  over seeds of ``ensemble``, ``deterministic``, ``single_mean`` and ``single_std`` (accuracy of the mean
  prediction, of the deterministic pass, and the mean and std over passes of single stochastic passes);
* ``uncertainty_auroc``: the AUROC of PST-BLN's predictive entropy (MC dropout) for flagging sequences that
  are misclassified or blended (``label2 >= 0``) against correctly classified clean ones;
  ``uncertainty`` adds ``misclassified`` (wrong vs right, any clip) and ``blend`` (blended vs clean, either
  outcome) AUROCs and the counts (no blends in posed clips: ``None``).

Plus the stream model on windows of the fresh clips (2 window ends per clip, labelled with its last frame;
10 Monte Carlo passes), the ratio ST-BLN / PST-BLN of both parameter counts, and the issue's targets
(``checks``). Accuracies are in %.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError

#: Dataset seed of the test clips is this plus the evaluation seed (the training sets used seeds 0 and 1).
EVAL_DATASET_SEED = 6_000_000
#: Protocols and sources scored by default.
PROTOCOLS = ("ck", "afew")
SOURCES = ("dlib", "mesh51")
#: Display names of the models, in table order.
NAMES = {"stgcn": "ST-GCN", "agcn": "AGCN", "stbln": "ST-BLN", "pstbln": "PST-BLN"}
#: The seed's rows (method, acc %, #params without graph matrices): Table 21 (CK+, 10-fold), Table 20
#: (Oulu-CASIA, 10-fold) and Table 19 (AFEW validation).
SEED_TABLES = {
    "ck": {"title": "CK+ (Table 21)", "rows": {
        "stgcn": ("93.64", "131.3k"), "agcn": ("94.18", "143.7k"), "dgnn": ("96.02", "535.7k"),
        "stbln_mcd": ("95.47", "132.3k"), "stbln": ("93.19", "132.3k"), "pstbln_mcd": ("93.34", "9.79k"),
        "pstbln": ("93.1", "9.79k")}},
    "oulu": {"title": "Oulu-CASIA (Table 20)", "rows": {
        "stgcn": ("77.08", "131.3k"), "agcn": ("75.62", "143.7k"), "dgnn": ("81.46", "535.7k"),
        "stbln_mcd": ("83.54", "132.3k"), "stbln": ("82.08", "132.3k"), "pstbln_mcd": ("79.79", "7.59k"),
        "pstbln": ("78.74", "7.59k")}},
    "afew": {"title": "AFEW (Table 19)", "rows": {
        "stgcn": ("28.17", "131.3k"), "agcn": ("24.21", "143.7k"), "dgnn": ("32.64", "538k"),
        "stbln_mcd": ("36.11", "132.3k"), "stbln": ("34.13", "132.3k"), "pstbln_mcd": ("33.33", "10.8k"),
        "pstbln": ("30.15", "10.8k")}},
}
#: The seed's MC dropout figures (ST-BLN on AFEW): ensemble, deterministic, single passes mean and std.
SEED_MCD = {"ensemble": 36.11, "deterministic": 34.13, "single_mean": 32.09, "single_std": 1.18}


@dataclass(frozen=True)
class ExprEvalConfig:
    """One ``hcgym evaluate expression`` run.

    Attributes:
        seed: picks the test avatars (dataset seed ``EVAL_DATASET_SEED + seed``), the MC dropout masks and the
            stream windows.
        identities: test avatars; each shows every expression ``per_identity`` times in each style.
        workers: processes generating and preparing the clips.
        passes: Monte Carlo dropout passes of PST-BLN and the seed study (the seed's 100).
        passes_fixed: Monte Carlo dropout passes of ST-GCN, AGCN and ST-BLN.
        protocols, sources: what is scored.
        models: the bundle of :mod:`.study` (default: the shipped ``expression_models.pt``).
        stream: the stream model (default: the shipped ``expression_stream.pt``; ``None`` there: not scored).
        data_dir: where the generated clips and caches go (default: ``$HCGYM_CACHE/expression-eval``); a second
            run with the same seed and sizes reuses them.
    """

    seed: int = 0
    identities: int = 8
    per_identity: int = 2
    workers: int = 2
    passes: int = 100
    passes_fixed: int = 20
    protocols: tuple[str, ...] = PROTOCOLS
    sources: tuple[str, ...] = SOURCES
    models: Path | None = None
    stream: Path | None = None
    data_dir: Path | None = None

    def check(self) -> ExprEvalConfig:
        """Raise :class:`SpecError` naming the first invalid field; return ``self``."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpecError("seed", f"expected a non-negative integer, got {self.seed!r}")
        for name in ("identities", "per_identity", "workers", "passes", "passes_fixed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(name, f"expected a positive integer, got {v!r}")
        for name, allowed in (("protocols", PROTOCOLS), ("sources", ("dlib", "mesh51", "truth"))):
            vals = getattr(self, name)
            bad = [v for v in vals if v not in allowed]
            if not vals or bad:
                raise SpecError(name, f"unknown {name[:-1]} {bad[0] if bad else None!r} (allowed: {', '.join(allowed)})")
        for name in ("models", "stream"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise SpecError(name, f"not found: {path}")
        return self


def quick_config(seed: int = 0) -> ExprEvalConfig:
    """A small run: one avatar per style (7 clips each), 20 and 5 passes."""
    return ExprEvalConfig(seed=seed, identities=1, per_identity=1, passes=20, passes_fixed=5)


def shipped(name: str) -> Path:
    """A file of ``perception/expression/models``."""
    from hcgym.perception.expression import __file__ as package

    return Path(package).parent / "models" / name


# ----------------------------------------------------------------------------- data
def training_identities(data_meta: dict[str, Any]) -> set[str]:
    """Identity keys of every person in the training sets (the clip generator's pools of the bundle's data)."""
    from hcgym.synthesis.dataset.clips import identity_spec

    keys: set[str] = set()
    for meta in data_meta.values():
        ds = (meta or {}).get("dataset") or {}
        if ds.get("mode") == "clips":
            keys.update(identity_spec(int(ds["seed"]), j).identity_key() for j in range(int(ds["clips"]["identities"])))
    return keys


def test_data(config: ExprEvalConfig, data_meta: dict[str, Any], progress: bool = True) -> tuple[dict[str, Any],
                                                                                              dict[str, Any]]:
    """The fresh test clips of ``config.seed`` in the styles the protocols need, as
    :class:`~hcgym.synthesis.expression_data.ExpressionData` by style (generated and prepared on the first call,
    reused after), and a summary (dataset seed, identities, clips, seconds per style)."""
    from hcgym.paths import cache_dir
    from hcgym.perception.expression.study import PROTOCOL_STYLE
    from hcgym.synthesis.dataset import GenerateConfig, generate
    from hcgym.synthesis.dataset.clips import identity_spec
    from hcgym.synthesis.dataset.config import ClipSettings
    from hcgym.synthesis.expression_data import ExpressionData, prepare
    from hcgym.synthesis.expressions import EXPRESSIONS

    dataset_seed = EVAL_DATASET_SEED + config.seed
    people = [identity_spec(dataset_seed, j).identity_key() for j in range(config.identities)]
    seen = training_identities(data_meta) & set(people)
    if seen:  # a collision of avatar seeds; never expected
        raise SpecError("seed", f"test identities {sorted(seen)} were in a training set; choose another seed")
    root = Path(config.data_dir) if config.data_dir is not None else cache_dir() / "expression-eval"
    out: dict[str, Any] = {}
    summary: dict[str, Any] = {"dataset_seed": dataset_seed, "identities": people, "styles": {}}
    for style in sorted({PROTOCOL_STYLE[p] for p in config.protocols}):
        t0 = time.time()
        train_ds = (data_meta.get(style) or {}).get("dataset") or {}
        clips = train_ds.get("clips") or {}
        if "seconds" not in clips or "fps" not in clips:
            raise SpecError("models", f"the bundle records no {style} training data (clip length and rate)")
        folder = root / f"seed{config.seed}-{style}-{config.identities}x{config.per_identity}"
        npz = folder / f"{style}.npz"
        if not npz.is_file():
            generate(GenerateConfig(out=folder / "clips", n=config.identities * len(EXPRESSIONS) * config.per_identity,
                                    seed=dataset_seed, mode="clips", size=tuple(train_ds.get("size", (224, 224))),
                                    workers=config.workers,
                                    clips=ClipSettings(labels="expressions", seconds=float(clips["seconds"]),
                                                       fps=float(clips["fps"]), identities=config.identities,
                                                       splits=(0.0, 0.0, 1.0), style=style)),
                     progress=progress)
            prepare(folder / "clips", npz, workers=config.workers, progress=progress)
        out[style] = ExpressionData.load(npz)
        summary["styles"][style] = {"clips": len(out[style]), "cache": str(npz), "seconds": round(time.time() - t0, 1),
                                    "blends": int((out[style].arrays["label2"] >= 0).sum())}
    return out, summary


# ----------------------------------------------------------------------------- scoring
def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for telling ``positive`` from the rest (ties count one half);
    ``None`` when either group is empty."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):  # average ranks of ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def uncertainty_aurocs(entropy: np.ndarray, correct: np.ndarray, blend: np.ndarray) -> dict[str, Any]:
    """AUROCs of ``entropy`` (N,): ``any`` (misclassified or blended vs correct clean), ``misclassified``
    (wrong vs right), ``blend`` (blended vs clean), and the group sizes."""
    correct, blend = np.asarray(correct, bool), np.asarray(blend, bool)
    flagged = ~correct | blend
    return {"any": _r(auroc(entropy, flagged)), "misclassified": _r(auroc(entropy, ~correct)),
            "blend": _r(auroc(entropy, blend)),
            "counts": {"correct_clean": int((correct & ~blend).sum()), "wrong": int((~correct).sum()),
                       "blended": int(blend.sum())}}


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(float(v), digits)


def _pct(v: float) -> float:
    return round(100.0 * float(v), 2)


def score_model(net: Any, x: np.ndarray, y: np.ndarray, passes: int, seed: int) -> tuple[dict[str, Any], Any]:
    """``{"acc", "acc_mcd", "single_mean", "single_std", "params", "params_no_graph", "widths"}`` of one model
    and its :class:`~.mcdropout.MCResult`."""
    from hcgym.perception.expression.mcdropout import mc_accuracies, mc_predict
    from hcgym.perception.expression.models import count_params

    mc = mc_predict(net, x, passes=passes, seed=seed, batch=128)
    accs = mc_accuracies(mc, y)
    c = count_params(net)
    return ({"acc": _pct(accs["deterministic"]), "acc_mcd": _pct(accs["ensemble"]),
             "single_mean": _pct(accs["single_mean"]), "single_std": _pct(accs["single_std"]),
             "params": c["params"], "params_no_graph": c["params_no_graph"], "widths": list(net.cfg.widths)}, mc)


def _same_weights(a: Any, b: Any) -> bool:
    """Whether two networks hold the same configuration and weights."""
    import torch

    if a is b:
        return True
    sa, sb = a.state_dict(), b.state_dict()
    return (getattr(a, "cfg", None) == getattr(b, "cfg", None) and sa.keys() == sb.keys()
            and all(torch.equal(sa[k], sb[k]) for k in sa))


def score_pair(bundle: dict[str, Any], data: Any, protocol: str, source: str, config: ExprEvalConfig) -> dict[str, Any]:
    """Every number of one protocol and source (see the module docstring); artefacts for the figures under
    ``_arrays``."""
    from hcgym.perception.expression.study import protocol_inputs

    runs = [r for r in bundle["runs"] if r["protocol"] == protocol and r["source"] == source]
    table = {r["model"]: r for r in runs if r["role"] == "table"}
    if not table:
        raise SpecError("sources", f"the bundle has no {protocol} models on {source} landmarks")
    x = protocol_inputs(data, source, protocol, int(bundle["settings"]["afew_frames"]))
    y = data.y()
    blend = data.arrays["label2"] >= 0
    out: dict[str, Any] = {"clips": len(y), "never_found": int(data.never_found(source).sum()), "models": {}}
    arrays: dict[str, Any] = {"y": y, "blend": blend}
    for name in (m for m in NAMES if m in table):
        passes = config.passes if name == "pstbln" else config.passes_fixed
        scores, mc = score_model(table[name]["net"], x, y, passes, config.seed)
        scores["passes"] = passes
        correct = mc.mean.argmax(1) == y
        scores["auroc"] = uncertainty_aurocs(mc.entropy, correct, blend)["any"]
        out["models"][name] = scores
        arrays[name] = {"pred": mc.mean.argmax(1), "pred_det": mc.deterministic.argmax(1), "entropy": mc.entropy}
    main = "pstbln" if "pstbln" in arrays else next(iter(out["models"]))
    unc = uncertainty_aurocs(arrays[main]["entropy"], arrays[main]["pred"] == y, blend)
    out["uncertainty_auroc"] = unc["any"]
    out["uncertainty"] = {"model": main, **unc}
    seeds = sorted((r for r in runs if r["role"] == "mcd"), key=lambda r: r["seed"])
    if seeds:
        per_seed = {}
        for r in seeds:
            if "pstbln" in table and _same_weights(r["net"], table["pstbln"]["net"]):
                s = out["models"]["pstbln"]  # the table's PST-BLN (the study's seed 0): same passes, same masks
            else:
                s, _ = score_model(r["net"], x, y, config.passes, config.seed)
            per_seed[str(r["seed"])] = {"ensemble": s["acc_mcd"], "deterministic": s["acc"],
                                        "single_mean": s["single_mean"], "single_std": s["single_std"]}
        keys = ("ensemble", "deterministic", "single_mean", "single_std")
        out["mcd"] = {**{k: round(float(np.mean([v[k] for v in per_seed.values()])), 2) for k in keys},
                      "per_seed": per_seed, "model": "pstbln", "widths": list(seeds[0]["net"].cfg.widths),
                      "ordering_per_seed": {s: v["ensemble"] >= v["deterministic"] >= v["single_mean"]
                                            for s, v in per_seed.items()}}
    if "stbln" in out["models"] and "pstbln" in out["models"]:
        a, b = out["models"]["stbln"], out["models"]["pstbln"]
        out["ratio_stbln_pstbln"] = {"params": round(a["params"] / b["params"], 2),
                                     "params_no_graph": round(a["params_no_graph"] / b["params_no_graph"], 2),
                                     "acc_gap": round(a["acc"] - b["acc"], 2),
                                     "acc_mcd_gap": round(a["acc_mcd"] - b["acc_mcd"], 2)}
    growth = table.get("pstbln", {}).get("growth")
    if growth:
        out["growth"] = growth
    out["_arrays"] = arrays
    return out


#: Monte Carlo passes and window ends per clip of the stream model's score.
STREAM_PASSES = 10
STREAM_ENDS = 2


def score_stream(path: Path, data: dict[str, Any], config: ExprEvalConfig) -> dict[str, Any]:
    """The stream model on windows of the fresh clips (:data:`STREAM_ENDS` window ends per clip, drawn from
    the seed), with :data:`STREAM_PASSES` Monte Carlo passes (at most ``config.passes``)."""
    from hcgym.perception.expression.study import stream_windows
    from hcgym.perception.expression.training import load_model

    model, meta = load_model(path, "stream")
    passes = min(STREAM_PASSES, config.passes)
    out: dict[str, Any] = {"window": meta["window"], "fps": meta["fps"], "source": meta["source"], "passes": passes,
                           "ends": STREAM_ENDS}
    for style, d in sorted(data.items()):
        x, y = stream_windows(d, int(meta["window"]), float(meta["fps"]), STREAM_ENDS, config.seed,
                              source=meta["source"])
        scores, _ = score_model(model, x, y, passes, config.seed)
        out[style] = {"windows": len(y), **{k: scores[k] for k in ("acc", "acc_mcd")}}
    out["params"], out["params_no_graph"], out["widths"] = scores["params"], scores["params_no_graph"], scores["widths"]
    return out


def checks(protocols: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets per protocol and source: PST-BLN at most 1/10 of ST-BLN's parameters (the seed's
    convention, without graph matrices) within 4 points (w/MCD and wo/MCD); the MC dropout ordering over the
    seeds (every seed and their mean); the uncertainty AUROC at least 0.7."""
    out: dict[str, Any] = {}
    for protocol, by_source in protocols.items():
        for source, r in by_source.items():
            c: dict[str, Any] = {}
            ratio = r.get("ratio_stbln_pstbln")
            if ratio:
                c["pstbln_tenth_of_stbln"] = ratio["params_no_graph"] >= 10
                c["pstbln_within_4_points"] = ratio["acc_mcd_gap"] <= 4
                c["pstbln_within_4_points_deterministic"] = ratio["acc_gap"] <= 4
            if "mcd" in r:
                m = r["mcd"]
                c["mcd_ordering_mean"] = m["ensemble"] >= m["deterministic"] >= m["single_mean"]
                c["mcd_ordering_every_seed"] = all(m["ordering_per_seed"].values())
            if r.get("uncertainty_auroc") is not None:
                c["auroc_at_least_0.7"] = r["uncertainty_auroc"] >= 0.7
            out[f"{protocol}-{source}"] = c
    return out


# ----------------------------------------------------------------------------- the run
def run(config: ExprEvalConfig = ExprEvalConfig(), progress: bool = True) -> dict[str, Any]:
    """Score everything; returns the ``results.json`` dict (artefacts for the figures under ``_`` keys)."""
    from hcgym.perception.expression.study import BUNDLE, PROTOCOL_STYLE, STREAM, load_models

    config.check()
    t0 = time.time()
    bundle = load_models(config.models or shipped(BUNDLE))
    stream = config.stream or (shipped(STREAM) if shipped(STREAM).is_file() else None)
    data, summary = test_data(config, bundle["data_metadata"], progress)
    summary["labels"] = list(bundle["labels"])
    seconds: dict[str, float] = {"data": round(time.time() - t0, 1)}
    results: dict[str, Any] = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
                               "data": summary, "settings": bundle["settings"], "protocols": {}}
    for protocol in config.protocols:
        for source in config.sources:
            t = time.time()
            if progress:
                print(f"[expression] scoring {protocol} on {source} landmarks", flush=True)
            results["protocols"].setdefault(protocol, {})[source] = score_pair(
                bundle, data[PROTOCOL_STYLE[protocol]], protocol, source, config)
            seconds[f"{protocol}-{source}"] = round(time.time() - t, 1)
    if stream is not None:
        t = time.time()
        results["stream"] = score_stream(Path(stream), data, config)
        seconds["stream"] = round(time.time() - t, 1)
    results["checks"] = checks(results["protocols"])
    seconds["total"] = round(time.time() - t0, 1)
    results["seconds"] = seconds
    return results


def public_results(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` without the figure artefacts (``_arrays`` inside each protocol and source)."""
    out = dict(results)
    out["protocols"] = {p: {s: {k: v for k, v in r.items() if not k.startswith("_")} for s, r in by.items()}
                        for p, by in results["protocols"].items()}
    return out


def with_overrides(config: ExprEvalConfig, **over: Any) -> ExprEvalConfig:
    """``config`` with every given (not ``None``) field replaced."""
    return replace(config, **{k: v for k, v in over.items() if v is not None})


__all__ = ["EVAL_DATASET_SEED", "ExprEvalConfig", "SEED_MCD", "SEED_TABLES", "auroc", "checks", "public_results",
           "quick_config", "run", "score_model", "score_pair", "score_stream", "shipped", "test_data",
           "training_identities", "uncertainty_aurocs", "with_overrides"]
