"""``hcgym evaluate speech``: the Self-ONN seed study of §5.2 (Table 25) scored on clips of fresh test speakers,
and its accuracy against the talker's distance and the room's reverberation.

* **Table 25**: every model of a study bundle (:mod:`.study`, ``hcgym train speech``) scores ``count`` keyword
  clips drawn fresh from :data:`EVAL_SEED_BASE` + ``seed`` (:func:`~hcgym.synthesis.speech.keyword_dataset`,
  ``split="test"``: voices never heard in training; the bundle's data seed must differ, so these are not the
  clips the study scored itself). Per configuration (variant): accuracy mean ± std over the seeds, MACs,
  parameters, Self-ONN power products; the orderings E >= A and F < A (means), the MAC ratio E/A and the paired
  per-seed differences E - A and F - A.
* **by_distance**: the first ``distance_count`` speech clips of the same set (keywords and unknown words, same
  words, speakers and onsets) made again dry (no room, no noise), each heard in one shoebox room (10 x 7 x 3 m,
  microphone 1.2 m high, talker's mouth 1.6 m high) at every ``distances`` x ``rt60s``: one simulated impulse
  response per cell (cut 0.5 ms before the direct sound), convolved with every clip, plus pink ambient noise
  at a fixed level (``snr_1m_db`` below the direct sound of a talker at 1 m, which falls as 1/r; the same noise
  in every cell), the mix scaled to -6 dBFS peak. Scored by the models of ``distance_configs`` (every seed).

``results.json``: ``{"configs": {VARIANT: {"acc_mean", "acc_std", "per_seed", "macs", "params",
"power_products"}}, "checks", "by_distance": [{"distance", "rt60", "rt60_measured", "snr_db", "acc": {CONFIG:
mean %}, "acc_per_seed"}], "bundle", "data", "config", "seconds"}``; accuracies in %.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError

#: Clips are drawn from seed ``EVAL_SEED_BASE + seed``: a range no study's data seed is expected to use.
EVAL_SEED_BASE = 7_000_000
#: The bundle ``hcgym evaluate speech`` loads without ``--bundle``.
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "models" / "speech_selfonn_study.pt"
#: The room of ``by_distance`` (m) and the talker's mouth height (m).
ROOM_DIMS = (10.0, 7.0, 3.0)
ROOM_MIC = (2.0, 3.5, 1.2)
MOUTH_HEIGHT = 1.6
WORD_RMS = 0.05  #: RMS of a dry word over its active span before the room
PEAK = 10.0 ** (-6.0 / 20.0)  #: peak of a re-heard clip


@dataclass(frozen=True)
class SpeechEvalConfig:
    """One ``hcgym evaluate speech`` run. ``n_speakers`` / ``rooms``: the test set's speaker pool (``None``: the
    split's default, 24) and its reverberant rooms."""

    seed: int = 0
    bundle: str | None = None
    count: int = 2000
    distance_count: int = 300
    distances: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 6.0)
    rt60s: tuple[float, ...] = (0.2, 0.5, 0.8)
    distance_configs: tuple[str, ...] = ("A", "E")
    snr_1m_db: float = 20.0
    n_speakers: int | None = None
    rooms: int = 24
    quick: bool = False

    def check(self) -> SpeechEvalConfig:
        for name, lo in (("seed", 0), ("count", 1), ("distance_count", 0), ("rooms", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise SpecError(name, f"expected an integer >= {lo}, got {v!r}")
        if self.n_speakers is not None and (isinstance(self.n_speakers, bool) or not isinstance(self.n_speakers, int)
                                            or self.n_speakers < 1):
            raise SpecError("n_speakers", f"expected an integer >= 1, got {self.n_speakers!r}")
        if self.distance_count > self.count:
            raise SpecError("distance_count", f"at most --count ({self.count}) clips, got {self.distance_count}")
        far = ROOM_DIMS[0] - ROOM_MIC[0] - 0.5
        near = abs(MOUTH_HEIGHT - ROOM_MIC[2]) + 0.05
        if not self.distances or any(not near <= float(d) <= far for d in self.distances):
            raise SpecError("distances", f"expected talker distances in [{near:g}, {far:g}] m, got "
                                         f"{list(self.distances)}")
        if not self.rt60s or any(not 0.15 <= float(r) <= 1.5 for r in self.rt60s):
            raise SpecError("rt60s", f"expected reverberation times in [0.15, 1.5] s, got {list(self.rt60s)}")
        if not -20.0 <= float(self.snr_1m_db) <= 80.0:
            raise SpecError("snr_1m_db", f"expected a level in [-20, 80] dB, got {self.snr_1m_db!r}")
        return self

    def bundle_path(self) -> Path:
        """The bundle to evaluate; SpecError naming ``--bundle`` when there is none."""
        path = Path(self.bundle) if self.bundle is not None else DEFAULT_BUNDLE
        if not path.is_file():
            what = f"{path} does not exist" if self.bundle is not None else f"no study bundle at {path}"
            raise SpecError("--bundle", f"{what}; write one with `hcgym train speech --out DIR` and pass "
                                        "--bundle DIR/speech_selfonn_study.pt")
        return path


def quick_config(seed: int = 0) -> SpeechEvalConfig:
    """A seconds-long run: 48 clips of 4 speakers in 2 rooms, 16 of them at two distances in one room."""
    return SpeechEvalConfig(seed=seed, count=48, distance_count=16, distances=(1.0, 4.0), rt60s=(0.3,),
                            n_speakers=4, rooms=2, quick=True)


def with_overrides(config: SpeechEvalConfig, **values: Any) -> SpeechEvalConfig:
    """``config`` with every value that is not ``None`` replaced."""
    return replace(config, **{k: v for k, v in values.items() if v is not None})


def eval_seed(config: SpeechEvalConfig) -> int:
    return EVAL_SEED_BASE + int(config.seed)


def bundle_data_seed(path: Path) -> int | None:
    """The data seed of the study beside ``path`` (its provenance file), ``None`` when there is no provenance."""
    from hcgym.perception.speech.study import BUNDLE

    prov = path.with_name(f"PROVENANCE_{Path(BUNDLE).stem}.json")
    if not prov.is_file():
        return None
    try:
        return int(json.loads(prov.read_text())["data"]["seed"])
    except (ValueError, KeyError, TypeError):
        raise SpecError("--bundle", f"{prov} is not the provenance of a study bundle") from None


def _dataset_kwargs(config: SpeechEvalConfig) -> dict[str, Any]:
    return {"count": int(config.count), "seed": eval_seed(config), "split": "test", "rooms": int(config.rooms),
            "n_speakers": config.n_speakers}


def _scores(models: dict[str, list[tuple[int, Any]]], x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
    """Accuracy (%) of every model: ``{variant: {seed (str): acc}}``."""
    from hcgym.perception.biosignal.training import predict_proba

    return {v: {str(s): round(100.0 * float(np.mean(predict_proba(m, x).argmax(1) == y)), 2) for s, m in runs}
            for v, runs in models.items()}


def table25(bundle: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per variant of ``bundle``: ``acc_mean``, ``acc_std`` (population, over seeds), ``per_seed`` (%), ``macs``
    (``{"fvcore", "ptflops"}``), ``params``, ``power_products`` on MFCCs ``x`` (N, 64, 101), labels ``y``."""
    from hcgym.perception.speech.study import variant_costs

    models: dict[str, list[tuple[int, Any]]] = {}
    for r in bundle["runs"]:
        models.setdefault(r["variant"], []).append((int(r["seed"]), r["model"]))
    accs = _scores(models, x, y)
    memo: dict = {}
    out = {}
    for r in bundle["runs"]:
        v = r["variant"]
        if v in out:
            continue
        a = np.array(list(accs[v].values()), float)
        out[v] = {"config": r["config"], "tanh": bool(r["tanh"]), "acc_mean": round(float(a.mean()), 2),
                  "acc_std": round(float(a.std()), 2), "per_seed": accs[v], **variant_costs(r, r["width"], memo)}
    return out


def _paired(configs: dict[str, dict[str, Any]], a: str, b: str) -> dict[str, Any] | None:
    from hcgym.perception.biosignal.nbof_study import paired_difference

    if a not in configs or b not in configs:
        return None
    seeds = sorted(set(configs[a]["per_seed"]) & set(configs[b]["per_seed"]), key=int)
    if not seeds:
        return None
    d = paired_difference({k: {"per_seed": [configs[k]["per_seed"][s] for s in seeds]} for k in (a, b)}, a, b)
    ci = [round(v, 2) for v in d["ci95"]] if len(seeds) > 1 else None  # no interval from one seed
    return {**d, "mean": round(d["mean"], 2), "std": round(d["std"], 2), "ci95": ci,
            "per_run": [round(v, 2) for v in d["per_run"]], "seeds": [int(s) for s in seeds]}


def checks(configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """E >= A and F < A in mean accuracy, the MAC ratio E/A (fvcore), the paired per-seed differences E - A and
    F - A (points); ``None`` where a configuration is missing."""
    def has(*names: str) -> bool:
        return all(n in configs for n in names)

    mean = {k: c["acc_mean"] for k, c in configs.items()}
    return {"e_ge_a": bool(mean["E"] >= mean["A"]) if has("A", "E") else None,
            "f_lt_a": bool(mean["F"] < mean["A"]) if has("A", "F") else None,
            "mac_ratio_e_a": round(configs["E"]["macs"]["fvcore"] / configs["A"]["macs"]["fvcore"], 3)
            if has("A", "E") else None,
            "e_minus_a": _paired(configs, "E", "A"), "f_minus_a": _paired(configs, "F", "A")}


def dry_speech(config: SpeechEvalConfig, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The first ``distance_count`` speech clips of the evaluation set made again without room or noise:
    ``(audio (n, 16000) float64 with every word's active span at RMS WORD_RMS, labels (n,), meta)``."""
    from hcgym.synthesis.speech import CLASSES, keyword_dataset
    from hcgym.synthesis.speech.noise import rms

    idx = np.flatnonzero(y != CLASSES.index("silence"))[:config.distance_count]
    dry = keyword_dataset(**_dataset_kwargs(config), reverb=False, snr_db=(100.0, 100.0))
    if not np.array_equal(dry.y, y):
        raise AssertionError("the dry clips are not the evaluation clips")
    audio, meta = [], []
    for i in idx:
        m = dry.meta[i]
        start = int(round(m["onset"] * dry.sample_rate))
        span = dry.audio[i, start:start + int(round(m["duration"] * dry.sample_rate))].astype(np.float64)
        clip = np.zeros(dry.audio.shape[1])
        clip[start:start + span.size] = span * (WORD_RMS / max(rms(span), 1e-12))
        audio.append(clip)
        meta.append({**m, "index": int(i)})
    return np.array(audio).reshape(len(idx), dry.audio.shape[1]), y[idx], meta


def room_response(distance: float, rt60: float, sample_rate: int = 16_000) -> tuple[np.ndarray, float]:
    """The impulse response (samples,) from a talker ``distance`` m in front of the microphone of the
    ``by_distance`` room with target ``rt60`` (s), cut 0.5 ms before the direct sound (direct gain 1/r as
    simulated), and its measured RT60 (s, T30)."""
    from pyroomacoustics.experimental import measure_rt60

    from hcgym.synthesis.speech import Room, impulse_response
    from hcgym.synthesis.speech.room import SPEED_OF_SOUND

    room = Room(dims=ROOM_DIMS, mic=ROOM_MIC, rt60=float(rt60))
    flat = float(np.sqrt(distance ** 2 - (MOUTH_HEIGHT - ROOM_MIC[2]) ** 2))
    h = impulse_response(room, (ROOM_MIC[0] + flat, ROOM_MIC[1], MOUTH_HEIGHT), sample_rate=sample_rate)
    direct = int(round(distance / SPEED_OF_SOUND * sample_rate))
    h = h[max(0, direct - sample_rate // 2000):]
    return h, float(measure_rt60(h, fs=sample_rate, decay_db=30))


def by_distance(config: SpeechEvalConfig, models: dict[str, list[tuple[int, Any]]], y: np.ndarray,
                say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Accuracy of ``models`` on the dry speech clips heard at every distance x RT60 (see the module docstring)."""
    from scipy.signal import oaconvolve

    from hcgym.perception.speech.training import mfcc_batches
    from hcgym.synthesis.speech.noise import pink_noise, rms

    audio, labels, meta = dry_speech(config, y)
    if not len(labels):
        return []
    window = audio.shape[1]
    level = WORD_RMS * 10.0 ** (-float(config.snr_1m_db) / 20.0)
    noise = np.array([pink_noise(window, np.random.default_rng([eval_seed(config), 5, m["index"]]))
                      for m in meta])
    noise *= level / np.maximum(np.sqrt(np.mean(noise ** 2, axis=1, keepdims=True)), 1e-12)
    cells = []
    for rt60 in config.rt60s:
        for distance in config.distances:
            h, measured = room_response(float(distance), float(rt60))
            wet = oaconvolve(audio, h[None, :window], axes=1)[:, :window]
            spans = [(int(round(m["onset"] * 16_000)), int(round((m["onset"] + m["duration"]) * 16_000)))
                     for m in meta]
            snr = [20.0 * np.log10(max(rms(w[a:b]), 1e-12) / level) for w, (a, b) in zip(wet, spans)]
            mix = wet + noise
            mix *= PEAK / np.maximum(np.abs(mix).max(axis=1, keepdims=True), 1e-12)
            accs = _scores(models, mfcc_batches(mix.astype(np.float32)), labels)
            cells.append({"distance": float(distance), "rt60": float(rt60), "rt60_measured": round(measured, 3),
                          "snr_db": round(float(np.median(snr)), 2),
                          "acc": {v: round(float(np.mean(list(a.values()))), 2) for v, a in accs.items()},
                          "acc_per_seed": accs})
            say(f"by_distance {distance:g} m, RT60 {rt60:g} s: " + ", ".join(
                f"{v} {a:.1f} %" for v, a in cells[-1]["acc"].items()))
    return cells


def run(config: SpeechEvalConfig, progress: bool = True) -> dict[str, Any]:
    """Run the protocol (see the module docstring); every input is checked before anything is computed."""
    import torch

    from hcgym.perception.speech.study import load_bundle
    from hcgym.perception.speech.training import mfcc_batches
    from hcgym.synthesis.speech import keyword_dataset

    config = config.check()
    path = config.bundle_path()
    data_seed = bundle_data_seed(path)
    if data_seed == eval_seed(config):
        raise SpecError("--seed", f"the study's data seed is {data_seed}, the clips of --seed {config.seed} would be "
                                  "drawn from it too; use another --seed")
    bundle = load_bundle(path)
    variants = {r["variant"] for r in bundle["runs"]}
    missing = [c for c in config.distance_configs if c not in variants]
    if missing:
        raise SpecError("distance_configs", f"{', '.join(missing)} not in the bundle (it holds "
                                            f"{', '.join(sorted(variants))})")
    torch.set_num_threads(1)
    t0 = time.time()

    def say(msg: str) -> None:
        if progress:
            print(f"[speech] {msg} ({time.time() - t0:.0f} s)", flush=True)

    clips = keyword_dataset(**_dataset_kwargs(config))
    x = mfcc_batches(clips.audio)
    say(f"{len(clips)} fresh clips of test speakers (seed {eval_seed(config)}) -> MFCC {x.shape}")
    configs = table25(bundle, x, clips.y)
    seconds = {"table25": round(time.time() - t0, 1)}
    say("Table 25: " + ", ".join(f"{v} {c['acc_mean']:.2f} ± {c['acc_std']:.2f}" for v, c in configs.items()))
    models: dict[str, list[tuple[int, Any]]] = {}
    for r in bundle["runs"]:
        if r["variant"] in config.distance_configs:
            models.setdefault(r["variant"], []).append((int(r["seed"]), r["model"]))
    t1 = time.time()
    cells = by_distance(config, models, clips.y, say)
    seconds["by_distance"] = round(time.time() - t1, 1)
    seconds["total"] = round(time.time() - t0, 1)
    counts = np.bincount(clips.y, minlength=len(clips.classes)).tolist()
    return {"configs": configs, "checks": checks(configs), "by_distance": cells,
            "bundle": {"path": str(path), "data_seed": data_seed, "runs": len(bundle["runs"]),
                       "settings": bundle["settings"]},
            "data": {"seed": eval_seed(config), "split": "test", "clips": len(clips), "class_counts": counts,
                     "classes": list(clips.classes)},
            "config": asdict(config), "seconds": seconds}


__all__ = ["DEFAULT_BUNDLE", "EVAL_SEED_BASE", "SpeechEvalConfig", "by_distance", "checks", "quick_config", "run",
           "table25", "with_overrides"]
