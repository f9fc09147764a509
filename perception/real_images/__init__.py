"""The real-image test set: 23 photographs that public Python packages ship, with hand-made person and face boxes.

13 images hold people (one to six; 24 person boxes, of which 4 are ignore regions; 20 faces) and 10 hold none
(face masks, a cat, a coffee cup, a horse silhouette, three textures). Files (package data beside this
module):

* ``images/``: the photos (``sources.json`` and ``LICENCES.md`` record, per image, the package, its version,
  the path inside it, the package's licence, what is known of the image's own origin, and any re-encoding or
  resizing);
* ``annotations.json``: COCO, categories ``person`` (1) and ``face`` (2), boxes ``[x, y, w, h]`` in pixels of
  the shipped files; ``iscrowd: 1`` marks an ignore region; a face's ``person_id`` names its person's
  annotation.

Labelling rules (``docs/real_images.md``): a person box is the visible extent of the person (held objects
excluded), clipped to the image; a face box runs brow to chin and ear to ear of the visible face. A person
is an ignore region when less than about a third of the body is in view (only an arm or a sliver along the
border), when blurred past recognition, or when the picture is a tight face crop (``Tom_Hanks_54745.png``).

>>> from hcgym.perception import real_images
>>> items = real_images.load()          # [(rgb (H, W, 3) uint8, ImageLabels), ...] in file-name order
>>> frames = real_images.frames()       # the same as Frames with ground truth, for the sensor bench
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hcgym.perception.bench_source import (
    REAL_ANNOTATIONS,
    REAL_IMAGES,
    ImageLabels,
    labelled_frame,
    read_coco,
    read_rgb,
)
from hcgym.types import Frame

#: This folder, its photos, the COCO labels and the per-image provenance.
ROOT = Path(__file__).resolve().parent
IMAGES = REAL_IMAGES
ANNOTATIONS = REAL_ANNOTATIONS
SOURCES = ROOT / "sources.json"


def labels() -> dict[str, ImageLabels]:
    """The labels of every image, by file name (sorted)."""
    return dict(sorted(read_coco(ANNOTATIONS).items()))


def load() -> list[tuple[np.ndarray, ImageLabels]]:
    """Every image as ``(rgb (H, W, 3) uint8, labels)``, sorted by file name (grey pictures as three equal
    channels). ``labels.scoring_item()`` gives the person targets in the format of
    :func:`hcgym.perception.scoring.coco_ap`."""
    return [(read_rgb(IMAGES / name), lab) for name, lab in labels().items()]


def frames() -> list[Frame]:
    """Every image as a :class:`Frame` with its ground truth (:func:`hcgym.perception.bench_source.humans_of`),
    frame ``k`` at time ``k`` s."""
    return [labelled_frame(rgb, lab, index=k, name=lab.file_name) for k, (rgb, lab) in enumerate(load())]


__all__ = ["ANNOTATIONS", "IMAGES", "ROOT", "SOURCES", "frames", "labels", "load"]
