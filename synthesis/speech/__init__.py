"""Spoken commands in simulation: espeak-ng voices, a keyword-spotting data set and the room a robot hears in.

- :mod:`.espeak`: :func:`synthesize` (text -> float audio) with the espeak-ng library bundled by
  ``espeakng-loader``; :func:`voices`, :func:`variants`.
- :mod:`.keywords`: ``KEYWORDS``, ``UNKNOWN_WORDS``, ``CLASSES`` (12-class Speech Commands set-up),
  :class:`Speaker` and :func:`speakers` (disjoint train / val / test voice pools).
- :mod:`.dataset`: :func:`keyword_dataset` -> :class:`KeywordSet` (1 s clips, onsets, noise, reverb).
- :mod:`.room`: :class:`Room`, :func:`hear` (sources in a pyroomacoustics shoebox -> microphone signal),
  :func:`rt60_of`.

Bottom synthesis layer: imports nothing of hcgym but the errors.
"""

from hcgym.synthesis.speech.dataset import KeywordSet, keyword_dataset, rir_bank
from hcgym.synthesis.speech.espeak import VoiceInfo, synthesize, variants, voices
from hcgym.synthesis.speech.keywords import (
    ACCENTS,
    CLASSES,
    KEYWORDS,
    SPLITS,
    UNKNOWN_WORDS,
    VARIANTS,
    Speaker,
    speakers,
    spoken_word,
)
from hcgym.synthesis.speech.room import Room, hear, impulse_response, materials, rt60_of

__all__ = [
    "ACCENTS", "CLASSES", "KEYWORDS", "SPLITS", "UNKNOWN_WORDS", "VARIANTS", "KeywordSet", "Room", "Speaker",
    "VoiceInfo", "hear", "impulse_response", "keyword_dataset", "materials", "rir_bank", "rt60_of", "speakers",
    "spoken_word", "synthesize", "variants", "voices",
]
