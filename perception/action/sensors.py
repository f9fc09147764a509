"""Continual action sensors: ``action/costgcn`` (skeletons) and ``action/cox3d`` (video), one frame per call.

Each call takes the next frame of one stream (a :class:`~hcgym.types.Frame` or an (H, W, 3) uint8 RGB
image) and returns a :class:`~hcgym.types.Classification` for the whole frame (``boxes=None``): after the
model's delay, ``labels`` ``[label]``, ``scores`` (1, C) softmax probabilities, ``classes`` the checkpoint's
action names; before it, an empty one (no label, scores (0, C)).

* ``action/costgcn``: MediaPipe Pose on the frame (:class:`~hcgym.perception.pose.mediapipe.MediaPipePose`,
  tracking, as the training data was made) -> NTU-25 joints in the camera frame
  (:func:`~hcgym.perception.action.skeleton.camera_joints`, with the frame's intrinsics, or a camera of
  ``hfov_deg`` for a bare image) -> :class:`~hcgym.perception.action.skeleton.StreamNormaliser` (the causal
  version of the training clips' normalisation) -> (3, 25, 1) -> CoST-GCN / CoAGCN ``forward_step``.
  A frame where MediaPipe finds nobody feeds zeros, as the training clips hold zeros there.
* ``action/cox3d``: MediaPipe Pose's landmark box, followed slowly (each step moves the box ``box_smoothing``
  of the way to the new one; kept when the person is lost; the whole frame as a centred square until
  anyone is found) -> a square crop of it times ``margin`` (:func:`~hcgym.perception.action.crop.square_box`)
  resized to the model's size (:func:`~hcgym.perception.action.crop.crop_frames`) -> normalised RGB (3, S, S)
  -> CoX3D ``forward_step``.

Common options: ``frame_stride`` k feeds every k-th frame (the first, then k later, ...) to the model, so a
stream faster than the training clips' 12.5 fps (:data:`TRAINING_FPS`) reaches the model near that rate
(``round(fps / 12.5)``: 2 for 25 or 30 fps, 1 for 12.5 fps); ``hold`` (default) answers frames without a new
prediction (skipped frames, frames between a strided model's predictions) with the latest one, ``hold=False``
with an empty one; :attr:`ContinualActionSensor.fresh` says whether the answer is new. :meth:`reset` starts a
new stream (model state, normalisation, box and MediaPipe's tracking).

Models: ``checkpoint=PATH`` (a :func:`~hcgym.perception.action.training.save_model` file with ``labels``, or
the name of a file in ``perception/action/models``; default the shipped ``action_stgcn_mediapipe.pt`` for
``action/costgcn``, ``action_x3d.pt`` for ``action/cox3d``); ``onnx=PATH`` runs an exported step
(``hcgym export action/costgcn --out DIR``) in ONNX Runtime (:class:`~hcgym.perception.action.onnx_step.OnnxStepRunner`)
with the labels of its sidecar. The export itself is :func:`~hcgym.perception.action.onnx_step.export_step`
(checked against the continual model before it is written); ``OnnxSensor(path)`` and ``hcgym evaluate sensor
ID --onnx FILE`` reload it with the same pre-processing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.base import Sensor, TorchModel, as_image
from hcgym.types import CameraIntrinsics, Classification

#: Folder of the shipped action checkpoints (``action_stgcn_mediapipe.pt``, ``action_stgcn.pt``, ...).
MODELS = Path(__file__).resolve().parent / "models"
#: Frame rate of the training clips (40 frames at 12.5 fps): the rate the models expect their frames at.
TRAINING_FPS = 12.5
#: Frames of a training clip: the clip length CoST-GCN's global pool is built for (default ``clip_len``).
CLIP_FRAMES = 40
#: Largest |score difference| the reload check of an export allows.
RELOAD_TOLERANCE = 1e-4


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecError(field, f"expected a positive integer, got {value!r}")
    return int(value)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


# ---------------------------------------------------------------------------------------------- steppers
class _LibraryStepper:
    """The continual model's own ``forward_step`` (continual-inference; the state lives in the model)."""

    def __init__(self, co_model: Any) -> None:
        self.co_model = co_model

    def step(self, x: np.ndarray) -> np.ndarray | None:
        """(1, *frame_shape) float32 -> (1, C) logits or ``None``."""
        import torch

        with torch.no_grad():
            out = self.co_model.forward_step(torch.from_numpy(x))
        return None if out is None else out.numpy()

    def reset(self) -> None:
        self.co_model.clean_state()


class _ExplicitStepper:
    """An exported step run through the sensor's ``run_model`` (ONNX Runtime inside an ``OnnxSensor``), the
    state kept here; ``step_meta`` is the export's metadata (state shapes, dtypes, initial values)."""

    def __init__(self, sensor: TorchModel, step_meta: dict[str, Any]) -> None:
        self.sensor = sensor
        self.initial = [np.full(e["shape"], e["init"], dtype=np.dtype(e["dtype"])) for e in step_meta["state"]]
        self.reset()

    def step(self, x: np.ndarray) -> np.ndarray | None:
        logits, valid, *state = self.sensor.run_model(x, *self.state)
        self.state = list(state)
        return np.asarray(logits) if bool(valid) else None

    def reset(self) -> None:
        self.state = [a.copy() for a in self.initial]


# ---------------------------------------------------------------------------------------------- the sensor
class ContinualActionSensor(TorchModel, Sensor):
    """A continual action model between per-frame pre-processing and a whole-frame :class:`Classification`.

    Subclasses name their checkpoint kinds and shipped file, convert the clip model (:meth:`continual`) and
    make one model input per frame (:meth:`model_input`). Attributes once made: ``classes`` (C action names),
    ``kind``, ``delay`` (model steps without output), ``frames_per_prediction``, ``frame_shape``; per stream:
    ``frames`` (calls since :meth:`reset`), ``steps`` (model steps), ``last_input`` (the last model input),
    ``found`` (whether MediaPipe found the person in the last stepped frame), ``fresh``.
    """

    #: Checkpoint kinds (:data:`~hcgym.perception.action.training.KINDS`) the sensor runs.
    kinds: tuple[str, ...] = ()
    #: File name of the shipped checkpoint in :data:`MODELS`.
    shipped: str = ""
    #: The ``hcgym train action --model`` that makes the shipped checkpoint (for messages).
    train_hint: str = ""

    # ------------------------------------------------------------------ making
    def _load(self, checkpoint: str | Path | None, onnx: str | Path | None, threads: int) -> None:
        """Attach the model: the checkpoint's continual model, or the ONNX step export ``onnx``."""
        threads = _positive_int(threads, "threads")
        if onnx is not None:
            if checkpoint is not None:
                raise SpecError("onnx", "give checkpoint=PATH or onnx=PATH, not both")
            from hcgym.perception.action.onnx_step import OnnxStepRunner

            config = self._sidecar_config(Path(onnx))
            runner = OnnxStepRunner(onnx, threads=threads)
            self._attach(config["labels"], config["kind"], config["model_config"], runner, runner.meta)
            return
        from hcgym.perception.action.training import load_model

        path = self._checkpoint_path(checkpoint)
        model, meta = load_model(path, "checkpoint")
        if meta.get("kind") not in self.kinds:
            raise SpecError("checkpoint", f"{path} holds a {meta.get('kind')!r} model; {self.name} runs "
                                          f"{' or '.join(self.kinds)} checkpoints")
        labels = meta.get("labels")
        classes = (model.cfg if hasattr(model, "cfg") else model.config).num_classes
        if not isinstance(labels, list) or len(labels) != classes:
            raise SpecError("checkpoint", f"{path} must name its {classes} actions under 'labels' (save_model(..., "
                                          f"meta={{'labels': [...]}}), as hcgym train action does); got {labels!r}")
        self.checkpoint = path
        co_model = self.continual(model, meta).eval()
        self._co_model = co_model
        self._attach(labels, meta["kind"], meta["config"], _LibraryStepper(co_model), None)

    def _checkpoint_path(self, checkpoint: str | Path | None) -> Path:
        """``checkpoint`` as given; a bare file name that is not a file here but one of :data:`MODELS`: that
        shipped file; ``None``: the shipped default, which must exist."""
        if checkpoint is not None:
            path = Path(checkpoint)
            shipped = MODELS / path.name
            return shipped if path.name == str(checkpoint) and not path.is_file() and shipped.is_file() else path
        path = MODELS / self.shipped
        if not path.is_file():
            raise SpecError("checkpoint", f"the shipped checkpoint {path} is missing: train it ({self.train_hint}) "
                                          f"and put it there, or pass checkpoint=PATH (--sensor-arg checkpoint=PATH)")
        return path

    def _sidecar_config(self, onnx: Path) -> dict[str, Any]:
        from hcgym.perception.base import read_sidecar

        sidecar = onnx.with_suffix(onnx.suffix + ".json")
        if not onnx.is_file():
            raise SpecError("onnx", f"ONNX step model not found: {onnx}")
        if not sidecar.is_file():
            raise SpecError("onnx", f"missing {sidecar.name} beside {onnx.name} (hcgym export writes both)")
        sid, cls, config = read_sidecar(sidecar)
        if cls is not type(self) or not {"labels", "kind", "model_config"} <= set(config):
            raise SpecError("onnx", f"{onnx.name} is an export of {sid}, not of a {type(self).__name__}")
        return config

    def _attach(self, labels: list[str], kind: str, model_config: dict[str, Any], stepper: Any,
                step_meta: dict[str, Any] | None) -> None:
        self.classes = tuple(str(c) for c in labels)
        self.kind = kind
        self.model_config = model_config
        self._stepper = stepper
        self._step_meta = step_meta
        if step_meta is not None:
            self.delay, self.frames_per_prediction = int(step_meta["delay"]), int(step_meta["frames_per_prediction"])
            self.frame_shape = tuple(int(d) for d in step_meta["frame_shape"])
        else:
            self.delay, self.frames_per_prediction = int(self._co_model.delay), int(self._co_model.stride[0])
            self.frame_shape = self.model_frame_shape()
        self._step_module: Any = None
        self.step_report: dict[str, Any] | None = None
        self.reset()

    def _options(self, frame_stride: int, hold: bool) -> None:
        self.frame_stride = _positive_int(frame_stride, "frame_stride")
        if not isinstance(hold, (bool, np.bool_)):
            raise SpecError("hold", f"expected true or false, got {hold!r}")
        self.hold = bool(hold)
        self._co_model: Any = None
        self.checkpoint: Path | None = None
        self._pose_sensor: Any = None

    # ------------------------------------------------------------------ subclass hooks
    def continual(self, model: Any, meta: dict[str, Any]) -> Any:
        """The continual version of the checkpoint's clip ``model``."""
        raise NotImplementedError

    def model_frame_shape(self) -> tuple[int, ...]:
        """Shape of one model input frame (no batch axis)."""
        raise NotImplementedError

    def model_input(self, image: np.ndarray, intrinsics: CameraIntrinsics | None) -> np.ndarray:
        """The model input (``frame_shape`` float32) of RGB uint8 ``image``, the next frame of the stream."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """Pre- and post-processing options (keyword arguments of the class; in the export's sidecar)."""
        return {"frame_stride": self.frame_stride, "hold": self.hold}

    def _reset_inputs(self) -> None:
        """Forget what the pre-processing keeps between frames (besides MediaPipe's tracking)."""

    # ------------------------------------------------------------------ running
    def _pose(self) -> Any:
        """The MediaPipe Pose sensor of this stream, made on first use."""
        if self._pose_sensor is None:
            from hcgym.perception.pose.mediapipe import MediaPipePose

            self._pose_sensor = MediaPipePose(min_detection_confidence=self.min_detection_confidence)
        return self._pose_sensor

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Classification:
        """The next frame of the stream (a :class:`~hcgym.types.Frame`, whose intrinsics are used, or an image)."""
        return self.process(as_image(x), intrinsics=getattr(x, "intrinsics", None))

    def process(self, image: np.ndarray, intrinsics: CameraIntrinsics | None = None) -> Classification:
        """RGB uint8 ``image``, the next frame of the stream -> the whole-frame :class:`Classification`."""
        self.frames += 1
        if (self.frames - 1) % self.frame_stride:
            self.fresh = False
            return self._answer()
        return self.feed(self.model_input(image, intrinsics))

    def feed(self, x: np.ndarray) -> Classification:
        """One model step on a prepared input ``x`` (``frame_shape``), bypassing the pre-processing."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != self.frame_shape:
            raise SpecError("input", f"expected a model input of shape {self.frame_shape}, got {x.shape}")
        self.last_input = x
        logits = self._stepper.step(x[None])
        self.steps += 1
        self.fresh = logits is not None
        if logits is not None:
            p = _softmax(logits[0])
            self.latest = Classification([self.classes[int(np.argmax(p))]], p[None], self.classes, None)
        return self._answer()

    def _answer(self) -> Classification:
        if self.latest is not None and (self.fresh or self.hold):
            return self.latest
        return Classification([], np.zeros((0, len(self.classes))), self.classes, None)

    @property
    def warmed_up(self) -> bool:
        """Whether the model has had more than ``delay`` steps since the reset."""
        return self.steps > self.delay

    def reset(self) -> None:
        """Start a new stream: model state, pre-processing state and MediaPipe's tracking."""
        self._stepper.reset()
        self._reset_inputs()
        if self._pose_sensor is not None:
            self._pose_sensor.reset()
        self.frames = self.steps = 0
        self.latest: Classification | None = None
        self.last_input: np.ndarray | None = None
        self.fresh = False
        self.found = False

    def close(self) -> None:
        """Free MediaPipe's graph (a later frame makes a new one)."""
        if self._pose_sensor is not None:
            pose, self._pose_sensor = self._pose_sensor, None
            pose.close()

    # ------------------------------------------------------------------ export (TorchModel)
    def config(self) -> dict[str, Any]:
        """The export's sidecar config: labels, checkpoint kind and model config, the step's metadata, settings."""
        return {"labels": list(self.classes), "kind": self.kind, "model_config": self.model_config,
                "step": self.step_meta(), **self.settings()}

    @classmethod
    def from_config(cls, **config: Any) -> ContinualActionSensor:
        """The sensor around an exported step (``OnnxSensor`` replaces :meth:`run_model` with ONNX Runtime)."""
        labels, kind, model_config, step = (config.pop(k) for k in ("labels", "kind", "model_config", "step"))
        sensor = cls.__new__(cls)
        sensor.name = getattr(cls, "registry_id", cls.__name__)
        sensor._configure(**config)
        sensor._attach(labels, kind, model_config, _ExplicitStepper(sensor, step), step)
        return sensor

    def _configure(self, **settings: Any) -> None:
        raise NotImplementedError

    def _torch_only(self) -> Any:
        if self._co_model is None:
            raise SpecError("sensor", f"{self.name} runs an exported model; exporting needs its checkpoint")
        return self._co_model

    @property
    def model(self) -> Any:
        """The :class:`~hcgym.perception.action.onnx_step.StepModule` of the continual model (explicit state)."""
        if self._step_module is None:
            from hcgym.perception.action.onnx_step import StepModule

            self._step_module = StepModule(self._torch_only(), self.frame_shape)
        return self._step_module

    def step_meta(self) -> dict[str, Any]:
        """The step export's metadata (delay, frames per prediction, frame shape, state layout)."""
        if self._step_meta is None:
            from hcgym.perception.action.onnx_step import step_metadata

            step = self.model
            self._step_meta = step_metadata(step, step.initial_state(1), 1, self.onnx_opset, (1, len(self.classes)))
        return self._step_meta

    def example_inputs(self) -> tuple[np.ndarray, ...]:
        return (np.zeros((1, *self.frame_shape), np.float32), *(t.numpy() for t in self.model.initial_state(1)))

    def onnx_bytes(self) -> bytes:
        """The step model written by :func:`~hcgym.perception.action.onnx_step.export_step` (checked against the
        continual model's ``forward_step`` before it is returned; its report is kept as ``step_report``)."""
        from hcgym.perception.action.onnx_step import export_step

        with tempfile.TemporaryDirectory(prefix="hcgym-action-") as tmp:
            path = Path(tmp) / "step.onnx"
            self.step_report = export_step(self._torch_only(), path, self.onnx_opset, frame_shape=self.frame_shape)
            return path.read_bytes()

    def _parity_steps(self, n: int) -> list[int]:
        total = self.delay + 2 * self.frames_per_prediction + n
        return sorted({int(round(v)) for v in np.linspace(0, total - 1, n)})

    def parity_inputs(self, rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, ...]]:
        """``n`` step inputs: a frame from N(0, 1) and the state after ``t`` such frames, ``t`` spread from 0 to
        past the delay (:meth:`describe_parity_inputs`)."""
        import torch

        self._parity_n = n
        chosen, out = set(self._parity_steps(n)), []
        step, state = self.model, self.model.initial_state(1)
        with torch.no_grad():
            for t in range(max(chosen) + 1):
                frame = rng.standard_normal((1, *self.frame_shape)).astype(np.float32)
                if t in chosen:
                    out.append((frame, *(s.numpy().copy() for s in state)))
                state = list(step(torch.from_numpy(frame), *state)[2:])
        return out

    def describe_parity_inputs(self) -> str:
        steps = self._parity_steps(getattr(self, "_parity_n", 32))
        return (f"a frame from N(0, 1) with the state after t such frames, t from {steps[0]} to {steps[-1]} "
                f"(delay {self.delay})")

    def reload_check(self, exported: Any, rng: np.random.Generator) -> dict[str, Any]:
        """This sensor (the library's ``forward_step``) and ``exported`` stepped on the same random inputs
        past the delay: the same steps predict, the same labels, scores within :data:`RELOAD_TOLERANCE`."""
        frames = rng.standard_normal((self.delay + 2 * self.frames_per_prediction + 3, *self.frame_shape))
        self.reset()
        exported.reset()
        same, worst, predictions = True, 0.0, 0
        for x in frames:
            a, b = self.feed(x), exported.feed(x)
            same &= self.fresh == exported.fresh and a.labels == b.labels
            if self.fresh and exported.fresh:
                predictions += 1
                worst = max(worst, float(np.max(np.abs(a.scores - b.scores))))
        self.reset()
        exported.reset()
        same = bool(same and predictions > 0 and worst <= RELOAD_TOLERANCE)
        return {"same": same, "detail": f"{len(frames)} stepped frames, {predictions} predictions, max |score diff| "
                                        f"{worst:.1e} (PyTorch forward_step vs the reloaded ONNX step)"}


# ---------------------------------------------------------------------------------------------- CoST-GCN
class CoSTGCNSensor(ContinualActionSensor):
    """``action/costgcn``: CoST-GCN (or CoAGCN) on MediaPipe Pose skeletons (see the module docstring).

    Args:
        checkpoint: an ``stgcn`` or ``agcn`` checkpoint, or the name of a shipped one (default: the shipped
            ``action_stgcn_mediapipe.pt``, CoST-GCN trained on MediaPipe skeletons, a prediction every 2 frames;
            also ``action_stgcn.pt``, ``action_stgcn_star.pt`` (CoST-GCN*, one per frame), ``action_agcn.pt``).
        onnx: an exported step of this sensor instead (its sidecar beside it).
        frame_stride: feed every k-th frame to the model.
        hold: answer frames without a new prediction with the latest one.
        clip_len: the clip length the continual global pool is built for (default: the checkpoint's
            ``clip_len`` entry, else :data:`CLIP_FRAMES`, the training clips' 40).
        hfov_deg: horizontal field of view of a bare image's camera (a Frame brings its own intrinsics).
        min_detection_confidence: MediaPipe's person detector threshold.
        threads: ONNX Runtime threads (``onnx`` only).
    """

    kinds = ("stgcn", "agcn")
    shipped = "action_stgcn_mediapipe.pt"
    train_hint = "hcgym train action --model stgcn --skeleton mediapipe"
    registry_id = "action/costgcn"

    def __init__(self, checkpoint: str | Path | None = None, onnx: str | Path | None = None, frame_stride: int = 1,
                 hold: bool = True, clip_len: int | None = None, hfov_deg: float = 60.0,
                 min_detection_confidence: float = 0.5, threads: int = 1) -> None:
        self.name = self.registry_id
        self._configure(frame_stride, hold, hfov_deg, min_detection_confidence)
        self.clip_len = clip_len
        self._load(checkpoint, onnx, threads)

    def _configure(self, frame_stride: int = 1, hold: bool = True, hfov_deg: float = 60.0,
                   min_detection_confidence: float = 0.5) -> None:
        from hcgym.perception.action.skeleton import StreamNormaliser
        from hcgym.perception.pose.mediapipe import check_confidence

        self._options(frame_stride, hold)
        if isinstance(hfov_deg, bool) or not isinstance(hfov_deg, (int, float)) or not 1.0 <= hfov_deg <= 170.0:
            raise SpecError("hfov_deg", f"expected a field of view in degrees, 1-170, got {hfov_deg!r}")
        self.hfov_deg = float(hfov_deg)
        self.min_detection_confidence = check_confidence(min_detection_confidence, "min_detection_confidence")
        self.normaliser = StreamNormaliser()

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "hfov_deg": self.hfov_deg,
                "min_detection_confidence": self.min_detection_confidence}

    def continual(self, model: Any, meta: dict[str, Any]) -> Any:
        from hcgym.perception.action.gcn import to_continual

        cfg = model.cfg
        if cfg.in_channels != 3 or cfg.num_person != 1:
            raise SpecError("checkpoint", f"the sensor feeds one person's 3-D joints; the model takes "
                                          f"{cfg.in_channels} channels and {cfg.num_person} persons")
        clip_len = self.clip_len if self.clip_len is not None else meta.get("clip_len", CLIP_FRAMES)
        return to_continual(model, clip_len)

    def model_frame_shape(self) -> tuple[int, ...]:
        return (3, 25, 1)

    def _reset_inputs(self) -> None:
        self.normaliser.reset()

    def camera(self, image: np.ndarray, intrinsics: CameraIntrinsics | None) -> dict[str, float]:
        """``fx, fy, cx, cy`` of the frame's camera (``hfov_deg`` for a bare image)."""
        if intrinsics is None:
            h, w = image.shape[:2]
            intrinsics = CameraIntrinsics.from_hfov(w, h, self.hfov_deg)
        return {k: float(getattr(intrinsics, k)) for k in ("fx", "fy", "cx", "cy")}

    def model_input(self, image: np.ndarray, intrinsics: CameraIntrinsics | None) -> np.ndarray:
        """(3, 25, 1) float32: the stream-normalised NTU-25 joints of the person MediaPipe finds (zeros: nobody)."""
        from hcgym.perception.action.skeleton import camera_joints

        kp = self._pose().process(image)
        joints = None
        if len(kp) and kp.world is not None:
            joints = camera_joints(kp.world[0], kp.points[0], kp.scores[0], self.camera(image, intrinsics))
        self.found = joints is not None
        return np.ascontiguousarray(self.normaliser(joints).T[:, :, None], dtype=np.float32)


# ---------------------------------------------------------------------------------------------- CoX3D
class CoX3DSensor(ContinualActionSensor):
    """``action/cox3d``: CoX3D on a person crop that follows MediaPipe Pose's landmark box (module docstring).

    Args:
        checkpoint: an ``x3d`` checkpoint, or the name of a shipped one (default: the shipped ``action_x3d.pt``).
        onnx: an exported step of this sensor instead (its sidecar beside it).
        frame_stride: feed every k-th frame to the model.
        hold: answer frames without a new prediction with the latest one.
        pool_size: frames of the continual global pool (default: the clip model's, exact on its clips).
        box_smoothing: in (0, 1]: how far each step moves the crop box towards the new landmark box (1: no lag).
        margin: the crop's side is the box's longer side times this (the training crops: 1.15).
        min_detection_confidence: MediaPipe's person detector threshold.
        threads: ONNX Runtime threads (``onnx`` only).
    """

    kinds = ("x3d",)
    shipped = "action_x3d.pt"
    train_hint = "hcgym train action --model x3d"
    registry_id = "action/cox3d"

    def __init__(self, checkpoint: str | Path | None = None, onnx: str | Path | None = None, frame_stride: int = 1,
                 hold: bool = True, pool_size: int | None = None, box_smoothing: float = 0.1, margin: float | None = None,
                 min_detection_confidence: float = 0.5, threads: int = 1) -> None:
        self.name = self.registry_id
        self._configure(frame_stride, hold, box_smoothing, margin, min_detection_confidence)
        self.pool_size = pool_size
        self._load(checkpoint, onnx, threads)

    def _configure(self, frame_stride: int = 1, hold: bool = True, box_smoothing: float = 0.1,
                   margin: float | None = None, min_detection_confidence: float = 0.5) -> None:
        from hcgym.perception.action.crop import CROP_MARGIN
        from hcgym.perception.pose.mediapipe import check_confidence

        self._options(frame_stride, hold)
        if isinstance(box_smoothing, bool) or not isinstance(box_smoothing, (int, float)) or not 0 < box_smoothing <= 1:
            raise SpecError("box_smoothing", f"expected a number in (0, 1], got {box_smoothing!r}")
        margin = CROP_MARGIN if margin is None else margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 1.0 <= margin <= 4.0:
            raise SpecError("margin", f"expected a number in [1, 4], got {margin!r}")
        self.box_smoothing, self.margin = float(box_smoothing), float(margin)
        self.min_detection_confidence = check_confidence(min_detection_confidence, "min_detection_confidence")
        self.box: np.ndarray | None = None

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "box_smoothing": self.box_smoothing, "margin": self.margin,
                "min_detection_confidence": self.min_detection_confidence}

    def continual(self, model: Any, meta: dict[str, Any]) -> Any:
        from hcgym.perception.action.x3d import to_continual

        return to_continual(model, self.pool_size)

    def model_frame_shape(self) -> tuple[int, ...]:
        from hcgym.perception.action.x3d import X3DConfig

        size = X3DConfig.from_dict(self.model_config).size
        return (3, size, size)

    def _reset_inputs(self) -> None:
        self.box = None

    def crop_box(self, image: np.ndarray) -> np.ndarray:
        """The integer square ``[x0, y0, x1, y1]`` cut from ``image`` now: around the followed box times
        ``margin``, or the whole frame (a centred square of its longer side) before anyone was found."""
        from hcgym.perception.action.crop import square_box

        if self.box is None:
            h, w = image.shape[:2]
            return square_box(np.array([[0.0, 0.0, w, h]]), 1.0)
        return square_box(self.box[None], self.margin)

    def model_input(self, image: np.ndarray, intrinsics: CameraIntrinsics | None) -> np.ndarray:
        """(3, S, S) float32: the normalised RGB crop (:meth:`crop_box`) resized to the model's size."""
        from hcgym.perception.action.crop import crop_frames, normalise_rgb

        kp = self._pose().process(image)
        self.found = bool(len(kp))
        if self.found:
            new = np.asarray(kp.boxes[0], np.float64)
            self.box = new if self.box is None else self.box + self.box_smoothing * (new - self.box)
        crop = crop_frames(image[None], self.crop_box(image), self.frame_shape[-1])[0]
        return normalise_rgb(crop)


__all__ = ["CLIP_FRAMES", "MODELS", "TRAINING_FPS", "CoSTGCNSensor", "CoX3DSensor", "ContinualActionSensor"]
