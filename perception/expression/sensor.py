"""The live expression sensor ``expression/pstbln``: every face of a stream, its landmark window, an
expression model with Monte Carlo dropout; per face a label, class probabilities and their uncertainty.

Each call takes the next frame of one stream (a :class:`~hcgym.types.Frame` or an (H, W, 3) uint8 RGB
image) and returns a :class:`~hcgym.types.Classification`: per face ``boxes`` (N, 4) pixels, ``labels`` the
most probable expression, ``scores`` (N, C) the mean softmax probabilities over ``passes`` stochastic
passes (Monte Carlo dropout, 100 by default), ``uncertainty`` ``{"entropy": (N,) predictive entropy of the
mean (nats), "variance": (N, C) variance of each probability over the passes}``; ``passes=0`` runs the
deterministic pass once (dropout off) and gives ``uncertainty=None``. :attr:`ExpressionSensor.track_ids`
names each face's track.

Pipeline, on the frames the model samples:

1. Faces and landmarks of the checkpoint's landmark source (``source``; :mod:`.tracks`): ``mesh51`` (the
   default of the shipped model) or ``mesh`` from MediaPipe Face Mesh, or ``dlib`` (HOG + 68 points, faces
   followed as the training clips' dlib landmarks were); ``source`` may swap ``mesh51`` and ``dlib`` (the
   same 51 points, another detector).
2. Face tracks by box IoU (:class:`~.tracks.FaceTracks`), each with a buffer of its last ``window`` sampled
   frames; frames where its face was not found are filled from the others as the training clips were.
3. Each face seen in the frame whose track holds at least ``min_frames`` frames: the window (a buffer not
   yet full is padded at the front with its first frame, as if the face had held still before it
   appeared) -> the network -> label, probabilities, uncertainty. Faces with shorter tracks are left out of
   the answer (the sensor bench counts them as missed).

Sampling: the checkpoint says at which rate its clips were sampled (``fps``) and how many frames the model
sees (``window``). With ``frame_stride=None`` (default) a Frame is sampled when its ``time`` reaches the
next multiple of ``1 / fps`` after the last sampled one (a faster stream is thinned to the model's rate; a
slower one has every frame sampled; times must increase: :meth:`~ExpressionSensor.reset` before another stream);
bare images, which carry no time, are all sampled. ``frame_stride=k``
samples every k-th call instead. ``hold`` (default) answers frames that are not sampled with the latest
answer, ``hold=False`` with an empty one; :attr:`ExpressionSensor.fresh` says whether the answer is new.

Monte Carlo dropout runs the network of :mod:`.explicit_dropout`: the dropout masks are inputs, drawn by the
sensor's numpy generator (``mc_seed``), ``passes`` per face in chunks of :data:`CHUNK`; so the same seed gives
the same answers, and an ONNX export (``hcgym export expression/pstbln --out DIR``, rebuilt by
:class:`~hcgym.perception.base.OnnxSensor`) gives the same answers as PyTorch for the same seed.
:meth:`ExpressionSensor.reset` starts a new stream: tracks, sampling, the dlib faces and the generator.

Checkpoint: ``checkpoint=PATH`` (a :func:`~hcgym.perception.expression.training.save_model` file whose meta
holds ``{"source", "fps", "window", "labels"}``, or the name of a file in ``perception/expression/models``);
default the shipped :data:`SHIPPED`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.base import Sensor, TorchModel, as_image
from hcgym.types import Classification

#: Folder of the shipped expression checkpoints.
MODELS = Path(__file__).resolve().parent / "models"
#: The shipped checkpoint of the sensor (in :data:`MODELS`).
SHIPPED = "expression_stream.pt"
#: Entries a checkpoint's meta must hold for the sensor.
META_KEYS = ("source", "fps", "window", "labels")
#: Stochastic passes per network run (rows of a run: passes x faces).
CHUNK = 25
#: Largest difference of scores, entropy and variance the export's reload check allows.
RELOAD_TOLERANCE = 1e-4


def _integer(value: Any, field: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SpecError(field, f"expected an integer >= {low}, got {value!r}")
    return int(value)


def _fraction(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise SpecError(field, f"expected a number in (0, 1], got {value!r}")
    return float(value)


def entropy(p: np.ndarray) -> np.ndarray:
    """Entropy (nats) of probabilities ``p`` (..., C) over the last axis."""
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)


def checkpoint_path(checkpoint: str | Path | None) -> Path:
    """``checkpoint`` as given (a bare name that is no file here but one in :data:`MODELS`: that file); ``None``:
    the shipped :data:`SHIPPED`, which must exist."""
    if checkpoint is None:
        path = MODELS / SHIPPED
        if not path.is_file():
            raise SpecError("checkpoint", f"the shipped expression checkpoint {path} is missing: train one (a "
                                          f"save_model file with meta {{{', '.join(map(repr, META_KEYS))}}}) and put "
                                          "it there, or pass checkpoint=PATH (--sensor-arg checkpoint=PATH)")
        return path
    path = Path(checkpoint)
    shipped = MODELS / path.name
    return shipped if path.name == str(checkpoint) and not path.is_file() and shipped.is_file() else path


def stream_meta(meta: dict[str, Any], classes: int, points: int, path: Path) -> dict[str, Any]:
    """The checkpoint's ``source``, ``fps``, ``window`` and ``labels``, checked against the network."""
    from hcgym.perception.expression.tracks import SOURCE_POINTS

    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise SpecError("checkpoint", f"{path} lacks {', '.join(missing)} in its meta: the sensor needs "
                                      f"{{{', '.join(map(repr, META_KEYS))}}} (save_model(..., meta=...))")
    labels, source, fps, window = meta["labels"], meta["source"], meta["fps"], meta["window"]
    if not isinstance(labels, list) or len(labels) != classes:
        raise SpecError("checkpoint", f"{path}: 'labels' must name the network's {classes} classes, got {labels!r}")
    if SOURCE_POINTS.get(source) != points:
        raise SpecError("checkpoint", f"{path}: landmark source {source!r} does not fit a network on {points} points "
                                      f"(sources: {', '.join(f'{k} ({v})' for k, v in SOURCE_POINTS.items())})")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise SpecError("checkpoint", f"{path}: 'fps' must be a positive number, got {fps!r}")
    return {"labels": [str(c) for c in labels], "model_source": source, "fps": float(fps),
            "window": _integer(window, "checkpoint.window", 1)}


class ExpressionSensor(TorchModel, Sensor):
    """``expression/pstbln``: facial expressions of every face in a stream (see the module docstring).

    Args:
        checkpoint: an expression checkpoint with the stream meta, or the name of a shipped one (default
            :data:`SHIPPED`).
        passes: Monte Carlo dropout passes per face (0: one deterministic pass, no uncertainty).
        mc_seed: seed of the dropout masks (restarted by :meth:`reset`).
        source: landmark source (default: the checkpoint's); ``mesh51`` and ``dlib`` may replace each other.
        frame_stride: sample every k-th call (``None``: by the frames' time, at the checkpoint's fps).
        hold: answer frames that are not sampled with the latest answer.
        min_frames: frames a track needs before its face is classified (at least 1).
        max_missing: sampled frames in a row a track survives without its face (below the window).
        match_iou: IoU linking a face to a track (and a dlib detection to a followed face).
        max_faces: most faces per frame.
        min_detection_confidence: Face Mesh detection threshold.
        dlib_threshold, detect_every: the dlib source's HOG threshold and its detection interval in sampled frames.
    """

    registry_id = "expression/pstbln"
    onnx_output_names = ("probabilities",)

    def __init__(self, checkpoint: str | Path | None = None, passes: int = 100, mc_seed: int = 0,
                 source: str | None = None, frame_stride: int | None = None, hold: bool = True, min_frames: int = 2,
                 max_missing: int = 4, match_iou: float = 0.3, max_faces: int = 4,
                 min_detection_confidence: float = 0.5, dlib_threshold: float = -0.8, detect_every: int = 8) -> None:
        from hcgym.perception.expression.explicit_dropout import ExplicitDropoutNet
        from hcgym.perception.expression.training import load_model

        self.name = self.registry_id
        path = checkpoint_path(checkpoint)
        model, meta = load_model(path, "checkpoint")
        stream = stream_meta(meta, model.cfg.num_classes, model.cfg.graph.layout.num_points, path)
        net = ExplicitDropoutNet(model, stream["window"])
        self.checkpoint: Path | None = path
        self.model: Any = net
        self.reference = np.asarray(model.cfg.graph.reference, np.float64)
        self._configure(**stream, points=model.cfg.graph.layout.num_points, mask_shapes=net.mask_shapes,
                        dropout=net.rates, passes=passes, mc_seed=mc_seed, source=source, frame_stride=frame_stride,
                        hold=hold, min_frames=min_frames, max_missing=max_missing, match_iou=match_iou,
                        max_faces=max_faces, min_detection_confidence=min_detection_confidence,
                        dlib_threshold=dlib_threshold, detect_every=detect_every)

    # ------------------------------------------------------------------ settings
    def _configure(self, labels: list[str], model_source: str, fps: float, window: int, points: int,
                   mask_shapes: Any, dropout: Any, passes: int = 100, mc_seed: int = 0, source: str | None = None,
                   frame_stride: int | None = None, hold: bool = True, min_frames: int = 2, max_missing: int = 4,
                   match_iou: float = 0.3, max_faces: int = 4, min_detection_confidence: float = 0.5,
                   dlib_threshold: float = -0.8, detect_every: int = 8) -> None:
        from hcgym.perception.expression.tracks import SOURCE_POINTS, DlibFaces, FaceTracks
        from hcgym.perception.pose.mediapipe import check_confidence

        self.classes = tuple(str(c) for c in labels)
        self.model_source, self.fps, self.window, self.points = str(model_source), float(fps), int(window), int(points)
        self.mask_shapes = tuple(tuple(int(d) for d in s) for s in mask_shapes)
        self.dropout = tuple(float(p) for p in dropout)
        self.onnx_input_names = ("landmarks", *(f"mask{i}" for i in range(len(self.mask_shapes))))
        self.passes, self.mc_seed = _integer(passes, "passes", 0), _integer(mc_seed, "mc_seed", 0)
        source = self.model_source if source is None else source
        swappable = {"mesh51", "dlib"}
        if source not in SOURCE_POINTS:
            raise SpecError("source", f"unknown landmark source {source!r} (allowed: {', '.join(SOURCE_POINTS)})")
        if source != self.model_source and not {source, self.model_source} <= swappable:
            raise SpecError("source", f"the model was trained on {self.model_source!r} landmarks; only mesh51 and "
                                      f"dlib (the same 51 points) may replace each other, got {source!r}")
        self.source = source
        self.frame_stride = None if frame_stride is None else _integer(frame_stride, "frame_stride", 1)
        if not isinstance(hold, (bool, np.bool_)):
            raise SpecError("hold", f"expected true or false, got {hold!r}")
        self.hold = bool(hold)
        self.min_frames = _integer(min_frames, "min_frames", 1)
        self.max_missing = _integer(max_missing, "max_missing", 0)
        self.match_iou = _fraction(match_iou, "match_iou")
        self.max_faces = _integer(max_faces, "max_faces", 1)
        self.min_detection_confidence = check_confidence(min_detection_confidence, "min_detection_confidence")
        if isinstance(dlib_threshold, bool) or not isinstance(dlib_threshold, (int, float)):
            raise SpecError("dlib_threshold", f"expected a number, got {dlib_threshold!r}")
        self.dlib_threshold = float(dlib_threshold)
        self.detect_every = _integer(detect_every, "detect_every", 1)
        self.tracks = FaceTracks(self.window, self.match_iou, self.max_missing)
        self.dlib = DlibFaces(self.dlib_threshold, 1, self.max_faces, self.detect_every, self.match_iou)
        self.reset()

    def settings(self) -> dict[str, Any]:
        """The keyword arguments of the sensor besides the checkpoint."""
        return {"passes": self.passes, "mc_seed": self.mc_seed, "source": self.source, "frame_stride": self.frame_stride,
                "hold": self.hold, "min_frames": self.min_frames, "max_missing": self.max_missing,
                "match_iou": self.match_iou, "max_faces": self.max_faces,
                "min_detection_confidence": self.min_detection_confidence, "dlib_threshold": self.dlib_threshold,
                "detect_every": self.detect_every}

    def reset(self) -> None:
        """Start a new stream: face tracks, sampling, the followed dlib faces and the dropout generator."""
        self.tracks.reset()
        self.dlib.reset()
        self.rng = np.random.default_rng(self.mc_seed)
        self.frames = self.steps = 0
        self._next_time: float | None = None
        self.latest: Classification | None = None
        self.track_ids: list[int] = []
        self.fresh = False

    # ------------------------------------------------------------------ the stream
    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Classification:
        """The next frame of the stream (a :class:`~hcgym.types.Frame`, whose ``time`` drives sampling, or an image)."""
        return self.process(as_image(x), time=getattr(x, "time", None))

    def process(self, image: np.ndarray, time: float | None = None) -> Classification:
        """RGB uint8 ``image`` at ``time`` seconds (``None``: unknown), the next frame of the stream."""
        self.frames += 1
        if not self._sampled(time):
            self.fresh = False
            return self._answer()
        if self.source == "dlib":
            boxes, points = self.dlib(image)
        else:
            from hcgym.perception.expression.tracks import mesh_faces

            boxes, points = mesh_faces(image, self.source, self.max_faces, self.min_detection_confidence)
        return self.feed(boxes, points)

    def _sampled(self, time: float | None) -> bool:
        if self.frame_stride is not None:
            return (self.frames - 1) % self.frame_stride == 0
        if time is None:
            return True
        period = 1.0 / self.fps
        if self._next_time is not None and time < self._next_time - 1e-6 * period:
            return False
        on_grid = self._next_time is not None and time < self._next_time + period
        self._next_time = (self._next_time if on_grid else float(time)) + period
        return True

    def feed(self, boxes: np.ndarray, points: np.ndarray) -> Classification:
        """One sampled frame's faces, bypassing detection: boxes (M, 4) and landmarks (M, V, 2) in pixels."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        points = np.asarray(points, np.float32)
        if points.shape != (len(boxes), self.points, 2):
            raise SpecError("points", f"expected ({len(boxes)}, {self.points}, 2) landmarks, got {points.shape}")
        ids = self.tracks.update(boxes, points)
        ready = [m for m, tid in enumerate(ids) if len(self.tracks[tid]) >= self.min_frames]
        self.steps += 1
        self.fresh = True
        self.track_ids = [ids[m] for m in ready]
        if not ready:
            self.latest = self._empty()
            return self.latest
        scores, uncertainty = self.classify(np.stack([self.tracks[ids[m]].window() for m in ready]))
        labels = [self.classes[int(i)] for i in np.argmax(scores, axis=1)]
        self.latest = Classification(labels, scores, self.classes, boxes[ready], uncertainty)
        return self.latest

    def _empty(self) -> Classification:
        c = len(self.classes)
        unc = None if self.passes == 0 else {"entropy": np.zeros(0), "variance": np.zeros((0, c))}
        return Classification([], np.zeros((0, c)), self.classes, np.zeros((0, 4)), unc)

    def _answer(self) -> Classification:
        if self.latest is not None and self.hold:
            return self.latest
        self.track_ids = []
        return self._empty()

    # ------------------------------------------------------------------ the network
    def classify(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        """Landmark windows (N, window, V, 2) pixels -> (N, C) probabilities and their uncertainty.

        ``passes`` stochastic passes (masks from the sensor's generator, chunks of :data:`CHUNK` passes, pass
        major): the mean probabilities, ``{"entropy", "variance"}``; ``passes=0``: the deterministic pass, ``None``.
        """
        from hcgym.perception.expression.explicit_dropout import draw_masks, ones_masks

        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (self.window, self.points, 2):
            raise SpecError("x", f"expected windows (N, {self.window}, {self.points}, 2), got {x.shape}")
        n = len(x)
        if self.passes == 0:
            return np.asarray(self.run_model(x, *ones_masks(n, self.mask_shapes))[0], np.float64), None
        runs = []
        for start in range(0, self.passes, CHUNK):
            k = min(CHUNK, self.passes - start)
            masks = draw_masks(self.rng, k * n, self.mask_shapes, self.dropout)
            runs.append(np.asarray(self.run_model(np.tile(x, (k, 1, 1, 1)), *masks)[0]).reshape(k, n, -1))
        p = np.concatenate(runs).astype(np.float64)
        mean = p.mean(axis=0)
        return mean, {"entropy": entropy(mean), "variance": p.var(axis=0)}

    # ------------------------------------------------------------------ export (TorchModel)
    def config(self) -> dict[str, Any]:
        """The export's sidecar config: labels, the stream meta, the masks' layout and the settings."""
        return {"labels": list(self.classes), "model_source": self.model_source, "fps": self.fps,
                "window": self.window, "points": self.points, "mask_shapes": [list(s) for s in self.mask_shapes],
                "dropout": list(self.dropout), **self.settings()}

    @classmethod
    def from_config(cls, **config: Any) -> ExpressionSensor:
        """The sensor around an exported network (``OnnxSensor`` replaces :meth:`run_model` with ONNX Runtime)."""
        sensor = cls.__new__(cls)
        sensor.name = cls.registry_id
        sensor.checkpoint = None
        sensor.model = None
        sensor._configure(**config)
        return sensor

    def _torch_only(self) -> Any:
        if self.model is None:
            raise SpecError("sensor", f"{self.name} runs an exported network; exporting needs its checkpoint")
        return self.model

    def _windows(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` landmark windows (n, window, V, 2): the network's reference face at 40-90 px, moving and jittered."""
        ref = self.reference[None, None]
        size = rng.uniform(40, 90, (n, 1, 1, 1))
        centre = rng.uniform(100, 300, (n, 1, 1, 2)) + np.cumsum(rng.normal(0, 1.0, (n, self.window, 1, 2)), axis=1)
        shape = ref + rng.normal(0, 0.03, (n, self.window, self.points, 2))
        return (shape * size + centre).astype(np.float32)

    def example_inputs(self) -> tuple[np.ndarray, ...]:
        from hcgym.perception.expression.explicit_dropout import ones_masks

        self._torch_only()
        return (self._windows(np.random.default_rng(0), 1), *ones_masks(1, self.mask_shapes))

    def parity_inputs(self, rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, ...]]:
        """``n`` network inputs: 2 landmark windows of the reference face (:meth:`_windows`) with stochastic masks,
        every fourth input with the deterministic pass's masks of ones."""
        from hcgym.perception.expression.explicit_dropout import draw_masks, ones_masks

        out = []
        for i in range(n):
            masks = ones_masks(2, self.mask_shapes) if i % 4 == 3 else draw_masks(rng, 2, self.mask_shapes, self.dropout)
            out.append((self._windows(rng, 2), *masks))
        return out

    def describe_parity_inputs(self) -> str:
        return (f"2 landmark windows of {self.window} frames (the reference face, 40-90 px, moving, jittered), "
                f"Bernoulli dropout masks (p {', '.join(f'{p:g}' for p in sorted(set(self.dropout)))}); every fourth "
                "input the deterministic pass (masks of ones)")

    def reload_check(self, exported: Any, rng: np.random.Generator) -> dict[str, Any]:
        """This sensor and ``exported`` on the same 3 landmark windows after a reset (the same seed): the same
        labels, and scores, entropy and variance within :data:`RELOAD_TOLERANCE`."""
        x = self._windows(rng, 3)
        self.reset()
        exported.reset()
        (a, ua), (b, ub) = self.classify(x), exported.classify(x)
        self.reset()
        exported.reset()
        diffs = [np.abs(a - b).max()]
        if ua is not None and ub is not None:
            diffs += [np.abs(ua[k] - ub[k]).max() for k in ("entropy", "variance")]
        worst = float(max(diffs))
        same = bool(np.array_equal(a.argmax(1), b.argmax(1)) and (ua is None) == (ub is None)
                    and worst <= RELOAD_TOLERANCE)
        return {"same": same, "detail": f"3 landmark windows, {self.passes} passes each (mc_seed {self.mc_seed}): max |diff| "
                                        f"of scores, entropy and variance {worst:.1e} (PyTorch vs the reloaded ONNX)"}


__all__ = ["CHUNK", "META_KEYS", "MODELS", "SHIPPED", "ExpressionSensor", "checkpoint_path", "entropy",
           "stream_meta"]
