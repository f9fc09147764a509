"""Procedural floor and wall textures, written once per appearance into the cache."""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import numpy as np

from hcgym.paths import atomic_write_bytes, cache_dir
from hcgym.worlds.spec import Surface


def surface_image(surface: Surface, size_m: tuple[float, float], max_px: int = 2048) -> np.ndarray:
    """(H, W, 3) uint8 image of a surface covering ``size_m`` metres (row 0 = +y edge).

    With ``surface.repeat`` the image covers one ``repeat`` x ``repeat`` metre copy instead, and
    its patterns and noise wrap around its edges, so copies laid side by side join seamlessly.
    """
    from PIL import Image

    if surface.texture is not None:
        return np.asarray(Image.open(surface.texture).convert("RGB"))
    if surface.repeat is not None:
        size_m = (surface.repeat, surface.repeat)
    sx, sy = size_m
    ppm = min(max_px / sx, max_px / sy, 64.0)
    w, h = max(8, int(round(sx * ppm))), max(8, int(round(sy * ppm)))
    xs = (np.arange(w) + 0.5) / ppm - sx / 2
    ys = sy / 2 - (np.arange(h) + 0.5) / ppm
    x, y = np.meshgrid(xs, ys)
    c1, c2 = np.asarray(surface.color), np.asarray(surface.secondary)
    t = surface.tile_size
    rng = np.random.default_rng(int(hashlib.sha256(repr(surface).encode()).hexdigest()[:8], 16))
    if surface.pattern in ("soil", "crop_rows"):
        img = _field(surface, x + sx / 2, y + sy / 2, (sx, sy), ppm, rng)
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if surface.pattern == "checker":
        sel = (np.floor(x / t) + np.floor(y / t)) % 2 == 0
        img = np.where(sel[..., None], c1, c2)
    elif surface.pattern == "tiles":
        fx, fy = (x / t) % 1.0, (y / t) % 1.0
        grout = (np.minimum(fx, 1 - fx) < 0.02) | (np.minimum(fy, 1 - fy) < 0.02)
        img = np.where(grout[..., None], c2 * 0.8, c1)
    elif surface.pattern == "stripes":
        img = np.where(((np.floor(x / t)) % 2 == 0)[..., None], c1, c2)
    else:  # plain, asphalt, grass: colour with noise at two scales
        img = np.broadcast_to(c1, (h, w, 3)).astype(np.float64)
    amp = {"asphalt": 0.10, "grass": 0.18}.get(surface.pattern, 0.03)
    noise = rng.normal(0, 1, (h, w))
    img = img * (1 + amp * noise)[..., None]
    if surface.pattern == "grass":
        img = img * np.array([0.9, 1.05, 0.8])
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """(H, W) noise with features of about ``scale_px`` pixels, zero mean and unit spread. It wraps
    around the image edges (Gaussian-filtered white noise in the Fourier domain), so it tiles."""
    h, w = shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    gain = np.exp(-2.0 * (math.pi * scale_px) ** 2 * (fx ** 2 + fy ** 2))
    out = np.fft.irfft2(np.fft.rfft2(rng.normal(0.0, 1.0, shape)) * gain, s=shape)
    return (out - out.mean()) / (out.std() + 1e-12)


def _field(surface: Surface, x: np.ndarray, y: np.ndarray, size_m: tuple[float, float], ppm: float,
           rng: np.random.Generator) -> np.ndarray:
    """Farm ground as (H, W, 3) floats: ``soil`` (ploughed, furrows along x every ``tile_size``) or
    ``crop_rows`` (soil with rows of plants along x every ``tile_size``, covering ``cover`` of it).

    ``x``, ``y`` are texel centres in metres from the image's lower-left corner; ``color`` is the
    soil, ``secondary`` the furrow bottoms (``soil``) or the plants (``crop_rows``).
    """
    shape = x.shape
    period = surface.tile_size
    c1, c2 = np.asarray(surface.color), np.asarray(surface.secondary)
    # Soil: patches of a few metres (moisture, soil type), clods of a few centimetres, texel grain.
    patches = smooth_noise(rng, shape, 2.5 * ppm)
    clods = smooth_noise(rng, shape, max(1.0, 0.03 * ppm))
    grain = rng.normal(0.0, 1.0, shape)
    shade = 1.0 + 0.09 * patches + 0.08 * clods + 0.05 * grain
    phase = 2.0 * math.pi * y / period
    if surface.pattern == "soil":
        ridge = 0.5 + 0.5 * np.sin(phase + 0.25 * smooth_noise(rng, shape, 0.5 * ppm))
        img = c2 + (c1 - c2) * ridge[..., None]
        img = img * (shade * (0.92 + 0.16 * np.clip(np.cos(phase), 0, 1)))[..., None]  # lit furrow flanks
    else:
        img = c1 * (shade * (1.0 + 0.04 * np.cos(phase)))[..., None]
        img = _plants(surface, x, y, size_m, ppm, img, patches, rng)
    stones = rng.random(shape) < 0.0015
    img[stones] = img[stones] * 0.4 + 0.55
    return img


def _plants(surface: Surface, x: np.ndarray, y: np.ndarray, size_m: tuple[float, float], ppm: float,
            img: np.ndarray, patches: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw rows of plants (five-lobed rosettes, some missing) onto ``img``; returns it."""
    sx, sy = size_m
    period = surface.tile_size
    rows = max(1, int(round(sy / period)))
    radius = surface.cover * period / 2
    per_row = max(1, int(round(sx / max(0.1, min(1.6 * radius, 0.35 * period)))))
    spacing = sx / per_row
    jitter = rng.uniform(-0.3, 0.3, (rows, per_row)) * spacing
    size = radius * rng.uniform(0.6, 1.25, (rows, per_row)) * (rng.random((rows, per_row)) > 0.08)
    turn = rng.uniform(0, 2 * math.pi, (2, rows, per_row))
    tone = rng.normal(0.0, 1.0, (rows, per_row))
    j = np.clip(np.floor(y / period).astype(int), 0, rows - 1)
    dy = y - (j + 0.5) * period
    k0 = np.floor(x / spacing).astype(int)
    best = np.full(x.shape, np.inf)
    which = np.zeros(x.shape, dtype=int)
    for dk in (-1, 0, 1):
        k = (k0 + dk) % per_row
        dx = x - ((k0 + dk + 0.5) * spacing + jitter[j, k])
        r = np.hypot(dx, dy)
        angle = np.arctan2(dy, dx)
        lobes = size[j, k] * (0.8 + 0.14 * np.cos(5 * angle + turn[0, j, k]) + 0.08 * np.cos(3 * angle + turn[1, j, k]))
        rel = np.where(lobes > 0, r / np.maximum(lobes, 1e-9), np.inf)
        closer = rel < best
        best = np.where(closer, rel, best)
        which = np.where(closer, k, which)
    leaf = best < 1.0
    img = img * np.where(best < 1.5, 0.72 + 0.28 * np.clip(best - 1.0, 0, 0.5) / 0.5, 1.0)[..., None]  # shade
    c2 = np.asarray(surface.secondary)
    green = c2 * (1.0 + 0.12 * tone[j, which] + 0.08 * patches)[..., None]
    green = green * (1.12 - 0.3 * np.clip(best, 0, 1) ** 2)[..., None]  # lighter leaf centres
    green = green * (1.0 + 0.08 * rng.normal(0.0, 1.0, x.shape))[..., None]
    return np.where(leaf[..., None], green, img)


def floor_texture(surface: Surface, size_m: tuple[float, float]) -> Path:
    """PNG path of the floor texture (cached by appearance and size)."""
    from PIL import Image

    key = hashlib.sha256(repr((surface, surface.repeat, surface.cover, size_m, 1)).encode()).hexdigest()[:16]
    path = cache_dir() / "textures" / f"floor-{key}.png"
    if not path.exists():
        buf = io.BytesIO()
        Image.fromarray(surface_image(surface, size_m)).save(buf, format="PNG", compress_level=1)
        atomic_write_bytes(path, buf.getvalue())
    return path


def floor_uv(surface: Surface, size_m: tuple[float, float]) -> tuple[float, float]:
    """Texture coordinates at the floor's far corner: (1, 1) for one image over the floor, more
    with ``surface.repeat`` (the renderers repeat textures outside 0..1)."""
    if surface.repeat is None:
        return (1.0, 1.0)
    return (size_m[0] / surface.repeat, size_m[1] / surface.repeat)


def floor_mesh(size_m: tuple[float, float], uv: tuple[float, float] = (1.0, 1.0)) -> Path:
    """OBJ file of a floor quad of ``size_m`` metres centred on the origin, UVs 0..``uv`` (for file-only
    renderers)."""
    sx, sy = size_m
    u, v = uv
    tag = "" if uv == (1.0, 1.0) else f"-uv{u:g}x{v:g}"
    path = cache_dir() / "meshes" / f"floor-{sx:g}x{sy:g}{tag}.obj"
    if not path.exists():
        text = (f"v {-sx / 2} {-sy / 2} 0\nv {sx / 2} {-sy / 2} 0\nv {sx / 2} {sy / 2} 0\nv {-sx / 2} {sy / 2} 0\n"
                f"vt 0 0\nvt {u:g} 0\nvt {u:g} {v:g}\nvt 0 {v:g}\nvn 0 0 1\nf 1/1/1 2/2/1 3/3/1\nf 1/1/1 3/3/1 4/4/1\n")
        atomic_write_bytes(path, text.encode())
    return path
