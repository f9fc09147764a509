"""Shared fixtures: one studio backend with 20 random avatars, one backend per shipped world.

Everything here runs on the embedded (PyBullet TinyRenderer) backend on CPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

# Test support code (``tests/support``: the VRML reader, the fake Webots controller) imports as ``support``.
sys.path.insert(0, str(Path(__file__).parent))

#: Seeds of the 20 random avatars used by the face and ground-truth tests.
STUDIO_SEEDS = tuple(range(7000, 7020))


@pytest.fixture(scope="session", autouse=True)
def _sb3_logdir(tmp_path_factory):
    """Stable-Baselines3 makes a log folder per learn(); keep those of the tests in pytest's temp tree."""
    import os

    old = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3"))
    yield
    if old is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = old


@pytest.fixture(scope="session")
def studio():
    """An embedded backend holding 20 random avatars in a plain studio (show one with ``show_only``)."""
    from hcgym.envs.backends import make_backend
    from hcgym.synthesis import AvatarSpec
    from hcgym.worlds.studio import studio_world

    sim = make_backend("embedded")
    sim.load(studio_world([AvatarSpec.random(s) for s in STUDIO_SEEDS]))
    yield sim
    sim.close()


@pytest.fixture(scope="session")
def studio_portraits(studio):
    """Frontal 1 m renders at 400x300 of each studio avatar: list of (index, Frame)."""
    from hcgym.synthesis.studio import portrait_pose, show_only

    frames = []
    for i, h in enumerate(studio.humans):
        show_only(studio, i)
        frames.append((i, studio.render(pose=portrait_pose(h.avatar, 1.0))))
    return frames


@pytest.fixture(scope="session")
def crowd():
    from hcgym.envs.backends import make_backend
    from hcgym.worlds import load_world

    sim = make_backend("embedded")
    sim.load(load_world("crowd_street"), seed=0)
    yield sim
    sim.close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one torch thread is faster, and far faster on a loaded 2-core machine."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ------------------------------------------------------------------ NMS: a toy person dataset
#
# The generator's layout (``images/*.png``, ``annotations/{split}.json`` with ``bbox``, ``bbox_amodal``,
# ``area`` and ``occlusion``) drawn with numpy, no renderer: person-shaped blobs (head, body) side by
# side on a noisy background (so the detector simulator makes bridge boxes) and one tiny person per
# image (an ignore region).

TOY_SIZE = (160, 120)


def _toy_person(rng: np.random.Generator, x: float, y: float, h: float) -> list[float]:
    w = h / rng.uniform(2.2, 3.0)
    return [float(x), float(y), float(w), float(h)]


def _toy_draw(img: np.ndarray, box: list[float], colour: np.ndarray) -> None:
    x, y, w, h = (int(round(v)) for v in box)
    img[y + h // 5: y + h, x: x + w] = colour                                       # body
    cx, r = x + w // 2, max(1, h // 10)
    img[y: y + h // 5, max(cx - r, 0): cx + r] = np.clip(colour.astype(int) + 60, 0, 255)  # head


def make_toy_dataset(root: Path, images: dict[str, int], seed: int = 0) -> Path:
    """Write ``images[split]`` toy images per split under ``root``; returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    image_id = 0
    for split, n in images.items():
        imgs, anns = [], []
        for _ in range(n):
            image_id += 1
            w, h = TOY_SIZE
            img = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
            people = []
            x = rng.uniform(4, 20)
            for _ in range(int(rng.integers(2, 5))):                  # a row of neighbours
                box = _toy_person(rng, x, rng.uniform(5, 20), rng.uniform(60, 90))
                if box[0] + box[2] > w - 2 or box[1] + box[3] > h - 2:
                    break
                people.append(box)
                x += box[2] * rng.uniform(0.7, 1.1)
            people.append(_toy_person(rng, rng.uniform(100, 140), rng.uniform(80, 100), 9.0))   # tiny: ignored
            for k, box in enumerate(people):
                _toy_draw(img, box, rng.integers(120, 255, 3).astype(np.uint8))
                anns.append({"id": image_id * 1000 + k + 1, "image_id": image_id, "category_id": 1, "bbox": box,
                             "bbox_amodal": box, "area": 0.45 * box[2] * box[3], "iscrowd": 0,
                             "occlusion": float(rng.uniform(0.0, 0.4))})
            name = f"{image_id:08d}.png"
            Image.fromarray(img).save(root / "images" / name)
            imgs.append({"id": image_id, "file_name": name, "width": w, "height": h})
        coco = {"images": imgs, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
        (root / "annotations" / f"{split}.json").write_text(json.dumps(coco))
    return root


@pytest.fixture(scope="session")
def nms_toy(tmp_path_factory):
    """A toy person dataset: 4 train and 2 val images of 160x120 (see :func:`make_toy_dataset`)."""
    return make_toy_dataset(tmp_path_factory.mktemp("nms_toy"), {"train": 4, "val": 2}, seed=0)


@pytest.fixture(scope="session")
def coco_self_eval():
    """``check(coco_dict)``: COCOeval of a COCO ground truth against itself (every annotation as a detection
    with score 1) must give AP 1.0 for ``bbox``, ``segm`` and ``keypoints``; returns the number of annotations."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def check(dataset: dict) -> int:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = dataset
            gt.createIndex()
            dets = [{**a, "score": 1.0} for a in gt.loadAnns(gt.getAnnIds())]
            for iou in ("bbox", "segm", "keypoints"):
                ev = COCOeval(gt, gt.loadRes([dict(d) for d in dets]), iou)
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
                assert ev.stats[0] == pytest.approx(1.0), (iou, ev.stats)
        return len(dets)

    return check
