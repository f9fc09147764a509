"""Synthesis-bias calibration of the synthesized-view agent (``hcgym evaluate synth-view --calibrate``).

A synthesised view is recognised a little worse than the real view at the same pose. :func:`calibrate_synth_bias`
measures by how much (embedding distance), overall and by whether the synthesised move turns the face toward the
camera, on the calibration avatars (:data:`CALIBRATION_AVATARS`, never the protocol's); :func:`run` renders them
and returns the table shipped as ``hcgym/agents/synthesized_view_calibration.json``, which
:func:`hcgym.agents.synthesized_view.calibrated_synth_bias` reads.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from hcgym.errors import SpecError

#: Calibration avatars of the view synthesis (the protocol draws its avatars from 2,000,000 up).
CALIBRATION_AVATARS = tuple(range(910000, 910006))
#: The detector and recognizer the shipped table is calibrated for (its key).
CALIBRATED_PAIR = "face/mediapipe-full+face/dlib"
#: Pans of the calibration grid are multiples of this step (degrees).
GRID_STEP = 15


def run(database_pans: tuple[int, ...] = (-15, 0, 15),
        query_pans: tuple[int, ...] = (-90, -75, -60, -45, -30, 30, 45, 60, 75, 90),
        tilts: tuple[int, ...] = (-30, -15, 0, 15, 30), size: tuple[int, int] = (384, 288),
        progress: bool = True) -> dict[str, Any]:
    """Render the calibration avatars on the pan grid spanning ``query_pans`` and ``database_pans`` and the
    ``tilts`` at ``size`` (W, H), measure the synthesis bias and return the calibration table (the shipped
    file's format: ``about`` and one entry per detector+recognizer)."""
    from hcgym.synthesis.multiview import MultiViewSettings, render_multiview_set

    pans = tuple(sorted(set(query_pans) | set(database_pans)))
    grid = tuple(range(min(pans), max(pans) + 1, GRID_STEP))
    settings = MultiViewSettings(pans=grid, tilts=tuple(sorted(tilts)), size=size)
    if progress:
        print(f"[synth-view] calibrating on avatars {list(CALIBRATION_AVATARS)}", flush=True)
    data = render_multiview_set(CALIBRATION_AVATARS, settings, progress=progress)
    entry = calibrate_synth_bias(data, database_pans=database_pans, progress=progress)
    entry["avatar_seeds"] = list(CALIBRATION_AVATARS)
    entry["command"] = "hcgym evaluate synth-view --calibrate"
    return {"about": "Synthesis bias of the synthesized-view agent per detector+recognizer: the mean of "
                     "d(synthesised view) - d(real view at the same pose), nearest gallery distances, "
                     "measured by hcgym.agents.evaluation.synth_view_calibration.calibrate_synth_bias on "
                     "calibration avatars.",
            CALIBRATED_PAIR: entry}


def table_bytes(table: dict[str, Any]) -> bytes:
    """The calibration file's content (JSON, ``indent=1``, a final newline)."""
    return (json.dumps(table, indent=1) + "\n").encode()


def calibrate_synth_bias(data, database_pans: tuple[int, ...] = (-15, 0, 15), step: int = 15, min_pan: int = 30,
                         detector: str = "face/mediapipe-full", recognizer: str = "face/dlib",
                         progress: bool = False) -> dict[str, Any]:
    """Measure how synthesis shifts the FRC: the mean of ``d(synthesised view) - d(real view)`` over pairs of
    a synthesised view ``step`` degrees either way in pan from every image with ``|pan| >= min_pan`` and the
    real view at that pose, both recognised (``d``: the nearest gallery distance; gallery = all persons of
    ``data`` at ``database_pans``, as in the protocol), overall and split by whether the synthesised move
    turns the face toward the camera (the synthesiser's own yaw estimate).

    Run it on calibration avatars, never on the persons it will be evaluated on. Returns ``distance_bias``
    (the overall mean), ``toward`` and ``away`` (the means of the two kinds) with the median, standard
    deviation and number of pairs.
    """
    from hcgym.envs.active_fr_pan import ActiveFaceRecognitionPanEnv
    from hcgym.synthesis.views import ViewSynthesizer

    env = ActiveFaceRecognitionPanEnv(dataset=data, step=step, database_pans=database_pans, detector=detector,
                                      recognizer=recognizer)
    env.reset(seed=0)
    rec = env.unwrapped.recognizer
    synthesize = ViewSynthesizer()
    jobs = [(p, s, i, j) for p in range(len(data.persons)) for s in range(data.n_series)
            for i, pan in enumerate(data.pans) if abs(pan) >= min_pan for j in range(len(data.tilts))
            if data.present[p, s, i, j]]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="synthesis bias", unit="image")
    diffs, toward, tried = [], [], 0
    for p, s, i, j in jobs:
        for off in (-step, step):
            target = data.pans[i] + off
            if target not in data.pans or not data.present[p, s, data.pans.index(target), j]:
                continue
            tried += 1
            view = synthesize(data.images[p, s, i, j], off, 0)
            if view is None:
                continue
            rs, rt = rec.recognise(view.image), rec.recognise(data.images[p, s, data.pans.index(target), j])
            if rs.label is not None and rt.label is not None:
                diffs.append(rs.distance - rt.distance)
                toward.append(view.turns_toward_camera)
    env.close()
    if not diffs:
        raise SpecError("data", "no pair of a synthesised and a real view with faces to calibrate on")
    d, tw = np.asarray(diffs), np.asarray(toward, dtype=bool)

    def mean(x: np.ndarray) -> float:
        return round(float(x.mean()), 4) if len(x) else 0.0

    return {"distance_bias": mean(d), "toward": mean(d[tw]), "away": mean(d[~tw]),
            "median": round(float(np.median(d)), 4), "std": round(float(d.std()), 4), "pairs": int(len(d)),
            "pairs_toward": int(tw.sum()), "pairs_away": int((~tw).sum()), "pairs_tried": tried, "min_pan": min_pan,
            "step": step, "database_pans": list(database_pans), "persons": list(data.persons)}

