"""Action recognition (OpenDR D3.2 §3.1, §3.2, §6.1): clip models and their continual versions.

* :mod:`.x3d`: a small X3D-like 3D CNN with SE blocks (clip) and its continual CoX3D, built from the
  ``continual-inference`` package's modules;
* :mod:`.attention`: SE and CBAM with the "learning to ignore" variants Ign1(alpha), Ign2, Ign3;
* :mod:`.gcn`, :mod:`.graph`: ST-GCN and AGCN on the NTU RGB+D 25-joint skeleton and their continual
  CoST-GCN / CoAGCN (and the stride-1 "*" variants);
* :mod:`.fusion`: MMTM fusion of the RGB and skeleton streams.

See ``docs/action.md``.
"""
