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
  segment)``. The rhythm set's people rest or walk (60-115 bpm) and its noise is stationary, while a wearable's
  wearer also runs (130-165 bpm) with motion artefacts: so ``stream_share`` of the segments of both splits are
  pieces of :func:`~hcgym.synthesis.ecg.ecg_stream` s instead, one stream per piece at one activity level
  (rest, walk or run in equal shares), the four rhythms in equal shares (normal ones with no or up to 20 %
  abnormal beats), SNR in ``snr_db`` plus the level's motion artefacts, rendered at 125 Hz and resampled to
  100 Hz as the sensor resamples a wearable's signal, labelled as the streams label their windows (``noisy``
  below -3 dB SNR). Their people are keyed ``(STREAM_SEEDS + 1,000,000 x data seed + piece, 31)``. Without them
  the normal windows of running wearers were read as AF: on 4 simulated normal streams per rhythm (seeds
  900-903, SNR 15 dB, 10 s windows at 130-165 bpm) 0 of 24 were right; compressing half of the rhythm-set
  segments in time to rates up to 170 bpm gave 2 of 24; with the stream pieces 23 of 24.

Evaluation draws never meet these people: streams (:func:`~hcgym.synthesis.ecg.ecg_stream`) key their person
``(seed, 31)``, another generator key than any beat-set (17) or rhythm-set (23) person, and the training pieces'
stream seeds start at :data:`STREAM_SEEDS` (2**40), far above the small seeds of tests and studies; the worlds'
wearers (:func:`~hcgym.synthesis.world_signals.world_signals`) have 56-bit hashed seeds, so one could meet a
training piece's person with a chance below 1e-10.

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
#: First stream seed of the rhythm model's stream pieces.
STREAM_SEEDS = 2 ** 40


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
    stream_share: float = 0.5
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


def stream_pieces(count: int, data_seed: int, seconds: float, snr_db: tuple[float, float]) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """``(x (count, seconds x 100) mV at 100 Hz, y (count,))``: pieces of one-level ECG streams (module docstring)."""
    from hcgym.perception.biosignal.sensor import RHYTHM_FS, resample
    from hcgym.synthesis.ecg import LEVELS, NOISY_SNR_DB, RHYTHMS, ecg_stream
    from hcgym.synthesis.ecg.noise import snr_db_of

    rng = np.random.default_rng([data_seed, 4])
    n = int(round(seconds * RHYTHM_FS))
    x, y = np.zeros((count, n)), np.zeros(count, np.int64)
    for k in range(count):
        rhythm, level = RHYTHMS[k % len(RHYTHMS)], LEVELS[int(rng.integers(len(LEVELS)))]
        share = float(rng.uniform(0.0, 0.2)) if rhythm == "normal" and rng.random() < 0.5 else 0.0
        s = ecg_stream([(0.0, seconds + 1.0, level)], STREAM_SEEDS + 1_000_000 * data_seed + k, fs=125,
                       rhythm=rhythm, abnormal_share=share, snr_db=float(rng.uniform(*snr_db)))
        x[k] = resample(s.signal, s.fs, RHYTHM_FS)[:n]
        snr = snr_db_of(s.clean.astype(np.float64), (s.signal - s.clean).astype(np.float64))
        y[k] = RHYTHMS.index("noisy" if rhythm == "noisy" or snr < NOISY_SNR_DB else rhythm)
    return x, y


def rhythm_data(settings: RhythmSettings, seed: int, split: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(x (N, 1, L), y (N,), meta)``: rhythm-set segments and stream pieces of data seed ``seed`` (train) or
    ``seed + 1`` (test), shuffled, normalised as the sensor does."""
    from hcgym.perception.biosignal.sensor import RHYTHM_FS, normalise_windows
    from hcgym.synthesis.ecg import RHYTHMS, rhythm_dataset

    data_seed = seed if split == "train" else seed + 1
    count = settings.train_count if split == "train" else settings.test_count
    pieces = int(round(settings.stream_share * count))
    r = rhythm_dataset(count - pieces, data_seed, fs=RHYTHM_FS, seconds=settings.seconds, snr_db=settings.snr_db)
    xs, ys = stream_pieces(pieces, data_seed, settings.seconds, settings.snr_db)
    x, y = np.concatenate([r.x, xs]), np.concatenate([r.y, ys])
    order = np.random.default_rng([data_seed, 5]).permutation(count)
    meta = {"seed": data_seed, "fs": RHYTHM_FS, "seconds": settings.seconds, "snr_db": list(settings.snr_db),
            "rhythm_set": count - pieces, "stream_pieces": pieces,
            "stream_seeds": [STREAM_SEEDS + 1_000_000 * data_seed, STREAM_SEEDS + 1_000_000 * data_seed + pieces - 1],
            "class_counts": np.bincount(y, minlength=len(RHYTHMS)).tolist()}
    return normalise_windows(x[order])[:, None], y[order], meta


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


__all__ = ["HELD_OUT_PEOPLE", "QUICK", "STREAM_SEEDS", "BeatSettings", "RhythmSettings", "beat_data", "rhythm_data", "stream_pieces",
           "train_beat_model", "train_biosignal", "train_rhythm_model"]
