"""The one writer, markdown table, figure and training-curve implementation (core/report.py), the test-set
recipe shared by the NMS and detector protocols (synthesis/dataset/test_sets.py), and the protocols' tables."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from hcgym import report
from hcgym.errors import SpecError

PNG = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ files
def test_write_report_writes_results_table_and_figures_without_artefacts(tmp_path):
    results = {"accuracy": 84.75, "per_pan": {"30": 90.0}, "_data": object()}
    written = report.write_report(tmp_path / "out", results, "| a |\n", {"fig.png": PNG, "sub/x.gif": b"GIF89a"})
    assert [p.name for p in written] == ["results.json", "table.md", "fig.png", "x.gif"]
    # The artefacts (keys beginning with "_") never reach results.json; the layout is json indent=1.
    assert (tmp_path / "out" / "results.json").read_text() == json.dumps({"accuracy": 84.75, "per_pan": {"30": 90.0}},
                                                                         indent=1)
    assert (tmp_path / "out" / "table.md").read_text() == "| a |\n"
    assert (tmp_path / "out" / "sub" / "x.gif").read_bytes() == b"GIF89a"
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary file left behind


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    out = tmp_path / "out"
    report.write_files(out, {"results.json": b"old"})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        report.write_files(out, {"results.json": b"new"})
    assert (out / "results.json").read_bytes() == b"old"
    assert [p.name for p in out.iterdir()] == ["results.json"]


# ------------------------------------------------------------------ tables
def test_markdown_table():
    assert report.markdown_table(["Method", "N=10"], [["greedy", "**65.4%**"], ["soft", ""]]) == [
        "| Method | N=10 |", "|---|---|", "| greedy | **65.4%** |", "| soft |  |"]
    assert report.markdown_table(["a", "b", "c"], []) == ["| a | b | c |", "|---|---|---|"]


def test_active_fr_table_puts_the_paper_beside_each_agent():
    from hcgym.agents.evaluation.active_fr import table_markdown

    cells = [{"distance_m": 1.0, "angle_deg": 0.0, "confidence": 0.7}, {"distance_m": 8.0, "angle_deg": 0.0,
                                                                       "confidence": 0.1}]
    results = {"protocol": "setup1", "agents": [{"agent": "static", "cells": cells},
                                                {"agent": "ppo", "cells": [dict(c, confidence=0.5) for c in cells]}]}
    lines = table_markdown(results).splitlines()
    assert lines[0] == "| Distance | Static | Static (paper) | PPO | PPO (paper) |"
    assert lines[2] == "| 1 m | 0.70 | 0.76 | 0.50 | 0.78 |"
    assert lines[3] == "| 8 m | 0.10 |  | 0.50 |  |"  # 8 m is not one of the paper's cells
    assert lines[4] == "| **mean** | **0.40** | 0.76 | **0.50** | 0.78 |"


def test_detector_table_lists_the_seed_table_12():
    from hcgym.perception.detection.evaluation import PAPER_TABLE12, table_markdown

    score = {"ap50": 61.25, "precision": 70.0, "recall": 50.0, "ms": 12.34, "images": 4, "people": 9}
    results = {"domain": "field", "seed": 0, "detector": "shipped", "fingerprint": "abc", "nms": "greedy_0.5",
               "score_threshold": 0.3, "replay": 2,
               "rows": [{"model": "fine-tuned k=2", "finetune_images": 2, "urban": score, "human_only": score,
                         "human_negative": score}]}
    text = table_markdown(results)
    assert ("| fine-tuned k=2 | 2 field images + 2 urban (replay) | 61.2 | 61.2 | 61.2 | 70.0 / 50.0 | 70.0 / 50.0 "
            "| 12.3 |") in text
    assert "| SSD | WIDER | 43.7 | 26.2 |" in text and len(PAPER_TABLE12) == 9


# ------------------------------------------------------------------ figures
def test_training_curve_draws_the_metric_only_where_an_epoch_has_it():
    with_metric = report.training_curve([{"epoch": 1, "loss": 1.0, "val_ap50": None},
                                         {"epoch": 2, "loss": 0.5, "val_ap50": 0.6}], title="t",
                                        loss_label="loss", metric="val_ap50", metric_label="AP (%)",
                                        metric_scale=100.0)
    without = report.training_curve([{"epoch": 1, "loss": 1.0, "val_ap50": None},
                                     {"epoch": 2, "loss": 0.5}], title="t", loss_label="loss", metric="val_ap50",
                                    metric_label="AP (%)")
    loss_only = report.training_curve([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}], title="t",
                                      loss_label="loss")
    assert with_metric[:8] == PNG and without[:8] == PNG
    assert without == loss_only  # no epoch with the metric: no second axis
    assert with_metric != without


def test_the_three_training_commands_share_the_one_curve():
    from hcgym.scripts import train, train_detector, train_seq2seq_nms

    for settings in (train.FACE_CURVE, train_detector.CURVE, train_seq2seq_nms.CURVE):
        assert report.training_curve([{"epoch": 1, "loss": 2.0, settings["metric"]: 0.5}], **settings)[:8] == PNG
    for module in (train, train_detector, train_seq2seq_nms):
        assert not hasattr(module, "training_curve") or module.training_curve is report.training_curve


def test_gif_bytes_loop_over_the_frames():
    from io import BytesIO

    from PIL import Image

    frames = [np.full((8, 10, 3), v, np.uint8) for v in (0, 128, 255)]
    gif = Image.open(BytesIO(report.gif_bytes(frames, fps=4)))
    assert gif.format == "GIF" and gif.n_frames == 3 and gif.size == (10, 8) and gif.info["duration"] == 250


# ------------------------------------------------------------------ test sets
def test_test_set_families():
    from hcgym.synthesis.dataset.test_sets import CROWD_DENSITIES, TEST_SETS, crowd_scene, generate_test_set

    assert set(CROWD_DENSITIES) | {"urban", "field"} == set(TEST_SETS)
    world, dense = TEST_SETS["dense"]
    assert world == "crowd_street" and (dense.humans, dense.occlusion) == ((20, 40), 0.7)
    assert TEST_SETS["urban"] == ("crowd_street", crowd_scene((1, 6), 0.3))
    for _, scene in TEST_SETS.values():
        assert scene.splits == (0.0, 0.0, 1.0) and scene.identities == 48  # every image held out for testing
    assert TEST_SETS["field"][0] == "field" and TEST_SETS["field"][1].empty_fraction == 0.8
    with pytest.raises(SpecError, match="kind.*crowded.*sparse"):
        generate_test_set("unused", "crowded", 1, 0)
