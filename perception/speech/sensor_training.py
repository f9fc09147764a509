"""Training of the keyword sensor's shipped model (``hcgym train keywords``): MatchboxNet configuration A.

The recipe is the study's (:func:`~.training.train_run`: NovoGrad, warmup-hold-decay from 0.001 to 0.05, feature
shift and SpecAugment, cached MFCCs of :func:`~hcgym.synthesis.speech.keyword_dataset`), run once from one seed on
the train speakers, chosen by nothing (the last epoch is kept) and scored on the validation and test speaker pools,
voices never heard in training. The same data settings as the study (:class:`~.training.DataSettings`) share its
feature cache (``--data-dir``). Writes ``keywords_matchboxnet.pt`` (:func:`~.sensor.save_spotter`) and
``PROVENANCE_keywords_matchboxnet.json`` (command, seed, data, settings, per-epoch history, validation and test
accuracy, test confusion matrix, seconds).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.speech.training import DataSettings, TrainSettings

#: Stem of the shipped model's files.
STEM = "keywords_matchboxnet"
#: The shipped model's training, ``hcgym train keywords``'s defaults: 30 epochs, 9 minutes of CPU time on one core
#: (the features another minute; validation accuracy 78.9 % after 14 epochs, 83.8 % after 30).
DEFAULT_SETTINGS = TrainSettings(epochs=30)
#: Seconds-long settings (``--quick``: tests and smoke runs).
QUICK_DATA = DataSettings(train_count=48, val_count=24, test_count=24, rooms=2, n_speakers=4)
QUICK_SETTINGS = TrainSettings(epochs=1, batch_size=16, width=16)


def train_keywords(out: str | Path, *, seed: int = 0, data: DataSettings | None = None,
                   settings: TrainSettings | None = None, data_dir: str | Path | None = None, threads: int = 1,
                   quick: bool = False, command: str = "", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train MatchboxNet A from ``seed`` and write the model and its provenance into ``out`` (the training state,
    for resuming, in ``out/train_state``); returns the provenance."""
    import torch

    from hcgym.perception.speech.sensor import save_spotter
    from hcgym.perception.speech.training import accuracy, load_features, predict, train_run
    from hcgym.report import write_files
    from hcgym.synthesis.speech import CLASSES

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError("--out", f"{out} exists and is not a directory")
    data = (data or (QUICK_DATA if quick else DataSettings())).check()
    settings = (settings or (QUICK_SETTINGS if quick else DEFAULT_SETTINGS)).check()
    t0 = time.time()
    feats = {s: load_features(data_dir or out / "data", s, data, log=log) for s in ("train", "val", "test")}
    model, history = train_run("A", seed, feats["train"], feats["val"], settings, out_dir=out / "train_state",
                               threads=threads, classes=len(CLASSES), log=log)
    test = feats["test"]
    pred = predict(model, test)
    confusion = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    np.add.at(confusion, (test.y, pred), 1)
    config = {"config": "A", "width": settings.width, "tanh": True, "labels": list(CLASSES)}
    scores = {"val_acc": history[-1]["val_acc"], "test_acc": accuracy(model, test)}
    with tempfile.TemporaryDirectory(prefix="hcgym-kws-") as tmp:
        weights = save_spotter(model, config, Path(tmp) / f"{STEM}.pt", {"seed": int(seed), **scores}).read_bytes()
    provenance = {
        "command": command, "written": time.strftime("%Y-%m-%d %H:%M:%S"), "file": f"{STEM}.pt",
        "bytes": len(weights), "sha256": hashlib.sha256(weights).hexdigest(), "seed": int(seed), "quick": bool(quick),
        "model": {**config, "parameters": int(sum(p.numel() for p in model.parameters()))},
        "data": {**asdict(data), "splits": {s: {"key": f.key, "clips": len(f)} for s, f in feats.items()}},
        "train_settings": asdict(settings), "history": history, **scores,
        "test_confusion": {"labels": list(CLASSES), "matrix": confusion.tolist()},
        "seconds": round(time.time() - t0, 1), "torch": torch.__version__}
    write_files(out, {f"{STEM}.pt": weights, f"PROVENANCE_{STEM}.json": json.dumps(provenance, indent=1) + "\n"})
    log(f"[keywords] validation {scores['val_acc']} %, test {scores['test_acc']} % ({provenance['seconds']} s)")
    return provenance


__all__ = ["DEFAULT_SETTINGS", "QUICK_DATA", "QUICK_SETTINGS", "STEM", "train_keywords"]
