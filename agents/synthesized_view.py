"""Active face recognition with synthesized facial views (OpenDR D3.2 section 2.4, Algorithm 1).

From the current real image ``I_r`` the robot synthesises the views it would get after moving one step
(15 degrees) either way in pan, ``I_s-`` and ``I_s+`` (same tilt), and feeds the three images to the face
recogniser:

1. If ``I_r`` has the highest face recognition confidence (FRC; ties go to the real image, Algorithm 1
   line 9: ``FRC >= FRC_i``), the robot stays and answers with the identity recognised in ``I_r``.
2. Otherwise it moves one step towards the best synthesised view and acquires a real image there.
3. If that image's FRC exceeds ``threshold``, it answers with its identity.
4. Else it synthesises one more step in the same direction; if the real image's FRC is higher than the
   synthesised one's (``FRC(I_r-) > FRC(I_s--)``) it answers with the real image's identity; otherwise
   it moves that step, acquires a real image and (at the last allowed move) answers with its identity,
   or goes back to 3.

The answer always comes from a real image; synthesised views only steer the moves. ``max_moves=2`` and
``step=15`` are the seed's procedure; more moves generalise it as the seed suggests. ``axes=("tilt",)``
does the same in tilt, ``("pan", "tilt")`` considers four neighbours at the first decision.

The decision logic is :func:`synthesized_view_decisions`, a generator that only sees images through the
``frc`` and ``synthesize`` callables, so it can be driven by scripted confidences
(:func:`run_decisions`); :class:`SynthesizedViewAgent` drives it step by step in
``hcgym/ActiveFaceRecognitionPan-v0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generator

import numpy as np

from hcgym.agents.base import Agent
from hcgym.errors import SpecError

Direction = tuple[float, float]  #: a camera move (pan, tilt) in degrees
AXES = ("pan", "tilt")


@dataclass
class Trace:
    """What one run of the procedure saw and did.

    Attributes:
        events: in order, ``("real", (pan, tilt) offset from the start, frc)``, ``("synth", offset, frc)``,
            ``("move", new offset, None)`` and finally ``("answer", offset, frc)`` (always a real image).
        moves: number of moves made.
        branch: which exit of the procedure answered: ``"stay"`` (the real image won the first
            comparison), ``"threshold"`` (a moved-to image passed the threshold), ``"real_beats_synth"``
            (a moved-to image beat the next synthesised view) or ``"max_moves"`` (the move budget ran out).
    """

    events: list[tuple[str, Direction, float | None]] = field(default_factory=list)
    moves: int = 0
    branch: str = ""

    @property
    def offset(self) -> Direction:
        """Where the camera ended, relative to the start (degrees)."""
        return self.events[-1][1] if self.events else (0.0, 0.0)


def _add(a: Direction, b: Direction) -> Direction:
    return (a[0] + b[0], a[1] + b[1])


def candidate_moves(step: float, axes: tuple[str, ...] = ("pan",)) -> list[Direction]:
    """The first-decision moves: -step and +step along each axis, in that order (ties go to the first)."""
    out: list[Direction] = []
    for ax in axes:
        out += [(-step, 0.0), (step, 0.0)] if ax == "pan" else [(0.0, -step), (0.0, step)]
    return out


def synthesized_view_decisions(image: Any, frc: Callable[[Any], float],
                               synthesize: Callable[[Any, float, float], Any], step: float = 15.0,
                               max_moves: int = 2, threshold: float = 0.0, axes: tuple[str, ...] = ("pan",),
                               trace: Trace | None = None,
                               synth_bias: float | Callable[[Any], float] = 0.0) -> Generator[Direction, Any, Trace]:
    """Algorithm 1 as a generator of camera moves.

    It yields each move (pan, tilt) in degrees and must be sent the real image acquired after it; when it
    returns (``StopIteration.value``), the robot answers with the identity recognised in the last real
    image. ``frc(image)`` is the face recognition confidence (higher = more confident; ``-inf`` = no face);
    ``synthesize(image, pan, tilt)`` is the imagined view after a move (``None`` if it cannot be made, which
    scores ``-inf``). ``synth_bias`` is added to the FRC of every synthesised view, a number or a callable
    of the synthesised view (e.g. :class:`SynthBias`): a synthesised view is scored as an estimate of the FRC
    of the real view it imagines, and synthesis shifts its FRC by a measurable amount on average (see
    :func:`hcgym.agents.evaluation.synth_view_calibration.calibrate_synth_bias`); 0 compares the raw FRCs.
    """
    if max_moves < 0:
        raise SpecError("max_moves", f"must be >= 0, got {max_moves!r}")
    bad = [a for a in axes if a not in AXES]
    if bad or not axes:
        raise SpecError("axes", f"expected a non-empty subset of {AXES}, got {axes!r}")
    bias = _bias_function(synth_bias)
    trace = trace if trace is not None else Trace()
    here: Direction = (0.0, 0.0)

    def score_synth(img: Any, move: Direction) -> float:
        view = synthesize(img, move[0], move[1])
        f = float("-inf") if view is None else float(frc(view)) + float(bias(view))
        trace.events.append(("synth", _add(here, move), f))
        return f

    f_real = float(frc(image))
    trace.events.append(("real", here, f_real))
    if max_moves == 0:
        trace.branch = "max_moves"
        trace.events.append(("answer", here, f_real))
        return trace
    scores = [(score_synth(image, m), m) for m in candidate_moves(step, axes)]
    best_f, move = max(scores, key=lambda s: s[0])  # max keeps the first of equal scores
    if f_real >= best_f:  # Algorithm 1, line 9: stay and answer with the real image
        trace.branch = "stay"
        trace.events.append(("answer", here, f_real))
        return trace
    while True:
        image = yield move
        here = _add(here, move)
        trace.moves += 1
        trace.events.append(("move", here, None))
        f_real = float(frc(image))
        trace.events.append(("real", here, f_real))
        if trace.moves >= max_moves:
            trace.branch = "max_moves"
            break
        if f_real > threshold:
            trace.branch = "threshold"
            break
        if f_real > score_synth(image, move):
            trace.branch = "real_beats_synth"
            break
    trace.events.append(("answer", here, f_real))
    return trace


@dataclass(frozen=True)
class SynthBias:
    """FRC correction of a synthesised view by the way it turns the face: ``toward`` when the move turns the
    face toward the camera (smaller estimated ``|yaw|``, see
    :attr:`hcgym.synthesis.views.SynthesizedView.turns_toward_camera`), ``away`` otherwise, ``other`` for a
    view that carries no pose (a plain image)."""

    toward: float = 0.0
    away: float = 0.0
    other: float = 0.0

    def __post_init__(self) -> None:
        for name in ("toward", "away", "other"):
            if not np.isfinite(getattr(self, name)):
                raise SpecError(f"synth_bias.{name}", f"must be a finite number, got {getattr(self, name)!r}")

    def __call__(self, view: Any) -> float:
        toward = getattr(view, "turns_toward_camera", None)
        return self.other if toward is None else (self.toward if toward else self.away)

    def scaled(self, k: float) -> "SynthBias":
        """The same correction times ``k`` (e.g. embedding distances to FRC units: ``k = 1 / a``)."""
        return SynthBias(self.toward * k, self.away * k, self.other * k)


def _bias_function(synth_bias: float | Callable[[Any], float]) -> Callable[[Any], float]:
    if callable(synth_bias):
        return synth_bias
    try:
        value = float(synth_bias)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value):
        raise SpecError("synth_bias", f"must be a finite number or a callable of the view, got {synth_bias!r}")
    return lambda view: value


def run_decisions(start: Any, acquire: Callable[[Direction], Any], frc: Callable[[Any], float],
                  synthesize: Callable[[Any, float, float], Any], **kwargs: Any) -> Trace:
    """Run :func:`synthesized_view_decisions` to the end; ``acquire(offset)`` returns the real image at an offset
    (degrees from the start)."""
    gen = synthesized_view_decisions(start, frc, synthesize, **kwargs)
    offset: Direction = (0.0, 0.0)
    try:
        move = next(gen)
        while True:
            offset = _add(offset, move)
            move = gen.send(acquire(offset))
    except StopIteration as stop:
        return stop.value


class SynthesizedViewAgent(Agent):
    """The synthesized-view agent for ``hcgym/ActiveFaceRecognitionPan-v0`` (or any env with the same actions).

    Args:
        frc: face recognition confidence of an image (e.g. ``env.unwrapped.recognizer.confidence``).
        synthesize: ``synthesize(image, pan, tilt)`` -> image, :class:`~hcgym.synthesis.views.SynthesizedView`
            or ``None`` (default: MediaPipe-mesh view synthesis, :class:`hcgym.synthesis.views.ViewSynthesizer`);
            ``frc`` always receives an image (a synthesised view's ``image``).
        step, max_moves, threshold, axes, synth_bias: see :func:`synthesized_view_decisions`; ``step`` must
            equal the env's step.

    ``act`` returns the env's move actions and finally its *recognise* action; ``last_trace`` keeps the
    procedure's record of the episode.
    """

    name = "synthesized_view"

    def __init__(self, frc: Callable[[np.ndarray], float], synthesize: Callable | None = None, step: float = 15.0,
                 max_moves: int = 2, threshold: float = 0.0, axes: tuple[str, ...] = ("pan",),
                 synth_bias: float | Callable[[Any], float] = 0.0) -> None:
        if synthesize is None:
            from hcgym.synthesis.views import ViewSynthesizer

            synthesize = ViewSynthesizer()  # the face fit is shared by the views of one image

        self.frc, self.synthesize = frc, synthesize
        self.step, self.max_moves, self.threshold, self.axes = float(step), int(max_moves), float(threshold), tuple(axes)
        _bias_function(synth_bias)
        self.synth_bias = synth_bias
        candidate_moves(self.step, self.axes)
        self._gen: Generator | None = None
        self.last_trace: Trace | None = None

    @classmethod
    def for_env(cls, env, **kwargs: Any) -> "SynthesizedViewAgent":
        """The agent using an ``ActiveFaceRecognitionPan`` env's recogniser and step.

        Unless ``synth_bias`` is given, it is the calibrated correction of the env's detector and recogniser
        (:func:`calibrated_synth_bias`) in FRC units (distances divided by the gallery cut-off ``a``).
        """
        base = env.unwrapped
        kwargs.setdefault("step", base.step_deg)
        if "synth_bias" not in kwargs:
            kwargs["synth_bias"] = calibrated_synth_bias(base.detector_id, base.recognizer_id).scaled(
                1.0 / base.gallery_cutoff())
        return cls(lambda img: base.recognizer.confidence(img), **kwargs)

    def _frc_of_image(self, image: Any) -> float:
        """``frc`` of a real image or of a synthesised view's ``image``."""
        return self.frc(getattr(image, "image", image))

    def reset(self) -> None:
        self._gen, self.last_trace = None, None

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        from hcgym.envs.active_fr_pan import RECOGNISE, move_action

        try:
            if self._gen is None:
                self.last_trace = Trace()
                self._gen = synthesized_view_decisions(observation, self._frc_of_image, self.synthesize, self.step,
                                                       self.max_moves, self.threshold, self.axes, self.last_trace,
                                                       self.synth_bias)
                move = next(self._gen)
            else:
                move = self._gen.send(observation)
        except StopIteration:
            self._gen = None
            return RECOGNISE
        return move_action(move)


#: Calibrated synthesis biases, per "detector+recognizer" (see :func:`calibrated_synth_bias`).
CALIBRATION_FILE = Path(__file__).with_name("synthesized_view_calibration.json")


def calibrated_synth_bias(detector: str, recognizer: str) -> SynthBias:
    """How much (embedding distance) a synthesised view's gallery distance exceeds that of the real view at
    the same pose on average, for views that turn the face toward the camera (``toward``), away from it
    (``away``) and overall (``other``), calibrated for a detector and recogniser on calibration avatars
    (``hcgym evaluate synth-view --calibrate``); all 0 when that pair has not been calibrated."""
    import json

    table = json.loads(CALIBRATION_FILE.read_text())
    entry = table.get(f"{detector}+{recognizer}")
    if not entry:
        return SynthBias()
    return SynthBias(float(entry["toward"]), float(entry["away"]), float(entry["distance_bias"]))


class OracleMoveAgent(Agent):
    """Active recognition *without* synthesis, with an oracle: it moves ``max_moves`` steps towards the frontal
    view using the true pan (and tilt with ``axes``) from ``info``, then recognises. An upper bound on what
    the moves alone can give, not a method (a robot does not know the true head pose)."""

    name = "oracle_move"

    def __init__(self, step: float = 15.0, max_moves: int = 2, axes: tuple[str, ...] = ("pan",)) -> None:
        self.step, self.max_moves, self.axes = float(step), int(max_moves), tuple(axes)
        self._moves = 0

    def reset(self) -> None:
        self._moves = 0

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        from hcgym.envs.active_fr_pan import RECOGNISE, move_action

        if self._moves >= self.max_moves:
            return RECOGNISE
        for ax in self.axes:
            angle = float(info[ax])
            if abs(angle) >= self.step - 1e-9:
                self._moves += 1
                d = -self.step if angle > 0 else self.step
                return move_action((d, 0.0) if ax == "pan" else (0.0, d))
        return RECOGNISE


class RecogniseAgent(Agent):
    """The static baseline: recognise the first (query) image at once."""

    name = "static"

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        from hcgym.envs.active_fr_pan import RECOGNISE

        return RECOGNISE


__all__ = ["SynthesizedViewAgent", "OracleMoveAgent", "RecogniseAgent", "Trace", "synthesized_view_decisions",
           "run_decisions", "candidate_moves"]
