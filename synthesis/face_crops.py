"""Identity-labelled, aligned face crops rendered from avatars (for training and testing recognizers).

Each identity is an :meth:`AvatarSpec.random` avatar; its samples vary the
view (yaw, pitch), the distance (as image resolution), the light (direction,
colour, ambient), the expression, and the background. Crops are aligned with
the ground-truth five face landmarks to the ArcFace template (112x112) and
resized to ``size`` (56 by default). Top layer of :mod:`hcgym.synthesis`: it
drives a simulator backend directly.

Datasets are written as shards (``shard_00000.npz``: ``chips`` (N, S, S, 3)
uint8, ``labels`` (N,) int, ``yaw``/``pitch``/``scale`` per chip) with a
``manifest.json``; finished shards are renamed into place, and a re-run
resumes after the last finished shard.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from hcgym.camera import orbit_pose
from hcgym.paths import atomic_write_bytes
from hcgym.synthesis.avatar_spec import AvatarSpec
from hcgym.worlds.spec import CameraSpec

#: The camera face crops are rendered with (the face is about 110 pixels wide at 1 m).
CROP_CAMERA = CameraSpec("crop", 160, 160, 20.0, near=0.05, far=20.0)
#: Expressions drawn for the non-neutral variants of an identity.
VARIANT_EXPRESSIONS = ("happy", "sad", "surprise", "angry", "fear", "disgust")


@dataclass(frozen=True)
class CropSettings:
    """Nuisance ranges of a face-crop set (angles in degrees)."""

    size: int = 56
    yaw: tuple[float, float] = (-45.0, 45.0)
    pitch: tuple[float, float] = (-15.0, 15.0)
    variants: int = 3  #: avatar builds per identity: neutral + (variants - 1) random expressions.
    expression_intensity: tuple[float, float] = (0.3, 0.9)
    low_res: float = 0.3  #: probability of a distant (low-resolution) sample.
    low_res_px: tuple[int, int] = (14, 36)  #: face chip side (pixels) of distant samples before upscaling.
    light_ambient: tuple[float, float] = (0.3, 0.65)
    background: bool = True  #: random background colours behind the head.


def identity_spec(seed: int) -> AvatarSpec:
    """The avatar of identity ``seed`` (neutral, standing)."""
    return AvatarSpec.random(seed)


def identity_variants(seed: int, settings: CropSettings, rng: np.random.Generator) -> list[AvatarSpec]:
    base = identity_spec(seed)
    out = [base]
    for _ in range(settings.variants - 1):
        name = str(rng.choice(VARIANT_EXPRESSIONS))
        out.append(base.with_(expression=name, expression_intensity=float(rng.uniform(*settings.expression_intensity))))
    return out




def aligned_chip(frame, human: int, size: int) -> np.ndarray | None:
    """The ground-truth-aligned face chip of human ``human`` in ``frame`` (``None`` if a landmark is off-image)."""
    import cv2

    from hcgym.perception.face.align import align_face

    fl = frame.humans[human].face_landmarks
    if not np.isfinite(fl[:, :2]).all():
        return None
    # FACE_LANDMARKS are the person's left/right; the template wants image order.
    pts = fl[:, :2]
    five = np.stack([pts[1], pts[0], pts[2], pts[4], pts[3]]) if pts[0, 0] > pts[1, 0] else pts[[0, 1, 2, 3, 4]]
    chip = align_face(frame.rgb, five, 112)
    return chip if size == 112 else cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)


def render_identity(sim, spec_count: int, n: int, settings: CropSettings, rng: np.random.Generator,
                    yaw_sampler: Callable[[np.random.Generator], float] | None = None,
                    variant_sampler: Callable[[int], int] | None = None,
                    frame_hook: Callable[..., np.ndarray] | None = None):
    """``n`` chips of the identity whose ``spec_count`` variants are loaded in ``sim`` (humans 0..k-1).

    Returns chips (n, S, S, 3) uint8 and per-chip yaw, pitch, face pixel size and variant index;
    with ``frame_hook(frame, human_index)``, also the stacked hook results (e.g. a reference recognizer's
    embedding of the full-resolution render) as a sixth value.
    """
    import cv2

    chips, yaws, pitches, scales, variants, extra = [], [], [], [], [], []
    while len(chips) < n:
        k = int(variant_sampler(len(chips)) if variant_sampler else rng.integers(spec_count))
        sim.show_only(sim.humans[k].name)
        yaw = float(yaw_sampler(rng) if yaw_sampler else rng.uniform(*settings.yaw))
        pitch = float(rng.uniform(*settings.pitch))
        # Light from the face's half-space mostly (the face looks along -y: travel direction +y is frontal).
        az, el = 90.0 + rng.uniform(-110, 110), rng.uniform(20, 70)
        d = np.array([math.cos(math.radians(az)) * math.cos(math.radians(el)),
                      math.sin(math.radians(az)) * math.cos(math.radians(el)), -math.sin(math.radians(el))])
        warm = rng.uniform(-0.12, 0.12)
        sim.set_lighting(direction=d, color=(1.0, 1.0 - abs(warm) * 0.5 + warm * 0.3, 1.0 - warm),
                         ambient=float(rng.uniform(*settings.light_ambient)))
        frame = sim.render(CROP_CAMERA.name, pose=orbit_pose(sim.humans[k].avatar.face_centre, yaw, pitch, 1.0))
        if settings.background:
            empty = frame.segmentation == 0
            bg = rng.uniform(30, 225, 3)
            grad = np.linspace(-25, 25, frame.rgb.shape[0])[:, None, None] * rng.uniform(-1, 1)
            h, w = empty.shape
            fill = np.clip(bg + np.broadcast_to(grad, (h, w, 1)), 0, 255).astype(np.uint8)
            frame.rgb[empty] = fill[empty]
        chip = aligned_chip(frame, k, 112)
        if chip is None:
            continue
        if frame_hook is not None:
            extra.append(frame_hook(frame, k))
        px = 112
        if rng.random() < settings.low_res:
            px = int(rng.integers(settings.low_res_px[0], settings.low_res_px[1] + 1))
            chip = cv2.resize(cv2.resize(chip, (px, px), interpolation=cv2.INTER_AREA), (112, 112),
                              interpolation=cv2.INTER_LINEAR)
        if settings.size != 112:
            chip = cv2.resize(chip, (settings.size, settings.size), interpolation=cv2.INTER_AREA)
        chips.append(chip)
        yaws.append(yaw)
        pitches.append(pitch)
        scales.append(px)
        variants.append(k)
    result = (np.stack(chips), np.asarray(yaws, np.float32), np.asarray(pitches, np.float32),
              np.asarray(scales, np.int16), np.asarray(variants, np.int16))
    return (*result, np.stack(extra)) if frame_hook is not None else result


def _studio_for(specs: list[AvatarSpec], backend: str = "embedded"):
    from hcgym.envs.backends import make_backend
    from hcgym.worlds.studio import studio_world

    sim = make_backend(backend, ("lighting",))
    sim.load(studio_world(specs, cameras=(CROP_CAMERA,)))
    return sim


def render_shard(identity_seeds: list[int], labels: list[int], per_identity: int, settings: CropSettings,
                 seed: int, backend: str = "embedded") -> dict[str, np.ndarray]:
    """Chips of several identities (one process, one ``backend``). Deterministic in ``seed`` and the identity
    seeds."""
    from hcgym.synthesis.builder import build_avatar

    out: dict[str, list] = {"chips": [], "labels": [], "yaw": [], "pitch": [], "scale": []}
    for ident, label in zip(identity_seeds, labels):
        rng = np.random.default_rng(np.random.SeedSequence([seed, ident]))
        specs = identity_variants(ident, settings, rng)
        for s in specs:
            build_avatar(s)
        sim = _studio_for(specs, backend)
        try:
            chips, yaw, pitch, scale, _ = render_identity(sim, len(specs), per_identity, settings, rng)
        finally:
            sim.close()
        out["chips"].append(chips)
        out["labels"].append(np.full(len(chips), label, np.int32))
        out["yaw"].append(yaw)
        out["pitch"].append(pitch)
        out["scale"].append(scale)
    return {k: np.concatenate(v) for k, v in out.items()}


def _shard_task(args) -> tuple[int, bytes]:
    idx, seeds, labels, per_identity, settings, seed = args
    arrays = render_shard(seeds, labels, per_identity, settings, seed)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return idx, buf.getvalue()


def generate_face_crops(out: str | Path, identity_seeds: Iterable[int], per_identity: int = 40,
                        settings: CropSettings = CropSettings(), seed: int = 0, workers: int = 1,
                        identities_per_shard: int = 20, progress: bool = True) -> Path:
    """Write a face-crop dataset into ``out`` (resumable; the same arguments give the same bytes).

    With ``workers > 1`` each shard renders in a fresh process (PyBullet keeps loaded textures until
    its process ends); ``workers=1`` renders in this process (fine for small sets).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(identity_seeds)
    shards = [(k, seeds[i:i + identities_per_shard], list(range(i, min(i + identities_per_shard, len(seeds)))))
              for k, i in enumerate(range(0, len(seeds), identities_per_shard))]
    manifest_path = out / "manifest.json"
    config = {"format": "hcgym-face-crops-1", "identity_seeds": seeds, "per_identity": per_identity,
              "settings": asdict(settings), "seed": seed, "identities_per_shard": identities_per_shard}
    done: list[str] = []
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if {k: v for k, v in old.items() if k != "shards"} != json.loads(json.dumps(config)):
            from hcgym.errors import SpecError

            raise SpecError("out", f"{out} holds a face-crop set made with other settings; use another folder")
        done = list(old.get("shards", []))
    todo = [(k, s, lab, per_identity, settings, seed) for k, s, lab in shards
            if f"shard_{k:05d}.npz" not in done or not (out / f"shard_{k:05d}.npz").exists()]

    def record(idx: int, data: bytes) -> None:
        atomic_write_bytes(out / f"shard_{idx:05d}.npz", data)
        done.append(f"shard_{idx:05d}.npz")
        atomic_write_bytes(manifest_path, json.dumps({**config, "shards": sorted(set(done))}, indent=1).encode())

    atomic_write_bytes(manifest_path, json.dumps({**config, "shards": sorted(set(done))}, indent=1).encode())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(shards), initial=len(shards) - len(todo), desc="face-crop shards", unit="shard")
    if workers <= 1:
        for task in todo:
            record(*_shard_task(task))
            if bar:
                bar.update()
    else:
        import multiprocessing as mp

        # PyBullet never frees loaded textures (about 12 MB per avatar), so each worker process
        # renders one shard and is then replaced.
        with mp.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:
            for idx, data in pool.imap_unordered(_shard_task, todo):
                record(idx, data)
                if bar:
                    bar.update()
    if bar:
        bar.close()
    return out


def load_face_crops(path: str | Path) -> dict[str, np.ndarray]:
    """All shards of a dataset concatenated: ``chips``, ``labels``, ``yaw``, ``pitch``, ``scale``."""
    path = Path(path)
    manifest = json.loads((path / "manifest.json").read_text())
    parts: dict[str, list] = {}
    for name in sorted(manifest["shards"]):
        with np.load(path / name, allow_pickle=False) as z:
            for k in z.files:
                parts.setdefault(k, []).append(z[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


__all__ = ["CropSettings", "generate_face_crops", "load_face_crops", "render_shard", "aligned_chip"]
