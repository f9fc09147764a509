"""hcgym: human-centric robot perception in simulation.

The root package holds the shared types (:mod:`hcgym.types`), geometry helpers
(:mod:`hcgym.geometry`), errors (:mod:`hcgym.errors`) and cache locations
(:mod:`hcgym.paths`). Everything else lives in the subpackages
``hcgym.synthesis``, ``hcgym.worlds``, ``hcgym.envs``, ``hcgym.perception``,
``hcgym.agents`` and ``hcgym.scripts``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hcgym")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
