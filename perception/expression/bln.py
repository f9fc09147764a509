"""The bilinear mapping of the spatio-temporal bilinear layer (ST-BLL), OpenDR D3.2 Sec. 4.1, Eq. 14.

``H_s = ReLU(BN(sum_s W_s (H U_s)) + res(H))`` on features ``H`` (N, C, T, P) over ``P`` points (the edges
of the face graph): ``U_s`` (P, P) learnable and data-independent (no predefined graph), ``W_s`` a 1x1
convolution. As in the OpenDR implementation there are ``S = 3`` such pairs, each ``U_s`` initialised to
the constant 1e-6, their outputs summed, then batch norm, an inner residual (identity when the widths agree,
else a 1x1 convolution with batch norm) and ReLU. The temporal half of the layer (a ``(K, 1)`` convolution,
batch norm, the outer residual, ReLU) is :class:`hcgym.perception.action.gcn.GCNBlock` with this module as
its spatial part.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BilinearMapping(nn.Module):
    """(N, C_in, T, P) -> (N, C_out, T, P): ``ReLU(BN(sum_s conv_s(x @ U_s)) + res(x))``.

    ``inner_residual``: ``"identity"`` (needs ``C_in == C_out``) or ``"conv"`` (1x1 convolution + BN).
    Each ``U_s`` has shape (P, P) and maps ``out[..., w] = sum_v x[..., v] U_s[v, w]``.
    """

    def __init__(self, in_channels: int, out_channels: int, points: int, subsets: int = 3,
                 inner_residual: str = "conv") -> None:
        super().__init__()
        self.U = nn.Parameter(torch.full((subsets, points, points), 1e-6))
        # one 1x1 convolution per U (kept separate, not stacked, so added channels stay contiguous per tensor)
        self.convs = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(subsets))
        self.bn = nn.BatchNorm2d(out_channels)
        if inner_residual == "identity" and in_channels != out_channels:
            raise ValueError("an identity inner residual needs equal widths")
        self.res = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
                    if inner_residual == "conv" else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = sum(conv(torch.matmul(x, u)) for conv, u in zip(self.convs, self.U))
        return self.relu(self.bn(y) + self.res(x))
