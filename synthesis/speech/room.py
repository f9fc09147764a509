"""What a robot's microphone hears in a room: pyroomacoustics shoebox rooms, image-source method.

A :class:`Room` is a shoebox (``dims`` in metres, x/y/z from a corner, z up) with one omnidirectional
microphone; its walls are given as a target reverberation time (``rt60``, seconds: the energy
absorption and image-source order come from :func:`pyroomacoustics.inverse_sabine`), as one energy
absorption coefficient, or as a named pyroomacoustics material (``"plasterboard"``, ``"carpet_thin"``).
:func:`hear` places sources (the talker, other talkers, a noise source) in it and returns the
microphone signal: propagation delay, 1/r attenuation and reverberation all come from the simulation.
:func:`rt60_of` measures the reverberation time of a room's simulated impulse response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hcgym.errors import SpecError

SPEED_OF_SOUND = 343.0  # m/s, pyroomacoustics' default at 20 degrees C (checked against its constants)
MAX_ORDER_CAP = 100  # image-source order limit when it is derived from the walls (simulation time)
DEFAULT_RT60 = 0.4  # s
MIN_SOURCE_DISTANCE = 0.1  # m between a source and the microphone


def _pra():
    import pyroomacoustics as pra

    return pra


def materials() -> tuple[str, ...]:
    """The wall materials pyroomacoustics knows (its absorption table)."""
    table = _pra().parameters.materials_data["absorption"]
    return tuple(sorted(name for group in table.values() for name in group))


@dataclass(frozen=True)
class Room:
    """A shoebox room with one microphone (all lengths in metres).

    Give at most one of ``rt60`` (target reverberation time, s), ``absorption`` (energy absorption
    coefficient of every wall, in (0, 1]) or ``material`` (a name from :func:`materials`); none means
    ``rt60=DEFAULT_RT60``.
    ``max_order`` overrides the image-source order; by default it is what ``inverse_sabine`` gives for
    ``rt60`` (or for the Sabine RT60 of the walls), capped at ``MAX_ORDER_CAP``.
    """

    dims: tuple[float, float, float] = (6.0, 5.0, 3.0)
    mic: tuple[float, float, float] = (3.0, 2.5, 1.2)
    rt60: float | None = None
    absorption: float | None = None
    material: str | None = None
    max_order: int | None = None

    def __post_init__(self) -> None:
        dims = np.asarray(self.dims, dtype=float)
        if dims.shape != (3,) or not np.all(np.isfinite(dims)) or np.any(dims < 1.0) or np.any(dims > 50.0):
            raise SpecError("room.dims", f"expected three lengths in [1, 50] m, got {self.dims!r}")
        check_inside("room.mic", self.mic, self.dims)
        given = [name for name in ("rt60", "absorption", "material") if getattr(self, name) is not None]
        if len(given) > 1:
            raise SpecError("room", f"give one of rt60, absorption, material, not {' and '.join(given)}")
        if not given:
            object.__setattr__(self, "rt60", DEFAULT_RT60)
        if self.rt60 is not None and not 0.05 <= self.rt60 <= 3.0:
            raise SpecError("room.rt60", f"expected a reverberation time in [0.05, 3] s, got {self.rt60!r}")
        if self.absorption is not None and not 0.0 < self.absorption <= 1.0:
            raise SpecError("room.absorption", f"expected an energy absorption in (0, 1], got {self.absorption!r}")
        if self.material is not None and self.material not in materials():
            raise SpecError("room.material", f"unknown material {self.material!r} (allowed: "
                                             f"{', '.join(materials())})")
        if self.max_order is not None and (isinstance(self.max_order, bool) or not isinstance(self.max_order, int)
                                           or not 0 <= self.max_order <= 200):
            raise SpecError("room.max_order", f"expected an integer in [0, 200], got {self.max_order!r}")
        if self.rt60 is not None:
            try:
                _pra().inverse_sabine(self.rt60, list(self.dims))
            except ValueError:
                raise SpecError("room.rt60", f"{self.rt60} s is too short for a {self.dims} m room "
                                             "(the walls would need to absorb more than all energy)") from None


def check_inside(field: str, point: Sequence[float], dims: Sequence[float], margin: float = 0.01) -> np.ndarray:
    """``point`` as a (3,) array, or SpecError naming ``field`` when it is not inside the room by ``margin`` m."""
    arr = np.asarray(point, dtype=float)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(arr < margin) or \
            np.any(arr > np.asarray(dims, dtype=float) - margin):
        raise SpecError(field, f"expected a point (x, y, z) inside the {tuple(dims)} m room, got {point!r}")
    return arr


def _walls(room: Room) -> tuple[object, int]:
    """(pyroomacoustics material, image-source order) for ``room``."""
    pra = _pra()
    dims = list(room.dims)
    if room.rt60 is not None:
        absorption, order = pra.inverse_sabine(room.rt60, dims)
        material = pra.Material(float(absorption))
    else:
        material = pra.Material(float(room.absorption)) if room.absorption is not None else pra.Material(room.material)
        coeffs = np.asarray(material.energy_absorption["coeffs"], dtype=float)
        volume = float(np.prod(dims))
        surface = 2.0 * (dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
        sabine = 24.0 * np.log(10.0) * volume / (SPEED_OF_SOUND * surface * max(float(coeffs.mean()), 1e-3))
        radius = min(a * b / np.hypot(a, b) for a, b in ((dims[0], dims[1]), (dims[0], dims[2]), (dims[1], dims[2])))
        order = int(np.ceil(SPEED_OF_SOUND * sabine / radius - 1))
    if room.max_order is not None:
        return material, room.max_order
    return material, int(min(max(order, 0), MAX_ORDER_CAP))


def _shoebox(room: Room, sample_rate: int):
    material, order = _walls(room)
    return _pra().ShoeBox(list(room.dims), fs=sample_rate, materials=material, max_order=order)


def _filter_delay() -> int:
    """Samples by which pyroomacoustics delays every impulse response (half its fractional-delay filter)."""
    return int(_pra().constants.get("frac_delay_length")) // 2


def hear(room: Room, sources: Sequence[tuple[np.ndarray, Sequence[float], float]], *, sample_rate: int = 16_000,
         seed: int = 0, noise_db: float | None = None, duration_s: float | None = None) -> np.ndarray:
    """The microphone signal of ``room`` with ``sources`` playing; float32, shape ``(samples,)``.

    ``sources``: ``(signal, position_xyz, start_s)`` triples: a (samples,) float signal at
    ``sample_rate`` Hz, where it plays (m, inside the room) and when it starts (s). Time 0 of the output
    is time 0 of the sources (pyroomacoustics' filter delay is removed), so a source at distance r
    arrives r / 343 s after it starts. The output runs until the last reverberation has died away
    (the longest impulse response after the last source ends), or exactly ``duration_s`` when given.
    ``noise_db``: microphone self-noise, white, at that RMS level in dB re full scale (e.g. -60), drawn
    from ``seed``. Not clipped: loud sources may exceed [-1, 1].
    """
    if not sources:
        raise SpecError("sources", "expected at least one (signal, position, start_s) source")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 4_000 <= sample_rate <= 96_000:
        raise SpecError("sample_rate", f"expected an integer in [4000, 96000] Hz, got {sample_rate!r}")
    checked = []
    for i, source in enumerate(sources):
        if len(source) != 3:
            raise SpecError(f"sources[{i}]", "expected a (signal, position_xyz, start_s) triple")
        signal, position, start = source
        signal = np.asarray(signal, dtype=float)
        if signal.ndim != 1 or signal.size == 0 or not np.all(np.isfinite(signal)):
            raise SpecError(f"sources[{i}].signal", "expected a non-empty finite one-channel signal")
        where = check_inside(f"sources[{i}].position", position, room.dims)
        if np.linalg.norm(where - np.asarray(room.mic)) < MIN_SOURCE_DISTANCE:
            raise SpecError(f"sources[{i}].position", f"closer than {MIN_SOURCE_DISTANCE} m to the microphone")
        if not np.isfinite(start) or start < 0:
            raise SpecError(f"sources[{i}].start_s", f"expected a start time >= 0 s, got {start!r}")
        checked.append((signal, where, float(start)))
    if duration_s is not None and not 0 < duration_s <= 600:
        raise SpecError("duration_s", f"expected a duration in (0, 600] s, got {duration_s!r}")
    if noise_db is not None and not -200 < noise_db <= 20:
        raise SpecError("noise_db", f"expected a level in dB re full scale in (-200, 20], got {noise_db!r}")

    shoebox = _shoebox(room, sample_rate)
    for signal, where, start in checked:
        shoebox.add_source(where, signal=signal, delay=start)
    shoebox.add_microphone(np.asarray(room.mic, dtype=float))
    shoebox.simulate()
    out = np.asarray(shoebox.mic_array.signals[0], dtype=np.float64)[_filter_delay():]
    if duration_s is not None:
        size = int(round(duration_s * sample_rate))
        out = np.pad(out[:size], (0, max(0, size - out.size)))
    if noise_db is not None:
        out = out + np.random.default_rng(seed).standard_normal(out.size) * 10.0 ** (noise_db / 20.0)
    return out.astype(np.float32)


def impulse_response(room: Room, source: Sequence[float] | None = None, *, sample_rate: int = 16_000) -> np.ndarray:
    """The room's impulse response from ``source`` (default :func:`default_source`) to the microphone.

    Float64, shape ``(samples,)``, time 0 at index 0 (the filter delay removed).
    """
    where = check_inside("source", default_source(room) if source is None else source, room.dims)
    shoebox = _shoebox(room, sample_rate)
    shoebox.add_source(where)
    shoebox.add_microphone(np.asarray(room.mic, dtype=float))
    shoebox.compute_rir()
    return np.asarray(shoebox.rir[0][0], dtype=np.float64)[_filter_delay():]


def default_source(room: Room) -> np.ndarray:
    """A talker position for measurements: the microphone mirrored through the room centre, at 1.6 m height.

    Moved to 1 m from the microphone along x or y when the mirror point is too close.
    """
    dims, mic = np.asarray(room.dims, dtype=float), np.asarray(room.mic, dtype=float)
    point = np.array([dims[0] - mic[0], dims[1] - mic[1], min(1.6, dims[2] - 0.1)])
    if np.linalg.norm(point - mic) < 1.0:
        axis = int(np.argmax(dims[:2]))
        point[axis] = mic[axis] + (1.0 if mic[axis] + 1.0 < dims[axis] - 0.1 else -1.0)
    return np.clip(point, 0.1, dims - 0.1)


def rt60_of(room: Room, source: Sequence[float] | None = None, *, sample_rate: int = 16_000,
            decay_db: float = 30.0) -> float:
    """The room's measured reverberation time (s): Schroeder backward integration of the simulated
    impulse response (:func:`pyroomacoustics.experimental.measure_rt60`), the slope over the first
    ``decay_db`` dB of decay after -5 dB, extrapolated to 60 dB."""
    from pyroomacoustics.experimental import measure_rt60

    return float(measure_rt60(impulse_response(room, source, sample_rate=sample_rate), fs=sample_rate,
                              decay_db=decay_db))


def decay_time(signal: np.ndarray, sample_rate: int, drop_db: float = 20.0) -> float:
    """Seconds from the energy peak of ``signal`` until its Schroeder energy-decay curve has fallen ``drop_db``."""
    energy = np.square(np.asarray(signal, dtype=np.float64))
    curve = np.cumsum(energy[::-1])[::-1]
    start = int(np.argmax(energy))
    level = 10.0 * np.log10(np.maximum(curve, 1e-300) / max(curve[start], 1e-300))
    below = np.flatnonzero(level[start:] <= -drop_db)
    return float((below[0] if below.size else level.size - start) / sample_rate)
