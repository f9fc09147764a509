"""``hcgym calibrate face-cutoffs``: the cut-off table and its provenance, re-run on a few avatars."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception.face import calibration as cal
from hcgym.perception.face.models import HERE as MODELS

SMALL = ["--avatars", "3", "--seed", "7000", "--far", "0.5", "--recognizers", "face/dlib"]


def run_cli(argv: list[str]) -> int:
    from hcgym.scripts.cli import main

    return main(["calibrate", "face-cutoffs", *map(str, argv)])


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """The command on 3 avatars (6 impostor pairs) with dlib, at FAR 0.5: exactly 3 pairs below the cut-off."""
    out = tmp_path_factory.mktemp("cal") / "cutoffs.json"
    assert run_cli([*SMALL, "--out", out]) == 0
    return out


def test_table_has_the_shipped_format_and_provenance_records_the_run(small_run):
    table = json.loads(small_run.read_text())
    shipped = json.loads((MODELS / "cutoffs.json").read_text())
    assert list(table) == ["about", "face/dlib"] and "hcgym calibrate face-cutoffs" in table["about"]
    assert set(table["face/dlib"]) == set(shipped["face/dlib"]) == set(shipped["face/hcgym-irnet"])
    entry = table["face/dlib"]
    assert entry["normalize"] is False and entry["far"] == 0.5 and 0 < entry["rank1"] <= 1
    prov = json.loads(cal.provenance_path(small_run).read_text())
    assert prov["command"].startswith("hcgym calibrate face-cutoffs --avatars 3 --seed 7000")
    assert (prov["seed"], prov["avatars"], prov["far"], prov["decimals"]) == (7000, 3, 0.5, 3)
    assert prov["avatar_seeds"] == "AvatarSpec.random(7000..7002)"
    rec = prov["recognizers"]["face/dlib"]
    assert (rec["genuine_pairs"], rec["impostor_pairs"]) == (3, 6)
    assert rec["cutoff"] == entry["cutoff"] == round(rec["threshold"], 3)
    assert not any(k in json.dumps(prov).lower() for k in ("date", "time", "seconds"))


def test_threshold_gives_the_asked_far_on_its_impostors_and_the_same_seed_gives_the_same_bytes(small_run, tmp_path):
    from hcgym.synthesis.identity_study import run_identity_study

    prov = json.loads(cal.provenance_path(small_run).read_text())
    [c] = cal.calibrate_face_cutoffs(lambda r: run_identity_study(3, 7000, recognizer=r), ["face/dlib"], far=0.5)
    assert c.impostor.size == 6 and (c.impostor < c.threshold).mean() == 0.5
    assert c.threshold == prov["recognizers"]["face/dlib"]["threshold"]
    assert prov["recognizers"]["face/dlib"]["far_at_cutoff"] == round(float((c.impostor < c.cutoff).mean()), 6)
    settings = {k: v for k, v in prov.items() if k not in ("far", "decimals", "recognizers")}
    again = tmp_path / "cutoffs.json"
    cal.write_cutoffs(again, [c], settings)
    assert again.read_bytes() == small_run.read_bytes()
    assert cal.provenance_path(again).read_bytes() == cal.provenance_path(small_run).read_bytes()


def test_threshold_at_one_percent_far_on_many_pairs():
    impostor = np.random.default_rng(0).uniform(0.3, 1.2, 9900)
    c = cal.calibrate_cutoff("face/hcgym-irnet", np.array([0.1, 0.2]), impostor, rank1=1.0)
    assert (impostor < c.threshold).mean() == 0.01 and c.normalize
    assert abs(c.far_at_cutoff - 0.01) < 0.001 and c.tar_at_cutoff == 1.0  # rounding to 3 places moves it little


@pytest.mark.parametrize("bad", [["--far", "1.5"], ["--far", "0"], ["--recognizers", "face/bogus"],
                                 ["--recognizers", "face/dlib,face/dlib"], ["--avatars", "1"], ["--out", "DIR"],
                                 ["--out", "table.txt"], ["--out", "FILE/cutoffs.json"]])
def test_bad_input_is_refused_before_anything_is_written(bad, tmp_path, capsys):
    out = tmp_path / "cutoffs.json"
    out.write_bytes(b"previous table")
    (tmp_path / "DIR").mkdir()
    (tmp_path / "FILE").write_bytes(b"")
    bad = [str(tmp_path / b) if b in ("DIR", "table.txt", "FILE/cutoffs.json") else b for b in bad]
    args = [*SMALL, "--out", out]
    i = args.index(bad[0])
    args[i + 1] = bad[1]
    assert run_cli(args) == 2
    assert "error" in capsys.readouterr().err
    assert out.read_bytes() == b"previous table"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR", "FILE", "cutoffs.json"]


def test_a_failed_study_writes_nothing(tmp_path):
    no_faces = SimpleNamespace(genuine=np.zeros(0), impostor=np.zeros(0), rank1=0.0, detected=0.0)
    with pytest.raises(SpecError, match="no usable impostor pairs"):
        cal.calibrate_face_cutoffs(lambda r: no_faces, ["face/dlib"])
    with pytest.raises(SpecError, match="--out"):
        cal.write_cutoffs(tmp_path / "x.json" / "cutoffs.txt", [], {})
    assert list(tmp_path.iterdir()) == []


def test_shipped_table_matches_its_provenance():
    table = json.loads((MODELS / "cutoffs.json").read_text())
    prov = json.loads(cal.provenance_path(MODELS / "cutoffs.json").read_text())
    assert (prov["seed"], prov["avatars"], prov["far"]) == (cal.SEED, cal.AVATARS, cal.FAR)
    assert prov["command"].startswith("hcgym calibrate face-cutoffs")
    for name in cal.RECOGNIZERS:
        assert {k: prov["recognizers"][name][k] for k in table[name]} == table[name]
