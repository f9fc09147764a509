"""Video files: MPEG-4 (``mp4v``) in an MP4 container, written with OpenCV, readable by OpenCV and ffmpeg.

:class:`VideoWriter` writes to a temporary name and renames on :meth:`close` (nothing is left
half written if rendering fails); :func:`read_video` decodes every frame back to RGB.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: The codec: MPEG-4 Part 2, the one encoder every OpenCV wheel ships (H.264 needs a system library).
FOURCC = "mp4v"


class VideoWriter:
    """Write RGB frames (H, W, 3) uint8 of one size to ``path`` at ``fps``; use as a context manager."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]) -> None:
        import cv2

        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}{self.path.suffix}")
        cv2.setNumThreads(1)  # one encoder thread: the same frames give the same bytes
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*FOURCC), float(fps), self.size)
        if not self._writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {FOURCC} video to {self._tmp}")
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        import cv2

        if rgb.shape != (self.size[1], self.size[0], 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame must be ({self.size[1]}, {self.size[0]}, 3) uint8, got {rgb.shape} {rgb.dtype}")
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file (``keep=False``: delete it instead)."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        if keep:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(keep=exc_type is None)


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of a video as (N, H, W, 3) uint8 RGB."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), dtype=np.uint8)
