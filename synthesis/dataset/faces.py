"""``faces`` mode: identity-labelled aligned face crops (ImageFolder layout) and a pairs file.

Each identity is one random avatar (:func:`~hcgym.synthesis.dataset.sampling.identity_seed`);
its crops vary yaw and pitch, light, expression and distance (some crops are rendered at
low resolution and upscaled), as in :mod:`hcgym.synthesis.face_crops`, which renders them.
Layout::

    faces/00000/0000.png ...       one folder per identity label (torchvision ImageFolder)
    faces/identities.json          label -> identity hash, avatar seed, gender, avatar spec
    pairs.csv                      a,b,same: verification pairs (half same identity), LFW-style
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.synthesis.dataset.config import GenerateConfig
from hcgym.synthesis.dataset.sampling import identity_seed
from hcgym.synthesis.dataset.shards import ShardJob, ShardResult

#: Most verification pairs written (half same, half different).
MAX_PAIRS = 6000


def face_path(label: int, k: int) -> str:
    return f"faces/{label:05d}/{k:04d}.png"


def render_faces_shard(job: ShardJob) -> ShardResult:
    """Crops of identities ``job.start .. job.start + job.count - 1``."""
    from PIL import Image

    from hcgym.synthesis.avatar_spec import AvatarSpec
    from hcgym.synthesis.face_crops import CropSettings, render_shard

    cfg: GenerateConfig = job.config
    labels = list(range(job.start, job.start + job.count))
    seeds = [identity_seed(cfg.seed, j) for j in labels]
    t0 = time.perf_counter()
    arrays = render_shard(seeds, labels, cfg.faces.per_identity, CropSettings(size=cfg.faces.size), cfg.seed,
                          backend=cfg.backend)
    t1 = time.perf_counter()
    files, images = [], []
    count: dict[int, int] = {}
    for chip, label, yaw, pitch, scale in zip(arrays["chips"], arrays["labels"], arrays["yaw"], arrays["pitch"],
                                              arrays["scale"]):
        k = count.get(int(label), 0)
        count[int(label)] = k + 1
        buf = io.BytesIO()
        Image.fromarray(chip).save(buf, format="PNG")
        files.append((face_path(int(label), k), buf.getvalue()))
        images.append({"file": face_path(int(label), k), "label": int(label), "yaw": round(float(yaw), 3),
                       "pitch": round(float(pitch), 3), "resolution_px": int(scale)})
    identities = []
    for label, s in zip(labels, seeds):
        spec = AvatarSpec.random(s)
        identities.append({"label": label, "seed": s, "identity": spec.identity_key(),
                           "gender": "female" if spec.phenotype["gender"] > 0.5 else "male", "spec": spec.to_dict()})
    record = json.dumps({"shard": job.index, "identities": identities, "images": images},
                        separators=(",", ":")).encode()
    timings = {"render": t1 - t0, "encode": time.perf_counter() - t1}
    return ShardResult(job.index, files, record, job.count, timings)


def finalize_faces(out: Path, records: list[dict[str, Any]], config: GenerateConfig,
                   key: dict[str, Any]) -> dict[str, Any]:
    """Write ``faces/identities.json``, ``pairs.csv``, ``summary.json`` and ``preview.png``."""
    from PIL import Image

    from hcgym.paths import atomic_write_bytes
    from hcgym.synthesis.dataset.report import tile_grid, write_json, write_png
    from hcgym.synthesis.face_sets import make_pairs

    identities = [i for r in records for i in r["identities"]]
    images = [i for r in records for i in r["images"]]
    write_json(out / "faces" / "identities.json", {"identities": identities})
    labels = np.array([im["label"] for im in images])
    gender_of = {i["label"]: int(i["gender"] == "female") for i in identities}
    per = np.bincount(labels, minlength=len(identities))
    same_available = int((per * (per - 1) // 2).sum())
    diff_available = int((len(labels) ** 2 - (per ** 2).sum()) // 2)
    half = min(MAX_PAIRS // 2, same_available // 2, diff_available // 2)
    rows = ["a,b,same"]
    if half > 0:
        data = {"labels": labels, "group": np.zeros(len(labels), np.int8),
                "gender": np.array([gender_of[int(lab)] for lab in labels], np.int8)}
        for a, b, same in make_pairs(data, "lfw_like", 2 * half, seed=config.seed):
            rows.append(f"{images[a]['file']},{images[b]['file']},{int(same)}")
    atomic_write_bytes(out / "pairs.csv", ("\n".join(rows) + "\n").encode())
    summary = {"mode": "faces", "identities": len(identities), "images": len(images),
               "pairs": {"same": half, "different": half}, "size": config.faces.size,
               "yaw_degrees": {"min": min(im["yaw"] for im in images), "max": max(im["yaw"] for im in images)},
               "low_resolution_crops": sum(1 for im in images if im["resolution_px"] < config.faces.size),
               "dataset": key}
    write_json(out / "summary.json", summary)
    rows_img = []
    for ident in identities[:8]:
        files = [im["file"] for im in images if im["label"] == ident["label"]][:8]
        rows_img.append(np.concatenate([np.asarray(Image.open(out / f).convert("RGB").resize((64, 64)))
                                        for f in files], axis=1))
    write_png(out / "preview.png", tile_grid(rows_img, cols=1))
    return summary
