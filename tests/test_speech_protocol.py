"""``hcgym evaluate speech`` (:mod:`hcgym.perception.speech.protocol`) on a tiny study bundle: the quick run end to
end through the CLI, the fresh clips and their dry copies, the room responses, and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception.speech import protocol
from hcgym.perception.speech.study import BUNDLE


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """A tiny Self-ONN study (configurations A and E, seeds 0 and 1) written by ``hcgym train speech --tiny``."""
    from hcgym.scripts.cli import main

    out = tmp_path_factory.mktemp("speech_study")
    assert main(["train", "speech", "--out", str(out), "--tiny", "--configs", "A,E", "--seeds", "0,1"]) == 0
    return out / BUNDLE


def test_quick_run_through_the_cli_writes_table25_and_the_distance_sweep(tiny_bundle, tmp_path, one_torch_thread):
    from hcgym.scripts.cli import main

    out = tmp_path / "eval"
    assert main(["evaluate", "speech", "--quick", "--seed", "3", "--bundle", str(tiny_bundle), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["by_distance.png", "configs.png", "results.json", "table.md"]
    assert all((out / f).read_bytes()[:4] == b"\x89PNG" for f in ("configs.png", "by_distance.png"))
    r = json.loads((out / "results.json").read_text())
    assert r["data"]["seed"] == protocol.EVAL_SEED_BASE + 3 and r["data"]["split"] == "test"
    assert r["data"]["clips"] == 48 and sum(r["data"]["class_counts"]) == 48
    assert r["bundle"]["data_seed"] == 0 and r["bundle"]["runs"] == 4
    assert list(r["configs"]) == ["A", "E"]
    for c in r["configs"].values():
        assert set(c) >= {"acc_mean", "acc_std", "per_seed", "macs", "params", "power_products"}
        assert sorted(c["per_seed"]) == ["0", "1"] and all(0 <= a <= 100 for a in c["per_seed"].values())
        assert c["acc_mean"] == pytest.approx(np.mean(list(c["per_seed"].values())), abs=0.01)
        assert all(a * 48 / 100 == pytest.approx(round(a * 48 / 100), abs=0.01) for a in c["per_seed"].values())
    a, e = r["configs"]["A"], r["configs"]["E"]
    assert e["params"] > a["params"] and a["power_products"] == 0 < e["power_products"]
    checks = r["checks"]
    assert checks["e_ge_a"] == (e["acc_mean"] >= a["acc_mean"]) and checks["f_lt_a"] is None
    assert checks["mac_ratio_e_a"] == pytest.approx(e["macs"]["fvcore"] / a["macs"]["fvcore"], abs=1e-3)
    diff = checks["e_minus_a"]
    assert diff["seeds"] == [0, 1] and len(diff["ci95"]) == 2
    assert diff["per_run"] == pytest.approx([e["per_seed"][s] - a["per_seed"][s] for s in "01"], abs=0.011)
    cells = r["by_distance"]
    assert [(c["distance"], c["rt60"]) for c in cells] == [(1.0, 0.3), (4.0, 0.3)]
    for c in cells:
        assert set(c["acc"]) == {"A", "E"} and sorted(c["acc_per_seed"]["E"]) == ["0", "1"]
        assert 0.2 < c["rt60_measured"] < 0.6
    assert cells[0]["snr_db"] > cells[1]["snr_db"]  # the farther talker is heard closer to the noise
    table = (out / "table.md").read_text()
    assert "97.1789" in table and "97.7105" in table and "By distance" in table and "4 m" in table


def test_dry_clips_are_the_evaluation_words_without_room_or_noise():
    from hcgym.synthesis.speech import CLASSES, keyword_dataset
    from hcgym.synthesis.speech.noise import rms

    config = protocol.quick_config(5)
    clips = keyword_dataset(**protocol._dataset_kwargs(config))
    audio, labels, meta = protocol.dry_speech(config, clips.y)
    assert audio.shape == (16, 16000) and len(meta) == 16
    assert CLASSES.index("silence") not in labels
    for x, y, m in zip(audio, labels, meta):
        same = clips.meta[m["index"]]
        assert y == clips.y[m["index"]] and (m["word"], m["speaker"], m["onset"]) == (same["word"], same["speaker"],
                                                                                    same["onset"])
        start = int(round(m["onset"] * 16000))
        end = start + int(round(m["duration"] * 16000))
        assert rms(x[start:end]) == pytest.approx(protocol.WORD_RMS, rel=1e-6)
        assert not x[:start].any() and not x[end:].any()


def test_room_responses_fall_with_distance_and_ring_longer_with_rt60():
    near, rt_short = protocol.room_response(1.0, 0.2)
    far, _ = protocol.room_response(4.0, 0.2)
    _, rt_long = protocol.room_response(1.0, 0.6)
    assert np.argmax(np.abs(near)) < 20 and np.argmax(np.abs(far)) < 20  # cut just before the direct sound
    assert 0.15 < np.abs(far).max() / np.abs(near).max() < 0.35  # direct sound as 1/r
    assert rt_long > rt_short + 0.2


def test_bad_input_is_one_line_and_writes_nothing(tiny_bundle, tmp_path, capsys, monkeypatch):
    from hcgym.scripts.cli import main

    out = tmp_path / "o"
    monkeypatch.setattr(protocol, "DEFAULT_BUNDLE", tmp_path / "none" / BUNDLE)
    assert main(["evaluate", "speech", "--quick", "--out", str(out)]) == 2  # no bundle shipped here
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bundle" in err[0] and "hcgym train speech" in err[0]
    assert main(["evaluate", "speech", "--quick", "--out", str(out), "--bundle", str(tmp_path / "x.pt")]) == 2
    assert "--bundle" in capsys.readouterr().err
    bundle = ["--bundle", str(tiny_bundle)]
    assert main(["evaluate", "speech", "--quick", "--out", str(out), *bundle, "--distances", "1,20"]) == 2
    assert "--distances" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "speech", "--quick", "--out", str(out), *bundle, "--seed", "-1"])
    assert "--seed" in capsys.readouterr().err
    # a study whose data seed is the evaluation's: its own clips would be scored
    other = tmp_path / "study"
    other.mkdir()
    shutil.copy(tiny_bundle, other / BUNDLE)
    prov = json.loads(tiny_bundle.with_name("PROVENANCE_speech_selfonn_study.json").read_text())
    prov["data"]["seed"] = protocol.EVAL_SEED_BASE + 2
    (other / "PROVENANCE_speech_selfonn_study.json").write_text(json.dumps(prov))
    assert main(["evaluate", "speech", "--quick", "--out", str(out), "--bundle", str(other / BUNDLE),
                 "--seed", "2"]) == 2
    assert "--seed" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SpecError, match="distance_count"):
        protocol.SpeechEvalConfig(count=10, distance_count=20).check()
