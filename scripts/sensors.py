"""``hcgym sensors [PREFIX] [--json]``: list every registered sensor with its input, output and ONNX export."""

from __future__ import annotations

import argparse
import json
from typing import Any

#: Table columns: (header, SensorSpec field).
COLUMNS = (("id", "id"), ("kind", "kind"), ("input", "input"), ("output", "output"), ("onnx", "onnx"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sensors", help="list the registered sensors (input, output, ONNX export)",
                       description="List every sensor of the registry (hcgym.perception.make(ID) creates it): "
                                   "id, kind, what a call takes, what it returns and whether it exports to ONNX.")
    p.add_argument("prefix", nargs="?", default="", help="only ids starting with this, e.g. face/ or nms/")
    p.add_argument("--json", action="store_true", help="print a JSON list (every field, with entry points and "
                                                       "default arguments) instead of the table")
    p.set_defaults(func=run)


def table(rows: list[dict[str, Any]]) -> str:
    """A plain text table of ``rows`` (dicts with the :data:`COLUMNS` fields), columns padded to align."""
    cells = [[h for h, _ in COLUMNS]]
    cells += [[("yes" if r[f] else "no") if f == "onnx" else str(r[f]) for _, f in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def run(args: argparse.Namespace) -> int:
    from hcgym.errors import SpecError
    from hcgym.perception.registry import registry, specs

    rows = [s.as_dict() for s in specs(args.prefix)]
    if not rows:
        tasks = sorted({k.partition("/")[0] + "/" for k in registry})
        raise SpecError("prefix", f"no sensor id starts with {args.prefix!r} (tasks: {', '.join(tasks)})")
    print(json.dumps(rows, indent=1, default=str) if args.json else table(rows))
    return 0
