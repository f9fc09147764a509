"""``multiview`` mode: per-person pan/tilt grids in the one multi-view folder format.

Every person (a random avatar standing in the seamless studio backdrop) is photographed from a sphere
around the head with :func:`hcgym.synthesis.multiview.iter_views`, the renderer of the synthesized-view
protocol and of ``hcgym/ActiveFaceRecognitionPan-v0``: ``pan`` positive towards the person's left, ``tilt``
positive above the head (README "Conventions"). Series 1 is neutral under series 1's light, series 2 a mild
expression under series 2's light. Layout (what :func:`hcgym.synthesis.multiview.read_folder`, the Pan env's
``dataset=`` and ``hcgym evaluate synth-view --dataset`` read)::

    multiview/Person01/1/-90/+30.jpg   person 01, series 1, pan -90, tilt +30
    multiview/index.json               every image: person, series, pan, tilt, face box and landmarks
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.synthesis.dataset.config import BACKEND_NEEDS, GenerateConfig
from hcgym.synthesis.dataset.sampling import identity_seed
from hcgym.synthesis.dataset.shards import ShardJob, ShardResult


def person_name(person: int) -> str:
    """``Person01`` for item 0."""
    return f"Person{person + 1:02d}"


def render_multiview_shard(job: ShardJob) -> ShardResult:
    """The pan/tilt grids of persons ``job.start .. job.start + job.count - 1``."""
    from hcgym.envs.backends import make_backend
    from hcgym.envs.backends.truth import frame_truth
    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.dataset.scene import encode_image
    from hcgym.synthesis.multiview import iter_views, multiview_world, series_specs, view_path
    from hcgym.types import Frame

    cfg: GenerateConfig = job.config
    mv = cfg.multiview
    settings = mv.settings(cfg.size)
    persons = list(range(job.start, job.start + job.count))
    specs = [series_specs(identity_seed(cfg.seed, p), p)[:mv.series] for p in persons]
    t0 = time.perf_counter()
    for person_specs in specs:
        for s in person_specs:
            build_avatar(s)
    files, images, people = [], [], []
    timings = {"build": time.perf_counter() - t0, "render": 0.0, "encode": 0.0}
    with make_backend(cfg.backend, BACKEND_NEEDS["multiview"]) as sim:
        sim.load(multiview_world([s for person_specs in specs for s in person_specs], settings))
        for k, (p, person_specs) in enumerate(zip(persons, specs)):
            people.append({"person": person_name(p), "seed": identity_seed(cfg.seed, p),
                           "identity": person_specs[0].identity_key(),
                           "series": [s.to_dict() for s in person_specs]})
            for series in range(mv.series):
                human = k * mv.series + series
                state = sim.humans[human]
                t0 = time.perf_counter()
                for i, j, frame in iter_views(sim, human, series, settings):
                    seg = (frame.segmentation == human + 1).astype(np.int32)
                    local = Frame(rgb=frame.rgb, depth=frame.depth, segmentation=seg, intrinsics=frame.intrinsics,
                                  world_to_camera=frame.world_to_camera)
                    truth = frame_truth(local, [state])[0].to_dict()
                    t1 = time.perf_counter()
                    pan, tilt = settings.pans[i], settings.tilts[j]
                    rel = "multiview/" + view_path(person_name(p), series + 1, pan, tilt, cfg.image_format)
                    files.append((rel, encode_image(frame.rgb, cfg.image_format)))
                    images.append({"file": rel[len("multiview/"):], "person": person_name(p), "series": series + 1,
                                   "pan": pan, "tilt": tilt, "face_box": truth["face_box"],
                                   "face_landmarks": truth["face_landmarks"], "face_yaw": truth["face_yaw"],
                                   "distance": truth["distance"],
                                   "world_to_camera": [[round(float(x), 6) for x in r] for r in frame.world_to_camera]})
                    timings["render"] += t1 - t0
                    timings["encode"] += time.perf_counter() - t1
                    t0 = time.perf_counter()
    record = json.dumps({"shard": job.index, "persons": people, "images": images}, separators=(",", ":")).encode()
    return ShardResult(job.index, files, record, job.count, timings)


def finalize_multiview(out: Path, records: list[dict[str, Any]], config: GenerateConfig,
                       key: dict[str, Any]) -> dict[str, Any]:
    """Write ``multiview/index.json``, ``summary.json`` and ``preview.png`` (the first person's grid)."""
    from PIL import Image

    from hcgym.synthesis.dataset.report import tile_grid, write_json, write_png
    from hcgym.synthesis.multiview import INDEX_FORMAT

    mv = config.multiview
    people = [p for r in records for p in r["persons"]]
    images = [i for r in records for i in r["images"]]
    w, h = config.size
    intr = {"width": w, "height": h, "hfov": mv.hfov}
    write_json(out / "multiview" / "index.json", {"format": INDEX_FORMAT, "pans": list(mv.pans),
                                                  "tilts": list(mv.tilts), "series": mv.series,
                                                  "distance": mv.distance, "intrinsics": intr,
                                                  "persons": people, "images": images})
    summary = {"mode": "multiview", "persons": len(people), "images": len(images), "pans": list(mv.pans),
               "tilts": list(mv.tilts), "series": mv.series, "dataset": key}
    write_json(out / "summary.json", summary)
    first = [im for im in images if im["person"] == people[0]["person"] and im["series"] == 1]
    first.sort(key=lambda im: (-im["tilt"], im["pan"]))  # rows from the highest camera down, pans left to right
    tw = 96
    th = max(1, round(h * tw / w))
    tiles = [np.asarray(Image.open(out / "multiview" / im["file"]).convert("RGB").resize((tw, th))) for im in first]
    write_png(out / "preview.png", tile_grid(tiles, cols=len(mv.pans), pad=2))
    return summary
