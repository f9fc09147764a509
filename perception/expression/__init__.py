"""Facial expression recognition from landmark sequences (OpenDR D3.2 Sec. 4.1): ST-BLN, PST-BLN, MC dropout.

* :mod:`.graph`: face layouts (:data:`~.graph.DLIB51`), normalisation, Delaunay edges, node partitions;
* :mod:`.models`, :mod:`.bln`: ST-BLN (bilinear layers on edge features), ST-GCN and AGCN on the landmark
  graph, :func:`~.models.count_params`;
* :mod:`.progressive`: PST-BLN, the progressive width and depth search;
* :mod:`.mcdropout`: Monte Carlo dropout predictions and uncertainty;
* :mod:`.training`: training with augmentation, :func:`~.training.fit_pstbln`;
* :mod:`.toy`: procedural landmark sequences of the seven expressions.

Importing this package imports no model code (torch).
"""

from __future__ import annotations

__all__ = ["register_all"]


def register_all() -> None:
    """Register the expression sensors (called by the registry on its first look-up); none yet."""
