"""A small reader that validates nested config dicts with clear errors.

Every error is a :class:`~hcgym.errors.SpecError` naming the source file, the
field path (``humans[2].position``) and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hcgym.errors import SpecError

_MISSING = object()


class Fields:
    """Reads fields of one mapping; call :meth:`done` to reject unknown keys."""

    def __init__(self, data: Any, path: str, source: str | None = None) -> None:
        if not isinstance(data, Mapping):
            raise SpecError(path or "<root>", f"expected a mapping, got {type(data).__name__}", source)
        self.data = data
        self.path = path
        self.source = source
        self._seen: set[str] = set()

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(self.sub(key), problem, self.source)

    def has(self, key: str) -> bool:
        self._seen.add(key)
        return key in self.data

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self._seen.add(key)
        if key not in self.data:
            if default is _MISSING:
                import difflib

                extra = [str(k) for k in self.data if k not in self._seen]
                near = difflib.get_close_matches(key, extra, n=1)
                hint = f" (found unknown key {near[0]!r}: a typo?)" if near else ""
                raise self.error(key, f"is required{hint}")
            return default
        return self.data[key]

    def number(self, key: str, default: Any = _MISSING, lo: float | None = None, hi: float | None = None) -> float:
        value = self.raw(key, default)
        return check_number(value, self.sub(key), self.source, lo, hi)

    def integer(self, key: str, default: Any = _MISSING, lo: int | None = None, hi: int | None = None) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {value!r}")
        check_number(value, self.sub(key), self.source, lo, hi)
        return int(value)

    def string(self, key: str, default: Any = _MISSING, choices: Sequence[str] | None = None) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(key, f"unknown value {value!r} (allowed: {', '.join(sorted(choices))})")
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def vector(self, key: str, length: int | Sequence[int], default: Any = _MISSING,
               lo: float | None = None, hi: float | None = None) -> tuple[float, ...]:
        value = self.raw(key, default)
        return check_vector(value, self.sub(key), self.source, length, lo, hi)

    def color(self, key: str, default: Any = _MISSING) -> tuple[float, float, float]:
        """An RGB colour: three numbers in [0, 1] or a ``#rrggbb`` string."""
        value = self.raw(key, default)
        return parse_color(value, self.sub(key), self.source)

    def done(self) -> None:
        unknown = sorted(set(map(str, self.data)) - self._seen)
        if unknown:
            allowed = ", ".join(sorted(self._seen)) or "none"
            raise self.error(unknown[0], f"unknown key (allowed here: {allowed})")


def check_number(value: Any, field: str, source: str | None, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(field, f"expected a number, got {value!r}", source)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise SpecError(field, f"{value!r} is out of range [{lo_s}, {hi_s}]", source)
    return float(value)


def check_vector(value: Any, field: str, source: str | None, length: int | Sequence[int],
                 lo: float | None = None, hi: float | None = None) -> tuple[float, ...]:
    lengths = (length,) if isinstance(length, int) else tuple(length)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) not in lengths:
        want = " or ".join(str(n) for n in lengths)
        raise SpecError(field, f"expected a list of {want} numbers, got {value!r}", source)
    return tuple(check_number(v, f"{field}[{i}]", source, lo, hi) for i, v in enumerate(value))


def parse_color(value: Any, field: str, source: str | None) -> tuple[float, float, float]:
    if isinstance(value, str):
        s = value.lstrip("#")
        if len(s) != 6 or any(c not in "0123456789abcdefABCDEF" for c in s):
            raise SpecError(field, f"expected '#rrggbb' or [r, g, b] in [0, 1], got {value!r}", source)
        return tuple(int(s[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]
    return check_vector(value, field, source, 3, 0.0, 1.0)  # type: ignore[return-value]
