"""Expression clips in two styles (synthesis/dataset/expression_clips.py) and the landmark cache made from
them (synthesis/expression_data.py).

The clip plans are checked without rendering (many clips, fast). One tiny wild clip set (3 clips of 3 frames
at 160x160, the pool of the action-data tests) is rendered once and prepared with dlib and MediaPipe.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.synthesis.expression_data import (
    MESH51,
    MESH_DENSE,
    ExpressionData,
    dlib_track,
    fill_missing,
    fit_mesh51,
    identity_folds,
    load,
    parts_dir,
    prepare,
)
from hcgym.synthesis.expressions import EXPRESSIONS

NAMES = tuple(EXPRESSIONS)


def clip_config(out: Path, style: str, n: int, seconds: float, fps: float, **kw):
    from hcgym.synthesis.dataset import GenerateConfig
    from hcgym.synthesis.dataset.config import ClipSettings

    clips = ClipSettings(labels="expressions", seconds=seconds, fps=fps, style=style, **kw)
    return GenerateConfig(out=out, n=n, seed=5, mode="clips", size=(160, 160), shard_size=n, clips=clips)


def plans(cfg):
    from hcgym.synthesis.dataset.clips import identity_splits, label_names, plan_clip

    names = label_names("expressions")
    splits = identity_splits(cfg.seed, cfg.clips.identities, cfg.clips.splits)
    return [plan_clip(cfg, i, names, splits) for i in range(cfg.n)]


# ================================================================ settings
def test_style_is_checked_and_only_expression_clips_carry_it(tmp_path, capsys):
    from hcgym.scripts.cli import main
    from hcgym.synthesis.dataset.config import ClipSettings

    with pytest.raises(SpecError, match="--style: unknown value 'candid'"):
        clip_config(tmp_path, "candid", 1, 1.0, 5.0).check()
    cfg = clip_config(tmp_path, "wild", 1, 1.0, 5.0)
    cfg.check()
    bad = type(cfg)(out=tmp_path, n=1, mode="clips", clips=ClipSettings(labels="actions", style="wild"))
    with pytest.raises(SpecError, match="--style: only used with --labels expressions"):
        bad.check()
    assert cfg.dataset_key(None, None)["clips"]["style"] == "wild"
    actions = type(cfg)(out=tmp_path, n=1, mode="clips", clips=ClipSettings(labels="actions"))
    assert "style" not in actions.dataset_key(None, None)["clips"]  # the other label sets keep their key
    out = tmp_path / "out"
    assert main(["generate", "--mode", "clips", "--labels", "expressions", "--style", "candid", "--count", "1",
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--style: unknown value 'candid' (allowed: posed, wild)" in err[0]
    assert not out.exists()


# ================================================================ clip plans
def test_posed_clips_end_at_the_apex_with_a_frontal_camera(tmp_path):
    cfg = clip_config(tmp_path, "posed", 21, 2.0, 10.0, identities=4)
    for plan in plans(cfg):
        (track,) = plan.human["expression"]
        assert track["expression"] == plan.label
        assert track["start"] + track["onset"] <= 0.6 * 2.0 + 1e-6  # the apex is reached by 60 % of the clip
        assert track["start"] + track["onset"] + track["apex"] >= 2.0  # and held past the last frame
        assert 0.5 <= track["intensity"] <= 1.0
        assert "talk" not in plan.human and "behaviour" not in plan.human
        (head,) = plan.human["head"]
        assert abs(head["yaw"]) <= 15 and abs(head["pitch"]) <= 8
        assert abs(plan.view["yaw"]) <= 20 and "face_px" not in plan.view
        p = plan.params
        assert p["style"] == "posed" and p["apex_frames"] == [17, 18, 19]
        assert p["label2"] is None and p["label2_id"] == -1 and p["blend_weight"] == 0.0
        assert not p["talking"] and not p["occluded"]
        assert p["intensity"] == (0.0 if plan.label == "neutral" else track["intensity"])


def test_wild_clips_blend_talk_turn_and_occlude_in_the_stated_shares(tmp_path):
    from hcgym.synthesis.dataset.clips import _cycled
    from hcgym.synthesis.dataset.expression_clips import BLEND_WEIGHT, WILD_FACE_PX, WILD_HEAD

    cfg = clip_config(tmp_path, "wild", 42, 4.0, 8.0, identities=6)
    ps = plans(cfg)
    occluded = [p for p in ps if p.params["occluded"]]
    assert len(occluded) == 14  # one clip in every block of three
    for p in occluded:
        (seg,) = p.human["behaviour"]
        assert seg["action"] == "drink" and seg["hand"] == p.hand and p.params["occluder"] == seg
    blends = [p for p in ps if p.params["label2"] is not None]
    assert [p.index for p in blends] == [p.index for p in ps
                                         if _cycled(5, 0xB1E, p.index, 3) == 0 and p.label != "neutral"]
    assert len(blends) >= 10
    for p in blends:
        first, second = p.human["expression"]
        assert first["expression"] == p.label and second["expression"] == p.params["label2"]
        assert second["expression"] not in (p.label, "neutral") and NAMES[p.params["label2_id"]] == second["expression"]
        w = p.params["blend_weight"]
        assert BLEND_WEIGHT[0] <= w <= BLEND_WEIGHT[1] and second["intensity"] == round(w * first["intensity"], 4)
        assert first["start"] <= second["start"] <= first["start"] + first["onset"] + first["apex"]  # overlapping
    talking = [p for p in ps if p.params["talking"]]
    assert 10 <= len(talking) <= 32
    for p in talking:
        (talk,) = p.human["talk"]
        assert talk["text"] == p.params["talk"] and 0.0 <= talk["start"] < 4.0
    for p in ps:
        first = p.human["expression"][0]
        assert first["start"] + first["onset"] + first["apex"] + first["offset"] <= 1.1 * 4.0  # ends (nearly) inside
        for head in p.human["head"]:
            assert all(abs(head[k]) <= v for k, v in WILD_HEAD.items())
        assert abs(p.view["yaw"]) <= 45 and WILD_FACE_PX[0] <= p.view["face_px"] <= WILD_FACE_PX[1]
        mid = first["start"] + first["onset"] + first["apex"] / 2
        assert min(round(mid * 8), 31) in p.params["apex_frames"]
    assert len({p.light["intensity"] for p in ps}) > 30


def test_a_wild_clip_world_is_a_valid_world_spec(tmp_path):
    from hcgym.synthesis.dataset.clips import clip_world
    from hcgym.worlds.spec import WorldSpec

    ps = plans(clip_config(tmp_path, "wild", 12, 4.0, 8.0, identities=6))
    plan = next(p for p in ps if p.params["talking"] and p.params["occluded"] and p.params["label2"])
    world = WorldSpec.from_dict(clip_world(plan, (160, 160)), "w")
    b = world.humans[0].behaviour
    assert len(b.expression) == 2 and len(b.talk) == 1 and b.segments[0].action == "drink"


# ================================================================ the cache
@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    from hcgym.synthesis.dataset import generate

    out = tmp_path_factory.mktemp("exprclips") / "clips"
    generate(clip_config(out, "wild", 3, 0.6, 5.0, identities=3, splits=(1.0, 1.0, 1.0)), progress=False)
    return out


@pytest.fixture(scope="module")
def cache(clips) -> Path:
    return prepare(clips, clips.parent / "cache" / "wild.npz", workers=1, progress=False)


@pytest.fixture(scope="module")
def data(cache) -> ExpressionData:
    return ExpressionData.load(cache)


def docs(clips: Path) -> list[dict]:
    index = json.loads((clips / "index.json").read_text())
    return [json.loads((clips / e["annotation"]).read_text()) for e in index["clips"]]


def test_cache_keys_shapes_and_what_the_clips_say(clips, data):
    a = data.arrays
    n, t = 3, 3
    for key, shape, dtype in (("dlib51", (n, t, 51, 2), np.float32), ("dlib_found", (n, t), np.bool_),
                              ("mesh", (n, t, 478, 2), np.float16), ("mesh_found", (n, t), np.bool_),
                              ("truth51", (n, t, 51, 2), np.float32), ("truth_hidden", (n, t), np.float32),
                              ("frame_label", (n, t), np.int64), ("label", (n,), np.int64),
                              ("label2", (n,), np.int64), ("blend_weight", (n,), np.float32),
                              ("intensity", (n,), np.float32), ("talking", (n,), np.bool_),
                              ("occluded", (n,), np.bool_), ("identity", (n,), np.int64), ("fold", (n,), np.int64),
                              ("apex", (n, 3), np.int64)):
        assert a[key].shape == shape and a[key].dtype == dtype, key
    assert list(a["labels"]) == list(NAMES) and data.style == "wild" and str(a["style"]) == "wild"
    assert data.meta["format"] == "hcgym-expression-data-1" and data.meta["dataset"]["clips"]["style"] == "wild"
    assert data.meta["prepare"]["dlib_upsample"] == 1
    for i, doc in enumerate(docs(clips)):
        p = doc["params"]
        f68 = np.asarray([r["face68"] for r in doc["per_frame"]])
        assert np.allclose(a["truth51"][i], f68[:, 17:, :2], atol=1e-3)
        assert [NAMES[k] for k in a["frame_label"][i]] == [r["label"] for r in doc["per_frame"]]
        assert NAMES[a["label"][i]] == doc["label"] and a["identity"][i] == doc["identity_id"]
        assert a["label2"][i] == p["label2_id"] and a["blend_weight"][i] == pytest.approx(p["blend_weight"])
        assert a["intensity"][i] == pytest.approx(p["intensity"]) and a["talking"][i] == p["talking"]
        assert a["occluded"][i] == p["occluded"] and list(a["apex"][i]) == p["apex_frames"]
        assert str(a["clip"][i]) == f"clips/{doc['split']}/{doc['label']}/{doc['clip']}.mp4"
        assert str(a["split"][i]) == doc["split"]
    folds = identity_folds(a["identity"], 5)
    assert list(a["fold"]) == [folds[int(i)] for i in a["identity"]]
    assert a["occluded"].sum() == 1  # one clip in the block of three


def test_detectors_find_the_rendered_faces_near_the_truth(data):
    a = data.arrays
    assert a["mesh_found"].mean() >= 0.6 and a["dlib_found"].mean() >= 0.6
    truth = a["truth51"].astype(np.float64)
    iod = np.linalg.norm(truth[:, :, 19:25].mean(2) - truth[:, :, 25:31].mean(2), axis=-1)
    for pts, found in ((a["dlib51"], a["dlib_found"]), (a["mesh"][:, :, MESH51], a["mesh_found"])):
        err = np.linalg.norm(pts.astype(np.float64) - truth, axis=-1).mean(-1) / iod
        assert np.median(err[found]) < 0.3
        assert not pts[~found].any()  # no landmarks where nothing was found


def test_dlib_detects_once_then_tracks(clips, data):
    from hcgym.video import read_video

    i = int(np.argmax(data.arrays["dlib_found"].sum(1)))
    frames = read_video(clips / str(data.arrays["clip"][i]))
    points, found, detected = dlib_track(frames)
    assert np.allclose(points[:, 17:], data.arrays["dlib51"][i], atol=1e-3)
    first = int(np.argmax(found))
    assert found[first] and detected[:first + 1].all()  # the detector runs on every frame until it finds a face
    tracked = found[first + 1:] & ~detected[first + 1:]
    assert tracked.sum() >= 1  # later frames take their box from the previous landmarks
    assert dlib_track(frames, redetect=1)[2].all()  # a refresh on every frame runs the detector on every frame


def test_sequences_per_source_and_protocol(data):
    n, t = len(data), 3
    for source, v in (("dlib", 51), ("mesh51", 51), ("mesh", len(MESH_DENSE)), ("truth", 51)):
        ck = data.sequences(source, "ck")
        afew = data.sequences(source, "afew")
        assert ck.shape == (n, 4, v, 2) and afew.shape == (n, t, v, 2) and ck.dtype == np.float32
        frames = data.frames("ck")
        assert np.array_equal(frames[:, 0], np.zeros(n)) and np.array_equal(frames[:, 1:], data.arrays["apex"])
        for i in range(n):
            assert np.array_equal(ck[i], afew[i][frames[i]])
    assert np.allclose(data.sequences("truth", "afew"), data.arrays["truth51"])
    assert np.allclose(data.sequences("mesh51", "afew", [0])[0][data.arrays["mesh_found"][0]],
                       data.arrays["mesh"][0][data.arrays["mesh_found"][0]][:, MESH51].astype(np.float32))
    assert data.sequences("dlib", "ck", "train").shape[0] == len(data.select("train"))
    with pytest.raises(SpecError, match="source"):
        data.sequences("openface", "ck")
    with pytest.raises(SpecError, match="protocol"):
        data.sequences("dlib", "oulu")


def test_missing_frames_are_filled_and_faceless_clips_flagged(data):
    arrays = dict(data.arrays)
    found = arrays["dlib_found"].copy()
    found[0] = [False, True, False]
    found[1] = False
    arrays["dlib_found"] = found
    arrays["dlib51"] = arrays["dlib51"].copy()
    arrays["dlib51"][1] = 0.0
    d = ExpressionData(arrays)
    seq = d.sequences("dlib", "afew")
    assert np.array_equal(seq[0, 0], seq[0, 1]) and np.array_equal(seq[0, 2], seq[0, 1])
    assert list(d.never_found("dlib")) == [False, True, False] and not seq[1].any()
    assert list(d.found("dlib", "afew")[0]) == [False, True, False]


def test_fill_missing_carries_the_last_found_frame_forward():
    pts = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 2), np.float32)
    out = fill_missing(pts, np.array([False, True, False, True, False]))
    assert [float(x) for x in out[:, 0, 0]] == [1, 1, 1, 3, 3]
    assert np.array_equal(fill_missing(pts, np.zeros(5, bool)), pts)


def test_identity_folds_are_balanced_and_drawn_from_the_seed():
    ids = [7, 3, 3, 9] + list(range(20, 43))  # 26 distinct identities
    folds = identity_folds(ids, 0)
    assert sorted(folds) == sorted(set(ids))
    counts = np.bincount(list(folds.values()), minlength=10)
    assert counts.max() - counts.min() <= 1 and len(counts) == 10
    assert folds == identity_folds(ids, 0) and folds != identity_folds(ids, 1)


def test_fit_mesh51_recovers_the_matching_vertices_and_the_table_is_sane():
    rng = np.random.default_rng(0)
    mesh = rng.uniform(0, 200, (30, 478, 2))
    truth_idx = rng.choice(468, 51, replace=False)
    truth = mesh[:, truth_idx] + rng.normal(0, 0.05, (30, 51, 2))
    found = np.ones(30, bool)
    found[3] = False
    assert np.array_equal(fit_mesh51(mesh, found, truth), truth_idx)
    assert len(set(MESH51.tolist())) == 51 and MESH51.max() < 468
    assert len(set(MESH_DENSE.tolist())) == len(MESH_DENSE) <= 150 and MESH_DENSE.max() < 478


def test_prepare_is_deterministic_and_resumes_from_finished_chunks(clips, cache, tmp_path):
    from hcgym.paths import atomic_write_bytes
    from hcgym.synthesis.action_data import npz_bytes
    from hcgym.synthesis.expression_data import PrepareSettings, _fingerprint, read_index

    again = prepare(clips, tmp_path / "again.npz", workers=1, progress=False)
    assert again.read_bytes() == cache.read_bytes()
    assert not parts_dir(again).exists()
    # a run that stopped after its chunk: the chunk is read back, not computed again
    out = tmp_path / "resumed.npz"
    parts = parts_dir(out)
    parts.mkdir()
    (parts / "fingerprint.txt").write_text(_fingerprint(read_index(clips), PrepareSettings()))
    arrays = load(cache)
    chunk = {k: np.asarray(arrays[k]) for k in ("dlib51", "dlib_found", "mesh", "mesh_found", "truth51",
                                                "truth_hidden", "frame_label", "label", "label2", "blend_weight",
                                                "intensity", "talking", "occluded", "apex")}
    chunk["dlib51"] = chunk["dlib51"] + np.float32(1.0)
    chunk["style"] = np.array(["wild"] * 3)
    atomic_write_bytes(parts / "chunk_000000.npz", npz_bytes(chunk))
    resumed = load(prepare(clips, out, workers=1, progress=False))
    assert np.allclose(resumed["dlib51"], arrays["dlib51"] + 1.0) and np.array_equal(resumed["mesh"], arrays["mesh"])
    assert not parts.exists()
    # chunks of another dataset or other settings are discarded
    parts.mkdir()
    (parts / "fingerprint.txt").write_text("other")
    atomic_write_bytes(parts / "chunk_000000.npz", npz_bytes(chunk))
    assert prepare(clips, out, workers=1, progress=False).read_bytes() == cache.read_bytes()


def test_bad_input_is_refused_before_anything_is_written(clips, tmp_path):
    actions = tmp_path / "actions"
    actions.mkdir()
    (actions / "index.json").write_text(json.dumps({"format": "hcgym-clips-1", "labels": "actions", "clips": []}))
    for args, message in (((tmp_path / "nope", tmp_path / "a.npz"), "no such folder"),
                          ((actions, tmp_path / "a.npz"), "not an expression clips dataset"),
                          ((clips, tmp_path / "a.txt"), "expected a .npz file name")):
        with pytest.raises(SpecError, match=message):
            prepare(*args, progress=False)
    with pytest.raises(SpecError, match="workers"):
        prepare(clips, tmp_path / "a.npz", workers=0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["actions"]
    with pytest.raises(SpecError, match="not an expression data cache"):
        load(actions / "index.json")
