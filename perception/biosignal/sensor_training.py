"""Training of the ECG sensor's two models (``hcgym train biosignal``) on simulated people.

* **Beat model**: the Gaussian-derivative filter bank in front of the CNN (``make_model("cnn", filtered=True)``)
  on :func:`~hcgym.synthesis.ecg.beat_dataset` beats (Kachuee cuts, 187 samples at 125 Hz, 17 % abnormal of every
  abnormal kind), stationary noise at an SNR drawn per person in ``snr_db``. Training people ``0 ..
  train_people - 1`` and held-out people ``HELD_OUT_PEOPLE + 0 .. test_people - 1``, both of data seed ``seed``:
  beat-set people are keyed ``(seed, 17, person)``, so the two groups are different people.
* **Rhythm model**: an NBoF-family network (``variant``, 1 head, ``d`` 128) on
  :func:`~hcgym.synthesis.ecg.rhythm_dataset` segments of ``seconds`` at 100 Hz (the four CinC 2017 classes in
  equal shares; normal, AF and other with stationary noise at an SNR in ``snr_db``), each centred on its median and
  scaled to unit standard deviation (:func:`~.sensor.normalise_windows`, as the sensor does). Training segments
  from data seed ``seed``, held-out ones from ``seed + 1``: every segment is its own person keyed ``(seed, 23,
  segment)``. The rhythm set's people rest or walk (60-115 bpm); so that running hearts (130-165 bpm) are no
  stranger, ``stretch_share`` of the training segments are drawn ``max_hr / 60`` times as long and a piece of
  ``stretch x seconds`` is compressed in time to ``seconds`` (linear interpolation), ``stretch`` uniform between 1
  and ``max_hr`` over the segment's mean heart rate: every rate, wave and interval ``stretch`` times faster, the
  heart rates spread up to ``max_hr``. Without it the normal windows of running wearers were read as AF
  (simulated streams, 10 s windows at 130-165 bpm: 0 of 24 right).

Evaluation draws never meet these people: streams (:func:`~hcgym.synthesis.ecg.ecg_stream`, the worlds' wearable
ECGs) key their person ``(seed, 31)``, another generator key than any beat-set (17) or rhythm-set (23) person.

Both train with Adam (:func:`~.training.fit`, seeded batches); the held-out scores are
:func:`~.training.scores` (binary: of the abnormal class; rhythm: macro means). Weights and a provenance file
(command, seeds, data settings, per-epoch history, held-out metrics, seconds) are written for each model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError

#: First person id of the beat model's held-out people.
HELD_OUT_PEOPLE = 100_000


@dataclass(frozen=True)
class BeatSettings:
    """The beat model's data and training (module docstring)."""

    train_people: int = 100
    test_people: int = 20
    beats_per_person: int = 200
    snr_db: tuple[float, float] = (5.0, 30.0)
    backbone: str = "cnn"
    filtered: bool = True
    epochs: int = 12
    lr: float = 1e-3
    batch: int = 64


@dataclass(frozen=True)
class RhythmSettings:
    """The rhythm model's data and training (module docstring)."""

    variant: str = "tnbof"
    seconds: float = 10.0
    train_count: int = 2400
    test_count: int = 600
    snr_db: tuple[float, float] = (3.0, 30.0)
    stretch_share: float = 0.5
    max_hr: float = 170.0
    codewords: int = 64
    heads: int = 1
    d: int = 128
    epochs: int = 15
    lr: float = 3e-3
    batch: int = 32


#: Seconds-long settings (``--quick``: tests and smoke runs).
QUICK = (BeatSettings(train_people=4, test_people=2, beats_per_person=100, epochs=2),
         RhythmSettings(train_count=48, test_count=24, epochs=2, codewords=16, d=32))


def beat_data(settings: BeatSettings, seed: int, split: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(x (N, 1, 187), y (N,), meta)`` of the beat model's ``train`` or ``test`` people (shuffled from ``seed``)."""
    from hcgym.synthesis.ecg import beat_dataset

    n = settings.train_people if split == "train" else settings.test_people
    first = 0 if split == "train" else HELD_OUT_PEOPLE
    b = beat_dataset(n * settings.beats_per_person, seed, snr_db=settings.snr_db, people=range(first, first + n))
    order = np.random.default_rng([seed, 1 if split == "train" else 2]).permutation(len(b))
    meta = {k: b.meta[k] for k in ("seed", "fs", "length", "snr_db", "abnormal_share", "counts", "truncated")}
    meta["people"] = [first, first + n - 1]
    return b.x[order][:, None], b.y[order], meta


def rhythm_data(settings: RhythmSettings, seed: int, split: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(x (N, 1, L), y (N,), meta)``: rhythm segments of data seed ``seed`` (train, a share compressed in time)
    or ``seed + 1`` (test), normalised as the sensor does."""
    from hcgym.perception.biosignal.sensor import RHYTHM_FS, normalise_windows
    from hcgym.synthesis.ecg import rhythm_dataset

    train = split == "train"
    data_seed = seed if train else seed + 1
    count = settings.train_count if train else settings.test_count
    longest = settings.max_hr / 60.0 if train and settings.stretch_share > 0 else 1.0
    r = rhythm_dataset(count, data_seed, fs=RHYTHM_FS, seconds=settings.seconds * longest, snr_db=settings.snr_db)
    n = int(round(settings.seconds * RHYTHM_FS))
    x = r.x[:, :n].astype(np.float64)
    stretch = np.ones(count)
    if longest > 1.0:
        rng = np.random.default_rng([seed, 3])
        top = np.maximum(settings.max_hr / r.meta["hr"], 1.0)
        stretch = np.where(rng.random(count) < settings.stretch_share, rng.uniform(1.0, top), 1.0)
        for i in np.flatnonzero(stretch > 1.0):
            x[i] = np.interp(np.arange(n) * stretch[i], np.arange(r.x.shape[1]), r.x[i])
    meta = {"seed": data_seed, "fs": RHYTHM_FS, "seconds": settings.seconds, "snr_db": list(settings.snr_db),
            "count": count, "class_counts": np.bincount(r.y, minlength=len(r.meta["classes"])).tolist(),
            "stretched": int(np.sum(stretch > 1.0)), "mean_hr_bpm": round(float(np.mean(r.meta["hr"] * stretch)), 1)}
    return normalise_windows(x)[:, None], r.y, meta


def _train(model: Any, data: tuple, held: tuple, settings: Any, seed: int,
           log: Callable[[str], None], name: str) -> tuple[dict[str, Any], float]:
    import torch

    from hcgym.perception.biosignal.training import fit, predict_proba, scores

    t0 = time.time()
    torch.set_num_threads(1)
    history = fit(model, data[0], data[1], epochs=settings.epochs, lr=settings.lr, batch=settings.batch, seed=seed,
                  progress=lambda e, row: log(f"[{name}] epoch {e}: loss {row['loss']:.4f}"))["history"]
    held_scores = {k: round(v, 4) for k, v in scores(held[1], predict_proba(model.eval(), held[0])).items()}
    return {"history": [{k: round(v, 5) for k, v in h.items()} for h in history], "held_out": held_scores}, \
        time.time() - t0


def train_beat_model(settings: BeatSettings, seed: int, log: Callable[[str], None] = print) -> tuple[Any, dict]:
    """The beat model trained from ``seed`` and its report (data, history, held-out scores, seconds)."""
    import torch

    from hcgym.perception.biosignal.backbones import count_parameters
    from hcgym.perception.biosignal.sensor import BEAT_KIND, build_series_model
    from hcgym.synthesis.ecg import BEAT_CLASSES

    config = {"backbone": settings.backbone, "filtered": settings.filtered, "length": 187, "fs": 125,
              "labels": list(BEAT_CLASSES)}
    train, test = beat_data(settings, seed, "train"), beat_data(settings, seed, "test")
    torch.manual_seed(seed)
    model = build_series_model(BEAT_KIND, config)
    result, seconds = _train(model, train, test, settings, seed, log, "beat")
    report = {"config": config, "settings": asdict(settings), "data": {"train": train[2], "held_out": test[2]},
              "parameters": count_parameters(model), "seconds": round(seconds, 1), **result}
    return model, report


def train_rhythm_model(settings: RhythmSettings, seed: int, log: Callable[[str], None] = print) -> tuple[Any, dict]:
    """The rhythm model trained from ``seed`` and its report."""
    from hcgym.perception.biosignal.backbones import count_parameters
    from hcgym.perception.biosignal.sensor import RHYTHM_FS, RHYTHM_KIND, build_series_model
    from hcgym.synthesis.ecg import RHYTHMS

    length = int(round(settings.seconds * RHYTHM_FS))
    config = {"variant": settings.variant, "length": length, "fs": RHYTHM_FS, "labels": list(RHYTHMS),
              "nbof": {"codewords": settings.codewords, "heads": settings.heads, "d": settings.d, "seed": seed}}
    train, test = rhythm_data(settings, seed, "train"), rhythm_data(settings, seed, "test")
    model = build_series_model(RHYTHM_KIND, config)
    result, seconds = _train(model, train, test, settings, seed, log, "rhythm")
    report = {"config": config, "settings": asdict(settings), "data": {"train": train[2], "held_out": test[2]},
              "parameters": count_parameters(model), "seconds": round(seconds, 1), **result}
    return model, report


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError("--seed", f"expected a non-negative integer, got {seed!r}")
    return int(seed)


def model_files(model: Any, kind: str, report: dict[str, Any], stem: str, command: str) -> dict[str, bytes]:
    """``{stem.pt, PROVENANCE_<stem>.json}``: the weights (:func:`~.sensor.save_series_model`) and the report."""
    import hashlib
    import tempfile

    from hcgym.perception.biosignal.sensor import save_series_model

    with tempfile.TemporaryDirectory(prefix="hcgym-ecg-") as tmp:
        path = save_series_model(model, kind, report["config"], Path(tmp) / f"{stem}.pt",
                                 {"held_out": report["held_out"], "seed": report["seed"]})
        weights = path.read_bytes()
    provenance = {"command": command, "written": time.strftime("%Y-%m-%d %H:%M:%S"), "file": f"{stem}.pt",
                  "bytes": len(weights), "sha256": hashlib.sha256(weights).hexdigest(), **report}
    return {f"{stem}.pt": weights, f"PROVENANCE_{stem}.json": json.dumps(provenance, indent=1) + "\n"}


def train_biosignal(out: str | Path, seed: int = 0, quick: bool = False, command: str = "",
                    beat: BeatSettings | None = None, rhythm: RhythmSettings | None = None,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train both models from ``seed`` and write ``ecg_beat.pt``, ``ecg_rhythm.pt`` and their provenance files into
    ``out`` (each file atomically, after both models are trained); returns ``{"beat": report, "rhythm": report}``."""
    from hcgym.perception.biosignal.sensor import BEAT_KIND, RHYTHM_KIND
    from hcgym.report import write_files

    seed = check_seed(seed)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError("--out", f"{out} exists and is not a directory")
    beat = beat or (QUICK[0] if quick else BeatSettings())
    rhythm = rhythm or (QUICK[1] if quick else RhythmSettings())
    reports, files = {}, {}
    for name, kind, train in (("beat", BEAT_KIND, lambda: train_beat_model(beat, seed, log)),
                              ("rhythm", RHYTHM_KIND, lambda: train_rhythm_model(rhythm, seed, log))):
        model, report = train()
        report = {"seed": seed, "quick": bool(quick), **report}
        files.update(model_files(model, kind, report, f"ecg_{name}", command))
        reports[name] = report
        log(f"[{name}] held-out {json.dumps(report['held_out'])} ({report['seconds']} s)")
    write_files(out, files)
    return reports


__all__ = ["HELD_OUT_PEOPLE", "QUICK", "BeatSettings", "RhythmSettings", "beat_data", "rhythm_data",
           "train_beat_model", "train_biosignal", "train_rhythm_model"]
