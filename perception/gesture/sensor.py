"""The live gesture sensor ``gesture/rgbd``: every hand of an RGB-D frame, cropped as the training data, classified.

Each call takes a :class:`~hcgym.types.Frame` (RGB and metric depth at the same pixels; or an (H, W, 3) uint8
image with ``depth=`` an (H, W) array in metres) and returns a :class:`~hcgym.types.Classification`: one row per
hand, ``labels`` the most probable class (the 16 HANDS gestures or ``none`` for a relaxed hand, as the checkpoint
names them), ``scores`` (N, C) softmax probabilities, ``classes`` the checkpoint's labels and ``boxes`` (N, 4)
the box of the hand's 21 points (pixels, clipped to the image: the subject box of the sensor bench).
:attr:`GestureSensor.sides` names each row's hand (``left``/``right`` of the person, ``None`` when unknown) and
:attr:`GestureSensor.crop_boxes` the square crops the model saw.

Pipeline (:mod:`.inputs`, the preprocessing of the training data, :mod:`hcgym.synthesis.gesture_data_scene`):

1. Hands: ``hands="mediapipe"`` (default) runs MediaPipe Hands (:class:`~hcgym.perception.hands.mediapipe.
   MediaPipeHands`, ``max_hands`` per frame) for 21 points per hand; ``hands="truth"`` takes the frame's
   ground-truth 21 points (``motion.hand_keypoints``) of every hand with a visible point (a Frame of a world).
2. The depth is rounded to float16, as the training sets store it; optionally (``depth_noise=True``) it is
   read as a Kinect would
   (:func:`~.inputs.kinect_depth` on the whole frame at its own resolution; call ``k`` after :meth:`reset`
   draws from ``default_rng([seed, k])``), as the training sets draw it on their crops.
3. Each hand's square crop box (:func:`~.inputs.hand_box` of its 21 points, no jitter), RGB and depth cut and
   resized (:func:`~.inputs.crop_rgbd`) to the side the training set was rendered at (``crop_side``, the
   checkpoint's ``data.key.size``), then, when the model's ``size`` is another, resized again as the training
   run resized its set (RGB by area averaging when shrinking, bilinearly when enlarging; depth by the nearest
   pixel: :func:`hcgym.perception.gesture.study.resize_set`); a checkpoint without ``data`` is cut at ``size``
   directly. Then the model's channels (:func:`~.inputs.channels`: the checkpoint's ``modality``,
   ``depth_mode``, ``rgb_normalised``), every hand in one batch.

An ``rgbd`` or ``depth`` model needs depth: a bare image without ``depth=`` is refused; an ``rgb`` model takes
bare images. Checkpoint: ``checkpoint=PATH`` (a :func:`~.training.save_model` file whose meta holds
:data:`META_KEYS`, or the name of a file in ``perception/gesture/models``); default the shipped
:data:`SHIPPED`. ``hcgym export gesture/rgbd --out DIR`` writes the network as ONNX with this pre- and
post-processing in its sidecar; :class:`~hcgym.perception.base.OnnxSensor` rebuilds the sensor around it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.base import TorchSensor, as_image
from hcgym.perception.gesture.inputs import DEPTH_MODES, MODALITIES
from hcgym.types import Classification

#: Folder of the shipped gesture checkpoints.
MODELS = Path(__file__).resolve().parent / "models"
#: The shipped checkpoint of the sensor (in :data:`MODELS`): 17 classes (16 gestures and ``none``), RGB-D.
SHIPPED = "gesture_rgbd.pt"
#: Entries a checkpoint's meta must hold (besides the model config's ``modality``).
META_KEYS = ("labels", "size")
#: Where the hands come from.
HAND_SOURCES = ("mediapipe", "truth")
#: Largest |score difference| the export's reload check allows.
RELOAD_TOLERANCE = 1e-4


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise SpecError(field, f"expected true or false, got {value!r}")
    return bool(value)


def _whole(value: Any, field: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SpecError(field, f"expected an integer >= {low}, got {value!r}")
    return int(value)


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, C) logits -> (N, C) float64 probabilities (rows sum to 1)."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def checkpoint_path(checkpoint: str | Path | None) -> Path:
    """``checkpoint`` as given; a bare file name that is not a file here but one of :data:`MODELS`: that shipped
    file; ``None``: the shipped :data:`SHIPPED`, which must exist (else one :class:`SpecError`)."""
    if checkpoint is None:
        path = MODELS / SHIPPED
        if not path.is_file():
            raise SpecError("checkpoint", f"the shipped gesture model {path} is missing: train it (hcgym train "
                                          "gesture, 17 classes with none) and put it there, or pass checkpoint=PATH "
                                          "(--sensor-arg checkpoint=PATH)")
        return path
    path = Path(checkpoint)
    shipped = MODELS / path.name
    return shipped if path.name == str(checkpoint) and not path.is_file() and shipped.is_file() else path


def truth_hands(frame: Any) -> tuple[list[np.ndarray], list[str]]:
    """The ground-truth 21 points ``(21, 2)`` pixels (MediaPipe order) and side of every hand of a moving person
    in ``frame`` with a point that passes the depth test inside the image (the sensor bench's hand subjects)."""
    from hcgym.perception.bench_base import visible_in_image

    points, sides = [], []
    for h in getattr(frame, "humans", ()):
        if h.motion is None:
            continue
        for s, side in enumerate(("left", "right")):
            kp = np.asarray(h.motion.hand_keypoints[s], np.float64)
            if visible_in_image(frame, kp).any():
                points.append(kp[:, :2])
                sides.append(side)
    return points, sides


class GestureSensor(TorchSensor):
    """``gesture/rgbd``: hands found (MediaPipe Hands or the ground truth), cropped as the training data and
    classified by a gesture model on RGB-D, RGB or depth (module docstring).

    Args:
        checkpoint: a gesture model file (:func:`~.training.save_model` with meta :data:`META_KEYS`, optionally
            ``depth_mode`` (default ``relative``), ``rgb_normalised`` (default true) and ``data`` ``{"key":
            {"size": side the set was rendered at}}``), or the name of one in :data:`MODELS`; default
            :data:`SHIPPED`.
        hands: ``mediapipe`` or ``truth`` (the frame's ground-truth hand points).
        depth_noise: read the frame's exact depth as a Kinect would (:func:`~.inputs.kinect_depth`).
        seed: the noise's seed.
        max_hands: at most this many hands MediaPipe finds per frame.
        min_detection_confidence: MediaPipe's palm detector threshold in [0, 1].
    """

    onnx_input_names = ("image",)
    onnx_output_names = ("logits",)

    def __init__(self, checkpoint: str | Path | None = None, hands: str = "mediapipe", depth_noise: bool = False,
                 seed: int = 0, max_hands: int = 2, min_detection_confidence: float = 0.5) -> None:
        from hcgym.perception.gesture.training import load_model

        self.name = "gesture/rgbd"
        self._configure(hands, depth_noise, seed, max_hands, min_detection_confidence)
        path = checkpoint_path(checkpoint)
        model, meta = load_model(path, "checkpoint")
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            raise SpecError("checkpoint", f"{path} lacks {', '.join(missing)} in its meta (save_model(..., meta="
                                          f"{{'labels': [...], 'size': S, 'depth_mode': ...}}))")
        data = meta.get("data")
        key = data.get("key") if isinstance(data, dict) else None
        self._attach(meta["labels"], meta["config"]["modality"], meta["size"], meta.get("depth_mode", "relative"),
                     int(meta["config"]["num_classes"]), key.get("size") if isinstance(key, dict) else None,
                     meta.get("rgb_normalised", True))
        self.model = model
        self.checkpoint = path

    def _configure(self, hands: str = "mediapipe", depth_noise: bool = False, seed: int = 0, max_hands: int = 2,
                   min_detection_confidence: float = 0.5) -> None:
        from hcgym.perception.pose.mediapipe import check_confidence

        if hands not in HAND_SOURCES:
            raise SpecError("hands", f"expected one of {', '.join(HAND_SOURCES)}, got {hands!r}")
        self.hands = hands
        self.depth_noise = _flag(depth_noise, "depth_noise")
        self.seed = _whole(seed, "seed", 0)
        self.max_hands = _whole(max_hands, "max_hands", 1)
        self.min_detection_confidence = check_confidence(min_detection_confidence, "min_detection_confidence")
        self._hand_sensor: Any = None
        self.checkpoint: Path | None = None
        self.reset()

    def _attach(self, labels: Any, modality: str, size: Any, depth_mode: str, num_classes: int,
                crop_side: Any = None, rgb_normalised: Any = True) -> None:
        if not isinstance(labels, (list, tuple)) or len(labels) != num_classes:
            raise SpecError("checkpoint", f"the model has {num_classes} classes; its meta must name them under "
                                          f"'labels', got {labels!r}")
        if modality not in MODALITIES:
            raise SpecError("checkpoint", f"unknown modality {modality!r} (allowed: {', '.join(MODALITIES)})")
        if depth_mode not in DEPTH_MODES:
            raise SpecError("checkpoint", f"unknown depth_mode {depth_mode!r} (allowed: {', '.join(DEPTH_MODES)})")
        self.classes = tuple(str(c) for c in labels)
        self.modality, self.size, self.depth_mode = modality, _whole(size, "size", 16), depth_mode
        self.crop_side = self.size if crop_side is None else _whole(crop_side, "crop_side", 16)
        self.rgb_normalised = _flag(rgb_normalised, "rgb_normalised")

    # ------------------------------------------------------------------ running
    @property
    def needs_depth(self) -> bool:
        """Whether the model reads depth (``rgbd`` or ``depth``)."""
        return self.modality != "rgb"

    def __call__(self, x: Any, depth: np.ndarray | None = None) -> Classification:
        """The hands of a :class:`~hcgym.types.Frame` (its depth, or ``depth``) or of an RGB image with ``depth``
        (H, W) metres (0, NaN or inf: no reading)."""
        image = as_image(x)
        if depth is None:
            depth = getattr(x, "depth", None)
        if depth is not None:
            depth = np.asarray(depth, np.float32)
            if depth.shape != image.shape[:2]:
                raise SpecError("depth", f"expected an (H, W) = {image.shape[:2]} depth map, got {depth.shape}")
        elif self.needs_depth:
            raise SpecError("depth", f"{self.name}'s model reads {self.modality} crops: give a Frame with depth or "
                                     "depth= an (H, W) array in metres (an rgb-only checkpoint takes bare images)")
        if self.hands == "truth" and not hasattr(x, "humans"):
            raise SpecError("hands", "hands='truth' reads the frame's ground-truth hand points: give a Frame of a "
                                     "world, or use hands='mediapipe'")
        return self.process(image, depth=depth, frame=x)

    def process(self, image: np.ndarray, depth: np.ndarray | None = None, frame: Any = None) -> Classification:
        """RGB uint8 ``image`` and its depth (metres) -> one classified row per hand (module docstring)."""
        inputs, ctx = self.preprocess(image, depth, frame)
        return self.postprocess(self.run_model(inputs) if len(inputs) else [], ctx)

    def find_hands(self, image: np.ndarray, frame: Any = None) -> tuple[list[np.ndarray], list[str | None]]:
        """The 21 points ``(21, 2)`` pixels and side of each hand (``hands``: MediaPipe or the ground truth)."""
        if self.hands == "truth":
            return truth_hands(frame)
        kp = self._hands().process(image)
        return [p for p in kp.points], list(kp.sides)

    def _hands(self) -> Any:
        if self._hand_sensor is None:
            from hcgym.perception.hands.mediapipe import MediaPipeHands

            self._hand_sensor = MediaPipeHands(max_num_hands=self.max_hands,
                                               min_detection_confidence=self.min_detection_confidence)
        return self._hand_sensor

    def read_depth(self, depth: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
        """The (H, W) float32 depth the crops are cut from: ``depth`` rounded to float16 as the training sets store
        it (zeros without it), then read as a Kinect would with ``depth_noise``."""
        if depth is None:
            return np.zeros(shape, np.float32)
        d = np.asarray(depth, np.float16).astype(np.float32)
        if not self.depth_noise:
            return d
        from hcgym.perception.gesture.inputs import kinect_depth

        return kinect_depth(d, np.random.default_rng([self.seed, self.calls]))

    def crops(self, image: np.ndarray, depth: np.ndarray | None,
              points: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rgb (N, S, S, 3) uint8, depth (N, S, S) metres, crop boxes (N, 4))`` of the hands' ``points``: cut at
        ``crop_side``, then resized to ``size`` (module docstring)."""
        import cv2

        from hcgym.perception.gesture.inputs import crop_rgbd, hand_box, resample_depth

        h, w = image.shape[:2]
        d = self.read_depth(depth, (h, w)) if points else None
        boxes = [hand_box(p, (w, h)) for p in points]
        s, rgb, depths = self.size, [], []
        for b in boxes:
            c_rgb, c_depth = crop_rgbd(image, d, b, self.crop_side)
            if self.crop_side != s:
                interp = cv2.INTER_AREA if s < self.crop_side else cv2.INTER_LINEAR
                c_rgb, c_depth = cv2.resize(c_rgb, (s, s), interpolation=interp), resample_depth(c_depth, s)
            rgb.append(c_rgb)
            depths.append(c_depth)
        return (np.stack(rgb) if rgb else np.zeros((0, s, s, 3), np.uint8),
                np.stack(depths) if depths else np.zeros((0, s, s), np.float32),
                np.asarray(boxes, np.int64).reshape(-1, 4))

    def model_inputs(self, rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """(N, C, S, S) float32 channels of crops ``rgb`` (N, S, S, 3) uint8 and ``depth`` (N, S, S) metres."""
        from hcgym.perception.gesture.inputs import channels

        return channels(rgb, depth, self.modality, self.depth_mode, self.rgb_normalised)

    def preprocess(self, image: np.ndarray, depth: np.ndarray | None = None,
                   frame: Any = None) -> tuple[np.ndarray, Any]:
        """Image (+ depth, + the Frame for ``hands="truth"``) -> ((N, C, S, S) model input, context)."""
        from hcgym.perception.pose.mediapipe import boxes_of

        points, sides = self.find_hands(image, frame)
        rgb, d, crop_boxes = self.crops(image, depth, points)
        self.calls += 1
        h, w = image.shape[:2]
        boxes = boxes_of(np.asarray(points, np.float64).reshape(-1, 21, 2), w, h)
        x = self.model_inputs(rgb, d) if len(points) else np.zeros((0,), np.float32)
        return x, (boxes, sides, crop_boxes)

    def postprocess(self, outputs: list[np.ndarray], context: Any) -> Classification:
        """Logits (N, C) -> :class:`Classification` (labels, softmax scores, classes, hand boxes)."""
        boxes, sides, crop_boxes = context
        self.sides, self.crop_boxes = list(sides), crop_boxes
        if not outputs:
            return Classification([], np.zeros((0, len(self.classes))), self.classes, np.zeros((0, 4)))
        p = softmax(outputs[0])
        return Classification([self.classes[int(i)] for i in p.argmax(axis=1)], p, self.classes, boxes)

    def classify_crops(self, rgb: np.ndarray, depth: np.ndarray) -> Classification:
        """Crops already cut (``rgb`` (N, S, S, 3) uint8, ``depth`` (N, S, S) metres) -> their classes (no boxes)."""
        out = self.run_model(self.model_inputs(rgb, depth))[0]
        p = softmax(out)
        return Classification([self.classes[int(i)] for i in p.argmax(axis=1)], p, self.classes, None)

    def reset(self) -> None:
        """Start a new stream: the depth noise draws from the start again."""
        self.calls = 0
        self.sides: list[str | None] = []
        self.crop_boxes = np.zeros((0, 4), np.int64)

    def close(self) -> None:
        """Free MediaPipe's graph (a later frame makes a new one)."""
        if self._hand_sensor is not None:
            hands, self._hand_sensor = self._hand_sensor, None
            hands.close()

    # ------------------------------------------------------------------ export (TorchModel)
    def config(self) -> dict[str, Any]:
        """The export's sidecar config: the checkpoint's labels and input layout, and the sensor's options."""
        return {"labels": list(self.classes), "modality": self.modality, "size": self.size,
                "depth_mode": self.depth_mode, "crop_side": self.crop_side, "rgb_normalised": self.rgb_normalised,
                "hands": self.hands, "depth_noise": self.depth_noise,
                "seed": self.seed, "max_hands": self.max_hands,
                "min_detection_confidence": self.min_detection_confidence}

    @classmethod
    def from_config(cls, **config: Any) -> GestureSensor:
        """The sensor's pre- and post-processing without a torch model (``OnnxSensor`` runs the network)."""
        layout = ("labels", "modality", "size", "depth_mode", "crop_side", "rgb_normalised")
        missing = [k for k in layout if k not in config]
        if missing:
            raise SpecError("config", f"a gesture/rgbd export's config lacks {', '.join(missing)}")
        labels, modality, size, depth_mode, crop_side, rgb_normalised = (config.pop(k) for k in layout)
        sensor = cls.__new__(cls)
        sensor.name = "gesture/rgbd"
        sensor._configure(**config)
        sensor._attach(labels, modality, size, depth_mode, len(labels) if isinstance(labels, list) else -1,
                       crop_side, rgb_normalised)
        sensor.model = None
        return sensor

    def onnx_bytes(self) -> bytes:
        """The network as ONNX (:meth:`TorchModel.onnx_bytes`), without the legacy exporter's deprecation notes."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().onnx_bytes()

    def example_input(self) -> np.ndarray:
        return np.zeros((1, MODALITIES[self.modality], self.size, self.size), np.float32)

    def synthetic_crops(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` random crops: RGB uniform noise with a bright blob, depth 0.5-2.5 m with the blob 0.3 m nearer and
        5 % holes: inputs in the range of real ones for the export's checks."""
        s = self.size
        rgb = rng.integers(0, 256, (n, s, s, 3)).astype(np.uint8)
        depth = rng.uniform(0.5, 2.5, (n, 1, 1)) + rng.normal(0, 0.01, (n, s, s))
        lo, hi = s // 4, 3 * s // 4
        rgb[:, lo:hi, lo:hi] = rng.integers(120, 256, (n, 1, 1, 3))
        depth[:, lo:hi, lo:hi] -= 0.3
        depth[rng.random((n, s, s)) < 0.05] = 0.0
        return rgb, depth.astype(np.float32)

    def parity_inputs(self, rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, ...]]:
        """``n`` model inputs (batch 1) of :meth:`synthetic_crops` through the sensor's own channels."""
        rgb, depth = self.synthetic_crops(rng, n)
        return [(self.model_inputs(rgb[i:i + 1], depth[i:i + 1]),) for i in range(n)]

    def describe_parity_inputs(self) -> str:
        return (f"the {self.modality} channels ({self.depth_mode} depth) of random {self.size}x{self.size} crops: "
                "RGB noise with a bright square, depth 0.5-2.5 m with the square 0.3 m nearer, 5 % holes")

    def reload_check(self, exported: Any, rng: np.random.Generator) -> dict[str, Any]:
        """This sensor and ``exported`` on 8 :meth:`synthetic_crops` in one batch: the same labels, scores within
        :data:`RELOAD_TOLERANCE`."""
        rgb, depth = self.synthetic_crops(rng, 8)
        a, b = self.classify_crops(rgb, depth), exported.classify_crops(rgb, depth)
        worst = float(np.max(np.abs(a.scores - b.scores))) if a.scores.shape == b.scores.shape else float("inf")
        same = a.labels == b.labels and a.classes == b.classes and worst <= RELOAD_TOLERANCE
        return {"same": bool(same),
                "detail": f"8 crops in one batch: the same labels, largest score difference {worst:.1e}"}


__all__ = ["HAND_SOURCES", "META_KEYS", "MODELS", "SHIPPED", "GestureSensor", "checkpoint_path", "softmax",
           "truth_hands"]
