"""Expression training (augmentation, SGD loop, resume, checkpoints) and Monte Carlo dropout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.expression import graph as G
from hcgym.perception.expression import models as M
from hcgym.perception.expression import training as T
from hcgym.perception.expression.mcdropout import mc_accuracies, mc_predict
from hcgym.perception.expression.toy import template51, toy_sequences

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = T.TrainSettings(epochs=2, batch=16, lr=0.05)


@pytest.fixture(scope="module")
def data():
    xs, ys, _ = toy_sequences(8, frames=4, seed=0, subjects=12)
    xv, yv, _ = toy_sequences(4, frames=4, seed=1, subjects=6, first_subject=100)
    return xs, ys, xv, yv


@pytest.fixture(scope="module")
def cfg(data):
    return M.ExprModelConfig(graph=G.graph_from_data(data[0]), frames=4, widths=(8, 16))


# ------------------------------------------------------------------ augmentation

def test_flip_mirrors_and_permutes_the_landmarks():
    face = (template51() * 50 + 112)[None, None].astype(np.float32)     # symmetric about x = 112
    flip_only = T.Augmentation(rotate=0, scale=0, jitter=0, flip=1.0)
    out = T.augment(face, np.random.default_rng(0), flip_only, G.DLIB51)
    assert np.allclose(out, face, atol=1e-4)                 # a symmetric face is its own mirror image
    x = toy_sequences(1, frames=4, seed=2)[0]
    once = T.augment(x, np.random.default_rng(0), flip_only, G.DLIB51)
    assert not np.allclose(once, x, atol=1e-2)
    assert np.allclose(T.augment(once, np.random.default_rng(0), flip_only, G.DLIB51), x, atol=1e-3)
    # the mirrored right eye corner (dlib 36) is where the left one (dlib 45) was, reflected
    cx = x[:, :1].mean(axis=2)[:, 0, 0]
    assert np.allclose(once[:, :, 45 - 17, 0], 2 * cx[:, None] - x[:, :, 36 - 17, 0], atol=1e-3)


def test_augmentation_is_seeded_and_keeps_the_normalised_shape_close(data):
    x = data[0][:5]
    aug = T.Augmentation(flip=0.0)
    a = T.augment(x, np.random.default_rng(1), aug, G.DLIB51)
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.array_equal(a, T.augment(x, np.random.default_rng(1), aug, G.DLIB51))
    assert not np.array_equal(a, T.augment(x, np.random.default_rng(2), aug, G.DLIB51))
    na, nx = (G.normalise(v, 13, G.DLIB51.eyes) for v in (a, x))
    assert 0 < np.abs(na - nx).mean() < 0.2
    no_flip = G.FaceLayout(51, 13, G.DLIB51.eyes)
    with pytest.raises(SpecError, match="augment.flip"):
        T.augment(x, np.random.default_rng(0), T.Augmentation(), no_flip)


# ------------------------------------------------------------------ training

@pytest.mark.slow
def test_training_learns_the_toy_expressions():
    xs, ys, _ = toy_sequences(30, frames=4, seed=0, subjects=30)
    xv, yv, _ = toy_sequences(10, frames=4, seed=1, subjects=10, first_subject=100)
    cfg = M.ExprModelConfig(graph=G.graph_from_data(xs), frames=4, widths=(8, 16, 32))
    model = M.build_model(cfg, seed=0)
    result = T.train(model, xs, ys, xv, yv, T.TrainSettings(epochs=20, batch=32, lr=0.05))
    assert len(result.history) == 20 and not result.model.training
    h = result.history
    assert h[-1]["loss"] < 0.3 * h[0]["loss"]
    assert h[-1]["val_acc"] >= 0.9, h[-1]
    assert T.evaluate(model, xv, yv)["acc"] == pytest.approx(h[-1]["val_acc"])
    acc = mc_accuracies(mc_predict(model, xv, passes=20), yv)
    assert acc["ensemble"] >= 0.85 and acc["deterministic"] == pytest.approx(h[-1]["val_acc"])


def test_training_is_deterministic_and_leaves_the_global_generator_alone(data, cfg):
    xs, ys = data[0][:32], data[1][:32]
    state = torch.get_rng_state()
    a = T.train(M.build_model(cfg), xs, ys, settings=QUICK)
    assert torch.equal(torch.get_rng_state(), state)
    b = T.train(M.build_model(cfg), xs, ys, settings=QUICK)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_interrupted_training_resumes_to_the_same_weights(data, cfg, tmp_path):
    xs, ys = data[0][:32], data[1][:32]
    settings = T.TrainSettings(epochs=3, batch=16, schedule="step")
    whole = T.train(M.build_model(cfg), xs, ys, settings=settings)

    class Stop(Exception):
        pass

    def stop_after_two(line: str) -> None:
        if "epoch=2 " in line:
            raise Stop

    ckpt = tmp_path / "state.pt"
    with pytest.raises(Stop):
        T.train(M.build_model(cfg), xs, ys, settings=settings, log=stop_after_two, checkpoint=ckpt)
    resumed = T.train(M.build_model(cfg), xs, ys, settings=settings, checkpoint=ckpt)
    assert len(resumed.history) == 3
    sw, sr = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.allclose(sw[k].float(), sr[k].float()) for k in sw)
    with pytest.raises(SpecError, match="checkpoint"):
        T.train(M.build_model(cfg), xs, ys, settings=T.TrainSettings(epochs=4), checkpoint=ckpt)


def test_schedules_and_settings():
    step = T.TrainSettings(lr=1.0, schedule="step")
    assert [step.lr_at(s, 100) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    cos = T.TrainSettings(lr=1.0)
    assert cos.lr_at(0, 100) == pytest.approx(1.0) and cos.lr_at(99, 100) == pytest.approx(0.01, abs=1e-3)
    for bad, field in [({"epochs": 0}, "train.epochs"), ({"schedule": "poly"}, "train.schedule"),
                       ({"augment": T.Augmentation(flip=2.0)}, "augment.flip"), ({"lr": 0.0}, "train.lr")]:
        with pytest.raises(SpecError, match=field):
            T.TrainSettings(**bad).check()


def test_bad_data_is_refused_before_training(data, cfg):
    model = M.build_model(cfg)
    xs, ys = data[0], data[1]
    with pytest.raises(SpecError, match="x_train"):
        T.train(model, xs[:, :, :50], ys)
    with pytest.raises(SpecError, match="y_train"):
        T.train(model, xs, ys + 7)
    with pytest.raises(SpecError, match="y_val"):
        T.train(model, xs, ys, xs[:3], ys[:2])


def test_balanced_training_runs(data, cfg):
    xs, ys = data[0][:40], data[1][:40]
    h = T.train(M.build_model(cfg), xs, ys, settings=T.TrainSettings(epochs=1, batch=16, balanced=True)).history
    assert np.isfinite(h[0]["loss"])


def test_checkpoint_round_trip(data, cfg, tmp_path):
    model = M.build_model(cfg, seed=3).eval()
    T.save_model(model, tmp_path / "m.pt", {"note": "toy"})
    loaded, meta = T.load_model(tmp_path / "m.pt")
    x = torch.from_numpy(data[0][:4])
    assert torch.equal(loaded(x), model(x)) and meta["note"] == "toy" and meta["kind"] == "stbln"
    assert loaded.cfg == model.cfg
    with pytest.raises(SpecError, match="--model"):
        T.load_model(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError, match="--model"):
        T.load_model(tmp_path / "bad.pt")


# ------------------------------------------------------------------ Monte Carlo dropout

def test_mc_dropout_outputs_and_determinism(data, cfg):
    xv = data[2][:10]
    model = M.build_model(cfg, seed=1)
    model.train()                                     # modes are restored afterwards
    bn = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    state = torch.get_rng_state()
    r = mc_predict(model, xv, passes=12, seed=4, batch=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in bn.items())     # BN statistics untouched
    n, c = len(xv), cfg.num_classes
    assert r.mean.shape == r.var.shape == r.deterministic.shape == (n, c)
    assert r.entropy.shape == r.mutual_info.shape == (n,) and r.passes.shape == (12, n, c)
    assert np.allclose(r.mean.sum(1), 1, atol=1e-5) and np.allclose(r.mean, r.passes.mean(0))
    assert (r.var >= 0).all() and (r.var <= 0.25).all() and (r.var > 0).any()
    assert (r.entropy <= np.log(c) + 1e-6).all() and (r.mutual_info >= 0).all()
    assert not np.allclose(r.passes[0], r.passes[1])                 # dropout is active in the passes
    with torch.no_grad():
        det = torch.softmax(model.eval()(torch.from_numpy(xv)), 1).numpy()
    assert np.allclose(r.deterministic, det, atol=1e-6)              # the deterministic pass is eval mode
    again = mc_predict(model, xv, passes=12, seed=4, batch=4)
    assert np.array_equal(again.passes, r.passes)
    assert not np.array_equal(mc_predict(model, xv, passes=12, seed=5, batch=4).passes, r.passes)
    acc = mc_accuracies(r, data[3][:10])
    assert set(acc) == {"ensemble", "deterministic", "single_mean", "single_std"}
    assert all(0 <= v <= 1 for v in acc.values())


def test_mc_dropout_checks(cfg):
    model = M.build_model(cfg)
    with pytest.raises(SpecError, match="passes"):
        mc_predict(model, np.zeros((1, 4, 51, 2), np.float32), passes=0)
    with pytest.raises(SpecError, match="dropout"):
        mc_predict(torch.nn.Linear(2, 2), np.zeros((1, 2), np.float32))
