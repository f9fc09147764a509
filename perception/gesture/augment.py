"""Training augmentation of gesture images, batched in torch, every draw from a ``torch.Generator``.

Inputs are ``(N, C, S, S)`` float32 model inputs of a modality (:data:`~.backbones.MODALITIES`): ``rgb`` =
R, G, B; ``depth`` = one depth plane; ``rgbd`` = R, G, B, depth (:mod:`hcgym.perception.gesture.inputs` makes
them). The RGB channels are normalised, ``(rgb - rgb_mean) / rgb_std`` with ``rgb`` in [0, 1] (ImageNet
statistics by default, as the OpenDR learner); the depth channel is any encoding whose missing readings
hold ``hole_value`` (the project's ``relative`` depth: +1). Per sample:

* geometry (every channel alike, so RGB and depth stay aligned): a random resized crop of ``scale`` of the
  image area (0.8-1.0 as the OpenDR learner's ``RandomResizedCrop``) with aspect ratio in ``ratio``, rotated
  by up to ``rotation_deg`` degrees, resampled bilinearly to ``S x S`` (border values beyond the image). No
  flips: the left- and right-direction gestures are mirror images of each other;
* colour jitter of the RGB channels only, on ``rgb`` in [0, 1] (normalised again after): brightness,
  contrast and saturation factors in ``1 +- value``, clipped to [0, 1];
* depth channel only (on top of the depth camera's own noise model in the data): an offset in
  ``+- depth_shift`` (an error of the reference depth), per-pixel Gaussian noise of standard deviation
  ``depth_noise`` (channel units) and up to ``depth_holes`` of the pixels set to ``hole_value``;
* ``rgbd`` only, modality dropout (off by default): with probability ``drop_rgb`` a sample's RGB planes are
  blanked to 0 (the normalised mean colour), else with probability ``drop_depth`` its depth plane reads no
  depth (``hole_value`` everywhere), so that neither stream can stand in for the other. These draws are
  made only when a probability is above 0, and :meth:`Augment.to_dict` lists the two fields only then: the
  augmentation and the settings of runs without modality dropout are those from before it existed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hcgym.errors import SpecError
from hcgym.perception.gesture.backbones import MODALITIES

#: ITU-R BT.601 luma weights (the grey image of the saturation jitter).
LUMA = (0.299, 0.587, 0.114)
#: ImageNet mean and standard deviation of RGB in [0, 1]: the default normalisation of the RGB channels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Augment:
    """Augmentation ranges and the input encoding they act on (module docstring); ``Augment.none()``
    changes nothing."""

    scale: tuple[float, float] = (0.8, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation_deg: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    depth_shift: float = 0.05
    depth_noise: float = 0.02
    depth_holes: float = 0.02
    hole_value: float = 1.0
    rgb_mean: tuple[float, float, float] = IMAGENET_MEAN
    rgb_std: tuple[float, float, float] = IMAGENET_STD
    drop_rgb: float = 0.0
    drop_depth: float = 0.0

    @classmethod
    def none(cls, **encoding: Any) -> Augment:
        """No augmentation (``encoding``: ``hole_value``, ``rgb_mean``, ``rgb_std``)."""
        return cls((1.0, 1.0), (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, **encoding)

    def check(self) -> Augment:
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise SpecError("augment.scale", f"expected 0 < low <= high <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise SpecError("augment.ratio", f"expected 0 < low <= high, got {self.ratio}")
        for name in ("rotation_deg", "brightness", "contrast", "saturation", "depth_shift", "depth_noise"):
            if not getattr(self, name) >= 0:
                raise SpecError(f"augment.{name}", f"expected >= 0, got {getattr(self, name)}")
        for name in ("drop_rgb", "drop_depth"):
            if not 0 <= getattr(self, name) < 1:
                raise SpecError(f"augment.{name}", f"expected a probability in [0, 1), got {getattr(self, name)}")
        if self.drop_rgb + self.drop_depth >= 1:
            raise SpecError("augment.drop_rgb", f"drop_rgb + drop_depth must stay below 1, got {self.drop_rgb} + "
                                                f"{self.drop_depth}")
        if not 0 <= self.depth_holes <= 1:
            raise SpecError("augment.depth_holes", f"expected a fraction in [0, 1], got {self.depth_holes}")
        if len(self.rgb_mean) != 3 or len(self.rgb_std) != 3 or not all(v > 0 for v in self.rgb_std):
            raise SpecError("augment.rgb_std", f"expected 3 means and 3 positive deviations, got {self.rgb_mean}, "
                                               f"{self.rgb_std}")
        return self

    def rgb01(self, rgb: Tensor) -> Tensor:
        """Normalised RGB channels ``(N, 3, S, S)`` back to [0, 1]."""
        return rgb * torch.tensor(self.rgb_std).view(1, 3, 1, 1) + torch.tensor(self.rgb_mean).view(1, 3, 1, 1)

    def normalise(self, rgb: Tensor) -> Tensor:
        """RGB ``(N, 3, S, S)`` in [0, 1] to normalised channels."""
        return (rgb - torch.tensor(self.rgb_mean).view(1, 3, 1, 1)) / torch.tensor(self.rgb_std).view(1, 3, 1, 1)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON data; the modality-dropout probabilities only when above 0 (module docstring)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if not (k in ("drop_rgb", "drop_depth") and v == 0)}


def channel_roles(modality: str) -> tuple[slice | None, int | None]:
    """``(rgb channels, depth channel)`` of ``modality``: ``rgb`` -> ``(0:3, None)``, ``depth`` -> ``(None, 0)``,
    ``rgbd`` -> ``(0:3, 3)``."""
    if modality not in MODALITIES:
        raise SpecError("modality", f"unknown modality {modality!r} (allowed: {', '.join(MODALITIES)})")
    return (slice(0, 3) if modality != "depth" else None), {"rgb": None, "depth": 0, "rgbd": 3}[modality]


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def crop_rotate(x: Tensor, aug: Augment, g: torch.Generator) -> Tensor:
    """Random resized crop and rotation of every image of ``x`` ``(N, C, S, S)`` (all channels alike)."""
    n = x.shape[0]
    area = _uniform(n, *aug.scale, g)
    log_ratio = _uniform(n, math.log(aug.ratio[0]), math.log(aug.ratio[1]), g)
    w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)  # crop sides as fractions of the image side
    h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
    cx = (1 - w) * _uniform(n, -1.0, 1.0, g)  # normalised crop centre: the crop stays inside before rotation
    cy = (1 - h) * _uniform(n, -1.0, 1.0, g)
    angle = torch.deg2rad(_uniform(n, -aug.rotation_deg, aug.rotation_deg, g))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * w, -sin * h, cx], 1), torch.stack([sin * w, cos * h, cy], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def jitter_rgb(rgb: Tensor, aug: Augment, g: torch.Generator) -> Tensor:
    """Brightness, contrast and saturation jitter of ``rgb`` ``(N, 3, S, S)`` in [0, 1]; clipped to [0, 1]."""
    n = rgb.shape[0]
    b = _uniform(n, 1 - aug.brightness, 1 + aug.brightness, g).view(n, 1, 1, 1)
    c = _uniform(n, 1 - aug.contrast, 1 + aug.contrast, g).view(n, 1, 1, 1)
    s = _uniform(n, 1 - aug.saturation, 1 + aug.saturation, g).view(n, 1, 1, 1)
    luma = torch.tensor(LUMA, dtype=rgb.dtype).view(1, 3, 1, 1)
    rgb = (rgb * b).clamp(0, 1)
    mean = (rgb * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    rgb = (mean + c * (rgb - mean)).clamp(0, 1)
    grey = (rgb * luma).sum(1, keepdim=True)
    return (grey + s * (rgb - grey)).clamp(0, 1)


def perturb_depth(depth: Tensor, aug: Augment, g: torch.Generator) -> Tensor:
    """Offset, Gaussian noise and holes (``hole_value``) on the depth channel ``depth`` ``(N, 1, S, S)``;
    readings that are holes already stay holes."""
    n = depth.shape[0]
    shift = _uniform(n, -aug.depth_shift, aug.depth_shift, g).view(n, 1, 1, 1)
    noise = aug.depth_noise * torch.randn(depth.shape, generator=g)
    holes = torch.rand(depth.shape, generator=g) < aug.depth_holes * torch.rand(n, generator=g).view(n, 1, 1, 1)
    holes |= depth == aug.hole_value
    return torch.where(holes, torch.full_like(depth, aug.hole_value), depth + shift + noise)


def augment(x: Tensor, modality: str, aug: Augment, g: torch.Generator) -> Tensor:
    """Augmented copy of a batch ``x`` ``(N, C, S, S)`` of ``modality`` (module docstring); draws from ``g``."""
    rgb, depth = channel_roles(modality)
    x = crop_rotate(x, aug, g)
    parts = list(x.unbind(1))
    if rgb is not None:
        parts[0:3] = aug.normalise(jitter_rgb(aug.rgb01(x[:, rgb]), aug, g)).unbind(1)
    if depth is not None:
        parts[depth] = perturb_depth(x[:, depth:depth + 1], aug, g)[:, 0]
    out = torch.stack(parts, 1)
    if modality == "rgbd" and (aug.drop_rgb > 0 or aug.drop_depth > 0):
        out = drop_modality(out, aug, g)
    return out


def drop_modality(x: Tensor, aug: Augment, g: torch.Generator) -> Tensor:
    """RGB-D batch ``x`` ``(N, 4, S, S)`` with the RGB planes of some samples set to 0 (probability
    ``aug.drop_rgb``) and, of the others, the depth plane set to ``aug.hole_value`` (``aug.drop_depth``)."""
    u = torch.rand(x.shape[0], generator=g)
    no_rgb = (u < aug.drop_rgb).view(-1, 1, 1, 1)
    no_depth = ((u >= aug.drop_rgb) & (u < aug.drop_rgb + aug.drop_depth)).view(-1, 1, 1, 1)
    rgb = torch.where(no_rgb, torch.zeros_like(x[:, :3]), x[:, :3])
    depth = torch.where(no_depth, torch.full_like(x[:, 3:], aug.hole_value), x[:, 3:])
    return torch.cat([rgb, depth], 1)
