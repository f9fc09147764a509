"""Simulator backends: ``embedded`` (PyBullet, headless, the default) and ``webots``.

Everything that drives a simulator gets it from :func:`make_backend`; nothing else constructs a backend class.
A consumer that needs more than loading, moving and rendering named cameras says so with ``requires``
(see :data:`CAPABILITIES`), and a backend that cannot serve it is refused before anything starts.
"""

from __future__ import annotations

from hcgym.camera import CameraPose
from hcgym.envs.backends.base import CAPABILITIES, HumanState, RobotState, SimBackend
from hcgym.errors import SpecError

__all__ = ["BACKENDS", "CAPABILITIES", "CameraPose", "HumanState", "RobotState", "SimBackend", "backend_class",
           "check_backend", "make_backend"]

#: Backend names and their classes (``module:class``, imported on demand).
BACKENDS = {"embedded": "hcgym.envs.backends.embedded:EmbeddedBackend",
            "webots": "hcgym.envs.backends.webots:WebotsBackend"}


def backend_class(name: str) -> type[SimBackend]:
    """The backend class registered as ``name`` (imports its module, not its simulator)."""
    import importlib

    if name not in BACKENDS:
        raise SpecError("backend", f"unknown backend {name!r} (allowed: {', '.join(BACKENDS)})")
    module, _, attr = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def check_backend(name: str, requires=()) -> str:
    """Check that backend ``name`` exists and offers every capability in ``requires``; returns ``name``.

    Raises :class:`~hcgym.errors.SpecError` naming what is missing, without starting a simulator.
    """
    cls = backend_class(name)
    missing = [c for c in requires if c not in cls.capabilities]
    unknown = [c for c in requires if c not in CAPABILITIES]
    if unknown:
        raise SpecError("requires", f"unknown backend capabilities {unknown} (known: {', '.join(CAPABILITIES)})")
    if missing:
        why = " or ".join(CAPABILITIES[c] for c in missing)
        raise SpecError("backend", f"the {name} backend cannot {why}, which is needed here (use the embedded backend)")
    return name


def make_backend(name: str = "embedded", requires=(), world=None, **kwargs) -> SimBackend:
    """Create a backend by name (``"embedded"`` or ``"webots"``) after :func:`check_backend` of ``requires``.

    ``world``: the world it will load, when known: a world whose people move (``world.animated``) gets a
    renderer that can show moving meshes (the embedded backend's ``animated=True``).
    """
    check_backend(name, requires)
    cls = backend_class(name)
    if world is not None and world.animated and "animated" in _parameters(cls):
        kwargs.setdefault("animated", True)
    return cls(**kwargs)


def _parameters(cls) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)
