"""``generate(config)``: validate, plan shards, render them on an engine, assemble and report.

Order of work, so that bad input never leaves anything behind and a killed run
resumes: (1) validate the config, the world, the background photos and the output
folder without writing; (2) open the folder (manifest, removal of a killed run's
temporary files); (3) render the shards the manifest does not list, writing each
as it arrives; (4) assemble the final files from the shard records (each written
atomically) and the report; (5) mark the manifest complete.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcgym.synthesis.dataset import engines
from hcgym.synthesis.dataset.config import GenerateConfig
from hcgym.synthesis.dataset.shards import ShardJob, ShardResult, ShardStore

#: Unit of ``--n`` per mode (progress bar and summary).
UNITS = {"scene": "img", "faces": "identity", "multiview": "person", "clips": "clip"}
#: Shards a worker process renders before it is replaced (PyBullet never frees textures): scene
#: workers keep their avatars loaded (bounded by the identity pool), the others load new people per shard.
#: Clips render with the OpenGL renderer, which frees each clip's world when the next one is loaded.
RECYCLE = {"scene": None, "faces": 4, "multiview": 4, "clips": None}


@dataclass
class GenerateResult:
    """What a run did: ``rendered`` items in this run (of ``total``), wall ``seconds`` of rendering,
    summed worker ``timings`` (seconds per step) and the dataset ``summary``."""

    out: Path
    total: int
    rendered: int
    seconds: float
    workers: int
    timings: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Items per second of wall time in this run (0 if nothing was rendered)."""
        return self.rendered / self.seconds if self.rendered and self.seconds > 0 else 0.0


def world_key(world) -> str:
    """Content hash of a world's YAML file."""
    return hashlib.sha256(Path(world.source).read_bytes()).hexdigest()[:16]


def generate(config: GenerateConfig, progress: bool = True) -> GenerateResult:
    """Generate (or resume) the dataset described by ``config``; see :mod:`hcgym.synthesis.dataset`."""
    config.check()
    world = wkey = None
    backgrounds: list = []
    bkey = None
    if config.mode == "scene":
        if config.backgrounds is not None:
            from hcgym.synthesis.dataset.blend import backgrounds_key, scan_backgrounds

            backgrounds = scan_backgrounds(config.backgrounds)
            bkey = backgrounds_key(backgrounds)
        else:
            from hcgym.worlds import load_world

            world = load_world(config.world)
            wkey = world_key(world)
    store = ShardStore(Path(config.out), config.dataset_key(wkey, bkey), config.shard_count)
    store.check()
    done = store.open()

    m, n = config.items_per_shard, config.n
    jobs = [ShardJob(k, k * m, min(m, n - k * m), config, world, wkey, tuple(backgrounds))
            for k in range(config.shard_count) if k not in done]
    todo = sum(j.count for j in jobs)
    timings: dict[str, float] = {}
    if config.mode == "clips" and jobs:
        from hcgym.synthesis.dataset.clips import prepare_clips

        t0 = time.perf_counter()
        prepare_clips(config, [i for j in jobs for i in range(j.start, j.start + j.count)])
        timings["prepare"] = time.perf_counter() - t0
    bar = None
    if progress and jobs:
        from tqdm import tqdm

        bar = tqdm(total=n, initial=n - todo, desc=f"generate {config.mode}", unit=UNITS[config.mode],
                   dynamic_ncols=True)

    def on_result(result: ShardResult) -> None:
        store.write(result)
        for k, v in result.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        if bar is not None:
            bar.update(result.items)

    t0 = time.perf_counter()
    try:
        engines.run(jobs, on_result, config.engine, config.workers, config.ray_address, RECYCLE[config.mode])
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    summary = finalize(store, config)
    store.complete()
    return GenerateResult(Path(config.out), n, todo, seconds, config.workers, timings, summary)


def finalize(store: ShardStore, config: GenerateConfig) -> dict[str, Any]:
    """Assemble the final files of the mode from the shard records and write the report."""
    records = store.records()
    if config.mode == "scene":
        from hcgym.synthesis.dataset.report import finalize_scene

        return finalize_scene(store.out, records, store.key)
    if config.mode == "faces":
        from hcgym.synthesis.dataset.faces import finalize_faces

        return finalize_faces(store.out, records, config, store.key)
    if config.mode == "clips":
        from hcgym.synthesis.dataset.clips import finalize_clips

        return finalize_clips(store.out, records, config, store.key)
    from hcgym.synthesis.dataset.multiview import finalize_multiview

    return finalize_multiview(store.out, records, config, store.key)
