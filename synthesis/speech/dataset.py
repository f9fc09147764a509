"""A seeded keyword-spotting data set: one-second clips of synthetic speakers saying commands in rooms.

Each item is one of ``CLASSES``: a keyword, an unknown word or silence (background noise only). A word
is said by a speaker of the split's pool (:func:`~hcgym.synthesis.speech.keywords.speakers`), placed at
a random onset in the window, optionally convolved with a room impulse response from a bank of
shoebox rooms simulated for the split (:func:`rir_bank`), mixed with white, pink or babble noise at a
random SNR, and scaled to a random peak level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hcgym.errors import SpecError
from hcgym.synthesis.speech.keywords import (
    CLASSES,
    KEYWORDS,
    UNKNOWN_WORDS,
    check_split,
    speakers,
    spoken_word,
)
from hcgym.synthesis.speech.noise import NOISE_KINDS, babble_noise, pink_noise, rms, scale_to_snr, white_noise
from hcgym.synthesis.speech.room import SPEED_OF_SOUND, Room, impulse_response

PEAK_DB = (-20.0, -1.0)  # peak level of a clip, dB re full scale
SILENCE_DB = (-65.0, -20.0)  # RMS level of a silence clip, dB re full scale
BABBLE_WORDS = (4, 8)  # words summed in babble noise (inclusive range)
ROOM_RT60 = (0.15, 0.8)  # s, target RT60 of the bank's rooms
ROOM_DIMS = ((3.0, 9.0), (3.0, 7.0), (2.5, 3.5))  # m, ranges of x, y, z
MIC_HEIGHT = (0.8, 1.5)  # m, a robot's microphone
MOUTH_HEIGHT = (1.2, 1.9)  # m, a talker's mouth
DISTANCE = (0.5, 3.0)  # m, talker to microphone
DEFAULT_SPEAKERS = {"train": 64, "val": 24, "test": 24}
MAX_ITEMS = 1_000_000


@dataclass(frozen=True)
class BankRIR:
    """One simulated room of a bank: impulse response ``h`` (samples,) starting just before the direct sound."""

    h: np.ndarray
    rt60_target: float  # s
    rt60_measured: float  # s, T30 of h
    dims: tuple[float, float, float]  # m
    distance: float  # m, talker to microphone


@dataclass
class KeywordSet:
    """Clips ``audio`` (N, samples) float32 in [-1, 1], labels ``y`` (N,) int64 indexing ``classes``, and per item
    ``meta``: word ("" for silence), speaker, onset (s), duration (s), noise kind, snr_db, peak_db, and
    the room (rt60 measured, dims, distance) when reverberated."""

    audio: np.ndarray
    y: np.ndarray
    meta: list[dict]
    sample_rate: int = 16_000
    classes: tuple[str, ...] = field(default=CLASSES)

    def __len__(self) -> int:
        return int(self.y.shape[0])


def _draw_room(rng: np.random.Generator) -> tuple[Room, np.ndarray, float]:
    """A random room, a talker position in it and its distance to the microphone."""
    while True:
        dims = tuple(round(float(rng.uniform(lo, hi)), 3) for lo, hi in ROOM_DIMS)
        rt60 = round(float(rng.uniform(*ROOM_RT60)), 3)
        mic = np.array([rng.uniform(0.5, dims[0] - 0.5), rng.uniform(0.5, dims[1] - 0.5), rng.uniform(*MIC_HEIGHT)])
        for _ in range(50):
            distance = float(rng.uniform(*DISTANCE))
            height = float(rng.uniform(*MOUTH_HEIGHT))
            flat = np.sqrt(max(distance ** 2 - (height - mic[2]) ** 2, 0.0))
            angle = float(rng.uniform(0.0, 2.0 * np.pi))
            talker = np.array([mic[0] + flat * np.cos(angle), mic[1] + flat * np.sin(angle), height])
            if np.all(talker > 0.3) and np.all(talker < np.asarray(dims) - 0.3):
                try:
                    room = Room(dims=dims, mic=tuple(float(v) for v in mic), rt60=rt60)
                except SpecError:  # the RT60 is too short for this room: draw again
                    break
                return room, talker, float(np.linalg.norm(talker - mic))


@lru_cache(maxsize=8)
def rir_bank(seed: int, split: str, size: int = 24, sample_rate: int = 16_000) -> tuple[BankRIR, ...]:
    """``size`` simulated rooms for ``split``, drawn from ``seed`` (sizes ``ROOM_DIMS``, RT60 ``ROOM_RT60``,
    talker ``DISTANCE`` from the microphone). Each impulse response is cut 0.5 ms before the direct sound."""
    from pyroomacoustics.experimental import measure_rt60

    rng = np.random.default_rng([int(seed), check_split(split), 3])
    bank = []
    for _ in range(size):
        room, talker, distance = _draw_room(rng)
        h = impulse_response(room, talker, sample_rate=sample_rate)
        direct = int(round(distance / SPEED_OF_SOUND * sample_rate))
        h = h[max(0, direct - sample_rate // 2000):]
        h = h / np.max(np.abs(h))
        bank.append(BankRIR(h=h, rt60_target=float(room.rt60), rt60_measured=float(measure_rt60(h, fs=sample_rate,
                                                                                                 decay_db=30)),
                            dims=room.dims, distance=round(distance, 3)))
    return tuple(bank)


def _labels(count: int, rng: np.random.Generator, unknown_share: float, silence_share: float) -> np.ndarray:
    silence = int(round(count * silence_share))
    unknown = min(int(round(count * unknown_share)), count - silence)
    keywords = count - silence - unknown
    y = np.concatenate([np.arange(keywords) % len(KEYWORDS), np.full(unknown, CLASSES.index("unknown")),
                        np.full(silence, CLASSES.index("silence"))]).astype(np.int64)
    return y[rng.permutation(count)]


def _check(count, seed, sample_rate, seconds, snr_db, unknown_share, silence_share, n_speakers, rooms) -> None:
    def is_int(value):
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not is_int(count) or not 1 <= count <= MAX_ITEMS:
        raise SpecError("count", f"expected an integer in [1, {MAX_ITEMS}], got {count!r}")
    if not is_int(seed) or seed < 0:
        raise SpecError("seed", f"expected a non-negative integer, got {seed!r}")
    if not is_int(sample_rate) or not 8_000 <= sample_rate <= 48_000:
        raise SpecError("sample_rate", f"expected an integer in [8000, 48000] Hz, got {sample_rate!r}")
    if not isinstance(seconds, (int, float)) or not 0.25 <= seconds <= 10.0:
        raise SpecError("seconds", f"expected a clip length in [0.25, 10] s, got {seconds!r}")
    try:
        low, high = (float(v) for v in snr_db)
    except (TypeError, ValueError):
        low, high = 1.0, 0.0
    if not -20.0 <= low <= high <= 100.0:
        raise SpecError("snr_db", f"expected (low, high) with -20 <= low <= high <= 100 dB, got {snr_db!r}")
    for name, share in (("unknown_share", unknown_share), ("silence_share", silence_share)):
        if not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise SpecError(name, f"expected a fraction in [0, 1], got {share!r}")
    if unknown_share + silence_share > 1.0:
        raise SpecError("unknown_share", f"unknown_share + silence_share = {unknown_share + silence_share} > 1")
    if n_speakers is not None and (not is_int(n_speakers) or not 1 <= n_speakers <= 10_000):
        raise SpecError("n_speakers", f"expected an integer in [1, 10000], got {n_speakers!r}")
    if not is_int(rooms) or not 1 <= rooms <= 1_000:
        raise SpecError("rooms", f"expected an integer in [1, 1000], got {rooms!r}")


def keyword_dataset(count: int, seed: int, *, split: str = "train", sample_rate: int = 16_000, seconds: float = 1.0,
                    snr_db: tuple[float, float] = (5.0, 30.0), reverb: bool = True, unknown_share: float = 0.1,
                    silence_share: float = 0.1, n_speakers: int | None = None, rooms: int = 24,
                    progress: bool = False) -> KeywordSet:
    """``count`` clips of ``seconds`` at ``sample_rate`` Hz for ``split``, all drawn from ``seed``.

    Labels: exactly ``round(count * silence_share)`` silence and ``round(count * unknown_share)`` unknown
    items, the rest spread evenly over the ten keywords, in a seeded order. Speakers: ``n_speakers`` of
    the split's pool (default ``DEFAULT_SPEAKERS[split]``). Reverb: one of ``rooms`` simulated rooms per
    speech item. Noise: white, pink or babble (unknown words of other speakers), at an SNR uniform in
    ``snr_db`` relative to the reverberant word's RMS. Same arguments, same bytes.
    """
    code = check_split(split)
    _check(count, seed, sample_rate, seconds, snr_db, unknown_share, silence_share, n_speakers, rooms)
    pool = speakers(int(seed), int(n_speakers or DEFAULT_SPEAKERS[split]), split)
    bank = rir_bank(int(seed), split, int(rooms), int(sample_rate)) if reverb else ()
    y = _labels(int(count), np.random.default_rng([int(seed), code, 0]), unknown_share, silence_share)
    window = int(round(seconds * sample_rate))
    audio = np.zeros((count, window), dtype=np.float32)
    meta = []
    items = range(count)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=f"keywords {split}", unit="clip")
    for i in items:
        rng = np.random.default_rng([int(seed), code, 2, i])
        audio[i], info = _item(CLASSES[y[i]], rng, pool, bank, window, sample_rate, snr_db)
        meta.append(info)
    return KeywordSet(audio=audio, y=y, meta=meta, sample_rate=int(sample_rate))


def _noise(kind: str, window: int, rng: np.random.Generator, pool, sample_rate: int) -> np.ndarray:
    if kind == "white":
        return white_noise(window, rng)
    if kind == "pink":
        return pink_noise(window, rng)
    count = int(rng.integers(BABBLE_WORDS[0], BABBLE_WORDS[1] + 1))
    words = [spoken_word(UNKNOWN_WORDS[int(rng.integers(len(UNKNOWN_WORDS)))], pool[int(rng.integers(len(pool)))],
                         sample_rate) for _ in range(count)]
    return babble_noise(window, words, rng)


def _item(label: str, rng: np.random.Generator, pool, bank, window: int, sample_rate: int, snr_db) -> tuple:
    """One clip (window,) float32 and its meta."""
    kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    if label == "silence":
        level = float(rng.uniform(*SILENCE_DB))
        noise = _noise(kind, window, rng, pool, sample_rate)
        clip = noise / max(rms(noise), 1e-12) * 10.0 ** (level / 20.0)
        return np.clip(clip, -1.0, 1.0).astype(np.float32), {"word": "", "label": label, "noise": kind,
                                                             "rms_db": round(level, 2)}
    word = label if label != "unknown" else UNKNOWN_WORDS[int(rng.integers(len(UNKNOWN_WORDS)))]
    speaker = pool[int(rng.integers(len(pool)))]
    dry = spoken_word(word, speaker, sample_rate)[:window]
    onset = int(rng.integers(0, window - dry.size + 1))
    clean = np.zeros(window)
    clean[onset:onset + dry.size] = dry
    info = {"word": word, "label": label, "speaker": speaker.name, "gender": speaker.gender, "pitch": speaker.pitch,
            "speed": speaker.speed, "volume": speaker.volume, "onset": onset / sample_rate,
            "duration": dry.size / sample_rate, "noise": kind}
    if bank:
        from scipy.signal import oaconvolve

        room = bank[int(rng.integers(len(bank)))]
        clean = oaconvolve(clean, room.h[:window])[:window]
        info.update(rt60=round(room.rt60_measured, 3), room=room.dims, distance=room.distance)
    snr = float(rng.uniform(*snr_db))
    noise = scale_to_snr(rms(clean[onset:onset + dry.size]), _noise(kind, window, rng, pool, sample_rate), snr)
    mix = clean + noise
    peak = float(rng.uniform(*PEAK_DB))
    mix *= 10.0 ** (peak / 20.0) / max(float(np.max(np.abs(mix))), 1e-12)
    info.update(snr_db=round(snr, 2), peak_db=round(peak, 2))
    return mix.astype(np.float32), info
