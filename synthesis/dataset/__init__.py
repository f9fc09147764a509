"""The synthetic human dataset generator (``hcgym generate``; OpenDR D3.2 section 2.5).

Three modes share one resumable, sharded pipeline:

* ``scene``: images of sampled people (avatars, poses, expressions) placed on the ground of a
  world, or blended onto real photos, with COCO ``person`` annotations (boxes, 17 keypoints with
  depth-tested visibility, RLE masks) plus face boxes, identities, avatar specs, cameras and 3D keypoints;
* ``faces``: identity-labelled aligned face crops in an ImageFolder layout with a pairs file;
* ``multiview``: per-person pan/tilt grids in a layout after the Head Pose Image Database.

Top layer of :mod:`hcgym.synthesis`: it drives the embedded backend directly (never the
Gymnasium envs). Entry point: :func:`generate` with a :class:`GenerateConfig`.
"""

from hcgym.synthesis.dataset.config import (
    ENGINES,
    FORMATS,
    MODES,
    FaceSettings,
    GenerateConfig,
    MultiviewSettings,
    SceneSettings,
)

__all__ = ["ENGINES", "FORMATS", "MODES", "FaceSettings", "GenerateConfig", "MultiviewSettings", "SceneSettings",
           "generate", "GenerateResult"]


def __getattr__(name: str):  # lazy: the pipeline imports rendering and image libraries
    if name in ("generate", "GenerateResult"):
        from hcgym.synthesis.dataset import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
