"""Scenario sweeps of the sensor bench (``hcgym evaluate sensor ID --sweep``): grid text, the scene of a cell,
scores that do not depend on the engine, the centre matching rule and the command's files and errors."""

from __future__ import annotations

import io
import json
import shutil
import tempfile

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception.bench import BenchConfig, greedy_match
from hcgym.scripts.cli import main
from hcgym.synthesis import bench_sweep_report as report
from hcgym.synthesis.bench_sweep import SweepConfig, cell_frames, close_studio, format_sweep, parse_sweep, studio

#: Two of the avatars the shared test studio builds anyway (tests/conftest.py STUDIO_SEEDS).
SEEDS = (7000, 7001)


def small(sweep: str, sensors: tuple[str, ...] = ("face/mediapipe-full",), **kw) -> SweepConfig:
    return SweepConfig(sensors=sensors, grid=parse_sweep(sweep), per_cell=len(SEEDS), identities=SEEDS,
                       size=(320, 240), **kw)


def scores(results: dict) -> list:
    """Everything of a sweep's results that must not depend on where it ran (no latency, no run info)."""
    return [[(c["index"], c["metrics"], c["records"]) for c in s["cells"]] for s in results["sensors"]] + \
        [results["cells"], [s["metrics"] for s in results["sensors"]]]


# ------------------------------------------------------------------ the grid
def test_ranges_include_their_stop_and_lists_keep_their_order():
    grid = parse_sweep("distance=1:10:1,yaw=-90:90:15")
    assert grid[0] == ("distance", tuple(float(v) for v in range(1, 11)))
    assert grid[1][1] == tuple(float(v) for v in range(-90, 91, 15))
    assert parse_sweep("distance=0.5:1.4:0.3")[0][1] == (0.5, 0.8, 1.1, 1.4)
    assert parse_sweep(" yaw = 90, 0 ,45 ,distance=2") == (("yaw", (90.0, 0.0, 45.0)), ("distance", (2.0,)))
    g = parse_sweep("pitch=-20:20:10,distance=1,3.5")
    assert parse_sweep(format_sweep(g)) == g


def test_cells_run_the_first_axis_slowest_with_defaults_for_the_rest():
    cells = small("distance=1,2,yaw=0,30,60").cells()
    assert len(cells) == 6
    assert [(c["distance"], c["yaw"], c["pitch"]) for c in cells[:4]] == [(1, 0, 0), (1, 30, 0), (1, 60, 0), (2, 0, 0)]
    assert small("yaw=45").cells() == [{"distance": 1.0, "yaw": 45.0, "pitch": 0.0}]


@pytest.mark.parametrize("text, problem", [
    ("", "expected grid axes"),
    ("height=1:2:1", "unknown axis 'height' (axes: distance, yaw, pitch)"),
    ("yaw=0,yaw=30", "axis 'yaw' is given twice"),
    ("distance=", "axis 'distance' has no values"),
    ("1,2", "expected name=values, got '1'"),
    ("distance=1:10", "a range is start:stop:step"),
    ("distance=5:1:1", "step > 0 and stop >= start"),
    ("distance=1:2:0", "step > 0 and stop >= start"),
    ("distance=1:3:1,2", "either one range start:stop:step or a list"),
    ("distance=0.1", "distance must lie in [0.3, 50] m, got 0.1"),
    ("yaw=200", "yaw must lie in [-180, 180] deg"),
    ("distance=one", "distance: expected a number, got 'one'"),
    ("distance=nan", "expected a finite number"),
    ("distance=1,1", "listed twice"),
    ("distance=1:50:0.005", "a sweep has at most 5000 cells"),
    ("distance=1:40:0.5,yaw=-90:90:1", "cells; a sweep has at most 5000"),
])
def test_bad_grids_name_the_problem(text, problem):
    with pytest.raises(SpecError) as e:
        parse_sweep(text)
    assert e.value.field == "--sweep" and problem in e.value.problem


@pytest.mark.parametrize("kw, field, problem", [
    ({"sensors": ("face/nope",)}, "ID", "unknown sensor 'face/nope'"),
    ({"sensors": ("nms/greedy_0.5",)}, "ID", "not a frame"),
    ({"sensors": ("hands/mediapipe",)}, "ID", "moving people"),
    ({"sensors": ("face/dlib-hog", "face/dlib-hog")}, "ID", "listed twice"),
    ({"sensors": ("face/dlib-hog", "face/mediapipe-full"), "sensor_kwargs": {"upsample": 2}}, "--sensor-arg",
     "single ID"),
    ({"per_cell": 3}, "--identities", "2 identities for 3 per cell"),
    ({"size": (4, 240)}, "--size", "at least 8 pixels"),
    ({"hfov": 0.5}, "--hfov", "[1, 170]"),
    ({"bench": {"face_match": "box"}}, "--face-match", "expected iou or centre"),
    ({"bench": {"face_min_landmarks": 6}}, "--face-min-landmarks", "0..5"),
    ({"bench": {"score_threshold": 2.0}}, "--score-threshold", "(0, 1]"),
    ({"sensor_kwargs": {"upsample": 9}}, "--sensor-arg", "expected 0-3, got 9"),
    ({"sensor_kwargs": {"zoom": 2}}, "--sensor-arg", "does not take these arguments"),
    ({"sensors": ("face/dlib-hog", "face/mediapipe-full"), "bench": {"onnx": "x.onnx"}}, "--onnx", "single ID"),
])
def test_bad_settings_are_refused_before_rendering(kw, field, problem):
    base = {"sensors": ("face/dlib-hog",), "grid": parse_sweep("yaw=0"), "per_cell": 2, "identities": SEEDS}
    with pytest.raises(SpecError) as e:
        SweepConfig(**{**base, **kw}).check()
    assert e.value.field == field and problem in e.value.problem


def test_held_out_identities_by_default():
    from hcgym.synthesis.face_sets import held_out_identities

    c = SweepConfig(sensors=("face/dlib-hog",), grid=parse_sweep("yaw=0"), per_cell=4, seed=3)
    assert c.avatar_seeds() == tuple(held_out_identities(3, 4))
    assert all(not 100_000 <= s < 200_000 for s in c.avatar_seeds())  # never the recognizer's training range


# ------------------------------------------------------------------ the scene of a cell
def test_cell_frames_show_each_avatar_alone_where_the_cell_says():
    config = small("distance=2.5,yaw=-60,pitch=10")
    try:
        frames = cell_frames(studio(config), config.cells()[0])
    finally:
        close_studio()
    assert len(frames) == len(SEEDS)
    for i, f in enumerate(frames):
        shown = [h for h in f.humans if h.bbox is not None]
        assert [h.id for h in shown] == [i] and f.rgb.shape == (240, 320, 3)
        h = shown[0]
        assert h.face_yaw == pytest.approx(-60, abs=3) and h.distance == pytest.approx(2.5, abs=0.1)
        cx, cy = (h.face_box[0] + h.face_box[2]) / 2, (h.face_box[1] + h.face_box[3]) / 2
        assert abs(cx - 160) < 20 and abs(cy - 120) < 20  # aimed at the face


def test_a_scorer_refusing_the_scene_comes_back_as_data():
    """A worker hands a scorer's SpecError back as (field, problem), so that it stops the run in the driver
    whichever process the job ran in (SpecError itself does not survive pickling)."""
    from hcgym.synthesis.bench_sweep import plan_jobs, run_sweep_job

    config = small("yaw=0", sensors=("face/dlib-68",))
    try:
        part = run_sweep_job(plan_jobs(config, 1)[0])
    finally:
        close_studio()
    assert part.cells == [] and part.error[0] == "world" and "68 dlib landmarks" in part.error[1]


# ------------------------------------------------------------------ scoring
def test_centre_rule_counts_a_small_box_inside_the_face():
    gt, ignore = np.array([[100.0, 100, 160, 180]]), np.array([False])
    inner = np.array([[120.0, 125, 150, 155]])  # IoU 0.19 with the face, contains its centre (130, 140)
    assert greedy_match(inner, np.ones(1), gt, ignore, 0.4)[2:] == (0, 1)
    assert greedy_match(inner, np.ones(1), gt, ignore, 0.4, centre=True)[2:] == (1, 0)
    off = np.array([[90.0, 100, 125, 180]])  # IoU 0.375, misses the centre
    assert greedy_match(off, np.ones(1), gt, ignore, 0.3)[2:] == (1, 0)
    assert greedy_match(off, np.ones(1), gt, ignore, 0.3, centre=True)[2:] == (0, 1)
    assert BenchConfig("face/dlib-hog").face_match == "iou"


def test_profiles_are_scored_only_when_asked():
    """At 90 degrees of yaw fewer than 3 face landmarks pass the depth test: the bench ignores such faces unless
    ``face_min_landmarks`` allows them."""
    default = report.run(small("yaw=0,90"), progress=False)
    profiles = report.run(small("yaw=0,90", bench={"face_min_landmarks": 1}), progress=False)
    assert [c["truth"]["landmarks_visible"] < 3 for c in default["cells"]] == [False, True]
    faces = [[c["metrics"]["faces"] for c in r["sensors"][0]["cells"]] for r in (default, profiles)]
    assert faces == [[2, 0], [2, 2]]
    assert default["sensors"][0]["cells"][1]["metrics"]["recall"] is None


def test_same_scores_inline_and_in_a_process_pool():
    config = small("distance=1,5,yaw=0,75", sensors=("face/mediapipe-full", "face/dlib-hog"))
    inline = report.run(config, "local", 1, progress=False)
    pool = report.run(config, "local", 2, progress=False)
    assert inline["run"]["jobs"] == 1 and pool["run"]["jobs"] == 2
    assert scores(inline) == scores(pool)
    full = inline["sensors"][0]
    assert full["metrics"]["faces"] == sum(c["metrics"]["faces"] for c in full["cells"]) > 0
    assert [c["truth"]["face_px"] for c in inline["cells"]][0] > [c["truth"]["face_px"] for c in inline["cells"]][2]


@pytest.mark.slow
def test_same_scores_on_a_local_ray():
    ray = pytest.importorskip("ray")
    config = small("distance=1,yaw=0,45")
    inline = report.run(config, "local", 1, progress=False)
    tmp = tempfile.mkdtemp(prefix="hcgym-ray-")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, _temp_dir=tmp)
    try:
        on_ray = report.run(config, "ray", 1, progress=False)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    assert on_ray["run"]["engine"] == "ray" and scores(on_ray) == scores(inline)


# ------------------------------------------------------------------ the command
def test_cli_writes_results_table_and_heat_map(tmp_path):
    from PIL import Image

    out = tmp_path / "out"
    assert main(["evaluate", "sensor", "face/mediapipe-full,face/mediapipe-short", "--sweep", "distance=1,4,yaw=0,45",
                 "--identities", "7000-7001", "--size", "320x240", "--face-match", "centre", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "sweep.png", "table.md"]
    results = json.loads((out / "results.json").read_text())
    assert results["sweep"]["spec"] == "distance=1,4,yaw=0,45" and results["sweep"]["identities"] == list(SEEDS)
    assert results["sweep"]["bench"]["face_match"] == "centre" and results["sweep"]["cells"] == 4
    assert [s["id"] for s in results["sensors"]] == ["face/mediapipe-full", "face/mediapipe-short"]
    assert all(len(s["cells"]) == 4 and s["primary"] == "recall" for s in results["sensors"])
    table = (out / "table.md").read_text()
    assert "| distance \\ yaw | 0 | 45 |" in table and "## face/mediapipe-short (face detection)" in table
    w, h = Image.open(io.BytesIO((out / "sweep.png").read_bytes())).size
    assert w > h > 100


@pytest.mark.parametrize("args, message", [
    (["face/dlib-hog", "--sweep", "yaw=0", "--world", "greeting"], "--world: a sweep renders its own studio"),
    (["face/dlib-hog", "--sweep", "yaw=0", "--camera", "cam"], "--camera: a sweep places its own camera"),
    (["face/dlib-hog", "--sweep", "tilt=0"], "--sweep: unknown axis 'tilt'"),
    (["face/dlib-hog", "--sweep", "yaw=0", "--engine", "dask"], "--engine: unknown engine 'dask' (allowed: local, ray)"),
    (["face/dlib-hog", "--sweep", "yaw=0", "--ray-address", "auto"], "--ray-address: only with --engine ray"),
    (["face/nope", "--sweep", "yaw=0"], "ID: unknown sensor 'face/nope'"),
    (["face/dlib-hog", "--sweep", "yaw=0", "--face-match", "box"], "--face-match: expected iou or centre"),
    (["face/dlib-68", "--sweep", "yaw=0"], "ID: face/dlib-68 gives 68 dlib landmarks"),
])
def test_cli_bad_inputs_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["evaluate", "sensor", *args, "--identities", "7000", "--size", "160x120", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert not out.exists()
