"""Gesture backbones (published parameter counts, 1/3/4-channel inputs), augmentation, training (learning,
determinism, resuming), checkpoints, ONNX export and the cost helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.gesture import backbones as bb
from hcgym.perception.gesture.augment import Augment, augment
from hcgym.perception.gesture.cost import first_conv_macs, latency, latency_markdown
from hcgym.perception.gesture.training import (
    GestureNet,
    accuracy,
    export_onnx,
    load_model,
    predict,
    save_model,
    train_gesture,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: A tiny configuration of each backbone for fast tests.
TINY = {"mobilenet_v2": 0.25, "mnasnet1_0": 0.25, "mnasnet0_5": 0.5, "resnet18": 0.125}


def bars(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RGB-D model inputs ``(n, 4, size, size)`` (ImageNet-normalised RGB, depth 0.4 near, 0.8-0.9 far) and
    labels: a horizontal and a vertical bar of one colour on a noisy background in RGB; only the labelled bar
    (0: horizontal, 1: vertical) stands out in depth, so RGB alone cannot tell the class and depth can."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    x = np.zeros((n, 4, size, size), np.float32)
    y = rng.integers(0, 2, n)
    for i in range(n):
        x[i, :3] = rng.uniform(0, 1, (3, 1, 1)) + 0.15 * rng.standard_normal((3, size, size))
        colour, long, short = rng.uniform(0, 1, 3), size * rng.uniform(0.25, 0.35), size * rng.uniform(0.06, 0.1)
        c = rng.uniform(0.3, 0.7, 4) * size
        masks = [(np.abs(xx - c[0]) < long) & (np.abs(yy - c[1]) < short),
                 (np.abs(xx - c[2]) < short) & (np.abs(yy - c[3]) < long)]
        for m in masks:
            x[i, :3][:, m] = colour[:, None]
        x[i, 3] = 0.8 + 0.1 * yy / size + 0.01 * rng.standard_normal((size, size))
        x[i, 3][masks[y[i]]] = 0.4
    x[:, :3] = Augment().normalise(torch.from_numpy(np.clip(x[:, :3], 0, 1))).numpy()
    return x, y


CHANNELS = {"rgb": slice(0, 3), "depth": slice(3, 4), "rgbd": slice(0, 4)}


def of(x: np.ndarray, modality: str) -> np.ndarray:
    return np.ascontiguousarray(x[:, CHANNELS[modality]])


# ---------------------------------------------------------------------------------------------- backbones
@pytest.mark.parametrize("name, published", [("mobilenet_v2", 3_504_872), ("mnasnet1_0", 4_383_312),
                                             ("mnasnet0_5", 2_218_512), ("resnet18", 11_689_512)])
def test_published_parameter_counts(name, published):
    assert bb.count_parameters(bb.make_backbone(name, 3, 1000)) == published


def test_early_fusion_widens_only_the_first_convolution():
    assert bb.count_parameters(bb.make_backbone("mobilenet_v2", 4, 16)) == 2_244_656
    assert bb.count_parameters(bb.make_backbone("mobilenet_v2", 3, 16)) == 2_244_368
    for name in bb.BACKBONES:
        counts = {c: bb.count_parameters(bb.make_backbone(name, c, 16)) for c in (1, 3, 4)}
        conv = bb.first_conv(bb.make_backbone(name, 1, 16))
        per_channel = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert counts[4] - counts[3] == per_channel and counts[3] - counts[1] == 2 * per_channel


@pytest.mark.parametrize("name", bb.BACKBONES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_any_input_size_gives_logits(name, channels):
    model = bb.make_backbone(name, channels, 16, TINY[name]).eval()
    for size in (32, 72):
        assert model(torch.zeros(2, channels, size, size)).shape == (2, 16)


@pytest.mark.parametrize("classes", [2, 16])
def test_initial_loss_is_near_chance(classes):
    """Small initial logits: cross-entropy near ln(classes) before training, whatever the number of classes."""
    for name in bb.BACKBONES:
        torch.manual_seed(0)
        model = bb.make_backbone(name, 4, classes).train()
        with torch.no_grad():
            logits = model(torch.randn(8, 4, 64, 64))
        loss = float(torch.nn.functional.cross_entropy(logits, torch.arange(8) % classes))
        assert abs(loss - np.log(classes)) < 1.5, (name, loss)


def test_make_backbone_refuses_bad_arguments():
    with pytest.raises(SpecError, match="unknown backbone"):
        bb.make_backbone("vgg16")
    with pytest.raises(SpecError, match="in_channels"):
        bb.make_backbone("resnet18", 2)
    with pytest.raises(SpecError, match="num_classes"):
        bb.make_backbone("resnet18", 3, 0)
    with pytest.raises(SpecError, match="width"):
        bb.make_backbone("resnet18", 3, 16, -1.0)


def test_first_conv_macs_as_the_reference_counts_them():
    assert first_conv_macs(bb.make_backbone("mobilenet_v2", 3), 224) == 10_838_016
    assert first_conv_macs(bb.make_backbone("mobilenet_v2", 4), 224) == 14_450_688
    assert first_conv_macs(bb.make_backbone("resnet18", 4), 112) == 56 * 56 * 49 * 4 * 64


# ---------------------------------------------------------------------------------------------- augmentation
def test_augmentation_keeps_rgb_and_depth_aligned_and_apart():
    x = torch.from_numpy(bars(4)[0])
    x[:, 3] = x[:, 0]  # depth = red: geometry must move both alike
    geometry = Augment(brightness=0, contrast=0, saturation=0, depth_shift=0, depth_noise=0, depth_holes=0)
    out = augment(x, "rgbd", geometry, torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 3], out[:, 0], atol=1e-5) and not torch.allclose(out, x)
    same = augment(x, "rgbd", geometry, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)
    colour = Augment((1.0, 1.0), (1.0, 1.0), 0.0, 0.4, 0.4, 0.4, 0.0, 0.0, 0.0)
    out = augment(x, "rgbd", colour, torch.Generator().manual_seed(1))
    assert torch.allclose(out[:, 3], x[:, 3], atol=1e-5) and not torch.allclose(out[:, :3], x[:, :3], atol=1e-3)
    rgb = colour.rgb01(out[:, :3])
    assert rgb.min() >= -1e-6 and rgb.max() <= 1 + 1e-6
    depth = Augment((1.0, 1.0), (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, 0.05, 0.01, 0.5)
    out = augment(x, "rgbd", depth, torch.Generator().manual_seed(2))
    assert torch.allclose(out[:, :3], x[:, :3], atol=1e-5) and (out[:, 3] == depth.hole_value).any()
    assert torch.allclose(augment(x, "rgbd", Augment.none(), torch.Generator()), x, atol=1e-5)


def test_augmentation_of_one_channel_depth():
    x = torch.from_numpy(of(bars(2)[0], "depth"))
    out = augment(x, "depth", Augment(), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.allclose(out, x)


# ---------------------------------------------------------------------------------------------- training
def test_training_learns_what_depth_disambiguates():
    """Both bars look alike in RGB, so RGB stays near chance while depth and RGB-D learn the class."""
    x, y = bars(320, seed=0)
    xv, yv = bars(128, seed=1)
    acc = {}
    for modality in ("rgb", "depth", "rgbd"):
        result = train_gesture("resnet18", modality, of(x, modality), y, of(xv, modality), yv, epochs=6, lr=3e-3,
                               batch=32, width=0.125, num_classes=2)
        acc[modality] = accuracy(result.model, of(xv, modality), yv)
        assert acc[modality] == result.best_val_acc == max(h["val_acc"] for h in result.history)
        assert len(result.history) == 6 and not result.model.training
    assert acc["depth"] >= 0.9 and acc["rgbd"] >= 0.9 and acc["rgb"] <= 0.7, acc


def test_training_is_deterministic_and_resumes_to_the_same_weights(tmp_path):
    x, y = bars(48, seed=2)
    xv, yv = bars(16, seed=3)
    kw = dict(epochs=2, batch=16, width=0.25, num_classes=2, seed=5)
    a = train_gesture("mobilenet_v2", "rgbd", x, y, xv, yv, **kw)
    b = train_gesture("mobilenet_v2", "rgbd", x, y, xv, yv, checkpoint=tmp_path / "state.pt", **kw)
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())

    def crash(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_gesture("mobilenet_v2", "rgbd", x, y, xv, yv, checkpoint=tmp_path / "resumed.pt", log=crash, **kw)
    seen = []
    c = train_gesture("mobilenet_v2", "rgbd", x, y, xv, yv, checkpoint=tmp_path / "resumed.pt", log=seen.append, **kw)
    assert [r["epoch"] for r in seen] == [2]
    assert all(torch.equal(v, c.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert [h["val_acc"] for h in c.history] == [h["val_acc"] for h in a.history]
    with pytest.raises(SpecError, match="other settings"):
        train_gesture("mobilenet_v2", "rgbd", x, y, xv, yv, checkpoint=tmp_path / "resumed.pt", **{**kw, "seed": 6})


def test_an_rgbd_network_starts_as_the_depth_network_it_is_initialised_from(tmp_path):
    """transfer_weights: depth -> RGB-D gives the depth network's logits exactly (RGB first-layer weights zero);
    train_gesture(init=...) starts there (its settings hold the file's hash) and refuses another backbone."""
    from hcgym.perception.detection.sensor import load_tensors
    from hcgym.perception.gesture.training import build_model, transfer_weights

    x, y = bars(48, seed=2)
    xv, yv = bars(16, seed=3)
    kw = dict(batch=16, width=0.25, num_classes=2, seed=5)
    depth = train_gesture("mobilenet_v2", "depth", of(x, "depth"), y, of(xv, "depth"), yv, epochs=2, **kw)
    path = save_model(depth, tmp_path / "depth.pt")
    rgbd = build_model({**depth.config, "modality": "rgbd"}).eval()
    before = rgbd.state_dict()["mean"].clone()
    transfer_weights(depth.model, "depth", rgbd, "rgbd")
    assert np.array_equal(predict(rgbd, xv), predict(depth.model, of(xv, "depth")))
    assert torch.equal(rgbd.state_dict()["mean"][:, :3], before[:, :3])  # RGB keeps its own normalisation
    first = [v for k, v in rgbd.state_dict().items() if v.ndim == 4][0]
    assert first.shape[1] == 4 and not first[:, :3].any() and first[:, 3].abs().sum() > 0
    with pytest.raises(SpecError, match="shares no input"):
        transfer_weights(depth.model, "depth", build_model({**depth.config, "modality": "rgb"}), "rgb")
    # One epoch at a tiny learning rate from the depth network stays close to it; from scratch it does not.
    warm = train_gesture("mobilenet_v2", "rgbd", x, y, xv, yv, epochs=1, lr=1e-7, init=path,
                         checkpoint=tmp_path / "warm.pt", **kw)
    assert warm.best_val_acc == depth.best_val_acc
    state = load_tensors(tmp_path / "warm.pt", "checkpoint", "gesture training state")
    assert state["settings"]["init"]["file"] == "depth.pt" and len(state["settings"]["init"]["sha256"]) == 64
    with pytest.raises(SpecError, match="backbone"):
        train_gesture("resnet18", "rgbd", x, y, epochs=1, init=path, **kw)
    with pytest.raises(SpecError, match="no gesture model"):
        train_gesture("mobilenet_v2", "rgbd", x, y, epochs=1, init=tmp_path / "missing.pt", **kw)


def test_training_refuses_bad_data_before_writing(tmp_path):
    x, y = bars(8)
    state = tmp_path / "state.pt"
    bad = [(("resnet18", "rgb", x, y), "x_train"),  # 4 channels for rgb
           (("resnet18", "rgbd", x * 2, y), "x_train"),  # RGB beyond [0, 1]
           (("resnet18", "rgbd", x, y + 16), "y_train"),
           (("resnet18", "thermal", x, y), "modality"),
           (("vgg16", "rgbd", x, y), "backbone")]
    for args, field in bad:
        with pytest.raises(SpecError, match=field):
            train_gesture(*args, epochs=1, num_classes=16, checkpoint=state)
    with pytest.raises(SpecError, match="x_val"):
        train_gesture("resnet18", "rgbd", x, y, x, None, epochs=1, checkpoint=state)
    assert not state.exists()


def test_predict_checkpoint_round_trip_and_onnx_parity(tmp_path):
    import onnxruntime as ort

    x, y = bars(16)
    result = train_gesture("mnasnet0_5", "rgbd", x, y, epochs=1, batch=8, width=0.5, num_classes=3)
    logits = predict(result.model, x, batch=5)
    assert logits.shape == (16, 3) and not result.model.training
    assert accuracy(result.model, x, y) == float((logits.argmax(1) == y).mean())
    model, meta = load_model(save_model(result, tmp_path / "m.pt", {"note": "test"}))
    assert np.allclose(predict(model, x), logits, atol=1e-6) and meta["note"] == "test"
    assert meta["config"] == {"backbone": "mnasnet0_5", "modality": "rgbd", "num_classes": 3, "width": 0.5}
    torch.save({"kind": "x3d"}, tmp_path / "other.pt")
    with pytest.raises(SpecError, match="not a gesture model"):
        load_model(tmp_path / "other.pt")
    for name, opset in zip(bb.BACKBONES, (17, 18, 17, 18)):
        torch.manual_seed(0)
        net = GestureNet(bb.make_backbone(name, 4, 16, TINY[name]), torch.rand(4), torch.rand(4) + 0.5).eval()
        for m in net.modules():  # non-trivial batch-norm statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        path = export_onnx(net, 4, 64, tmp_path / f"{name}.onnx", opset=opset)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        batch = np.random.default_rng(0).uniform(0, 1, (3, 4, 64, 64)).astype(np.float32)
        out = session.run(None, {"image": batch})[0]
        assert out.shape == (3, 16) and np.abs(out - predict(net, batch)).max() <= 1e-4
    with pytest.raises(SpecError, match="opset"):
        export_onnx(net, 4, 64, tmp_path / "x.onnx", opset=11)


def test_latency_rows_and_ratios():
    result = latency(["mobilenet_v2"], size=32, repeats=3, warmup=1, width=0.25)
    assert {(r["modality"], r["runtime"]) for r in result["rows"]} == {
        (m, r) for m in ("rgb", "depth", "rgbd") for r in ("torch", "onnx")}
    assert all(r["q1_ms"] <= r["median_ms"] <= r["q3_ms"] for r in result["rows"])
    assert [(r["backbone"], r["runtime"]) for r in result["ratios"]] == [("mobilenet_v2", "torch"),
                                                                         ("mobilenet_v2", "onnx")]
    assert "RGB-D / RGB" in latency_markdown(result)
    with pytest.raises(SpecError, match="modalities"):
        latency(["mobilenet_v2"], ["thermal"], size=32)
