"""Seq2Seq-NMS input features: box geometry and edge-map appearance (FMoD descriptors).

* **Geometry** (:func:`geometric_features`): ``G[i, j]`` (14 values) describes key ``j`` relative
  to query ``i`` in the OpenDR order ``[dx, dy, dxy, w_j/w_i, w_j/(W/20), h_j/h_i, h_j/(H/20),
  5 IoU, area_j/area_i, area_j/(W H/400), 5 s_j, 5 (s_j - s_i), h_j/w_j, (h_j/w_j)/(h_i/w_i)]``.
* **Edge map** (:func:`edge_map`): grayscale, 3x3 Gaussian blur, Scharr ``dx, dy``, magnitude
  scaled to [0, 255], binarised at 240, /255; the image is first resized so its longest side is at
  most ``max_side``.
* **FMoD appearance** (:func:`fmod_descriptors`): ROIAlign of each box on the edge map to a level-0
  map of ``S0 x S0``; level ``j`` splits it into ``4^j`` cells re-pooled (ROIAlign) to ``S0 / 2^j``;
  each cell gives 15 statistics; ``5 (4^L - 1)`` values (315 for L = 3).

Box geometry uses the "+1 pixel" convention of the reference code (``w = x1 - x0 + 1``) for widths,
heights, areas and the IoU. See :mod:`hcgym.perception.nms.seq2seq` for the whole pipeline.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hcgym.errors import SpecError
from hcgym.perception.nms.roi_align import _axis_weights, roi_align, roi_align_dense

N_GEOMETRY = 14


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def _wh(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return boxes[:, 2] - boxes[:, 0] + 1.0, boxes[:, 3] - boxes[:, 1] + 1.0


def pairwise_iou(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, N)`` IoU with the "+1 pixel" convention (``w = x1 - x0 + 1``)."""
    w, h = _wh(boxes)
    area = w * h
    iw = (torch.minimum(boxes[:, None, 2], boxes[None, :, 2]) - torch.maximum(boxes[:, None, 0], boxes[None, :, 0])
          + 1.0).clamp(min=0.0)
    ih = (torch.minimum(boxes[:, None, 3], boxes[None, :, 3]) - torch.maximum(boxes[:, None, 1], boxes[None, :, 1])
          + 1.0).clamp(min=0.0)
    inter = iw * ih
    return inter / (area[:, None] + area[None, :] - inter)


def _relative_geometry(bq: torch.Tensor, bk: torch.Tensor, sq: torch.Tensor, sk: torch.Tensor, iou: torch.Tensor,
                       image_wh: torch.Tensor) -> torch.Tensor:
    """``(..., 14)`` features of keys ``bk`` relative to queries ``bq`` (``(..., 4)``, broadcastable), with
    their scores ``sq``, ``sk`` and IoU ``iou`` (the broadcast shape)."""
    image_wh = image_wh.to(bq.dtype)
    wi, hi = image_wh[0], image_wh[1]
    ux, uy = wi / 20.0, hi / 20.0
    wq, hq = bq[..., 2] - bq[..., 0] + 1.0, bq[..., 3] - bq[..., 1] + 1.0
    wk, hk = bk[..., 2] - bk[..., 0] + 1.0, bk[..., 3] - bk[..., 1] + 1.0
    ddx = (bk[..., 0] + bk[..., 2]) / 2 - (bq[..., 0] + bq[..., 2]) / 2
    ddy = (bk[..., 1] + bk[..., 3]) / 2 - (bq[..., 1] + bq[..., 3]) / 2
    area_q, area_k = wq * hq, wk * hk
    aspect_q, aspect_k = hq / wq, hk / wk
    feats = [
        ddx / ux,
        ddy / uy,
        (ddx ** 2 + ddy ** 2) / (ux ** 2 + uy ** 2),
        wk / wq,
        wk / ux,
        hk / hq,
        hk / uy,
        5.0 * iou,
        area_k / area_q,
        area_k / (wi * hi / 400.0),
        5.0 * sk,
        5.0 * (sk - sq),
        aspect_k,
        aspect_k / aspect_q,
    ]
    return torch.stack(torch.broadcast_tensors(*feats), dim=-1)


def geometric_features(boxes: torch.Tensor, scores: torch.Tensor, image_wh: torch.Tensor) -> torch.Tensor:
    """``(N, N, 14)``: entry ``[i, j]`` describes key ``j`` relative to query ``i`` (order in the module doc).

    ``image_wh`` is ``(W, H)`` of the image the boxes are in.
    """
    return _relative_geometry(boxes[:, None], boxes[None, :], scores[:, None], scores[None, :], pairwise_iou(boxes),
                              image_wh)


def pair_geometric_features(boxes: torch.Tensor, scores: torch.Tensor, image_wh: torch.Tensor, query: torch.Tensor,
                            key: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
    """``(P, 14)``: the rows ``G[query[p], key[p]]`` of :func:`geometric_features` only (the same values),
    given the pairs' IoU ``iou`` (P,)."""
    return _relative_geometry(boxes[query], boxes[key], scores[query], scores[key], iou, image_wh)


# --------------------------------------------------------------------------------------------
# Appearance: edge map and FMoD descriptors
# --------------------------------------------------------------------------------------------


def edge_map(image: np.ndarray | torch.Tensor, max_side: int = 600) -> tuple[torch.Tensor, float]:
    """Binary edge map ``(1, 1, h, w)`` float32 of an ``(H, W)`` or ``(H, W, 3)`` RGB image, and the
    resize factor ``h / H`` (the image is resized so its longest side is at most ``max_side``)."""
    img = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).to(torch.float32)
    if img.ndim == 3:
        if img.shape[2] not in (1, 3, 4):
            raise SpecError("image", f"expected (H, W) or (H, W, 3) RGB, got shape {tuple(img.shape)}")
        img = img[..., 0] if img.shape[2] == 1 else img[..., :3] @ torch.tensor([0.299, 0.587, 0.114])
    elif img.ndim != 2:
        raise SpecError("image", f"expected (H, W) or (H, W, 3) RGB, got shape {tuple(img.shape)}")
    hgt, wid = img.shape
    if hgt < 2 or wid < 2:
        raise SpecError("image", f"image too small: {hgt}x{wid}")
    if float(img.max()) <= 1.0:
        img = img * 255.0
    factor = min(1.0, max_side / max(hgt, wid))
    x = img[None, None]
    if factor < 1.0:
        size = (max(2, round(hgt * factor)), max(2, round(wid * factor)))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    gauss = torch.tensor([1.0, 2.0, 1.0]) / 4.0
    x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), (gauss[:, None] * gauss[None, :])[None, None])
    scharr = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]])
    xp = F.pad(x, (1, 1, 1, 1), mode="reflect")
    dx = F.conv2d(xp, scharr[None, None]).abs()
    dy = F.conv2d(xp, scharr.t()[None, None]).abs()
    mag = torch.sqrt(dx ** 2 + dy ** 2)
    peak = float(mag.max())
    mag = mag * (255.0 / peak) if peak > 0 else mag
    return (mag >= 240.0).to(torch.float32), x.shape[-2] / hgt


def _signal_stats(x: torch.Tensor, subsample_mean: bool) -> torch.Tensor:
    """``(..., 5)`` [mean, std (unbiased), skewness, excess kurtosis, power] along the last dim."""
    mu = x.mean(-1, keepdim=True)
    d = x - mu
    std = torch.sqrt((d * d).sum(-1, keepdim=True) / (x.shape[-1] - 1))
    z = d / std.clamp(min=1e-6)                 # a constant signal has z = 0
    z2 = z * z
    mean = x[..., 0:-1:5].mean(-1, keepdim=True) if subsample_mean else mu
    return torch.cat([mean, std, (z2 * z).mean(-1, keepdim=True), (z2 * z2).mean(-1, keepdim=True) - 3.0,
                      (x * x).mean(-1, keepdim=True)], dim=-1)


def cell_statistics(cells: torch.Tensor) -> torch.Tensor:
    """``(..., 15)`` statistics of ``(..., h, w)`` cells: [profile over width (averaged over height) |
    profile over height (averaged over width) | flattened cell], 5 each."""
    return torch.cat([_signal_stats(cells.mean(-2), True), _signal_stats(cells.mean(-1), True),
                      _signal_stats(cells.flatten(-2), False)], dim=-1)


def fmod_descriptors(edges: torch.Tensor, boxes: torch.Tensor, spatial_scale: torch.Tensor | float,
                     levels: int = 3, size: int = 160, sampling_ratio: int = 2, dense: bool = False) -> torch.Tensor:
    """``(N, 5 (4^L - 1))`` FMoD descriptors of ``boxes`` (image coordinates) on ``edges`` (1, 1, h, w).

    ``dense`` pools with :func:`~hcgym.perception.nms.roi_align.roi_align_dense` (the former, slower
    formulation; same values within float rounding) instead of the gather-based ``roi_align``.
    """
    roi_align_fn = roi_align_dense if dense else roi_align
    n = boxes.shape[0]
    rois = torch.cat([torch.zeros(n, 1, dtype=boxes.dtype), boxes], dim=1)
    level0 = roi_align_fn(edges, rois, size, spatial_scale, sampling_ratio, aligned=True)    # (N, 1, S0, S0)
    out = [cell_statistics(level0[:, 0]).reshape(n, -1)]
    for j in range(1, levels):
        k = 2 ** j
        if dense:
            cs = size / k
            grid = torch.arange(k, dtype=boxes.dtype) * cs
            y0, x0 = torch.meshgrid(grid, grid, indexing="ij")
            cells = torch.stack([x0.flatten(), y0.flatten(), x0.flatten() + cs, y0.flatten() + cs], dim=1)  # row-major
            idx = torch.arange(n, dtype=boxes.dtype).repeat_interleave(k * k)[:, None]
            crois = torch.cat([idx, cells.repeat(n, 1)], dim=1)
            pooled = roi_align_dense(level0, crois, size // k, 1.0, sampling_ratio, aligned=True)[:, 0]
        else:
            pooled = _pool_cells(level0[:, 0], k, sampling_ratio)
        out.append(cell_statistics(pooled).reshape(n, -1))              # (N k^2, S0/k, S0/k) cells, row-major
    return torch.cat(out, dim=1)


def cell_pooling_matrix(size: int, k: int, sampling_ratio: int, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """``(size, size)`` matrix ``M`` with ``M @ level0 @ M^T`` = the ROIAlign (``aligned=True``) of the ``k x k``
    cells of a ``size x size`` level-0 map, each to ``size / k`` bins, tiled in place; ``None`` when it is
    the identity (one sample per bin on a pixel: ``sampling_ratio`` 1 or adaptive)."""
    m = size // k
    grid = sampling_ratio if sampling_ratio > 0 else max(1, math.ceil((size / k) / m))
    if grid == 1:
        return None
    start = torch.arange(k, dtype=dtype) * (size / k) - 0.5
    extent = torch.full((k,), size / k, dtype=dtype)
    return _axis_weights(start, extent, m, torch.full((k,), grid, dtype=torch.int64), grid, size).reshape(size, size)


def _pool_cells(level0: torch.Tensor, k: int, sampling_ratio: int) -> torch.Tensor:
    """``(N k^2, S0/k, S0/k)``: the ``k x k`` cells of ``level0`` (N, S0, S0), row-major, ROIAligned to
    ``S0/k`` (what pooling each cell as a box of level 0 gives; one matrix product, the same for all boxes)."""
    n, size = level0.shape[0], level0.shape[-1]
    mat = cell_pooling_matrix(size, k, sampling_ratio, level0.dtype)
    pooled = level0 if mat is None else mat @ level0 @ mat.transpose(0, 1)
    m = size // k
    return pooled.reshape(n, k, m, k, m).transpose(2, 3).reshape(n * k * k, m, m)
