"""Domain randomisation of scene images (``hcgym generate --randomise``, ``SceneSettings(randomise=True)``).

Rendered people look like renders: one renderer, one kind of light, the world's own floor and props, sharp
edges and clean pixels. A detector trained on them alone learns the renderer. Randomising everything that
is not a person (and the colours of the people) makes it learn the people. Per image, from the seed and
the image index only (its own generator, :func:`look_rng`, so images without randomisation keep their
bytes):

* camera: a share :data:`CLOSE_UP_FRACTION` of the images are close-ups (people 0.8-3.5 m away, the image
  anchored anywhere between the hips and the head, so people are half-body, head-and-shoulders or cut by the
  image borders), facing the camera to within :data:`CLOSE_UP_FACING` degrees; every image gets a roll of
  up to :data:`ROLL_DEG` degrees;
* light: direction, colour temperature, intensity and ambient level over wide ranges (:func:`sample_light`);
* skin and clothing: per person, a lightness change of the skin-coloured pixels and a hue rotation of the
  others (clothes, hair), :func:`tint_people`; then, for a share of the people, new garments: the clothes
  repainted in suit, uniform and everyday colours (upper and lower garment, or one suit), with the rendered
  shading kept and sometimes a woven or printed pattern, :func:`dress_people`;
* backgrounds: with probability :data:`BACKGROUND_P` every pixel that is not a person is replaced by a
  procedural texture (gradients, multi-scale noise, tiles, stripes, blobs), :func:`background`;
* distractors: non-person 2-D shapes (ellipses, boxes, polygons, poles, noise patches), drawn behind the
  people so masks and visibility stay exact, :func:`draw_distractors`;
* camera effects: colour balance and gamma, grey images, motion or defocus blur, sensor noise and JPEG
  compression (:func:`camera_effects`).

Every range is a module constant, listed in ``docs/datasets.md`` ("Domain randomisation").
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcgym.synthesis.dataset.sampling import LightSample

#: Share of close-up images, and their ranges (metres, degrees, people per image).
CLOSE_UP_FRACTION = 0.5
CLOSE_UP_DISTANCE = (0.8, 3.5)
CLOSE_UP_HEIGHT = (1.0, 1.9)
CLOSE_UP_PITCH = (-15.0, 10.0)
CLOSE_UP_HUMANS = (1, 3)
#: Height above the feet of the point that must project inside a close-up (the pelvis otherwise).
CLOSE_UP_ANCHOR = (0.9, 1.65)
#: People in a close-up face the camera to within this many degrees (like the subjects of photos).
CLOSE_UP_FACING = 70.0
#: Largest camera roll (degrees, either way).
ROLL_DEG = 10.0
#: Light: elevation (degrees), colour temperature (kelvin), intensity and ambient level.
LIGHT_ELEVATION = (10.0, 85.0)
LIGHT_KELVIN = (2700.0, 9000.0)
LIGHT_INTENSITY = (0.5, 1.4)
LIGHT_AMBIENT = (0.15, 0.8)
#: Skin: lightness factor; clothes and hair: hue rotation (degrees) and saturation factor.
SKIN_VALUE = (0.65, 1.25)
CLOTH_HUE_DEG = 90.0
CLOTH_SATURATION = (0.6, 1.4)
#: Garments: probability that a person is re-dressed, that upper and lower garment share one colour (a suit),
#: that the cloth gets a pattern; where the upper garment ends (share of the person's visible height, from
#: the top); the palette (RGB; dark suits and uniforms, shirts, everyday colours) and the share of colours
#: drawn from it rather than uniformly.
GARMENT_P = 0.6
GARMENT_SUIT_P = 0.4
GARMENT_PATTERN_P = 0.25
GARMENT_SPLIT = (0.4, 0.62)
GARMENT_COLOURS = ((20, 20, 22), (45, 47, 52), (28, 32, 62), (40, 45, 80), (85, 85, 90), (130, 130, 135),
                   (60, 62, 45), (90, 62, 42), (185, 165, 135), (235, 235, 232), (160, 185, 215), (120, 25, 32),
                   (225, 110, 40), (200, 170, 40))
GARMENT_PALETTE_P = 0.75
#: Probability of a procedural background, and its kinds.
BACKGROUND_P = 0.5
BACKGROUND_KINDS = ("gradient", "noise", "tiles", "stripes", "blobs")
#: Probability of any distractor, and how many at most.
DISTRACTOR_P = 0.6
DISTRACTOR_MAX = 6
DISTRACTOR_KINDS = ("ellipse", "box", "polygon", "pole", "patch")
#: Camera effects: per-channel gain, gamma, grey probability, blur probabilities and sizes (pixels),
#: noise probability and sigma (grey levels), JPEG quality.
CHANNEL_GAIN = (0.85, 1.15)
GAMMA = (0.7, 1.4)
GREY_P = 0.05
MOTION_BLUR_P = 0.2
MOTION_BLUR_PX = (3, 11)
DEFOCUS_P = 0.2
DEFOCUS_SIGMA = (0.7, 2.2)
NOISE_P = 0.5
NOISE_SIGMA = (2.0, 10.0)
JPEG_QUALITY = (35, 95)


def look_rng(seed: int, index: int) -> np.random.Generator:
    """The randomisation generator of image ``index`` (apart from the scene generator's own)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0xD0A1, int(index)]))


@dataclass(frozen=True)
class CloseUp:
    """Camera and placement ranges of a close-up image."""

    distance: tuple[float, float]
    camera_height: tuple[float, float]
    camera_pitch: tuple[float, float]
    humans: tuple[int, int]
    anchor_height: float


def draw_camera(rng: np.random.Generator, identities: int) -> tuple[CloseUp | None, float]:
    """Whether image is a close-up (its ranges, ``None`` if not) and the camera roll in degrees."""
    close = None
    if rng.random() < CLOSE_UP_FRACTION:
        close = CloseUp(CLOSE_UP_DISTANCE, CLOSE_UP_HEIGHT, CLOSE_UP_PITCH,
                        (min(CLOSE_UP_HUMANS[0], identities), min(CLOSE_UP_HUMANS[1], identities)),
                        round(float(rng.uniform(*CLOSE_UP_ANCHOR)), 3))
    return close, round(float(rng.uniform(-ROLL_DEG, ROLL_DEG)), 3)


def kelvin_rgb(kelvin: float) -> tuple[float, float, float]:
    """RGB in [0, 1] (the largest channel 1) of a black body at ``kelvin`` (Tanner Helland's fit, 1000-40000 K)."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    rgb = np.clip(np.array([r, g, b]), 1.0, 255.0)
    rgb = rgb / rgb.max()
    return tuple(round(float(v), 4) for v in rgb)  # type: ignore[return-value]


def sample_light(rng: np.random.Generator) -> tuple[LightSample, float]:
    """A light of the randomised ranges and its colour temperature (kelvin)."""
    az, el = math.radians(rng.uniform(-180, 180)), math.radians(rng.uniform(*LIGHT_ELEVATION))
    d = (math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), -math.sin(el))
    kelvin = float(math.exp(rng.uniform(math.log(LIGHT_KELVIN[0]), math.log(LIGHT_KELVIN[1]))))
    light = LightSample(tuple(round(v, 4) for v in d), kelvin_rgb(kelvin),  # type: ignore[arg-type]
                        round(float(rng.uniform(*LIGHT_INTENSITY)), 3), round(float(rng.uniform(*LIGHT_AMBIENT)), 3))
    return light, round(kelvin, 1)


# ------------------------------------------------------------------ people
def skin_like(hsv: np.ndarray) -> np.ndarray:
    """(..., 3) OpenCV HSV uint8 -> bool: skin-coloured (orange-red hue, moderate saturation, not dark)."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    return ((h <= 25) | (h >= 170)) & (s >= 30) & (s <= 190) & (v >= 50)


def tint_people(rgb: np.ndarray, seg: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """Per person ``k`` (pixels ``seg == k + 1``): skin lightness times :data:`SKIN_VALUE`, the other pixels'
    hue rotated by up to :data:`CLOTH_HUE_DEG` degrees and saturation times :data:`CLOTH_SATURATION`.

    Returns the (H, W, 3) uint8 image and the drawn ``[skin_value, hue_deg, saturation]`` per person.
    """
    import cv2

    params = [[round(float(rng.uniform(*SKIN_VALUE)), 3), round(float(rng.uniform(-CLOTH_HUE_DEG, CLOTH_HUE_DEG)), 1),
               round(float(rng.uniform(*CLOTH_SATURATION)), 3)] for _ in range(count)]
    if not count or not (seg > 0).any():
        return rgb, params
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    out = hsv.astype(np.float32)
    skin = skin_like(hsv)
    for k, (value, hue, sat) in enumerate(params):
        m = seg == k + 1
        if not m.any():
            continue
        ms, mc = m & skin, m & ~skin
        out[..., 2][ms] *= value
        out[..., 0][mc] = (out[..., 0][mc] + hue / 2.0) % 180.0
        out[..., 1][mc] *= sat
    out[..., 1:] = np.clip(out[..., 1:], 0, 255)
    tinted = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    return np.where((seg > 0)[..., None], tinted, rgb), params


def _garment_colour(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < GARMENT_PALETTE_P:
        base = np.asarray(GARMENT_COLOURS[int(rng.integers(len(GARMENT_COLOURS)))], np.float32)
        return np.clip(base * rng.uniform(0.8, 1.2) + rng.normal(0, 6, 3), 0, 255).astype(np.float32)
    return _colour(rng)


def dress_people(rgb: np.ndarray, seg: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """New garments for a share :data:`GARMENT_P` of the people: the pixels of person ``k`` (``seg == k + 1``)
    that are not skin-coloured get an upper and a lower garment colour (one colour with probability
    :data:`GARMENT_SUIT_P`), split at a share :data:`GARMENT_SPLIT` of the person's visible height, times the
    rendered shading (the pixel's brightness over the garment's bright level), and with probability
    :data:`GARMENT_PATTERN_P` a stripe, check or noise pattern.

    Returns the (H, W, 3) uint8 image and per person ``None`` (not re-dressed) or
    ``{"upper": rgb, "lower": rgb, "split": share, "pattern": kind or None}``.
    """
    import cv2

    params: list = []
    out = rgb.astype(np.float32)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV) if count else None
    lum = out.mean(axis=2)
    for k in range(count):
        if rng.random() >= GARMENT_P:
            params.append(None)
            continue
        upper = _garment_colour(rng)
        lower = upper if rng.random() < GARMENT_SUIT_P else _garment_colour(rng)
        split = float(rng.uniform(*GARMENT_SPLIT))
        pattern = None
        if rng.random() < GARMENT_PATTERN_P:
            pattern = str(("stripes", "tiles", "noise")[int(rng.integers(3))])
        params.append({"upper": [round(float(v), 1) for v in upper], "lower": [round(float(v), 1) for v in lower],
                       "split": round(split, 3), "pattern": pattern})
        person = seg == k + 1
        m = person & ~skin_like(hsv)
        if not m.any():
            continue
        ys, xs = np.nonzero(m)
        top, bottom = np.nonzero(person.any(axis=1))[0][[0, -1]]
        y_split = top + split * (bottom - top + 1)
        level = max(float(np.percentile(lum[ys, xs], 80)), 8.0)
        shade = np.clip(lum[ys, xs] / level, 0.2, 1.5)[:, None]
        colour = np.where((ys < y_split)[:, None], upper, lower)
        if pattern is not None:
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            tex, _ = background(rng, int(y1 - y0), int(x1 - x0), pattern)
            grey = tex.astype(np.float32).mean(axis=2)
            colour = colour * (0.6 + 0.8 * grey[ys - y0, xs - x0] / 255.0)[:, None]
        out[ys, xs] = colour * shade
    return np.clip(out, 0, 255).astype(np.uint8), params


# -------------------------------------------------------------- background
def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3).astype(np.float32)


def _noise(rng: np.random.Generator, h: int, w: int, octaves: int = 4) -> np.ndarray:
    """(h, w) float32 multi-scale value noise in [0, 1]."""
    import cv2

    out = np.zeros((h, w), np.float32)
    total = 0.0
    for o in range(octaves):
        cells = 2 ** (o + 1) + int(rng.integers(0, 3))
        amp = 0.5 ** o
        grid = rng.random((cells + 1, max(2, int(cells * w / h) + 1))).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def background(rng: np.random.Generator, h: int, w: int, kind: str | None = None) -> tuple[np.ndarray, str]:
    """A procedural (h, w, 3) uint8 background of ``kind`` (default: a random one of :data:`BACKGROUND_KINDS`);
    and its kind."""
    import cv2

    drawn = str(BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))])
    kind = drawn if kind is None else kind
    a, b = _colour(rng), _colour(rng)
    if kind == "gradient":
        ang = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (np.cos(ang) * xx + np.sin(ang) * yy)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        img = a + t[..., None] * (b - a)
    elif kind == "noise":
        t = _noise(rng, h, w)
        img = a + t[..., None] * (b - a)
    elif kind == "tiles":
        size = int(rng.integers(8, max(9, h // 3)))
        yy, xx = np.mgrid[0:h, 0:w]
        shift = (yy // size) % 2 * (size // 2) if rng.random() < 0.5 else 0  # bricks or a checkerboard
        t = (((xx + shift) // size + yy // size) % 2).astype(np.float32)
        img = a + t[..., None] * (b - a)
        mortar = ((xx + shift) % size < 2) | (yy % size < 2)
        img[mortar] = img[mortar] * 0.6
    elif kind == "stripes":
        period = float(rng.uniform(6, max(7, w / 4)))
        ang = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = 0.5 + 0.5 * np.sin((np.cos(ang) * xx + np.sin(ang) * yy) * 2 * math.pi / period)
        img = a + t[..., None] * (b - a)
    else:  # blobs
        img = np.empty((h, w, 3), np.float32)
        img[:] = a
        for _ in range(int(rng.integers(5, 25))):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            r = int(rng.integers(3, max(4, h // 4)))
            cv2.circle(img, c, r, _colour(rng).tolist(), -1, cv2.LINE_AA)
    shade = 0.75 + 0.5 * _noise(rng, h, w, 2)[..., None]  # low-frequency shading over every kind
    return np.clip(img * shade, 0, 255).astype(np.uint8), kind


# ------------------------------------------------------------- distractors
def draw_distractors(image: np.ndarray, rng: np.random.Generator, count: int) -> list[str]:
    """Draw ``count`` random non-person shapes of :data:`DISTRACTOR_KINDS` into ``image`` (H, W, 3) uint8, in
    place; returns their kinds. Sizes: 5-60 % of the image height."""
    import cv2

    h, w = image.shape[:2]
    kinds = []
    for _ in range(count):
        kind = str(DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))])
        kinds.append(kind)
        size = float(rng.uniform(0.05, 0.6)) * h
        cx, cy = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        colour = _colour(rng).tolist()
        if kind == "ellipse":
            axes = (max(1, int(size / 2)), max(1, int(size / 2 * rng.uniform(0.3, 1.0))))
            cv2.ellipse(image, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == "box":
            bw, bh = size * rng.uniform(0.4, 1.2), size * rng.uniform(0.4, 1.2)
            rect = ((cx, cy), (bw, bh), float(rng.uniform(0, 90)))
            cv2.fillPoly(image, [cv2.boxPoints(rect).astype(np.int32)], colour, cv2.LINE_AA)
        elif kind == "polygon":
            n = int(rng.integers(3, 9))
            ang = np.sort(rng.uniform(0, 2 * math.pi, n))
            rad = size / 2 * rng.uniform(0.4, 1.0, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(image, [pts], colour, cv2.LINE_AA)
        elif kind == "pole":  # tall and thin, upright-ish: the aspect of a standing person
            bw = max(2.0, size * rng.uniform(0.08, 0.3))
            rect = ((cx, cy), (bw, size * 1.5), float(rng.uniform(-15, 15)))
            cv2.fillPoly(image, [cv2.boxPoints(rect).astype(np.int32)], colour, cv2.LINE_AA)
        else:  # patch of noise texture
            bw, bh = int(size * rng.uniform(0.4, 1.2)) + 2, int(size * rng.uniform(0.4, 1.2)) + 2
            x0, y0 = int(cx - bw / 2), int(cy - bh / 2)
            xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + bw), min(h, y0 + bh)
            if xb > xa and yb > ya:
                t = _noise(rng, yb - ya, xb - xa, 3)[..., None]
                image[ya:yb, xa:xb] = np.clip(np.asarray(colour) * (0.4 + 0.9 * t), 0, 255).astype(np.uint8)
    return kinds


# ---------------------------------------------------------- camera effects
def camera_effects(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Colour gain and gamma, maybe grey, maybe motion or defocus blur, maybe noise, then a JPEG round trip.

    (H, W, 3) uint8 in and out; also the drawn parameters.
    """
    import cv2
    from PIL import Image

    gain = rng.uniform(*CHANNEL_GAIN, 3)
    gamma = float(rng.uniform(*GAMMA))
    img = 255.0 * (np.clip(rgb.astype(np.float32) * gain / 255.0, 0, 1) ** gamma)
    info: dict[str, Any] = {"gain": [round(float(g), 3) for g in gain], "gamma": round(gamma, 3)}
    if rng.random() < GREY_P:
        img[:] = img.mean(axis=2, keepdims=True)
        info["grey"] = True
    u = rng.random()
    if u < MOTION_BLUR_P:
        n = int(rng.integers(MOTION_BLUR_PX[0], MOTION_BLUR_PX[1] + 1))
        ang = float(rng.uniform(0, 180))
        k = np.zeros((n, n), np.float32)
        k[n // 2, :] = 1.0
        k = cv2.warpAffine(k, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), ang, 1.0), (n, n))
        img = cv2.filter2D(img, -1, k / max(float(k.sum()), 1e-6), borderType=cv2.BORDER_REFLECT)
        info["motion_blur"] = [n, round(ang, 1)]
    elif u < MOTION_BLUR_P + DEFOCUS_P:
        sigma = float(rng.uniform(*DEFOCUS_SIGMA))
        img = cv2.GaussianBlur(img, (0, 0), sigma)
        info["defocus_sigma"] = round(sigma, 3)
    if rng.random() < NOISE_P:
        sigma = float(rng.uniform(*NOISE_SIGMA))
        img = img + rng.normal(0.0, sigma, img.shape).astype(np.float32)
        info["noise_sigma"] = round(sigma, 3)
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    info["jpeg_quality"] = quality
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), info


def apply(rgb: np.ndarray, seg: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Every image-space randomisation, in a fixed order: people's colours and garments, background,
    distractors (behind the people: person pixels ``seg > 0`` are kept), camera effects.

    Args:
        rgb: (H, W, 3) uint8 render. seg: (H, W) int, ``k + 1`` on person ``k`` of ``count``, 0 elsewhere.
    Returns the (H, W, 3) uint8 image and the drawn parameters (JSON data).
    """
    h, w = seg.shape
    people = (seg > 0)[..., None]
    out, tints = tint_people(rgb, seg, count, rng)
    out, garments = dress_people(out, seg, count, rng)
    info: dict[str, Any] = {"tints": tints, "garments": garments}
    if rng.random() < BACKGROUND_P:
        bg, kind = background(rng, h, w)
        out = np.where(people, out, bg)
        info["background"] = kind
    if rng.random() < DISTRACTOR_P:
        layer = out.copy()
        info["distractors"] = draw_distractors(layer, rng, int(rng.integers(1, DISTRACTOR_MAX + 1)))
        out = np.where(people, out, layer)
    out, effects = camera_effects(np.ascontiguousarray(out), rng)
    info.update(effects)
    return out, info
