"""ROIAlign in plain torch (no torchvision), with the semantics of ``torchvision.ops.roi_align``.

Each output bin averages ``grid_h x grid_w`` bilinear samples placed at the centres of a regular
sub-grid of the bin. With ``aligned=True`` a box coordinate ``x`` maps to ``x * spatial_scale - 0.5``
(pixel centres at integer coordinates); with ``aligned=False`` the box is not shifted and its size
is at least 1. A sample more than one pixel outside the map contributes 0 (but still counts in the
average); samples inside are clamped to the border, exactly as torchvision does.

Bilinear sampling is separable: along each axis, output bin ``p`` of box ``k`` is a weighted sum of
``T = 2 * grid`` feature rows (two taps per sample), so :func:`roi_align` gathers the ``T x T`` taps of
every output value and contracts them with the two weight vectors: O(K PH PW T^2) work, independent of
the feature-map size, pure tensor algebra. In eager mode, one sample per bin on a one-image map (the
FMoD edge map) goes through ``grid_sample`` instead. In an ONNX export (TorchScript exporter) with a fixed
``sampling_ratio`` and ``aligned=True`` it is the ONNX ``RoiAlign`` operator (``half_pixel``, the same
definition), with per-axis scales applied to the boxes first.
:func:`roi_align_dense` is the former formulation, two dense interpolation-and-pooling matrices
``Ay (K, PH, H)``, ``Ax (K, PW, W)`` and ``Ay @ feature @ Ax^T`` (O(K PH H W); same outputs within
float rounding), kept for comparison.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hcgym.errors import SpecError


def _axis_weights(start: torch.Tensor, size: torch.Tensor, pooled: int, grid: torch.Tensor, gmax: int,
                  length: int) -> torch.Tensor:
    """``(K, pooled, length)`` weights: row ``p`` averages the bilinear samples of bin ``p`` along one axis.

    ``start``/``size`` (K,) are the scaled box start and extent; ``grid`` (K,) samples per bin
    (``<= gmax``); ``length`` the feature-map extent along the axis.
    """
    k = start.shape[0]
    dtype = start.dtype
    bin_size = size / pooled                                                   # (K,)
    p = torch.arange(pooled, dtype=dtype).view(1, pooled, 1)
    g = torch.arange(gmax, dtype=dtype).view(1, 1, gmax)
    gridf = grid.clamp(min=1).to(dtype).view(k, 1, 1)
    coord = start.view(k, 1, 1) + p * bin_size.view(k, 1, 1) + (g + 0.5) * bin_size.view(k, 1, 1) / gridf
    used = (g < grid.to(dtype).view(k, 1, 1)).to(dtype)                       # adaptive grids: unused slots
    inside = ((coord >= -1.0) & (coord <= float(length))).to(dtype)
    c = coord.clamp(min=0.0)
    low = torch.floor(c)
    at_edge = low >= length - 1
    low = torch.where(at_edge, torch.full_like(low, length - 1), low)
    high = torch.where(at_edge, low, low + 1)
    c = torch.where(at_edge, low, c)
    w_high = c - low
    w_low = 1.0 - w_high
    scale = used * inside / gridf                                              # average over the grid
    idx = torch.arange(length, dtype=dtype).view(1, 1, 1, length)
    w = ((idx == low.unsqueeze(-1)).to(dtype) * (w_low * scale).unsqueeze(-1)
         + (idx == high.unsqueeze(-1)).to(dtype) * (w_high * scale).unsqueeze(-1))   # (K, pooled, gmax, length)
    return w.sum(dim=2)


def _prepare(input: torch.Tensor, rois: torch.Tensor, output_size: int | tuple[int, int],
             spatial_scale: float | torch.Tensor, sampling_ratio: int, aligned: bool):
    """Checked sizes and the scaled boxes: ``(ph, pw, x0, y0, rw, rh, gx, gy, gxmax, gymax)``."""
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    ph, pw = (int(v) for v in output_size)
    if input.ndim != 4:
        raise SpecError("input", f"expected shape (B, C, H, W), got {tuple(input.shape)}")
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise SpecError("rois", f"expected shape (K, 5) with [batch_index, x0, y0, x1, y1] rows, got {tuple(rois.shape)}")
    dtype = input.dtype
    rois = rois.to(dtype)
    scale = torch.as_tensor(spatial_scale, dtype=dtype).reshape(-1)
    sx, sy = scale[0], scale[-1]
    offset = 0.5 if aligned else 0.0
    x0 = rois[:, 1] * sx - offset
    y0 = rois[:, 2] * sy - offset
    rw = rois[:, 3] * sx - offset - x0
    rh = rois[:, 4] * sy - offset - y0
    if not aligned:
        rw = rw.clamp(min=1.0)
        rh = rh.clamp(min=1.0)
    if sampling_ratio > 0:
        gy = torch.full((rois.shape[0],), sampling_ratio, dtype=torch.int64)
        gx = gy
        gymax = gxmax = int(sampling_ratio)
    else:
        gy = torch.ceil(rh / ph).to(torch.int64)   # 0 for an empty box: its output is 0, as in torchvision
        gx = torch.ceil(rw / pw).to(torch.int64)
        gymax = max(int(gy.max()), 1) if len(gy) else 1
        gxmax = max(int(gx.max()), 1) if len(gx) else 1
    return ph, pw, x0, y0, rw, rh, gx, gy, gxmax, gymax


def _axis_taps(start: torch.Tensor, size: torch.Tensor, pooled: int, grid: torch.Tensor, gmax: int,
               length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index, weight)``, both ``(K, pooled, 2 gmax)``: bin ``p`` of box ``k`` along one axis is
    ``sum_t weight[k, p, t] * feature[index[k, p, t]]`` (the sparse rows of :func:`_axis_weights`)."""
    k = start.shape[0]
    dtype = start.dtype
    bin_size = size / pooled
    p = torch.arange(pooled, dtype=dtype).view(1, pooled, 1)
    g = torch.arange(gmax, dtype=dtype).view(1, 1, gmax)
    gridf = grid.clamp(min=1).to(dtype).view(k, 1, 1)
    coord = start.view(k, 1, 1) + p * bin_size.view(k, 1, 1) + (g + 0.5) * bin_size.view(k, 1, 1) / gridf
    used = (g < grid.to(dtype).view(k, 1, 1)).to(dtype)
    inside = ((coord >= -1.0) & (coord <= float(length))).to(dtype)
    c = coord.clamp(min=0.0)
    low = torch.floor(c)
    at_edge = low >= length - 1
    low = torch.where(at_edge, torch.full_like(low, length - 1), low)
    high = torch.where(at_edge, low, low + 1)
    c = torch.where(at_edge, low, c)
    w_high = c - low
    scale = used * inside / gridf
    index = torch.cat([low, high], dim=-1).to(torch.int64)                     # (K, pooled, 2 gmax)
    weight = torch.cat([(1.0 - w_high) * scale, w_high * scale], dim=-1)
    return index, weight


#: Gathered taps per ROIAlign chunk (eager mode): bounds the memory of large boxes counts / sizes.
_CHUNK = 1 << 22


def roi_align(input: torch.Tensor, rois: torch.Tensor, output_size: int | tuple[int, int],
              spatial_scale: float | torch.Tensor = 1.0, sampling_ratio: int = -1,
              aligned: bool = True) -> torch.Tensor:
    """Pool ``rois`` from ``input``; the torchvision ``roi_align`` contract.

    Args:
        input: ``(B, C, H, W)`` feature map.
        rois: ``(K, 5)`` rows ``[batch_index, x0, y0, x1, y1]`` in input-image coordinates.
        output_size: ``(PH, PW)`` or one int for both.
        spatial_scale: factor from box to feature-map coordinates; a float, or a tensor of one value
            or two values ``(scale_x, scale_y)`` (per-axis scales, e.g. for an anisotropic resize).
        sampling_ratio: samples per bin along each axis; ``<= 0`` uses ``ceil(roi_size / pooled)``
            per box (adaptive; not exportable, as the grid size depends on the data).
        aligned: shift boxes by -0.5 pixel (pixel centres at integer coordinates).

    Returns:
        ``(K, C, PH, PW)``.
    """
    ph, pw, x0, y0, rw, rh, gx, gy, gxmax, gymax = _prepare(input, rois, output_size, spatial_scale,
                                                            sampling_ratio, aligned)
    b, c, h, w = input.shape
    k = rois.shape[0]
    if torch.onnx.is_in_onnx_export() and sampling_ratio > 0 and aligned:
        scaled = torch.stack([x0, y0, x0 + rw, y0 + rh], dim=1) + 0.5   # the boxes in map coordinates
        return _OnnxRoiAlign.apply(input, scaled, rois[:, 0].to(torch.int64), ph, pw, sampling_ratio)
    compiling = torch.compiler.is_compiling()          # traced (torch.export): one piece, no data-dependent branch
    if not compiling and k == 0:
        return input.new_zeros(0, c, ph, pw)
    if not compiling and sampling_ratio == 1 and b == 1 and h > 1 and w > 1:
        return _sample_one_per_bin(input, y0, rh, ph, h, x0, rw, pw, w)
    iy, wy = _axis_taps(y0, rh, ph, gy, gymax, h)                             # (K, PH, Ty)
    ix, wx = _axis_taps(x0, rw, pw, gx, gxmax, w)                             # (K, PW, Tx)
    bidx = rois[:, 0].to(torch.int64)
    flat = input.transpose(0, 1).reshape(c, b * h * w)                        # columns (b, y, x)
    if compiling:
        return _pool_taps(flat, bidx, iy, wy, ix, wx, h, w).transpose(0, 1)
    per_roi = ph * iy.shape[-1] * pw * ix.shape[-1] * c
    step = max(1, _CHUNK // per_roi)
    outs = [_pool_taps(flat, bidx[s:s + step], iy[s:s + step], wy[s:s + step], ix[s:s + step], wx[s:s + step], h, w)
            for s in range(0, k, step)]
    return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)).transpose(0, 1)


class _OnnxRoiAlign(torch.autograd.Function):
    """ROIAlign as the ONNX ``RoiAlign`` operator (``half_pixel``: ``aligned=True``) in an ONNX export; traced
    inputs: ``boxes`` (K, 4) already in map coordinates (per-axis scales applied), ``batch`` (K,) int64."""

    @staticmethod
    def forward(ctx, input, boxes, batch, ph, pw, sampling_ratio):  # noqa: ANN001, ANN205 - autograd signature
        rois = torch.cat([batch[:, None].to(boxes.dtype), boxes], dim=1)
        iy, wy = _axis_taps(boxes[:, 1] - 0.5, boxes[:, 3] - boxes[:, 1], ph, torch.full_like(batch, sampling_ratio),
                            sampling_ratio, input.shape[-2])
        ix, wx = _axis_taps(boxes[:, 0] - 0.5, boxes[:, 2] - boxes[:, 0], pw, torch.full_like(batch, sampling_ratio),
                            sampling_ratio, input.shape[-1])
        flat = input.transpose(0, 1).reshape(input.shape[1], -1)
        return _pool_taps(flat, rois[:, 0].to(torch.int64), iy, wy, ix, wx, input.shape[-2], input.shape[-1]
                          ).transpose(0, 1)

    @staticmethod
    def symbolic(g, input, boxes, batch, ph, pw, sampling_ratio):  # noqa: ANN001, ANN205 - exporter signature
        return g.op("RoiAlign", input, boxes, batch, mode_s="avg", output_height_i=ph, output_width_i=pw,
                    sampling_ratio_i=sampling_ratio, spatial_scale_f=1.0, coordinate_transformation_mode_s="half_pixel")


def _sample_one_per_bin(input: torch.Tensor, y0: torch.Tensor, rh: torch.Tensor, ph: int, h: int, x0: torch.Tensor,
                        rw: torch.Tensor, pw: int, w: int) -> torch.Tensor:
    """``(K, C, PH, PW)`` for one sample per bin on a one-image map: ``grid_sample`` (bilinear, border clamp,
    pixel centres at integer coordinates) at the bin centres, zero where a sample is more than one pixel
    outside. The centres are computed in the input dtype as :func:`_axis_taps` does; the interpolation
    runs in float64, so the result is the gather path's within rounding."""
    k = y0.shape[0]

    def centres(start: torch.Tensor, size: torch.Tensor, pooled: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        bin_size = size / pooled
        coord = start[:, None] + torch.arange(pooled, dtype=start.dtype)[None] * bin_size[:, None] + 0.5 * bin_size[:, None]
        inside = (coord >= -1.0) & (coord <= float(length))
        return coord.double() * (2.0 / (length - 1)) - 1.0, inside.double()

    gy, in_y = centres(y0, rh, ph, h)                                          # (K, PH), normalised to [-1, 1]
    gx, in_x = centres(x0, rw, pw, w)
    grid = torch.stack([gx[:, None, :].expand(k, ph, pw), gy[:, :, None].expand(k, ph, pw)], dim=-1)
    out = F.grid_sample(input.double(), grid.reshape(1, k * ph, pw, 2), mode="bilinear", padding_mode="border",
                        align_corners=True)                                   # (1, C, K PH, PW)
    out = out.reshape(input.shape[1], k, ph, pw) * (in_y[:, :, None] * in_x[:, None, :])
    return out.transpose(0, 1).to(input.dtype)


def _pool_taps(flat: torch.Tensor, bidx: torch.Tensor, iy: torch.Tensor, wy: torch.Tensor, ix: torch.Tensor,
               wx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(C, k, PH, PW)`` from the map ``flat`` (C, B H W) and the taps of ``k`` boxes (see :func:`_axis_taps`)."""
    c, ty, tx = flat.shape[0], iy.shape[-1], ix.shape[-1]
    row = (bidx[:, None, None] * h + iy) * w                                   # (k, PH, Ty)
    idx = row[:, :, :, None, None] + ix[:, None, None, :, :]                   # (k, PH, Ty, PW, Tx)
    taps = flat.index_select(1, idx.reshape(-1)).reshape(c, *idx.shape)       # (C, k, PH, Ty, PW, Tx)
    wxs, wys = wx[:, None, None], wy[:, :, :, None]
    cols = taps[..., 0] * wxs[..., 0]                                          # (C, k, PH, Ty, PW)
    for t in range(1, tx):
        cols = cols + taps[..., t] * wxs[..., t]
    out = cols[:, :, :, 0] * wys[:, :, 0]                                      # (C, k, PH, PW)
    for t in range(1, ty):
        out = out + cols[:, :, :, t] * wys[:, :, t]
    return out


def roi_align_dense(input: torch.Tensor, rois: torch.Tensor, output_size: int | tuple[int, int],
                    spatial_scale: float | torch.Tensor = 1.0, sampling_ratio: int = -1,
                    aligned: bool = True) -> torch.Tensor:
    """:func:`roi_align` as dense matrix products ``Ay @ feature @ Ax^T`` (the former implementation;
    O(K PH H W), same outputs within float rounding). Arguments and result as :func:`roi_align`."""
    ph, pw, x0, y0, rw, rh, gx, gy, gxmax, gymax = _prepare(input, rois, output_size, spatial_scale,
                                                            sampling_ratio, aligned)
    _, _, h, w = input.shape
    rois = rois.to(input.dtype)
    ay = _axis_weights(y0, rh, ph, gy, gymax, h)                               # (K, PH, H)
    ax = _axis_weights(x0, rw, pw, gx, gxmax, w)                               # (K, PW, W)
    feat = input[rois[:, 0].to(torch.int64)]                                   # (K, C, H, W)
    return ay.unsqueeze(1) @ feat @ ax.unsqueeze(1).transpose(-1, -2)


def roi_align_reference(input: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int],
                        spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = True) -> torch.Tensor:
    """Straightforward loop port of torchvision's CPU kernel (slow; for tests)."""
    ph, pw = output_size
    _, c, h, w = input.shape
    out = torch.zeros(len(rois), c, ph, pw, dtype=input.dtype)

    def bilinear(fm: torch.Tensor, y: float, x: float) -> torch.Tensor:
        if y < -1.0 or y > h or x < -1.0 or x > w:
            return torch.zeros(c, dtype=input.dtype)
        y, x = max(y, 0.0), max(x, 0.0)
        yl, xl = int(y), int(x)
        if yl >= h - 1:
            yh = yl = h - 1
            y = float(yl)
        else:
            yh = yl + 1
        if xl >= w - 1:
            xh = xl = w - 1
            x = float(xl)
        else:
            xh = xl + 1
        ly, lx = y - yl, x - xl
        hy, hx = 1 - ly, 1 - lx
        return hy * hx * fm[:, yl, xl] + hy * lx * fm[:, yl, xh] + ly * hx * fm[:, yh, xl] + ly * lx * fm[:, yh, xh]

    off = 0.5 if aligned else 0.0
    for k, (b, x0, y0, x1, y1) in enumerate(rois.tolist()):
        fm = input[int(b)]
        sx, sy = x0 * spatial_scale - off, y0 * spatial_scale - off
        rw, rh = x1 * spatial_scale - off - sx, y1 * spatial_scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / ph, rw / pw
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / ph)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / pw)
        for i in range(ph):
            for j in range(pw):
                acc = torch.zeros(c, dtype=input.dtype)
                for iy in range(gh):
                    y = sy + i * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = sx + j * bw + (ix + 0.5) * bw / gw
                        acc += bilinear(fm, y, x)
                out[k, :, i, j] = acc / max(gh * gw, 1)
    return out
