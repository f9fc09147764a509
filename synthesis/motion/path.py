"""Walking paths: a polyline of waypoints with rounded corners, walked by arc length.

A person walks the path at its speed; :meth:`Path.at` gives the position and
heading after walking ``s`` metres. Corners are replaced by circular arcs
(fillets) of radius up to :data:`TURN_RADIUS`, so position and heading change
smoothly and a walking body always moves along the way it faces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Radius (m) of the arcs that round a path's corners (smaller where the legs are short).
TURN_RADIUS = 0.6


@dataclass(frozen=True)
class PathPiece:
    start: float  #: arc length where the piece begins.
    length: float
    p0: np.ndarray  #: start point (2,).
    heading0: float  #: heading at the start, radians.
    curvature: float  #: 1/radius, signed (+ = turning left/counter-clockwise), 0 for straight pieces.


class Path:
    """A walkable path through 2-D ``waypoints`` (the first is where the walk starts).

    Args:
        waypoints: (N, 2) points, N >= 2, consecutive points distinct.
        loop: walk back to the first waypoint and round again, forever.
        radius: corner arc radius (metres).
    """

    def __init__(self, waypoints, loop: bool = False, radius: float = TURN_RADIUS) -> None:
        pts = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
        if len(pts) < 2:
            raise ValueError("a path needs at least two waypoints")
        if loop and np.linalg.norm(pts[0] - pts[-1]) > 1e-9:
            pts = np.vstack([pts, pts[:1]])
        steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        if (steps < 1e-6).any():
            raise ValueError(f"waypoints {int(np.argmin(steps))} and {int(np.argmin(steps)) + 1} coincide")
        self.waypoints, self.loop = pts, loop
        self.pieces = self._build(pts, radius, loop)
        self.length = self.pieces[-1].start + self.pieces[-1].length

    @staticmethod
    def _build(pts: np.ndarray, radius: float, loop: bool) -> list[PathPiece]:
        n = len(pts)
        dirs = np.diff(pts, axis=0)
        lens = np.linalg.norm(dirs, axis=1)
        dirs = dirs / lens[:, None]
        # Fillet each interior corner (and the closing corner of a loop, skipped for simplicity: the loop
        # corner is rounded like the others by treating the path cyclically).
        corners = range(1, n - 1) if not loop else range(1, n)
        trim = np.zeros((n - 1, 2))  # metres cut from the start/end of each straight segment
        arcs = {}
        for c in corners:
            a_i, b_i = c - 1, c % (n - 1)
            d0, d1 = dirs[a_i], dirs[b_i]
            turn = math.atan2(d0[0] * d1[1] - d0[1] * d1[0], float(d0 @ d1))
            if abs(turn) < 1e-6:
                continue
            # Tangent length limited so that the fillets of neighbouring corners never overlap.
            r = radius
            t_len = r * math.tan(abs(turn) / 2)
            limit = 0.5 * min(lens[a_i], lens[b_i])
            if t_len > limit:
                t_len, r = limit, limit / math.tan(abs(turn) / 2)
            trim[a_i, 1] = t_len
            trim[b_i, 0] = t_len
            arcs[a_i] = (turn, r)
        pieces, s = [], 0.0
        for i in range(n - 1):
            p0 = pts[i] + dirs[i] * trim[i, 0]
            straight = lens[i] - trim[i, 0] - trim[i, 1]
            h = math.atan2(dirs[i][1], dirs[i][0])
            if straight > 1e-9:
                pieces.append(PathPiece(s, straight, p0, h, 0.0))
                s += straight
            if i in arcs:
                turn, r = arcs[i]
                pieces.append(PathPiece(s, abs(turn) * r, p0 + dirs[i] * straight, h, math.copysign(1.0 / r, turn)))
                s += abs(turn) * r
        return pieces

    def at(self, s: float) -> tuple[np.ndarray, float, float]:
        """(position (2,), heading degrees, curvature 1/m) after walking ``s`` metres (clamped; loops wrap)."""
        if self.loop:
            s = s % self.length
        s = float(np.clip(s, 0.0, self.length))
        k = 0
        while k + 1 < len(self.pieces) and self.pieces[k + 1].start <= s:
            k += 1
        p = self.pieces[k]
        u = s - p.start
        if p.curvature == 0.0:
            pos = p.p0 + u * np.array([math.cos(p.heading0), math.sin(p.heading0)])
            return pos, math.degrees(p.heading0), 0.0
        r = 1.0 / p.curvature
        h = p.heading0 + u * p.curvature
        # Centre of the arc lies to the left (r > 0) or right (r < 0) of the start heading.
        centre = p.p0 + r * np.array([-math.sin(p.heading0), math.cos(p.heading0)])
        pos = centre + r * np.array([math.sin(h), -math.cos(h)])
        return pos, math.degrees(h), p.curvature
