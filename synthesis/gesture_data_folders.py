"""Real RGB-D gesture images as :class:`~hcgym.synthesis.gesture_data.GestureData` arrays.

Two folder layouts (``layout="auto"`` picks ``hands`` when ``<root>/Subject*/Subject*.txt`` exist):

``hands``: the HANDS data set (Nuzzi et al., Data in Brief 35, 2021; Kinect v2, 960x540 RGB and aligned
depth) as unpacked from its archive and read by OpenDR's ``rgbd_hand_gesture_learner``::

    <root>/Subject<k>/Subject<k>.txt          header: rgb,depth,<label 1>,...,<label L>; then one row per frame:
                                              <rgb path>,<depth path>,[x y w h],...,[x y w h]
                                              ([0 0 0 0] where the frame does not show that label)
    <root>/Subject<k>/Subject<k>/<rgb file>          colour PNG
    <root>/Subject<k>/Subject<k>_Depth/<depth file>  16-bit PNG, millimetres (0 = no reading)

  Only the file names of the paths are used (they are Windows paths); a depth file named ``...color...`` is
  looked up as ``...depth...`` too (OpenDR does the same for subjects 1-3). The frame's label is its labels'
  gesture (:func:`hands_gesture` maps HANDS names such as ``One_VFR``, ``Horiz_HBL`` or ``TimeOut`` to
  :data:`~hcgym.synthesis.motion.hands.GESTURES`: ``Horiz`` HBL/HFR point to the person's left, HFL/HBR to the
  right); frames whose labels name two different gestures, or none, are skipped (counted in the metadata).
  The crop is the square around the union of the frame's boxes times ``box_margin`` (the boxes are tight
  around the hand, so 1.3 gives about the context of :data:`~hcgym.perception.gesture.inputs.HAND_MARGIN`
  around keypoints). Splits by subject: ``test_subjects`` (default 4, 5, OpenDR's split) and
  ``val_subjects`` (default none), the others train; ``identity`` is the subject number.

``simple``: any other data, one folder per split and gesture::

    <root>/<split>/<gesture>/<name>.png        colour image (split: train, val or test)
    <root>/<split>/<gesture>/<name>_depth.png  16-bit depth in millimetres, aligned, 0 = no reading
    <root>/<split>/<gesture>/<name>.json       optional: {"box": [x0, y0, x1, y1], "hand": "left",
                                               "subject": 3}

  ``<gesture>`` is a :data:`GESTURES` name (or a HANDS name). Without a box the crop is the largest centred
  square of the image; with one, the square around it times ``box_margin``.

Crops are resized to ``size`` like the rendered ones (:func:`hcgym.perception.gesture.inputs.crop_rgbd`);
``keypoints`` and ``keypoints_3d`` are NaN, ``distance`` is the median depth in the crop's centre.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.synthesis.motion.hands import GESTURES

LAYOUTS = ("auto", "hands", "simple")
_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_BOX = re.compile(r"\[([^\]]*)\]")


def hands_gesture(name: str) -> str | None:
    """The :data:`GESTURES` name of a HANDS (or hcgym) gesture label, ``None`` if it names none."""
    if name in GESTURES:
        return name
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for word, gesture in (("collab", "collab"), ("xsign", "x_sign"), ("timeout", "time_out"), ("span", "span"),
                          ("punch", "punch")):
        if key.startswith(word):
            return gesture
    if key.startswith("horiz"):
        if "hbl" in key or "hfr" in key:
            return "left"
        if "hfl" in key or "hbr" in key:
            return "right"
        return None
    for word in _NUMBERS:
        if key.startswith(word):
            return word
    return None


def read_folder(root: str | Path, size: int = 112, layout: str = "auto", box_margin: float = 1.3,
                test_subjects: tuple[int, ...] = (4, 5), val_subjects: tuple[int, ...] = ()
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays (:data:`hcgym.synthesis.gesture_data.KEYS`, ``labels`` and ``source``, the colour image's path
    under ``root``) and metadata (``source``, ``samples``, ``splits``) of a folder of real RGB-D gesture images
    (module docstring)."""
    base = Path(root)
    if not base.is_dir():
        raise SpecError("root", f"no such folder: {base}")
    if layout not in LAYOUTS:
        raise SpecError("layout", f"unknown layout {layout!r} (allowed: {', '.join(LAYOUTS)})")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= size <= 1024:
        raise SpecError("size", f"expected a crop side in pixels, an integer in [16, 1024], got {size!r}")
    if layout == "auto":
        layout = "hands" if any(base.glob("Subject*/Subject*.txt")) else "simple"
    items, skipped = (_hands_items(base, test_subjects, val_subjects) if layout == "hands" else _simple_items(base))
    if not items:
        raise SpecError("root", f"{base} holds no {layout} gesture images (see hcgym.synthesis.gesture_data_folders)")
    rows = [_read_item(item, int(size), box_margin) for item in items]
    n = len(rows)
    arrays = {
        "rgb": np.stack([r[0] for r in rows]), "depth": np.stack([r[1] for r in rows]).astype(np.float16),
        "box": np.stack([r[2] for r in rows]).astype(np.float32),
        "keypoints": np.full((n, 21, 3), np.nan, np.float32), "keypoints_3d": np.full((n, 21, 3), np.nan, np.float32),
        "label": np.array([GESTURES.index(it["gesture"]) for it in items], dtype=np.int64),
        "labels": np.array(GESTURES), "hand": np.array([it.get("hand", "") for it in items]),
        "identity": np.array([it.get("subject", -1) for it in items], dtype=np.int64),
        "avatar_seed": np.full(n, -1, dtype=np.int64), "split": np.array([it["split"] for it in items]),
        "distance": np.array([r[3] for r in rows], dtype=np.float32), "props": np.full(n, -1, dtype=np.int16),
        "distractor": np.zeros(n, dtype=np.float16), "seconds": np.zeros(n, dtype=np.float32),
        "source": np.array([str(it["rgb"].relative_to(base)) for it in items]),
    }
    meta = {"source": {"root": str(base), "layout": layout, "box_margin": box_margin,
                                         "skipped": skipped}, "samples": n,
            "splits": {s: int((arrays["split"] == s).sum()) for s in ("train", "val", "test")}}
    return arrays, meta


def _read_item(item: dict[str, Any], size: int, margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    import cv2

    from hcgym.perception.gesture.inputs import crop_rgbd, hand_box, reference_depth

    bgr = cv2.imread(str(item["rgb"]), cv2.IMREAD_COLOR)
    raw = cv2.imread(str(item["depth"]), cv2.IMREAD_UNCHANGED)
    if bgr is None or raw is None:
        bad = item["rgb"] if bgr is None else item["depth"]
        raise SpecError("root", f"cannot read image {bad}")
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise SpecError("root", f"{item['depth']} is not a 16-bit single-channel depth image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    depth = raw.astype(np.float32) / 1000.0
    if depth.shape != (h, w):
        depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
    box = item.get("box")
    if box is None:
        side = min(w, h)
        x0, y0 = (w - side) // 2, (h - side) // 2
        square = np.array([x0, y0, x0 + side, y0 + side])
    else:
        b = np.asarray(box, dtype=np.float64)
        square = hand_box(np.array([b[:2], b[2:]]), (w, h), margin=margin)
    crop, crop_depth = crop_rgbd(rgb, depth, square, size)
    ref = float(reference_depth(crop_depth[None])[0])
    return crop, crop_depth, square.astype(np.float32), ref if np.isfinite(ref) else float("nan")


def _hands_items(base: Path, test_subjects, val_subjects) -> tuple[list[dict[str, Any]], dict[str, int]]:
    items: list[dict[str, Any]] = []
    skipped = {"no_label": 0, "two_gestures": 0, "unknown_label": 0}
    for txt in sorted(base.glob("Subject*/Subject*.txt"), key=lambda p: _subject(p.stem)):
        subject = _subject(txt.stem)
        if subject is None:
            continue
        split = "test" if subject in test_subjects else "val" if subject in val_subjects else "train"
        lines = [ln.strip() for ln in txt.read_text().splitlines() if ln.strip()]
        if not lines:
            continue
        names = [n.strip() for n in lines[0].split(",")[2:]]
        folder = txt.parent
        for row in lines[1:]:
            parts = row.split(",")
            if len(parts) < 2:
                raise SpecError("root", f"{txt}: a row without rgb and depth paths: {row[:80]!r}")
            boxes = _BOX.findall(",".join(parts[2:]))
            if len(boxes) != len(names):
                raise SpecError("root", f"{txt}: a row has {len(boxes)} boxes for {len(names)} labels: {row[:80]!r}")
            present = []
            for name, text in zip(names, boxes):
                vals = [float(v) for v in text.split()]
                if len(vals) == 4 and any(vals):
                    present.append((name, vals))
            gestures = {hands_gesture(n) for n, _ in present}
            if not present:
                skipped["no_label"] += 1
                continue
            if None in gestures:
                skipped["unknown_label"] += 1
                continue
            if len(gestures) > 1:
                skipped["two_gestures"] += 1
                continue
            xywh = np.array([v for _, v in present])
            box = [float(xywh[:, 0].min()), float(xywh[:, 1].min()), float((xywh[:, 0] + xywh[:, 2]).max()),
                   float((xywh[:, 1] + xywh[:, 3]).max())]
            rgb = folder / folder.name / _basename(parts[0])
            depth = _depth_file(folder / f"{folder.name}_Depth", _basename(parts[1]))
            if not rgb.is_file() or depth is None:
                raise SpecError("root", f"{txt}: missing image {rgb if not rgb.is_file() else parts[1]}")
            hand = _hands_side([n for n, _ in present])
            items.append({"rgb": rgb, "depth": depth, "gesture": gestures.pop(), "split": split, "subject": subject,
                          "box": box, "hand": hand})
    return items, skipped


def _subject(stem: str) -> int | None:
    m = re.fullmatch(r"Subject(\d+)", stem)
    return int(m.group(1)) if m else None


def _basename(path: str) -> str:
    return re.split(r"[\\/]", path.strip())[-1]


def _depth_file(folder: Path, name: str) -> Path | None:
    for candidate in (name, name.replace("color", "depth"), name.replace("Color", "Depth")):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _hands_side(names: list[str]) -> str:
    """``left`` / ``right`` from HANDS suffixes (``..._VFR``: right hand, ``..._HBL``: left), ``both`` for two
    hands, ``""`` unknown."""
    sides = set()
    for n in names:
        suffix = re.sub(r"[^A-Za-z]", "", n)[-3:].upper()
        if len(suffix) == 3 and suffix[0] in "VH" and suffix[1] in "FB" and suffix[2] in "LR":
            sides.add("left" if suffix[2] == "L" else "right")
    return sides.pop() if len(sides) == 1 else "both" if len(sides) == 2 else ""


def _simple_items(base: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    items: list[dict[str, Any]] = []
    for split in ("train", "val", "test"):
        folder = base / split
        if not folder.is_dir():
            continue
        for gdir in sorted(p for p in folder.iterdir() if p.is_dir()):
            gesture = hands_gesture(gdir.name)
            if gesture is None:
                raise SpecError("root", f"{gdir}: {gdir.name!r} is not a gesture (allowed: {', '.join(GESTURES)})")
            for rgb in sorted(gdir.glob("*.png")):
                if rgb.stem.endswith("_depth"):
                    continue
                depth = rgb.with_name(rgb.stem + "_depth.png")
                if not depth.is_file():
                    raise SpecError("root", f"{rgb}: no depth image {depth.name} beside it")
                item: dict[str, Any] = {"rgb": rgb, "depth": depth, "gesture": gesture, "split": split}
                side = rgb.with_suffix(".json")
                if side.is_file():
                    try:
                        extra = json.loads(side.read_text())
                    except ValueError as e:
                        raise SpecError("root", f"{side}: not JSON ({e})") from None
                    if "box" in extra:
                        item["box"] = [float(v) for v in extra["box"]]
                    item["hand"] = str(extra.get("hand", ""))
                    item["subject"] = int(extra.get("subject", -1))
                items.append(item)
    return items, {}
