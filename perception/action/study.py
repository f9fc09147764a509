"""The seed studies of §6.1: the learning-to-ignore table and the RGB + skeleton fusion table.

Each study trains small models of a few variants over several seeds on an action-data cache
(:mod:`hcgym.synthesis.action_data`), at a reduced crop size so the whole study fits a CPU afternoon, and
bundles every trained model into one file (``action_<study>_study.pt``) that ``hcgym evaluate action`` scores
on fresh clips (mean +- std over the seeds).

* ``ignore``: the X3D-like network with no attention, SE, CBAM and their ignore modes (Ign1 with alpha = 0.5,
  Ign2, Ign3), on RGB windows;
* ``fusion``: the RGB stream alone (the ``ignore`` study's SE model, same runs), the skeleton stream alone
  (:class:`~.fusion.SkeletonTCN` on MediaPipe skeletons, so both streams come from the camera), late fusion
  (both streams, logits averaged, no MMTM) and MMTM after every stage with each excitation mode.

Runs are keyed by everything that sets their result (kind, config, seed, optimisation, data) and live in
``OUT/runs/<kind>-s<seed>-<key>/``; a finished run holds ``model.pt``, an unfinished one resumes from its
``train_state/last.pt``. Runs with the same key (the RGB stream of both studies) are trained once. ``shard``
splits the runs between processes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError

STUDIES = ("ignore", "fusion")
#: The ign1 factor of the studies (the reference's tables also hold 0.8; alpha = 1 is Ign3, see attention.py).
ALPHA = 0.5
#: The X3D-like network of the studies (before size, frames and attention are set).
X3D_STUDY = {"widths": [8, 16, 32, 48], "depths": [1, 1, 1, 1], "stem_width": 8}


@dataclass(frozen=True)
class StudySettings:
    """What every run of a study shares."""

    size: int = 56
    frames: int = 16
    epochs: int = 10
    batch_size: int = 16
    lr: float = 2e-3
    skeleton: str = "mediapipe"

    def check(self) -> StudySettings:
        for name in ("size", "frames", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(f"--{name.replace('_', '-')}", f"expected a positive integer, got {v!r}")
        if not self.lr > 0:
            raise SpecError("--lr", f"expected > 0, got {self.lr}")
        if self.skeleton not in ("truth", "mediapipe"):
            raise SpecError("--skeleton", f"expected truth or mediapipe, got {self.skeleton!r}")
        return self


def _x3d(settings: StudySettings, classes: int, attention: str, mode: str = "plain", alpha: float = 1.0,
         tiny: bool = False) -> dict[str, Any]:
    cfg = {**X3D_STUDY, "num_classes": classes, "frames": settings.frames, "size": settings.size,
           "attention": attention, "attention_mode": mode, "alpha": alpha}
    if tiny:
        cfg.update(widths=[8, 16], depths=[1, 1], stem_temporal_kernel=3)
    return cfg


def variants(study: str, settings: StudySettings, classes: int, tiny: bool = False) -> list[tuple[str, str, dict]]:
    """``(variant, kind, config)`` of every variant of ``study``, in table order."""
    if study == "ignore":
        out = [("none", "x3d", _x3d(settings, classes, "none", tiny=tiny))]
        for block in ("se", "cbam"):
            out += [(block, "x3d", _x3d(settings, classes, block, tiny=tiny)),
                    (f"{block}-ign1", "x3d", _x3d(settings, classes, block, "ign1", ALPHA, tiny)),
                    (f"{block}-ign2", "x3d", _x3d(settings, classes, block, "ign2", tiny=tiny)),
                    (f"{block}-ign3", "x3d", _x3d(settings, classes, block, "ign3", tiny=tiny))]
        return out
    if study == "fusion":
        rgb = _x3d(settings, classes, "se", tiny=tiny)
        widths = [2 * w for w in rgb["widths"]]
        out = [("rgb", "x3d", rgb), ("skeleton", "tcn", {"widths": widths, "num_classes": classes}),
               ("late", "mmtm", {"x3d": rgb, "skeleton_widths": widths, "fuse": []})]
        for mode, alpha in (("plain", 1.0), ("ign1", ALPHA), ("ign2", 1.0), ("ign3", 1.0)):
            name = "mmtm" if mode == "plain" else f"mmtm-{mode}"
            out.append((name, "mmtm", {"x3d": rgb, "skeleton_widths": widths, "mode": mode, "alpha": alpha}))
        return out
    raise SpecError("--study", f"unknown study {study!r} (allowed: {', '.join(STUDIES)})")


def run_key(kind: str, config: dict[str, Any], seed: int, settings: StudySettings, data_meta: dict[str, Any]) -> str:
    """Eight hex digits naming everything that sets a run's result."""
    blob = json.dumps({"kind": kind, "config": config, "seed": seed, "settings": asdict(settings),
                       "data": data_meta.get("dataset", data_meta)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def uses_rgb(kind: str) -> bool:
    return kind in ("x3d", "mmtm")


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise SpecError("--seeds", f"expected distinct non-negative integers separated by commas, got {text!r}")
    return seeds


def parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 1
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        k, n = -1, 0
    if not (n >= 1 and 0 <= k < n):
        raise SpecError("--shard", f"expected K/N with 0 <= K < N, got {text!r}")
    return k, n


def study_batch(kind: str, data: Any, settings: StudySettings, rgb: np.ndarray | None) -> Any:
    """``(idx, rng) -> (inputs, labels)`` for a run of ``kind`` on the loaded ``data`` (``rgb`` already at
    ``settings.size``)."""
    from hcgym.perception.action.batches import model_batch
    from hcgym.synthesis.action_data import RGB_MEAN, RGB_STD

    skeleton = data.arrays.get(f"skeleton_{settings.skeleton}") if kind in ("tcn", "mmtm") else None
    if kind in ("tcn", "mmtm") and skeleton is None:
        raise SpecError("--skeleton", f"the data has no {settings.skeleton!r} skeletons")

    def batch(idx: np.ndarray, rng: np.random.Generator | None) -> tuple[tuple, Any]:
        return model_batch(kind, idx, rng, labels=data.arrays["label"], rgb=rgb, skeleton=skeleton,
                           frames=settings.frames, mean=RGB_MEAN, std=RGB_STD)
    return batch


def train_study(data_npz: str | Path, study: str, out: str | Path, seeds: Sequence[int],
                settings: StudySettings = StudySettings(), shard: tuple[int, int] = (0, 1), threads: int = 1,
                tiny: bool = False, log: Any = print) -> Path | None:
    """Train this process's share of the runs of ``study``; write the bundle once every run is done.

    Returns the bundle's path, or ``None`` while other shards still have runs to finish.
    """
    import torch

    from hcgym.perception.action.batches import accuracy, downsample
    from hcgym.perception.action.training import ActionTrainConfig, build_model, save_model, train_classifier
    from hcgym.synthesis.action_data import ActionData

    settings.check()
    out = Path(out)
    data_npz = Path(data_npz)
    if not data_npz.is_file():
        raise SpecError("--data", f"not found: {data_npz}")
    want = variants(study, settings, 1, tiny)  # kinds only; configs get the class count once the data is read
    needs_rgb = any(uses_rgb(kind) for _, kind, _ in want)
    data = ActionData.load(data_npz, skip=() if needs_rgb else ("rgb",))
    classes = len(data.label_names)
    if needs_rgb and (settings.size > data.arrays["rgb"].shape[2] or data.arrays["rgb"].shape[2] % settings.size):
        raise SpecError("--size", f"expected a divisor of the cache's crop size {data.arrays['rgb'].shape[2]}, "
                                  f"got {settings.size}")
    rgb = downsample(data.arrays["rgb"], settings.size) if needs_rgb else None
    train, val, test = data.select("train"), data.select("val"), data.select("test")
    if tiny:
        train, val, test = train[:8], val[:4], test[:4]
    if not len(train):
        raise SpecError("--data", f"{data_npz} has no training clips")
    runs = [(v, kind, cfg, seed) for v, kind, cfg in variants(study, settings, classes, tiny) for seed in seeds]
    k, n = shard
    for i, (variant, kind, cfg, seed) in enumerate(runs):
        key = run_key(kind, cfg, seed, settings, data.meta)
        run_dir = out / "runs" / f"{kind}-s{seed}-{key}"
        final = run_dir / "model.pt"
        if i % n != k or final.is_file():
            continue
        log(f"[study] {study} run {i + 1}/{len(runs)}: {variant}, seed {seed} -> {run_dir}")
        torch.manual_seed(seed)
        model = build_model(kind, cfg)
        batch = study_batch(kind, data, settings, rgb)
        tcfg = ActionTrainConfig(epochs=2 if tiny else settings.epochs, batch_size=settings.batch_size,
                                 lr=settings.lr, seed=seed, threads=threads, warmup=2 if tiny else 50)

        def validate(m: Any, batch: Any = batch) -> dict[str, float]:
            return {"val_acc": round(accuracy(m, lambda j: batch(j, None), val), 2)} if len(val) else {}

        result = train_classifier(model, lambda j, r, _t, batch=batch: batch(train[j], r), len(train), tcfg,
                                  out_dir=run_dir / "train_state", validate=validate, progress=False, log=log)
        test_acc = round(accuracy(result.model, lambda j, batch=batch: batch(j, None), test), 2)
        save_model(result.model, kind, cfg, final, {
            "variant": variant, "seed": seed, "study": study, "labels": list(data.label_names),
            "settings": asdict(settings), "history": result.history, "test_acc": test_acc,
            "train_config": asdict(tcfg)})
    done = []
    for variant, kind, cfg, seed in runs:
        final = out / "runs" / f"{kind}-s{seed}-{run_key(kind, cfg, seed, settings, data.meta)}" / "model.pt"
        if not final.is_file():
            return None
        done.append((variant, final))
    return write_bundle(study, done, out / f"action_{study}_study.pt", data.meta)


def write_bundle(study: str, run_files: Sequence[tuple[str, Path]], path: Path, data_meta: dict[str, Any]) -> Path:
    """One file of every ``(variant, run file)`` (``{"kind": "study", "study", "runs": [checkpoint dicts]}``)
    and its provenance (a run shared by two studies is named by the variant of this one)."""
    import io

    import torch

    from hcgym.paths import atomic_write_bytes
    from hcgym.perception.detection.sensor import load_tensors

    runs = [{**load_tensors(f, "--out", "study run"), "variant": v, "study": study} for v, f in run_files]
    buf = io.BytesIO()
    torch.save({"kind": "study", "study": study, "runs": runs}, buf)
    atomic_write_bytes(path, buf.getvalue())
    summary = summarise([{"variant": r["variant"], "seed": r["seed"], "acc": r["test_acc"]} for r in runs])
    provenance = {"study": study, "data_metadata": data_meta, "settings": runs[0]["settings"],
                  "train_config": runs[0]["train_config"],
                  "runs": [{k: r[k] for k in ("variant", "seed", "kind", "config", "test_acc", "history")} for r in runs],
                  "test_split_summary": summary}
    atomic_write_bytes(path.with_name(f"PROVENANCE_{path.stem}.json"), json.dumps(provenance, indent=1).encode())
    return path


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{variant: {"mean", "std", "per_seed": {seed: acc}}}`` (population std over the seeds), table order."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out.setdefault(r["variant"], {"per_seed": {}})["per_seed"][str(r["seed"])] = r["acc"]
    for v in out.values():
        accs = np.array(list(v["per_seed"].values()), float)
        v["mean"], v["std"] = round(float(accs.mean()), 2), round(float(accs.std()), 2)
    return out


def load_bundle(path: str | Path) -> dict[str, Any]:
    """A bundle of :func:`write_bundle` with its runs' models built (eval mode): ``runs[i]["model"]``."""
    from hcgym.perception.action.training import build_model
    from hcgym.perception.detection.sensor import load_tensors

    path = Path(path)
    if not path.is_file():
        raise SpecError("study", f"study bundle not found: {path}")
    b = load_tensors(path, "study", "action study bundle", "Write one with `hcgym train action-study`.")
    if not isinstance(b, dict) or b.get("kind") != "study":
        raise SpecError("study", f"{path} is not an action study bundle")
    for r in b["runs"]:
        m = build_model(r["kind"], r["config"])
        m.load_state_dict(r.pop("state_dict"))
        r["model"] = m.eval()
    return b
