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

import numpy as np
import torch
import torch.nn.functional as F

from hcgym.errors import SpecError
from hcgym.perception.nms.roi_align import roi_align

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


def geometric_features(boxes: torch.Tensor, scores: torch.Tensor, image_wh: torch.Tensor) -> torch.Tensor:
    """``(N, N, 14)``: entry ``[i, j]`` describes key ``j`` relative to query ``i`` (order in the module doc).

    ``image_wh`` is ``(W, H)`` of the image the boxes are in.
    """
    image_wh = image_wh.to(boxes.dtype)
    wi, hi = image_wh[0], image_wh[1]
    w, h = _wh(boxes)
    area = w * h
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    ux, uy = wi / 20.0, hi / 20.0
    ddx = cx[None, :] - cx[:, None]
    ddy = cy[None, :] - cy[:, None]
    aspect = h / w
    n = boxes.shape[0]

    def key(v: torch.Tensor) -> torch.Tensor:  # property of j, broadcast over the query i
        return v[None, :].expand(n, n)

    feats = [
        ddx / ux,
        ddy / uy,
        (ddx ** 2 + ddy ** 2) / (ux ** 2 + uy ** 2),
        w[None, :] / w[:, None],
        key(w / ux),
        h[None, :] / h[:, None],
        key(h / uy),
        5.0 * pairwise_iou(boxes),
        area[None, :] / area[:, None],
        key(area / (wi * hi / 400.0)),
        key(5.0 * scores),
        5.0 * (scores[None, :] - scores[:, None]),
        key(aspect),
        aspect[None, :] / aspect[:, None],
    ]
    return torch.stack(feats, dim=-1)

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
    std = x.std(-1, keepdim=True)
    z = (x - mu) / std.clamp(min=1e-6)          # a constant signal has z = 0
    mean = x[..., 0:-1:5].mean(-1, keepdim=True) if subsample_mean else mu
    return torch.cat([mean, std, (z ** 3).mean(-1, keepdim=True), (z ** 4).mean(-1, keepdim=True) - 3.0,
                      (x ** 2).mean(-1, keepdim=True)], dim=-1)


def cell_statistics(cells: torch.Tensor) -> torch.Tensor:
    """``(..., 15)`` statistics of ``(..., h, w)`` cells: [profile over width (averaged over height) |
    profile over height (averaged over width) | flattened cell], 5 each."""
    return torch.cat([_signal_stats(cells.mean(-2), True), _signal_stats(cells.mean(-1), True),
                      _signal_stats(cells.flatten(-2), False)], dim=-1)


def fmod_descriptors(edges: torch.Tensor, boxes: torch.Tensor, spatial_scale: torch.Tensor | float,
                     levels: int = 3, size: int = 160, sampling_ratio: int = 2) -> torch.Tensor:
    """``(N, 5 (4^L - 1))`` FMoD descriptors of ``boxes`` (image coordinates) on ``edges`` (1, 1, h, w)."""
    n = boxes.shape[0]
    rois = torch.cat([torch.zeros(n, 1, dtype=boxes.dtype), boxes], dim=1)
    level0 = roi_align(edges, rois, size, spatial_scale, sampling_ratio, aligned=True)    # (N, 1, S0, S0)
    out = [cell_statistics(level0[:, 0]).reshape(n, -1)]
    for j in range(1, levels):
        k = 2 ** j
        cs = size / k
        grid = torch.arange(k, dtype=boxes.dtype) * cs
        y0, x0 = torch.meshgrid(grid, grid, indexing="ij")
        cells = torch.stack([x0.flatten(), y0.flatten(), x0.flatten() + cs, y0.flatten() + cs], dim=1)  # row-major
        idx = torch.arange(n, dtype=boxes.dtype).repeat_interleave(k * k)[:, None]
        crois = torch.cat([idx, cells.repeat(n, 1)], dim=1)
        pooled = roi_align(level0, crois, size // k, 1.0, sampling_ratio, aligned=True)  # (N k^2, 1, S0/k, S0/k)
        out.append(cell_statistics(pooled[:, 0]).reshape(n, -1))
    return torch.cat(out, dim=1)
