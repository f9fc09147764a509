"""The signal bench: a wearable-ECG or keyword sensor scored on the signals of a world.

The frame bench (:mod:`hcgym.perception.bench`) scores sensors that take frames; sensors that take a signal (their
:class:`~hcgym.perception.registry.SensorSpec` ``input`` is one of :data:`SIGNAL_INPUTS`) are scored here, on a
world's :class:`~hcgym.synthesis.world_signals.WorldSignals` (every wearer's ECG stream, the robot's microphone
signal, and their ground truth). Results have the frame bench's shape (``config``, ``sensor``, ``task``,
``truth``, ``metrics``, ``primary``, ``breakdown``, ``notes``, ``latency_ms``, ``onnx``, ``records``, and the
``confusion`` matrices), so reports read alike.

**Windows.** A sensor is called on windows of ``window_s`` seconds (the ECG sensor's own length, the rhythm model's
input; 10 s of audio for keywords) stepped by ``window_s - margin_s``; what it reports is kept in the window's
*zone*, the window without ``margin_s / 2`` at each inner edge (the first zone starts at 0, the last ends with the
signal), so zones tile the signal and every answer is taken where the sensor saw context on both sides.

**ECG** (``ecg window``): each wearer's stream, window by window.

* Beats: the detected R peaks of all zones matched one to one to the true R peaks within ``match_s`` (75 ms),
  nearest pairs first. A beat's true label is that of its Kachuee cut, as the beat set labels its windows
  (:func:`beat_truth`): abnormal when the beat is a PVC or has an abnormal form, or when the *next* beat has no P
  wave (``missing_p``: the cut from this R peak holds the next beat's P wave), normal otherwise.
  ``beat_accuracy``: correct labels over those true beats (a missed or unclassified beat is wrong). Beats of
  atrial fibrillation (``af``) have no morphology label (the beat set has none: their missing P wave is the
  rhythm's, scored as the rhythm): they count for the detection (``sensitivity`` and ``ppv``, ``missed`` and
  ``extra`` beats) and the confusion matrix shows what the beat model calls them, but not for ``beat_accuracy``.
* Rhythm: every window against the stream's rhythm, ``noisy`` where the window's SNR (signal against the clean
  ECG) is below :data:`~hcgym.synthesis.ecg.NOISY_SNR_DB`, the rule of the stream's own labelled windows;
  ``rhythm_accuracy`` and the mean absolute heart-rate error (against 60 / the median true RR of the window).
* Breakdowns: by activity level (rest, walk, run: of the beat, of the window's centre) and by person.

**Keywords** (``microphone audio``): the microphone signal, window by window. Each true utterance is matched to at
most one detection overlapping it in time, largest overlaps first; a missed utterance counts wrong.
``accuracy``: correct labels over true utterances; ``detected``; ``extra`` detections and ``false_keywords``
(extra ones labelled a keyword: commands nobody gave). Breakdowns: by talker distance (< 1.5, 1.5-3, > 3 m) and by
the room's RT60 (the world's one; :func:`keyword_sweep` varies distance and RT60).

Latency: per sensor call (one window), median and 90th percentile after one untimed call.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.registry import SensorSpec

#: Sensor inputs scored here -> the task.
SIGNAL_INPUTS = {"ecg window": "ecg", "microphone audio": "keywords"}
#: Breakdown bands of talker distance (m): (low, high, label).
DISTANCE_BANDS = ((0.0, 1.5, "< 1.5 m"), (1.5, 3.0, "1.5-3 m"), (3.0, math.inf, "> 3 m"))
#: Axis titles of the breakdowns.
BREAKDOWN_TITLES = {"activity": "activity level", "person": "person", "distance": "talker distance",
                    "rt60": "room RT60", "talker": "talker"}
#: Default windows (s) of the keyword task, and the margins of both tasks.
KEYWORD_WINDOW_S = 10.0
MARGINS = {"ecg": 3.0, "keywords": 2.0}
TASKS = {"ecg": ("ecg beats and rhythm", "true R peaks and beat labels of each wearer's ECG stream; the stream's "
                                         "rhythm per window (noisy below -3 dB SNR)"),
         "keywords": ("keyword spotting", "the words said in the world: voiced span at the microphone (direct "
                                          "path), label, talker distance")}


def is_signal_sensor(spec: SensorSpec) -> bool:
    """Whether the sensor takes a signal (scored here) rather than a frame."""
    return spec.input in SIGNAL_INPUTS


@dataclass(frozen=True)
class SignalConfig:
    """One signal-bench run: the sensor (``sensor_kwargs``, or ``onnx`` the export to run), the world's signals
    (``world``, ``seed``, ``duration`` s or ``None`` for the world's own), ``window_s`` / ``margin_s`` (``None``: the
    task's; module docstring) and ``match_s`` (R-peak matching tolerance, s)."""

    sensor: str
    world: str = ""
    seed: int = 0
    duration: float | None = None
    sensor_kwargs: dict[str, Any] = field(default_factory=dict)
    onnx: str | None = None
    window_s: float | None = None
    margin_s: float | None = None
    match_s: float = 0.075

    def __post_init__(self) -> None:
        for name in ("window_s", "margin_s", "duration"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf):
                raise SpecError(name, f"expected a positive number of seconds, got {v!r}")
        if not (isinstance(self.match_s, (int, float)) and 0 < self.match_s <= 0.5):
            raise SpecError("match_s", f"expected seconds in (0, 0.5], got {self.match_s!r}")


def make_signal_sensor(config: SignalConfig, spec: SensorSpec) -> Any:
    """The sensor (or the ONNX Runtime sensor of ``config.onnx``), made as the frame bench makes sensors."""
    from hcgym.perception.bench import make_sensor
    from hcgym.perception.bench_base import BenchConfig

    return make_sensor(BenchConfig(sensor=spec.id, sensor_kwargs=dict(config.sensor_kwargs), onnx=config.onnx), spec)


def zones(duration: float, window: float, margin: float) -> list[tuple[float, float, float, float]]:
    """``(window start, window end, zone start, zone end)`` s covering ``[0, duration)`` (module docstring); one
    window (the whole signal) when it is shorter than ``window``."""
    if window <= margin:
        raise SpecError("margin_s", f"the margin ({margin:g} s) must be shorter than the window ({window:g} s)")
    if duration <= window:
        return [(0.0, float(duration), 0.0, float(duration))]
    hop = window - margin
    starts = list(np.arange(0.0, duration - window, hop)) + [duration - window]
    out = []
    for k, s in enumerate(starts):
        z0 = 0.0 if k == 0 else out[-1][3]
        z1 = float(duration) if k == len(starts) - 1 else s + window - margin / 2
        out.append((float(s), float(s + window), float(z0), float(z1)))
    return out


class _Timer:
    """Times sensor calls after one untimed warm-up call."""

    def __init__(self, sensor: Any) -> None:
        self.sensor, self.ms, self.warm = sensor, [], False

    def __call__(self, *args: Any) -> Any:
        if not self.warm:
            self.sensor(*args)
            self.warm = True
        t0 = time.perf_counter()
        out = self.sensor(*args)
        self.ms.append(1000.0 * (time.perf_counter() - t0))
        return out

    def summary(self) -> dict[str, Any] | None:
        lat = np.asarray(self.ms)
        return ({"median": round(float(np.median(lat)), 3), "p90": round(float(np.percentile(lat, 90)), 3),
                 "calls": int(lat.size)} if lat.size else None)


def match_nearest(pred: np.ndarray, truth: np.ndarray, tol: float) -> dict[int, int]:
    """``{truth index: pred index}``: one-to-one pairs within ``tol``, nearest pairs first."""
    if not len(pred) or not len(truth):
        return {}
    d = np.abs(np.asarray(truth)[:, None] - np.asarray(pred)[None, :])
    ti, pi = np.nonzero(d <= tol)
    out: dict[int, int] = {}
    used: set[int] = set()
    for k in np.argsort(d[ti, pi], kind="stable"):
        if ti[k] not in out and pi[k] not in used:
            out[int(ti[k])] = int(pi[k])
            used.add(int(pi[k]))
    return out


def _rows(records: list[dict[str, Any]], key: str, labels: list[str], metrics: Any) -> list[dict[str, Any]]:
    rows = []
    for label in labels:
        sub = [r for r in records if r.get(key) == label]
        if sub:
            rows.append({"band": label, "n": sum(r["kind"] in ("beat", "utterance") for r in sub), **metrics(sub)})
    return rows


def _share(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


# ------------------------------------------------------------------ ECG
def beat_truth(labels: np.ndarray, kinds: np.ndarray) -> list[str]:
    """The true label of each beat's Kachuee cut from a stream's beat ``labels`` and ``kinds`` (module docstring):
    ``normal``, ``abnormal``, or ``af`` for beats of atrial fibrillation (no morphology label)."""
    out = []
    for i, (label, kind) in enumerate(zip(labels, kinds)):
        next_kind = kinds[i + 1] if i + 1 < len(kinds) else ""
        if label == "af":
            out.append("af")
        elif label == "pvc" or (kind and kind != "missing_p") or next_kind == "missing_p":
            out.append("abnormal")
        else:
            out.append("normal")
    return out


def ecg_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Beat and rhythm metrics of ``records`` (module docstring)."""
    beats = [r for r in records if r["kind"] == "beat"]
    labelled = [r for r in beats if r["true"] != "af"]
    extra = sum(r["kind"] == "extra" for r in records)
    found = sum(r["predicted"] is not None for r in beats)
    windows = [r for r in records if r["kind"] == "window"]
    hr = [abs(r["heart_rate"] - r["true_heart_rate"]) for r in windows
          if r["heart_rate"] is not None and r["true_heart_rate"] is not None]
    return {"beats": len(beats), "beat_accuracy": _share(sum(r["correct"] for r in labelled), len(labelled)),
            "sensitivity": _share(found, len(beats)), "ppv": _share(found, found + extra),
            "missed": len(beats) - found, "extra": extra, "windows": len(windows),
            "rhythm_accuracy": _share(sum(r["correct"] for r in windows), len(windows)),
            "hr_mae_bpm": round(float(np.mean(hr)), 2) if hr else None}


def _score_stream(name: str, heart: Any, timer: _Timer, window: float, margin: float, tol: float,
                  records: list[dict[str, Any]]) -> None:
    from hcgym.synthesis.ecg import NOISY_SNR_DB
    from hcgym.synthesis.ecg.noise import snr_db_of

    s = heart.stream
    duration = len(s.signal) / s.fs
    times, labels = [], []
    for w0, w1, z0, z1 in zones(duration, window, margin):
        a, b = int(round(w0 * s.fs)), int(round(w1 * s.fs))
        reading = timer(s.signal[a:b], s.fs)
        t = np.asarray(reading.beats_t) + a / s.fs
        keep = (t >= z0) & (t < z1)
        times += t[keep].tolist()
        labels += [lab for lab, k in zip(reading.beat_labels, keep) if k]
        snr = snr_db_of(s.clean[a:b].astype(np.float64), (s.signal[a:b] - s.clean[a:b]).astype(np.float64))
        true = "noisy" if s.meta["rhythm"] == "noisy" or snr < NOISY_SNR_DB else s.meta["rhythm"]
        rr = np.diff(s.beats.times[(s.beats.times >= a / s.fs) & (s.beats.times < b / s.fs)])
        records.append({"kind": "window", "person": name, "start": round(a / s.fs, 3), "end": round(b / s.fs, 3),
                        "activity": heart.level_at((w0 + w1) / 2), "true": true, "predicted": reading.rhythm,
                        "correct": reading.rhythm == true, "snr_db": round(float(snr), 2) if math.isfinite(snr)
                        else None, "heart_rate": None if math.isnan(reading.heart_rate) else
                        round(reading.heart_rate, 2), "true_heart_rate": round(60 / float(np.median(rr)), 2)
                        if len(rr) else None})
    pairs = match_nearest(np.asarray(times), s.beats.times, tol)
    for i, (t, true) in enumerate(zip(s.beats.times, beat_truth(s.beats.labels, s.beats.kinds))):
        j = pairs.get(i)
        pred = None if j is None else labels[j]
        records.append({"kind": "beat", "person": name, "t": round(float(t), 4), "activity": heart.level_at(t),
                        "true": true, "beat_kind": str(s.beats.kinds[i]) or str(s.beats.labels[i]), "predicted": pred,
                        "correct": pred == true, "dt_ms": None if j is None else round(1000 * (times[j] - t), 1)})
    for j in sorted(set(range(len(times))) - set(pairs.values())):
        records.append({"kind": "extra", "person": name, "t": round(times[j], 4),
                        "activity": heart.level_at(times[j]), "predicted": labels[j]})


def _run_ecg(config: SignalConfig, signals: Any, sensor: Any, progress: bool) -> tuple[dict, list, list, dict]:
    from tqdm import tqdm

    from hcgym.perception.bench_classes import confusion

    if not signals.hearts:
        raise SpecError("world", f"world {config.world!r} has nobody wearing a heart monitor (a 'heart:' key): use "
                                 "heart_monitor")
    window = config.window_s or float(getattr(sensor, "window_s", 10.0))
    margin = config.margin_s or MARGINS["ecg"]
    timer, records = _Timer(sensor), []
    for name, heart in tqdm(signals.hearts.items(), desc=f"bench {config.sensor}", disable=not progress, leave=False):
        _score_stream(name, heart, timer, window, margin, config.match_s, records)
    beats = [r for r in records if r["kind"] == "beat"]
    windows = [r for r in records if r["kind"] == "window"]
    breakdown = {"activity": _rows(records, "activity", ["rest", "walk", "run"], ecg_metrics),
                 "person": _rows(records, "person", list(signals.hearts), ecg_metrics)}
    extra = {"confusion": confusion(beats, ("normal", "abnormal", "af", "unclassified")),
             "rhythm_confusion": confusion(windows, ("normal", "af", "other", "noisy"))}
    notes = [f"{len(signals.hearts)} wearers, windows of {window:g} s stepped by {window - margin:g} s; R peaks "
             f"matched within {1000 * config.match_s:g} ms; beat accuracy over beats with a morphology label (not "
             "AF beats: row af of the confusion matrix)"]
    return ecg_metrics(records), records, notes, {"breakdown": breakdown, **extra, "window_s": window,
                                                   "margin_s": margin, "timer": timer}


# ------------------------------------------------------------------ keywords
def keyword_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Utterance metrics of ``records`` (module docstring)."""
    from hcgym.synthesis.speech import KEYWORDS

    said = [r for r in records if r["kind"] == "utterance"]
    extra = [r for r in records if r["kind"] == "extra"]
    keys = [r for r in said if r["true"] in KEYWORDS]
    return {"utterances": len(said), "accuracy": _share(sum(r["correct"] for r in said), len(said)),
            "keyword_accuracy": _share(sum(r["correct"] for r in keys), len(keys)),
            "detected": _share(sum(r["predicted"] is not None for r in said), len(said)), "extra": len(extra),
            "false_keywords": sum(r["predicted"] in KEYWORDS for r in extra)}


def score_keywords(signals: Any, sensor: Any, window: float, margin: float,
                   timer: _Timer | None = None) -> list[dict[str, Any]]:
    """Records of the keyword sensor on ``signals``' microphone audio: one per true utterance, one per extra
    detection (module docstring)."""
    timer = timer or _Timer(sensor)
    rate, starts, ends, labels, confs = signals.sample_rate, [], [], [], []
    for w0, w1, z0, z1 in zones(signals.duration, window, margin):
        r = timer(signals.audio_window(w0, w1), rate)
        centre = (np.asarray(r.starts) + np.asarray(r.ends)) / 2 + w0
        for k in np.flatnonzero((centre >= z0) & (centre < z1)):
            starts.append(float(r.starts[k] + w0))
            ends.append(float(r.ends[k] + w0))
            labels.append(r.labels[k])
            confs.append(float(r.confidences[k]))
    rt60 = signals.room.get("rt60_measured")
    band = f"{rt60:.2f} s" if rt60 is not None else "-"
    said = signals.utterances
    overlap = np.array([[min(u.end, e) - max(u.start, s) for s, e in zip(starts, ends)] for u in said]).reshape(
        len(said), len(starts))
    pairs: dict[int, int] = {}
    for k in np.argsort(-overlap, axis=None, kind="stable"):
        i, j = divmod(int(k), len(starts))
        if overlap[i, j] <= 0:
            break
        if i not in pairs and j not in pairs.values():
            pairs[i] = j
    records: list[dict[str, Any]] = []
    for i, u in enumerate(said):
        j = pairs.get(i)
        records.append({"kind": "utterance", "talker": u.human, "word": u.word, "true": u.label,
                        "start": round(u.start, 3), "end": round(u.end, 3), "distance": round(u.distance, 3),
                        "band": next(lab for lo, hi, lab in DISTANCE_BANDS if lo <= u.distance < hi), "rt60": band,
                        "predicted": None if j is None else labels[j],
                        "confidence": None if j is None else round(confs[j], 4), "correct": j is not None and
                        labels[j] == u.label})
    for j in sorted(set(range(len(starts))) - set(pairs.values())):
        records.append({"kind": "extra", "start": round(starts[j], 3), "end": round(ends[j], 3), "rt60": band,
                        "predicted": labels[j], "confidence": round(confs[j], 4)})
    return records


def _run_keywords(config: SignalConfig, signals: Any, sensor: Any, progress: bool) -> tuple[dict, list, list, dict]:
    from hcgym.perception.bench_classes import confusion

    if signals.audio is None or not signals.utterances:
        raise SpecError("world", f"world {config.world!r} has nobody saying anything (a 'say:' key) or no robot "
                                 "microphone: use voice_commands")
    window = config.window_s or KEYWORD_WINDOW_S
    margin = config.margin_s or MARGINS["keywords"]
    timer = _Timer(sensor)
    records = score_keywords(signals, sensor, window, margin, timer)
    said = [r for r in records if r["kind"] == "utterance"]
    breakdown = {"distance": _rows(said, "band", [b[2] for b in DISTANCE_BANDS], keyword_metrics),
                 "rt60": _rows(records, "rt60", sorted({r["rt60"] for r in records}), keyword_metrics),
                 "talker": _rows(said, "talker", sorted({r["talker"] for r in said}), keyword_metrics)}
    room = signals.room
    notes = [f"{len(said)} utterances; audio windows of {window:g} s stepped by {window - margin:g} s; room RT60 "
             f"{room.get('rt60_measured') or 0:.2f} s measured (target {room.get('rt60')}), noise "
             f"{room.get('noise_db')} dB"]
    classes = list(getattr(sensor, "classes", ()))
    return keyword_metrics(records), records, notes, {"breakdown": breakdown, "confusion": confusion(said, classes),
                                                      "window_s": window, "margin_s": margin, "timer": timer}


# ------------------------------------------------------------------ the protocol
def run(config: SignalConfig, signals: Any, sensor: Any = None, spec: SensorSpec | None = None,
        progress: bool = True) -> dict[str, Any]:
    """Score the sensor of ``config`` on ``signals`` (a :class:`~hcgym.synthesis.world_signals.WorldSignals`);
    results shaped as the frame bench's (module docstring). Latency varies between runs; every other key is a
    function of the signals."""
    from hcgym.perception.registry import spec as spec_of

    spec = spec or spec_of(config.sensor)
    if not is_signal_sensor(spec):
        raise SpecError("sensor", f"{spec.id} takes {spec.input!r}, not a signal ({', '.join(SIGNAL_INPUTS)}): score "
                                  "it with the frame bench")
    task = SIGNAL_INPUTS[spec.input]
    sensor = sensor if sensor is not None else make_signal_sensor(config, spec)
    metrics, records, notes, extra = (_run_ecg if task == "ecg" else _run_keywords)(config, signals, sensor, progress)
    timer = extra.pop("timer")
    onnx = None
    if config.onnx is not None:
        onnx = {"path": str(config.onnx), "sensor": spec.id, "fingerprint": getattr(sensor, "fingerprint", None)}
        notes.append(f"ran the ONNX Runtime export {config.onnx} of {spec.id} (not the PyTorch sensor)")
    primary = ("beat_accuracy", "beat accuracy") if task == "ecg" else ("accuracy", "utterance accuracy")
    return {"config": {**asdict(config), "window_s": extra.pop("window_s"), "margin_s": extra.pop("margin_s"),
                       "duration": signals.duration}, "sensor": spec.as_dict(), "task": TASKS[task][0],
            "truth": TASKS[task][1], "metrics": metrics, "primary": primary[0], "primary_label": primary[1],
            "notes": notes, "latency_ms": timer.summary(), "onnx": onnx, **extra, "records": records}


def keyword_sweep(world: Any, sensor: Any, *, distance_scales: Any = (0.5, 1.0, 2.0), rt60s: Any = (0.2, 0.5, 0.9),
                  seed: int = 0, duration: float | None = None, window_s: float = KEYWORD_WINDOW_S,
                  progress: bool = True) -> dict[str, Any]:
    """Keyword accuracy against talker distance and reverberation: ``world``'s signals made again for every
    ``distance_scale`` (every talker's horizontal distance from the microphone multiplied) and ``rt60`` (s), the
    keyword ``sensor`` scored on each. Returns ``{"world", "seed", "rows": [{distance_scale, rt60, rt60_measured,
    mean_distance, **keyword_metrics, by_distance: rows}]}``."""
    from tqdm import tqdm

    from hcgym.synthesis.world_signals import world_signals

    grid = [(float(d), float(r)) for r in rt60s for d in distance_scales]
    if not grid:
        raise SpecError("sweep", "give at least one distance scale and one RT60")
    rows = []
    for d, r in tqdm(grid, desc="keyword sweep", disable=not progress, leave=False):
        signals = world_signals(world, seed=seed, duration=duration, rt60=r, distance_scale=d)
        records = score_keywords(signals, sensor, window_s, MARGINS["keywords"])
        said = [x for x in records if x["kind"] == "utterance"]
        rows.append({"distance_scale": d, "rt60": r, "rt60_measured": round(float(signals.room["rt60_measured"]), 3),
                     "mean_distance": round(float(np.mean([x["distance"] for x in said])), 3), **keyword_metrics(records),
                     "by_distance": _rows(said, "band", [b[2] for b in DISTANCE_BANDS], keyword_metrics)})
    name = world if isinstance(world, str) else getattr(world, "name", str(world))
    return {"world": str(name), "seed": seed, "sensor": getattr(sensor, "name", None), "rows": rows}


__all__ = ["DISTANCE_BANDS", "SIGNAL_INPUTS", "SignalConfig", "beat_truth", "ecg_metrics", "is_signal_sensor",
           "keyword_metrics", "keyword_sweep", "make_signal_sensor", "match_nearest", "run", "score_keywords", "zones"]
