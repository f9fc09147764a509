"""Sensor registry: ``hcgym.perception.make("face/dlib-hog")`` works like ``gymnasium.make``."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from hcgym.errors import SpecError


@dataclass(frozen=True)
class SensorSpec:
    id: str
    entry_point: str  #: ``"module:attr"``
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


registry: dict[str, SensorSpec] = {}


def register(id: str, entry_point: str, description: str = "", **kwargs: Any) -> None:
    """Register a sensor id (``task/name``) with its entry point and default keyword arguments."""
    if id in registry:
        raise SpecError("id", f"sensor {id!r} is already registered")
    registry[id] = SensorSpec(id, entry_point, kwargs, description)


def make(id: str, **kwargs: Any):
    """Create the sensor registered as ``id``; ``kwargs`` override its defaults."""
    if id not in registry:
        task = id.split("/")[0]
        near = sorted(k for k in registry if k.startswith(task + "/")) or sorted(registry)
        raise SpecError("id", f"unknown sensor {id!r} (registered: {', '.join(near)})")
    spec = registry[id]
    module, _, attr = spec.entry_point.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    sensor = cls(**{**spec.kwargs, **kwargs})
    sensor.name = id
    return sensor


def list_sensors(prefix: str = "") -> list[str]:
    return sorted(k for k in registry if k.startswith(prefix))
