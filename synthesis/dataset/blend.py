"""Real-background blending (the seed's mixed-data method): people rendered onto photos.

A background folder holds photos (``.jpg``, ``.jpeg``, ``.png``). Each may have
a sidecar ``<stem>.json`` describing the camera that took it::

    {"horizon_row": 410, "camera_height": 1.5, "hfov": 65, "feet_rows": [450, 960]}

* ``horizon_row``: image row (pixels, photo resolution) of the horizon, where the ground plane
  vanishes; with the focal length it gives the camera pitch.
* ``camera_height``: metres above the ground plane.
* ``hfov`` (degrees) or ``focal_px`` (pixels): the lens.
* ``feet_rows``: optional [first, last] row where feet may stand (keeps people off a building front).

Missing keys take the default camera model :data:`DEFAULT_CAMERA` (eye height, 60 degrees,
horizon through the centre). People are placed on that ground plane, so their scale follows
the perspective of the photo; their colour statistics (CIE Lab mean and spread) are moved
towards the photo's, they are blurred to the photo's sharpness, and composited with the
alpha mask from the segmentation.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hcgym.errors import SpecError
from hcgym.types import CameraIntrinsics

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Camera assumed for photos without a sidecar (or for the keys it leaves out).
DEFAULT_CAMERA = {"horizon_fraction": 0.5, "camera_height": 1.6, "hfov": 60.0}
#: How far the person layer's colour statistics move towards the photo's (0 none, 1 all the way).
COLOR_STRENGTH = 0.5
#: Gaussian blur sigmas (pixels) tried to match the photo's sharpness.
BLUR_SIGMAS = (0.0, 0.5, 0.8, 1.1, 1.5, 2.0, 2.6)


@dataclass(frozen=True)
class Background:
    """One photo and its camera (pixels of the photo, metres)."""

    path: Path
    width: int
    height: int
    horizon_row: float
    camera_height: float
    focal_px: float
    feet_rows: tuple[float, float] | None = None
    sidecar: Path | None = None

    @property
    def pitch(self) -> float:
        """Camera pitch (degrees, positive up) implied by the horizon row."""
        return math.degrees(math.atan((self.horizon_row - self.height / 2) / self.focal_px))


def scan_backgrounds(folder: str | Path) -> list[Background]:
    """All photos of ``folder`` (sorted by name) with their validated sidecars.

    Raises :class:`SpecError` for a missing folder, a folder without photos, an unreadable
    photo or a malformed sidecar.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise SpecError("--backgrounds", f"not a folder: {folder}")
    photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise SpecError("--backgrounds", f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    out = []
    for p in photos:
        try:
            with Image.open(p) as im:
                w, h = im.size
        except (UnidentifiedImageError, OSError) as e:
            raise SpecError("--backgrounds", f"{p.name} is not a readable image ({e})") from None
        out.append(_with_sidecar(p, w, h))
    return out


def _with_sidecar(photo: Path, w: int, h: int) -> Background:
    from hcgym.validate import Fields

    side = photo.with_suffix(".json")
    data: dict = {}
    if side.exists():
        try:
            data = json.loads(side.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SpecError("sidecar", f"not valid JSON: {e}", str(side)) from None
    f = Fields(data, "", str(side))
    horizon = f.number("horizon_row", DEFAULT_CAMERA["horizon_fraction"] * h, lo=-10.0 * h, hi=11.0 * h)
    height = f.number("camera_height", DEFAULT_CAMERA["camera_height"], lo=0.1, hi=50.0)
    if f.has("hfov") and f.has("focal_px"):
        raise f.error("focal_px", "give either hfov or focal_px, not both")
    if f.has("focal_px"):
        focal = f.number("focal_px", lo=1.0, hi=100.0 * w)
    else:
        hfov = f.number("hfov", DEFAULT_CAMERA["hfov"], lo=10.0, hi=150.0)
        focal = (w / 2) / math.tan(math.radians(hfov) / 2)
    feet = None
    if f.has("feet_rows"):
        feet = f.vector("feet_rows", 2, lo=0.0, hi=float(h))
        if feet[0] >= feet[1]:
            raise f.error("feet_rows", f"expected [first, last] with first < last, got {list(feet)}")
    f.done()
    bg = Background(photo, w, h, horizon, height, focal, feet, side if side.exists() else None)  # type: ignore[arg-type]
    if abs(bg.pitch) > 60.0:
        raise SpecError("horizon_row", f"{horizon:g} implies a camera pitch of {bg.pitch:.0f} degrees "
                                       "(allowed: within 60 degrees of level)", str(side))
    return bg


def backgrounds_key(backgrounds: list[Background]) -> str:
    """Content hash of the photos and sidecars (a resumed run must see the same ones)."""
    h = hashlib.sha256()
    for bg in backgrounds:
        h.update(bg.path.name.encode())
        h.update(hashlib.sha256(bg.path.read_bytes()).digest())
        if bg.sidecar is not None:
            h.update(bg.sidecar.read_bytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class PreparedPhoto:
    """A photo cropped and resized to the output: ``rgb`` (H, W, 3) uint8 and its camera."""

    rgb: np.ndarray
    intrinsics: CameraIntrinsics
    pitch: float
    camera_height: float
    feet_rows: tuple[float, float] | None
    crop: tuple[float, float, float, float]  #: x0, y0, x1, y1 in photo pixels.
    flipped: bool


def prepare_photo(bg: Background, photo: np.ndarray, size: tuple[int, int],
                  rng: np.random.Generator) -> PreparedPhoto:
    """Crop ``photo`` (the decoded (h, w, 3) RGB of ``bg``) to the output aspect around its centre,
    at a random scale in [0.85, 1] (the principal point stays centred, so the camera model stays
    exact), resize it to ``size`` and mirror it half of the time."""
    from PIL import Image

    w_out, h_out = size
    aspect = w_out / h_out
    if bg.width / bg.height > aspect:
        ch = float(bg.height)
        cw = ch * aspect
    else:
        cw = float(bg.width)
        ch = cw / aspect
    s = float(rng.uniform(0.85, 1.0))
    cw, ch = cw * s, ch * s
    x0, y0 = (bg.width - cw) / 2, (bg.height - ch) / 2
    box = (x0, y0, x0 + cw, y0 + ch)
    rgb = np.asarray(Image.fromarray(photo).resize((w_out, h_out), Image.BILINEAR, box=box))
    flipped = bool(rng.random() < 0.5)
    if flipped:
        rgb = rgb[:, ::-1]
    k = w_out / cw
    f = bg.focal_px * k
    intr = CameraIntrinsics(w_out, h_out, f, f, w_out / 2, h_out / 2, near=0.05, far=120.0)
    feet = None if bg.feet_rows is None else ((bg.feet_rows[0] - y0) * k, (bg.feet_rows[1] - y0) * k)
    return PreparedPhoto(np.ascontiguousarray(rgb), intr, bg.pitch, bg.camera_height, feet, box, flipped)


def harmonize(render: np.ndarray, mask: np.ndarray, photo: np.ndarray, strength: float = COLOR_STRENGTH) -> np.ndarray:
    """Move the Lab mean and spread of the ``mask`` pixels of ``render`` towards those of ``photo``.

    Args:
        render: (h, w, 3) uint8 RGB. mask: (h, w) bool, the people. photo: (H, W, 3) uint8 RGB (any
            size: only its statistics are used, from every 4th pixel in each direction).
    Returns the adjusted (h, w, 3) uint8 RGB render (pixels outside the mask are not meaningful).
    """
    import cv2

    if not mask.any():
        return render
    fg = cv2.cvtColor(render, cv2.COLOR_RGB2LAB).astype(np.float32)
    bg = cv2.cvtColor(np.ascontiguousarray(photo[::4, ::4]), cv2.COLOR_RGB2LAB).astype(np.float32).reshape(-1, 3)
    pix = fg[mask]
    mu_f, sd_f = pix.mean(0), pix.std(0) + 1.0
    mu_b, sd_b = bg.mean(0), bg.std(0) + 1.0
    ratio = np.clip(sd_b / sd_f, 0.5, 2.0) ** strength
    out = (fg - mu_f) * ratio + mu_f + strength * (mu_b - mu_f)
    return cv2.cvtColor(np.clip(out + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def sharpness(rgb: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean absolute Laplacian of the grey image (over ``region`` if given): larger is sharper."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))
    return float(lap[region].mean()) if region is not None else float(lap.mean())


def composite(render: np.ndarray, mask: np.ndarray, photo: np.ndarray) -> tuple[np.ndarray, float]:
    """Blend the people of ``render`` (where ``mask``) onto ``photo``.

    Colour statistics are matched (:func:`harmonize`), then the composite is blurred with the
    smallest sigma of :data:`BLUR_SIGMAS` that makes the people no sharper than the photo, and
    the alpha mask is blurred with it (soft edges, no halo: the blur mixes in photo pixels).
    All of it happens in the box around the people. Returns the (H, W, 3) uint8 RGB image and
    the blur sigma in pixels.
    """
    import cv2

    out = photo.copy()
    if not mask.any():
        return out, 0.0
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    pad = int(3 * max(BLUR_SIGMAS)) + 2
    r0, r1 = max(0, rows[0] - pad), min(mask.shape[0], rows[-1] + 1 + pad)
    c0, c1 = max(0, cols[0] - pad), min(mask.shape[1], cols[-1] + 1 + pad)
    m = mask[r0:r1, c0:c1]
    under = photo[r0:r1, c0:c1]
    fg = harmonize(np.ascontiguousarray(render[r0:r1, c0:c1]), m, photo)
    hard = np.where(m[..., None], fg, under)
    inner = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    sigma = 0.0
    if inner.sum() >= 16:
        target = sharpness(photo)
        for s in BLUR_SIGMAS:
            sigma = s
            trial = hard if s == 0 else cv2.GaussianBlur(hard, (0, 0), s)
            if sharpness(trial, inner) <= target:
                break
    if sigma == 0:
        out[r0:r1, c0:c1] = hard
        return out, 0.0
    soft = cv2.GaussianBlur(hard, (0, 0), sigma).astype(np.float32)
    alpha = cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma)[..., None]
    out[r0:r1, c0:c1] = np.clip(alpha * soft + (1.0 - alpha) * under.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)
    return out, sigma
