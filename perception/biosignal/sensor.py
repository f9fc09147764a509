"""The wearable-ECG sensor ``biosignal/ecg``: R peaks, every beat classified, and the window's rhythm.

A call takes one window of a single-lead ECG, ``sensor(signal, fs)`` (``signal`` (T,) in mV at ``fs`` Hz, 50-2000
Hz, at least :data:`MIN_SECONDS` long), and returns an :class:`~hcgym.types.EcgReading`:

1. **R peaks** (:func:`detect_r_peaks`, numpy and scipy): a Pan-Tompkins-like detector, band-pass 3-20 Hz
   (2nd-order Butterworth, forward and backward), squared derivative, 120 ms moving-window integration, peaks of
   the integrated energy at least 200 ms apart, kept above an adaptive threshold ``noise + 0.2 (signal - noise)``
   (the running peak levels of Pan and Tompkins), each moved to the largest band-passed value within 80 ms.
   On simulated streams at 250 Hz (10 s windows, 3 people per case) it found every beat of clean-ish sinus, AF
   and abnormal-beat streams (SNR 20 dB), missed 7 of 886 in PVC-rich "other" rhythms at 10 dB and 22 of 830 at
   5 dB; ``neurokit2.ecg_peaks`` (2 ms against 3 ms per window) missed 29 of 966 AF beats, 43 of 833 with 30 %
   abnormal beats and 190 of 830 at 5 dB, so the sensor uses its own.
2. **Beats**, cut as the beat model's training data (Kachuee et al. 2018,
   :func:`hcgym.synthesis.ecg.beat_dataset`): the window resampled to 125 Hz, from each R peak 1.2 x the median
   RR interval of its 10 s chunk, min-max normalised to [0, 1], zero-padded to 187 samples; a beat whose cut
   runs past the window's end is listed but ``"unclassified"``. Each is classified ``normal`` / ``abnormal`` by
   the beat model, the Gaussian-derivative filter bank in front of the CNN (``make_model("cnn", filtered=True)``,
   §5.1).
3. **Rhythm** (``normal``, ``af``, ``other``, ``noisy``, the PhysioNet/CinC 2017 classes) by the rhythm model,
   an NBoF-family network (:func:`~.nbof.make_nbof`) on ``window_s`` seconds at 100 Hz (its input length): the
   window resampled to 100 Hz and cut in consecutive pieces of that length (the last one ending with the
   window), each centred on its median and scaled to unit standard deviation (:func:`normalise_windows`), their
   probabilities averaged; a window shorter than one piece has no rhythm (``None``).
4. **Heart rate**: 60 / the median RR interval of the detected beats.

Models: ``beat_model=`` and ``rhythm_model=`` paths (files of :func:`save_series_model`, or names of files in
:data:`MODELS`); default the shipped :data:`SHIPPED_BEAT` and :data:`SHIPPED_RHYTHM` (``hcgym train biosignal``).
``hcgym export biosignal/ecg --out DIR`` writes both networks as one ONNX graph (inputs ``beats`` (N, 1, 187) and
``window`` (M, 1, L), outputs their logits); the R-peak detection and the cutting stay in numpy, and
:class:`~hcgym.perception.base.OnnxSensor` rebuilds the sensor around the graph.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from hcgym.errors import SpecError
from hcgym.perception.base import Sensor, TorchModel
from hcgym.types import EcgReading

#: Folder of the shipped ECG models.
MODELS = Path(__file__).resolve().parent / "models"
SHIPPED_BEAT = "ecg_beat.pt"
SHIPPED_RHYTHM = "ecg_rhythm.pt"
#: Checkpoint kinds of the two models.
BEAT_KIND, RHYTHM_KIND = "ecg_beat", "ecg_rhythm"
#: Sampling rates (Hz) and beat length of the models' inputs.
BEAT_FS, BEAT_LENGTH, RHYTHM_FS = 125.0, 187, 100.0
#: Kachuee et al.: a beat is this many median RR intervals from its R peak.
WINDOW_RR = 1.2
#: Shortest window a call takes (s), and the accepted sampling rates (Hz).
MIN_SECONDS = 1.0
FS_RANGE = (50.0, 2000.0)
#: The R-peak detector's settings (module docstring).
BAND_HZ = (3.0, 20.0)
INTEGRATION_S = 0.12
REFRACTORY_S = 0.2
REFINE_S = 0.08
THRESHOLD = 0.2
#: Label of a beat whose cut runs past the window's end.
UNCLASSIFIED = "unclassified"
#: Largest probability difference the export's reload check allows.
RELOAD_TOLERANCE = 1e-4


def resample(x: np.ndarray, fs: float, target: float) -> np.ndarray:
    """``x`` (T,) from ``fs`` to ``target`` Hz (polyphase, scipy's default anti-aliasing filter) -> float64;
    ``fs`` is taken as the nearest ratio with a denominator up to 1000."""
    x = np.asarray(x, np.float64)
    if fs == target:
        return x.copy()
    from scipy.signal import resample_poly

    ratio = Fraction(float(target) / float(fs)).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def detect_r_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """(n,) float64 R-peak times (s from the first sample) of an ECG ``signal`` (T,) at ``fs`` Hz (module
    docstring, step 1)."""
    from scipy import signal as ss

    x = np.asarray(signal, np.float64)
    if len(x) < int(fs * 0.5):
        return np.zeros(0)
    sos = ss.butter(2, [BAND_HZ[0], min(BAND_HZ[1], 0.45 * fs)], btype="band", fs=fs, output="sos")
    band = ss.sosfiltfilt(sos, x)
    energy = (np.gradient(band) * fs) ** 2
    width = max(1, int(round(INTEGRATION_S * fs)))
    integrated = np.convolve(energy, np.ones(width) / width, mode="same")
    peaks, _ = ss.find_peaks(integrated, distance=max(1, int(REFRACTORY_S * fs)))
    if not len(peaks):
        return np.zeros(0)
    amps = integrated[peaks]
    ref = float(np.percentile(amps, 90))
    level_signal, level_noise = 0.5 * ref, 0.05 * ref
    kept = []
    for p, a in zip(peaks, amps):
        if a > level_noise + THRESHOLD * (level_signal - level_noise):
            kept.append(p)
            level_signal = 0.125 * a + 0.875 * level_signal
        else:
            level_noise = 0.125 * a + 0.875 * level_noise
    half = int(REFINE_S * fs)
    out: list[int] = []
    for p in kept:
        lo = max(0, p - half)
        q = lo + int(np.argmax(band[lo:p + half + 1]))
        if out and q - out[-1] < REFRACTORY_S * fs:  # two energy peaks on one beat: keep the taller
            if band[q] > band[out[-1]]:
                out[-1] = q
            continue
        if not out or q > out[-1]:
            out.append(q)
    return np.asarray(out, np.float64) / fs


def cut_beats(signal125: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kachuee cuts of the beats at R times ``r`` (n,) s of a 125 Hz ``signal125``: ``(beats (n, 187) float32
    in [0, 1], complete (n,) bool)``, ``complete`` false where 1.2 median RR (of the beat's 10 s chunk) from its R
    runs past the signal's end. Fewer than two beats: no RR, nothing complete."""
    from hcgym.synthesis.ecg.datasets import chunk_median_rr, cut_windows

    n = len(r)
    if n < 2:
        return np.zeros((n, BEAT_LENGTH), np.float32), np.zeros(n, bool)
    want = np.round(WINDOW_RR * chunk_median_rr(r) * BEAT_FS).astype(np.int64)
    starts = np.round(r * BEAT_FS).astype(np.int64)
    complete = starts + want <= len(signal125)
    starts = np.minimum(starts, len(signal125) - 1)
    lengths = np.minimum(np.minimum(want, BEAT_LENGTH), len(signal125) - starts)
    return cut_windows(signal125, starts, lengths, BEAT_LENGTH).astype(np.float32), complete


def normalise_windows(x: np.ndarray) -> np.ndarray:
    """(N, L) windows already at 100 Hz, each centred on its median and scaled to unit standard deviation."""
    x = np.asarray(x, np.float64)
    x = x - np.median(x, axis=1, keepdims=True)
    return (x / (x.std(axis=1, keepdims=True) + 1e-6)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ models
def save_series_model(model: Any, kind: str, config: dict[str, Any], path: str | Path,
                      meta: dict[str, Any] | None = None) -> Path:
    """Write a beat (``kind`` :data:`BEAT_KIND`) or rhythm model (:data:`RHYTHM_KIND`) with its ``config`` (how
    :func:`build_series_model` rebuilds it, with ``labels`` and the input's ``fs``) and JSON ``meta``."""
    from hcgym.perception.action.training import save_model

    return save_model(model, kind, config, path, meta)


def build_series_model(kind: str, config: dict[str, Any]) -> Any:
    """A fresh beat model (``SeriesNet``: ``backbone``, ``filtered``, ``length``, ``labels``) or rhythm model
    (``NBoFNet``: ``variant``, ``length``, ``labels``, ``nbof`` options) of ``config``."""
    if kind == BEAT_KIND:
        from hcgym.perception.biosignal.backbones import make_model

        return make_model(config["backbone"], 1, int(config["length"]), len(config["labels"]),
                          bool(config["filtered"]))
    from hcgym.perception.biosignal.nbof import make_nbof

    return make_nbof(config["variant"], 1, int(config["length"]), len(config["labels"]), **config.get("nbof", {}))


def load_series_model(path: str | Path, kind: str, field: str) -> tuple[Any, dict[str, Any]]:
    """``(model in eval mode, checkpoint entries)`` of a :func:`save_series_model` file of ``kind``; a bare file
    name that is not a file here is looked up in :data:`MODELS`."""
    from hcgym.perception.detection.sensor import load_tensors

    path = Path(path)
    if not path.is_file() and path.name == str(path) and (MODELS / path.name).is_file():
        path = MODELS / path.name
    if not path.is_file():
        hint = " (hcgym train biosignal writes it)" if path.parent == MODELS else ""
        raise SpecError(field, f"ECG model not found: {path}{hint}")
    ckpt = load_tensors(path, field, f"{kind} model", "Write ECG models with hcgym train biosignal.")
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        raise SpecError(field, f"{path} is not an {kind} model (kind {ckpt.get('kind') if isinstance(ckpt, dict) else None!r})")
    try:
        model = build_series_model(kind, ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise SpecError(field, f"{path} does not fit its own config ({type(e).__name__}: {e})") from None
    return model.eval(), {k: v for k, v in ckpt.items() if k != "state_dict"}


class EcgNetworks(nn.Module):
    """The two networks as one module: ``(beats (N, 1, 187), window (M, 1, L)) -> (beat logits (N, 2), rhythm
    logits (M, 4))`` (what the ONNX export holds)."""

    def __init__(self, beat: nn.Module, rhythm: nn.Module) -> None:
        super().__init__()
        self.beat, self.rhythm = beat, rhythm

    def forward(self, beats: Tensor, window: Tensor) -> tuple[Tensor, Tensor]:
        return self.beat(beats), self.rhythm(window)


def softmax(z: np.ndarray) -> np.ndarray:
    """(N, C) logits -> (N, C) float64 probabilities (rows sum to 1)."""
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------ the sensor
class EcgSensor(TorchModel, Sensor):
    """``biosignal/ecg``: ``sensor(signal, fs) -> EcgReading`` (module docstring).

    Args:
        beat_model: a beat model file (:func:`save_series_model`, kind :data:`BEAT_KIND`) or the name of one in
            :data:`MODELS`; default :data:`SHIPPED_BEAT`.
        rhythm_model: a rhythm model file (kind :data:`RHYTHM_KIND`); default :data:`SHIPPED_RHYTHM`.
    """

    onnx_input_names = ("beats", "window")
    onnx_output_names = ("beat_logits", "rhythm_logits")

    def __init__(self, beat_model: str | Path | None = None, rhythm_model: str | Path | None = None) -> None:
        beat, beat_meta = load_series_model(beat_model or SHIPPED_BEAT, BEAT_KIND, "beat_model")
        rhythm, rhythm_meta = load_series_model(rhythm_model or SHIPPED_RHYTHM, RHYTHM_KIND, "rhythm_model")
        self._attach(beat_meta["config"]["labels"], rhythm_meta["config"]["labels"],
                     rhythm_meta["config"]["length"])
        self.model = EcgNetworks(beat, rhythm).eval()
        self.name = "biosignal/ecg"

    def _attach(self, beat_labels: Any, rhythm_labels: Any, rhythm_length: Any) -> None:
        for field, labels in (("beat_labels", beat_labels), ("rhythm_labels", rhythm_labels)):
            if not isinstance(labels, (list, tuple)) or len(labels) < 2 or not all(isinstance(c, str) for c in labels):
                raise SpecError(field, f"expected a list of at least two class names, got {labels!r}")
        if isinstance(rhythm_length, bool) or not isinstance(rhythm_length, int) or rhythm_length < 100:
            raise SpecError("rhythm_length", f"expected the rhythm model's input length (>= 100 samples at 100 Hz), "
                                             f"got {rhythm_length!r}")
        self.beat_classes, self.rhythm_classes = tuple(beat_labels), tuple(rhythm_labels)
        self.rhythm_length = rhythm_length

    @property
    def window_s(self) -> float:
        """Seconds of ECG the rhythm model reads (its input length at 100 Hz): the sensor's natural window."""
        return self.rhythm_length / RHYTHM_FS

    # ------------------------------------------------------------------ running
    def __call__(self, signal: Any, fs: Any = None) -> EcgReading:
        """One window: ``signal`` (T,) mV at ``fs`` Hz -> :class:`EcgReading`."""
        return self.process(signal, fs)

    def process(self, signal: Any, fs: Any = None) -> EcgReading:
        x, fs = check_window(signal, fs, MIN_SECONDS)
        beats, complete, windows, r = self.preprocess(x, fs)
        beat_logits, rhythm_logits = self.run_model(*self.pad_inputs(beats, windows))
        return self.postprocess(beat_logits[:len(beats)], rhythm_logits[:len(windows)], r, complete)

    def preprocess(self, x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(beats (n, 1, 187), complete (n,), rhythm windows (m, 1, L), R times (n,) s)`` of one window."""
        r = detect_r_peaks(x, fs)
        beats, complete = cut_beats(resample(x, fs, BEAT_FS), r)
        z = resample(x, fs, RHYTHM_FS)
        n = len(z) // self.rhythm_length  # consecutive pieces, the last one ending with the window
        starts = [k * self.rhythm_length for k in range(n - 1)] + [len(z) - self.rhythm_length] if n else []
        windows = normalise_windows(np.stack([z[s:s + self.rhythm_length] for s in starts])
                                    if starts else np.zeros((0, self.rhythm_length)))[:, None]
        return beats[:, None, :], complete, windows, r

    def pad_inputs(self, beats: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's inputs with at least one row each (a zero row where there is none; its output is
        dropped), float32."""
        if not len(beats):
            beats = np.zeros((1, 1, BEAT_LENGTH), np.float32)
        if not len(windows):
            windows = np.zeros((1, 1, self.rhythm_length), np.float32)
        return np.ascontiguousarray(beats, np.float32), np.ascontiguousarray(windows, np.float32)

    def postprocess(self, beat_logits: np.ndarray, rhythm_logits: np.ndarray, r: np.ndarray,
                    complete: np.ndarray) -> EcgReading:
        """Logits of the beats and the rhythm pieces -> :class:`EcgReading`."""
        p = softmax(beat_logits) if len(beat_logits) else np.zeros((0, len(self.beat_classes)))
        labels = [self.beat_classes[int(i)] if ok else UNCLASSIFIED for i, ok in zip(p.argmax(1), complete)]
        conf = np.where(complete, p.max(1) if len(p) else np.zeros(0), np.nan)
        rhythm, rconf = None, math.nan
        if len(rhythm_logits):
            q = softmax(rhythm_logits).mean(0)
            rhythm, rconf = self.rhythm_classes[int(q.argmax())], float(q.max())
        rr = np.diff(r)
        hr = float(60.0 / np.median(rr)) if len(rr) else math.nan
        return EcgReading(np.asarray(r, np.float64), labels, np.asarray(conf, np.float64), rhythm, rconf, hr)

    # ------------------------------------------------------------------ export (TorchModel)
    def config(self) -> dict[str, Any]:
        return {"beat_labels": list(self.beat_classes), "rhythm_labels": list(self.rhythm_classes),
                "rhythm_length": self.rhythm_length}

    @classmethod
    def from_config(cls, **config: Any) -> EcgSensor:
        """The sensor's numpy pre- and post-processing without torch models (``OnnxSensor`` runs the graph)."""
        unknown = set(config) - {"beat_labels", "rhythm_labels", "rhythm_length"}
        if unknown:
            raise SpecError("config", f"a biosignal/ecg export's config has unknown keys {sorted(unknown)}")
        sensor = cls.__new__(cls)
        sensor._attach(config.get("beat_labels"), config.get("rhythm_labels"), config.get("rhythm_length"))
        sensor.model, sensor.name = None, "biosignal/ecg"
        return sensor

    def example_inputs(self) -> tuple[np.ndarray, ...]:
        return (np.zeros((2, 1, BEAT_LENGTH), np.float32), np.zeros((1, 1, self.rhythm_length), np.float32))

    def onnx_bytes(self) -> bytes:
        """Both networks as one ONNX graph, without the tracer's notes on the models' shape checks."""
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, torch.jit.TracerWarning))
            warnings.filterwarnings("ignore", "Constant folding", UserWarning)  # TNBoF's half-sequence slice
            return super().onnx_bytes()

    def synthetic_window(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """One simulated ECG window (``window_s`` + 2 s at 250 Hz, SNR 15 dB, a rhythm and an abnormal-beat share
        drawn from ``rng``): what the export's checks feed."""
        from hcgym.synthesis.ecg import RHYTHMS, ecg_stream

        seconds = self.window_s + 2.0
        rhythm = str(RHYTHMS[int(rng.integers(len(RHYTHMS)))])
        s = ecg_stream([(0.0, seconds, "rest")], int(rng.integers(0, 2 ** 31)), fs=250, rhythm=rhythm,
                       abnormal_share=float(rng.uniform(0, 0.3)), snr_db=15.0)
        return s.signal, s.fs

    def parity_inputs(self, rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, ...]]:
        """The network inputs (every beat, the rhythm pieces) of ``n`` :meth:`synthetic_window` s."""
        out = []
        for _ in range(n):
            x, fs = self.synthetic_window(rng)
            beats, _, windows, _ = self.preprocess(x, fs)
            out.append(self.pad_inputs(beats, windows))
        return out

    def describe_parity_inputs(self) -> str:
        return (f"the beats and rhythm pieces of simulated {self.window_s + 2:g} s ECG windows at 250 Hz "
                "(every rhythm, 0-30 % abnormal beats, SNR 15 dB)")

    def reload_check(self, exported: Any, rng: np.random.Generator) -> dict[str, Any]:
        """Both sensors on one :meth:`synthetic_window`: the same beats, labels and rhythm, probabilities within
        :data:`RELOAD_TOLERANCE`."""
        x, fs = self.synthetic_window(rng)
        a, b = self(x, fs), exported(x, fs)
        conf = np.nan_to_num(np.abs(a.beat_confidence - b.beat_confidence)) if len(a) == len(b) else np.inf
        worst = float(max(np.max(conf, initial=0.0), abs(np.nan_to_num(a.rhythm_confidence - b.rhythm_confidence))))
        same = (np.array_equal(a.beats_t, b.beats_t) and a.beat_labels == b.beat_labels and a.rhythm == b.rhythm
                and worst <= RELOAD_TOLERANCE)
        return {"same": bool(same), "detail": f"a simulated {len(x) / fs:g} s window: {len(a)} beats and rhythm "
                                              f"{a.rhythm} from both, largest probability difference {worst:.1e}"}


def check_window(signal: Any, fs: Any, min_seconds: float, name: str = "signal", field: str = "fs",
                 fs_range: tuple[float, float] = FS_RANGE) -> tuple[np.ndarray, float]:
    """``(signal as float64 (T,), fs)`` checked: a finite 1-D array of at least ``min_seconds`` at a sampling rate
    ``fs`` in ``fs_range`` Hz; anything else is one :class:`SpecError` (on ``name`` or ``field``)."""
    if isinstance(fs, bool) or not isinstance(fs, (int, float, np.integer, np.floating)) or not (
            fs_range[0] <= float(fs) <= fs_range[1]):
        raise SpecError(field, f"expected the sampling rate in Hz ({fs_range[0]:g}-{fs_range[1]:g}), got {fs!r}")
    x = np.asarray(signal, dtype=np.float64) if isinstance(signal, (np.ndarray, list, tuple)) else None
    if x is None or x.ndim != 1:
        raise SpecError(name, f"expected a 1-D array of samples, got {type(signal).__name__} "
                              f"with shape {getattr(x, 'shape', None)}")
    if len(x) < min_seconds * float(fs):
        raise SpecError(name, f"expected at least {min_seconds:g} s ({int(math.ceil(min_seconds * float(fs)))} "
                              f"samples at {float(fs):g} Hz), got {len(x)} samples")
    if not np.isfinite(x).all():
        raise SpecError(name, "the samples hold NaN or infinite values")
    return x, float(fs)


__all__ = ["BEAT_KIND", "MODELS", "EcgNetworks", "RHYTHM_KIND", "SHIPPED_BEAT", "SHIPPED_RHYTHM", "UNCLASSIFIED", "EcgSensor",
           "build_series_model", "check_window", "cut_beats", "detect_r_peaks", "load_series_model",
           "normalise_windows", "resample", "save_series_model", "softmax"]
