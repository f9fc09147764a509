"""Face landmark graphs for expression recognition: layouts, normalisation, Delaunay edges, node partitions.

OpenDR D3.2 Sec. 4.1 (PST-BLN, Heidari & Iosifidis 2021). A sequence is ``(N, T, V, 2)`` landmark pixel
coordinates ``(x, y)`` (x right, y down).

* **Layout** (:class:`FaceLayout`): which landmark is the nose (the graph's master node and the origin),
  which landmarks form the two eyes (the scale) and the left/right mirror permutation (flip augmentation).
  :data:`DLIB51` is dlib's 68-point layout without the 17 jaw points (brows 10, nose 9, eyes 12, mouth 20):
  index ``i`` is dlib point ``i + 17``. Any other layout (a denser MediaPipe subset) is a
  :class:`FaceLayout` of its own.
* **Normalisation** (:func:`normalise`): subtract the nose landmark in every frame, divide the sequence by
  its inter-ocular distance (distance between the two eye centres) in frame 0. The result has the nose at
  the origin and eye centres one unit apart at the start of the sequence.
* **Edges** (:func:`delaunay_edges`): a Delaunay triangulation (``scipy.spatial.Delaunay``) of a reference
  shape (:func:`reference_shape`: the mean normalised shape of a training set, or a given template) plus the
  master node linked to every other node. Unlike OpenDR (3 edges per triangle with duplicates, and the nose
  linked to itself, E = 309 for 51 points) the edge set here is undirected and deduplicated: first the
  ``V - 1`` master edges ``(i, nose)`` in index order, then the triangulation edges ``(i, j)``, ``i < j``,
  not incident to the nose, sorted. An edge feature is ``e_ij = p_i - p_j`` (so a master edge carries the
  normalised landmark itself).
* **Node partitions** (:func:`node_partitions`) for ST-GCN / AGCN on the same graph: ST-GCN's spatial
  configuration partitioning with the nose as the centre, by Euclidean distance to it in the reference shape
  (the ST-GCN paper's definition; on a graph where the nose reaches every node in one hop, hop distances
  would put every neighbour in one subset): subset 0 the node itself, 1 neighbours nearer the nose, 2
  neighbours farther (equal distances, measure zero, join subset 0). Rows normalised as in
  :func:`hcgym.perception.action.graph.normalise_rows`.

:class:`FaceGraph` bundles a layout with its edges and reference shape; it is part of a model's
configuration (plain tuples, JSON-ready), so a checkpoint rebuilds the same graph without recomputing it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcgym.errors import SpecError

# dlib 68 mirror pairs (0-based dlib indices); points on the symmetry axis map to themselves
_DLIB68_PAIRS = ((17, 26), (18, 25), (19, 24), (20, 23), (21, 22),            # brows
                 (31, 35), (32, 34),                                           # nostrils
                 (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
                 (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),            # outer lips
                 (60, 64), (61, 63), (65, 67))                                 # inner lips


def _dlib51_flip() -> tuple[int, ...]:
    perm = list(range(68))
    for a, b in _DLIB68_PAIRS:
        perm[a], perm[b] = b, a
    return tuple(p - 17 for p in perm[17:])


@dataclass(frozen=True)
class FaceLayout:
    """Which landmark plays which role in a ``V``-point face layout.

    Attributes:
        num_points: ``V``.
        nose: index of the master node / origin.
        eyes: two tuples of indices; the inter-ocular distance is the distance between their means.
        flip: mirror permutation (``flip[i]`` is the landmark that ``i`` becomes in a horizontally mirrored
            face), or ``None`` when unknown (flip augmentation is then unavailable).
    """

    num_points: int
    nose: int
    eyes: tuple[tuple[int, ...], tuple[int, ...]]
    flip: tuple[int, ...] | None = None

    def check(self) -> FaceLayout:
        """Raise :class:`SpecError` on an inconsistent layout; return ``self``."""
        v = self.num_points
        if isinstance(v, bool) or not isinstance(v, int) or v < 3:
            raise SpecError("graph.num_points", f"must be an integer of at least 3, got {v!r}")
        if not 0 <= self.nose < v:
            raise SpecError("graph.nose", f"must be an index below {v}, got {self.nose!r}")
        if len(self.eyes) != 2 or not all(len(e) and all(0 <= i < v for i in e) for e in self.eyes):
            raise SpecError("graph.eyes", f"must be two non-empty lists of indices below {v}, got {self.eyes!r}")
        if self.flip is not None and sorted(self.flip) != list(range(v)):
            raise SpecError("graph.flip", f"must be a permutation of 0..{v - 1}")
        return self


#: dlib 68 minus the jaw: nose tip (dlib 30) is index 13, eyes are dlib 36-41 and 42-47.
DLIB51 = FaceLayout(num_points=51, nose=13, eyes=(tuple(range(19, 25)), tuple(range(25, 31))),
                    flip=_dlib51_flip()).check()


def normalise(x: Any, nose: int, eyes: tuple[tuple[int, ...], tuple[int, ...]]) -> Any:
    """Nose-centred, inter-ocular-scaled landmarks: (N, T, V, 2) -> (N, T, V, 2), torch or numpy.

    Every frame minus its nose landmark, divided by the distance between the two eye centres of frame 0
    (clamped at 1e-6, so an all-zero sequence stays zero).
    """
    import torch

    as_numpy = isinstance(x, np.ndarray)
    t = torch.from_numpy(np.asarray(x, dtype=np.float32)) if as_numpy else x
    centred = t - t[:, :, nose:nose + 1]
    a, b = t[:, 0, list(eyes[0])].mean(1), t[:, 0, list(eyes[1])].mean(1)
    iod = (a - b).norm(dim=-1).clamp_min(1e-6)
    out = centred / iod[:, None, None, None]
    return out.numpy() if as_numpy else out


def reference_shape(x: np.ndarray, layout: FaceLayout) -> np.ndarray:
    """(V, 2) mean normalised shape of sequences (N, T, V, 2) (all frames), float64."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[2:] != (layout.num_points, 2) or len(x) == 0:
        raise SpecError("x", f"expected (N, T, {layout.num_points}, 2) landmarks with N >= 1, got {x.shape}")
    return normalise(x, layout.nose, layout.eyes).astype(np.float64).mean(axis=(0, 1))


def delaunay_edges(points: np.ndarray, master: int) -> np.ndarray:
    """(E, 2) int64 undirected edges: master edges ``(i, master)`` then Delaunay edges ``(i < j)``, sorted.

    ``points``: (V, 2) reference shape (distinct points, not all collinear).
    """
    from scipy.spatial import Delaunay, QhullError

    points = np.asarray(points, dtype=np.float64)
    v = len(points)
    try:
        tri = Delaunay(points)
    except QhullError as e:
        raise SpecError("reference", f"the reference shape cannot be triangulated ({str(e).splitlines()[0]})") from None
    pairs = {tuple(sorted((int(s[a]), int(s[b])))) for s in tri.simplices for a, b in ((0, 1), (0, 2), (1, 2))}
    rest = sorted(p for p in pairs if master not in p)
    star = [(i, master) for i in range(v) if i != master]
    return np.asarray(star + rest, dtype=np.int64)


def node_partitions(edges: np.ndarray, reference: np.ndarray, center: int) -> np.ndarray:
    """(3, V, V) float32 row-normalised root / nearer / farther subsets (``[k, receiver, sender]``).

    Distances are Euclidean distances to ``center`` in ``reference`` (V, 2).
    """
    from hcgym.perception.action.graph import normalise_rows

    reference = np.asarray(reference, dtype=np.float64)
    v = len(reference)
    r = np.linalg.norm(reference - reference[center], axis=1)
    parts = np.zeros((3, v, v), dtype=np.float32)
    parts[0] = np.eye(v, dtype=np.float32)
    for a, b in np.asarray(edges):
        for i, j in ((a, b), (b, a)):
            k = 1 if r[j] < r[i] - 1e-9 else 2 if r[j] > r[i] + 1e-9 else 0
            parts[k, i, j] = 1.0
    return normalise_rows(parts).astype(np.float32)


@dataclass(frozen=True)
class FaceGraph:
    """A layout with its edges and the reference shape they came from (plain tuples, JSON-ready).

    Attributes:
        layout: the :class:`FaceLayout`.
        edges: ``E`` pairs ``(i, j)``; edge feature ``p_i - p_j``.
        reference: ``V`` normalised ``(x, y)`` points (for the node partitions).
    """

    layout: FaceLayout
    edges: tuple[tuple[int, int], ...]
    reference: tuple[tuple[float, float], ...]

    @property
    def num_edges(self) -> int:
        """``E``."""
        return len(self.edges)

    def check(self) -> FaceGraph:
        """Raise :class:`SpecError` on an inconsistent graph; return ``self``."""
        self.layout.check()
        v = self.layout.num_points
        if len(self.reference) != v:
            raise SpecError("graph.reference", f"needs {v} points, got {len(self.reference)}")
        if not self.edges or any(len(e) != 2 or not (0 <= e[0] < v and 0 <= e[1] < v) or e[0] == e[1]
                                 for e in self.edges):
            raise SpecError("graph.edges", f"must be a non-empty list of pairs of distinct indices below {v}")
        return self

    def partitions(self) -> np.ndarray:
        """(3, V, V) node partitions of :func:`node_partitions` (centre: the nose)."""
        return node_partitions(np.asarray(self.edges), np.asarray(self.reference), self.layout.nose)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"layout": dataclasses.asdict(self.layout), "edges": [list(e) for e in self.edges],
                "reference": [list(p) for p in self.reference]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceGraph:
        """The inverse of :meth:`to_dict` (checked)."""
        try:
            lay = data["layout"]
            layout = FaceLayout(int(lay["num_points"]), int(lay["nose"]),
                                (tuple(lay["eyes"][0]), tuple(lay["eyes"][1])),
                                None if lay.get("flip") is None else tuple(lay["flip"]))
            graph = cls(layout, tuple((int(a), int(b)) for a, b in data["edges"]),
                        tuple((float(x), float(y)) for x, y in data["reference"]))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise SpecError("graph", f"not a face graph ({type(e).__name__}: {e})") from None
        return graph.check()


def face_graph(layout: FaceLayout, reference: np.ndarray) -> FaceGraph:
    """The :class:`FaceGraph` of a layout from a (V, 2) normalised reference shape (rounded to 1e-6)."""
    layout.check()
    reference = np.round(np.asarray(reference, dtype=np.float64), 6)
    if reference.shape != (layout.num_points, 2) or not np.isfinite(reference).all():
        raise SpecError("reference", f"expected ({layout.num_points}, 2) finite points, got {reference.shape}")
    edges = delaunay_edges(reference, layout.nose)
    return FaceGraph(layout, tuple((int(a), int(b)) for a, b in edges),
                     tuple((float(x), float(y)) for x, y in reference)).check()


def graph_from_data(x: np.ndarray, layout: FaceLayout = DLIB51) -> FaceGraph:
    """The graph of a training set: Delaunay edges of its mean normalised shape (x: (N, T, V, 2) pixels)."""
    return face_graph(layout, reference_shape(x, layout))
