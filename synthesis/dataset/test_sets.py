"""Held-out test sets of generated scenes: the one recipe behind the NMS and person-detector protocols.

A test set is a ``scene``-mode generator folder with every image in the ``test`` split, 384x288 pixels,
named by what it holds. :data:`TEST_SETS` names the scene families:

* ``sparse``, ``medium``, ``dense``: the crowd densities of ``hcgym evaluate nms`` (1-5 people with
  occlusion 0.3, 12-16 with 0.5, 20-40 with 0.7) in ``crowd_street``;
* ``urban``: the person detector's training domain (``crowd_street``, 1-6 people, occlusion 0.3);
* ``field``: the domain-shift target (``field`` world: 1-4 small distant people, barrel distortion, wide
  lenses, about 20 % of the images with people).

Every crowd family shares distance 2-14 m and 48 identities. The generator resumes and checks its key, so
asking again for the same set reuses it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from hcgym.errors import SpecError
from hcgym.synthesis.dataset.config import SceneSettings

#: Image size (W, H) of every test set.
TEST_SIZE = (384, 288)
#: Crowd density -> (people per image, occlusion probability).
CROWD_DENSITIES: dict[str, tuple[tuple[int, int], float]] = {
    "sparse": ((1, 5), 0.3),
    "medium": ((12, 16), 0.5),
    "dense": ((20, 40), 0.7),
}


def crowd_scene(humans: tuple[int, int], occlusion: float) -> SceneSettings:
    """``crowd_street`` scenes: ``humans`` people per image, distance 2-14 m, 48 identities, all in ``test``."""
    return SceneSettings(humans=humans, occlusion=occlusion, distance=(2.0, 14.0), identities=48,
                         splits=(0.0, 0.0, 1.0))


#: Test-set family -> (world, scene settings).
TEST_SETS: dict[str, tuple[str, SceneSettings]] = {
    **{name: ("crowd_street", crowd_scene(h, o)) for name, (h, o) in CROWD_DENSITIES.items()},
    "urban": ("crowd_street", crowd_scene((1, 6), 0.3)),
    "field": ("field", SceneSettings(humans=(1, 4), identities=48, occlusion=0.1, distance=(5.0, 40.0),
                                     hfov=(70.0, 100.0), camera_height=(1.5, 3.0), camera_pitch=(-15.0, 0.0),
                                     splits=(0.0, 0.0, 1.0), empty_fraction=0.8, distortion=(-0.2, 0.03))),
}


def generate_test_set(out: Path, kind: str, n: int, seed: int, workers: int = 1, progress: bool = True,
                      **overrides: Any) -> Path:
    """Generate (or reuse) ``n`` test images of family ``kind`` from ``seed`` in ``out``; returns ``out``.

    ``overrides`` replace fields of the family's :class:`SceneSettings` (e.g. ``empty_fraction=0.5``).
    """
    from hcgym.synthesis.dataset import GenerateConfig, generate

    if kind not in TEST_SETS:
        raise SpecError("kind", f"unknown test set {kind!r} (allowed: {', '.join(TEST_SETS)})")
    world, scene = TEST_SETS[kind]
    generate(GenerateConfig(out=Path(out), n=n, seed=seed, world=world, size=TEST_SIZE,
                            scene=replace(scene, **overrides), workers=workers), progress=progress)
    return Path(out)
