"""The keyword sensor ``speech/keywords``: spoken words in microphone audio, each classified by MatchboxNet.

A call takes audio of any length, ``sensor(audio, sample_rate)`` (``audio`` (T,) in [-1, 1], 8-48 kHz,
resampled to 16 kHz), and returns a :class:`~hcgym.types.KeywordReading`, one row per utterance:

1. **Utterances** (:func:`voiced_spans`): energy-based voice-activity segmentation. The RMS level of 10 ms frames
   (dB re full scale); a frame is voiced when it is ``threshold_db`` (6) above the noise floor (the 10th
   percentile of the levels of the frames above -100 dB, so that zero padding does not count) and at most
   ``dynamic_db`` (20) below the loudest frame within 0.5 s, so that a reverberation tail ends a third of the
   RT60 after its word and an echo is not a word of its own; voiced runs closer than ``merge_gap_s`` (0.12 s)
   are joined (the closure inside "stop"), runs shorter than ``min_speech_s`` (0.08 s) dropped, and runs longer
   than 1 s split at their quietest frame (between 30 and 70 % of the run) until none is. On 90 words of 5 test
   voices at 1, 2 and 4 m in a simulated 8 x 6 x 3 m room (RT60 0.3, 0.6 and 1.0 s; no noise, -50 and -35 dB
   noise), 88 came out as exactly one span overlapping at least half of the word (the other two: quiet words at
   -35 dB noise), with 2 spans too many (RT60 1.0 s).
   Segmenting first, rather than sliding a 1 s window with a stride, gives one answer per word with its span,
   needs no merging of overlapping windows' answers, and runs the network once per word, not 10 times a second;
   the training clips hold one word placed anywhere inside a 1 s window, which a window centred on the word
   matches.
2. **Classification**: each utterance as the 1 s window centred on its voiced span (zero outside the audio)
   through :class:`~.features.MFCC` (64 coefficients, per-utterance normalised) and :class:`~.matchboxnet.
   MatchboxNet` in one graph (:func:`~.matchboxnet.keyword_spotter`): one of the 12 classes (the 10 keywords,
   ``unknown``, ``silence``) and its softmax probability.

Model: ``model=PATH`` (a :func:`save_spotter` file, or the name of one in :data:`MODELS`; default the shipped
:data:`SHIPPED`, ``hcgym train keywords``), or a Self-ONN study bundle of ``hcgym train speech``
(:func:`~.study.load_bundle`) with ``variant=`` (its configuration, ``A``..``F``, ``-notanh``) and ``seed=``
choosing the run (default: the run of ``variant`` with the best validation accuracy). ``hcgym export
speech/keywords --out DIR`` writes MFCC and network as one ONNX graph (input ``audio`` (N, 16000)); the
segmentation stays in numpy and :class:`~hcgym.perception.base.OnnxSensor` rebuilds the sensor around it.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.base import Sensor, TorchModel
from hcgym.perception.biosignal.sensor import check_window, resample, softmax
from hcgym.types import KeywordReading

#: Folder of the shipped keyword models.
MODELS = Path(__file__).resolve().parent / "models"
SHIPPED = "keywords_matchboxnet.pt"
#: Checkpoint kind of :func:`save_spotter` files.
KIND = "keyword_spotter"
#: The network's sampling rate (Hz) and input length (samples: one second).
RATE, WINDOW = 16000, 16000
#: Frame of the voice-activity levels (s), and the sampling rates a call takes (Hz).
FRAME_S = 0.01
RATE_RANGE = (8000.0, 48000.0)
#: Longest voiced run kept whole (s): the network reads one second.
MAX_SPAN_S = 1.0
#: Largest probability difference the export's reload check allows.
RELOAD_TOLERANCE = 1e-4


def frame_levels(audio: np.ndarray, rate: int = RATE) -> np.ndarray:
    """(F,) RMS level (dB re full scale, at least -200) of consecutive 10 ms frames of ``audio``."""
    hop = int(round(FRAME_S * rate))
    n = len(audio) // hop
    frames = np.asarray(audio[:n * hop], np.float64).reshape(n, hop)
    return 10.0 * np.log10(np.maximum(np.mean(frames ** 2, axis=1), 1e-20))


def _split(run: tuple[int, int], level: np.ndarray, longest: int) -> list[tuple[int, int]]:
    a, b = run
    if b - a <= longest:
        return [run]
    lo, hi = a + int(0.3 * (b - a)), a + int(0.7 * (b - a))
    cut = lo + int(np.argmin(level[lo:hi]))
    return _split((a, cut), level, longest) + _split((cut, b), level, longest)


def voiced_spans(audio: np.ndarray, rate: int = RATE, threshold_db: float = 6.0, dynamic_db: float = 20.0,
                 merge_gap_s: float = 0.12, min_speech_s: float = 0.08) -> np.ndarray:
    """(n, 2) float64 ``[start, end)`` seconds of the utterances in ``audio`` (T,) at ``rate`` Hz (module
    docstring, step 1)."""
    from scipy.ndimage import maximum_filter1d

    level = frame_levels(audio, rate)
    if not len(level):
        return np.zeros((0, 2))
    audible = level[level > -100.0]  # digital silence (zero padding) says nothing of the noise floor
    floor = float(np.percentile(audible, 10)) if len(audible) else -100.0
    near = maximum_filter1d(level, size=int(round(1.0 / FRAME_S)) + 1, mode="nearest")  # loudest within 0.5 s
    voiced = (level > floor + threshold_db) & (level > near - dynamic_db)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    merged: list[tuple[int, int]] = []
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
        if merged and a - merged[-1][1] < merge_gap_s / FRAME_S:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    longest = int(round(MAX_SPAN_S / FRAME_S))
    spans = [s for run in merged if run[1] - run[0] >= min_speech_s / FRAME_S for s in _split(run, level, longest)]
    return np.asarray(spans, np.float64).reshape(-1, 2) * FRAME_S


def centred_windows(audio: np.ndarray, spans: np.ndarray, rate: int = RATE, length: int = WINDOW) -> np.ndarray:
    """(n, length) float32: the ``length``-sample window of ``audio`` centred on each span (zero outside)."""
    out = np.zeros((len(spans), length), np.float32)
    for i, (a, b) in enumerate(spans):
        start = int(round((a + b) / 2 * rate)) - length // 2
        lo, hi = max(0, start), min(len(audio), start + length)
        if hi > lo:
            out[i, lo - start:hi - start] = audio[lo:hi]
    return out


# ------------------------------------------------------------------------------------------------ models
def save_spotter(network: Any, config: dict[str, Any], path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write a trained :class:`~.matchboxnet.MatchboxNet` (``config``: ``config`` A-F, ``width``, ``tanh``,
    ``labels``) as a :data:`KIND` checkpoint with JSON ``meta``."""
    from hcgym.perception.action.training import save_model

    return save_model(network, KIND, config, path, meta)


def _spotter(network: Any) -> Any:
    """MFCC (64, normalised) in front of ``network``: the sensor's graph, ``(N, 16000) -> (N, classes)``."""
    from torch import nn

    from hcgym.perception.speech.features import MFCC

    return nn.Sequential(MFCC(normalize=True), network).eval()


def load_spotter(model: str | Path | None = None, variant: str | None = None,
                 seed: int | None = None) -> tuple[Any, tuple[str, ...], dict[str, Any]]:
    """``(MFCC + network in eval mode, class labels, description)`` of a :func:`save_spotter` file or a study
    bundle run (module docstring)."""
    from hcgym.perception.detection.sensor import load_tensors
    from hcgym.perception.speech.matchboxnet import MatchboxNet

    path = Path(model if model is not None else SHIPPED)
    if not path.is_file() and path.name == str(path) and (MODELS / path.name).is_file():
        path = MODELS / path.name
    if not path.is_file():
        hint = " (hcgym train keywords writes it)" if model is None else ""
        raise SpecError("model", f"keyword model not found: {path}{hint}")
    ckpt = load_tensors(path, "model", "keyword model", "Write keyword models with hcgym train keywords.")
    kind = ckpt.get("kind") if isinstance(ckpt, dict) else None
    if kind == "speech_selfonn_study":
        return _bundle_run(path, variant, seed)
    if kind != KIND:
        raise SpecError("model", f"{path} is neither a keyword model ({KIND}) nor a Self-ONN study bundle "
                                 f"(kind {kind!r})")
    if variant is not None or seed is not None:
        raise SpecError("variant", f"{path.name} holds one model: variant= and seed= choose runs of a study bundle")
    c = ckpt["config"]
    try:
        net = MatchboxNet(len(c["labels"]), c["config"], width=int(c["width"]), tanh=bool(c.get("tanh", True)))
        net.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise SpecError("model", f"{path} does not fit its own config ({type(e).__name__}: {e})") from None
    return _spotter(net), tuple(c["labels"]), {"file": path.name, "config": c["config"], "width": int(c["width"])}


def _bundle_run(path: Path, variant: str | None, seed: int | None) -> tuple[Any, tuple[str, ...], dict[str, Any]]:
    from hcgym.perception.speech.study import load_bundle

    bundle = load_bundle(path)
    runs = [r for r in bundle["runs"] if r["variant"] == (variant or "A") and (seed is None or r["seed"] == seed)]
    if not runs:
        have = ", ".join(sorted({f"{r['variant']} seed {r['seed']}" for r in bundle["runs"]}))
        raise SpecError("variant", f"{path.name} has no run of variant {variant or 'A'!r}"
                                   f"{'' if seed is None else f' and seed {seed}'} (it has: {have})")
    run = max(runs, key=lambda r: r["val_acc"])
    return (_spotter(run["model"]), tuple(bundle["classes"]),
            {"file": path.name, "config": run["config"], "variant": run["variant"], "seed": run["seed"],
             "width": run["width"]})


# ------------------------------------------------------------------------------------------------ the sensor
class KeywordSensor(TorchModel, Sensor):
    """``speech/keywords``: ``sensor(audio, sample_rate) -> KeywordReading`` (module docstring).

    Args:
        model: a :func:`save_spotter` file, the name of one in :data:`MODELS`, or a Self-ONN study bundle;
            default :data:`SHIPPED`.
        variant, seed: the run of a study bundle (default: variant ``A``, its best seed by validation accuracy).
        threshold_db, dynamic_db, merge_gap_s, min_speech_s: the segmentation's settings (:func:`voiced_spans`).
    """

    onnx_input_names = ("audio",)
    onnx_output_names = ("logits",)

    def __init__(self, model: str | Path | None = None, variant: str | None = None, seed: int | None = None,
                 threshold_db: float = 6.0, dynamic_db: float = 20.0, merge_gap_s: float = 0.12,
                 min_speech_s: float = 0.08) -> None:
        self.model, labels, self.source = load_spotter(model, variant, seed)
        self._configure(list(labels), threshold_db, dynamic_db, merge_gap_s, min_speech_s)
        self.name = "speech/keywords"

    def _configure(self, labels: Any, threshold_db: Any = 6.0, dynamic_db: Any = 20.0, merge_gap_s: Any = 0.12,
                   min_speech_s: Any = 0.08) -> None:
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(c, str) for c in labels):
            raise SpecError("labels", f"expected a list of at least two class names, got {labels!r}")
        for field, v, hi in (("threshold_db", threshold_db, 100.0), ("dynamic_db", dynamic_db, 200.0),
                             ("merge_gap_s", merge_gap_s, 2.0), ("min_speech_s", min_speech_s, 1.0)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= hi:
                raise SpecError(field, f"expected a number in [0, {hi:g}], got {v!r}")
        self.classes = tuple(labels)
        self.threshold_db, self.dynamic_db = float(threshold_db), float(dynamic_db)
        self.merge_gap_s, self.min_speech_s = float(merge_gap_s), float(min_speech_s)

    # ------------------------------------------------------------------ running
    def __call__(self, audio: Any, sample_rate: Any = RATE) -> KeywordReading:
        """Microphone ``audio`` (T,) in [-1, 1] at ``sample_rate`` Hz -> :class:`KeywordReading`."""
        return self.process(audio, sample_rate)

    def process(self, audio: Any, sample_rate: Any = RATE) -> KeywordReading:
        x, rate = check_window(audio, sample_rate, FRAME_S, "audio", "sample_rate", RATE_RANGE)
        x = resample(x, rate, RATE)
        spans = self.segment(x)
        if not len(spans):
            return KeywordReading(np.zeros(0), np.zeros(0), [], np.zeros(0))
        p = softmax(self.run_model(centred_windows(x, spans))[0])
        return KeywordReading(spans[:, 0].copy(), spans[:, 1].copy(), [self.classes[int(i)] for i in p.argmax(1)],
                              p.max(1))

    def segment(self, audio16k: np.ndarray) -> np.ndarray:
        """(n, 2) voiced spans (s) of 16 kHz audio with this sensor's settings."""
        return voiced_spans(audio16k, RATE, self.threshold_db, self.dynamic_db, self.merge_gap_s, self.min_speech_s)

    def classify_windows(self, windows: np.ndarray) -> np.ndarray:
        """(n, classes) probabilities of 1 s windows (n, 16000) of 16 kHz audio."""
        return softmax(self.run_model(np.ascontiguousarray(windows, np.float32))[0])

    # ------------------------------------------------------------------ export (TorchModel)
    def config(self) -> dict[str, Any]:
        return {"labels": list(self.classes), "threshold_db": self.threshold_db, "dynamic_db": self.dynamic_db,
                "merge_gap_s": self.merge_gap_s, "min_speech_s": self.min_speech_s}

    @classmethod
    def from_config(cls, **config: Any) -> KeywordSensor:
        """The sensor's segmentation and labels without a torch model (``OnnxSensor`` runs the graph)."""
        if "labels" not in config:
            raise SpecError("config", "a speech/keywords export's config lacks labels")
        sensor = cls.__new__(cls)
        sensor._configure(**config)
        sensor.model, sensor.name, sensor.source = None, "speech/keywords", {}
        return sensor

    def example_inputs(self) -> tuple[np.ndarray, ...]:
        return (np.zeros((1, WINDOW), np.float32),)

    def onnx_bytes(self) -> bytes:
        """MFCC and network as one ONNX graph, without the legacy exporter's deprecation notes."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().onnx_bytes()

    def parity_inputs(self, rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, ...]]:
        """``n`` one-second clips of :func:`~hcgym.synthesis.speech.keyword_dataset` (test speakers, no reverb)."""
        from hcgym.synthesis.speech import keyword_dataset

        clips = keyword_dataset(n, int(rng.integers(0, 2 ** 31)), split="test", reverb=False, n_speakers=4)
        return [(clips.audio[i:i + 1],) for i in range(n)]

    def describe_parity_inputs(self) -> str:
        return "1 s keyword-set clips (test speakers: keywords, unknown words, silence; noise at 5-30 dB SNR)"

    def synthetic_audio(self, rng: np.random.Generator) -> np.ndarray:
        """About 3 s of 16 kHz audio: two keywords of a test speaker 1.2 s apart in faint white noise."""
        from hcgym.synthesis.speech import KEYWORDS, speakers, spoken_word

        voice = speakers(int(rng.integers(0, 1000)), 1, "test")[0]
        audio = rng.normal(0.0, 1e-3, 3 * RATE)
        for start in (0.3, 1.5):
            word = spoken_word(KEYWORDS[int(rng.integers(len(KEYWORDS)))], voice, RATE)[:RATE]
            a = int(start * RATE)
            audio[a:a + len(word)] += 0.5 * word / max(float(np.abs(word).max()), 1e-9)
        return audio.astype(np.float32)

    def reload_check(self, exported: Any, rng: np.random.Generator) -> dict[str, Any]:
        """Both sensors on :meth:`synthetic_audio`: the same spans and labels, probabilities within
        :data:`RELOAD_TOLERANCE`."""
        audio = self.synthetic_audio(rng)
        a, b = self(audio, RATE), exported(audio, RATE)
        worst = float(np.max(np.abs(a.confidences - b.confidences), initial=0.0)) if len(a) == len(b) else math.inf
        same = (np.array_equal(a.starts, b.starts) and np.array_equal(a.ends, b.ends) and a.labels == b.labels
                and worst <= RELOAD_TOLERANCE)
        return {"same": bool(same), "detail": f"3 s of two spoken keywords: {len(a)} utterances ({', '.join(a.labels)}) "
                                              f"from both, largest probability difference {worst:.1e}"}


__all__ = ["KIND", "MODELS", "SHIPPED", "KeywordSensor", "centred_windows", "frame_levels", "load_spotter",
           "save_spotter", "voiced_spans"]
