"""What a dataset is made of: :class:`GenerateConfig` and the per-mode settings.

A config is plain data, validated by :meth:`GenerateConfig.check` (errors name the
``hcgym generate`` option). :meth:`GenerateConfig.dataset_key` is the part that
defines the output bytes; it is stored in the manifest, and a re-run into the same
folder must match it to resume. The execution settings (workers, engine, Ray
address) are not part of it: they never change a byte of the output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hcgym.errors import SpecError

MODES = ("scene", "faces", "multiview", "clips")
ENGINES = ("local", "ray")
FORMATS = ("jpg", "png")
#: Items per shard by mode (images, identities, persons, clips).
DEFAULT_SHARD_SIZE = {"scene": 50, "faces": 8, "multiview": 4, "clips": 8}
#: Backend capabilities each mode needs: scene images add people to a loaded world and sample a camera model per
#: image; face crops and multi-view grids change the light; clips render every clip's fitted camera model.
BACKEND_NEEDS = {"scene": ("add_human", "intrinsics"), "faces": ("lighting",), "multiview": ("lighting",),
                 "clips": ("intrinsics",)}
#: Label sets of ``clips`` mode and their default clip sizes (width, height) for the command line.
CLIP_LABELS = ("actions", "expressions", "gestures")
CLIP_SIZES = {"actions": (160, 120), "expressions": (224, 224), "gestures": (224, 224)}
#: Styles of expression clips (``--style``; :mod:`hcgym.synthesis.dataset.expression_clips`).
CLIP_STYLES = ("posed", "wild")
SPLITS = ("train", "val", "test")
TEXTURE_SIZES = (256, 512, 1024, 2048)


@dataclass(frozen=True)
class SceneSettings:
    """Sampling ranges of ``scene`` mode (metres and degrees).

    Attributes:
        humans: (min, max) people placed per image (fewer when the constraints leave no room).
        identities: size of the identity pool the people are drawn from.
        variants: pose/expression variants per identity (each one avatar build). A worker keeps every
            variant it has used loaded (PyBullet frees nothing before the process ends): about 13 MB per
            variant plus 8 MB per identity at ``texture_size`` 1024, so the pool bounds its memory.
        distance: (min, max) camera-to-person ground distance, drawn log-uniformly.
        occlusion: probability that a person is put right behind an already placed one (crowd
            occlusion); 0 spreads people out, 1 queues them up.
        gap: clearance between the bounding cylinders of two people (no interpenetration).
        camera_height: (min, max) camera height above the ground.
        camera_pitch: (min, max) camera pitch (positive looks up).
        hfov: (min, max) horizontal field of view (the focal length in pixels follows from the width).
        splits: train/val/test fractions (assigned per image index by a low-discrepancy sequence).
        texture_size: side in pixels of the avatar textures as rendered (the builds are 2048; 1024
            renders faster and uses a quarter of the memory, see :func:`~hcgym.synthesis.builder.with_texture_size`).
        empty_fraction: share of images with nobody in them (negatives), chosen per image index by a
            low-discrepancy sequence (:func:`~hcgym.synthesis.dataset.sampling.is_empty`).
        distortion: radial lens distortion ``(k1, k2)`` of the images and their annotations (Brown's
            model on coordinates normalised by the focal length; ``k1 < 0`` barrel), see
            :mod:`hcgym.synthesis.dataset.lens`. ``(0, 0)``: a pinhole camera.
        randomise: domain randomisation (:mod:`hcgym.synthesis.dataset.randomise`): close-ups and camera roll,
            light, skin and clothing colours, procedural backgrounds, distractors, blur, noise and JPEG
            quality, all drawn from the seed. Off by default (and then left out of the dataset key).
    """

    humans: tuple[int, int] = (1, 6)
    identities: int = 24
    variants: int = 3
    distance: tuple[float, float] = (2.0, 14.0)
    occlusion: float = 0.3
    gap: float = 0.05
    camera_height: tuple[float, float] = (0.8, 3.0)
    camera_pitch: tuple[float, float] = (-20.0, 5.0)
    hfov: tuple[float, float] = (45.0, 75.0)
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    texture_size: int = 1024
    empty_fraction: float = 0.0
    distortion: tuple[float, float] = (0.0, 0.0)
    randomise: bool = False


@dataclass(frozen=True)
class FaceSettings:
    """``faces`` mode: ``per_identity`` aligned crops of ``size`` x ``size`` pixels per identity."""

    per_identity: int = 20
    size: int = 112


@dataclass(frozen=True)
class MultiviewSettings:
    """``multiview`` mode: a grid of camera pans/tilts per person (degrees, the convention of
    :func:`hcgym.camera.orbit_pose`), seen from ``distance`` metres (see :mod:`hcgym.synthesis.multiview`)."""

    pans: tuple[int, ...] = tuple(range(-90, 91, 15))
    tilts: tuple[int, ...] = (-30, -15, 0, 15, 30)
    distance: float = 1.2
    hfov: float = 30.0
    series: int = 2  #: 1: neutral under series 1's light; 2: also a mild expression under series 2's light.

    def settings(self, size: tuple[int, int]):
        """The :class:`~hcgym.synthesis.multiview.MultiViewSettings` of images of ``size`` (width, height)."""
        from hcgym.synthesis.multiview import MultiViewSettings

        return MultiViewSettings(tuple(self.pans), tuple(self.tilts), tuple(size), float(self.hfov),
                                 float(self.distance))


@dataclass(frozen=True)
class ClipSettings:
    """``clips`` mode (see :mod:`hcgym.synthesis.dataset.clips`).

    Attributes:
        labels: ``actions``, ``expressions`` or ``gestures``: what the clips are labelled with.
        seconds: clip length; ``fps``: frames per second (a clip has ``round(seconds * fps)`` frames).
        identities: size of the identity pool (each identity is one avatar build, cached on disk).
        splits: train/val/test fractions of the identity pool (clips follow their person's split).
        style: expression clips only: ``posed`` (CK+/Oulu-like, the default) or ``wild`` (AFEW-like); part
            of the dataset key of expression clips only.
    """

    labels: str = "actions"
    seconds: float = 2.0
    fps: float = 15.0
    identities: int = 12
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    style: str = "posed"


@dataclass(frozen=True)
class GenerateConfig:
    """One ``hcgym generate`` run.

    Attributes:
        out: output folder (created; a folder holding the same dataset is resumed).
        n: items to generate: images (``scene``), identities (``faces``), persons (``multiview``) or
            clips (``clips``).
        seed: every random choice flows from it; the same seed gives the same bytes.
        mode: ``scene``, ``faces``, ``multiview`` or ``clips``.
        world: world YAML file or shipped world name (``scene`` mode without backgrounds).
        size: (width, height) of the images in pixels (the command line picks
            :data:`CLIP_SIZES` for clips).
        shard_size: items per shard (default by mode: 50 images, 8 identities, 4 persons, 8 clips).
        image_format: ``jpg`` (quality 92) or ``png`` for scene and multiview images (face crops are PNG).
        backgrounds: folder of photos to blend people onto (``scene`` mode).
        workers: processes (local pool) or Ray CPUs (local Ray).
        engine: ``local`` (process pool) or ``ray``.
        ray_address: address of an existing Ray cluster (``engine="ray"``); a local Ray when ``None``.
        backend: simulator backend (``embedded`` or ``webots``); a backend that cannot serve the mode
            (:data:`BACKEND_NEEDS`) is refused by :meth:`check`.
    """

    out: Path
    n: int
    seed: int = 0
    mode: str = "scene"
    world: str = "crowd_street"
    size: tuple[int, int] = (640, 480)
    shard_size: int | None = None
    image_format: str = "jpg"
    backgrounds: Path | None = None
    scene: SceneSettings = field(default_factory=SceneSettings)
    faces: FaceSettings = field(default_factory=FaceSettings)
    multiview: MultiviewSettings = field(default_factory=MultiviewSettings)
    clips: ClipSettings = field(default_factory=ClipSettings)
    workers: int = 1
    engine: str = "local"
    ray_address: str | None = None
    backend: str = "embedded"

    @property
    def items_per_shard(self) -> int:
        return int(self.shard_size or DEFAULT_SHARD_SIZE[self.mode])

    @property
    def shard_count(self) -> int:
        return -(-self.n // self.items_per_shard)

    def check(self) -> None:
        """Raise :class:`SpecError` naming the first invalid option."""
        _int(self.n, "--n", 1)
        _int(self.seed, "--seed", 0)
        _choice(self.mode, "--mode", MODES)
        _choice(self.engine, "--engine", ENGINES)
        _choice(self.image_format, "--format", FORMATS)
        from hcgym.envs.backends import check_backend

        try:
            check_backend(self.backend, BACKEND_NEEDS[self.mode])
        except SpecError as e:
            raise SpecError("--backend", f"{e.problem} (--mode {self.mode})") from None
        w, h = self.size
        _int(w, "--size (width)", 16, 4096)
        _int(h, "--size (height)", 16, 4096)
        if self.shard_size is not None:
            _int(self.shard_size, "--shard-size", 1, 100_000)
        _int(self.workers, "--workers", 1, 1024)
        if self.backgrounds is not None and self.mode != "scene":
            raise SpecError("--backgrounds", f"only used in scene mode (got --mode {self.mode})")
        s = self.scene
        _int(s.identities, "--identities", 1, 100_000)
        _int(s.variants, "--variants", 1, 64)
        _range(s.humans, "--humans", 0, 50, integer=True)
        if s.humans[1] > s.identities:
            raise SpecError("--humans", f"at most {s.humans[1]} people per image needs at least that many "
                                        f"identities (--identities {s.identities})")
        _range(s.distance, "--distance", 0.5, 60.0)
        _range(s.camera_height, "--camera-height", 0.1, 50.0)
        _range(s.camera_pitch, "--camera-pitch", -80.0, 60.0)
        _range(s.hfov, "--hfov", 10.0, 150.0)
        _number(s.occlusion, "--occlusion", 0.0, 1.0)
        if s.texture_size not in TEXTURE_SIZES:
            raise SpecError("--texture-size", f"unknown value {s.texture_size!r} "
                                              f"(allowed: {', '.join(map(str, TEXTURE_SIZES))})")
        _number(s.gap, "gap", 0.0, 2.0)
        _number(s.empty_fraction, "--empty-fraction", 0.0, 1.0)
        if (not isinstance(s.distortion, (tuple, list)) or len(s.distortion) != 2
                or not all(_finite(k) and -1.0 <= k <= 1.0 for k in s.distortion)):
            raise SpecError("--distortion", f"expected K1 or K1,K2 with each in [-1, 1], got {s.distortion!r}")
        if not isinstance(s.randomise, bool):
            raise SpecError("--randomise", f"expected True or False, got {s.randomise!r}")
        if self.backgrounds is not None and s.randomise:
            raise SpecError("--randomise", "not used with --backgrounds (the photos are the backgrounds and "
                                           "bring their own camera)")
        if self.backgrounds is not None and any(s.distortion):
            raise SpecError("--distortion", "not used with --backgrounds (the photos come with their own lens)")
        if len(s.splits) != 3 or any(not _finite(x) or x < 0 for x in s.splits) or sum(s.splits) <= 0:
            raise SpecError("--splits", f"expected three non-negative fractions (train,val,test) with a positive "
                                        f"sum, got {s.splits!r}")
        _int(self.faces.per_identity, "--per-identity", 1, 100_000)
        _int(self.faces.size, "--face-size", 16, 1024)
        m = self.multiview
        if not m.pans or not m.tilts or any(abs(a) > 90 for a in (*m.pans, *m.tilts)):
            raise SpecError("multiview", "pans and tilts must be non-empty lists of angles in [-90, 90]")
        if m.series not in (1, 2):
            raise SpecError("multiview", f"series must be 1 or 2, got {m.series!r}")
        c = self.clips
        _choice(c.labels, "--labels", CLIP_LABELS)
        _number(c.seconds, "--clip-seconds", 0.05, 600.0)
        _number(c.fps, "--fps", 1.0, 120.0)
        _int(c.identities, "--identities", 1, 100_000)
        _choice(c.style, "--style", CLIP_STYLES)
        if c.style != "posed" and c.labels != "expressions":
            raise SpecError("--style", f"only used with --labels expressions (got --labels {c.labels})")
        if len(c.splits) != 3 or any(not _finite(x) or x < 0 for x in c.splits) or sum(c.splits) <= 0:
            raise SpecError("--splits", f"expected three non-negative fractions (train,val,test) with a positive "
                                        f"sum, got {c.splits!r}")
        if self.mode == "clips" and (w % 2 or h % 2):
            raise SpecError("--size", f"clips need an even width and height (MPEG-4 video), got {w}x{h}")

    def dataset_key(self, world_key: str | None, backgrounds_key: str | None) -> dict[str, Any]:
        """JSON-able description of everything that defines the output bytes."""
        key: dict[str, Any] = {"mode": self.mode, "n": self.n, "seed": self.seed, "size": list(self.size),
                               "shard_size": self.items_per_shard}
        if self.backend != "embedded":
            key["backend"] = self.backend
        if self.mode == "scene":
            key.update(image_format=self.image_format, world=None if self.backgrounds else self.world,
                       world_sha256=world_key,
                       backgrounds=str(self.backgrounds) if self.backgrounds else None,
                       backgrounds_sha256=backgrounds_key, scene=_scene_key(self.scene))
        elif self.mode == "faces":
            key.update(faces=_plain(asdict(self.faces)))
        elif self.mode == "multiview":
            key.update(image_format=self.image_format, multiview=_plain(asdict(self.multiview)))
        else:
            key.update(clips=_clips_key(self.clips), label_names=list(label_names(self.clips.labels)))
        return key


def label_names(labels: str) -> tuple[str, ...]:
    """The labels of a label set (their positions are the label ids)."""
    if labels == "actions":
        from hcgym.synthesis.motion.actions import actions

        return tuple(sorted(a for a in actions() if a != "idle"))
    if labels == "expressions":
        from hcgym.synthesis.expressions import EXPRESSIONS

        return tuple(EXPRESSIONS)
    if labels == "gestures":
        from hcgym.synthesis.motion.hands import GESTURES

        return tuple(GESTURES)
    raise ValueError(f"unknown label set {labels!r}")


def split_fractions(splits: tuple[float, float, float]) -> tuple[float, float, float]:
    total = float(sum(splits))
    return tuple(float(x) / total for x in splits)  # type: ignore[return-value]


def _scene_key(scene: SceneSettings) -> dict[str, Any]:
    """The scene settings of the dataset key (``randomise`` only when on: older datasets keep their key)."""
    key = _plain(asdict(scene))
    if not scene.randomise:
        key.pop("randomise")
    return key


def _clips_key(clips: ClipSettings) -> dict[str, Any]:
    """The clip settings of the dataset key (``style`` only for expression clips: the other label sets keep
    their key)."""
    key = _plain(asdict(clips))
    if clips.labels != "expressions":
        key.pop("style")
    return key


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _finite(x: Any) -> bool:
    import math

    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(name, f"expected an integer, got {value!r}")
    if lo is not None and value < lo:
        what = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise SpecError(name, f"expected {what}, got {value}")
    if hi is not None and value > hi:
        raise SpecError(name, f"expected at most {hi}, got {value}")


def _number(value: Any, name: str, lo: float, hi: float) -> None:
    if not _finite(value) or not lo <= value <= hi:
        raise SpecError(name, f"expected a number in [{lo:g}, {hi:g}], got {value!r}")


def _range(value: Any, name: str, lo: float, hi: float, integer: bool = False) -> None:
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        (isinstance(v, int) and not isinstance(v, bool)) if integer else _finite(v) for v in value)
    if not ok or not lo <= value[0] <= value[1] <= hi:
        kind = "integers" if integer else "numbers"
        raise SpecError(name, f"expected MIN-MAX {kind} with {lo:g} <= MIN <= MAX <= {hi:g}, got {value!r}")


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(name, f"unknown value {value!r} (allowed: {', '.join(choices)})")
