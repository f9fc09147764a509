"""The farm-field worlds (``field``, ``field_green``, ``field_ploughed``): their layout, written as YAML.

A field is open ground of ``size`` x ``size`` metres with a procedural crop or soil floor,
bordered by hedgerows with trees, and strewn with the person-like clutter that fools person
detectors on agricultural robots (OpenDR D3.2 section 2.6): fence and marker posts, round and
square hay bales (some stacked, some wrapped), scarecrows (a post, a crossbar, a coat and a
head), solitary trees, bushes, stones, power-line poles, tractors and water tanks. Composite
objects are built from the spec's primitives (boxes, cylinders, spheres) and share one yaw.

Positions are drawn once from a fixed seed, so the shipped YAML files are plain data; this
module rewrites them (``python -m hcgym.worlds.field_layout``, tested to reproduce them) and
makes other fields (:func:`field_world` with another seed, size or floor).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

#: Floors of the shipped variants (see ``docs/worlds.md``).
VARIANTS: dict[str, dict[str, Any]] = {
    "field": {"pattern": "crop_rows", "color": [0.45, 0.34, 0.25], "secondary": [0.3, 0.5, 0.16],
              "tile_size": 0.75, "cover": 0.4, "repeat": 30.0},
    "field_green": {"pattern": "crop_rows", "color": [0.42, 0.32, 0.23], "secondary": [0.27, 0.46, 0.15],
                    "tile_size": 0.75, "cover": 0.85, "repeat": 30.0},
    "field_ploughed": {"pattern": "soil", "color": [0.5, 0.39, 0.29], "secondary": [0.34, 0.26, 0.19],
                       "tile_size": 0.5, "repeat": 30.0},
}
DESCRIPTIONS = {
    "field": "young crop rows (0.75 m apart) on bare soil",
    "field_green": "crop rows closing into a green canopy",
    "field_ploughed": "ploughed bare soil, furrows 0.5 m apart",
}
SEED = 7
SIZE = 160.0
WOOD = [0.42, 0.33, 0.24]
#: Half-width of the band inside the hedgerows where clutter stands (metres from the centre).
INNER = 70.0


class _Layout:
    """Collects props and keeps the footprints of placed objects apart."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.props: list[dict[str, Any]] = []
        self.spots: list[tuple[float, float, float]] = []  # x, y, radius of placed objects
        self.counts: dict[str, int] = {}

    def free_spot(self, radius: float, half: float = INNER, gap: float = 2.0) -> tuple[float, float]:
        """A uniformly drawn spot whose footprint keeps ``gap`` metres from every object placed so far."""
        for _ in range(500):
            x, y = (float(v) for v in self.rng.uniform(-half, half, 2))
            if all(math.hypot(x - px, y - py) >= radius + pr + gap for px, py, pr in self.spots):
                return x, y
        raise RuntimeError("no free spot left: the field is too small for its clutter")

    def add(self, kind: str, parts: list[tuple[str, list[float], tuple[float, float, float], list[float]]],
            x: float, y: float, yaw: float, radius: float) -> None:
        """One object of ``parts`` (shape, size, offset (dx, dy, z) in the object frame, colour) at
        ``(x, y)`` turned by ``yaw`` degrees; ``radius`` bounds its footprint."""
        k = self.counts.get(kind, 0)
        self.counts[kind] = k + 1
        c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        for i, (shape, size, (dx, dy, z), color) in enumerate(parts):
            name = f"{kind}{k:02d}" + (f"_{i}" if len(parts) > 1 else "")
            pos = [x + c * dx - s * dy, y + s * dx + c * dy] + ([z] if z else [])
            self.props.append({"name": name, "shape": shape, "size": size, "position": pos, "yaw": yaw,
                               "color": color})
        self.spots.append((x, y, radius))


def _jitter(rng: np.random.Generator, color: list[float], amount: float = 0.06) -> list[float]:
    return [float(np.clip(c * (1 + rng.uniform(-amount, amount)), 0, 1)) for c in color]


def _tree(lay: _Layout, x: float, y: float, scale: float) -> None:
    rng = lay.rng
    trunk_h = 2.2 * scale
    crown = float(rng.uniform(4.0, 6.5)) * scale
    leaves = _jitter(rng, [0.2, 0.33, 0.14], 0.15)
    parts = [("cylinder", [0.35 * scale, 0.35 * scale, trunk_h + 0.3 * crown], (0, 0, 0),
              _jitter(rng, [0.33, 0.25, 0.18])),
             ("sphere", [crown], (0, 0, trunk_h), leaves)]
    for side in (-1, 1):  # two smaller lobes make the crown irregular
        lobe = crown * float(rng.uniform(0.5, 0.7))
        parts.append(("sphere", [lobe], (side * crown * 0.35, float(rng.uniform(-0.2, 0.2)) * crown,
                                         trunk_h + crown * float(rng.uniform(0.15, 0.45))), _jitter(rng, leaves, 0.1)))
    lay.add("tree", parts, x, y, float(rng.uniform(-180, 180)), 0.6)


def _line(lay: _Layout, spacing: float, count: int | None, kind: str) -> None:
    """A straight line of posts (``fencepost``: 20-40 m long) or power-line poles (``pole``), clear of
    everything placed before."""
    rng = lay.rng
    n = count or int(rng.uniform(20, 40) // spacing) + 1
    for _ in range(500):
        x0, y0 = (float(v) for v in rng.uniform(-INNER, INNER, 2))
        yaw = float(rng.uniform(-180, 180))
        c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        spots = [(x0 + c * spacing * (i - (n - 1) / 2), y0 + s * spacing * (i - (n - 1) / 2)) for i in range(n)]
        if all(max(abs(x), abs(y)) < INNER and all(math.hypot(x - px, y - py) >= pr + 2.0 for px, py, pr in lay.spots)
               for x, y in spots):
            break
    else:
        raise RuntimeError("no room left for a line of posts")
    for x, y in spots:
        if kind == "pole":
            parts = [("cylinder", [0.28, 0.28, 9.0], (0, 0, 0), _jitter(rng, [0.35, 0.3, 0.25])),
                     ("box", [0.12, 1.8, 0.12], (0, 0, 8.4), _jitter(rng, [0.35, 0.3, 0.25]))]
        else:
            parts = [("cylinder", [0.12, 0.12, float(rng.uniform(1.2, 1.5))], (0, 0, 0), _jitter(rng, WOOD))]
        lay.add(kind, parts, x, y, yaw, 0.3)


def _hedgerows(lay: _Layout, size: float) -> None:
    """Hedge segments along the four edges (irregular heights and depths) with trees in them."""
    rng = lay.rng
    half = size / 2
    seg = 16.0
    for side in range(4):
        for i in range(int(size // seg)):
            along = -half + (i + 0.5) * seg
            depth, height = float(rng.uniform(1.8, 3.0)), float(rng.uniform(2.2, 4.5))
            inset = half - 1.6
            x, y = [(along, inset), (inset, along), (along, -inset), (-inset, along)][side]
            yaw = (90.0 if side % 2 else 0.0) + float(rng.uniform(-2, 2))
            lay.add("hedge", [("box", [seg + 1.0, depth, height], (0, 0, 0), _jitter(rng, [0.17, 0.29, 0.13], 0.2))],
                    x, y, yaw, 0.0)
        for along in np.arange(-half + 12, half - 8, 26.0):
            along += float(rng.uniform(-5, 5))
            inset = half - 3.5
            x, y = [(along, inset), (inset, along), (along, -inset), (-inset, along)][side]
            _tree(lay, float(x), float(y), float(rng.uniform(1.2, 1.8)))


def _clutter(lay: _Layout) -> None:
    """Person-like clutter spread over the field."""
    rng = lay.rng
    straw = [0.8, 0.68, 0.4]
    wraps = ([0.92, 0.92, 0.9], [0.1, 0.1, 0.1], [0.25, 0.38, 0.24])

    # Fence lines (posts every 3 m: a row of person-sized verticals) and a power line (poles 40 m apart).
    _line(lay, 40.0, 4, "pole")
    for _ in range(3):
        _line(lay, 3.0, None, "fencepost")
    # Marker poles: white with a red top.
    for _ in range(14):
        x, y = lay.free_spot(0.1)
        h = float(rng.uniform(1.4, 2.0))
        lay.add("marker", [("cylinder", [0.06, 0.06, h - 0.3], (0, 0, 0), [0.93, 0.93, 0.9]),
                           ("cylinder", [0.06, 0.06, 0.3], (0, 0, h - 0.3), [0.85, 0.12, 0.1])],
                x, y, 0.0, 0.1)
    # Round bales: alone, in rows, some stacked; straw or wrapped in plastic.
    for _ in range(12):
        count = int(rng.integers(1, 5))
        x, y = lay.free_spot(0.9 * count)
        yaw = float(rng.uniform(-180, 180))
        color = straw if rng.random() < 0.6 else wraps[int(rng.integers(3))]
        parts = []
        for i in range(count):
            parts.append(("cylinder", [1.5, 1.5, 1.2], ((i - (count - 1) / 2) * 1.6, 0, 0), _jitter(rng, color)))
            if count > 1 and rng.random() < 0.3:
                parts.append(("cylinder", [1.5, 1.5, 1.2], ((i - (count - 1) / 2) * 1.6, 0, 1.2), _jitter(rng, color)))
        lay.add("roundbale", parts, x, y, yaw, 0.9 * count)
    # Square bales: single, or stacks two or three high.
    for _ in range(8):
        x, y = lay.free_spot(1.5)
        levels = int(rng.choice([1, 1, 2, 3]))
        color = _jitter(rng, straw)
        parts = [("box", [2.4, 1.2, 0.9], (0, (i % 2) * 0.1, 0.9 * i), _jitter(rng, color, 0.03)) for i in range(levels)]
        if levels == 1 and rng.random() < 0.5:
            parts.append(("box", [2.4, 1.2, 0.9], (0, 1.3, 0), _jitter(rng, color, 0.03)))
        lay.add("squarebale", parts, x, y, float(rng.uniform(-180, 180)), 1.5)
    # Scarecrows: a post, a crossbar (arms), a coat, a head and a hat.
    coats = ([0.2, 0.22, 0.4], [0.5, 0.15, 0.12], [0.35, 0.3, 0.2], [0.25, 0.35, 0.2])
    for _ in range(8):
        x, y = lay.free_spot(0.7)
        coat = _jitter(rng, coats[int(rng.integers(len(coats)))])
        lay.add("scarecrow", [("cylinder", [0.08, 0.08, 1.95], (0, 0, 0), _jitter(rng, WOOD)),
                              ("box", [0.07, 1.3, 0.07], (0, 0, 1.42), _jitter(rng, WOOD)),
                              ("box", [0.25, 0.5, 0.7], (0, 0, 0.85), coat),
                              ("sphere", [0.28], (0, 0, 1.6), _jitter(rng, [0.85, 0.75, 0.5])),
                              ("cylinder", [0.4, 0.4, 0.04], (0, 0, 1.86), _jitter(rng, [0.55, 0.45, 0.25])),
                              ("cylinder", [0.2, 0.2, 0.14], (0, 0, 1.9), _jitter(rng, [0.55, 0.45, 0.25]))],
                x, y, float(rng.uniform(-180, 180)), 0.7)
    # Solitary trees and bushes (half-buried spheres).
    for _ in range(6):
        x, y = lay.free_spot(3.0)
        _tree(lay, x, y, float(rng.uniform(0.9, 1.4)))
    for _ in range(10):
        d = float(rng.uniform(1.0, 2.2))
        x, y = lay.free_spot(d / 2)
        lay.add("bush", [("sphere", [d], (0, 0, -0.3 * d), _jitter(rng, [0.22, 0.34, 0.15], 0.2))], x, y, 0.0, d / 2)
    # Stones.
    for _ in range(16):
        d = float(rng.uniform(0.3, 0.8))
        x, y = lay.free_spot(d / 2, gap=1.0)
        lay.add("stone", [("sphere", [d], (0, 0, -0.35 * d), _jitter(rng, [0.55, 0.53, 0.5], 0.12))], x, y, 0.0, d / 2)
    # Tractors (body, bonnet, cab, four wheels) and water tanks.
    for _ in range(2):
        x, y = lay.free_spot(2.5)
        paint = _jitter(rng, [[0.7, 0.12, 0.08], [0.15, 0.45, 0.15], [0.2, 0.35, 0.6]][int(rng.integers(3))])
        tyre = [0.08, 0.08, 0.08]
        lay.add("tractor", [("box", [3.2, 1.2, 0.9], (0.2, 0, 0.6), paint),
                            ("box", [1.4, 1.4, 1.4], (-0.7, 0, 1.5), [0.18, 0.22, 0.25]),
                            ("box", [1.6, 0.5, 1.6], (-0.9, 0.95, 0), tyre), ("box", [1.6, 0.5, 1.6], (-0.9, -0.95, 0), tyre),
                            ("box", [1.0, 0.4, 1.0], (1.3, 0.85, 0), tyre), ("box", [1.0, 0.4, 1.0], (1.3, -0.85, 0), tyre)],
                x, y, float(rng.uniform(-180, 180)), 2.5)
    for _ in range(3):
        x, y = lay.free_spot(0.8)
        lay.add("tank", [("box", [1.2, 1.0, 1.15], (0, 0, 0), _jitter(rng, [0.9, 0.9, 0.88], 0.03)),
                         ("box", [1.25, 1.05, 0.12], (0, 0, 0), [0.3, 0.3, 0.3])],
                x, y, float(rng.uniform(-180, 180)), 0.8)


def field_world(name: str = "field", floor: dict[str, Any] | None = None, seed: int = SEED,
                size: float = SIZE) -> dict[str, Any]:
    """The world spec (a YAML-ready dict) of a field of ``size`` x ``size`` metres (at least 120)."""
    if size < 120.0:
        raise ValueError(f"a field needs at least 120 x 120 m for its hedgerows and clutter, got {size:g}")
    lay = _Layout(np.random.default_rng(seed))
    humans = [
        {"name": "worker1", "avatar": {"seed": 100}, "position": [12.0, -1.5], "heading": 170, "pose": "stand"},
        {"name": "worker2", "avatar": {"seed": 101}, "position": [24.0, 4.0], "heading": -80, "pose": "point"},
        {"name": "worker3", "avatar": {"seed": 102}, "position": [38.0, -6.0], "heading": 150, "pose": "wave"},
    ]
    lay.spots += [(0.0, 0.0, 1.0)] + [(*h["position"], 0.5) for h in humans]  # the robot and the workers
    _hedgerows(lay, size)
    _clutter(lay)
    props = [{**p, "size": [round(v, 3) for v in p["size"]], "position": [round(v, 2) for v in p["position"]],
              "yaw": round(p["yaw"], 1), "color": [round(v, 3) for v in p["color"]]} for p in lay.props]
    for p in props:
        if p["shape"] == "sphere":
            p["size"] = p["size"][:1]
        if not p["yaw"]:
            del p["yaw"]
    return {
        "name": name,
        "room": {"size": [size, size], "walls": False, "floor": dict(floor or VARIANTS["field"])},
        "lights": [{"direction": [-0.45, 0.3, -0.85], "color": [1.0, 0.96, 0.88], "intensity": 1.0}],
        "ambient": 0.5,
        "background": [0.68, 0.78, 0.9],
        "props": props,
        "humans": humans,
        "robots": [{"name": "robotti", "body": "none", "position": [0.0, 0.0, 1.6], "yaw": 0,
                    "cameras": [{"name": "front", "width": 640, "height": 480, "hfov": 90,
                                 "near": 0.05, "far": 250, "mount": {"pitch": -10}}]}],
    }


def _flow(value: Any) -> str:
    """``value`` in YAML flow style (numbers short, strings bare)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}" if value != int(value) else f"{value:.1f}"
    return str(value)


def world_yaml(world: dict[str, Any], comment: str = "") -> str:
    """YAML text of a world dict: one line per prop, human and robot."""
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    for key, value in world.items():
        if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            lines.append(f"{key}:")
            lines += [f"  - {_flow(item)}" for item in value]
        elif isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {_flow(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def shipped_text(name: str) -> str:
    """The YAML text of shipped field variant ``name``."""
    comment = (f"A {SIZE:g} x {SIZE:g} m farm field: {DESCRIPTIONS[name]}, hedgerows with trees, and\n"
               "person-like clutter (posts, bales, scarecrows, trees, bushes, stones, poles, tractors, tanks).\n"
               "Three farm workers stand 12-38 m in front of a field robot's camera (1.6 m up, 90 degrees),\n"
               "which looks along the rows (+x).\n"
               "Written by `python -m hcgym.worlds.field_layout` (seed 7); edit that module, not this file.")
    return world_yaml(field_world(name, VARIANTS[name]), comment)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write the shipped field worlds (field*.yaml).")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent, help="folder (default: next to this module)")
    args = ap.parse_args(argv)
    for name in VARIANTS:
        (args.out / f"{name}.yaml").write_text(shipped_text(name))
        print(f"wrote {args.out / name}.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
