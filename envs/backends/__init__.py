"""Simulator backends: ``embedded`` (PyBullet, headless, the default) and ``webots``."""

from hcgym.envs.backends.base import CameraPose, HumanState, RobotState, SimBackend

__all__ = ["CameraPose", "HumanState", "RobotState", "SimBackend", "make_backend"]


def make_backend(name: str = "embedded", **kwargs) -> SimBackend:
    """Create a backend by name: ``"embedded"`` or ``"webots"``."""
    if name == "embedded":
        from hcgym.envs.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(**kwargs)
    if name == "webots":
        from hcgym.envs.backends.webots import WebotsBackend

        return WebotsBackend(**kwargs)
    from hcgym.errors import SpecError

    raise SpecError("backend", f"unknown backend {name!r} (allowed: embedded, webots)")
