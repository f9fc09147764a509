"""Procedural floor and wall textures, written once per appearance into the cache."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from hcgym.paths import atomic_write_bytes, cache_dir
from hcgym.worlds.spec import Surface


def surface_image(surface: Surface, size_m: tuple[float, float], max_px: int = 2048) -> np.ndarray:
    """(H, W, 3) uint8 image of a surface covering ``size_m`` metres (row 0 = +y edge)."""
    from PIL import Image

    if surface.texture is not None:
        return np.asarray(Image.open(surface.texture).convert("RGB"))
    sx, sy = size_m
    ppm = min(max_px / sx, max_px / sy, 64.0)
    w, h = max(8, int(round(sx * ppm))), max(8, int(round(sy * ppm)))
    xs = (np.arange(w) + 0.5) / ppm - sx / 2
    ys = sy / 2 - (np.arange(h) + 0.5) / ppm
    x, y = np.meshgrid(xs, ys)
    c1, c2 = np.asarray(surface.color), np.asarray(surface.secondary)
    t = surface.tile_size
    rng = np.random.default_rng(int(hashlib.sha256(repr(surface).encode()).hexdigest()[:8], 16))
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


def floor_texture(surface: Surface, size_m: tuple[float, float]) -> Path:
    """PNG path of the floor texture (cached by appearance and size)."""
    from PIL import Image

    key = hashlib.sha256(repr((surface, size_m, 1)).encode()).hexdigest()[:16]
    path = cache_dir() / "textures" / f"floor-{key}.png"
    if not path.exists():
        buf = io.BytesIO()
        Image.fromarray(surface_image(surface, size_m)).save(buf, format="PNG", compress_level=1)
        atomic_write_bytes(path, buf.getvalue())
    return path


def floor_mesh(size_m: tuple[float, float]) -> Path:
    """OBJ file of a floor quad of ``size_m`` metres centred on the origin, UVs 0..1 (for file-only renderers)."""
    sx, sy = size_m
    path = cache_dir() / "meshes" / f"floor-{sx:g}x{sy:g}.obj"
    if not path.exists():
        text = (f"v {-sx / 2} {-sy / 2} 0\nv {sx / 2} {-sy / 2} 0\nv {sx / 2} {sy / 2} 0\nv {-sx / 2} {sy / 2} 0\n"
                "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvn 0 0 1\nf 1/1/1 2/2/1 3/3/1\nf 1/1/1 3/3/1 4/4/1\n")
        atomic_write_bytes(path, text.encode())
    return path
