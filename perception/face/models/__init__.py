"""Model files shipped with hcgym (trained by ``hcgym train face-embedder``; provenance beside them)."""

from __future__ import annotations

from pathlib import Path

from hcgym.errors import DependencyNotInstalled

HERE = Path(__file__).parent


def shipped_checkpoint() -> Path:
    """The shipped IRNet checkpoint (``irnet.pt``; ``irnet.pt.json``, ``exit_heads.pt``, ``irnet.onnx`` beside it)."""
    path = HERE / "irnet.pt"
    if not path.is_file():
        raise DependencyNotInstalled(f"the shipped face embedder is missing ({path}); reinstall hcgym or train one "
                                     "with `hcgym train face-embedder --out DIR` and pass --checkpoint DIR/irnet.pt")
    return path


def hcgym_embedder(checkpoint: str | Path | None = None):
    """The in-house face embedder sensor (``face/hcgym-irnet``): the shipped checkpoint unless one is given."""
    from hcgym.perception.face.irnet import HcgymFaceEmbedder

    return HcgymFaceEmbedder(checkpoint if checkpoint is not None else shipped_checkpoint())


def recognizer_cutoff(recognizer: str) -> tuple[float, bool]:
    """(cut-off ``a``, whether embeddings are L2-normalised first) calibrated for a recognizer on avatars.

    Read from ``cutoffs.json``, written by ``hcgym calibrate face-cutoffs``
    (:mod:`hcgym.perception.face.calibration`; ``PROVENANCE_cutoffs.json`` beside it).
    """
    import json

    table = json.loads((HERE / "cutoffs.json").read_text())
    if recognizer not in table:
        from hcgym.errors import SpecError

        known = ", ".join(k for k in table if k != "about")
        raise SpecError("recognizer", f"no calibrated cut-off for {recognizer!r} (calibrated: {known}); pass cutoff=")
    entry = table[recognizer]
    return float(entry["cutoff"]), bool(entry["normalize"])
