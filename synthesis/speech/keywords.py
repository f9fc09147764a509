"""The spoken-command vocabulary (the 12-class Google Speech Commands set-up) and the synthetic speakers.

A :class:`Speaker` is an espeak-ng voice (an English accent), a variant (male/female voice quality),
a pitch, a speed and a volume. The variants are split into disjoint train / val / test pools, so test
speakers are voices never heard in training (as held-out avatars are for the vision sensors); the
accents are shared by all splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hcgym.errors import SpecError
from hcgym.synthesis.speech.espeak import synthesize
from hcgym.synthesis.speech.noise import active_span

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# the 25 auxiliary words of Google Speech Commands v2 and five more everyday words
UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "backward", "forward", "follow", "learn", "visual", "hello", "robot", "water", "music", "table",
)
CLASSES = KEYWORDS + ("unknown", "silence")
SPLITS = ("train", "val", "test")

# English accents of the bundled espeak-ng data (en-shaw, the Shavian-alphabet voice, is left out)
ACCENTS = ("en-us", "en-us-nyc", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029")
# variant -> gender, per split; "" is the accent voice itself. Variants that clip at normal volume,
# robots, whisper and the klatt-synthesiser voices are left out.
VARIANTS = {
    "train": {"": "male", "m1": "male", "m2": "male", "m3": "male", "m4": "male", "m5": "male", "Andy": "male",
              "Lee": "male", "Denis": "male", "Michael": "male", "adam": "male", "edward": "male", "max": "male",
              "michel": "male", "travis": "male", "f1": "female", "f2": "female", "f3": "female",
              "Alicia": "female", "Annie": "female", "aunty": "female", "linda": "female", "steph": "female",
              "quincy": "female"},
    "val": {"m6": "male", "Mike": "male", "benjamin": "male", "marcelo": "male", "iven4": "male", "f4": "female",
            "belinda": "female", "steph2": "female"},
    "test": {"m7": "male", "m8": "male", "boris": "male", "david": "male", "grandpa": "male", "norbert": "male",
             "victor": "male", "Reed": "male", "f5": "female", "Andrea": "female", "anika": "female",
             "grandma": "female", "shelby": "female"},
}
PITCH = (30, 75)  # espeak-ng pitch, 50 = the voice's own
SPEED = (120, 220)  # words per minute
VOLUME = (70, 110)  # espeak-ng volume, 100 = normal (louder clips in several variants)
INTONATION = (30, 70)  # espeak-ng pitch range, 50 = normal
MAX_SPEAKERS = 100_000


@dataclass(frozen=True)
class Speaker:
    """One synthetic talker: ``voice`` (an accent from ``ACCENTS``), ``variant`` ("" = the accent's own voice),
    espeak-ng ``pitch`` (0-100), ``speed`` (words per minute), ``volume`` (0-200), ``intonation`` (0-100)."""

    voice: str
    variant: str
    pitch: int
    speed: int
    volume: int
    intonation: int = 50

    @property
    def name(self) -> str:
        """The espeak-ng voice name, ``"en-gb-scotland+m3"``."""
        return f"{self.voice}+{self.variant}" if self.variant else self.voice

    @property
    def gender(self) -> str:
        """``"male"`` or ``"female"`` (of the variant)."""
        for pool in VARIANTS.values():
            if self.variant in pool:
                return pool[self.variant]
        return ""

    def say(self, text: str, sample_rate: int = 16_000) -> np.ndarray:
        """``text`` in this voice: float32 (samples,) in [-1, 1] at ``sample_rate`` Hz (see :func:`synthesize`)."""
        return synthesize(text, voice=self.name, pitch=self.pitch, speed=self.speed, volume=self.volume,
                          intonation=self.intonation, sample_rate=sample_rate)


def check_split(split: str) -> int:
    """The index of ``split`` in ``SPLITS``; SpecError otherwise."""
    if split not in SPLITS:
        raise SpecError("split", f"unknown split {split!r} (allowed: {', '.join(SPLITS)})")
    return SPLITS.index(split)


def speakers(seed: int, count: int, split: str = "train") -> tuple[Speaker, ...]:
    """``count`` distinct speakers of ``split``'s pool, drawn from ``seed``.

    Accent uniform over ``ACCENTS``, variant uniform over the split's variants, pitch / speed / volume /
    intonation uniform integers over ``PITCH`` / ``SPEED`` / ``VOLUME`` / ``INTONATION``. Speakers of
    different splits never share a variant, so they are disjoint for any seeds.
    """
    code = check_split(split)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SPEAKERS:
        raise SpecError("count", f"expected an integer in [1, {MAX_SPEAKERS}], got {count!r}")
    rng = np.random.default_rng([int(seed), code, 1])
    pool = tuple(VARIANTS[split])
    chosen: dict[Speaker, None] = {}
    while len(chosen) < count:
        speaker = Speaker(
            voice=ACCENTS[int(rng.integers(len(ACCENTS)))], variant=pool[int(rng.integers(len(pool)))],
            pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)), speed=int(rng.integers(SPEED[0], SPEED[1] + 1)),
            volume=int(rng.integers(VOLUME[0], VOLUME[1] + 1)),
            intonation=int(rng.integers(INTONATION[0], INTONATION[1] + 1)))
        chosen.setdefault(speaker, None)
    return tuple(chosen)


@lru_cache(maxsize=4096)
def spoken_word(word: str, speaker: Speaker, sample_rate: int = 16_000) -> np.ndarray:
    """``word`` said by ``speaker``, cut to its active part (frames within 40 dB of the loudest).

    Float32 (samples,), read-only (cached in memory per word, speaker and rate).
    """
    audio = speaker.say(word, sample_rate)
    start, end = active_span(audio, frame=max(1, sample_rate // 100))
    out = np.ascontiguousarray(audio[start:end])
    out.flags.writeable = False
    return out
