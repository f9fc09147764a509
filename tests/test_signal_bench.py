"""The signal bench: ECG and keyword sensors scored on hand-built world signals (zones, matching, metrics, bands,
the keyword sweep), its reports, and ``hcgym evaluate sensor`` dispatching signal sensors to it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception import signal_bench as sb
from hcgym.perception.biosignal.sensor import detect_r_peaks
from hcgym.perception.registry import spec
from hcgym.perception.signal_bench_report import figures, sweep_figure, sweep_markdown, table_markdown
from hcgym.perception.speech.sensor import voiced_spans
from hcgym.synthesis.ecg import ecg_stream
from hcgym.synthesis.speech import speakers, spoken_word
from hcgym.synthesis.speech.noise import active_span
from hcgym.synthesis.world_signals import HeartTruth, Utterance, WorldSignals
from hcgym.types import EcgReading, KeywordReading

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = (("yes", 1.0, 0.8), ("stop", 3.0, 2.0), ("marvin", 5.0, 4.0), ("yes", 7.0, 2.5), ("go", 9.5, 1.0),
         ("left", 11.5, 3.5))


def hearts() -> dict[str, HeartTruth]:
    """Two wearers over 40 s: a sinus rhythm resting then running, atrial fibrillation walking."""
    a = ((0.0, 20.0, "rest"), (20.0, 40.0, "run"))
    b = ((0.0, 40.0, "walk"),)
    return {"ana": HeartTruth("ana", ecg_stream(list(a), 1, fs=250, snr_db=25), a),
            "ben": HeartTruth("ben", ecg_stream(list(b), 2, fs=250, rhythm="af", snr_db=25), b)}


def speech() -> tuple[np.ndarray, tuple[Utterance, ...]]:
    """14 s of 16 kHz audio with six words of three test voices in faint noise, and their utterances."""
    voices = speakers(0, 3, "test")
    audio = np.random.default_rng(0).normal(0, 1e-3, 14 * 16000)
    said = []
    for k, (word, t, distance) in enumerate(WORDS):
        x = spoken_word(word, voices[k % 3], 16000)
        x = 0.4 * x / np.abs(x).max()
        a = int(t * 16000)
        audio[a:a + len(x)] += x
        lo, hi = active_span(x)
        label = word if word != "marvin" else "unknown"
        said.append(Utterance(f"p{k % 3}", word, label, t + lo / 16000, t + hi / 16000, distance, {}))
    return audio.astype(np.float32), tuple(said)


@pytest.fixture(scope="module")
def signals() -> WorldSignals:
    audio, said = speech()
    return WorldSignals(40.0, 16000, hearts(), np.concatenate([audio, np.zeros(26 * 16000, np.float32)]), said,
                        {"rt60": 0.4, "rt60_measured": 0.41, "noise_db": -60.0})


class NormalEcg:
    """Detects R peaks with the sensor's detector, calls every beat and every window normal."""

    window_s = 10.0

    def __call__(self, x, fs):
        r = detect_r_peaks(x, fs)
        return EcgReading(r, ["normal"] * len(r), np.ones(len(r)), "normal", 1.0, 60.0 / float(np.median(np.diff(r))))


class YesSpotter:
    """Finds the voiced spans with the sensor's segmentation and calls each one "yes"."""

    classes = ("yes", "no", "unknown", "silence")

    def __call__(self, audio, rate):
        s = voiced_spans(np.asarray(audio, np.float64), rate)
        return KeywordReading(s[:, 0], s[:, 1], ["yes"] * len(s), np.full(len(s), 0.9))


def test_zones_tile_the_signal_with_margins():
    z = sb.zones(40.0, 10.0, 3.0)
    assert z[0][2] == 0.0 and z[-1][3] == 40.0 and all(a[3] == b[2] for a, b in zip(z, z[1:]))
    assert all(w1 - w0 == 10.0 and w0 <= z0 and z1 <= w1 for w0, w1, z0, z1 in z)
    assert all(z0 - w0 >= 1.5 for w0, _, z0, _ in z[1:]) and all(w1 - z1 == 1.5 for _, w1, _, z1 in z[:-1])
    assert [w0 for w0, *_ in z] == [0, 7, 14, 21, 28, 30]  # the last window ends with the signal
    assert sb.zones(6.0, 10.0, 3.0) == [(0.0, 6.0, 0.0, 6.0)]
    with pytest.raises(SpecError, match="margin"):
        sb.zones(40.0, 2.0, 3.0)


def test_match_nearest_is_one_to_one_nearest_first():
    pairs = sb.match_nearest(np.array([1.00, 1.05, 3.0]), np.array([1.04, 2.0, 3.1]), 0.075)
    assert pairs == {0: 1}  # 1.04 takes 1.05 (nearest), 1.00 stays extra; 3.0 is 0.1 from 3.1
    assert sb.match_nearest(np.zeros(0), np.array([1.0]), 0.1) == {}


def test_beat_truth_is_the_kachuee_cut_label():
    labels = np.array(["normal", "abnormal", "normal", "pvc", "normal", "normal", "af", "abnormal"])
    kinds = np.array(["", "missing_p", "", "pvc", "wide_qrs", "", "", "inverted_t"])
    # the cut of beat 0 holds beat 1's (missing) P wave; beat 1's own cut shows beat 2's P
    assert sb.beat_truth(labels, kinds) == ["abnormal", "normal", "normal", "abnormal", "abnormal", "normal", "af",
                                             "abnormal"]


def test_ecg_scoring_counts_beats_rhythm_and_bands(signals):
    results = sb.run(sb.SignalConfig("biosignal/ecg", "test"), signals, sensor=NormalEcg(), progress=False)
    m = results["metrics"]
    beats = [r for r in results["records"] if r["kind"] == "beat"]
    truth = sum(len(h.stream.beats) for h in signals.hearts.values())
    assert m["beats"] == len(beats) == truth and m["sensitivity"] > 0.98 and m["ppv"] > 0.98
    labelled = [r for r in beats if r["true"] != "af"]  # ben's AF beats have no morphology label
    assert {r["true"] for r in beats} == {"normal", "af"} and len(labelled) == len(signals.hearts["ana"].stream.beats)
    assert m["beat_accuracy"] == round(sum(r["correct"] for r in labelled) / len(labelled), 4) > 0.98
    assert results["confusion"]["labels"] == ["normal", "af"] and results["confusion"]["matrix"][1][0] > 0
    windows = [r for r in results["records"] if r["kind"] == "window"]
    assert {r["true"] for r in windows if r["person"] == "ben"} == {"af"} and m["rhythm_accuracy"] == 0.5
    assert m["hr_mae_bpm"] < 5
    bands = {r["band"]: r for r in results["breakdown"]["activity"]}
    assert set(bands) == {"rest", "walk", "run"} and bands["walk"]["beat_accuracy"] is None  # ben only
    assert sum(r["n"] for r in bands.values()) == truth
    assert [r["band"] for r in results["breakdown"]["person"]] == ["ana", "ben"]
    assert results["task"] == "ecg beats and rhythm" and results["primary"] == "beat_accuracy"
    assert results["latency_ms"]["calls"] == len(windows) and results["config"]["window_s"] == 10.0
    table = table_markdown(results)
    assert "## By activity level" in table and "## Rhythm confusion matrix" in table
    assert set(figures(results)) == {"confusion.png", "rhythm_confusion.png", "vs_activity.png", "vs_person.png"}
    json.dumps(results)


def test_keyword_scoring_matches_utterances_by_overlap(signals):
    results = sb.run(sb.SignalConfig("speech/keywords", "test"), signals, sensor=YesSpotter(), progress=False)
    m = results["metrics"]
    said = [r for r in results["records"] if r["kind"] == "utterance"]
    assert m["utterances"] == len(WORDS) and m["detected"] == 1.0 and m["extra"] == 0
    assert m["accuracy"] == round(2 / 6, 4) and m["keyword_accuracy"] == round(2 / 5, 4)
    assert [r["correct"] for r in said] == [w == "yes" for w, _, _ in WORDS]
    bands = {r["band"]: r["n"] for r in results["breakdown"]["distance"]}
    assert bands == {"< 1.5 m": 2, "1.5-3 m": 2, "> 3 m": 2}
    assert [r["band"] for r in results["breakdown"]["rt60"]] == ["0.41 s"]
    assert results["confusion"]["labels"][:2] == ["yes", "no"] or "yes" in results["confusion"]["labels"]
    assert "## By talker distance" in table_markdown(results) and "vs_distance.png" in figures(results)


def test_extra_detections_and_false_keywords_are_counted(signals):
    class Doubled(YesSpotter):
        def __call__(self, audio, rate):
            r = super().__call__(audio, rate)
            return KeywordReading(np.r_[r.starts, r.starts + 0.02], np.r_[r.ends, r.starts + 0.05],
                                  r.labels * 2, np.r_[r.confidences, r.confidences])

    m = sb.run(sb.SignalConfig("speech/keywords", "test"), signals, sensor=Doubled(), progress=False)["metrics"]
    assert m["extra"] == len(WORDS) and m["false_keywords"] == len(WORDS) and m["detected"] == 1.0


def test_bad_runs_are_refused(signals):
    empty = WorldSignals(5.0, 16000, {}, None, (), {})
    with pytest.raises(SpecError, match="heart monitor"):
        sb.run(sb.SignalConfig("biosignal/ecg", "w"), empty, sensor=NormalEcg(), progress=False)
    with pytest.raises(SpecError, match="nobody saying"):
        sb.run(sb.SignalConfig("speech/keywords", "w"), empty, sensor=YesSpotter(), progress=False)
    with pytest.raises(SpecError, match="not a signal"):
        sb.run(sb.SignalConfig("person/centernet", "w"), signals, sensor=YesSpotter(), progress=False)
    with pytest.raises(SpecError, match="window_s"):
        sb.SignalConfig("speech/keywords", window_s=-1)
    assert sb.is_signal_sensor(spec("biosignal/ecg")) and not sb.is_signal_sensor(spec("gesture/rgbd"))


def test_keyword_sweep_varies_distance_and_rt60(signals, monkeypatch):
    import hcgym.synthesis.world_signals as ws

    calls = []

    def fake(world, *, seed, duration, rt60, distance_scale):
        calls.append((rt60, distance_scale))
        said = tuple(Utterance(u.human, u.word, u.label, u.start, u.end, u.distance * distance_scale, u.speaker)
                     for u in signals.utterances)
        return WorldSignals(14.0, 16000, {}, signals.audio[:14 * 16000], said, {"rt60_measured": rt60 + 0.01})

    monkeypatch.setattr(ws, "world_signals", fake)
    sweep = sb.keyword_sweep("voice_commands", YesSpotter(), distance_scales=(1.0, 2.0), rt60s=(0.3, 0.6),
                             progress=False)
    assert calls == [(0.3, 1.0), (0.3, 2.0), (0.6, 1.0), (0.6, 2.0)] and len(sweep["rows"]) == 4
    assert sweep["rows"][1]["mean_distance"] == pytest.approx(2 * sweep["rows"][0]["mean_distance"], abs=1e-3)
    assert all(r["accuracy"] == round(2 / 6, 4) for r in sweep["rows"])
    assert "| 0.3 s | 0.31 s | 2 |" in sweep_markdown(sweep) and sweep_figure(sweep)[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------------ hcgym evaluate sensor
@pytest.fixture
def small_world(signals, monkeypatch):
    """``world_signals`` of any world gives the hand-built signals (first 20 s)."""
    import hcgym.synthesis.world_signals as ws

    short = WorldSignals(20.0, 16000, {k: h for k, h in signals.hearts.items()}, signals.audio[:20 * 16000],
                         signals.utterances, signals.room)
    monkeypatch.setattr(ws, "world_signals", lambda world, **kw: short)
    return short


def test_evaluate_sensor_dispatches_signal_sensors(small_world, tmp_path, capsys):
    from hcgym.scripts.cli import main

    out = tmp_path / "ecg"
    assert main(["evaluate", "sensor", "biosignal/ecg", "--world", "heart_monitor", "--out", str(out)]) == 0
    assert {"results.json", "table.md", "confusion.png", "vs_activity.png"} <= {p.name for p in out.iterdir()}
    r = json.loads((out / "results.json").read_text())
    assert r["task"] == "ecg beats and rhythm" and r["metrics"]["sensitivity"] > 0.95 and r["config"]["duration"] == 20
    assert "[bench] biosignal/ecg in heart_monitor: beat accuracy" in capsys.readouterr().out
    out = tmp_path / "kw"
    assert main(["evaluate", "sensor", "speech/keywords", "--world", "voice_commands", "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["metrics"]["utterances"] == len(WORDS) and r["metrics"]["detected"] >= 5 / 6


def test_evaluate_signal_sensor_bad_input_writes_nothing(small_world, tmp_path, capsys):
    from hcgym.scripts.cli import main

    out = tmp_path / "x"
    assert main(["evaluate", "sensor", "biosignal/ecg", "--world", "heart_monitor", "--camera", "c",
                 "--out", str(out)]) == 2
    assert main(["evaluate", "sensor", "speech/keywords", "--world", "voice_commands", "--rt60", "0.3",
                 "--out", str(out)]) == 2
    assert main(["evaluate", "sensor", "biosignal/ecg", "--world", "heart_monitor", "--onnx",
                 str(tmp_path / "missing.onnx"), "--out", str(out)]) == 2
    assert main(["evaluate", "sensor", "biosignal/ecg", "--world", "heart_monitor", "--sensor-arg",
                 "beat_model=nope.pt", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--camera" in err and "--rt60" in err and "--onnx" in err and "--sensor-arg" in err
    assert not out.exists()
