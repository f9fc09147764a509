"""The in-house IRNet recognizer: shapes, seeds, exits by FLOP fraction, ArcFace loss, checkpoints, ONNX."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.face.irnet import (
    ArcFaceLoss,
    HcgymFaceEmbedder,
    IRNet,
    choose_exits,
    count_flops,
    flops_per_block,
    load_checkpoint,
    random_irnet,
    save_checkpoint,
)
from hcgym.types import Detections, Embeddings

TINY = {"units": (1, 2, 2, 1), "widths": (8, 16, 24, 32), "expansions": (1, 2, 2, 2)}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _x(n: int = 3, size: int = 56, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_output_shape_and_seeded_determinism():
    a, b, c = random_irnet(3, **TINY), random_irnet(3, **TINY), random_irnet(4, **TINY)
    x = _x()
    with torch.no_grad():
        ya, yb, yc = a(x), b(x), c(x)
    assert ya.shape == (3, 512)
    assert torch.equal(ya, yb)
    assert not torch.allclose(ya, yc)
    assert 0.1 < ya.abs().mean() < 10  # BatchNorm statistics set: O(1) embeddings in eval mode
    big = IRNet(**TINY, input_size=112).eval()
    assert big(_x(2, 112)).shape == (2, 512)
    assert big.block_hw(big.n_blocks - 1) == 7 and IRNet(**TINY).out_hw == 4
    with pytest.raises(SpecError):
        IRNet(units=(1, 2), widths=(8, 16, 32))


def test_forward_features_equals_running_the_blocks():
    model = random_irnet(0, **TINY)
    x = _x(2)
    exits = [3, 0, 4]
    with torch.no_grad():
        maps, emb = model.forward_features(x, exits)
        h = model.stem(x)
        manual = []
        for b in model.blocks:
            h = b(h)
            manual.append(h)
        assert torch.equal(emb, model.head(h)) and torch.allclose(emb, model(x))
        for k, m in zip(exits, maps):
            assert torch.equal(m, manual[k])
            assert m.shape[1:] == (model.block_channels(k), model.block_hw(k), model.block_hw(k))
            assert torch.equal(model.forward_to(x, k), m)
    with pytest.raises(SpecError):
        model.forward_features(x, [model.n_blocks])


def test_choose_exits_match_flop_fractions():
    model = IRNet().eval()  # default architecture
    fl = flops_per_block(model)
    assert fl["total"] == count_flops(model, torch.zeros(1, 3, 56, 56))  # the parts add up to the whole
    exits, fracs = choose_exits(model)
    assert exits == sorted(set(exits)) and len(exits) == 3
    assert all(a < b for a, b in zip(fracs, fracs[1:]))
    for f, t in zip(fracs, (0.22, 0.38, 0.50)):
        assert abs(f - t) < 0.06
    assert fracs[0] <= 0.25  # exit 1 costs at most a quarter of the full network
    tiny_exits, _ = choose_exits(IRNet(**TINY), (0.3, 0.6))
    assert len(tiny_exits) == 2 and tiny_exits[0] < tiny_exits[1]


def test_arcface_loss_decreases_on_separable_toy():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 8, generator=g) * 3
    labels = torch.arange(4).repeat_interleave(32)
    x = centres[labels] + torch.randn(128, 8, generator=g)
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 16)
    loss_fn = ArcFaceLoss(16, 4)
    opt = torch.optim.Adam([*net.parameters(), *loss_fn.parameters()], lr=1e-2)
    losses = []
    for _ in range(300):
        loss = loss_fn(net(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.2 * losses[0]
    # theta + m >= pi: the target logit falls back to cos(theta) - m sin(m).
    emb = -loss_fn.weight[:1].detach()
    logit = loss_fn.logits(emb, torch.tensor([0]))[0, 0].item()
    assert logit == pytest.approx(32 * (-1 - 0.5 * math.sin(0.5)), abs=1e-3)
    # theta + m < pi: cos(theta + m).
    emb = loss_fn.weight[:1].detach().clone()
    assert loss_fn.logits(emb, torch.tensor([0]))[0, 0].item() == pytest.approx(32 * math.cos(0.5), abs=2e-2)


@pytest.mark.parametrize("half", [False, True])
def test_checkpoint_round_trip(tmp_path, half):
    model = random_irnet(1, **TINY)
    path = save_checkpoint(model, tmp_path / "irnet.pt", {"exits": [1, 2, 3]}, {"note": "test"}, half=half)
    meta = json.loads((tmp_path / "irnet.pt.json").read_text())
    assert meta["arch"]["units"] == [1, 2, 2, 1] and meta["arch"]["exits"] == [1, 2, 3]
    loaded, arch, extra = load_checkpoint(path)
    assert extra == {"note": "test"} and arch["widths"] == [8, 16, 24, 32]
    x = _x(2)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=5e-2 if half else 0, rtol=5e-2 if half else 0)
    sensor = HcgymFaceEmbedder(path)
    assert sensor.input_size == 56 and sensor.dim == 512
    with pytest.raises(SpecError):
        HcgymFaceEmbedder(path, input_size=112)
    with pytest.raises(SpecError):
        load_checkpoint(tmp_path / "missing.pt")


# ---------------------------------------------------------------- sensor and ONNX
def _face_image() -> tuple[np.ndarray, Detections]:
    """A 240x320 RGB image with two drawn faces and their boxes + image-order five points."""
    import cv2

    img = np.full((240, 320, 3), (70, 90, 110), np.uint8)
    boxes, fives = [], []
    for cx, cy, r, skin in ((90, 120, 48, (220, 180, 150)), (230, 110, 40, (160, 120, 90))):
        cv2.ellipse(img, (cx, cy), (r, int(r * 1.3)), 0, 0, 360, skin, -1)
        eyes = [(cx - r // 2.5, cy - r // 4), (cx + r // 2.5, cy - r // 4)]
        nose, mouth = (cx, cy + r // 5), [(cx - r // 3, cy + r // 1.8), (cx + r // 3, cy + r // 1.8)]
        for e in eyes:
            cv2.circle(img, (int(e[0]), int(e[1])), max(r // 8, 2), (30, 30, 40), -1)
        cv2.line(img, (cx, cy - r // 8), (int(nose[0]), int(nose[1])), (120, 80, 60), 2)
        cv2.line(img, tuple(int(v) for v in mouth[0]), tuple(int(v) for v in mouth[1]), (150, 40, 50), 3)
        boxes.append([cx - r, cy - 1.3 * r, cx + r, cy + 1.3 * r])
        fives.append([*eyes, nose, *mouth])
    return img, Detections(np.array(boxes, float), np.ones(2), np.array(fives, float))


def test_sensor_onnx_export_matches_torch(tmp_path):
    from hcgym.perception.base import OnnxSensor
    from hcgym.perception.face.align import align_face
    from hcgym.perception.face.recognizers import ArcFaceOnnxRecognizer

    sensor = HcgymFaceEmbedder()
    image, dets = _face_image()
    out = sensor(image, detections=dets)
    assert isinstance(out, Embeddings) and out.vectors.shape == (2, 512) and np.allclose(out.boxes, dets.boxes)
    assert sensor(image, detections=Detections(np.zeros((0, 4)), np.zeros(0))).vectors.shape == (0, 512)

    path = sensor.export_onnx(tmp_path / "irnet.onnx")
    onnx_sensor = OnnxSensor(path)
    assert onnx_sensor.inner.model is None  # rebuilt from config, no weights needed
    out_onnx = onnx_sensor(image, detections=dets)
    np.testing.assert_allclose(out_onnx.vectors, out.vectors, atol=1e-4)
    np.testing.assert_allclose(out_onnx.boxes, out.boxes)

    chips = np.stack([align_face(image, f, 56) for f in dets.keypoints])
    ref = sensor.embed_aligned(chips)
    np.testing.assert_allclose(onnx_sensor.embed_aligned(chips), ref, atol=1e-4)
    arc = ArcFaceOnnxRecognizer(path)  # the export is in the ArcFace format
    assert arc.size == 56 and arc.dim == 512
    np.testing.assert_allclose(arc.embed_aligned(chips), ref, atol=1e-4)
    assert arc(image, detections=dets).vectors.shape == (2, 512)
