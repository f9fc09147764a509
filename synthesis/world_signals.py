"""The signals of a world that are not images: the ECG each wearer's chest gives and what the robot's microphone hears.

A world's humans may wear a heart monitor (``heart:``) and say words aloud (``say:``); the first robot carries the
microphone (``microphone: {mount: [x, y, z]}``, in its body frame) and the room's ``acoustics`` set the
reverberation and the background noise (see ``docs/motion.md``, "Heartbeats and spoken commands").
:func:`world_signals` turns that into ground truth for the signal sensors:

* one :class:`HeartTruth` per wearer: an :func:`~hcgym.synthesis.ecg.ecg_stream` whose heart rate and motion
  artefacts follow the person's behaviour timeline (:func:`~hcgym.synthesis.ecg.activity_from_timeline`), with
  the activity level (rest, walk, run) over time;
* the microphone signal: every word synthesized (espeak-ng) and played from the talker's mouth
  (:data:`MOUTH_HEIGHT` above where they stand when the word starts) in one pyroomacoustics shoebox of the room's
  size and acoustics (:func:`~hcgym.synthesis.speech.hear`), with one :class:`Utterance` per word: its label, its
  voiced span as it reaches the microphone by the direct path, and the talker's distance.

Levels are physical: the direct path falls as 1 / r, so a talker 1 m away arrives at the level of the dry voice
(reverberation adds to it). Everything flows from ``seed``.

Top layer of synthesis: it reads world specs (:mod:`hcgym.worlds.spec`) beside the bottom-layer ECG, speech and
motion modules; it drives no backend.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.synthesis.ecg import ACTION_ACTIVITY, LEVELS, ECGStream, activity_from_timeline, ecg_stream
from hcgym.synthesis.motion.timeline import HumanMotion, say_audio, say_spans
from hcgym.synthesis.speech import KEYWORDS, Room, hear, rt60_of
from hcgym.synthesis.speech.room import DEFAULT_RT60, MIN_SOURCE_DISTANCE, SPEED_OF_SOUND
from hcgym.worlds.spec import WorldSpec, load_world

#: Height (m) of a talker's mouth above where they stand.
MOUTH_HEIGHT = 1.55
#: Seconds of signal after the last word ends, when the duration comes from the words.
TAIL_S = 0.5
#: Metres kept between the shoebox walls and any talker or the microphone when the box is sized to hold them.
MARGIN = 0.5
#: Height (m) of the shoebox on open ground (no walls).
OPEN_HEIGHT = 3.0
MAX_AUDIO_S = 600.0


@dataclass(frozen=True)
class HeartTruth:
    """One person's wearable ECG: ``stream`` (the ECG with its beats, heart rate and rhythm windows) and
    ``activity``, ``(start_s, end_s, level)`` spans covering the stream, ``level`` one of rest, walk, run."""

    human: str
    stream: ECGStream
    activity: tuple[tuple[float, float, str], ...]

    def level_at(self, t: float) -> str:
        """The activity level (rest, walk or run) at ``t`` seconds (rest outside the spans)."""
        for start, end, level in self.activity:
            if start <= t < end:
                return level
        return "rest"


@dataclass(frozen=True)
class Utterance:
    """One word said in the world: ``label`` is the keyword (:data:`~hcgym.synthesis.speech.KEYWORDS`) or
    ``"unknown"``; ``start``/``end`` (s) its voiced span in the microphone signal by the direct path; ``distance``
    (m) from the mouth to the microphone at ``start``; ``speaker``: voice, variant, pitch, speed, volume."""

    human: str
    word: str
    label: str
    start: float
    end: float
    distance: float
    speaker: dict[str, Any]


@dataclass(frozen=True)
class WorldSignals:
    """The non-image signals of a world over ``duration`` s.

    ``hearts``: name -> :class:`HeartTruth` of every human with a ``heart``; ``audio``: (T,) float32 microphone
    signal at ``sample_rate`` Hz, T = round(duration * sample_rate) (``None`` when nobody says anything);
    ``utterances`` in time order; ``room``: the acoustic room (``dims`` and ``origin``, the shoebox's size and the
    world position of its corner, m; ``rt60`` target or ``absorption``/``material``; ``rt60_measured`` from its
    simulated impulse response, s, ``None`` without audio; ``mic`` world position; ``noise_db``).
    """

    duration: float
    sample_rate: int
    hearts: dict[str, HeartTruth]
    audio: np.ndarray | None
    utterances: tuple[Utterance, ...]
    room: dict[str, Any]

    def audio_window(self, start: float, end: float) -> np.ndarray:
        """Microphone samples of [start, end) s, float32 (round((end - start) * sample_rate),); zeros outside
        [0, duration] and everywhere when there is no audio."""
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise SpecError("window", f"expected finite start <= end seconds, got {start!r}, {end!r}")
        a = int(round(start * self.sample_rate))
        out = np.zeros(int(round(end * self.sample_rate)) - a, dtype=np.float32)
        if self.audio is not None:
            lo, hi = max(a, 0), min(a + out.size, self.audio.size)
            if hi > lo:
                out[lo - a:hi - a] = self.audio[lo:hi]
        return out


def world_signals(world: WorldSpec | str | Path, *, duration: float | None = None, seed: int = 0,
                  sample_rate: int = 16_000, rt60: float | None = None, noise_db: float | None = None,
                  distance_scale: float | None = None) -> WorldSignals:
    """The ECGs and the microphone signal of ``world`` (a :class:`WorldSpec`, a shipped world's name or a path).

    Args:
        duration: seconds (default: the end of the last behaviour segment or track, or of the last word plus
            :data:`TAIL_S`, whichever is later).
        seed: every random choice (each ECG from ``(seed, name)``, the microphone noise from ``seed``).
        sample_rate: of the audio, Hz.
        rt60, noise_db: override the world's acoustics (reverberation time in [0.05, 3] s; noise RMS in dB re
            full scale) for sweeps.
        distance_scale: multiply every talker's horizontal distance from the microphone by this factor (the
            shoebox grows to hold them, the acoustics stay those asked for).
    """
    spec = world if isinstance(world, WorldSpec) else load_world(world)
    _check(seed, sample_rate, duration, rt60, noise_db, distance_scale)
    motions = {h.name: HumanMotion(h.behaviour, None, h.position, h.heading, style_key=h.name)
               for h in spec.humans if h.behaviour is not None}
    talkers = [h for h in spec.humans if h.behaviour is not None and h.behaviour.say]
    spans = {h.name: say_spans(h.behaviour.say, sample_rate, spec.source) for h in talkers}
    if duration is None:
        ends = [h.behaviour.end for h in spec.humans if h.behaviour is not None]
        ends += [s[1] + TAIL_S for name in spans for s in spans[name]]
        duration = max([1.0, *ends])
    if talkers and duration > MAX_AUDIO_S:
        raise SpecError("duration", f"audio is simulated for at most {MAX_AUDIO_S:g} s, got {duration:g}", spec.source)

    hearts = {h.name: _heart(h, seed, float(duration)) for h in spec.humans if h.heart is not None}
    mic = _mic(spec)
    room: dict[str, Any] = {"mic": None if mic is None else tuple(float(v) for v in mic),
                            "noise_db": spec.room.acoustics.noise_db if noise_db is None else float(noise_db),
                            "dims": None, "origin": None, "rt60_measured": None}
    room.update(_walls(spec, rt60))
    if not talkers:
        return WorldSignals(float(duration), sample_rate, hearts, None, (), room)
    if mic is None:
        raise SpecError("robots", "spoken words need a robot to carry the microphone", spec.source)

    said = []  # (human, item, dry audio, mouth position)
    for h in talkers:
        for item in h.behaviour.say:
            xy = motions[h.name].placement(item["start"])[0]
            mouth = np.array([xy[0], xy[1], h.position[2] + MOUTH_HEIGHT])
            if distance_scale is not None:
                mouth[:2] = mic[:2] + distance_scale * (mouth[:2] - mic[:2])
            if np.linalg.norm(mouth - mic) < MIN_SOURCE_DISTANCE:
                raise SpecError(item["field"], f"the mouth is closer than {MIN_SOURCE_DISTANCE} m to the microphone",
                                spec.source)
            said.append((h.name, item, say_audio(item, sample_rate), mouth))
    shoebox, origin = _shoebox(spec, room, mic, [m for *_, m in said])
    room.update(dims=shoebox.dims, origin=tuple(float(v) for v in origin), rt60_measured=rt60_of(shoebox))
    audio = _hear(shoebox, said, origin, sample_rate, seed, room["noise_db"], float(duration))
    utterances = []
    for name, item, dry, mouth in said:
        distance = float(np.linalg.norm(mouth - mic))
        start = item["start"] + distance / SPEED_OF_SOUND
        utterances.append(Utterance(name, item["word"], item["word"].lower() if item["word"].lower() in KEYWORDS
                                    else "unknown", start, start + dry.size / sample_rate, distance,
                                    {k: item[k] for k in ("voice", "variant", "pitch", "speed", "volume")}))
    utterances.sort(key=lambda u: (u.start, u.human))
    return WorldSignals(float(duration), sample_rate, hearts, audio, tuple(utterances), room)


def _check(seed, sample_rate, duration, rt60, noise_db, distance_scale) -> None:
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError("seed", f"expected a non-negative integer, got {seed!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 4_000 <= sample_rate <= 96_000:
        raise SpecError("sample_rate", f"expected an integer in [4000, 96000] Hz, got {sample_rate!r}")
    if duration is not None and (not number(duration) or not 0 < duration <= 86_400):
        raise SpecError("duration", f"expected seconds in (0, 86400], got {duration!r}")
    if rt60 is not None and (not number(rt60) or not 0.05 <= rt60 <= 3.0):
        raise SpecError("rt60", f"expected a reverberation time in [0.05, 3] s, got {rt60!r}")
    if noise_db is not None and (not number(noise_db) or not -150 <= noise_db <= 0):
        raise SpecError("noise_db", f"expected a level in [-150, 0] dB re full scale, got {noise_db!r}")
    if distance_scale is not None and (not number(distance_scale) or not 0 < distance_scale <= 20):
        raise SpecError("distance_scale", f"expected a factor in (0, 20], got {distance_scale!r}")


def _derived_seed(seed: int, *key: str) -> int:
    return int.from_bytes(hashlib.sha256(":".join((str(int(seed)), *key)).encode()).digest()[:7], "big")


def _heart(human, seed: int, duration: float) -> HeartTruth:
    """The ECG of ``human`` (who has a ``heart``) over ``duration`` s and its activity levels."""
    activity = activity_from_timeline(human.behaviour.segments) if human.behaviour is not None else []
    h = human.heart
    stream = ecg_stream(activity, _derived_seed(seed, "heart", human.name), fs=h.fs, rhythm=h.rhythm,
                        abnormal_share=h.abnormal_share, snr_db=h.snr_db, duration=duration)
    return HeartTruth(human.name, stream, _levels(activity, duration))


def _levels(activity: list[tuple[float, float, str]], duration: float) -> tuple[tuple[float, float, str], ...]:
    """Non-overlapping (start, end, level) spans over [0, duration]: overlaps take the higher level, gaps rest."""
    def level(name: str) -> int:
        return LEVELS.index(name if name in LEVELS else ACTION_ACTIVITY[name][0])

    cuts = sorted({0.0, duration, *(min(max(t, 0.0), duration) for a, b, _ in activity for t in (a, b))})
    out: list[tuple[float, float, str]] = []
    for a, b in zip(cuts, cuts[1:]):
        mid = (a + b) / 2
        name = LEVELS[max([level(n) for s, e, n in activity if s <= mid < e], default=0)]
        if out and out[-1][2] == name:
            out[-1] = (out[-1][0], b, name)
        else:
            out.append((a, b, name))
    return tuple(out)


def _mic(spec: WorldSpec) -> np.ndarray | None:
    """World position (3,) of the first robot's microphone, or ``None`` without robots."""
    if not spec.robots:
        return None
    robot = spec.robots[0]
    c, s = math.cos(math.radians(robot.yaw)), math.sin(math.radians(robot.yaw))
    x, y, z = robot.microphone
    return np.asarray(robot.position, dtype=float) + np.array([c * x - s * y, s * x + c * y, z])


def _walls(spec: WorldSpec, rt60: float | None) -> dict[str, Any]:
    """The walls' acoustics: one of rt60 / absorption / material (the override, the world's, or the default)."""
    a = spec.room.acoustics
    if rt60 is not None:
        return {"rt60": float(rt60), "absorption": None, "material": None}
    if a.rt60 is None and a.absorption is None and a.material is None:
        return {"rt60": DEFAULT_RT60 if spec.room.walls else None, "absorption": None if spec.room.walls else 1.0,
                "material": None}
    return {"rt60": a.rt60, "absorption": a.absorption, "material": a.material}


def _shoebox(spec: WorldSpec, room: dict[str, Any], mic: np.ndarray,
             mouths: list[np.ndarray]) -> tuple[Room, np.ndarray]:
    """(shoebox, world position of its corner): the walled room, grown where talkers or the microphone lie
    outside it (open ground: a box round them)."""
    points = np.array([mic, *mouths])
    if spec.room.walls:
        lo = np.array([-spec.room.size[0] / 2, -spec.room.size[1] / 2, 0.0])
        hi = np.array([spec.room.size[0] / 2, spec.room.size[1] / 2, spec.room.wall_height])
    else:
        lo = np.array([*(points[:, :2].min(axis=0) - MARGIN), 0.0])
        hi = np.array([*(points[:, :2].max(axis=0) + MARGIN), OPEN_HEIGHT])
    lo = np.minimum(lo, points.min(axis=0) - MARGIN)
    hi = np.maximum(hi, points.max(axis=0) + MARGIN)
    lo[2] = 0.0
    dims = hi - lo
    if np.any(dims > 50.0):
        raise SpecError("room", f"the talkers and the microphone span {tuple(np.round(dims, 1))} m; the acoustic "
                                "room holds at most 50 m a side", spec.source)
    shoebox = Room(dims=tuple(float(v) for v in dims), mic=tuple(float(v) for v in mic - lo), rt60=room["rt60"],
                   absorption=room["absorption"], material=room["material"])
    return shoebox, lo


def _hear(shoebox: Room, said: list, origin: np.ndarray, sample_rate: int, seed: int, noise_db: float | None,
          duration: float) -> np.ndarray:
    """The microphone signal (T,) float32: the words of each talker standing at one place go in as one source
    (one impulse response per place); white noise at ``noise_db``."""
    groups: dict[tuple, list] = {}
    for name, item, dry, mouth in said:
        groups.setdefault((name, *np.round(mouth, 3)), []).append((item["start"], dry, mouth))
    sources = []
    for words in groups.values():
        first = min(start for start, _, _ in words)
        size = max(int(round((start - first) * sample_rate)) + dry.size for start, dry, _ in words)
        signal = np.zeros(size)
        for start, dry, _ in words:
            k = int(round((start - first) * sample_rate))
            signal[k:k + dry.size] += dry
        sources.append((signal, words[0][2] - origin, first))
    return hear(shoebox, sources, sample_rate=sample_rate, seed=_derived_seed(seed, "microphone"), noise_db=noise_db,
                duration_s=duration)


def plot_signals(signals: WorldSignals, path: str | Path) -> Path:
    """Write a PNG of ``signals``: per wearer the heart rate over the activity levels (shaded), and the microphone
    signal's level (dB, 50 ms frames) with each utterance's span and word, coloured by distance; returns ``path``."""
    from hcgym.paths import atomic_write_bytes
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    rows = len(signals.hearts) + (signals.audio is not None)
    if rows == 0:
        raise SpecError("signals", "nothing to plot: no wearers and no audio")
    ratios = [1.0] * len(signals.hearts) + [1.6] * (signals.audio is not None)
    fig, axes = plt.subplots(rows, 1, figsize=(12, 1.9 * sum(ratios) + 0.6), dpi=72, squeeze=False,
                             gridspec_kw={"height_ratios": ratios})
    shade = {"rest": 0.0, "walk": 0.12, "run": 0.28}
    for ax, heart in zip(axes[:, 0], signals.hearts.values()):
        st = heart.stream
        step = max(1, int(st.fs // 10))
        for a, b, level in heart.activity:
            ax.axvspan(a, b, color="k", alpha=shade[level], lw=0)
            ax.text((a + b) / 2, 182, level, ha="center", fontsize=8)
        ax.plot(st.t[::step], st.heart_rate[::step], color="tab:red", lw=0.8)
        ax.set_ylim(40, 195)
        ax.set_ylabel("bpm", fontsize=8)
        ax.set_title(f"{heart.human}: {st.meta['rhythm']}, heart rate over rest / walk / run", fontsize=9)
        ax.tick_params(labelsize=7)
    if signals.audio is not None:
        ax = axes[-1, 0]
        frame = signals.sample_rate // 20
        n = signals.audio.size // frame
        power = np.mean(signals.audio[:n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
        ax.plot((np.arange(n) + 0.5) * frame / signals.sample_rate, 10 * np.log10(power + 1e-12), color="k", lw=0.6)
        cmap = plt.get_cmap("viridis")
        far = max(u.distance for u in signals.utterances)
        for k, u in enumerate(signals.utterances):
            ax.axvspan(u.start, u.end, color=cmap(u.distance / far), alpha=0.35, lw=0)
            ax.text((u.start + u.end) / 2, -8 - 6 * (k % 3), u.word, ha="center", fontsize=6, rotation=90)
        ax.set_ylim(-90, 0)
        ax.set_ylabel("dB re full scale", fontsize=8)
        ax.set_title(f"microphone: {len(signals.utterances)} words, colour = distance (0-{far:.1f} m, "
                     f"yellow farthest); RT60 {signals.room['rt60_measured']:.2f} s measured", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("s", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    atomic_write_bytes(path, png_bytes(fig))
    return path
