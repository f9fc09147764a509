"""Action recognition (OpenDR D3.2 §3.1, §3.2, §6.1): clip models, their continual versions, live sensors.

* :mod:`.x3d`: a small X3D-like 3D CNN with SE blocks (clip) and its continual CoX3D, built from the
  ``continual-inference`` package's modules;
* :mod:`.attention`: SE and CBAM with the "learning to ignore" variants Ign1(alpha), Ign2, Ign3;
* :mod:`.gcn`, :mod:`.graph`: ST-GCN and AGCN on the NTU RGB+D 25-joint skeleton and their continual
  CoST-GCN / CoAGCN (and the stride-1 "*" variants);
* :mod:`.fusion`: MMTM fusion of the RGB and skeleton streams;
* :mod:`.sensors`: the frame-by-frame sensors ``action/costgcn`` and ``action/cox3d`` (registered here;
  :mod:`.skeleton` and :mod:`.crop` prepare their inputs as the training data was prepared).

See ``docs/action.md``. Importing this package imports no model code (torch, continual-inference).
"""

from __future__ import annotations

from hcgym.perception.registry import register

__all__ = ["COSTGCN", "COX3D", "register_all"]

#: Registry ids of the continual action sensors.
COSTGCN, COX3D = "action/costgcn", "action/cox3d"


def register_all() -> None:
    """Register the action sensors (called by the registry on its first look-up)."""
    register(COSTGCN, "hcgym.perception.action.sensors:CoSTGCNSensor", kind="action classifier (continual, skeleton)",
             input="rgb frame (one stream)", output="Classification", onnx=True,
             description="CoST-GCN on MediaPipe Pose skeletons, frame by frame: the frame's action after the delay")
    register(COX3D, "hcgym.perception.action.sensors:CoX3DSensor", kind="action classifier (continual, video)",
             input="rgb frame (one stream)", output="Classification", onnx=True,
             description="CoX3D on a person crop, frame by frame: the frame's action after the delay")
