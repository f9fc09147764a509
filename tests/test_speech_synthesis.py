"""Spoken commands in simulation: espeak-ng synthesis, the keyword data set and the room model."""

from __future__ import annotations

import hashlib
import multiprocessing
import subprocess
import sys

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.synthesis.speech import (
    CLASSES,
    KEYWORDS,
    SPLITS,
    VARIANTS,
    Room,
    hear,
    keyword_dataset,
    rt60_of,
    speakers,
    synthesize,
    variants,
    voices,
)
from hcgym.synthesis.speech.noise import active_span, pink_noise, rms
from hcgym.synthesis.speech.room import decay_time, impulse_response

SR = 16_000


def f0_hz(signal: np.ndarray, sample_rate: int = SR) -> float:
    """Median fundamental frequency of the voiced 40 ms frames (autocorrelation peak in 60-400 Hz)."""
    start, end = active_span(signal)
    signal = signal[start:end]
    found = []
    for i in range(0, signal.size - 640, 320):
        frame = signal[i:i + 640] * np.hanning(640)
        if rms(frame) < 0.02:
            continue
        ac = np.correlate(frame, frame, "full")[639:]
        low, high = sample_rate // 400, sample_rate // 60
        lag = low + int(np.argmax(ac[low:high]))
        if ac[lag] > 0.3 * ac[0]:
            found.append(sample_rate / lag)
    return float(np.median(found))


def test_synthesize_returns_speech_of_a_word():
    audio = synthesize("forward", voice="en-us+f3")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.2 <= audio.size / SR <= 1.2
    assert np.abs(audio).max() <= 1.0
    start, end = active_span(audio)
    assert 0.15 <= (end - start) / SR <= 0.9
    assert rms(audio[start:end]) > 0.02


def test_synthesize_is_deterministic_whatever_was_said_before():
    first = synthesize("stop", voice="en-gb-scotland+m3", pitch=60, speed=150)
    synthesize("hello there, robot", voice="en-us+f2")
    again = synthesize("stop", voice="en-gb-scotland+m3", pitch=60, speed=150)
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != synthesize("stop", voice="en-gb-scotland+m3", pitch=61, speed=150).tobytes()


def _say_in_worker(_):
    return synthesize("stop", voice="en-gb-scotland+m3", pitch=60, speed=150).tobytes()


def test_synthesize_in_a_forked_worker_gives_the_same_bytes():
    here = synthesize("stop", voice="en-gb-scotland+m3", pitch=60, speed=150).tobytes()
    with multiprocessing.get_context("fork").Pool(1) as pool:
        there = pool.map(_say_in_worker, [0])[0]
    assert there == here


def test_synthesize_gives_the_same_bytes_in_a_new_process():
    code = ("import hashlib; from hcgym.synthesis.speech import synthesize; "
            "print(hashlib.sha256(synthesize('seven', voice='en-us+f2').tobytes()).hexdigest())")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert there == hashlib.sha256(synthesize("seven", voice="en-us+f2").tobytes()).hexdigest()


def test_pitch_raises_f0_and_variants_differ():
    low = f0_hz(synthesize("nine", voice="en-us", pitch=30))
    high = f0_hz(synthesize("nine", voice="en-us", pitch=75))
    female = f0_hz(synthesize("nine", voice="en-us+f3", pitch=50))
    assert high > 1.15 * low
    assert female > 1.5 * f0_hz(synthesize("nine", voice="en-us", pitch=50))


def test_speed_changes_duration():
    def speech_seconds(speed):
        start, end = active_span(synthesize("backward", voice="en-gb", speed=speed))
        return (end - start) / SR

    assert speech_seconds(120) > 1.3 * speech_seconds(220)


def test_sample_rate_resamples():
    at_16k = synthesize("go", sample_rate=16_000)
    at_8k = synthesize("go", sample_rate=8_000)
    assert abs(at_8k.size * 2 - at_16k.size) <= 2


@pytest.mark.parametrize("kwargs, field", [
    ({"voice": "klingon"}, "voice"), ({"voice": "en-us+nosuch"}, "voice"), ({"pitch": 101}, "pitch"),
    ({"speed": 20}, "speed"), ({"volume": -1}, "volume"), ({"sample_rate": 100}, "sample_rate"),
])
def test_bad_synthesis_arguments_are_spec_errors(kwargs, field):
    with pytest.raises(SpecError) as error:
        synthesize("yes", **kwargs)
    assert error.value.field == field
    if field == "voice" and "+" not in kwargs["voice"]:
        assert "en-us" in str(error.value)  # the available voices are listed


def test_voice_pools_exist_in_the_bundled_data_and_are_disjoint():
    names = {v.language for v in variants()}
    assert {"en-us", "en-gb", "en-gb-scotland"} <= {v.language for v in voices("en")}
    for split in SPLITS:
        assert {v for v in VARIANTS[split] if v} <= names
        assert set(VARIANTS[split].values()) == {"male", "female"}
    assert not set(VARIANTS["train"]) & set(VARIANTS["val"])
    assert not set(VARIANTS["train"]) & set(VARIANTS["test"])
    assert not set(VARIANTS["val"]) & set(VARIANTS["test"])


def test_speakers_are_seeded_distinct_and_split_disjoint():
    train = speakers(0, 40, "train")
    assert train == speakers(0, 40, "train") and len(set(train)) == 40
    assert train != speakers(1, 40, "train")
    test = speakers(0, 40, "test")
    assert not {s.variant for s in train} & {s.variant for s in test}
    assert all(30 <= s.pitch <= 75 and 120 <= s.speed <= 220 for s in train + test)
    with pytest.raises(SpecError):
        speakers(0, 3, "holdout")


def test_keyword_dataset_shapes_shares_and_determinism():
    kwargs = {"split": "val", "n_speakers": 3, "rooms": 2, "unknown_share": 0.2, "silence_share": 0.1}
    data = keyword_dataset(30, 5, **kwargs)
    assert data.audio.shape == (30, SR) and data.audio.dtype == np.float32 and data.y.shape == (30,)
    assert data.classes == CLASSES and len(CLASSES) == 12 and CLASSES[:10] == KEYWORDS
    counts = np.bincount(data.y, minlength=12)
    assert counts[CLASSES.index("unknown")] == 6 and counts[CLASSES.index("silence")] == 3
    assert counts[:10].min() >= 2 and counts[:10].max() <= 3
    assert np.abs(data.audio).max() <= 1.0
    for clip, label, meta in zip(data.audio, data.y, data.meta):
        assert meta["label"] == CLASSES[label]
        if meta["word"]:
            assert 0 <= meta["onset"] and meta["onset"] + meta["duration"] <= 1.0
            assert meta["speaker"].split("+")[1] in VARIANTS["val"]
            assert "rt60" in meta and 5.0 <= meta["snr_db"] <= 30.0
        assert rms(clip) > 0
    again = keyword_dataset(30, 5, **kwargs)
    assert again.audio.tobytes() == data.audio.tobytes() and again.meta == data.meta
    other = keyword_dataset(30, 6, **kwargs)
    assert other.audio.tobytes() != data.audio.tobytes()


def test_keyword_dataset_onset_places_the_word():
    data = keyword_dataset(12, 0, split="test", n_speakers=2, reverb=False, snr_db=(60.0, 60.0),
                           unknown_share=0.0, silence_share=0.0)
    for clip, meta in zip(data.audio, data.meta):
        start, end = active_span(clip, threshold_db=-30.0)
        assert abs(start / SR - meta["onset"]) <= 0.02
        assert "rt60" not in meta


def test_keyword_dataset_splits_use_disjoint_speakers():
    kwargs = {"n_speakers": 4, "rooms": 1, "silence_share": 0.0}
    train = {m["speaker"] for m in keyword_dataset(16, 0, split="train", **kwargs).meta}
    test = {m["speaker"] for m in keyword_dataset(16, 0, split="test", **kwargs).meta}
    assert train and test and not train & test


@pytest.mark.parametrize("kwargs, field", [
    ({"split": "dev"}, "split"), ({"unknown_share": 0.7, "silence_share": 0.5}, "unknown_share"),
    ({"snr_db": (30, 5)}, "snr_db"), ({"snr_db": 10}, "snr_db"), ({"count": 0}, "count"), ({"sample_rate": 1000}, "sample_rate"),
])
def test_keyword_dataset_bad_arguments(kwargs, field):
    with pytest.raises(SpecError) as error:
        keyword_dataset(**{"count": 4, "seed": 0, **kwargs})
    assert error.value.field == field


def _click(seconds: float = 0.05) -> np.ndarray:
    click = np.zeros(int(seconds * SR))
    click[0] = 1.0
    return click


def test_hear_distance_attenuates():
    room = Room(dims=(8.0, 6.0, 3.0), mic=(1.0, 3.0, 1.2), rt60=0.2)
    noise = np.random.default_rng(0).standard_normal(SR // 2) * 0.1
    near = hear(room, [(noise, (2.0, 3.0, 1.2), 0.0)])
    far = hear(room, [(noise, (5.0, 3.0, 1.2), 0.0)])
    assert rms(far) < 0.75 * rms(near)
    # the direct sound: 1/r in amplitude, arriving after r / c
    direct = {}
    for r in (1.0, 4.0):
        out = np.abs(hear(room, [(_click(), (1.0 + r, 3.0, 1.2), 0.0)]))
        arrival = int(round(r / 343.0 * SR))
        assert np.argmax(out[:arrival + 8]) >= arrival - 2
        direct[r] = out[arrival - 2:arrival + 3].max()
    assert 0.2 <= direct[4.0] / direct[1.0] <= 0.3


def test_hear_longer_rt60_decays_longer_and_matches_the_measurement():
    dry, live = Room(rt60=0.25), Room(rt60=0.8)
    source = [(_click(), (1.5, 1.5, 1.6), 0.0)]
    assert decay_time(hear(live, source), SR) > 1.8 * decay_time(hear(dry, source), SR)
    assert rt60_of(live) > 1.8 * rt60_of(dry)
    assert 0.15 <= rt60_of(dry) <= 0.45


def test_hear_output_length_mixing_and_determinism():
    room = Room(dims=(5.0, 4.0, 3.0), mic=(2.5, 2.0, 1.0), absorption=0.5)
    talker = (np.asarray(synthesize("yes"), dtype=float), (1.0, 1.0, 1.6), 0.2)
    other = (pink_noise(SR // 2, np.random.default_rng(0)) * 0.05, (4.0, 3.0, 1.0), 0.0)
    fixed = hear(room, [talker, other], duration_s=1.5, noise_db=-60.0, seed=3)
    assert fixed.shape == (int(1.5 * SR),) and fixed.dtype == np.float32
    assert fixed.tobytes() == hear(room, [talker, other], duration_s=1.5, noise_db=-60.0, seed=3).tobytes()
    assert fixed.tobytes() != hear(room, [talker, other], duration_s=1.5, noise_db=-60.0, seed=4).tobytes()
    full = hear(room, [talker])  # until the reverberation of the last sample has died away
    assert full.size == int(0.2 * SR) + talker[0].size + impulse_response(room, talker[1]).size - 1


@pytest.mark.parametrize("kwargs, field", [
    ({"dims": (0.5, 4.0, 3.0)}, "room.dims"), ({"mic": (9.0, 1.0, 1.0)}, "room.mic"),
    ({"absorption": 0.3, "material": "brickwork"}, "room"), ({"rt60": 0.4, "absorption": 0.3}, "room"),
    ({"material": "cheese"}, "room.material"), ({"absorption": 0.0}, "room.absorption"), ({"dims": (20.0, 20.0, 10.0), "rt60": 0.06}, "room.rt60"),
])
def test_bad_rooms_are_spec_errors(kwargs, field):
    with pytest.raises(SpecError) as error:
        Room(**kwargs)
    assert error.value.field == field


def test_hear_rejects_sources_outside_the_room():
    with pytest.raises(SpecError) as error:
        hear(Room(), [(np.ones(10), (7.0, 1.0, 1.0), 0.0)])
    assert error.value.field == "sources[0].position"


def test_material_room_simulates():
    room = Room(dims=(4.0, 3.0, 2.5), mic=(2.0, 1.5, 1.0), material="carpet_thin", max_order=10)
    out = hear(room, [(_click(), (1.0, 1.0, 1.5), 0.0)])
    assert np.isfinite(out).all() and rms(out) > 0
