"""Errors raised by hcgym for bad input and missing optional dependencies."""

from __future__ import annotations


class HcgymError(Exception):
    """Base class of every error hcgym raises on purpose."""


class SpecError(HcgymError, ValueError):
    """A configuration (world spec, avatar spec, CLI argument) is invalid.

    The message always names where the problem is (file and field path) and
    what is allowed, e.g. ``world.yaml: humans[2].pose: unknown pose 'jump'
    (allowed: arms_up, stand, t_pose, wave)``.
    """

    def __init__(self, field: str, problem: str, source: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {problem}")

    def __reduce__(self) -> tuple:
        # rebuild from the three fields (the default pickles only the message): errors raised in a
        # process-pool or Ray worker reach the caller intact
        return (type(self), (self.field, self.problem, self.source))


class DependencyNotInstalled(HcgymError, ImportError):
    """An optional dependency (Webots, an InsightFace model pack, ...) is missing."""
