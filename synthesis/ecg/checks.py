"""Argument checks of the ECG generators: each bad value raises a SpecError naming its field, before any work."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from hcgym.errors import SpecError

#: Sampling rates (Hz) of the beat sets and streams, and of the rhythm sets (downsampled for CPU training).
FS_RANGE = (125, 500)
RHYTHM_FS_RANGE = (50, 500)
SNR_RANGE = (-30.0, 60.0)


def number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def integer(v: Any, field: str, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise SpecError(field, f"expected an integer, got {v!r}")
    v = int(v)
    if v < lo or (hi is not None and v > hi):
        raise SpecError(field, f"must be in [{lo}, {hi if hi is not None else 'inf'}], got {v}")
    return v


def seed(v: Any) -> int:
    return integer(v, "seed", 0, 2 ** 63 - 1)


def fs(v: Any, bounds: tuple[int, int] = FS_RANGE) -> float:
    if not number(v) or not bounds[0] <= float(v) <= bounds[1]:
        raise SpecError("fs", f"sampling rate must be a number in [{bounds[0]}, {bounds[1]}] Hz, got {v!r}")
    return float(v)


def share(v: Any, field: str) -> float:
    if not number(v) or not 0.0 <= float(v) <= 1.0:
        raise SpecError(field, f"must be a number in [0, 1], got {v!r}")
    return float(v)


def snr(v: Any, field: str = "snr_db") -> tuple[float, float] | None:
    """``None`` (no noise), a number, or a ``(low, high)`` range drawn uniformly per record -> ``(low, high)``."""
    if v is None:
        return None
    pair = (v, v) if number(v) else tuple(v) if isinstance(v, (tuple, list)) else ()
    lo, hi = SNR_RANGE
    if len(pair) != 2 or not all(number(x) for x in pair) or not lo <= pair[0] <= pair[1] <= hi:
        raise SpecError(field, f"expected None, a number of dB or a (low, high) range within [{lo:g}, {hi:g}], "
                               f"got {v!r}")
    return float(pair[0]), float(pair[1])


def choice(v: Any, field: str, allowed: Sequence[str]) -> str:
    if not isinstance(v, str) or v not in allowed:
        raise SpecError(field, f"unknown value {v!r} (allowed: {', '.join(allowed)})")
    return v


def choices(v: Iterable[Any] | None, field: str, allowed: Sequence[str]) -> tuple[str, ...]:
    if v is None:
        return tuple(allowed)
    if isinstance(v, str):
        v = (v,)
    out = tuple(choice(x, field, allowed) for x in v)
    if not out:
        raise SpecError(field, f"needs at least one of {', '.join(allowed)}")
    return out


def people(v: Iterable[Any] | None, default: int) -> tuple[int, ...]:
    if v is None:
        return tuple(range(default))
    if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
        raise SpecError("people", f"expected a range or list of person ids, got {v!r}")
    out = tuple(integer(p, "people", 0, 2 ** 62) for p in v)
    if not out or len(set(out)) != len(out):
        raise SpecError("people", "needs at least one person id and no repeats")
    return out
