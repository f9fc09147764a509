"""NMS candidates, the detector simulator and Seq2Seq-NMS training (perception/nms/{candidates,simulate,training}.py).

Everything runs on the toy dataset of ``conftest.nms_toy`` (numpy drawings, no renderer) with the tiny
model of ``hcgym train seq2seq-nms --tiny``, one torch thread.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hcgym.errors import SpecError  # noqa: E402
from hcgym.perception import nms  # noqa: E402
from hcgym.perception.nms.candidates import CandidateSet, extract_candidates, make_detector  # noqa: E402
from hcgym.perception.nms.seq2seq import load_model  # noqa: E402
from hcgym.perception.nms.simulate import DetectorSimulator, adjacent_pairs, paired_iou  # noqa: E402
from hcgym.perception.nms.training import TrainSettings, lr_factor, mean_loss, train_seq2seq, training_targets  # noqa: E402
from hcgym.scripts.cli import main  # noqa: E402
from hcgym.scripts.train_seq2seq_nms import tiny_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_cli(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 1


@pytest.fixture(scope="module")
def toy_sets(nms_toy):
    det = DetectorSimulator()
    return {s: extract_candidates(nms_toy, det, max_candidates=60, split=s, progress=False) for s in ("train", "val")}


# ------------------------------------------------------------------ candidate sets


def test_candidate_set_round_trip_and_cap(toy_sets, tmp_path):
    cset = toy_sets["train"]
    assert len(cset) == 4 and cset.meta["detector"] == "simulated" and cset.meta["pre_nms_iou"] == 0.8
    for im in cset:
        assert im.boxes.dtype == np.float32 and im.boxes.shape == (len(im.scores), 4)
        assert (np.diff(im.scores) <= 0).all() and 0 < len(im.scores) <= 60
        assert im.gt_ignore.sum() == 1 and im.image().shape == (120, 160, 3)       # the tiny person is ignored
    path = cset.save(tmp_path / "c.npz")
    back = CandidateSet.load(path)
    assert back.meta == cset.meta and len(back) == len(cset)
    for a, b in zip(cset, back):
        assert (a.path, a.width, a.height, a.image_id) == (b.path, b.width, b.height, b.image_id)
        for f in ("boxes", "scores", "gt_boxes", "gt_ignore"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    capped = back.cap(5)
    assert [len(im.scores) for im in capped] == [min(5, len(im.scores)) for im in cset]
    np.testing.assert_array_equal(capped[0].boxes, cset[0].boxes[:5])
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]                    # no temporary left behind


def test_candidate_set_errors(toy_sets, tmp_path):
    with pytest.raises(SpecError, match="candidates: no such file"):
        CandidateSet.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SpecError, match="not a candidate file"):
        CandidateSet.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", boxes=np.zeros((0, 4)))
    with pytest.raises(SpecError, match="missing"):
        CandidateSet.load(tmp_path / "other.npz")
    path = toy_sets["train"].save(tmp_path / "c.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["offsets"] = arrays["offsets"][::-1].copy()
    np.savez(tmp_path / "damaged.npz", **arrays)
    with pytest.raises(SpecError, match="damaged"):
        CandidateSet.load(tmp_path / "damaged.npz")
    with zipfile.ZipFile(path) as z:
        assert set(z.namelist()) >= {"boxes.npy", "offsets.npy", "meta.npy"}
    with pytest.raises(SpecError, match="cap"):
        toy_sets["train"].cap(0)
    with pytest.raises(SpecError, match="data"):
        extract_candidates(tmp_path, DetectorSimulator(), split="train", progress=False)
    with pytest.raises(SpecError, match="--detector"):
        make_detector(tmp_path / "no_detector.pt")


# ------------------------------------------------------------------ the simulator


def test_simulator_is_deterministic_and_makes_duplicates_bridges_and_partials():
    gt = np.array([[20, 20, 50, 110], [48, 22, 80, 112], [150, 30, 180, 120]], np.float64)  # two neighbours
    image = np.zeros((150, 220, 3), np.uint8)
    sim = DetectorSimulator(bridge_prob=1.0, partial_rate=2.0)
    boxes, scores = sim.candidates(image, 400, 0.8, gt_boxes=gt, key=7)
    again = sim.candidates(image, 400, 0.8, gt_boxes=gt, key=7)
    np.testing.assert_array_equal(boxes, again[0])
    np.testing.assert_array_equal(scores, again[1])
    assert not np.array_equal(boxes, sim.candidates(image, 400, 0.8, gt_boxes=gt, key=8)[0])
    assert DetectorSimulator(seed=1).fingerprint != sim.fingerprint
    assert boxes.dtype == np.float32 and (np.diff(scores) <= 0).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 220).all() and (boxes[:, 3] <= 150).all()
    iou = nms.iou_matrix(boxes.astype(np.float64))
    assert iou[np.triu_indices(len(boxes), 1)].max() <= 0.8                     # the pre-NMS ran
    to_gt = np.stack([paired_iou(boxes.astype(np.float64), np.repeat(g[None], len(boxes), 0)) for g in gt], 1)
    assert ((to_gt > 0.5).sum(0) >= 2).all()                                    # duplicates of every person
    assert adjacent_pairs(gt) == [(0, 1)]
    union = np.array([[20, 20, 80, 112]], np.float64)
    bridge = (paired_iou(boxes.astype(np.float64), np.repeat(union, len(boxes), 0)) > 0.75) & (to_gt.max(1) < 0.6)
    assert bridge.any()                                                         # a box spanning the neighbours
    top = gt.copy()
    top[:, 3] = gt[:, 1] + 0.5 * (gt[:, 3] - gt[:, 1])
    to_top = np.stack([paired_iou(boxes.astype(np.float64), np.repeat(t[None], len(boxes), 0)) for t in top], 1)
    assert (to_top.max(1) > 0.6).any()                                          # partial-body boxes
    assert len(sim.candidates(image, 5, 0.8, gt_boxes=gt, key=7)[0]) == 5
    with pytest.raises(SpecError, match="gt_boxes"):
        sim.candidates(image)


# ------------------------------------------------------------------ labels and schedule


def test_lr_schedule():
    assert [lr_factor(e, 8) for e in range(8)] == [1, 1, 1, 1, 0.1, 0.1, 0.1, 0.01]
    assert [lr_factor(e, 12) for e in range(12)] == [1] * 6 + [0.1] * 5 + [0.01]
    assert [lr_factor(e, 2) for e in range(2)] == [1, 0.1]


def test_training_targets_follow_current_scores_and_ignore_regions():
    gt = np.array([[0, 0, 10, 20]], np.float64)
    regions = np.array([[40, 0, 60, 40]], np.float64)
    boxes = np.array([[0, 0, 10, 20], [0, 1, 10, 21], [42, 2, 58, 38], [100, 0, 110, 20]], np.float64)
    y, in_loss = training_targets(boxes, np.array([0.2, 0.9, 0.5, 0.1]), gt, regions)
    assert y.tolist() == [0, 1, 0, 0]                     # the copy the network currently ranks first is positive
    assert in_loss.tolist() == [True, True, False, True]  # inside an ignore region only: left out of the loss
    y, _ = training_targets(boxes, np.array([0.9, 0.2, 0.5, 0.1]), gt, regions)
    assert y.tolist() == [1, 0, 0, 0]


def test_mask_switch_is_plain_attention():
    from dataclasses import replace

    from hcgym.perception.nms.seq2seq import Seq2SeqNMSNet

    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0], [1.0, 0.0, 11.0, 20.0], [50.0, 0.0, 60.0, 20.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    wh = torch.tensor([100.0, 50.0])
    for mask in (True, False):
        torch.manual_seed(0)
        model = Seq2SeqNMSNet(replace(tiny_config(), mask=mask)).eval()
        app = torch.randn(3, model.config.d_appearance)
        weights = model.rescore(app, boxes, scores, wh)[1][0]               # (H, N, N), block 1
        far = weights[:, :2, 2]                                               # IoU 0 with box 2
        assert (far == 0).all() if mask else (far > 0).all()


# ------------------------------------------------------------------ training


SETTINGS = TrainSettings(epochs=20, lr=1e-2, max_candidates=40, seed=5)   # 80 iterations of the tiny model


def state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_lowers_the_loss_is_deterministic_and_resumes(toy_sets, tmp_path):
    train, val = toy_sets["train"], toy_sets["val"]
    start = train_seq2seq(train, val, SETTINGS, tiny_config(), progress=False, stop_after=0)
    assert not start.finished and start.history == []
    w0, w1 = start.class_weights
    before = mean_loss(start.model, _examples(start.model, train), w0, w1, SETTINGS)
    full = train_seq2seq(train, val, SETTINGS, tiny_config(), out_dir=tmp_path / "a", progress=False)
    after = mean_loss(full.model, _examples(full.model, train), w0, w1, SETTINGS)
    assert after < 0.8 * before, (before, after)
    assert [h["epoch"] for h in full.history] == list(range(1, 21))
    assert [h["lr"] for h in full.history] == [1e-2 * lr_factor(e, 20) for e in range(20)]
    assert all(0 <= h["val_ap50"] <= 1 for h in full.history)
    again = train_seq2seq(train, val, SETTINGS, tiny_config(), progress=False)
    for k, v in state(full.model).items():
        assert torch.equal(v, again.model.state_dict()[k]), k                 # same seed, same weights
    part = train_seq2seq(train, val, SETTINGS, tiny_config(), out_dir=tmp_path / "b", progress=False, stop_after=7)
    assert not part.finished and len(part.history) == 7
    resumed = train_seq2seq(train, val, SETTINGS, tiny_config(), out_dir=tmp_path / "b", resume=True, progress=False)
    for k, v in state(full.model).items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k               # resume == uninterrupted
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    other = TrainSettings(epochs=20, lr=1e-3, max_candidates=40, seed=5)
    with pytest.raises(SpecError, match="--resume"):
        train_seq2seq(train, val, other, tiny_config(), out_dir=tmp_path / "b", resume=True, progress=False)
    with pytest.raises(SpecError, match="--resume"):
        train_seq2seq(train, val, SETTINGS, tiny_config(), out_dir=tmp_path / "c", resume=True, progress=False)


def _examples(model, cset):
    from hcgym.perception.nms.training import prepare_examples

    return prepare_examples(cset, model, SETTINGS.max_candidates, progress=False)


def test_train_cli_tiny(nms_toy, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "seq2seq-nms", "--data", str(nms_toy), "--detector", "simulated", "--tiny", "--epochs", "2",
            "--no-onnx", "--no-mask", "--out", str(out)]
    assert run_cli(args) == 0
    prov = json.loads((out / "PROVENANCE.json").read_text())
    assert prov["detector"]["simulated"] and prov["epochs"] == 2 and len(prov["history"]) == 2
    assert prov["model_config"]["mask"] is False and prov["command"].startswith("hcgym train seq2seq-nms")
    assert {"seq2seq_nms.pt", "candidates_train.npz", "candidates_val.npz", "training_curve.png",
            "train_state.pt"} <= {p.name for p in out.iterdir()}
    model = load_model(out / "seq2seq_nms.pt")
    assert model.config.mask is False and model.config == tiny_config().__class__(**prov["model_config"])
    assert CandidateSet.load(out / "candidates_train.npz").meta["fingerprint"] == DetectorSimulator().fingerprint
    capsys.readouterr()
    for bad, field in ((["--data", str(tmp_path / "nowhere")], "--data"), (["--resume"], "--resume"),
                       (["--detector", str(tmp_path / "nothing.onnx")], "--detector")):
        empty = tmp_path / f"bad{field}"
        argv = ["train", "seq2seq-nms", "--data", str(nms_toy), "--tiny", "--out", str(empty)]
        argv += ["--detector", "simulated"] if "--detector" not in bad else []
        assert run_cli(argv + bad) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and field in err[0], err
        assert not empty.exists()
