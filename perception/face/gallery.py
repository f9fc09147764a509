"""A gallery of enrolled identities: nearest-neighbour identification with the paper's confidence.

OpenDR D3.2 eq. (3)-(5): a query embedding ``q`` is assigned the identity of
the nearest enrolled embedding, ``d = min_i ||q - g_i||``; the confidence is
``c = 1 - d / a`` for a cut-off distance ``a``, and the face is "unknown"
(``c = 0``) when ``d >= a``. Galleries save to ``.npz`` (arrays) + ``.json``
(labels and settings); nothing is pickled.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hcgym.errors import SpecError
from hcgym.paths import atomic_write_bytes
from hcgym.types import Embeddings, FaceIdentity


class Gallery:
    """Enrolled identities for one recognizer.

    Args:
        cutoff: the distance ``a`` beyond which a face is unknown (recognizer specific: calibrate it,
            e.g. with :func:`threshold_at_far`; dlib's 0.6 is too loose for avatars).
        recognizer: name of the recognizer the embeddings come from.
        normalize: L2-normalise embeddings before comparing (for ArcFace-style recognizers).
    """

    def __init__(self, cutoff: float, recognizer: str = "", normalize: bool = False) -> None:
        if not cutoff > 0:
            raise SpecError("cutoff", f"must be > 0, got {cutoff!r}")
        self.cutoff = float(cutoff)
        self.recognizer = recognizer
        self.normalize = bool(normalize)
        self.labels: list[str] = []
        self._vectors: list[np.ndarray] = []
        self._owner: list[int] = []

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def vectors(self) -> np.ndarray:
        return np.stack(self._vectors) if self._vectors else np.zeros((0, 0))

    def enroll(self, label: str, embeddings: np.ndarray | Embeddings) -> None:
        """Add one or more embeddings (D,) or (N, D) of identity ``label``."""
        vecs = embeddings.vectors if isinstance(embeddings, Embeddings) else np.asarray(embeddings, dtype=np.float64)
        vecs = self._prep(vecs.reshape(-1, vecs.shape[-1]))
        if not len(vecs):
            raise SpecError("embeddings", f"no embedding to enroll for {label!r} (was a face detected?)")
        if self._vectors and vecs.shape[1] != self._vectors[0].shape[0]:
            raise SpecError("embeddings", f"dimension {vecs.shape[1]} differs from the gallery's "
                                          f"{self._vectors[0].shape[0]}")
        if label not in self.labels:
            self.labels.append(label)
        idx = self.labels.index(label)
        for v in vecs:
            self._vectors.append(np.asarray(v, dtype=np.float64))
            self._owner.append(idx)

    def distances(self, query: np.ndarray) -> np.ndarray:
        """(len(self),) distance of ``query`` to the nearest embedding of each identity (eq. 3)."""
        if not self._vectors:
            raise SpecError("gallery", "the gallery is empty: enroll identities first")
        d = np.linalg.norm(self.vectors - self._prep(np.asarray(query, dtype=np.float64)), axis=1)
        out = np.full(len(self.labels), np.inf)
        np.minimum.at(out, np.asarray(self._owner), d)
        return out

    def _prep(self, v: np.ndarray) -> np.ndarray:
        if not self.normalize:
            return v
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)

    def identify(self, query: np.ndarray, box: np.ndarray | None = None) -> FaceIdentity:
        """Nearest identity with confidence ``c = 1 - d / a``; ``label=None`` beyond the cut-off."""
        d = self.distances(query)
        j = int(np.argmin(d))
        dist = float(d[j])
        known = dist < self.cutoff
        return FaceIdentity(label=self.labels[j] if known else None, distance=dist,
                            confidence=(1.0 - dist / self.cutoff) if known else 0.0, box=box,
                            nearest=self.labels[j])

    def identify_all(self, embeddings: Embeddings) -> list[FaceIdentity]:
        return [self.identify(v, b) for v, b in zip(embeddings.vectors, embeddings.boxes)]

    # ---------------------------------------------------------------- io
    def save(self, path: str | Path) -> Path:
        """Write ``path.npz`` (embeddings, owners) and ``path.json`` (labels, cut-off, recognizer)."""
        path = Path(path)
        stem = path.with_suffix("") if path.suffix in (".npz", ".json") else path
        buf = io.BytesIO()
        np.savez(buf, vectors=self.vectors, owner=np.asarray(self._owner, dtype=np.int64))
        atomic_write_bytes(stem.with_suffix(".npz"), buf.getvalue())
        meta = {"format": "hcgym-gallery-1", "cutoff": self.cutoff, "recognizer": self.recognizer,
                "normalize": self.normalize, "labels": self.labels}
        atomic_write_bytes(stem.with_suffix(".json"), json.dumps(meta, indent=1).encode())
        return stem

    @classmethod
    def load(cls, path: str | Path) -> "Gallery":
        path = Path(path)
        stem = path.with_suffix("") if path.suffix in (".npz", ".json") else path
        for suffix in (".json", ".npz"):
            if not stem.with_suffix(suffix).is_file():
                raise SpecError("gallery", f"file not found: {stem.with_suffix(suffix)}")
        meta = json.loads(stem.with_suffix(".json").read_text())
        if meta.get("format") != "hcgym-gallery-1":
            raise SpecError("gallery", f"{stem.with_suffix('.json')} is not an hcgym gallery")
        g = cls(meta["cutoff"], meta.get("recognizer", ""), meta.get("normalize", False))
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as z:
            vectors, owner = z["vectors"], z["owner"]
        g.labels = list(meta["labels"])
        g._vectors = [v for v in vectors]
        g._owner = [int(o) for o in owner]
        return g


# ------------------------------------------------------------ thresholds
@dataclass
class CVResult:
    """10-fold cross-validated verification: accuracies per fold (%), thresholds per fold."""

    accuracies: np.ndarray
    thresholds: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        return float(self.accuracies.std())

    @property
    def threshold(self) -> float:
        return float(np.median(self.thresholds))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Threshold maximising verification accuracy (``same`` iff ``d < t``): (threshold, accuracy in [0, 1])."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    order = np.argsort(d)
    ds, ys = d[order], y[order]
    # Accepting the first k pairs: correct = same among them + different among the rest.
    tp = np.concatenate([[0], np.cumsum(ys)])
    tn = (~ys).sum() - np.concatenate([[0], np.cumsum(~ys)])
    acc = (tp + tn) / len(d)
    k = int(np.argmax(acc))
    if k == 0:
        t = ds[0] - 1e-6
    elif k == len(ds):
        t = ds[-1] + 1e-6
    else:
        t = (ds[k - 1] + ds[k]) / 2
    return float(t), float(acc[k])


def kfold_verification(distances: np.ndarray, same: np.ndarray, folds: int = 10, seed: int = 0) -> CVResult:
    """The LFW protocol: for each fold, pick the threshold on the other folds and score this one."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    if len(d) < folds:
        raise SpecError("pairs", f"need at least {folds} pairs for {folds}-fold cross-validation, got {len(d)}")
    idx = np.random.default_rng(seed).permutation(len(d))
    parts = np.array_split(idx, folds)
    accs, ths = [], []
    for k in range(folds):
        test = parts[k]
        train = np.concatenate([parts[j] for j in range(folds) if j != k])
        t, _ = best_threshold(d[train], y[train])
        accs.append(100.0 * ((d[test] < t) == y[test]).mean())
        ths.append(t)
    return CVResult(np.asarray(accs), np.asarray(ths))


def threshold_at_far(impostor_distances: np.ndarray, far: float = 0.01) -> float:
    """Distance below which only ``far`` of the impostor pairs fall (a cut-off ``a`` for eq. 4-5)."""
    d = np.asarray(impostor_distances, dtype=np.float64)
    if not len(d):
        raise SpecError("impostor_distances", "no impostor pairs")
    return float(np.quantile(d, far))
