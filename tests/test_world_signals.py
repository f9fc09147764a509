"""Heartbeats and spoken commands in worlds: the ``heart``, ``say``, ``microphone`` and ``acoustics`` keys, the mouth
moving over each said word, and :func:`hcgym.synthesis.world_signals.world_signals` (ECGs with activity levels, the
microphone signal with its utterances) on small worlds and the two shipped scenes."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.synthesis.world_signals import MOUTH_HEIGHT, world_signals
from hcgym.worlds import WorldSpec, load_world

MIC = (0.0, -2.0, 1.3)  # the robot; its microphone is mounted 0.1 m forward (+y at yaw 90) and 0.2 m up

WORLD = {
    "name": "talk",
    "room": {"size": [8.0, 8.0], "wall_height": 3.0, "acoustics": {"rt60": 0.3}},
    "humans": [
        {"name": "near", "avatar": {"seed": 1}, "position": [0.0, -0.9], "heading": -90,
         "say": [{"word": "stop", "start": 0.5, "variant": "f5"}, {"word": "robot", "start": 2.5, "variant": "f5"},
                 {"word": "go", "start": 4.5, "variant": "f5", "pitch": 60, "speed": 150, "volume": 90}]},
        {"name": "walker", "avatar": {"seed": 2}, "position": [1.0, -1.0], "heading": 90,
         "path": {"waypoints": [[1.0, -1.0], [1.0, 3.5]], "speed": 1.5},
         "behaviour": [{"action": "walk", "start": 1.0, "duration": 2.8}],
         "say": [{"word": "yes", "start": 1.5, "voice": "en-gb", "variant": "m7"},
                 {"word": "left", "start": 3.5, "voice": "en-gb", "variant": "m7"}]},
    ],
    "robots": [{"name": "robot", "body": "none", "position": list(MIC), "yaw": 90,
                "microphone": {"mount": [0.1, 0.0, 0.2]}}],
}


def world(data=WORLD) -> WorldSpec:
    return WorldSpec.from_dict(copy.deepcopy(data), "talk.yaml")


@pytest.fixture(scope="module")
def signals():
    return world_signals(world(), duration=6.0)


# ------------------------------------------------------------------ keys
BAD = [
    (lambda d: d["humans"][0].__setitem__("heart", {"rhythm": "flutter"}), "humans[0].heart.rhythm", "unknown value"),
    (lambda d: d["humans"][0].__setitem__("heart", {"abnormal_share": 1.5}), "humans[0].heart.abnormal_share",
     "out of range"),
    (lambda d: d["humans"][0].__setitem__("heart", {"fs": 1000}), "humans[0].heart.fs", "out of range"),
    (lambda d: d["humans"][0].__setitem__("heart", {"snr_db": "loud"}), "humans[0].heart.snr_db", "expected a number"),
    (lambda d: d["humans"][0].__setitem__("heart", {"rate": 60}), "humans[0].heart.rate", "unknown key"),
    (lambda d: d["humans"][0]["say"][0].__setitem__("word", True), "humans[0].say[0].word", "quote the word"),
    (lambda d: d["humans"][0]["say"][0].__setitem__("word", "st0p!"), "humans[0].say[0].word", "word of letters"),
    (lambda d: d["humans"][0]["say"][0].__setitem__("voice", "en-mars"), "humans[0].say[0].voice", "unknown value"),
    (lambda d: d["humans"][0]["say"][0].__setitem__("variant", "robot9"), "humans[0].say[0].variant",
     "unknown value"),
    (lambda d: d["humans"][0]["say"][0].__setitem__("pitch", 90), "humans[0].say[0].pitch", "out of range"),
    (lambda d: d["humans"][0]["say"][0].__setitem__("speed", 300), "humans[0].say[0].speed", "out of range"),
    (lambda d: d["humans"][0]["say"][0].__setitem__("volume", 1.5), "humans[0].say[0].volume", "expected an integer"),
    (lambda d: d["humans"][0]["say"][0].pop("start"), "humans[0].say[0].start", "is required"),
    (lambda d: d["humans"][0].__setitem__("say", {"word": "go"}), "humans[0].say", "expected a list"),
    (lambda d: d["robots"][0]["microphone"].__setitem__("mount", [0, 0]), "robots[0].microphone.mount",
     "expected a list of 3"),
    (lambda d: d["robots"][0].__setitem__("microphone", {"height": 1}), "robots[0].microphone.height", "unknown key"),
    (lambda d: d["room"]["acoustics"].__setitem__("absorption", 0.3), "room.acoustics.absorption",
     "give one of rt60, absorption, material"),
    (lambda d: d["room"].__setitem__("acoustics", {"material": "cheese"}), "room.acoustics.material",
     "unknown value"),
    (lambda d: d["room"]["acoustics"].__setitem__("noise_db", 10), "room.acoustics.noise_db", "out of range"),
    (lambda d: d["room"]["acoustics"].__setitem__("rt60", 9.0), "room.acoustics.rt60", "out of range"),
]


@pytest.mark.parametrize("edit,field,message", BAD)
def test_bad_keys_fail_with_one_clear_message(edit, field, message):
    data = copy.deepcopy(WORLD)
    edit(data)
    with pytest.raises(SpecError) as err:
        world(data)
    text = str(err.value)
    assert text.startswith("talk.yaml: ") and field in text and message in text, text


def test_keys_are_read_with_their_defaults():
    data = copy.deepcopy(WORLD)
    data["humans"][0]["heart"] = {"rhythm": "af"}
    data["humans"][1]["heart"] = {"snr_db": None, "fs": 125, "abnormal_share": 0.3}
    w = world(data)
    a, b = w.humans[0].heart, w.humans[1].heart
    assert (a.rhythm, a.abnormal_share, a.snr_db, a.fs) == ("af", 0.0, 20.0, 250.0)
    assert (b.rhythm, b.abnormal_share, b.snr_db, b.fs) == ("normal", 0.3, None, 125.0)
    go = w.humans[0].behaviour.say[2]
    assert {k: go[k] for k in ("word", "start", "voice", "variant", "pitch", "speed", "volume")} == {
        "word": "go", "start": 4.5, "voice": "en-us", "variant": "f5", "pitch": 60, "speed": 150, "volume": 90}
    assert w.humans[0].behaviour.say[0]["pitch"] == 50 and w.humans[0].behaviour.moves  # say alone is a timeline
    assert w.robots[0].microphone == (0.1, 0.0, 0.2) and w.room.acoustics.rt60 == 0.3
    assert load_world("greeting").robots[0].microphone == (0.0, 0.0, 0.0)
    assert load_world("greeting").room.acoustics.rt60 is None and load_world("greeting").humans[0].heart is None


def test_words_of_one_person_must_not_overlap():
    data = copy.deepcopy(WORLD)
    data["humans"][0]["say"][1]["start"] = 0.6  # "robot" while "stop" (0.5 s on) is still being said
    with pytest.raises(SpecError, match=r"humans\[0\]\.say\[1\]\.start.*starts before 'stop' ends"):
        world_signals(world(data))


# ------------------------------------------------------------------ the mouth
def test_said_words_move_the_mouth_over_their_voiced_span():
    from hcgym.synthesis.avatar_spec import AvatarSpec
    from hcgym.synthesis.labels import FACIAL_ACTIONS
    from hcgym.synthesis.motion.rig import rig_for
    from hcgym.synthesis.motion.timeline import HumanMotion, say_audio, say_spans

    human = world().humans[0]
    say = human.behaviour.say
    spans = say_spans(say)
    assert [round(s[1] - s[0], 4) for s in spans] == [round(len(say_audio(i)) / 16_000, 4) for i in say]
    assert all(0.15 < b - a < 1.0 for a, b in spans)
    motion = HumanMotion(human.behaviour, rig_for(AvatarSpec.random(0)), human.position, human.heading)
    jaw = FACIAL_ACTIONS.index("jawOpen")

    def mouth(t: float) -> tuple[bool, str | None, float]:
        state = motion.state(t)
        return state.labels["talking"], state.labels["viseme"], float(state.facial[jaw])

    for a, b in spans:
        during = [mouth(a + f * (b - a)) for f in (0.2, 0.4, 0.6, 0.8)]
        assert all(talking and viseme not in (None, "sil") for talking, viseme, _ in during)
        assert max(j for *_, j in during) > 0.15
    for t in (0.2, (spans[0][1] + spans[1][0]) / 2, (spans[1][1] + spans[2][0]) / 2, spans[2][1] + 0.5):
        talking, viseme, j = mouth(t)
        assert not talking and viseme is None and j < 0.02, t
    # a talk sentence speaks from its first viseme to its last (segments in time order, not by viseme name)
    from hcgym.synthesis.motion.timeline import Behaviour

    talk = HumanMotion(Behaviour(talk=({"text": "hello there", "start": 1.0, "rate": 5.0},), blink=0),
                       motion.rig, human.position, human.heading)
    assert talk.state(1.01).labels["talking"] and talk.state(1.5).labels["talking"]
    assert not talk.state(0.99).labels["talking"] and not talk.state(5.0).labels["talking"]


# ------------------------------------------------------------------ the microphone
def _mic() -> np.ndarray:
    return np.array(MIC) + np.array([0.0, 0.1, 0.2])


def test_signals_are_deterministic_and_sized(signals):
    s = signals
    assert s.sample_rate == 16_000 and s.duration == 6.0 and s.hearts == {}
    assert s.audio.dtype == np.float32 and s.audio.shape == (96_000,)
    again = world_signals(world(), duration=6.0)
    assert np.array_equal(again.audio, s.audio) and again.utterances == s.utterances
    assert [u.word for u in s.utterances] == ["stop", "yes", "robot", "left", "go"]
    assert [u.label for u in s.utterances] == ["stop", "yes", "unknown", "left", "go"]
    assert s.utterances[0].speaker == {"voice": "en-us", "variant": "f5", "pitch": 50, "speed": 170, "volume": 100}
    assert np.allclose(s.room["mic"], _mic()) and s.room["dims"] == (8.0, 8.0, 3.0)
    assert s.room["origin"] == (-4.0, -4.0, 0.0) and s.room["rt60"] == 0.3 and s.room["noise_db"] is None
    default = world_signals(world())  # the duration runs to the last word's end and a tail
    assert default.duration == pytest.approx(max(u.end for u in default.utterances) + 0.5, abs=0.02)


def test_audio_window_pads_with_zeros(signals):
    s = signals
    w = s.audio_window(-0.5, 0.5)
    assert w.shape == (16_000,) and not np.any(w[:8_000]) and np.array_equal(w[8_000:], s.audio[:8_000])
    tail = s.audio_window(5.5, 7.0)
    assert tail.shape == (24_000,) and np.array_equal(tail[:8_000], s.audio[-8_000:]) and not np.any(tail[8_000:])
    with pytest.raises(SpecError, match="window"):
        s.audio_window(2.0, 1.0)


def test_each_utterance_is_loud_within_its_span_and_the_room_quiet_before_it(signals):
    s = signals
    for u in s.utterances:
        inside = float(np.mean(s.audio_window(u.start, u.end) ** 2))
        before = float(np.mean(s.audio_window(u.start - 0.25, u.start - 0.05) ** 2))
        assert 10 * math.log10(inside / max(before, 1e-20)) > 20.0, u
    # silence until the first word (said at 0.5 s) reaches the microphone (less the interpolation filter's 2.5 ms)
    assert np.max(np.abs(s.audio[:int(0.49 * 16_000)])) == 0.0 and np.max(np.abs(s.audio[:int(0.55 * 16_000)])) > 0


def test_distances_and_arrival_times_follow_the_positions(signals):
    w = world()
    mic = _mic()
    near = [u for u in signals.utterances if u.human == "near"]
    expected = float(np.linalg.norm(np.array([0.0, -0.9, MOUTH_HEIGHT]) - mic))
    assert all(u.distance == pytest.approx(expected, abs=1e-9) for u in near)
    for u, item in zip(near, w.humans[0].behaviour.say):
        assert u.start == pytest.approx(item["start"] + u.distance / 343.0, abs=1e-9)
    yes, left = (u for u in signals.utterances if u.human == "walker")
    assert left.distance > yes.distance + 2.0  # walked away along +y between the two words
    assert yes.distance > math.dist((1.0, -1.0), mic[:2])


def test_overrides_change_the_room_and_the_distances():
    one = copy.deepcopy(WORLD)
    one["humans"] = [one["humans"][0]]
    one["humans"][0]["say"] = [one["humans"][0]["say"][0]]
    base = world_signals(world(one), duration=1.5)
    dry = world_signals(world(one), duration=1.5, rt60=0.15)
    wet = world_signals(world(one), duration=1.5, rt60=0.6)
    assert dry.room["rt60"] == 0.15 and wet.room["rt60"] == 0.6
    assert dry.room["rt60_measured"] < base.room["rt60_measured"] < wet.room["rt60_measured"]
    assert wet.room["rt60_measured"] > 2 * dry.room["rt60_measured"]
    far = world_signals(world(one), duration=1.5, distance_scale=5.0)
    d0, d1 = base.utterances[0].distance, far.utterances[0].distance
    assert d1 == pytest.approx(math.hypot(5 * math.hypot(0.0, -0.9 + 1.9), MOUTH_HEIGHT - 1.5), abs=1e-6)
    assert d1 > 4 * d0 and far.room["dims"] == (8.0, 8.0, 3.0)
    farther = world_signals(world(one), duration=1.5, distance_scale=12.0)  # beyond the wall: the box grows
    assert farther.room["dims"][1] > 8.0 and farther.utterances[0].distance > 11.0
    noisy = world_signals(world(one), duration=1.5, noise_db=-40.0, seed=3)
    quiet_part = noisy.audio[:int(0.4 * 16_000)]
    assert noisy.room["noise_db"] == -40.0
    assert 20 * math.log10(float(np.sqrt(np.mean(quiet_part.astype(np.float64) ** 2)))) == pytest.approx(-40, abs=0.5)
    assert not np.array_equal(noisy.audio, world_signals(world(one), duration=1.5, noise_db=-40.0, seed=4).audio)


@pytest.mark.parametrize("kwargs,field", [({"rt60": 5.0}, "rt60"), ({"distance_scale": 0}, "distance_scale"),
                                          ({"seed": -1}, "seed"), ({"sample_rate": 100}, "sample_rate"),
                                          ({"noise_db": 3}, "noise_db"), ({"duration": -1}, "duration")])
def test_bad_arguments_are_spec_errors(kwargs, field):
    with pytest.raises(SpecError) as err:
        world_signals(world(), **kwargs)
    assert str(err.value).startswith(field)


def test_words_need_a_robot_and_a_world_without_words_has_no_audio():
    data = copy.deepcopy(WORLD)
    data["robots"] = []
    with pytest.raises(SpecError, match="robots"):
        world_signals(world(data))
    quiet = world_signals("greeting")
    assert quiet.audio is None and quiet.utterances == () and quiet.hearts == {}
    assert quiet.audio_window(0.0, 1.0).shape == (16_000,) and quiet.room["rt60_measured"] is None


# ------------------------------------------------------------------ hearts
RUNNER = {
    "name": "runner",
    "room": {"size": [12.0, 12.0]},
    "humans": [{"name": name, "avatar": {"seed": 5}, "position": [-4.0, -4.0 + k], "heading": 0,
                "path": {"waypoints": [[-4.0, -4.0 + k], [4.0, -4.0 + k], [4.0, 4.0], [-4.0, 4.0]], "loop": True},
                "behaviour": [{"action": "idle", "start": 0.0, "duration": 60.0},
                              {"action": "walk", "start": 60.0, "duration": 90.0, "speed": 2.0},
                              {"action": "wave", "start": 10.0, "duration": 3.0}],
                "heart": {"rhythm": "normal", "snr_db": None}} for k, name in enumerate(("ann", "bob"))],
    "robots": [{"name": "robot", "position": [0.0, 0.0, 1.6]}],
}


def test_hearts_follow_the_activity_of_each_wearer():
    s = world_signals(WorldSpec.from_dict(copy.deepcopy(RUNNER), "runner.yaml"), duration=180.0, seed=1)
    assert s.audio is None and set(s.hearts) == {"ann", "bob"}
    ann, bob = s.hearts["ann"], s.hearts["bob"]
    assert ann.activity == ((0.0, 60.0, "rest"), (60.0, 150.0, "run"), (150.0, 180.0, "rest"))
    assert [ann.level_at(t) for t in (0.0, 59.9, 60.0, 149.0, 150.0, 500.0)] == ["rest"] * 2 + ["run"] * 2 + ["rest"] * 2
    st = ann.stream
    assert st.signal.shape == (45_000,) and st.fs == 250.0 and np.array_equal(st.signal, st.clean)  # snr_db None
    rest = st.heart_rate[(st.t >= 10) & (st.t < 60)].mean()
    run = st.heart_rate[(st.t >= 120) & (st.t < 150)].mean()
    assert run > rest + 40 and st.motion_level[(st.t > 70) & (st.t < 150)].min() > 0.9
    assert not np.array_equal(ann.stream.signal, bob.stream.signal)  # each wearer is a different person
    again = world_signals(WorldSpec.from_dict(copy.deepcopy(RUNNER), "runner.yaml"), duration=180.0, seed=1)
    assert np.array_equal(again.hearts["ann"].stream.signal, st.signal)
    other = world_signals(WorldSpec.from_dict(copy.deepcopy(RUNNER), "runner.yaml"), duration=180.0, seed=2)
    assert not np.array_equal(other.hearts["ann"].stream.signal, st.signal)


# ------------------------------------------------------------------ the shipped scenes
def test_heart_monitor_scene():
    w = load_world("heart_monitor")
    s = world_signals(w)
    assert s.duration >= 240 and s.audio is None
    assert {n: h.stream.meta["rhythm"] for n, h in s.hearts.items()} == {"ana": "normal", "ben": "af", "cleo": "normal"}
    assert w.humans[2].heart.abnormal_share >= 0.1
    assert sum(seg.abnormal_beats for seg in s.hearts["cleo"].stream.segments) > 50
    for heart in s.hearts.values():
        levels = {level for *_, level in heart.activity}
        assert levels == {"rest", "walk", "run"}, heart.human
        st = heart.stream
        first_rest = heart.activity[0]
        run = next(a for a in heart.activity if a[2] == "run")
        hr_rest = st.heart_rate[(st.t >= first_rest[0]) & (st.t < first_rest[1])].mean()
        hr_run = st.heart_rate[(st.t >= run[1] - 15) & (st.t < run[1])].mean()
        assert hr_run > hr_rest + 30, heart.human


def test_voice_commands_scene():
    from hcgym.synthesis.speech import KEYWORDS

    s = world_signals("voice_commands")
    assert 60 <= s.duration <= 90 and s.audio is not None and s.room["rt60"] == 0.5 and s.room["noise_db"] == -55
    by = {}
    for u in s.utterances:
        by.setdefault(u.human, []).append(u)
    assert len(by) == 4 and len({u.speaker["variant"] for u in s.utterances}) == 4
    for name, target in (("ava", 1.0), ("ben", 2.0), ("cai", 4.0)):
        assert {u.label for u in by[name]} >= set(KEYWORDS) and "unknown" in {u.label for u in by[name]}
        assert all(abs(u.distance - target) < 0.15 for u in by[name]), name
    dan = [u.distance for u in by["dan"]]
    assert dan[0] < 1.6 and dan[-1] > 5.5 and dan == sorted(dan)  # walks away while he speaks
    overlaps = [(a, b) for a, b in zip(s.utterances, s.utterances[1:]) if b.start < a.end and a.human != b.human]
    assert len(overlaps) >= 2


def test_plot_signals_writes_a_png(signals, tmp_path):
    from hcgym.synthesis.world_signals import plot_signals

    out = plot_signals(signals, tmp_path / "signals.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SpecError, match="nothing to plot"):
        plot_signals(world_signals("greeting"), tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
