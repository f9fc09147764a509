"""The keyword sensor ``speech/keywords``: segmentation of spoken words, the shipped MatchboxNet on test voices, any
length and sampling rate, study bundles by path, the inputs it refuses, its ONNX export (``hcgym export``) and
``hcgym train keywords``."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.registry import make, spec
from hcgym.perception.speech import sensor as ks
from hcgym.synthesis.speech import CLASSES, KEYWORDS, speakers, spoken_word
from hcgym.synthesis.speech.noise import active_span

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def spotter():
    return make("speech/keywords")


def said(words: list[str], gap: float = 0.6, noise: float = 1e-3, seed: int = 0) -> tuple[np.ndarray, list]:
    """16 kHz audio of ``words`` said by test voices one after another, and their ``(word, start, end)``."""
    voices = speakers(seed, len(words), "test")
    rng = np.random.default_rng(seed)
    parts, truth, t = [rng.normal(0, noise, int(0.5 * 16000))], [], 0.5
    for word, voice in zip(words, voices):
        x = spoken_word(word, voice, 16000)
        x = 0.4 * x / np.abs(x).max()
        lo, hi = active_span(x)
        truth.append((word, t + lo / 16000, t + hi / 16000))
        parts += [x + rng.normal(0, noise, len(x)), rng.normal(0, noise, int(gap * 16000))]
        t += (len(x) + int(gap * 16000)) / 16000
    return np.concatenate(parts).astype(np.float32), truth


def test_registered_and_listed(capsys):
    from hcgym.scripts.cli import main

    s = spec("speech/keywords")
    assert (s.input, s.output, s.exports_onnx, s.task) == ("microphone audio", "KeywordReading", True, "speech")
    assert main(["sensors", "speech/"]) == 0
    assert "microphone audio" in capsys.readouterr().out


def test_voiced_spans_find_each_word():
    audio, truth = said(["yes", "stop", "left", "marvin", "go"])
    spans = ks.voiced_spans(audio)
    assert len(spans) == len(truth)
    for (_, a, b), (s, e) in zip(truth, spans):
        assert abs(s - a) < 0.05 and b - 0.15 < e < b + 0.2  # quiet final consonants may fall below 20 dB
    assert len(ks.voiced_spans(np.zeros(16000))) == 0 and len(ks.voiced_spans(np.zeros(10))) == 0
    long = ks.voiced_spans(np.sin(np.arange(3 * 16000) / 3.0) * np.r_[np.ones(40000), np.full(8000, 1e-4)])
    assert len(long) >= 3 and np.all(long[:, 1] - long[:, 0] <= 1.0 + 1e-9)  # 2.5 s of tone split to <= 1 s


def test_centred_windows_zero_outside():
    audio = np.arange(1, 3 * 16000 + 1, dtype=np.float32)
    w = ks.centred_windows(audio, np.array([[0.0, 0.2], [1.4, 1.6], [2.9, 3.0]]))
    assert w.shape == (3, 16000)
    assert np.all(w[0, :6400] == 0) and w[0, 6400] == audio[0]  # centre 0.1 s: 6400 samples before the start
    assert w[1, 0] == audio[int(1.5 * 16000) - 8000] and w[1, -1] == audio[int(1.5 * 16000) + 7999]
    assert w[2, 8799] == audio[-1] and np.all(w[2, 8800:] == 0)  # centre 2.95 s: 0.45 s past the end


def test_shipped_model_reads_keywords_of_new_voices(spotter):
    words = list(KEYWORDS)
    audio, truth = said(words, seed=3)
    reading = spotter(audio, 16000)
    assert len(reading) == len(words) and reading.labels[0] in CLASSES
    right = sum(lab == w for lab, (w, *_) in zip(reading.labels, truth))
    assert right >= 7, list(zip(reading.labels, words))
    assert np.all((reading.confidences > 0) & (reading.confidences <= 1)) and np.all(reading.ends > reading.starts)
    prov = json.loads((ks.MODELS / f"PROVENANCE_{ks.SHIPPED[:-3]}.json").read_text())
    assert prov["command"].startswith("hcgym train keywords") and prov["test_acc"] > 70
    assert (ks.MODELS / ks.SHIPPED).stat().st_size == prov["bytes"] < 1_000_000


def test_any_length_and_sampling_rate(spotter):
    audio, _ = said(["no", "up"], seed=1)
    at16 = spotter(audio, 16000)
    from scipy.signal import resample_poly

    at48 = spotter(resample_poly(audio, 3, 1), 48000)
    at8 = spotter(resample_poly(audio, 1, 2), 8000)
    assert len(at48) == len(at8) == len(at16) == 2 and at48.labels == at16.labels
    assert np.allclose(at48.starts, at16.starts, atol=0.03)
    empty = spotter(np.zeros(800), 16000)
    assert len(empty) == 0 and empty.labels == [] and empty.starts.shape == (0,)


def test_bad_input_is_refused(spotter, tmp_path):
    for args, field in (((np.zeros(16000), 100), "sample_rate"), ((np.zeros((2, 16000)), 16000), "audio"),
                        ((np.zeros(10), 16000), "audio"), ((np.full(16000, np.inf), 16000), "audio")):
        with pytest.raises(SpecError) as e:
            spotter(*args)
        assert e.value.field == field
    with pytest.raises(SpecError, match="not found"):
        ks.KeywordSensor(model=tmp_path / "missing.pt")
    with pytest.raises(SpecError, match="threshold_db"):
        ks.KeywordSensor(threshold_db=-3)
    with pytest.raises(SpecError, match="variant"):
        ks.KeywordSensor(variant="E")  # the shipped file holds one model
    from hcgym.perception.biosignal.sensor import MODELS, SHIPPED_BEAT

    with pytest.raises(SpecError, match="neither a keyword model"):
        ks.KeywordSensor(model=MODELS / SHIPPED_BEAT)


def test_a_study_bundle_by_path(tmp_path, spotter):
    """A Self-ONN study bundle (float16 weights of several runs): ``variant``/``seed`` choose the run."""
    from hcgym.perception.speech.matchboxnet import MatchboxNet

    runs = []
    for variant, seed, acc in (("A", 0, 50.0), ("A", 1, 60.0), ("E", 0, 70.0)):
        torch.manual_seed(seed)
        net = MatchboxNet(len(CLASSES), variant, width=8)
        runs.append({"config": variant, "seed": seed, "tanh": True, "variant": variant, "classes": len(CLASSES),
                     "width": 8, "val_acc": acc, "test_acc": acc, "test_acc_fp16": acc,
                     "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}})
    buf = io.BytesIO()
    torch.save({"kind": "speech_selfonn_study", "classes": list(CLASSES), "settings": {}, "runs": runs}, buf)
    (tmp_path / "study.pt").write_bytes(buf.getvalue())
    best = ks.KeywordSensor(model=tmp_path / "study.pt")
    assert best.source["variant"] == "A" and best.source["seed"] == 1 and best.classes == tuple(CLASSES)
    e = ks.KeywordSensor(model=tmp_path / "study.pt", variant="E", seed=0)
    assert e.source["config"] == "E"
    audio, _ = said(["go"])
    assert len(e(audio, 16000)) == 1
    with pytest.raises(SpecError, match="no run of variant 'F'"):
        ks.KeywordSensor(model=tmp_path / "study.pt", variant="F")


def test_onnx_export_through_the_cli_answers_as_torch(spotter, tmp_path):
    from hcgym.perception.base import OnnxSensor
    from hcgym.scripts.cli import main

    assert main(["export", "speech/keywords", "--out", str(tmp_path / "x"), "--inputs", "3"]) == 0
    report = json.loads((tmp_path / "x" / "export.json").read_text())
    assert report["parity_ok"] and report["reload"]["same"] and report["input_shapes"] == {"audio": "1x16000"}
    onnx = OnnxSensor(tmp_path / "x" / "speech_keywords.onnx", sensor="speech/keywords", threshold_db=8.0)
    assert onnx.inner.threshold_db == 8.0 and onnx.inner.classes == spotter.classes
    audio, _ = said(["left", "off", "right"], seed=2)
    a, b = ks.KeywordSensor(threshold_db=8.0)(audio, 16000), onnx(audio, 16000)
    assert a.labels == b.labels and np.array_equal(a.starts, b.starts)
    assert np.max(np.abs(a.confidences - b.confidences)) < 1e-4


@pytest.mark.slow
def test_train_quick_writes_a_loadable_model(tmp_path):
    from hcgym.scripts.cli import main

    assert main(["train", "keywords", "--out", str(tmp_path), "--quick", "--seed", "1"]) == 0
    prov = json.loads((tmp_path / "PROVENANCE_keywords_matchboxnet.json").read_text())
    assert prov["seed"] == 1 and prov["quick"] and len(prov["history"]) == 1 and prov["model"]["config"] == "A"
    sensor = make("speech/keywords", model=str(tmp_path / "keywords_matchboxnet.pt"))
    assert sensor.source["width"] == 16
    assert main(["train", "keywords", "--out", str(tmp_path / "keywords_matchboxnet.pt"), "--quick"]) == 2
