"""Argument parsers shared by several subcommands (each error names the argument)."""

from __future__ import annotations

import argparse
import math
from typing import Any


def seed_range(text: str) -> list[int]:
    """``"1-8"`` -> [1..8]; ``"3,5,9"`` -> [3, 5, 9]; ``"1-3,7"`` -> [1, 2, 3, 7]."""
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 1-8 or 1,4,9 (non-negative), got {text!r}") from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"expected seeds like 1-8 or 1,4,9 (non-negative), got {text!r}")
    return out


def finite(text: str) -> float:
    """A finite number (``nan`` and ``inf`` are refused)."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """A strictly positive finite number."""
    v = finite(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def floats(n: int, name: str):
    """Parser of ``n`` comma-separated numbers."""

    def parse(text: str) -> tuple[float, ...]:
        try:
            vals = tuple(float(x) for x in text.split(","))
        except ValueError:
            vals = ()
        if len(vals) != n or not all(math.isfinite(v) for v in vals):
            raise argparse.ArgumentTypeError(f"expected {name} as {n} comma-separated numbers, got {text!r}")
        return vals

    return parse


def ints(n: int, name: str):
    """Parser of ``n`` comma-separated integers."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            vals = tuple(int(x) for x in text.split(","))
        except ValueError:
            vals = ()
        if len(vals) != n:
            raise argparse.ArgumentTypeError(f"expected {name} as {n} comma-separated integers, got {text!r}")
        return vals

    return parse


def seed(text: str) -> int:
    """A non-negative integer seed."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A strictly positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def size(text: str) -> tuple[int, int]:
    """``WxH`` (e.g. ``84x84``) -> (W, H)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        w = h = 0
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"expected WxH with both at least 8, e.g. 84x84, got {text!r}")
    return w, h


def scoring_options(args: argparse.Namespace) -> dict[str, Any]:
    """The bench's scoring options given on the command line (``--score-threshold``, ``--face-iou``,
    ``--face-match``, ``--face-min-landmarks``), as :class:`~hcgym.perception.bench.BenchConfig` fields;
    options left at ``None`` keep the config's defaults."""
    names = ("score_threshold", "face_iou", "face_match", "face_min_landmarks")
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
