"""The end of a scene run: per-split COCO files, ``summary.json``, ``histograms.png`` and ``preview.png``.

Everything here is computed from the shard records only, so a resumed run and an
uninterrupted one write the same bytes. (Throughput is printed, never written.)
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.paths import atomic_write_bytes
from hcgym.synthesis.dataset.config import SPLITS

#: Person box heights (pixels) of the scale histogram.
SCALE_EDGES = (0, 16, 32, 64, 128, 256, 512, 100_000)
OCCLUSION_EDGES = tuple(round(0.1 * i, 1) for i in range(11))
PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40))


def write_json(path: Path, data: Any, compact: bool = False) -> None:
    text = json.dumps(data, separators=(",", ":")) if compact else json.dumps(data, indent=1) + "\n"
    atomic_write_bytes(path, text.encode())


def write_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def finalize_scene(out: Path, records: list[dict[str, Any]], key: dict[str, Any]) -> dict[str, Any]:
    """Write ``annotations/{train,val,test}.json`` and the report; returns the summary."""
    from hcgym.synthesis.dataset.coco import coco_file

    images: dict[str, list] = {s: [] for s in SPLITS}
    anns: dict[str, list] = {s: [] for s in SPLITS}
    avatars: dict[str, Any] = {}
    for rec in records:
        avatars.update(rec["avatars"])
        for item in rec["images"]:
            images[item["split"]].append(item["image"])
            anns[item["split"]].extend(item["annotations"])
    for split in SPLITS:
        data = coco_file(images[split], anns[split], avatars, f"hcgym synthetic persons, {split} split", key)
        write_json(out / "annotations" / f"{split}.json", data, compact=True)
    summary = scene_summary(images, anns, key)
    write_json(out / "summary.json", summary)
    write_png(out / "histograms.png", histogram_figure(summary))
    write_png(out / "preview.png", scene_preview(out, [i for s in SPLITS for i in images[s]],
                                                  [a for s in SPLITS for a in anns[s]]))
    return summary


def scene_summary(images: dict[str, list], anns: dict[str, list], key: dict[str, Any]) -> dict[str, Any]:
    """Counts per split and histograms of people per image, person scale and occlusion."""
    all_anns = [a for s in SPLITS for a in anns[s]]
    per_image: dict[int, int] = {}
    for s in SPLITS:
        for im in images[s]:
            per_image[im["id"]] = 0
    for a in all_anns:
        per_image[a["image_id"]] += 1
    counts = np.bincount(list(per_image.values()) or [0], minlength=1)
    vis = np.array([a["keypoints"][2::3] for a in all_anns]).reshape(-1)
    heights = [a["bbox"][3] for a in all_anns]
    occl = [a["occlusion"] for a in all_anns if a["num_keypoints"]]
    areas = np.array([a["area"] for a in all_anns])
    return {
        "mode": "scene",
        "images": len(per_image),
        "persons": len(all_anns),
        "splits": {s: {"images": len(images[s]), "persons": len(anns[s]),
                       "images_without_persons": sum(1 for im in images[s] if per_image[im["id"]] == 0)}
                   for s in SPLITS},
        "persons_per_image": [int(c) for c in counts],
        "keypoints": {"visible": int((vis == 2).sum()), "occluded": int((vis == 1).sum()),
                      "not_labelled": int((vis == 0).sum())},
        "scale": {"edges_px": list(SCALE_EDGES),
                  "counts": [int(c) for c in np.histogram(heights, bins=SCALE_EDGES)[0]]},
        "occlusion": {"edges": list(OCCLUSION_EDGES),
                      "counts": [int(c) for c in np.histogram(occl, bins=OCCLUSION_EDGES)[0]]},
        "coco_area": {"small": int((areas < 32 ** 2).sum()),
                      "medium": int(((areas >= 32 ** 2) & (areas < 96 ** 2)).sum()),
                      "large": int((areas >= 96 ** 2).sum())},
        "truncated": sum(1 for a in all_anns if a["truncated"]),
        "identities_seen": len({a["identity"] for a in all_anns}),
        "dataset": key,
    }


def histogram_figure(summary: dict[str, Any]) -> np.ndarray:
    """(H, W, 3) uint8 RGB figure: people per image, person height, occlusion, keypoint visibility."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(8, 5.6), dpi=80)
    ppi = summary["persons_per_image"]
    ax[0, 0].bar(range(len(ppi)), ppi, color="#3b75af")
    ax[0, 0].set(title="people per image", xlabel="people", ylabel="images")
    sc = summary["scale"]
    labels = [f"{a}-{b}" if b < 100_000 else f">{a}" for a, b in zip(sc["edges_px"][:-1], sc["edges_px"][1:])]
    ax[0, 1].bar(range(len(labels)), sc["counts"], color="#519e3e")
    ax[0, 1].set_xticks(range(len(labels)), labels, fontsize=7)
    ax[0, 1].set(title="person box height", xlabel="pixels", ylabel="people")
    oc = summary["occlusion"]
    ax[1, 0].bar(np.asarray(oc["edges"][:-1]) + 0.05, oc["counts"], width=0.09, color="#ef8636")
    ax[1, 0].set(title="occlusion (occluded share of in-image keypoints)", xlabel="fraction", ylabel="people")
    kp = summary["keypoints"]
    ax[1, 1].bar(["visible (2)", "occluded (1)", "not labelled (0)"],
                 [kp["visible"], kp["occluded"], kp["not_labelled"]], color=["#3b75af", "#ef8636", "#999999"])
    ax[1, 1].set(title="keypoints", ylabel="keypoints")
    fig.tight_layout()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


def scene_preview(out: Path, images: list[dict], anns: list[dict], count: int = 6, tile_w: int = 320) -> np.ndarray:
    """Up to ``count`` images with people, drawn with masks, boxes, face boxes and skeletons (read back
    from the written files, so the preview checks the annotations as a user will read them)."""
    from PIL import Image, ImageDraw
    from pycocotools import mask as mask_utils

    from hcgym.types import COCO_SKELETON

    by_image: dict[int, list] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    chosen = sorted((im for im in images if im["id"] in by_image), key=lambda im: im["id"])[:count]
    if not chosen:
        chosen = sorted(images, key=lambda im: im["id"])[:1]
    tiles = []
    for im in chosen:
        rgb = np.asarray(Image.open(out / "images" / im["file_name"]).convert("RGB")).astype(np.float32)
        for k, a in enumerate(by_image.get(im["id"], [])):
            m = mask_utils.decode({"size": a["segmentation"]["size"],
                                   "counts": a["segmentation"]["counts"].encode()}).astype(bool)
            rgb[m] = 0.55 * rgb[m] + 0.45 * np.asarray(PALETTE[k % len(PALETTE)], np.float32)
        scale = tile_w / im["width"]
        tile = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).resize(
            (tile_w, max(1, round(im["height"] * scale))), Image.BILINEAR)
        draw = ImageDraw.Draw(tile)
        for k, a in enumerate(by_image.get(im["id"], [])):
            color = PALETTE[k % len(PALETTE)]
            x, y, w, h = (v * scale for v in a["bbox"])
            draw.rectangle([x, y, x + w, y + h], outline=color, width=2)
            if a["face_box"]:
                fx, fy, fw, fh = (v * scale for v in a["face_box"])
                draw.rectangle([fx, fy, fx + fw, fy + fh], outline=(255, 255, 255), width=1)
            kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
            for i, j in COCO_SKELETON:
                if kp[i, 2] > 0 and kp[j, 2] > 0:
                    width = 2 if kp[i, 2] == 2 and kp[j, 2] == 2 else 1
                    draw.line([tuple(kp[i, :2] * scale), tuple(kp[j, :2] * scale)], fill=color, width=width)
            for u, v, s in kp:
                if s > 0:
                    r = 2.5
                    box = [u * scale - r, v * scale - r, u * scale + r, v * scale + r]
                    draw.ellipse(box, fill=(255, 255, 255) if s == 2 else None, outline=(0, 0, 0))
        tiles.append(np.asarray(tile))
    return tile_grid(tiles, cols=3)


def tile_grid(tiles: list[np.ndarray], cols: int, pad: int = 4, bg: int = 255) -> np.ndarray:
    """Tiles (H_i, W_i, 3) uint8 in a grid with ``cols`` columns, top-left aligned."""
    cols = max(1, min(cols, len(tiles)))
    rows = -(-len(tiles) // cols)
    th = max(t.shape[0] for t in tiles)
    tw = max(t.shape[1] for t in tiles)
    sheet = np.full((rows * (th + pad) + pad, cols * (tw + pad) + pad, 3), bg, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (th + pad), pad + c * (tw + pad)
        sheet[y:y + t.shape[0], x:x + t.shape[1]] = t
    return sheet
