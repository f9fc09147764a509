"""``multiview`` mode: per-person head-pose grids in a layout after the Head Pose Image Database.

Every person (a random avatar, neutral, standing in a plain studio) is photographed from
a sphere around the face: ``pan`` is the head's yaw relative to the camera (positive: the
camera is on the person's left, the convention of ``HumanTruth.face_yaw``) and ``tilt`` its
pitch (positive: the head looks up, the camera is below the eyes). Layout::

    multiview/Person01/person01100+0-90.jpg   person 01, series 1, image 00, tilt +0, pan -90
    multiview/index.json                       every image: person, pan, tilt, face box and landmarks
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.synthesis.dataset.config import GenerateConfig
from hcgym.synthesis.dataset.sampling import identity_seed
from hcgym.synthesis.dataset.shards import ShardJob, ShardResult

SERIES = 1


def person_name(person: int) -> str:
    """``Person01`` for item 0."""
    return f"Person{person + 1:02d}"


def image_name(person: int, number: int, tilt: int, pan: int, fmt: str) -> str:
    return f"person{person + 1:02d}{SERIES}{number:02d}{tilt:+d}{pan:+d}.{fmt}"


def render_multiview_shard(job: ShardJob) -> ShardResult:
    """The pan/tilt grids of persons ``job.start .. job.start + job.count - 1``."""
    from hcgym.envs.backends.embedded import EmbeddedBackend
    from hcgym.envs.backends.truth import frame_truth
    from hcgym.synthesis.avatar_spec import AvatarSpec
    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.dataset.scene import encode_image
    from hcgym.synthesis.face_crops import _face_camera
    from hcgym.synthesis.studio import studio_world
    from hcgym.types import CameraIntrinsics, Frame

    cfg: GenerateConfig = job.config
    mv = cfg.multiview
    w, h = cfg.size
    persons = list(range(job.start, job.start + job.count))
    specs = [AvatarSpec.random(identity_seed(cfg.seed, p)) for p in persons]
    t0 = time.perf_counter()
    for s in specs:
        build_avatar(s)
    intr = CameraIntrinsics.from_hfov(w, h, mv.hfov, near=0.05, far=20.0)
    files, images, people = [], [], []
    timings = {"build": time.perf_counter() - t0, "render": 0.0, "encode": 0.0}
    with EmbeddedBackend() as sim:
        sim.load(studio_world(specs, w, h, mv.hfov))
        for k, (p, spec) in enumerate(zip(persons, specs)):
            sim.show_only(sim.humans[k].name)
            state = sim.humans[k]
            people.append({"person": person_name(p), "seed": identity_seed(cfg.seed, p),
                           "identity": spec.identity_key(), "spec": spec.to_dict()})
            number = 0
            for tilt in mv.tilts:
                for pan in mv.pans:
                    t0 = time.perf_counter()
                    frame = sim.render(pose=_face_camera(state.avatar, float(pan), float(-tilt), mv.distance),
                                       intrinsics=intr, ground_truth=False)
                    seg = (frame.segmentation == k + 1).astype(np.int32)
                    local = Frame(rgb=frame.rgb, depth=frame.depth, segmentation=seg, intrinsics=frame.intrinsics,
                                  world_to_camera=frame.world_to_camera)
                    truth = frame_truth(local, [state])[0].to_dict()
                    t1 = time.perf_counter()
                    name = image_name(p, number, tilt, pan, cfg.image_format)
                    rel = f"multiview/{person_name(p)}/{name}"
                    files.append((rel, encode_image(frame.rgb, cfg.image_format)))
                    images.append({"file": rel, "person": person_name(p), "pan": pan, "tilt": tilt,
                                   "face_box": truth["face_box"], "face_landmarks": truth["face_landmarks"],
                                   "face_yaw": truth["face_yaw"], "distance": truth["distance"],
                                   "world_to_camera": [[round(float(x), 6) for x in r] for r in frame.world_to_camera]})
                    timings["render"] += t1 - t0
                    timings["encode"] += time.perf_counter() - t1
                    number += 1
    record = json.dumps({"shard": job.index, "persons": people, "images": images}, separators=(",", ":")).encode()
    return ShardResult(job.index, files, record, job.count, timings)


def finalize_multiview(out: Path, records: list[dict[str, Any]], config: GenerateConfig,
                       key: dict[str, Any]) -> dict[str, Any]:
    """Write ``multiview/index.json``, ``summary.json`` and ``preview.png`` (the first person's grid)."""
    from PIL import Image

    from hcgym.synthesis.dataset.report import tile_grid, write_json, write_png

    mv = config.multiview
    people = [p for r in records for p in r["persons"]]
    images = [i for r in records for i in r["images"]]
    w, h = config.size
    intr = {"width": w, "height": h, "hfov": mv.hfov}
    write_json(out / "multiview" / "index.json", {"pans": list(mv.pans), "tilts": list(mv.tilts),
                                                  "distance": mv.distance, "intrinsics": intr,
                                                  "persons": people, "images": images})
    summary = {"mode": "multiview", "persons": len(people), "images": len(images), "pans": list(mv.pans),
               "tilts": list(mv.tilts), "dataset": key}
    write_json(out / "summary.json", summary)
    first = [im for im in images if im["person"] == people[0]["person"]]
    tw = 96
    th = max(1, round(h * tw / w))
    tiles = [np.asarray(Image.open(out / im["file"]).convert("RGB").resize((tw, th))) for im in first]
    write_png(out / "preview.png", tile_grid(tiles, cols=len(mv.pans), pad=2))
    return summary
