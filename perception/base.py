"""The sensor contract.

A :class:`Sensor` is a callable on a :class:`~hcgym.types.Frame` or an RGB
image (H, W, 3) uint8 that returns a typed result (see :mod:`hcgym.types`).
Sensors built on torch models subclass :class:`TorchSensor`, a :class:`TorchModel`
(a network between numpy pre- and post-processing, with :meth:`TorchModel.export_onnx`);
so does the Seq2Seq-NMS post-processor. :class:`OnnxSensor` loads such an export with
onnxruntime and answers the same calls with the same results.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import DependencyNotInstalled, SpecError
from hcgym.perception.registry import onnx_class, registry


def as_image(x: Any) -> np.ndarray:
    """The RGB uint8 image of a Frame or an image array; raises a clear error for anything else."""
    rgb = getattr(x, "rgb", x)
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise SpecError("image", f"expected a Frame or an (H, W, 3) RGB array, got {type(rgb).__name__} "
                                 f"with shape {shape}")
    if rgb.dtype != np.uint8:
        raise SpecError("image", f"expected dtype uint8 (RGB 0-255), got {rgb.dtype}")
    return np.ascontiguousarray(rgb)


class Sensor(ABC):
    """A perception module. ``sensor(frame_or_image, **kwargs) -> result``."""

    #: Registry id (``face/dlib-hog``) or a descriptive name.
    name: str = "sensor"
    #: Where it computes (``cpu`` for everything hcgym ships).
    device: str = "cpu"

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        return self.process(as_image(x), *args, **kwargs)

    @abstractmethod
    def process(self, image: np.ndarray, **kwargs: Any) -> Any:
        """Run on an RGB uint8 image."""

    def export_onnx(self, path: str | Path) -> Path:
        """Only torch-model sensors (:class:`TorchSensor`) export to ONNX."""
        raise SpecError("sensor", f"{self.name} is not a torch model and cannot be exported to ONNX")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class TorchModel(ABC):
    """A torch network between numpy pre- and post-processing, exportable to ONNX.

    :meth:`run_model` (numpy arrays in, numpy arrays out) is the only place the network runs, so
    replacing it, as :class:`OnnxSensor` does, moves the whole object onto ONNX Runtime. Subclasses set
    ``self.model``, name the network's inputs and outputs (``onnx_input_names``, ``onnx_output_names``)
    and implement :meth:`example_inputs`; :meth:`config` / :meth:`from_config` rebuild the pre- and
    post-processing around an export. :class:`TorchSensor` (image sensors) and the Seq2Seq-NMS method
    are the two kinds.
    """

    model: Any
    onnx_input_names: tuple[str, ...] = ("input",)
    onnx_output_names: tuple[str, ...] = ("output",)
    #: ONNX opset of :meth:`export_onnx`.
    onnx_opset: int = 17

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild the pre/post-processing (stored beside the ONNX file)."""
        return {}

    @classmethod
    def from_config(cls, **config: Any) -> "TorchModel":
        """Rebuild the object from :meth:`config` (used by :class:`OnnxSensor`)."""
        return cls(**config)

    @abstractmethod
    def example_inputs(self) -> tuple[np.ndarray, ...]:
        """One array per network input (in ``onnx_input_names`` order) with the shapes the export traces."""

    def onnx_dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Dynamic axes of the export, by input and output name (default: axis 0, the batch, of each)."""
        return {n: {0: "batch"} for n in (*self.onnx_input_names, *self.onnx_output_names)}

    def run_model(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """The network on numpy ``inputs`` (``onnx_input_names`` order): its outputs as numpy arrays."""
        import torch

        with torch.no_grad():
            out = self.model(*(torch.from_numpy(np.asarray(x)) for x in inputs))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.detach().cpu().numpy() for o in outs]

    def parity_inputs(self, rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, ...]]:
        """``n`` network inputs for the export's parity check (:func:`hcgym.perception.export.export_sensor`).

        Default: each example input's shape with batch 1, float32 values uniform over the range of the
        example input (0-255 where that is constant), drawn from ``rng``.
        """
        ranges = [_value_range(x) for x in self.example_inputs()]
        return [tuple(rng.uniform(lo, hi, (1, *x.shape[1:])).astype(np.float32)
                      for x, (lo, hi) in zip(self.example_inputs(), ranges)) for _ in range(n)]

    def describe_parity_inputs(self) -> str:
        """One line on what :meth:`parity_inputs` draws (for the export report)."""
        ranges = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in map(_value_range, self.example_inputs()))
        return f"float32, uniform over {ranges}"

    def latency_inputs(self, rng: np.random.Generator) -> list[tuple[np.ndarray, ...]] | None:
        """Inputs to time PyTorch against ONNX Runtime on; ``None``: the first 8 parity inputs."""
        return None

    def reload_check(self, exported: Any, rng: np.random.Generator) -> dict[str, Any] | None:
        """``{"same": bool, "detail": str}``: whether ``exported`` (this object's export, reloaded) answers one
        input drawn from ``rng`` as this object does; ``None``: the export's check for image sensors."""
        return None

    def onnx_bytes(self) -> bytes:
        """The network as an ONNX model (traced with :meth:`example_inputs`, :meth:`onnx_dynamic_axes`)."""
        import io

        import torch

        example = tuple(torch.from_numpy(np.asarray(x)) for x in self.example_inputs())
        self.model.eval()
        buf = io.BytesIO()
        torch.onnx.export(self.model, example, buf, input_names=list(self.onnx_input_names),
                          output_names=list(self.onnx_output_names), opset_version=self.onnx_opset, dynamo=False,
                          dynamic_axes=self.onnx_dynamic_axes())
        return buf.getvalue()

    def export_onnx(self, path: str | Path) -> Path:
        """Write ``path`` (:meth:`onnx_bytes`) and ``path.json`` (``{"sensor": registry id, "config":
        self.config()}``), each atomically."""
        from hcgym.paths import atomic_write_bytes

        sensor_id = self.registered_id()  # before writing anything
        path = Path(path)
        atomic_write_bytes(path, self.onnx_bytes())
        meta = {"sensor": sensor_id, "config": self.config()}
        atomic_write_bytes(path.with_suffix(path.suffix + ".json"), json.dumps(meta, indent=1).encode())
        return path

    def registered_id(self) -> str:
        """The registry id whose ONNX class is this object's class (its own ``name`` first): what the
        export's sidecar names, so that :class:`OnnxSensor` can rebuild it without importing anything
        a file names."""
        mine = f"{type(self).__module__}:{type(self).__qualname__}"
        ids = [k for k, v in registry.items() if v.onnx == mine]
        if not ids:
            raise SpecError("sensor", f"{type(self).__qualname__} is not registered as an ONNX-exportable sensor; "
                                      "register it with hcgym.perception.register(..., onnx=...) before exporting")
        name = getattr(self, "name", None)
        return name if name in ids else ids[0]


def _value_range(x: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of an example input; ``(0, 255)`` when it is constant (a zero image)."""
    x = np.asarray(x, np.float64)
    return (float(x.min()), float(x.max())) if x.size and x.max() > x.min() else (0.0, 255.0)


class TorchSensor(TorchModel, Sensor):
    """A sensor whose core is a torch module: ``preprocess -> model -> postprocess``.

    Subclasses set ``self.model`` and implement :meth:`preprocess` (image -> network input + context),
    :meth:`postprocess` (numpy outputs + context -> result) and :meth:`example_input`. The same
    pre/post-processing runs for the ONNX export through :class:`OnnxSensor`.
    """

    @abstractmethod
    def preprocess(self, image: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, Any]:
        """Image -> (network input array, context for postprocess)."""

    @abstractmethod
    def postprocess(self, outputs: list[np.ndarray], context: Any) -> Any:
        """Network outputs (numpy) -> result."""

    @abstractmethod
    def example_input(self) -> np.ndarray:
        """An input array with the right shape for tracing the export."""

    def example_inputs(self) -> tuple[np.ndarray, ...]:
        return (self.example_input(),)

    def process(self, image: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        inputs, ctx = self.preprocess(image, *args, **kwargs)
        return self.postprocess(self.run_model(inputs) if len(inputs) else [], ctx)


def read_sidecar(path: Path, sensor: str | None = None) -> tuple[str, type[TorchModel], dict[str, Any]]:
    """``(sensor id, its registered class, config)`` that an export's sidecar ``path`` (``X.onnx.json``) names.

    The sidecar names a registry id (``{"sensor": "person/centernet", "config": {...}}``); only the class
    registered for that id is imported. A sidecar naming anything else (an unknown id, a sensor without
    ONNX export, a ``class`` other than the registered one, another sensor than ``sensor``) is refused
    with a :class:`~hcgym.errors.SpecError` before anything is imported.
    """
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SpecError("path", f"{path} is not a readable sensor sidecar ({type(e).__name__}: {e})") from None
    sid = meta.get("sensor") if isinstance(meta, dict) else None
    config = meta.get("config", {}) if isinstance(meta, dict) else None
    if not isinstance(sid, str) or not isinstance(config, dict):
        raise SpecError("sensor", f"{path} must hold {{'sensor': registered id, 'config': {{...}}}} "
                                  "(written by TorchModel.export_onnx)")
    if sensor is not None and sid != sensor:
        raise SpecError("sensor", f"{path.name} is an export of {sid!r}, not of {sensor!r}")
    spec = registry.get(sid)
    named = meta.get("class")  # older sidecars also name the class: it must be the registered one
    if spec is not None and spec.onnx is not None and named is not None and named != spec.onnx.replace(":", "."):
        raise SpecError("class", f"{path.name} names class {named!r}, but the registered class of {sid!r} is "
                                 f"{spec.onnx.replace(':', '.')}; nothing was imported")
    cls = onnx_class(sid)  # refuses unregistered ids before importing anything
    if not (isinstance(cls, type) and issubclass(cls, TorchModel)):
        raise SpecError("sensor", f"the ONNX class registered for {sid!r} is not a TorchModel")
    return sid, cls, config


#: numpy dtype of each ONNX Runtime input type the exports use.
_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}


def onnx_session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session of the model file ``path`` with ``threads`` intra-op threads."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - core dependency
        raise DependencyNotInstalled("onnxruntime is required: pip install onnxruntime") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxSensor(Sensor):
    """Runs an exported :class:`TorchModel` with onnxruntime; same call, same results.

    ``OnnxSensor(path)`` reads ``path.json`` (written by :meth:`TorchModel.export_onnx`), which names a
    registered sensor id, rebuilds that sensor's pre/post-processing (:func:`read_sidecar`; only registered
    classes are ever imported) and replaces its torch model with an ONNX Runtime session: an image sensor
    is called on a frame, the exported Seq2Seq-NMS as ``(boxes, scores, image)``, as the originals are.
    ``sensor``: the id the export must be of (e.g. ``"person/centernet"``), ``None`` for any; ``overrides``:
    keyword arguments that replace those of the sidecar's config (``score_threshold=0.4``, ...).
    """

    def __init__(self, path: str | Path, threads: int = 1, sensor: str | None = None, **overrides: Any) -> None:
        path = Path(path)
        meta_path = path.with_suffix(path.suffix + ".json")
        if not path.is_file():
            raise SpecError("path", f"ONNX file not found: {path}")
        if not meta_path.is_file():
            raise SpecError("path", f"missing {meta_path.name} beside {path.name} (written by export_onnx)")
        sid, cls, config = read_sidecar(meta_path, sensor)
        try:
            self.inner: TorchModel = cls.from_config(**{**config, **overrides})
        except SpecError:
            raise
        except Exception as e:  # noqa: BLE001 - a bad config gets one message
            raise SpecError("config", f"{meta_path.name}: the config does not rebuild {sid} "
                                      f"({type(e).__name__}: {e})") from None
        self.session = onnx_session(path, threads)
        self._feed = [(i.name, _ONNX_DTYPES.get(i.type, np.float32)) for i in self.session.get_inputs()]
        self.name = f"{sid}(onnx)"
        self.path = path
        #: Hash of the exported file (16 hex digits): what identifies this model in caches.
        self.fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()[:16]

        self.inner.run_model = self._run_onnx  # every method of the inner sensor now runs ONNX Runtime
        self.inner.name = self.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The original's call (a frame or image for sensors; ``(boxes, scores, image)`` for NMS)."""
        return self.inner(*args, **kwargs)

    def process(self, image: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        return self.inner.process(image, *args, **kwargs)

    def _run_onnx(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if len(inputs) != len(self._feed):
            raise SpecError("inputs", f"{self.path.name} takes {len(self._feed)} inputs "
                                      f"({', '.join(n for n, _ in self._feed)}), got {len(inputs)}")
        # np.require keeps 0-d inputs 0-d (np.ascontiguousarray makes them 1-d: the continual steps' counters)
        feed = {name: np.require(x, dtype, "C") for (name, dtype), x in zip(self._feed, inputs)}
        return list(self.session.run(None, feed))

    def __getattr__(self, item: str) -> Any:
        """Other methods of the wrapped sensor (``embed_aligned``, ...), running on ONNX Runtime."""
        if item in ("inner", "session", "path", "fingerprint", "_feed"):
            raise AttributeError(item)
        return getattr(self.inner, item)
