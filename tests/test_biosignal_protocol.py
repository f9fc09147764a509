"""``hcgym evaluate biosignal``: the quick protocol end to end, its checks and its errors."""

import json

import pytest

from hcgym.errors import SpecError
from hcgym.perception.biosignal import protocol
from hcgym.scripts.cli import main


def test_quick_evaluate_writes_report(tmp_path):
    out = tmp_path / "ev"
    assert main(["evaluate", "biosignal", "--quick", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["filter"]) == {"mlp", "cnn"}
    assert {"plain", "filtered", "gain_acc", "sigma"} <= set(res["filter"]["cnn"])
    assert [lv["snr_db"] for lv in res["noise_sweep"]] == [None, 0.0]
    assert res["noise_sweep"][0]["train"] == 4 * protocol.BEATS_PER_PERSON
    assert "Proposed + CNN" in (out / "table.md").read_text()
    t24 = res["table24"]
    assert t24["params"]["lightweight"] < 0.6 * t24["params"]["baseline"]
    assert t24["params"]["lightweight_filtered"] - t24["params"]["lightweight"] == 3 + 2 * 7 * 12
    assert "| Lightweight + Proposed |" in (out / "table.md").read_text()
    assert (out / "filter_gain.png").stat().st_size > 1000


def test_train_and_test_people_differ_and_levels_share_clean_beats():
    cfg = protocol.quick_config(3)
    beats = protocol.simulated_beats(cfg)
    a, b = beats("train", None), beats("test", None)
    assert a[0].shape == (4 * protocol.BEATS_PER_PERSON, 187) and b[0].shape[0] == 2 * protocol.BEATS_PER_PERSON
    assert not any((b[0][:50, None] == a[0][None]).all(-1).any(1))
    noisy = beats("train", 0.0)
    assert (noisy[1] == a[1]).all() and not (noisy[0] == a[0]).all()


def test_filter_checks_order_noise_levels():
    def level(snr, gain):
        cell = {"gain_acc": gain, "gain_f1": gain}
        return {"snr_db": snr, "backbones": {"mlp": cell, "cnn": cell}}

    res = {"levels": [level(None, -0.01), level(10.0, 0.0), level(0.0, 0.01), level(-5.0, 0.02)]}
    c = protocol.filter_checks(res, 10.0)
    assert c["noise_order"] == [None, 10.0, 0.0, -5.0]
    assert c["gain_grows_with_noise"]["acc"] == pytest.approx(1.0)
    assert c["all_backbones"]


def test_bad_config_and_cli_errors(tmp_path, capsys):
    with pytest.raises(SpecError, match="main_snr"):
        protocol.BiosignalEvalConfig(snr_db=(None, 0.0), main_snr=5.0).check()
    assert main(["evaluate", "biosignal", "--quick", "--snr", "clean,0", "--main-snr", "7",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--main-snr" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):
        main(["evaluate", "biosignal", "--snr", "loud", "--out", str(tmp_path / "y")])


def test_nbof_part_and_its_table():
    from hcgym.perception.biosignal.report import nbof_table

    part = protocol.nbof_part(0, quick=True)
    assert set(part["nbof"]) == {"nbof", "tnbof", "nbof-ctsa", "tnbof-ctsa"}
    assert {"f1_mean", "f1_std"} <= set(part["nbof"]["nbof-ctsa"])
    assert len(part["order_task"]["nbof"]["per_seed"]) == 3
    c = part["nbof_checks"]
    assert c["af_ctsa_ge_nbof"] == (part["nbof"]["nbof-ctsa"]["f1_mean"] >= part["nbof"]["nbof"]["f1_mean"])
    t = nbof_table(part)
    assert "| nbof-ctsa |" in t and "77.75 ± 1.31 / 76.62 ± 1.77" in t
