"""The filter study: paired runs, summaries, gains and learned widths."""

import re

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception.biosignal.study import FilterStudyConfig, run_filter_study


def _beats(split, snr_db):
    rng = np.random.default_rng(0 if split == "train" else 1)
    n, length = 160, 40
    y = rng.integers(0, 2, n)
    t = np.linspace(0, 1, length)
    x = np.exp(-((t[None] - 0.3 - 0.3 * y[:, None]) ** 2) / 0.005)
    noise = 0.0 if snr_db is None else np.sqrt(x.var() / 10 ** (snr_db / 10))
    return (x + rng.normal(0, 1, x.shape) * noise).astype(np.float32), y


def test_filter_study_structure_and_determinism():
    cfg = FilterStudyConfig(backbones=("mlp", "cnn"), snr_db=(None, 0.0), seeds=(0, 1), epochs=2)
    a = run_filter_study(_beats, cfg)
    b = run_filter_study(_beats, cfg)
    assert [lv["snr_db"] for lv in a["levels"]] == [None, 0.0]
    cell = a["levels"][1]["backbones"]["cnn"]
    assert cell["params"]["filtered"] - cell["params"]["plain"] == 3 + 2 * 16 * 3
    assert len(cell["gain_acc_per_seed"]) == 2 and len(cell["sigma"]) == 3
    assert all(s > 0 for s in cell["sigma"])
    assert cell["gain_acc"] == pytest.approx(cell["filtered"]["acc"] - cell["plain"]["acc"])
    strip = [[{k: v for k, v in r[m].items() if k != "seconds"} for m in ("plain", "filtered")] for r in cell["runs"]]
    strip_b = [[{k: v for k, v in r[m].items() if k != "seconds"} for m in ("plain", "filtered")]
               for r in b["levels"][1]["backbones"]["cnn"]["runs"]]
    assert strip == strip_b


def test_filter_study_rejects_bad_config():
    with pytest.raises(SpecError, match="backbones"):
        run_filter_study(_beats, FilterStudyConfig(backbones=("vgg",)))
    with pytest.raises(SpecError, match="seeds"):
        run_filter_study(_beats, FilterStudyConfig(seeds=(1, 1)))


def test_filter_report_tables_and_figures():
    from hcgym.perception.biosignal.report import filter_figures, filter_table, sweep_table

    cfg = FilterStudyConfig(backbones=("mlp", "resnet"), snr_db=(None, 5.0), seeds=(0, 1), epochs=1)
    res = run_filter_study(_beats, cfg)
    t = filter_table(res, 5.0)
    assert "| Proposed + MLP |" in t and "0.9367 / 0.9637" in t and "5 dB" in t
    s = sweep_table(res)
    assert s.count("\n| clean |") == 2
    assert re.search(r"\| [+-]\d+\.\d\d / [+-]\d+\.\d\d \([0-2]/[0-2]\) \|", s)
    figs = filter_figures(res)
    assert set(figs) == {"filter_gain.png", "filter_sigma.png"}
    assert all(v.startswith(b"\x89PNG") for v in figs.values())
