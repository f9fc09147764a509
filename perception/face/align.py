"""Five-point face alignment to the ArcFace 112x112 template.

Two alignments, each for the recognizers trained on it:

* :func:`norm_crop`: InsightFace's own ``insightface.utils.face_align.norm_crop`` (template in float32, black
  outside the image, sizes that are multiples of 112 or 128), for ArcFace-format recognizers
  (``face/arcface-onnx``, ``face/insightface``);
* :func:`align_face`: the crop hcgym's IRNet was trained and calibrated on (template in float64, border
  replicated, any size). Its similarity is scikit-image's ``SimilarityTransform`` (Umeyama), as in
  InsightFace. The two differ by up to 5e-5 in the matrix, i.e. a grey level or two on a few pixels, and
  outside the image; the shipped IRNet and its cut-offs keep the crop they were made with.

Five points are given in **image order**: image-left eye, image-right eye, nose tip, image-left mouth
corner, image-right mouth corner (for a frontal face the image-left eye is the person's right eye).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np

from hcgym.errors import DependencyNotInstalled, SpecError

#: InsightFace/ArcFace reference points for a 112x112 crop, image order (``face_align.arcface_dst`` in float64).
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)

INSIGHTFACE_HINT = ("pip install --no-deps insightface==2.1 scikit-image (as `make` does: the insightface wheel "
                    "asks for opencv-python, a second cv2 beside mediapipe's opencv-contrib-python)")


@contextlib.contextmanager
def _quiet_estimate() -> Iterator[None]:
    """scikit-image 0.26 deprecates ``SimilarityTransform.estimate`` (InsightFace calls it): keep it quiet."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*`estimate` is deprecated", category=FutureWarning)
        yield


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, translation) mapping ``src`` (N, 2) onto ``dst``."""
    from skimage.transform import SimilarityTransform

    tform = SimilarityTransform()
    with _quiet_estimate():
        ok = tform.estimate(np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64))
    if not ok:
        raise SpecError("five", f"degenerate face landmarks, no similarity fits them: {np.asarray(src).tolist()}")
    return tform.params[:2].copy()


def align_face(image: np.ndarray, five: np.ndarray, size: int = 112) -> np.ndarray:
    """IRNet's crop: warp the face with landmarks ``five`` (5, 2) to a ``size`` x ``size`` RGB chip."""
    import cv2

    m = similarity_transform(five, ARCFACE_TEMPLATE * (size / 112.0))
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def norm_crop(image: np.ndarray, five: np.ndarray, size: int = 112) -> np.ndarray:
    """InsightFace's ArcFace crop (``face_align.norm_crop``) of an RGB image, ``size`` x ``size``.

    Sizes that are not a multiple of 112 or 128 (e.g. hcgym's 56x56 IRNet export) are cropped at 112 and
    resized with area interpolation, the way hcgym's own IRNet sensor feeds its network.
    """
    import cv2

    try:
        from insightface.utils import face_align
    except ImportError:
        raise DependencyNotInstalled(f"insightface is missing: {INSIGHTFACE_HINT}") from None
    native = size % 112 == 0 or size % 128 == 0
    with _quiet_estimate():
        chip = face_align.norm_crop(image, np.asarray(five, dtype=np.float64), size if native else 112)
    return chip if native else cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)


def five_from_dlib68(points: np.ndarray) -> np.ndarray:
    """Image-order five points from dlib's 68 landmarks (eye centres, nose tip, mouth corners)."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def five_from_mediapipe478(points: np.ndarray) -> np.ndarray:
    """Image-order five points from MediaPipe face mesh (iris centres 468/473, nose tip 1, mouth 61/291)."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    eyes = [p[468], p[473]] if len(p) > 473 else [p[33:134].mean(0), p[263:362].mean(0)]
    five = np.stack([*eyes, p[1], p[61], p[291]])
    if five[0, 0] > five[1, 0]:  # keep image order
        five[[0, 1]] = five[[1, 0]]
    if five[3, 0] > five[4, 0]:
        five[[3, 4]] = five[[4, 3]]
    return five
