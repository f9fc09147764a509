"""The NTU RGB+D 25-joint skeleton graph and its spatial-configuration adjacency (ST-GCN, 2s-AGCN).

Joint order and bones are the project's (:data:`hcgym.synthesis.motion.skeleton.NTU_JOINTS`,
:data:`~hcgym.synthesis.motion.skeleton.NTU_BONES`): 25 joints, 24 bones forming a tree. The bone list
differs from the ST-GCN code's in one place: there the hand tip hangs on the thumb and the thumb on the
hand (``(22, 23), (23, 8)`` 1-based); here both the tip and the thumb hang on the hand joint.

Spatial configuration partitioning (ST-GCN, Yan et al. 2018; OpenDR D3.2 Sec. 3.2, Eq. 13): the centre
of gravity is the ``spine_shoulder`` joint (NTU's joint 21, "spine"; ST-GCN's ``center = 21 - 1``).
For a receiving joint ``i`` with hop distance ``r_i`` to the centre, its neighbourhood (itself and its
bone neighbours) splits into three subsets:

* ``0`` root: ``i`` itself (so the binary ``A_0 = I``);
* ``1`` centripetal: neighbours ``j`` closer to the centre (``r_j < r_i``);
* ``2`` centrifugal: neighbours ``j`` farther from the centre (``r_j > r_i``).

On a tree no neighbour is at the same distance, so the three binary matrices sum to ``A + I``.

Convention: ``A[p, i, j]`` is the weight with which joint ``i`` receives joint ``j``'s features in subset
``p``, so a layer computes ``H'_i = sum_p sum_j A[p, i, j] H_j W_p`` (``A_p H W_p`` of Eq. 13).

Normalisation: each subset is normalised by the receiving joint's degree within that subset,
``A_p <- D_p^{-1} A_p`` with ``D_p = diag(rowsum A_p)`` (rows with no neighbour stay zero), so every
non-empty row of every subset sums to 1 and each joint averages over its neighbours in the subset. This
is what the ST-GCN / 2s-AGCN / CoST-GCN code computes (``normalize_digraph`` on each subset). The
symmetric ``D_p^{-1/2} A_p D_p^{-1/2}`` written in the deliverable is not defined for the directed
centripetal / centrifugal subsets (the centre has no centripetal neighbour, leaves no centrifugal one);
for the undirected ``A_0 = I`` both forms give ``I``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from hcgym.synthesis.motion.skeleton import NTU_BONES, NTU_JOINTS

#: Number of joints of the NTU RGB+D skeleton.
NUM_JOINTS: int = len(NTU_JOINTS)
#: Centre of gravity of the spatial configuration partitioning.
CENTER_JOINT: str = "spine_shoulder"
#: Names of the three spatial subsets, in adjacency order.
PARTITIONS: tuple[str, ...] = ("root", "centripetal", "centrifugal")


def hop_distances(bones: tuple[tuple[int, int], ...] = NTU_BONES, num_joints: int = NUM_JOINTS,
                  center: int | None = None) -> np.ndarray:
    """(V,) hop distance of every joint to ``center`` along the bones (-1 where unreachable)."""
    center = NTU_JOINTS.index(CENTER_JOINT) if center is None else center
    neighbours: list[list[int]] = [[] for _ in range(num_joints)]
    for a, b in bones:
        neighbours[a].append(b)
        neighbours[b].append(a)
    dist = np.full(num_joints, -1, dtype=np.int64)
    dist[center] = 0
    queue = deque([center])
    while queue:
        i = queue.popleft()
        for j in neighbours[i]:
            if dist[j] < 0:
                dist[j] = dist[i] + 1
                queue.append(j)
    return dist


def binary_partitions(bones: tuple[tuple[int, int], ...] = NTU_BONES, num_joints: int = NUM_JOINTS,
                      center: int | None = None) -> np.ndarray:
    """(3, V, V) 0/1 root / centripetal / centrifugal subsets (``[p, receiver, sender]``)."""
    dist = hop_distances(bones, num_joints, center)
    parts = np.zeros((3, num_joints, num_joints), dtype=np.float32)
    parts[0] = np.eye(num_joints, dtype=np.float32)
    for a, b in bones:
        for i, j in ((a, b), (b, a)):
            if dist[j] < dist[i]:
                parts[1, i, j] = 1.0
            elif dist[j] > dist[i]:
                parts[2, i, j] = 1.0
            else:  # same distance: belongs with the root subset (not on a tree)
                parts[0, i, j] = 1.0
    return parts


def normalise_rows(a: np.ndarray) -> np.ndarray:
    """``D^{-1} A`` for each (V, V) matrix of ``a`` (..., V, V): non-empty rows sum to 1, empty rows stay 0."""
    deg = a.sum(axis=-1, keepdims=True)
    return np.divide(a, deg, out=np.zeros_like(a), where=deg > 0)


def ntu_adjacency() -> np.ndarray:
    """(3, 25, 25) float32 normalised spatial-configuration adjacency of the NTU RGB+D skeleton."""
    return normalise_rows(binary_partitions()).astype(np.float32)
