"""``scene`` mode: render annotated images of sampled people in a world or on photos.

A worker process keeps one :class:`SceneStage`: the world (room, floor, props) or an
empty backdrop loaded once in the embedded backend, with every avatar it has used kept
loaded and brought in and out of view between images (PyBullet never frees a loaded
texture, so re-loading the world per image would leak about 12 MB per avatar).
At the start of each shard the stage hides everybody and then shows people in a
canonical order, so an image's pixels never depend on what the worker rendered before.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hcgym.geometry import RadialDistortion
from hcgym.synthesis.dataset import randomise, sampling
from hcgym.synthesis.dataset.config import BACKEND_NEEDS, SPLITS, GenerateConfig, SceneSettings, split_fractions
from hcgym.synthesis.dataset.lens import LensWarp
from hcgym.synthesis.dataset.shards import ShardJob, ShardResult

#: Decoded photos a worker keeps (by path).
PHOTO_CACHE = 16
JPEG_QUALITY = 92


@dataclass
class _Loaded:
    name: str
    radius: float


class SceneStage:
    """A loaded world for rendering many images. ``world`` is a :class:`~hcgym.worlds.WorldSpec`
    (its humans and robot bodies are dropped), or ``None`` for the empty backdrop used with photos."""

    def __init__(self, world, seed: int, texture_size: int = 1024, backend: str = "embedded") -> None:
        from hcgym.envs.backends import make_backend
        from hcgym.worlds.spec import CameraSpec, Robot
        from hcgym.worlds.studio import photo_backdrop_world, populate

        camera = Robot(name="dataset", body="none", cameras=(CameraSpec("camera"),))
        if world is None:  # a tiny floor under the camera: outside it nothing is hit (segmentation 0)
            world = photo_backdrop_world()
            self.ground = sampling.Ground()
        else:
            self.ground = sampling.ground_of_world(world)
        self.world = populate(world, humans=(), robots=(camera,))
        self.seed = seed
        self.texture_size = texture_size
        self.sim = make_backend(backend, BACKEND_NEEDS["scene"])
        self.sim.load(self.world, seed=0)
        self._loaded: dict[tuple[int, int], _Loaded] = {}
        self._photos: dict[str, np.ndarray] = {}

    def person(self, identity: int, variant: int) -> _Loaded:
        """Load (once) the avatar of pool ``identity`` / ``variant``, hidden; returns its name and body radius."""
        key = (identity, variant)
        if key not in self._loaded:
            from hcgym.synthesis.builder import build_avatar, with_texture_size

            avatar = with_texture_size(build_avatar(sampling.variant_spec(self.seed, identity, variant)),
                                       self.texture_size)
            v = avatar.mesh["vertices"]
            radius = float(np.hypot(v[:, 0], v[:, 1]).max())
            name = f"id{identity}v{variant}"
            self.sim.add_human(name, avatar, visible=True)  # uploads the mesh and texture now, once
            self.sim.set_human_visible(name, False)
            self._loaded[key] = _Loaded(name, round(radius, 4))
        return self._loaded[key]

    def hide_all(self) -> None:
        for h in self.sim.humans:
            self.sim.set_human_visible(h.name, False)

    def show(self, names: list[str], placements: list[sampling.Placement]) -> list:
        """Hide everybody else, then place and show ``names`` in that order; returns their states."""
        keep = set(names)
        for h in self.sim.humans:
            if h.name not in keep:
                self.sim.set_human_visible(h.name, False)
        for name, p in zip(names, placements):
            self.sim.set_human_pose(name, position=p.position, heading=p.heading)
            self.sim.set_human_visible(name, True)
        return [self.sim.human(n) for n in names]

    def instances(self, segmentation: np.ndarray, states: list) -> np.ndarray:
        """Map the backend's (H, W) instance ids to ``k + 1`` for the ``k``-th of ``states`` (0 elsewhere)."""
        index_of = {h.name: i for i, h in enumerate(self.sim.humans)}
        lut = np.zeros(len(self.sim.humans) + 1, dtype=np.int32)
        for k, st in enumerate(states):
            lut[index_of[st.name] + 1] = k + 1
        return lut[segmentation]

    def photo(self, path) -> np.ndarray:
        from PIL import Image

        key = str(path)
        if key not in self._photos:
            if len(self._photos) >= PHOTO_CACHE:
                self._photos.pop(next(iter(self._photos)))
            with Image.open(path) as im:
                self._photos[key] = np.asarray(im.convert("RGB"))
        return self._photos[key]


_STAGES: dict[Any, SceneStage] = {}


def _stage(job: ShardJob) -> SceneStage:
    cfg = job.config
    world = "backdrop" if job.backgrounds else (job.world_key, job.world.source)
    key = (cfg.seed, world, cfg.scene.texture_size, cfg.backend)
    if key not in _STAGES:
        _STAGES.clear()
        _STAGES[key] = SceneStage(None if job.backgrounds else job.world, cfg.seed, cfg.scene.texture_size,
                                  cfg.backend)
    return _STAGES[key]


def render_scene_shard(job: ShardJob) -> ShardResult:
    """Images ``job.start .. job.start + job.count - 1``: encoded files and the shard record."""
    timings: dict[str, float] = {}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    stage = _stage(job)
    timings["stage"] = time.perf_counter() - t0
    stage.hide_all()
    files: list[tuple[str, bytes]] = []
    records: list[dict[str, Any]] = []
    avatars: dict[str, Any] = {}
    for index in range(job.start, job.start + job.count):
        name, data, record, used = render_image(stage, job, index, timings)
        files.append((f"images/{name}", data))
        records.append(record)
        avatars.update(used)
    t0 = time.perf_counter()
    blob = json.dumps({"shard": job.index, "images": records, "avatars": dict(sorted(avatars.items()))},
                      separators=(",", ":")).encode()
    _tick(timings, "json", t0)
    timings["cpu"] = time.process_time() - cpu0
    return ShardResult(job.index, files, blob, job.count, timings)


def _tick(timings: dict[str, float], key: str, t0: float) -> float:
    now = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + now - t0
    return now


def render_image(stage: SceneStage, job: ShardJob, index: int,
                 timings: dict[str, float]) -> tuple[str, bytes, dict[str, Any], dict[str, Any]]:
    """Sample, render, blend and annotate image ``index``.

    Returns the file name, the encoded image, its record (``split``, COCO ``image`` and
    ``annotations``) and the specs of the avatars it shows.
    """
    from hcgym.camera import CameraPose
    from hcgym.envs.backends.truth import frame_truth
    from hcgym.synthesis.dataset import blend
    from hcgym.synthesis.dataset.coco import ANN_PER_IMAGE, person_annotation
    from hcgym.types import Frame

    cfg: GenerateConfig = job.config
    s = cfg.scene
    rng = sampling.image_rng(cfg.seed, index)
    image_id = index + 1
    t0 = time.perf_counter()
    split = SPLITS[sampling.split_of(index, split_fractions(s.splits))]
    photo = None
    if job.backgrounds:
        bg = job.backgrounds[int(rng.integers(len(job.backgrounds)))]
        photo = blend.prepare_photo(bg, stage.photo(bg.path), cfg.size, rng)
        camera = sampling.CameraSample((0.0, 0.0, photo.camera_height), 90.0, photo.pitch, photo.intrinsics)
        background = {"photo": bg.path.name, "crop": [round(v, 2) for v in photo.crop], "flipped": photo.flipped}
    look = randomise.look_rng(cfg.seed, index) if s.randomise else None
    close, roll = randomise.draw_camera(look, s.identities) if look is not None else (None, 0.0)
    distance, humans = (close.distance, close.humans) if close else (s.distance, s.humans)
    if photo is None:
        camera = sampling.sample_camera(rng, stage.ground, cfg.size, close.camera_height if close else s.camera_height,
                                        close.camera_pitch if close else s.camera_pitch, s.hfov,
                                        min_view=distance[0] + 1.0, lens=lens_of(s))
        if roll:
            camera = replace(camera, roll=roll)
        background = {"world": stage.world.name}
    empty = sampling.is_empty(cfg.seed, index, s.empty_fraction)
    people = [] if empty else sampling.sample_people(rng, humans, s.identities, s.variants)
    t0 = _tick(timings, "sample", t0)
    loaded = [stage.person(i, v) for i, v in people]
    t0 = _tick(timings, "load_avatars", t0)
    spots = sampling.place_people(rng, [p.radius for p in loaded], camera, stage.ground, distance, s.occlusion,
                                  s.gap, feet_rows=photo.feet_rows if photo else None,
                                  anchor_height=close.anchor_height if close else sampling.VIEW_ANCHOR_HEIGHT,
                                  facing=randomise.CLOSE_UP_FACING if close else None)
    if look is None:
        light, kelvin = sampling.sample_light(rng), None
    else:
        light, kelvin = randomise.sample_light(look)
    chosen = [(who, person, spot) for who, person, spot in zip(people, loaded, spots) if spot is not None]
    states = stage.show([p.name for _, p, _ in chosen], [spot for _, _, spot in chosen])
    stage.sim.set_lighting(direction=light.direction, color=light.color, intensity=light.intensity,
                           ambient=light.ambient)
    t0 = _tick(timings, "place", t0)
    pose = CameraPose(np.asarray(camera.position, dtype=np.float64), camera.rotation())
    warp = LensWarp.build(camera.intrinsics, camera.lens) if camera.lens is not None else None
    frame = stage.sim.render(pose=pose, intrinsics=warp.canvas if warp else camera.intrinsics, ground_truth=False)
    t0 = _tick(timings, "render", t0)
    rgb, depth, seg = frame.rgb, frame.depth, stage.instances(frame.segmentation, states)
    if warp is not None:
        rgb, depth, seg = warp.image(rgb), warp.nearest(depth, np.nan), warp.nearest(seg, 0)
        t0 = _tick(timings, "lens", t0)
    local = Frame(rgb=rgb, depth=depth, segmentation=seg, intrinsics=camera.intrinsics,
                  world_to_camera=frame.world_to_camera)
    truths = frame_truth(local, states, camera.lens)
    t0 = _tick(timings, "truth", t0)
    if photo is not None:
        rgb, sigma = blend.composite(frame.rgb, seg > 0, photo.rgb)
        background["blur_sigma"] = sigma
    t0 = _tick(timings, "blend", t0)
    randomised = None
    if look is not None:
        rgb, randomised = randomise.apply(rgb, seg, len(chosen), look)
        randomised = {"close_up": close is not None, "roll": roll, "light_kelvin": kelvin, **randomised}
        if close is not None:
            randomised["anchor_height"] = close.anchor_height
        t0 = _tick(timings, "randomise", t0)
    w, h = cfg.size
    annotations, used = [], {}
    for k, ((ident, _), _, spot) in enumerate(chosen):
        st, truth = states[k], truths[k]
        mask = seg == k + 1
        if not mask.any():
            continue
        placement = {"position": [round(v, 4) for v in spot.position], "heading": spot.heading,
                     "radius": spot.radius}
        annotations.append(person_annotation(image_id * ANN_PER_IMAGE + k + 1, image_id, truth, mask, ident,
                                             placement, w, h))
        used[st.avatar.key] = st.avatar.spec.to_dict()
    t0 = _tick(timings, "annotate", t0)
    name = f"{image_id:08d}.{cfg.image_format}"
    data = encode_image(rgb, cfg.image_format)
    _tick(timings, "encode", t0)
    image = {"id": image_id, "file_name": name, "width": w, "height": h,
             "camera": camera_entry(camera, frame.world_to_camera),
             "light": {"direction": list(light.direction), "color": list(light.color),
                       "intensity": light.intensity, "ambient": light.ambient},
             "background": background}
    if randomised is not None:
        image["randomise"] = randomised
    return name, data, {"split": split, "image": image, "annotations": annotations}, used


def lens_of(settings: SceneSettings) -> RadialDistortion | None:
    """The lens of ``settings.distortion`` (``None`` for a pinhole camera)."""
    k1, k2 = settings.distortion
    return RadialDistortion(float(k1), float(k2)) if k1 or k2 else None


def camera_entry(camera: sampling.CameraSample, world_to_camera: np.ndarray) -> dict[str, Any]:
    """The ``camera`` field of a COCO image: pixels, metres and degrees; 4x4 OpenCV extrinsics; the
    lens ``distortion`` ``[k1, k2]`` where there is one."""
    k = camera.intrinsics
    entry = {"fx": round(k.fx, 4), "fy": round(k.fy, 4), "cx": k.cx, "cy": k.cy, "hfov": round(k.hfov_deg, 4),
             "height": round(camera.position[2], 4), "pitch": round(camera.pitch, 4), "yaw": round(camera.yaw, 4),
             "position": [round(v, 4) for v in camera.position],
             "world_to_camera": [[round(float(x), 6) for x in row] for row in world_to_camera]}
    if camera.lens is not None:
        entry["distortion"] = [camera.lens.k1, camera.lens.k2]
    if camera.roll:
        entry["roll"] = round(camera.roll, 4)
    return entry


def encode_image(rgb: np.ndarray, fmt: str) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG (quality 92, deterministic) or PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    if fmt == "jpg":
        Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(rgb).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
