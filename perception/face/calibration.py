"""Calibrate the recognizers' cut-off distance ``a`` of eq. (4)-(5) into ``cutoffs.json``, with provenance.

The cut-off of a recognizer is the distance below which a fraction ``far`` (1 %) of the impostor
pairs of an identity study on held-out avatars falls
(:func:`~hcgym.perception.face.gallery.threshold_at_far`), rounded to ``decimals`` places.
Perception does not render: the study is passed in as a callable ``study(recognizer)`` returning
genuine and impostor distances, rank-1 and the detection rate
(``hcgym calibrate face-cutoffs`` passes :func:`hcgym.synthesis.identity_study.run_identity_study`).
:func:`write_cutoffs` writes the table read by
:func:`~hcgym.perception.face.models.recognizer_cutoff` and ``PROVENANCE_<name>.json`` beside it;
both are free of dates and timings, so the same settings give the same bytes.

>>> cals = calibrate_face_cutoffs(lambda r: run_identity_study(100, 7000, recognizer=r))
>>> write_cutoffs("cutoffs.json", cals, {"command": "...", "seed": 7000, "avatars": 100})
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.face.gallery import threshold_at_far

#: Recognizers that need no user files, so the command can calibrate them (the shipped table's entries).
RECOGNIZERS = ("face/hcgym-irnet", "face/dlib")
#: Recognizers whose embeddings are compared as they are; the identity study L2-normalises the others.
RAW_EMBEDDINGS = frozenset({"face/dlib"})
#: The shipped table's settings: 1 % FAR on avatars ``AvatarSpec.random(7000..7099)``, cut-offs to 3 places.
FAR, SEED, AVATARS, DECIMALS = 0.01, 7000, 100, 3


@dataclass(frozen=True)
class CutoffCalibration:
    """One recognizer's cut-off and what it was measured on (distance arrays are 1-d, any length)."""

    recognizer: str
    far: float  #: asked false-accept rate.
    threshold: float  #: exact distance quantile of the impostor pairs at ``far``.
    cutoff: float  #: ``threshold`` rounded: the ``a`` the envs use.
    decimals: int  #: places ``cutoff`` is rounded to.
    rank1: float  #: fraction of queries whose nearest gallery identity is right.
    detected: float  #: fraction of renders in which the face was detected.
    genuine: np.ndarray  #: query-to-own-gallery distances.
    impostor: np.ndarray  #: query-to-other-gallery distances.

    @property
    def normalize(self) -> bool:
        return self.recognizer not in RAW_EMBEDDINGS

    @property
    def far_at_cutoff(self) -> float:
        """Fraction of impostor pairs accepted (``d < cutoff``) at the rounded cut-off."""
        return float((self.impostor < self.cutoff).mean())

    @property
    def tar_at_cutoff(self) -> float:
        """Fraction of genuine pairs accepted (``d < cutoff``)."""
        return float((self.genuine < self.cutoff).mean()) if self.genuine.size else 0.0

    def entry(self) -> dict[str, Any]:
        """The ``cutoffs.json`` entry (rates in whole percent)."""
        return {"cutoff": self.cutoff, "normalize": self.normalize, "far": self.far,
                "tar_at_cutoff": round(self.tar_at_cutoff, 2), "rank1": round(self.rank1, 2)}

    def record(self) -> dict[str, Any]:
        """The provenance of the entry: the exact threshold and the pair counts behind the rates."""
        return {**self.entry(), "threshold": self.threshold, "far_at_cutoff": round(self.far_at_cutoff, 6),
                "rank1_exact": self.rank1, "detected": self.detected,
                "genuine_accepted": int((self.genuine < self.cutoff).sum()), "genuine_pairs": int(self.genuine.size),
                "impostor_accepted": int((self.impostor < self.cutoff).sum()),
                "impostor_pairs": int(self.impostor.size)}


def check_settings(recognizers: Sequence[str], far: float, avatars: int | None = None) -> None:
    """Refuse bad settings before anything is rendered (:class:`SpecError` naming the option)."""
    bad = [r for r in recognizers if r not in RECOGNIZERS]
    if not recognizers or bad or len(set(recognizers)) != len(recognizers):
        raise SpecError("--recognizers", f"expected distinct names among {', '.join(RECOGNIZERS)}, "
                                         f"got {','.join(recognizers)!r}")
    if not 0.0 < far < 1.0:
        raise SpecError("--far", f"expected a false-accept rate in (0, 1), got {far!r}")
    if avatars is not None and avatars < 2:
        raise SpecError("--avatars", f"need at least 2 avatars (impostor pairs), got {avatars}")


def calibrate_cutoff(recognizer: str, genuine: np.ndarray, impostor: np.ndarray, rank1: float,
                     detected: float = 1.0, far: float = FAR, decimals: int = DECIMALS) -> CutoffCalibration:
    """The cut-off of ``recognizer`` from its study's distances (1-d arrays)."""
    impostor = np.asarray(impostor, dtype=np.float64).ravel()
    if not impostor.size or not np.isfinite(impostor).all():
        raise SpecError(recognizer, "no usable impostor pairs (were the faces detected?)")
    threshold = threshold_at_far(impostor, far)
    return CutoffCalibration(recognizer, float(far), threshold, round(threshold, decimals), int(decimals),
                             float(rank1), float(detected), np.asarray(genuine, dtype=np.float64).ravel(), impostor)


def calibrate_face_cutoffs(study: Callable[[str], Any], recognizers: Sequence[str] = RECOGNIZERS,
                           far: float = FAR, decimals: int = DECIMALS) -> list[CutoffCalibration]:
    """Run ``study(recognizer)`` for each recognizer (a result with ``genuine``, ``impostor``, ``rank1``,
    ``detected``) and calibrate its cut-off at ``far``."""
    check_settings(recognizers, far)
    out = []
    for r in recognizers:
        res = study(r)
        out.append(calibrate_cutoff(r, res.genuine, res.impostor, res.rank1, res.detected, far, decimals))
    return out


def about(settings: dict[str, Any], far: float, provenance_name: str) -> str:
    """The table's ``about`` line: what the cut-offs are and how they were measured."""
    return (f"Cut-off distance a of eq. (4)-(5) per recognizer: the distance with a {far:.3g} false-accept rate "
            f"on held-out avatars (run_identity_study({settings.get('avatars')}, seed={settings.get('seed')}, "
            "recognizer=...): gallery 1 m frontal at 400x300, queries under another light, +-10 deg yaw, mild "
            "expression; dlib HOG detections). Embeddings other than dlib's are L2-normalised first. Written by "
            f"`hcgym calibrate face-cutoffs` ({provenance_name} beside it).")


def provenance_path(path: str | Path) -> Path:
    """``PROVENANCE_<stem>.json`` beside the table."""
    path = Path(path)
    return path.with_name(f"PROVENANCE_{path.stem}.json")


def check_out(path: str | Path) -> Path:
    """Refuse an output path that cannot take the table (before anything is computed)."""
    path = Path(path)
    if path.suffix != ".json" or path.is_dir():
        raise SpecError("--out", f"expected the path of a .json file, got {path}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SpecError("--out", f"{parent} is not a folder")
            break
    return path


def write_cutoffs(path: str | Path, calibrations: Sequence[CutoffCalibration], settings: dict[str, Any]
                  ) -> tuple[Path, Path]:
    """Write the table (``path``) and its provenance (``PROVENANCE_<stem>.json`` beside it), each atomically.

    ``settings`` (command, seed, avatars, ...) go into the provenance as they are; keep them free of
    dates and timings so that the same run gives the same bytes.
    """
    from hcgym.paths import atomic_write_bytes

    path, prov = check_out(path), provenance_path(path)
    if not calibrations:
        raise SpecError("--recognizers", "nothing calibrated")
    far = calibrations[0].far
    table: dict[str, Any] = {"about": about(settings, far, prov.name)}
    table.update({c.recognizer: c.entry() for c in calibrations})
    record = {**settings, "far": far, "decimals": calibrations[0].decimals,
              "recognizers": {c.recognizer: c.record() for c in calibrations}}
    atomic_write_bytes(prov, (json.dumps(record, indent=1) + "\n").encode())
    atomic_write_bytes(path, _table_bytes(table))
    return path, prov


def _table_bytes(table: dict[str, Any]) -> bytes:
    """One line per recognizer, as the hand-written table had."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in table.items()]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()

