"""The Self-ONN seed study of §5.2 (Table 25): MatchboxNet configurations A-F over several seeds.

Every configuration is trained from each seed on the same cached features of a synthetic keyword data set
(:mod:`.training`) and scored on the validation split (every epoch) and on the test split, whose speakers are
voices never heard in training. With ``ablation`` the study adds the configurations with Self-ONN layers
trained without the ``tanh`` before them (variant ``<config>-notanh``), the ablation of the §5.4 plan.

Runs are keyed by everything that sets their result (configuration, tanh, seed, training settings, the data
sets' keys) and live in ``OUT/runs/<variant>-s<seed>-<key>/``: a finished run holds ``model.pt``, an
unfinished one resumes from ``train_state/last.pt``. ``shard`` splits the runs between processes, balanced
by their parameter counts (training time grows with them); the process that finds every run finished writes
``OUT/speech_selfonn_study.pt`` (every model, float16 weights) and ``OUT/PROVENANCE_speech_selfonn_study.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.action.study import summarise
from hcgym.perception.speech.training import DataSettings, Features, TrainSettings, load_features

BUNDLE = "speech_selfonn_study.pt"
KIND = "speech_selfonn_study"


@dataclass(frozen=True)
class Run:
    """One training run: MatchboxNet ``config`` from ``seed``, with or without the tanh before Self-ONN layers."""

    config: str
    seed: int
    tanh: bool = True

    @property
    def variant(self) -> str:
        return self.config if self.tanh else f"{self.config}-notanh"


def parse_configs(text: str) -> list[str]:
    """``"A,E,F"`` -> ``["A", "E", "F"]``: distinct names of :data:`~.matchboxnet.CONFIGS`."""
    from hcgym.perception.speech.matchboxnet import CONFIGS

    names = [c.strip() for c in str(text).split(",") if c.strip()]
    bad = [c for c in names if c not in CONFIGS]
    if not names or bad or len(set(names)) != len(names):
        raise SpecError("--configs", f"expected distinct configurations of {', '.join(CONFIGS)} separated by "
                                     f"commas, got {text!r}")
    return names


def plan(configs: Sequence[str], seeds: Sequence[int], ablation: bool = False) -> list[Run]:
    """Every run of the study, configuration-major; with ``ablation`` then the tanh-free runs of the
    configurations that have Self-ONN layers."""
    from hcgym.perception.speech.matchboxnet import config as get_config

    runs = [Run(c, int(s)) for c in configs for s in seeds]
    if ablation:
        runs += [Run(c, int(s), tanh=False) for c in configs if get_config(c).q for s in seeds]
    return runs


def run_key(run: Run, settings: TrainSettings, data_keys: dict[str, str]) -> str:
    """Eight hex digits naming everything that sets a run's result (``data_keys``: feature key per split)."""
    blob = json.dumps({**asdict(run), "settings": asdict(settings), "data": data_keys}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def run_dir(out: Path, run: Run, settings: TrainSettings, data_keys: dict[str, str]) -> Path:
    return Path(out) / "runs" / f"{run.variant}-s{run.seed}-{run_key(run, settings, data_keys)}"


def run_cost(run: Run, settings: TrainSettings, classes: int) -> int:
    """The parameters of ``run``'s model (at stride 1 its multiply-adds, and so its training time, grow with
    them)."""
    from hcgym.perception.speech.matchboxnet import count_parameters
    from hcgym.perception.speech.training import build_model

    return int(count_parameters(build_model(run.config, classes, settings, run.tanh)))


def assign_shards(costs: Sequence[float], n: int) -> list[int]:
    """The shard (0..n-1) of each run: longest first, each to the shard with the least work so far (ties: the
    lower index), so the shards' total costs differ by at most the largest run's cost."""
    load = [0.0] * n
    shard = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        k = min(range(n), key=lambda j: (load[j], j))
        shard[i] = k
        load[k] += costs[i]
    return shard


def train_study(out: str | Path, configs: Sequence[str], seeds: Sequence[int], data: DataSettings,
                settings: TrainSettings, *, data_dir: str | Path | None = None, shard: tuple[int, int] = (0, 1),
                threads: int = 1, ablation: bool = False, command: str = "",
                log: Callable[[str], None] = print) -> Path | None:
    """Train this process's share of the runs; write the bundle once every run is finished.

    Returns the bundle's path, or ``None`` while runs of other shards are unfinished.
    """
    from hcgym.perception.speech.matchboxnet import config as get_config
    from hcgym.synthesis.speech.keywords import CLASSES

    for c in configs:
        get_config(c)
    data.check()
    settings.check()
    k, n = shard
    if not (isinstance(n, int) and n >= 1 and isinstance(k, int) and 0 <= k < n):
        raise SpecError("--shard", f"expected K/N with 0 <= K < N, got {k}/{n}")
    if not seeds or len(set(seeds)) != len(seeds) or any(isinstance(s, bool) or int(s) < 0 for s in seeds):
        raise SpecError("--seeds", f"expected distinct non-negative integers, got {list(seeds)!r}")
    out = Path(out)
    data_dir = Path(data_dir) if data_dir is not None else out / "data"
    feats = {split: load_features(data_dir, split, data, log=log) for split in ("train", "val", "test")}
    data_keys = {split: f.key for split, f in feats.items()}
    runs = plan(configs, seeds, ablation)
    classes = len(CLASSES)
    shards = assign_shards([run_cost(r, settings, classes) for r in runs], n)
    mine = [r for r, s in zip(runs, shards) if s == k]
    log(f"[study] shard {k}/{n}: {len(mine)} of {len(runs)} runs")
    for i, run in enumerate(mine):
        folder = run_dir(out, run, settings, data_keys)
        if (folder / "model.pt").is_file():
            continue
        log(f"[study] run {i + 1}/{len(mine)} of this shard: {run.variant}, seed {run.seed} -> {folder}")
        finish_run(run, folder, feats, settings, threads, classes, log)
    folders = [run_dir(out, r, settings, data_keys) for r in runs]
    if not all((f / "model.pt").is_file() for f in folders):
        return None
    return write_bundle(out, folders, data, settings, feats, command)


def finish_run(run: Run, folder: Path, feats: dict[str, Features], settings: TrainSettings, threads: int,
               classes: int, log: Callable[[str], None]) -> None:
    """Train (or resume) ``run`` and write ``folder/model.pt``: float32 weights, history, validation and test
    accuracy (%; ``test_acc_fp16`` with the weights rounded to float16, as the bundle holds them), the test
    confusion matrix (rows: true class) and the training seconds."""
    import torch

    from hcgym.paths import atomic_write_bytes
    from hcgym.perception.speech.training import accuracy, predict, train_run

    model, history = train_run(run.config, run.seed, feats["train"], feats["val"], settings, tanh=run.tanh,
                               out_dir=folder / "train_state", threads=threads, classes=classes, log=log)
    test = feats["test"]
    pred = predict(model, test)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (test.y, pred), 1)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in weights.items()})
    result = {**asdict(run), "variant": run.variant, "classes": classes, "width": settings.width,
              "state_dict": weights, "history": history, "val_acc": history[-1]["val_acc"],
              "test_acc": round(100.0 * float(np.mean(pred == test.y)), 2), "test_acc_fp16": accuracy(model, test),
              "confusion": confusion.tolist(), "seconds": round(sum(h["seconds"] for h in history), 1)}
    buf = io.BytesIO()
    torch.save(result, buf)
    atomic_write_bytes(folder / "model.pt", buf.getvalue())
    log(f"[study] {run.variant} seed {run.seed}: val {result['val_acc']} %, test {result['test_acc']} % "
        f"(float16 weights {result['test_acc_fp16']} %)")


def variant_costs(run: dict[str, Any], width: int, memo: dict) -> dict[str, Any]:
    """Parameters, multiply-adds (ptflops, fvcore) and Self-ONN power products of one 1 s utterance's MFCCs."""
    from hcgym.perception.speech.matchboxnet import MatchboxNet, count_macs, count_parameters, power_products

    key = (run["config"], run["tanh"], run["classes"], width)
    if key not in memo:
        model = MatchboxNet(run["classes"], run["config"], width=width, tanh=run["tanh"])
        memo[key] = {"params": int(count_parameters(model)), "macs": count_macs(model),
                     "power_products": int(power_products(model))}
    return memo[key]


def write_bundle(out: Path, folders: Sequence[Path], data: DataSettings, settings: TrainSettings,
                 feats: dict[str, Features], command: str = "") -> Path:
    """``OUT/speech_selfonn_study.pt`` from the finished runs in ``folders``: ``{"kind", "classes", "settings", "runs": [{config, seed, tanh,
    variant, classes, width, state_dict (float16), val_acc, test_acc, test_acc_fp16}]}``, and its provenance
    (command, data, settings, per run: costs, per-epoch history, accuracies, confusion, seconds; per variant:
    mean and std over the seeds)."""
    import torch

    from hcgym.paths import atomic_write_bytes
    from hcgym.perception.detection.sensor import load_tensors
    from hcgym.synthesis.speech.keywords import CLASSES

    entries, rows, memo = [], [], {}
    for folder in folders:
        r = load_tensors(folder / "model.pt", "--out", "keyword-spotter study run")
        entries.append({k: r[k] for k in ("config", "seed", "tanh", "variant", "classes", "width", "val_acc",
                                          "test_acc", "test_acc_fp16")}
                       | {"state_dict": {k: v.half() if v.is_floating_point() else v
                                         for k, v in r["state_dict"].items()}})
        rows.append({**{k: r[k] for k in ("variant", "config", "tanh", "seed", "val_acc", "test_acc",
                                         "test_acc_fp16", "seconds", "history", "confusion")},
                     **variant_costs(r, r["width"], memo), "run_dir": str(folder.relative_to(out))})
    buf = io.BytesIO()
    torch.save({"kind": KIND, "classes": list(CLASSES), "settings": asdict(settings), "runs": entries}, buf)
    path = out / BUNDLE
    atomic_write_bytes(path, buf.getvalue())
    summary = {
        "test": summarise([{"variant": r["variant"], "seed": r["seed"], "acc": r["test_acc"]} for r in rows]),
        "val": summarise([{"variant": r["variant"], "seed": r["seed"], "acc": r["val_acc"]} for r in rows])}
    provenance = {
        "command": command, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "bundle": {"file": BUNDLE, "bytes": len(buf.getvalue()), "weights": "float16"},
        "classes": list(CLASSES),
        "data": {**asdict(data), "splits": {s: {"key": f.key, "clips": len(f), "features": list(f.x.shape),
                                                "class_counts": np.bincount(f.y, minlength=len(CLASSES)).tolist()}
                                            for s, f in feats.items()}},
        "train_settings": asdict(settings), "summary": summary, "runs": rows}
    atomic_write_bytes(out / f"PROVENANCE_{Path(BUNDLE).stem}.json", json.dumps(provenance, indent=1).encode())
    return path


def load_bundle(path: str | Path) -> dict[str, Any]:
    """A bundle of :func:`write_bundle` with its runs' models built (float32, evaluation mode):
    ``runs[i]["model"]``."""
    from hcgym.perception.detection.sensor import load_tensors
    from hcgym.perception.speech.matchboxnet import MatchboxNet

    path = Path(path)
    if not path.is_file():
        raise SpecError("study", f"study bundle not found: {path}")
    b = load_tensors(path, "study", "keyword-spotter study bundle", "Write one with `hcgym train speech`.")
    if not isinstance(b, dict) or b.get("kind") != KIND:
        raise SpecError("study", f"{path} is not a keyword-spotter study bundle")
    for r in b["runs"]:
        model = MatchboxNet(r["classes"], r["config"], width=r["width"], tanh=r["tanh"])
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in r.pop("state_dict").items()})
        r["model"] = model.eval()
    return b
