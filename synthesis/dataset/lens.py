"""Lens distortion of rendered images (``hcgym generate --distortion K1[,K2]``).

The renderer is a pinhole camera. A distorted image of ``W x H`` pixels is made from a pinhole
render of the same focal length on a larger *canvas*: barrel distortion squeezes the edges, so the
distorted image sees more than the pinhole image of its size. Each output pixel centre is traced
back through :class:`~hcgym.geometry.RadialDistortion` to the canvas (:class:`LensWarp`); colour is
resampled bilinearly (``cv2.remap``), depth and instance ids by nearest neighbour (the canvas pixel
that holds the point), so masks, boxes and visibility follow the image exactly. Output pixels that
no ray of the lens reaches (beyond the fold of a strong barrel, see
:attr:`~hcgym.geometry.RadialDistortion.max_radius`) are black, with ``nan`` depth and no instance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hcgym.geometry import RadialDistortion
from hcgym.types import CameraIntrinsics

#: Largest canvas side as a multiple of the output side (bounds the extra rendering).
MAX_CANVAS = 2.0
#: Samples of the inverse radial map (interpolated for every pixel).
TABLE_SIZE = 4096


@dataclass(frozen=True)
class LensWarp:
    """Output camera ``output`` with ``lens``, rendered through the pinhole ``canvas``.

    ``map_u``, ``map_v`` (H, W) float64 hold, for the centre of every output pixel, the continuous
    canvas coordinates of the point it images (``nan`` where no ray reaches it).
    """

    output: CameraIntrinsics
    lens: RadialDistortion
    canvas: CameraIntrinsics
    map_u: np.ndarray
    map_v: np.ndarray

    @classmethod
    def build(cls, output: CameraIntrinsics, lens: RadialDistortion) -> "LensWarp":
        """The warp of ``output`` (square pixels, centred principal point) through ``lens``."""
        w, h = output.width, output.height
        xd, yd = np.meshgrid((np.arange(w) + 0.5 - output.cx) / output.fx, (np.arange(h) + 0.5 - output.cy) / output.fy)
        rd = np.hypot(xd, yd)
        table_rd = np.linspace(0.0, float(rd.max()), TABLE_SIZE)
        table_r = lens.undistort_radius(table_rd)
        reach = int(np.isfinite(table_r).sum())  # the reachable radii are a prefix of the table
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(table_rd > 0, table_r / table_rd, 1.0)
        scale = np.interp(rd, table_rd[:reach], ratio[:reach]) if reach else np.full(rd.shape, np.nan)
        scale[rd > table_rd[max(reach - 1, 0)]] = np.nan
        xu, yu = xd * scale, yd * scale
        # A canvas centred like the output (the renderer needs a centred principal point), wide enough for
        # every reachable point and at most MAX_CANVAS times the output.
        pad_x = _pad(np.nanmax(np.abs(xu)) * output.fx if np.isfinite(xu).any() else 0.0, w)
        pad_y = _pad(np.nanmax(np.abs(yu)) * output.fy if np.isfinite(yu).any() else 0.0, h)
        cw, ch = w + 2 * pad_x, h + 2 * pad_y
        canvas = CameraIntrinsics(cw, ch, output.fx, output.fy, output.cx + pad_x, output.cy + pad_y,
                                  output.near, output.far)
        map_u = canvas.cx + output.fx * xu
        map_v = canvas.cy + output.fy * yu
        outside = ~((map_u >= 0) & (map_u < cw) & (map_v >= 0) & (map_v < ch))
        map_u[outside] = np.nan
        map_v[outside] = np.nan
        return cls(output, lens, canvas, map_u, map_v)

    @property
    def valid(self) -> np.ndarray:
        """(H, W) bool: output pixels that image something of the canvas."""
        return np.isfinite(self.map_u)

    def image(self, rgb: np.ndarray) -> np.ndarray:
        """(Hc, Wc, 3) uint8 canvas render -> (H, W, 3) distorted image (bilinear; black where no ray is)."""
        import cv2

        valid = self.valid
        mx = np.where(valid, self.map_u - 0.5, -1.0).astype(np.float32)
        my = np.where(valid, self.map_v - 0.5, -1.0).astype(np.float32)
        out = cv2.remap(rgb, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[~valid] = 0
        return out

    def nearest(self, values: np.ndarray, fill: float | int) -> np.ndarray:
        """(Hc, Wc) canvas array (depth, instance ids) -> (H, W): the value of the canvas pixel each output
        pixel centre falls in; ``fill`` where no ray is."""
        valid = self.valid
        out = np.full(valid.shape, fill, dtype=values.dtype)
        out[valid] = values[np.floor(self.map_v[valid]).astype(int), np.floor(self.map_u[valid]).astype(int)]
        return out


def _pad(extent_px: float, side: int) -> int:
    """Pixels to add on each side of an output ``side`` so that the canvas reaches ``extent_px`` from its
    centre (capped at :data:`MAX_CANVAS`)."""
    need = max(0, math.ceil(extent_px - side / 2.0 + 1e-9))
    return min(need, int((MAX_CANVAS - 1.0) * side / 2.0))
