"""The sensor contract.

A :class:`Sensor` is a callable on a :class:`~hcgym.types.Frame` or an RGB
image (H, W, 3) uint8 that returns a typed result (see :mod:`hcgym.types`).
Sensors built on torch models subclass :class:`TorchSensor`, which adds
:meth:`TorchSensor.export_onnx`; :class:`OnnxSensor` loads such a file with
onnxruntime and answers with the same results.
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


class TorchSensor(Sensor):
    """A sensor whose core is a torch module: ``preprocess -> model -> postprocess``.

    Subclasses set ``self.model`` and implement :meth:`preprocess` (image -> tensors + context) and
    :meth:`postprocess` (numpy outputs + context -> result). The same pre/post-processing runs for
    the ONNX export through :class:`OnnxSensor`.
    """

    model: Any
    onnx_input_names: tuple[str, ...] = ("input",)
    onnx_output_names: tuple[str, ...] = ("output",)

    @abstractmethod
    def preprocess(self, image: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, Any]:
        """Image -> (network input array, context for postprocess)."""

    @abstractmethod
    def postprocess(self, outputs: list[np.ndarray], context: Any) -> Any:
        """Network outputs (numpy) -> result."""

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild the pre/post-processing (stored beside the ONNX file)."""
        return {}

    @classmethod
    def from_config(cls, **config: Any) -> "TorchSensor":
        """Rebuild the sensor from :meth:`config` (used by :class:`OnnxSensor`)."""
        return cls(**config)

    @abstractmethod
    def example_input(self) -> np.ndarray:
        """An input array with the right shape for tracing the export."""

    def run_model(self, inputs: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            out = self.model(torch.from_numpy(inputs))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.detach().cpu().numpy() for o in outs]

    def process(self, image: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        inputs, ctx = self.preprocess(image, *args, **kwargs)
        return self.postprocess(self.run_model(inputs) if len(inputs) else [], ctx)

    def export_onnx(self, path: str | Path) -> Path:
        """Write ``path`` (ONNX, batch dimension dynamic) and ``path.json`` (``{"sensor": registry id,
        "config": self.config()}``)."""
        import torch

        from hcgym.paths import atomic_write_bytes

        sensor_id = self.registered_id()  # before writing anything
        path = Path(path)
        example = torch.from_numpy(self.example_input())
        self.model.eval()
        import io

        buf = io.BytesIO()
        torch.onnx.export(self.model, (example,), buf, input_names=list(self.onnx_input_names),
                          output_names=list(self.onnx_output_names), opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch"} for n in (*self.onnx_input_names, *self.onnx_output_names)})
        atomic_write_bytes(path, buf.getvalue())
        meta = {"sensor": sensor_id, "config": self.config()}
        atomic_write_bytes(path.with_suffix(path.suffix + ".json"), json.dumps(meta, indent=1).encode())
        return path

    def registered_id(self) -> str:
        """The registry id whose ONNX class is this sensor's class (its own ``name`` first): what the
        export's sidecar names, so that :class:`OnnxSensor` can rebuild it without importing anything
        a file names."""
        mine = f"{type(self).__module__}:{type(self).__qualname__}"
        ids = [k for k, v in registry.items() if v.onnx == mine]
        if not ids:
            raise SpecError("sensor", f"{type(self).__qualname__} is not registered as an ONNX-exportable sensor; "
                                      "register it with hcgym.perception.register(..., onnx=...) before exporting")
        return self.name if self.name in ids else ids[0]


def read_sidecar(path: Path, sensor: str | None = None) -> tuple[str, type[TorchSensor], dict[str, Any]]:
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
                                  "(written by TorchSensor.export_onnx)")
    if sensor is not None and sid != sensor:
        raise SpecError("sensor", f"{path.name} is an export of {sid!r}, not of {sensor!r}")
    spec = registry.get(sid)
    named = meta.get("class")  # older sidecars also name the class: it must be the registered one
    if spec is not None and spec.onnx is not None and named is not None and named != spec.onnx.replace(":", "."):
        raise SpecError("class", f"{path.name} names class {named!r}, but the registered class of {sid!r} is "
                                 f"{spec.onnx.replace(':', '.')}; nothing was imported")
    cls = onnx_class(sid)  # refuses unregistered ids before importing anything
    if not (isinstance(cls, type) and issubclass(cls, TorchSensor)):
        raise SpecError("sensor", f"the ONNX class registered for {sid!r} is not a TorchSensor")
    return sid, cls, config


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
    """Runs an exported :class:`TorchSensor` with onnxruntime; same call, same results.

    ``OnnxSensor(path)`` reads ``path.json`` (written by :meth:`TorchSensor.export_onnx`), which names a
    registered sensor id, rebuilds that sensor's pre/post-processing (:func:`read_sidecar`; only registered
    classes are ever imported) and replaces its torch model with an ONNX Runtime session. ``sensor``: the
    id the export must be of (e.g. ``"person/centernet"``), ``None`` for any.
    """

    def __init__(self, path: str | Path, threads: int = 1, sensor: str | None = None) -> None:
        path = Path(path)
        meta_path = path.with_suffix(path.suffix + ".json")
        if not path.is_file():
            raise SpecError("path", f"ONNX file not found: {path}")
        if not meta_path.is_file():
            raise SpecError("path", f"missing {meta_path.name} beside {path.name} (written by export_onnx)")
        sid, cls, config = read_sidecar(meta_path, sensor)
        try:
            self.inner: TorchSensor = cls.from_config(**config)
        except SpecError:
            raise
        except Exception as e:  # noqa: BLE001 - a bad config gets one message
            raise SpecError("config", f"{meta_path.name}: the config does not rebuild {sid} "
                                      f"({type(e).__name__}: {e})") from None
        self.session = onnx_session(path, threads)
        self.name = f"{sid}(onnx)"
        self.path = path
        #: Hash of the exported file (16 hex digits): what identifies this model in caches.
        self.fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()[:16]

        self.inner.run_model = self._run_onnx  # every method of the inner sensor now runs ONNX Runtime
        self.inner.name = self.name

    def process(self, image: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        return self.inner.process(image, *args, **kwargs)

    def _run_onnx(self, inputs: np.ndarray) -> list[np.ndarray]:
        name = self.session.get_inputs()[0].name
        return list(self.session.run(None, {name: np.ascontiguousarray(inputs, dtype=np.float32)}))

    def __getattr__(self, item: str) -> Any:
        """Other methods of the wrapped sensor (``embed_aligned``, ...), running on ONNX Runtime."""
        if item in ("inner", "session", "path", "fingerprint"):
            raise AttributeError(item)
        return getattr(self.inner, item)
