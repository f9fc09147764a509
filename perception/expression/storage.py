"""Compact storage of expression-model weights for shipping (the checkpoints of
:mod:`hcgym.perception.expression.study`).

:func:`pack`: ST-BLN's learnable graph matrices (``*.U``, ``S x E x E`` per layer, most of a bilinear
network's parameters) as int8 with one float32 scale per row (``max |row| / 127``, so every value is kept
within half a step of it), every other float tensor as float16. :func:`unpack` gives the float32 state dict
back; on a state dict that was never packed it only casts floats to float32, so loaders may always call it.
"""

from __future__ import annotations

from typing import Any

#: Suffixes of a packed graph matrix: int8 values and float32 scales (one per row).
PACKED = ("::int8", "::scale")


def pack(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict for shipping: ST-BLN's graph matrices (``*.U``, S x E x E) as int8 with one float32 scale
    per row (``max |row| / 127``), every other float tensor as float16 (:func:`unpack` inverts it)."""
    import torch

    out = {}
    for k, v in state.items():
        if k.endswith(".U"):
            scale = (v.float().abs().amax(dim=-1, keepdim=True) / 127).clamp_min(1e-30)
            out[k + PACKED[0]] = torch.round(v.float() / scale).clamp(-127, 127).to(torch.int8)
            out[k + PACKED[1]] = scale
        elif v.is_floating_point():
            out[k] = v.half()
        else:
            out[k] = v
    return out


def unpack(state: dict[str, Any]) -> dict[str, Any]:
    """The float32 state dict of a :func:`pack` one."""
    out = {}
    for k, v in state.items():
        if k.endswith(PACKED[1]):
            continue
        if k.endswith(PACKED[0]):
            base = k[: -len(PACKED[0])]
            out[base] = v.float() * state[base + PACKED[1]].float()
        else:
            out[k] = v.float() if v.is_floating_point() else v
    return out
