"""OpenDR D3.2 section 2.4 protocol (Table 8) in simulation, and the view-synthesis quality study.

Protocol (``hcgym evaluate synth-view``): an HPID-like set of ``avatars`` (15) persons drawn from ``seed``,
two series each (light and expression), pans -90..90 and tilts -30..30 in 15 degree steps. "Set 1": 4 test
persons (also drawn from ``seed``). The gallery is the database split, pans {-15, 0, 15} x all tilts x both
series; the queries are the other pans {+-30, ..., +-90} x all tilts x both series, each the robot's first
image. Three ways to answer, all with the same recogniser (MediaPipe full-range detection + dlib 128-d
ResNet, nearest neighbour over the gallery):

* ``static``: the query image alone (the seed's "[41] Static");
* ``synthesized_view``: Algorithm 1 (:class:`~hcgym.agents.synthesized_view.SynthesizedViewAgent`);
* ``oracle_move``: always move ``max_moves`` steps towards the frontal view using the *true* pan, then
  answer: what moving alone can give, an upper bound rather than a method.

A diagnostic, ``algorithm1_true_views``, runs Algorithm 1 with the true views at +-15 degrees (available in
simulation) in place of the synthesised ones: the accuracy the decision rule would reach with perfect view
synthesis, which separates the synthesis's share of the gap from the rule's.

A method that needs no training leaves the other 11 persons unused (the seed's [119] trains on them).

Synthesis quality (:func:`synthesis_quality`): for every test image and pan offset (+-15, +-30 by default)
whose target view exists, SSIM on the face region (the ground-truth face box of the target view) and the
dlib embedding distance between the synthesised view and the true target view, beside the same numbers for
the unrotated source image; and milliseconds per synthesised view.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hcgym.agents.synthesized_view import SynthBias, calibrated_synth_bias
from hcgym.errors import SpecError

#: OpenDR D3.2 Table 8 (HPID, Set 1), accuracy in percent.
SEED_TABLE8 = {"active_drl_119": 62.2, "static": 58.33, "synthesized_view": 91.09}
METHODS = ("static", "oracle_move", "synthesized_view")
#: Diagnostic: Algorithm 1 fed the true views (rendered) in place of the synthesised ones.
TRUE_VIEWS = "algorithm1_true_views"
#: Diagnostic: the synthesized-view agent comparing raw FRCs (no synthesis-bias correction).
UNCORRECTED = "synthesized_view_uncorrected"
#: Diagnostic: one correction for every synthesised view (the calibrated overall mean).
CONSTANT_BIAS = "synthesized_view_constant_bias"
DIAGNOSTICS = (TRUE_VIEWS, UNCORRECTED, CONSTANT_BIAS)
#: Calibration avatars of the view synthesis (the protocol draws its avatars from 2,000,000 up).
CALIBRATION_AVATARS = tuple(range(910000, 910006))


@dataclass(frozen=True)
class SynthViewProtocol:
    """Settings of the protocol (angles in degrees)."""

    seed: int = 0
    avatars: int = 15
    test_persons: int = 4
    database_pans: tuple[int, ...] = (-15, 0, 15)
    query_pans: tuple[int, ...] = (-90, -75, -60, -45, -30, 30, 45, 60, 75, 90)
    tilts: tuple[int, ...] = (-30, -15, 0, 15, 30)
    step: int = 15
    max_moves: int = 2
    threshold: float = 0.0
    size: tuple[int, int] = (384, 288)
    hfov: float = 30.0
    detector: str = "face/mediapipe-full"
    recognizer: str = "face/dlib"
    quality_offsets: tuple[int, ...] = (-30, -15, 15, 30)
    quality: bool = True
    #: one distance bias for every synthesised view (None: the calibrated correction of detector + recognizer,
    #: by the way a view turns the face; 0: raw FRCs).
    synth_bias: float | None = None

    def __post_init__(self) -> None:
        if self.avatars < 2:
            raise SpecError("avatars", f"need at least 2, got {self.avatars}")
        if not 2 <= self.test_persons <= self.avatars:
            raise SpecError("test_persons", f"expected 2..{self.avatars} (the avatars), got {self.test_persons}")
        for name in ("database_pans", "query_pans", "tilts", "quality_offsets"):
            vals = getattr(self, name)
            if not vals or any(v % self.step for v in vals) or any(abs(v) > 90 for v in vals):
                raise SpecError(name, f"expected multiples of the step ({self.step}) within +-90, got {vals!r}")
        if set(self.database_pans) & set(self.query_pans):
            raise SpecError("query_pans", "the query pans must differ from the database pans")
        if self.max_moves < 0:
            raise SpecError("max_moves", f"must be >= 0, got {self.max_moves}")
        if self.synth_bias is not None and not math.isfinite(self.synth_bias):
            raise SpecError("synth_bias", f"must be a finite distance, got {self.synth_bias!r}")

    @property
    def pans(self) -> tuple[int, ...]:
        """The camera grid: every step between the extreme database and query pans."""
        lo = min(*self.database_pans, *self.query_pans)
        hi = max(*self.database_pans, *self.query_pans)
        return tuple(range(lo, hi + 1, self.step))


def protocol_avatars(seed: int, n: int) -> list[int]:
    """The ``n`` avatar seeds of the HPID-like set of protocol seed ``seed`` (distinct, deterministic)."""
    rng = np.random.default_rng(np.random.SeedSequence([0x5E1F, int(seed)]))
    return [int(x) for x in 2_000_000 + rng.choice(1_000_000, n, replace=False)]


def set1_persons(seed: int, n: int, k: int) -> list[int]:
    """Indices of the ``k`` test persons ("Set 1") among the ``n`` avatars of protocol seed ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([0x5E1F, int(seed), 1]))
    return sorted(int(i) for i in rng.choice(n, k, replace=False))


# ------------------------------------------------------------------ quality
def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) of two RGB or grey images."""
    import cv2

    def grey(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        return x @ np.array([0.299, 0.587, 0.114]) if x.ndim == 3 else x

    x, y = grey(a), grey(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def _crop(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    x0, y0 = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
    x1, y1 = min(int(math.ceil(box[2])), w), min(int(math.ceil(box[3])), h)
    return img[y0:y1, x0:x1]


def synthesis_quality(data, pipeline, offsets=(-30, -15, 15, 30), axis: str = "pan", progress: bool = False,
                      examples: int = 0) -> dict[str, Any]:
    """SSIM and dlib distances of synthesised vs true views (and of the unrotated source vs true), per offset.

    Args:
        data: a :class:`~hcgym.synthesis.multiview.MultiViewSet` (with ``boxes``: face boxes of every view;
            without them, the detector's box on the true view is used).
        pipeline: a :class:`~hcgym.perception.face.pipeline.FacePipeline` (its cache is shared).
        offsets: camera moves in degrees along ``axis``.
        examples: keep this many (source, synthesised, true) triples per offset, for figures.
    """
    from hcgym.synthesis.views import face_landmarks, synthesize_view

    recs: dict[int, dict[str, list]] = {o: {"ssim_synth": [], "ssim_source": [], "d_synth": [], "d_source": [],
                                            "no_face": 0, "no_mesh": 0, "n": 0, "examples": []} for o in offsets}
    ms: list[float] = []
    grid = data.pans if axis == "pan" else data.tilts
    jobs = []
    for p in range(len(data.persons)):
        for s in range(data.n_series):
            for i, pan in enumerate(data.pans):
                for j, tilt in enumerate(data.tilts):
                    if data.present[p, s, i, j]:
                        jobs.append((p, s, pan, tilt))
    it = jobs
    if progress:
        from tqdm import tqdm

        it = tqdm(jobs, desc="synthesis quality", unit="image")
    for p, s, pan, tilt in it:
        src = data.image(p, s, pan, tilt)
        targets = []
        for o in offsets:
            tp, tt = (pan + o, tilt) if axis == "pan" else (pan, tilt + o)
            if (tp if axis == "pan" else tt) in grid and data.present[(p, s, *data.index(tp, tt))]:
                targets.append((o, tp, tt))
        if not targets:
            continue
        t0 = time.perf_counter()
        lm = face_landmarks(src)
        fit_ms = 1000 * (time.perf_counter() - t0)
        v_src, _ = pipeline.embed(src)
        for o, tp, tt in targets:
            r = recs[o]
            r["n"] += 1
            if lm is None:
                r["no_mesh"] += 1
                continue
            t0 = time.perf_counter()
            view = synthesize_view(src, o if axis == "pan" else 0.0, o if axis == "tilt" else 0.0, lm)
            ms.append(1000 * (time.perf_counter() - t0) + fit_ms / len(targets))
            true = data.image(p, s, tp, tt)
            box = data.box(p, s, tp, tt)
            if box is None:
                _, box = pipeline.embed(true)
            if box is not None:
                r["ssim_synth"].append(ssim(_crop(view.image, box), _crop(true, box)))
                r["ssim_source"].append(ssim(_crop(src, box), _crop(true, box)))
            v_true, _ = pipeline.embed(true)
            v_syn, _ = pipeline.embed(view.image)
            if v_true is None or v_syn is None or v_src is None:
                r["no_face"] += 1
            else:
                r["d_synth"].append(float(np.linalg.norm(v_syn - v_true)))
                r["d_source"].append(float(np.linalg.norm(v_src - v_true)))
            if len(r["examples"]) < examples and tilt == 0:
                r["examples"].append((src, view, true, (p, s, pan, tilt)))
    out: dict[str, Any] = {"offsets": {}, "ms_per_view": {"median": float(np.median(ms)) if ms else float("nan"),
                                                          "mean": float(np.mean(ms)) if ms else float("nan"),
                                                          "n": len(ms)}}
    for o, r in recs.items():
        d_s, d_0 = np.asarray(r["d_synth"]), np.asarray(r["d_source"])
        out["offsets"][str(o)] = {
            "pairs": r["n"], "no_mesh": r["no_mesh"], "no_face": r["no_face"],
            "ssim_synth": _mean(r["ssim_synth"]), "ssim_source": _mean(r["ssim_source"]),
            "dlib_synth_vs_true": _mean(d_s), "dlib_source_vs_true": _mean(d_0),
            "synth_closer_fraction": float((d_s < d_0).mean()) if len(d_s) else float("nan"),
            "pairs_with_faces": int(len(d_s)),
        }
    out["examples"] = {str(o): r["examples"] for o, r in recs.items()}
    return out


def _mean(v) -> float:
    v = np.asarray(v, dtype=np.float64)
    return float(v.mean()) if v.size else float("nan")


# ------------------------------------------------------------------ protocol
@dataclass
class QueryResult:
    method: str
    person: int
    series: int
    pan: int
    tilt: int
    correct: bool
    moves: int
    final_pan: int
    branch: str = ""


def run_queries(env, agent, method: str, queries, progress: bool = False) -> list[QueryResult]:
    """Play each query (person, series, pan, tilt) as one episode of ``env`` with ``agent``."""
    it = queries
    if progress:
        from tqdm import tqdm

        it = tqdm(queries, desc=method, unit="query")
    out = []
    for person, series, pan, tilt in it:
        obs, info = env.reset(options={"person": person, "series": series, "pan": pan, "tilt": tilt})
        agent.reset()
        while True:
            obs, _, term, trunc, info = env.step(agent.act(obs, info))
            if term or trunc:
                break
        trace = getattr(agent, "last_trace", None)
        out.append(QueryResult(method, person, series, pan, tilt, bool(info.get("correct", False)), info["moves"],
                               info["pan"], trace.branch if trace is not None else ""))
    return out


def _timed_synthesizer():
    """A ``synthesize(image, pan, tilt)`` -> :class:`~hcgym.synthesis.views.SynthesizedView` callable (a
    :class:`~hcgym.synthesis.views.ViewSynthesizer`: face fit shared by the views of one image) that records
    the milliseconds per view in ``.ms``."""
    from hcgym.synthesis.views import ViewSynthesizer

    synth = ViewSynthesizer()

    def synthesize(img, pan, tilt):
        t0 = time.perf_counter()
        view = synth(img, pan, tilt)
        synthesize.ms.append(1000 * (time.perf_counter() - t0))
        return view

    synthesize.ms = []
    return synthesize


def run_protocol(proto: SynthViewProtocol = SynthViewProtocol(), progress: bool = True, data=None) -> dict[str, Any]:
    """Run the protocol; returns the results (accuracies in percent) and, under ``"_data"``/``"_quality"``,
    the rendered set and quality examples for figures (not JSON)."""
    from hcgym.agents.synthesized_view import OracleMoveAgent, RecogniseAgent, SynthesizedViewAgent
    from hcgym.envs.active_fr_pan import ActiveFaceRecognitionPanEnv
    from hcgym.synthesis.multiview import MultiViewSettings, render_multiview_set

    t_start = time.time()
    seeds = protocol_avatars(proto.seed, proto.avatars)
    test = set1_persons(proto.seed, proto.avatars, proto.test_persons)
    settings = MultiViewSettings(pans=proto.pans, tilts=tuple(sorted(proto.tilts)), size=proto.size, hfov=proto.hfov)
    if data is None:
        if progress:
            print(f"[synth-view] rendering Set 1: avatars {[seeds[i] for i in test]} "
                  f"({len(settings.pans)} pans x {len(settings.tilts)} tilts x 2 series)", flush=True)
        data = render_multiview_set([seeds[i] for i in test], settings, progress=progress)
    t_render = time.time() - t_start
    env = ActiveFaceRecognitionPanEnv(dataset=data, step=proto.step, database_pans=proto.database_pans,
                                      start_pans=proto.query_pans, detector=proto.detector,
                                      recognizer=proto.recognizer, max_steps=proto.max_moves + 2)
    env.reset(seed=proto.seed)  # builds the gallery
    queries = [(p, s, pan, tilt) for p in range(len(data.persons)) for s in range(data.n_series)
               for pan in proto.query_pans for tilt in proto.tilts]
    synthesize = _timed_synthesizer()
    base = env.unwrapped
    calibrated = calibrated_synth_bias(proto.detector, proto.recognizer)
    bias = calibrated if proto.synth_bias is None else SynthBias(proto.synth_bias, proto.synth_bias, proto.synth_bias)
    frc_bias = bias.scaled(1.0 / base.recognizer.gallery.cutoff)

    def algorithm1(synth_bias, synth=synthesize) -> SynthesizedViewAgent:
        return SynthesizedViewAgent.for_env(env, synthesize=synth, max_moves=proto.max_moves,
                                            threshold=proto.threshold, synth_bias=synth_bias)

    agents = {"static": RecogniseAgent(), "oracle_move": OracleMoveAgent(proto.step, proto.max_moves),
              "synthesized_view": algorithm1(frc_bias),
              # True views carry no synthesis bias: the decision rule alone.
              TRUE_VIEWS: algorithm1(0.0, lambda img, pan, tilt: base.view_at(pan, tilt))}
    names = (*METHODS, TRUE_VIEWS)
    if bias != SynthBias():
        agents[UNCORRECTED] = algorithm1(0.0)
        names = (*names, UNCORRECTED)
    if proto.synth_bias is None and calibrated.other != 0:
        agents[CONSTANT_BIAS] = algorithm1(frc_bias.other)
        names = (*names, CONSTANT_BIAS)
    rows: list[QueryResult] = []
    timing = {}
    for name in names:
        t0 = time.time()
        rows += run_queries(env, agents[name], name, queries, progress)
        timing[name] = round(time.time() - t0, 1)
        if progress:
            acc = 100 * np.mean([r.correct for r in rows if r.method == name])
            print(f"[synth-view] {name}: {acc:.2f}%", flush=True)
    results: dict[str, Any] = {m: _acc([r for r in rows if r.method == m]) for m in names}
    results["per_pan"] = {m: {str(p): _acc([r for r in rows if r.method == m and r.pan == p])
                              for p in proto.query_pans} for m in names}
    results["per_tilt"] = {m: {str(t): _acc([r for r in rows if r.method == m and r.tilt == t])
                               for t in proto.tilts} for m in names}
    for m in ("synthesized_view", *DIAGNOSTICS):
        if m in names:
            results[f"{m}_decisions"] = _decisions([r for r in rows if r.method == m])
    results["synth_bias"] = {"distance": asdict(bias), "frc": asdict(frc_bias),
                             "source": "calibrated" if proto.synth_bias is None else "given"}
    results["synthesized_view_decisions"]["synthesis_ms_per_view_median"] = \
        float(np.median(synthesize.ms)) if synthesize.ms else float("nan")
    results["oracle_mean_moves"] = float(np.mean([r.moves for r in rows if r.method == "oracle_move"]))
    results["queries"] = len(queries)
    results["units"] = "percent correct (closed-set nearest neighbour over the Set 1 gallery)"
    results["seed_table8"] = SEED_TABLE8
    results["set"] = {"seed": proto.seed, "avatar_seeds": seeds, "set1_indices": test,
                      "set1_avatar_seeds": [seeds[i] for i in test], "persons": list(data.persons),
                      "pans": list(data.pans), "tilts": list(data.tilts), "series": data.n_series,
                      "gallery_images": int(len(env.unwrapped.recognizer.gallery._vectors))}
    results["protocol"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(proto).items()}
    results["cutoff"] = env.unwrapped.recognizer.gallery.cutoff
    quality = None
    if proto.quality:
        t0 = time.time()
        quality = synthesis_quality(data, env.unwrapped.recognizer.pipeline, proto.quality_offsets,
                                    progress=progress, examples=3)
        results["synthesis_quality"] = {k: v for k, v in quality.items() if k != "examples"}
        timing["quality"] = round(time.time() - t0, 1)
    timing["render"] = round(t_render, 1)
    results["seconds"] = {**timing, "total": round(time.time() - t_start, 1)}
    results["_data"] = data
    results["_quality"] = quality
    env.close()
    return results


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

    env = ActiveFaceRecognitionPanEnv(dataset=data, step=step, database_pans=database_pans, detector=detector,
                                      recognizer=recognizer)
    env.reset(seed=0)
    rec = env.unwrapped.recognizer
    synthesize = _timed_synthesizer()
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


def _decisions(rows: list[QueryResult]) -> dict[str, Any]:
    """Where Algorithm 1 ended: stayed, moved nearer the frontal view, moved away, or was blocked by the grid."""
    moved = [r for r in rows if r.moves > 0]
    return {
        "mean_moves": float(np.mean([r.moves for r in rows])) if rows else float("nan"),
        "branches": {b: sum(r.branch == b for r in rows) for b in ("stay", "threshold", "real_beats_synth", "max_moves")},
        "stayed": sum(r.branch == "stay" for r in rows),
        "ended_nearer_frontal": sum(abs(r.final_pan) < abs(r.pan) for r in moved),
        "ended_farther": sum(abs(r.final_pan) >= abs(r.pan) for r in moved),
        "blocked_at_grid_edge": sum(r.moves == 0 and r.branch != "stay" for r in rows),
    }


def _acc(rows: list[QueryResult]) -> float:
    return round(100.0 * float(np.mean([r.correct for r in rows])), 2) if rows else float("nan")


# ------------------------------------------------------------------ reports
def table_markdown(results: dict[str, Any]) -> str:
    """Markdown in the layout of OpenDR D3.2 Table 8, the seed's numbers beside, then per-pan accuracies."""
    seed = results.get("seed_table8", SEED_TABLE8)
    q = results["queries"]
    lines = ["Table 8 layout: active face recognition accuracy (%).", "",
             f"| Algorithm | hcgym simulation ({q} queries, Set 1) | seed (HPID, Set 1) |", "|---|---|---|",
             f"| [119] Active (DRL) | not part of this protocol | {seed['active_drl_119']:.1f}% |",
             f"| [41] Static | {results['static']:.2f}% | {seed['static']:.2f}% |",
             f"| Proposed Active (synthesized views) | {results['synthesized_view']:.2f}% | "
             f"{seed['synthesized_view']:.2f}% |",
             f"| Oracle moves toward frontal, no synthesis (upper bound, not a method) | {results['oracle_move']:.2f}% | "
             "— |"]
    if TRUE_VIEWS in results:
        lines.append(f"| Algorithm 1 fed the true views instead of synthesised ones (diagnostic) | "
                     f"{results[TRUE_VIEWS]:.2f}% | — |")
    if UNCORRECTED in results:
        lines.append(f"| Synthesized views compared by raw FRC, no bias correction (diagnostic) | "
                     f"{results[UNCORRECTED]:.2f}% | — |")
    if CONSTANT_BIAS in results:
        lines.append(f"| Synthesized views with one bias for every view (diagnostic) | "
                     f"{results[CONSTANT_BIAS]:.2f}% | — |")
    lines += ["",
             f"Gain of the synthesized-view agent over static: {results['synthesized_view'] - results['static']:+.2f} "
             f"points (seed: {seed['synthesized_view'] - seed['static']:+.2f}).", "",
             "Accuracy (%) by starting pan (all tilts, both series):", ""]
    pans = list(results["per_pan"]["static"])
    lines += ["| method | " + " | ".join(f"{p}°" for p in pans) + " |", "|---|" + "---|" * len(pans)]
    for m in (*METHODS, *DIAGNOSTICS):
        if m in results["per_pan"]:
            lines.append(f"| {m} | " + " | ".join(f"{results['per_pan'][m][p]:.1f}" for p in pans) + " |")
    sb = results.get("synth_bias")
    if sb:
        d, f = sb["distance"], sb["frc"]
        lines += ["", f"Synthesis-bias correction ({sb['source']}), embedding distance (FRC): views turning the "
                      f"face toward the camera {d['toward']:+.4f} ({f['toward']:+.3f}), away from it "
                      f"{d['away']:+.4f} ({f['away']:+.3f}), overall {d['other']:+.4f} ({f['other']:+.3f})."]
    for m in ("synthesized_view", *DIAGNOSTICS):
        dec = results.get(f"{m}_decisions")
        if dec:
            lines += ["", f"{m} decisions over {q} queries: stayed {dec['stayed']}, ended nearer the frontal view "
                          f"{dec['ended_nearer_frontal']}, ended farther {dec['ended_farther']}, blocked at the grid "
                          f"edge {dec['blocked_at_grid_edge']}; mean moves {dec['mean_moves']:.2f}; exits "
                          f"{dec['branches']}."]
    qual = results.get("synthesis_quality")
    if qual:
        lines += ["", "View synthesis against the true view at the target pose (face region SSIM; dlib 128-d "
                      "distance):", "",
                  "| pan offset | pairs | SSIM synthesised | SSIM source | dlib d synthesised–true | "
                  "dlib d source–true | synthesised closer |", "|---|---|---|---|---|---|---|"]
        for o, r in qual["offsets"].items():
            lines.append(f"| {int(o):+d}° | {r['pairs_with_faces']}/{r['pairs']} | {r['ssim_synth']:.3f} | "
                         f"{r['ssim_source']:.3f} | {r['dlib_synth_vs_true']:.3f} | {r['dlib_source_vs_true']:.3f} | "
                         f"{100 * r['synth_closer_fraction']:.0f}% |")
        lines += ["", f"Milliseconds per synthesised view (mesh fit shared between views of one image, CPU): "
                      f"median {qual['ms_per_view']['median']:.1f}."]
    return "\n".join(lines) + "\n"


def accuracy_figure(results: dict[str, Any], path) -> None:
    """Accuracy vs starting pan for the three methods (PNG); the database pans are shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pans = sorted(int(p) for p in results["per_pan"]["static"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    styles = {"static": ("s--", "tab:gray"), "oracle_move": ("^:", "tab:green"), "synthesized_view": ("o-", "tab:blue"),
              TRUE_VIEWS: ("x-.", "tab:orange"), UNCORRECTED: ("d:", "tab:purple"),
              CONSTANT_BIAS: ("v:", "tab:brown")}
    for m in (*METHODS, *DIAGNOSTICS):
        if m not in results["per_pan"]:
            continue
        st, col = styles[m]
        groups = [[p for p in pans if p < 0], [p for p in pans if p > 0]]
        first = True
        for side in groups:
            if not side:
                continue
            ax.plot(side, [results["per_pan"][m][str(p)] for p in side], st, color=col,
                    label=f"{m} ({results[m]:.1f}%)" if first else None)
            first = False
    db = results.get("protocol", {}).get("database_pans", [-15, 0, 15])
    ax.axvspan(min(db) - 7.5, max(db) + 7.5, color="0.9", zorder=0, label="database pans")
    ax.set_xlabel("starting pan (degrees)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 102)
    ax.set_xticks(sorted(set(pans) | set(db)))
    ax.legend(fontsize=7, loc="lower center")
    ax.set_title("Active face recognition in simulation (Set 1, all tilts)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def strip_figure(data, path, person: int = 0, series: int = 0, tilt: int = 0, sources=(0, 30, 45, 60, 75, 90),
                 offset: int = -15, crop: float = 0.75) -> None:
    """Rows = source pans; columns = real source, synthesised view after ``offset`` (toward frontal for positive
    pans), the true view there, and the synthesised-pixel mask (PNG)."""
    from PIL import Image, ImageDraw

    from hcgym.synthesis.views import synthesize_view

    h, w = data.images.shape[4:6]
    ch, cw = int(h * crop), int(h * crop)
    y0, x0 = (h - ch) // 2 + h // 40, (w - cw) // 2
    tiles = []
    for pan in sources:
        target = pan + offset
        if pan not in data.pans or target not in data.pans or tilt not in data.tilts:
            continue
        src = data.image(person, series, pan, tilt)
        view = synthesize_view(src, offset, 0.0)
        true = data.image(person, series, target, tilt)
        if view is None:
            syn, mask = np.zeros_like(src), np.zeros_like(src)
        else:
            syn = view.image
            mask = np.stack([view.source == 3, view.source == 1, view.source == 2], -1).astype(np.uint8) * 255
        row = [x[max(y0, 0):max(y0, 0) + ch, x0:x0 + cw] for x in (src, syn, true, mask)]
        tiles.append((pan, target, np.concatenate(row, 1)))
    if not tiles:
        return
    label_h = 14
    sheet = Image.new("RGB", (tiles[0][2].shape[1], (ch + label_h) * len(tiles)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (pan, target, row) in enumerate(tiles):
        y = k * (ch + label_h)
        sheet.paste(Image.fromarray(row), (0, y + label_h))
        for c, text in enumerate((f"real {pan:+d}", f"synthesised {target:+d}", f"real {target:+d}",
                                  "green seen/blue mirror/red inpaint")):
            draw.text((c * cw + 3, y + 1), text, fill=(0, 0, 0))
    sheet.save(path)


__all__ = ["SynthViewProtocol", "run_protocol", "synthesis_quality", "table_markdown", "accuracy_figure",
           "strip_figure", "protocol_avatars", "set1_persons", "ssim", "SEED_TABLE8", "run_queries"]
