"""Self-organised operational layer, 1-D (Self-ONN; OpenDR D3.2 §5.2, Eq. 20 with A = 0).

``Y = sum_{i=1..q} X^i (*) W_i + b``: a truncated Maclaurin series of a learned nodal operator, each order
with its own freely learned kernel, the order-0 term merged into the bias. It runs as ONE convolution over the
powers of the input stacked on the channel axis, so it costs one convolution with ``q`` times the input
channels: ``q`` times the parameters (bias aside) and multiply-adds of the convolution it replaces, plus the
``(q - 1)`` elementwise products that make the powers.

Groups: the stacked input is laid out group by group, ``[X_g, X_g^2, ..., X_g^q]`` for each of the ``groups``
channel groups ``X_g``, so a grouped (or depthwise) layer mixes only the powers of its own group's channels.
Within a group the layout is order-major (all channels of ``X_g``, then all of ``X_g^2``, ...), so with
``q = 1`` the weight is laid out exactly as :class:`torch.nn.Conv1d`'s and the layer equals it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hcgym.errors import SpecError


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(name, f"expected an integer >= {minimum}, got {value!r}")
    return value


def stack_powers(x: Tensor, q: int, groups: int = 1) -> Tensor:
    """``(N, C, L)`` -> ``(N, q C, L)``: the powers 1..q of ``x``, group-major (module docstring)."""
    if q == 1:
        return x
    n, c, length = x.shape
    powers = [x]
    for _ in range(q - 1):
        powers.append(powers[-1] * x)
    stacked = torch.stack(powers, dim=1)  # (N, q, C, L)
    stacked = stacked.reshape(n, q, groups, c // groups, length).transpose(1, 2)  # (N, g, q, C/g, L)
    return stacked.reshape(n, q * c, length)


class SelfONN1d(nn.Module):
    """``(N, in_channels, L)`` -> ``(N, out_channels, L_out)``, ``Y = sum_i X^i (*) W_i + b`` (module docstring).

    Arguments as :class:`torch.nn.Conv1d` (``padding`` defaults to ``dilation (kernel_size - 1) // 2``, the
    "same" length at stride 1 for odd kernels), plus ``q``, the order of the series (1 = a convolution). The
    single convolution is :attr:`conv`; its weight is ``(out_channels, q in_channels / groups, kernel_size)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, q: int, stride: int = 1,
                 padding: int | None = None, dilation: int = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("kernel_size", kernel_size), ("q", q), ("stride", stride), ("dilation", dilation),
                            ("groups", groups)):
            _positive_int(name, value)
        if in_channels % groups or out_channels % groups:
            raise SpecError("groups", f"{groups} groups do not divide in_channels {in_channels} and "
                            f"out_channels {out_channels}")
        padding = dilation * (kernel_size - 1) // 2 if padding is None else _positive_int("padding", padding, 0)
        self.in_channels, self.out_channels, self.q, self.groups = in_channels, out_channels, q, groups
        self.conv = nn.Conv1d(q * in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(stack_powers(x, self.q, self.groups))

    def extra_repr(self) -> str:
        return f"q={self.q}"


def selfonn_parameters(in_channels: int, out_channels: int, kernel_size: int, q: int, groups: int = 1,
                       bias: bool = True) -> int:
    """Parameters of a :class:`SelfONN1d`: ``q`` times the weights of the convolution, plus the bias."""
    return q * out_channels * (in_channels // groups) * kernel_size + (out_channels if bias else 0)
