"""Spoken words from espeak-ng (the library bundled by ``espeakng-loader``), as float audio.

:func:`synthesize` says a text with a voice (``"en-us"``, ``"en-gb-scotland+m3"``: a language voice and
an optional variant) at a pitch, speed and volume, and returns float32 samples in [-1, 1] at the sample
rate asked for (espeak-ng speaks at 22,050 Hz; :func:`scipy.signal.resample_poly` converts).

espeak-ng carries state from one utterance to the next (pitch-flutter and wave phases, the echo
buffer, the C ``rand()`` stream), so in one process the same word comes out differently each time. The
library therefore runs in a small helper process (:mod:`.espeak_server`) that initialises it once and
answers every request from a forked copy of that initial state: the same request gives the same bytes
in any order, in any process. One helper per process, started on first use, guarded by a module lock;
a forked child (a multiprocessing worker) forgets its parent's helper and starts its own.
"""

from __future__ import annotations

import atexit
import json
import os
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np

from hcgym.errors import DependencyNotInstalled, SpecError

ESPEAK_RATE = 22_050  # Hz, espeak-ng's output rate
PITCH_RANGE = (0, 100)  # espeakPITCH: base pitch, 50 = the voice's normal
SPEED_RANGE = (80, 450)  # espeakRATE: words per minute
VOLUME_RANGE = (0, 200)  # espeakVOLUME: 100 = normal
INTONATION_RANGE = (0, 100)  # espeakRANGE: pitch range, 0 = monotone, 50 = normal
SAMPLE_RATE_RANGE = (4_000, 96_000)
MAX_TEXT = 2_000  # characters


@dataclass(frozen=True)
class VoiceInfo:
    """One voice of the bundled data: ``language`` is what :func:`synthesize` takes (``"en-gb-x-rp"``)."""

    language: str
    name: str  # "English (Received Pronunciation)"
    identifier: str  # file under espeak-ng-data/voices or lang: "gmw/en-GB-x-rp"; variants: "!v/f3"
    gender: str  # "male", "female" or "" (not stated)


class _Helper:
    """The helper process of this process (see the module docstring); call under ``_LOCK``."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:  # pragma: no cover - a declared dependency
            raise DependencyNotInstalled("espeak-ng synthesis needs the 'espeakng-loader' package") from error
        script = Path(__file__).with_name("espeak_server.py")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(script), espeakng_loader.get_library_path(),
             espeakng_loader.get_data_path()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        self.pid = os.getpid()

    def ask(self, request: dict) -> tuple[int, bytes]:
        """Send one request; (status, payload) as described in :mod:`.espeak_server`."""
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.read(8)
        if len(header) != 8:
            raise OSError("the espeak-ng helper process ended")
        status, size = struct.unpack("<II", header)
        return status, self.proc.stdout.read(size)

    def close(self) -> None:
        """End the helper (it exits when its stdin closes)."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self.pid == os.getpid():
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - the helper never ignores EOF
                self.proc.kill()


_LOCK = threading.Lock()
_HELPER: list[_Helper] = []  # zero or one helper owned by this process
_INHERITED: list[_Helper] = []  # a forked child keeps its parent's helper object here, closed, never used


def _forget_after_fork() -> None:
    global _LOCK
    _LOCK = threading.Lock()
    while _HELPER:
        helper = _HELPER.pop()
        helper.close()  # closes this child's copies of the pipes only; the parent's helper lives on
        _INHERITED.append(helper)


def _close_at_exit() -> None:
    with _LOCK:
        while _HELPER:
            _HELPER.pop().close()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(_close_at_exit)


def _ask(request: dict) -> bytes:
    """One request to the helper (started or restarted as needed); the payload, or RuntimeError."""
    with _LOCK:
        for attempt in range(2):
            if not _HELPER:
                _HELPER.append(_Helper())
            try:
                status, payload = _HELPER[0].ask(request)
                break
            except OSError:
                _HELPER.pop().close()
                if attempt:
                    raise
    if status != 0:
        raise RuntimeError(f"espeak-ng: {payload.decode('utf-8', 'replace')}")
    return payload


_GENDERS = {1: "male", 2: "female"}


@lru_cache(maxsize=1)
def _catalogue() -> tuple[tuple[VoiceInfo, ...], tuple[VoiceInfo, ...]]:
    found = json.loads(_ask({"op": "voices"}))
    voices: dict[str, VoiceInfo] = {}
    for entry in found["voices"]:
        language = entry["languages"][0]
        voices.setdefault(language, VoiceInfo(language, entry["name"], entry["identifier"],
                                              _GENDERS.get(entry["gender"], "")))
    variants = tuple(VoiceInfo(entry["identifier"].split("/", 1)[1], entry["name"], entry["identifier"],
                               _GENDERS.get(entry["gender"], "")) for entry in found["variants"])
    return tuple(sorted(voices.values(), key=lambda v: v.language)), tuple(sorted(variants, key=lambda v: v.language))


def voices(prefix: str = "") -> tuple[VoiceInfo, ...]:
    """The language voices of the bundled data whose ``language`` starts with ``prefix`` (e.g. ``"en"``)."""
    return tuple(v for v in _catalogue()[0] if v.language.startswith(prefix))


def variants() -> tuple[VoiceInfo, ...]:
    """The voice variants (``"f3"``, ``"m7"``, ``"Andy"``, ...) that may follow ``+`` in a voice name."""
    return _catalogue()[1]


def resolve_voice(voice: str) -> str:
    """The espeak-ng name (``"gmw/en-US+f3"``) of ``voice`` (``"en-us+f3"``); SpecError if unknown."""
    if not isinstance(voice, str) or not voice:
        raise SpecError("voice", f"expected a voice name such as 'en-us' or 'en-us+f3', got {voice!r}")
    language, _, variant = voice.partition("+")
    known = {v.language: v for v in voices()}
    if language not in known:
        english = ", ".join(v.language for v in voices("en"))
        raise SpecError("voice", f"unknown voice {language!r} (English voices: {english}; "
                                 f"{len(known)} in all, see voices())")
    name = known[language].identifier
    if variant:
        names = {v.language for v in variants()}
        if variant not in names:
            raise SpecError("voice", f"unknown variant {variant!r} (allowed: {', '.join(sorted(names))})")
        name += "+" + variant
    return name


def _check_int(field: str, value: object, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not bounds[0] <= value <= bounds[1]:
        raise SpecError(field, f"expected an integer in [{bounds[0]}, {bounds[1]}], got {value!r}")
    return int(value)


def synthesize(text: str, *, voice: str = "en-us", pitch: int = 50, speed: int = 170, volume: int = 100,
               intonation: int = 50, sample_rate: int = 16_000) -> np.ndarray:
    """Say ``text``; float32 samples in [-1, 1], shape ``(samples,)``, at ``sample_rate`` Hz.

    ``voice`` is a language voice with an optional variant (``"en-gb-scotland+m3"``, see :func:`voices`,
    :func:`variants`); ``pitch`` 0-100 (50 = the voice's own), ``speed`` 80-450 words per minute,
    ``volume`` 0-200 (100 = normal), ``intonation`` 0-100 (the pitch range; 0 = monotone, 50 = normal).
    The speech starts at the first sample and ends with espeak-ng's pause (about 0.3 s of silence at
    170 wpm). Deterministic: the same arguments give the same samples.
    """
    if not isinstance(text, str) or not text.strip() or "\0" in text or len(text) > MAX_TEXT:
        raise SpecError("text", f"expected a non-empty string of at most {MAX_TEXT} characters without NUL")
    request = {
        "op": "synth", "text": text, "voice": resolve_voice(voice),
        "pitch": _check_int("pitch", pitch, PITCH_RANGE), "rate": _check_int("speed", speed, SPEED_RANGE),
        "volume": _check_int("volume", volume, VOLUME_RANGE),
        "range": _check_int("intonation", intonation, INTONATION_RANGE),
    }
    rate = _check_int("sample_rate", sample_rate, SAMPLE_RATE_RANGE)
    samples = np.frombuffer(_ask(request), dtype="<i2").astype(np.float32) / 32768.0
    return resample(samples, ESPEAK_RATE, rate)


def resample(signal: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """``signal`` (samples,) from ``source_rate`` to ``target_rate`` Hz (polyphase), float32 clipped to [-1, 1]."""
    if source_rate == target_rate:
        return np.clip(signal, -1.0, 1.0).astype(np.float32)
    from scipy.signal import resample_poly

    common = gcd(source_rate, target_rate)
    up, down = target_rate // common, source_rate // common
    out = resample_poly(signal.astype(np.float64), up, down, window=_lowpass(up, down).copy())
    return np.clip(out, -1.0, 1.0).astype(np.float32)


@lru_cache(maxsize=8)
def _lowpass(up: int, down: int) -> np.ndarray:
    """The anti-aliasing filter :func:`scipy.signal.resample_poly` designs by default (Kaiser, beta 5), kept."""
    from scipy.signal import firwin

    rate = max(up, down)
    return firwin(2 * 10 * rate + 1, 1.0 / rate, window=("kaiser", 5.0))
