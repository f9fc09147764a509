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
Synthesis quality (:func:`~hcgym.agents.evaluation.synth_quality.synthesis_quality`): SSIM and dlib distances of
synthesised vs true views, and milliseconds per view. The synthesis bias the agent corrects for is calibrated by
:mod:`~hcgym.agents.evaluation.synth_view_calibration`; the table and figures are
:mod:`~hcgym.agents.evaluation.synth_view_report` (:func:`table_markdown`, :func:`figures`, re-exported here).
Protocol shape: :mod:`hcgym.report`.
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


def timed_synthesizer():
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


def load_dataset(folder, proto: SynthViewProtocol):
    """The multi-view set in ``folder`` (:func:`~hcgym.synthesis.multiview.read_folder`) to run ``proto`` on
    instead of rendering Set 1; its grid must hold the protocol's pans and tilts (errors name the field)."""
    from hcgym.synthesis.multiview import read_folder

    data = read_folder(folder)
    for name, angles, grid in (("database_pans", proto.database_pans, data.pans),
                               ("query_pans", proto.query_pans, data.pans), ("tilts", proto.tilts, data.tilts)):
        missing = sorted(set(angles) - set(grid))
        if missing:
            raise SpecError(name, f"{missing} not in the grid of {folder} ({list(grid)}); pass angles it holds")
    if len(data.persons) < 2:
        raise SpecError("dataset", f"{folder} holds {len(data.persons)} person(s); the gallery needs at least 2")
    return data


def run(proto: SynthViewProtocol = SynthViewProtocol(), progress: bool = True, data=None) -> dict[str, Any]:
    """Run the protocol; returns the results (accuracies in percent) and, under ``"_data"``/``"_quality"``,
    the rendered set and quality examples for figures (not JSON)."""
    from hcgym.agents.evaluation.synth_quality import synthesis_quality
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
    synthesize = timed_synthesizer()
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
    rendered = {"seed": proto.seed, "avatar_seeds": seeds, "set1_indices": test,
                "set1_avatar_seeds": [seeds[i] for i in test]} if "folder" not in data.meta else {
                "folder": data.meta["folder"]}
    results["set"] = {**rendered, "persons": list(data.persons),
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
