"""The one sensor registry: every perception module, created by id like ``gymnasium.make``.

>>> import hcgym.perception as hp
>>> hp.make("face/dlib-hog")                 # a face detector
>>> hp.make("nms/soft_gaussian", sigma=0.3)  # an NMS post-processor; kwargs override the defaults
>>> hp.spec("person/centernet").input        # what a sensor takes: 'rgb frame'

Each task subpackage (:data:`TASKS`) registers its sensors in its ``register_all()``, one
:func:`register` call per sensor. The registry imports those subpackages itself, on the first look-up
(:func:`make`, :func:`spec`, :func:`list_sensors`, reading :data:`registry`), so ``hcgym.perception``
imports no task code and no task package needs ``hcgym.perception``'s ``__init__``: no import cycle.
Entry points are ``"module:attribute"`` strings, imported only when that sensor is made.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hcgym.errors import SpecError

#: Task subpackages of ``hcgym.perception`` whose ``register_all()`` fills the registry, in listing order.
TASKS = ("face", "detection", "nms", "pose", "hands", "action", "expression", "gesture", "biosignal", "speech")


@dataclass(frozen=True)
class SensorSpec:
    """What the registry knows about one sensor, without importing it.

    Attributes:
        id: ``task/name`` (``face/dlib-hog``, ``person/centernet``, ``nms/greedy_0.5``).
        entry_point: ``"module:attribute"``, a class or factory called with the keyword arguments.
        kind: what it does (``face detector``, ``person detector``, ``nms``, ...).
        input: what a call takes (``rgb frame``, ``rgb frame [+ face boxes]``, ``boxes + scores [+ image]``).
        output: the type name of what a call returns (``Detections``, ``Embeddings``, ``NmsResult``, ...).
        onnx: ``"module:Class"`` of the :class:`~hcgym.perception.base.TorchSensor` whose ``from_config``
            rebuilds the sensor around its ONNX export (:class:`~hcgym.perception.base.OnnxSensor`);
            ``None`` when the sensor does not export to ONNX.
        kwargs: default keyword arguments of the entry point.
        description: one line for listings.
    """

    id: str
    entry_point: str
    kind: str
    input: str
    output: str
    onnx: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def task(self) -> str:
        """The part of the id before the slash (``face``, ``person``, ``nms``)."""
        return self.id.partition("/")[0]

    @property
    def exports_onnx(self) -> bool:
        return self.onnx is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (``onnx`` as a bool; ``onnx_class`` the rebuilding class or ``None``)."""
        out = asdict(self)
        out["onnx_class"] = out.pop("onnx")
        return {**out, "task": self.task, "onnx": self.exports_onnx}


class SensorRegistry(Mapping[str, SensorSpec]):
    """id -> :class:`SensorSpec`, in registration order; reading it loads the task registrations."""

    def __init__(self) -> None:
        self._specs: dict[str, SensorSpec] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # set first: a task's register_all may read the registry
        try:
            for task in TASKS:
                importlib.import_module(f"hcgym.perception.{task}").register_all()
        except BaseException:
            self._loaded = False  # registrations are idempotent: the next look-up retries
            raise

    def add(self, spec: SensorSpec) -> None:
        """Add ``spec``; registering the same spec again is a no-op, a different one under its id an error."""
        old = self._specs.get(spec.id)
        if old is not None and old != spec:
            raise SpecError("id", f"sensor {spec.id!r} is already registered (as {old.entry_point})")
        self._specs[spec.id] = spec

    def __getitem__(self, id: str) -> SensorSpec:
        self._load()
        return self._specs[id]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._specs))

    def __len__(self) -> int:
        self._load()
        return len(self._specs)


registry = SensorRegistry()


def _check_entry_point(value: str, field_name: str) -> str:
    module, sep, attr = value.partition(":")
    if not (sep and module and attr):
        raise SpecError(field_name, f"expected 'module:attribute', got {value!r}")
    return value


def register(id: str, entry_point: str, *, kind: str, input: str, output: str, onnx: bool | str = False,
             description: str = "", kwargs: dict[str, Any] | None = None) -> SensorSpec:
    """Register the sensor ``id`` (``task/name``); see :class:`SensorSpec` for the fields.

    ``onnx=True`` when the entry point is itself the exportable :class:`~hcgym.perception.base.TorchSensor`
    class, ``onnx="module:Class"`` when the entry point is a factory of that class, ``False`` otherwise.
    ``kwargs`` are the defaults that :func:`make` passes (its own keyword arguments override them).
    """
    task, sep, name = id.partition("/")
    if not (sep and task and name):
        raise SpecError("id", f"expected 'task/name', got {id!r}")
    _check_entry_point(entry_point, "entry_point")
    onnx_class = entry_point if onnx is True else (_check_entry_point(onnx, "onnx") if onnx else None)
    spec = SensorSpec(id, entry_point, kind, input, output, onnx_class, dict(kwargs or {}), description)
    registry.add(spec)
    return spec


def spec(id: str) -> SensorSpec:
    """The :class:`SensorSpec` of ``id``; an unknown id raises :class:`~hcgym.errors.SpecError` listing near ones."""
    if id not in registry:
        task = id.split("/")[0]
        near = sorted(k for k in registry if k.startswith(task + "/")) or sorted(registry)
        raise SpecError("id", f"unknown sensor {id!r} (registered: {', '.join(near)})")
    return registry[id]


def _import(entry_point: str) -> Any:
    module, _, attr = entry_point.partition(":")
    return getattr(importlib.import_module(module), attr)


def resolve(entry_point: str) -> Any:
    """The object ``"module:attribute"`` names, imported now. How the perception package's own modules (the
    bench) reach task code without importing a task package at module level (no import cycle)."""
    return _import(_check_entry_point(entry_point, "entry_point"))


def make(id: str, **kwargs: Any) -> Any:
    """Create the sensor registered as ``id``; ``kwargs`` override its defaults. Its ``name`` is ``id``."""
    s = spec(id)
    sensor = _import(s.entry_point)(**{**s.kwargs, **kwargs})
    sensor.name = id
    return sensor


def onnx_class(id: str) -> type:
    """The class that rebuilds sensor ``id`` around an ONNX export; only registered classes are imported."""
    s = registry.get(id) if isinstance(id, str) else None
    if s is None or s.onnx is None:
        exportable = ", ".join(k for k, v in registry.items() if v.onnx is not None)
        raise SpecError("sensor", f"{id!r} is not a registered sensor that exports to ONNX "
                                  f"(those are: {exportable}); nothing was imported")
    return _import(s.onnx)


def list_sensors(prefix: str = "") -> list[str]:
    """Registered ids starting with ``prefix``, sorted."""
    return sorted(k for k in registry if k.startswith(prefix))


def specs(prefix: str = "") -> list[SensorSpec]:
    """Registered specs whose id starts with ``prefix``, in registration order (task by task)."""
    return [s for k, s in registry.items() if k.startswith(prefix)]
