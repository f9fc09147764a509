"""``hcgym export``: ONNX + sidecar with parity against PyTorch, latency, reload through the registry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcgym.errors import SpecError


@pytest.mark.parametrize("sensor", ["person/centernet", "face/hcgym-irnet", "nms/seq2seq"])
def test_export_is_parity_checked_and_reloads(sensor, tmp_path):
    from hcgym.perception.base import OnnxSensor
    from hcgym.perception.export import PARITY_LIMIT, export_sensor

    out = tmp_path / "exp"
    r = export_sensor(sensor, out, n=4, repeats=1)
    assert r["parity_ok"] and r["parity_max_abs_diff"] <= PARITY_LIMIT and r["inputs"] == 4
    assert r["latency_ms"]["torch_eager_1_thread"] > 0 and r["latency_ms"]["onnxruntime_1_thread"] > 0
    assert r["reload"]["same"]
    assert json.loads((out / "export.json").read_text())["sensor"] == sensor
    assert "parity" in (out / "table.md").read_text()
    onnx = out / r["onnx"]
    reloaded = OnnxSensor(onnx, sensor=sensor)
    assert reloaded.name == f"{sensor}(onnx)"
    assert not list(tmp_path.glob(".*export-tmp"))
    assert r["opset"] >= 17 and 0 < r["onnx_bytes"] == onnx.stat().st_size and set(r["input_shapes"]) == {
        i.name for i in reloaded.session.get_inputs()}


def test_seq2seq_export_has_a_dynamic_number_of_candidates(tmp_path):
    """The NMS network's parity inputs vary N (and the edge-map size); latency is timed at N = 400."""
    from hcgym.perception.export import export_sensor

    r = export_sensor("nms/seq2seq", tmp_path / "s2s", n=6, repeats=1)
    assert r["input_shapes"]["boxes"].endswith("x4") and "-" in r["input_shapes"]["boxes"]
    assert r["input_shapes"]["scores"].split("-")[0] != r["input_shapes"]["scores"].split("-")[-1]
    assert r["latency_inputs"]["boxes"] == "400x4" and r["opset"] == 18
    assert "NmsResult" in r["reload"]["detail"] and "simulator" in r["parity_inputs"]


def test_export_refuses_and_writes_nothing(tmp_path, monkeypatch):
    from hcgym.perception import export as ex

    with pytest.raises(SpecError, match="does not export to ONNX"):
        ex.export_sensor("face/dlib", tmp_path / "a")
    with pytest.raises(SpecError, match="unknown sensor"):
        ex.export_sensor("nope/x", tmp_path / "b")
    monkeypatch.setattr(ex, "PARITY_LIMIT", -1.0)  # every export now fails its parity check
    with pytest.raises(SpecError, match="differs from PyTorch"):
        ex.export_sensor("person/centernet", tmp_path / "c", n=2, repeats=1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    assert not list(tmp_path.iterdir())


def test_export_cli(tmp_path, capsys):
    from hcgym.scripts.cli import main

    assert main(["export", "person/centernet", "--out", str(tmp_path / "d"), "--inputs", "2"]) == 0
    assert "parity" in capsys.readouterr().out
    assert main(["export", "face/dlib", "--out", str(tmp_path / "e")]) == 2
    assert "does not export" in capsys.readouterr().err
    assert np.isfinite(json.loads((tmp_path / "d" / "export.json").read_text())["parity_max_abs_diff"])
