"""A trainable Gaussian-derivative filter bank for 1-D signals (OpenDR D3.2 §5.1, Eq. 15-17).

For widths sigma_0, sigma_1, sigma_2 (one per kernel, each learned by backpropagation) the bank convolves
the signal with three kernels sampled at the integer offsets ``-k//2 .. k//2``:

* ``g(x, s) = exp(-x^2 / (2 s^2)) / (s sqrt(2 pi))``, the Gaussian (a low-pass filter),
* ``g'(x, s) = -x / (s^3 sqrt(2 pi)) exp(-x^2 / (2 s^2))``, its first derivative,
* ``g''(x, s) = (x^2 - s^2) / (s^5 sqrt(2 pi)) exp(-x^2 / (2 s^2))``, its second derivative,

so its outputs are the smoothed signal, its slope and its curvature at three learned scales (convolving with
``g'`` is differentiating the signal smoothed by ``g``). The signal is padded by repeating its first and last
value, so every output is as long as the input, and the three outputs of each input channel are stacked as
channels: ``(N, C, L) -> (N, 3 C, L)``, channel ``3 c + j`` the kernel ``j`` on input channel ``c``.

The widths are kept positive as ``exp(log_sigma)``; the normalising constant is kept (no scale parameters), so
the bank has exactly 3 trainable parameters. The seed gives neither the kernel size nor the initial widths;
the defaults here (``size`` 25, ``sigma`` 2 samples: 200 ms and 16 ms at 125 Hz) are ours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hcgym.errors import SpecError

#: The kernels of the bank, in output-channel order.
KERNELS = ("gaussian", "first_derivative", "second_derivative")


def gaussian_kernels(sigma: Tensor, size: int) -> Tensor:
    """(3, size) kernels ``g``, ``g'``, ``g''`` sampled at ``-size//2 .. size//2`` for widths ``sigma`` (3,)
    (differentiable in ``sigma``)."""
    x = torch.arange(size, dtype=sigma.dtype, device=sigma.device) - size // 2
    s = sigma.view(3, 1)
    e = torch.exp(-x ** 2 / (2 * s ** 2)) / math.sqrt(2 * math.pi)
    return torch.cat([(e / s)[0:1], (-x * e / s ** 3)[1:2], ((x ** 2 - s ** 2) * e / s ** 5)[2:3]])


class GaussianFilterBank(nn.Module):
    """``(N, C, L)`` or ``(N, L)`` signals -> ``(N, 3 C, L)``: each channel convolved with the Gaussian and its
    first and second derivatives (module docstring).

    Args:
        size: odd kernel length in samples.
        sigma: initial widths in samples, one number for all three or one per kernel.
    """

    def __init__(self, size: int = 25, sigma: float | Sequence[float] = 2.0) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 3 or size % 2 == 0:
            raise SpecError("size", f"expected an odd kernel length >= 3, got {size!r}")
        widths = [float(sigma)] * 3 if isinstance(sigma, (int, float)) else [float(s) for s in sigma]
        if len(widths) != 3 or not all(0 < s < size for s in widths):
            raise SpecError("sigma", f"expected 1 or 3 widths in (0, {size}) samples, got {sigma!r}")
        self.size = size
        self.log_sigma = nn.Parameter(torch.log(torch.tensor(widths, dtype=torch.float32)))

    @property
    def sigma(self) -> Tensor:
        """(3,) the current widths in samples."""
        return self.log_sigma.exp()

    def kernels(self) -> Tensor:
        """(3, size) the current kernels."""
        return gaussian_kernels(self.sigma, self.size)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(1)
        if x.ndim != 3:
            raise SpecError("x", f"expected signals (N, L) or (N, C, L), got shape {tuple(x.shape)}")
        n, c, length = x.shape
        half = self.size // 2
        padded = nn.functional.pad(x.reshape(n * c, 1, length), (half, half), mode="replicate")
        # cross-correlation with the flipped kernels is the convolution of the definition
        out = nn.functional.conv1d(padded, self.kernels().flip(-1).unsqueeze(1).to(x.dtype))
        return out.reshape(n, 3 * c, length)

    def extra_repr(self) -> str:
        return f"size={self.size}, sigma={[round(float(s), 3) for s in self.sigma]}"
