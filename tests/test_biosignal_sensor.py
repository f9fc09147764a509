"""The wearable-ECG sensor ``biosignal/ecg`` with its shipped models: R peaks, beats and rhythm on simulated streams,
the inputs it refuses, its ONNX export (``hcgym export``) and ``hcgym train biosignal``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception.biosignal import sensor as es
from hcgym.perception.registry import make, spec
from hcgym.synthesis.ecg import ecg_stream

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ecg():
    return make("biosignal/ecg")


def within(detected: np.ndarray, truth: np.ndarray, tol: float = 0.075) -> int:
    """How many true R peaks have a detection within ``tol`` s."""
    return int(sum(np.min(np.abs(detected - t)) <= tol for t in truth)) if len(detected) else 0


def test_registered_and_listed(capsys):
    from hcgym.scripts.cli import main

    s = spec("biosignal/ecg")
    assert (s.input, s.output, s.exports_onnx, s.task) == ("ecg window", "EcgReading", True, "biosignal")
    assert main(["sensors", "biosignal/"]) == 0
    assert "ecg window" in capsys.readouterr().out


@pytest.mark.parametrize("rhythm,share,snr", [("normal", 0.0, None), ("af", 0.0, 20.0), ("other", 0.0, 10.0),
                                              ("normal", 0.3, 20.0)])
def test_r_peaks_of_clean_and_noisy_streams(rhythm, share, snr):
    s = ecg_stream([(0.0, 10.0, "rest"), (10.0, 20.0, "run")], 7, fs=250, rhythm=rhythm, abnormal_share=share,
                   snr_db=snr)
    r = es.detect_r_peaks(s.signal, s.fs)
    truth = s.beats.times[(s.beats.times > 0.3) & (s.beats.times < 19.7)]
    assert within(r, truth) >= len(truth) - 1 and len(r) <= len(s.beats) + 1


def test_clean_normal_stream(ecg):
    s = ecg_stream([(0.0, 12.0, "rest")], 3, fs=250)
    reading = ecg(s.signal, s.fs)
    truth = s.beats.times
    assert within(reading.beats_t, truth) == len(truth) == len(reading)
    labelled = [lab for lab in reading.beat_labels if lab != es.UNCLASSIFIED]
    assert len(labelled) >= len(truth) - 2 and labelled.count("normal") >= 0.9 * len(labelled)
    assert reading.rhythm == "normal" and 0 < reading.rhythm_confidence <= 1
    assert abs(reading.heart_rate - 60 / np.median(np.diff(truth))) < 2
    done = np.isfinite(reading.beat_confidence)
    assert np.all((reading.beat_confidence[done] >= 0.5) & (reading.beat_confidence[done] <= 1))
    assert all((lab == es.UNCLASSIFIED) != ok for lab, ok in zip(reading.beat_labels, done))


def test_af_stream_is_read_as_af(ecg):
    s = ecg_stream([(0.0, 60.0, "rest")], 11, fs=250, rhythm="af", snr_db=20)
    w = int(ecg.window_s * s.fs)
    rhythms = [ecg(s.signal[a:a + w], s.fs).rhythm for a in range(0, len(s.signal) - w + 1, w)]
    assert rhythms.count("af") > rhythms.count("normal") and rhythms.count("af") >= len(rhythms) / 2


def test_long_and_short_windows(ecg):
    s = ecg_stream([(0.0, 3 * ecg.window_s + 4, "rest")], 5, fs=360)
    long = ecg(s.signal, s.fs)
    assert long.rhythm is not None and len(long) >= 3 * ecg.window_s  # > 60 bpm
    short = ecg(s.signal[:int(3 * s.fs)], s.fs)
    assert short.rhythm is None and math.isnan(short.rhythm_confidence) and len(short) >= 2
    flat = ecg(np.zeros(int(2 * s.fs)), s.fs)
    assert len(flat) == 0 and math.isnan(flat.heart_rate)


def test_bad_input_is_refused(ecg, tmp_path):
    x = np.zeros(2500)
    for args, field in (((x, 10), "fs"), ((x, True), "fs"), ((x[None], 250), "signal"), ((x[:100], 250), "signal"),
                        ((np.r_[x, np.nan], 250), "signal"), (("abc", 250), "signal")):
        with pytest.raises(SpecError) as e:
            ecg(*args)
        assert e.value.field == field
    with pytest.raises(SpecError, match="not found"):
        es.EcgSensor(beat_model=tmp_path / "missing.pt")
    with pytest.raises(SpecError, match="is not an ecg_beat model"):
        es.EcgSensor(beat_model=es.MODELS / es.SHIPPED_RHYTHM)
    with pytest.raises(SpecError, match="unknown keys"):
        es.EcgSensor.from_config(beat_labels=["a", "b"], rhythm_labels=["a", "b"], rhythm_length=1000, x=1)
    with pytest.raises(SpecError, match="rhythm_length"):
        es.EcgSensor.from_config(beat_labels=["a", "b"], rhythm_labels=["a", "b"], rhythm_length=5)


def test_cut_beats_like_the_beat_set():
    """Kachuee cuts at 125 Hz: 187 samples min-max normalised, the beats whose 1.2 RR runs past the end incomplete."""
    s = ecg_stream([(0.0, 30.0, "rest")], 4, fs=125)
    beats, complete = es.cut_beats(s.signal.astype(np.float64), s.beats.times)
    assert beats.shape == (len(s.beats), 187) and complete[:-2].all() and not complete[-1]
    assert np.allclose(beats[complete].max(1), 1) and np.allclose(beats[complete].min(1), 0)


def test_shipped_models_and_provenance():
    for name in (es.SHIPPED_BEAT, es.SHIPPED_RHYTHM):
        path = es.MODELS / name
        prov = json.loads((es.MODELS / f"PROVENANCE_{path.stem}.json").read_text())
        assert path.stat().st_size < 1_000_000 and prov["bytes"] == path.stat().st_size
        assert prov["command"].startswith("hcgym train biosignal") and not prov["quick"]
        assert prov["held_out"]["acc"] > 0.85
    beat = json.loads((es.MODELS / "PROVENANCE_ecg_beat.json").read_text())
    assert beat["data"]["held_out"]["people"][0] >= 100_000 > beat["data"]["train"]["people"][1]


def test_onnx_export_through_the_cli_answers_as_torch(ecg, tmp_path):
    from hcgym.perception.base import OnnxSensor
    from hcgym.scripts.cli import main

    assert main(["export", "biosignal/ecg", "--out", str(tmp_path / "x"), "--inputs", "3"]) == 0
    report = json.loads((tmp_path / "x" / "export.json").read_text())
    assert report["parity_ok"] and report["reload"]["same"] and set(report["input_shapes"]) == {"beats", "window"}
    onnx = OnnxSensor(tmp_path / "x" / "biosignal_ecg.onnx", sensor="biosignal/ecg")
    for rhythm, seed in (("normal", 1), ("af", 2)):
        s = ecg_stream([(0.0, ecg.window_s + 3, "walk")], seed, fs=250, rhythm=rhythm, snr_db=15)
        a, b = ecg(s.signal, s.fs), onnx(s.signal, s.fs)
        assert np.array_equal(a.beats_t, b.beats_t) and a.beat_labels == b.beat_labels and a.rhythm == b.rhythm
        assert np.nanmax(np.abs(a.beat_confidence - b.beat_confidence)) < 1e-4
        assert abs(a.rhythm_confidence - b.rhythm_confidence) < 1e-4


@pytest.mark.slow
def test_train_quick_writes_loadable_models(tmp_path, capsys):
    from hcgym.scripts.cli import main

    assert main(["train", "biosignal", "--out", str(tmp_path), "--quick", "--seed", "2"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"ecg_beat.pt", "ecg_rhythm.pt", "PROVENANCE_ecg_beat.json",
                                                    "PROVENANCE_ecg_rhythm.json"}
    prov = json.loads((tmp_path / "PROVENANCE_ecg_rhythm.json").read_text())
    assert prov["seed"] == 2 and prov["quick"] and prov["data"]["held_out"]["seed"] == 2 + 1
    sensor = make("biosignal/ecg", beat_model=str(tmp_path / "ecg_beat.pt"), rhythm_model=str(tmp_path / "ecg_rhythm.pt"))
    s = ecg_stream([(0.0, 12.0, "rest")], 0, fs=250)
    assert len(sensor(s.signal, s.fs)) == len(s.beats)
    assert main(["train", "biosignal", "--out", str(tmp_path / "ecg_beat.pt")]) == 2
