"""Facial expression recognition from landmark sequences (OpenDR D3.2 Sec. 4.1): ST-BLN, PST-BLN, MC dropout.

* :mod:`.graph`: face layouts (:data:`~.graph.DLIB51`), normalisation, Delaunay edges, node partitions;
* :mod:`.models`, :mod:`.bln`: ST-BLN (bilinear layers on edge features), ST-GCN and AGCN on the landmark
  graph, :func:`~.models.count_params`;
* :mod:`.progressive`: PST-BLN, the progressive width and depth search;
* :mod:`.mcdropout`: Monte Carlo dropout predictions and uncertainty;
* :mod:`.training`: training with augmentation, :func:`~.training.fit_pstbln`;
* :mod:`.toy`: procedural landmark sequences of the seven expressions;
* :mod:`.sensor`: the live sensor ``expression/pstbln`` (registered here; :mod:`.tracks` finds and tracks the
  faces, :mod:`.explicit_dropout` runs Monte Carlo dropout with the masks as inputs, for ONNX).

Importing this package imports no model code (torch).
"""

from __future__ import annotations

from hcgym.perception.registry import register

__all__ = ["PSTBLN", "register_all"]

#: Registry id of the live expression sensor.
PSTBLN = "expression/pstbln"


def register_all() -> None:
    """Register the expression sensors (called by the registry on its first look-up)."""
    register(PSTBLN, "hcgym.perception.expression.sensor:ExpressionSensor",
             kind="expression classifier (face tracks, MC dropout)", input="rgb frame (one stream)",
             output="Classification", onnx=True,
             description="PST-BLN on tracked face landmarks (MediaPipe Face Mesh or dlib): per face the "
                         "expression, its probabilities and Monte Carlo dropout uncertainty")
