"""Seq2Seq-NMS: ROIAlign, geometry, attention mask, loss weights, overfitting, the method and ONNX export."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hcgym.errors import SpecError  # noqa: E402
from hcgym.perception import nms  # noqa: E402
from hcgym.perception.nms.roi_align import roi_align, roi_align_dense, roi_align_reference  # noqa: E402
from hcgym.perception.nms.seq2seq import (  # noqa: E402
    MaskedMultiHeadAttention,
    Seq2SeqConfig,
    Seq2SeqNMS,
    Seq2SeqNMSNet,
    attention_mask,
    cell_statistics,
    class_weights,
    edge_map,
    export_onnx,
    fmod_descriptors,
    geometric_features,
    load_model,
    match_labels,
    save_model,
    weighted_bce,
)

# --------------------------------------------------------------------------------------------
# ROIAlign
# --------------------------------------------------------------------------------------------


def random_rois(gen: torch.Generator, k: int, b: int, h: int, w: int) -> torch.Tensor:
    xy = torch.rand(k, 2, generator=gen) * torch.tensor([w * 1.4, h * 1.4]) - torch.tensor([w * 0.3, h * 0.3])
    wh = torch.rand(k, 2, generator=gen) * torch.tensor([w * 0.8, h * 0.8])
    idx = torch.randint(0, b, (k, 1), generator=gen).double()
    return torch.cat([idx, xy, xy + wh], dim=1)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, 1, -1])
def test_roi_align_matches_loop_reference(aligned, sampling_ratio):
    gen = torch.Generator().manual_seed(3 + sampling_ratio)
    x = torch.rand(2, 3, 11, 13, generator=gen, dtype=torch.float64)
    rois = random_rois(gen, 9, 2, 22, 26)
    rois[0, 1:] = torch.tensor([4.0, 4.0, 4.0, 9.0])            # zero width
    rois[1, 1:] = torch.tensor([30.0, 30.0, 40.0, 40.0])        # fully outside
    for scale in (0.5, 1.0):
        got = roi_align(x, rois, (3, 4), scale, sampling_ratio, aligned)
        ref = roi_align_reference(x, rois, (3, 4), scale, sampling_ratio, aligned)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
        got32 = roi_align(x.float(), rois.float(), (3, 4), scale, sampling_ratio, aligned)
        torch.testing.assert_close(got32, ref.float(), atol=1e-5, rtol=1e-5)


def test_roi_align_known_answers():
    h, w = 20, 24
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    linear = (2 * xs + 3 * ys + 1)[None, None]
    rois = torch.tensor([[0.0, 4.0, 5.0, 12.0, 15.0]])
    out = roi_align(linear, rois, (4, 4), 1.0, 2, aligned=True)[0, 0]
    # aligned: pixel centres at integer coordinates; a bin's average of a linear map is its centre's value
    xc = 4 - 0.5 + (torch.arange(4, dtype=torch.float64) + 0.5) * 2.0
    yc = 5 - 0.5 + (torch.arange(4, dtype=torch.float64) + 0.5) * 2.5
    torch.testing.assert_close(out, 2 * xc[None, :] + 3 * yc[:, None] + 1, atol=1e-10, rtol=0)
    const = torch.full((1, 2, h, w), 7.0, dtype=torch.float64)
    out = roi_align(const, torch.tensor([[0.0, 1.0, 2.0, 20.0, 18.0], [0.0, 50.0, 50.0, 60.0, 60.0]]), 5, 1.0, -1)
    torch.testing.assert_close(out[0], torch.full((2, 5, 5), 7.0, dtype=torch.float64))
    assert (out[1] == 0).all()                                   # more than one pixel outside the map
    # exact pixel-sized bins on pixel centres reproduce the pixels (the FMoD re-pooling of cells)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    out = roi_align(x, torch.tensor([[0.0, 4.0, 0.0, 8.0, 4.0]]), 4, 1.0, 1)[0, 0]
    torch.testing.assert_close(out, x[0, 0, 0:4, 4:8])
    with pytest.raises(SpecError, match="rois"):
        roi_align(x, torch.zeros(3, 4), 2)


@pytest.mark.parametrize("sampling_ratio", [1, 2, -1])
def test_roi_align_gather_equals_dense(sampling_ratio, monkeypatch):
    """The fast ROIAlign (gathered taps; ``grid_sample`` for one sample per bin on one image) equals the
    former dense-matrix one on random maps, boxes and batches, also when it works in chunks."""
    import hcgym.perception.nms.roi_align as ra

    gen = torch.Generator().manual_seed(11)
    for batch in (3, 1):
        x = torch.rand(batch, 2, 37, 45, generator=gen)
        rois = random_rois(gen, 50, batch, 37, 45).float()
        rois[0, 1:] = torch.tensor([4.0, 4.0, 4.0, 9.0])                     # zero width
        rois[1, 1:] = torch.tensor([90.0, 90.0, 99.0, 99.0])                 # more than a pixel outside
        for aligned in (True, False):
            for scale in (0.7, torch.tensor([0.8, 1.3])):
                want = roi_align_dense(x, rois, (7, 5), scale, sampling_ratio, aligned)
                torch.testing.assert_close(roi_align(x, rois, (7, 5), scale, sampling_ratio, aligned), want,
                                           atol=1e-5, rtol=0)
        x64, r64 = x.double(), rois.double()
        torch.testing.assert_close(roi_align(x64, r64, 4, 0.9, sampling_ratio),
                                   roi_align_reference(x64, r64, (4, 4), 0.9, sampling_ratio), atol=1e-10, rtol=0)
    monkeypatch.setattr(ra, "_CHUNK", 300)                                   # a few boxes per chunk
    torch.testing.assert_close(roi_align(x, rois, 6, 1.0, sampling_ratio), roi_align_dense(x, rois, 6, 1.0, sampling_ratio),
                               atol=1e-5, rtol=0)
    assert roi_align(x, rois[:0], 4).shape == (0, 2, 4, 4)


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def test_geometric_features_hand_built():
    boxes = torch.tensor([[0.0, 0.0, 9.0, 19.0], [5.0, 0.0, 14.0, 19.0]], dtype=torch.float64)  # 10 x 20 (+1 px)
    scores = torch.tensor([0.9, 0.6], dtype=torch.float64)
    g = geometric_features(boxes, scores, torch.tensor([200.0, 100.0]))      # W/20 = 10, H/20 = 5
    assert g.shape == (2, 2, 14)
    iou = 100 / 300                                                          # inter 5 x 20, union 200 + 200 - 100
    want01 = [0.5, 0.0, 25 / 125, 1.0, 1.0, 1.0, 4.0, 5 * iou, 1.0, 200 / 50, 3.0, -1.5, 2.0, 1.0]
    want10 = [-0.5, 0.0, 25 / 125, 1.0, 1.0, 1.0, 4.0, 5 * iou, 1.0, 200 / 50, 4.5, 1.5, 2.0, 1.0]
    want00 = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 4.0, 5.0, 1.0, 4.0, 4.5, 0.0, 2.0, 1.0]
    np.testing.assert_allclose(g[0, 1].numpy(), want01, rtol=1e-12)
    np.testing.assert_allclose(g[1, 0].numpy(), want10, rtol=1e-12)
    np.testing.assert_allclose(g[0, 0].numpy(), want00, rtol=1e-12)
    # ratios j / i with different sizes
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 19.0, 39.0]], dtype=torch.float64)
    g = geometric_features(boxes, torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([200.0, 100.0]))
    np.testing.assert_allclose(g[0, 1, [3, 5, 8, 12, 13]].numpy(), [2.0, 4.0, 8.0, 2.0, 2.0])
    np.testing.assert_allclose(g[1, 0, [3, 5, 8, 12, 13]].numpy(), [0.5, 0.25, 0.125, 1.0, 0.5])
    np.testing.assert_allclose(g[0, 1, 7].item(), 5 * 100 / 800)


def test_cell_statistics_and_fmod_size():
    cell = torch.zeros(10, 10, dtype=torch.float64)
    cell[:, 5:] = 1.0                                                        # right half on
    st = cell_statistics(cell)
    assert st.shape == (15,)
    col = torch.tensor([0.0] * 5 + [1.0] * 5, dtype=torch.float64)           # profile over width
    np.testing.assert_allclose(st[:5].numpy(), [col[0:-1:5].mean(), col.std(), 0.0, (((col - 0.5) / col.std()) ** 4).mean() - 3, 0.5])
    np.testing.assert_allclose(st[5:10].numpy(), [0.5, 0.0, 0.0, -3.0, 0.25])  # constant profile 0.5: z = 0
    np.testing.assert_allclose(st[10].item(), 0.5)
    np.testing.assert_allclose(st[14].item(), 0.5)
    edges = (torch.rand(1, 1, 40, 50) > 0.7).float()
    a = fmod_descriptors(edges, torch.tensor([[0.0, 0.0, 30.0, 30.0], [10.0, 5.0, 40.0, 35.0]]), 1.0, 3, 32, 1)
    assert a.shape == (2, 315) and torch.isfinite(a).all()
    assert fmod_descriptors(edges, torch.zeros(1, 4), 1.0, 2, 8, 1).shape == (1, 75)


def test_edge_map():
    img = np.zeros((60, 80, 3), np.uint8)
    img[20:40, 30:50] = 255
    e, f = edge_map(img, max_side=600)
    assert e.shape == (1, 1, 60, 80) and f == 1.0
    assert set(e.unique().tolist()) <= {0.0, 1.0} and e.sum() > 0
    assert e[0, 0, 30, 30] == 1 and e[0, 0, 30, 40] == 0 and e[0, 0, 5, 5] == 0   # border on, interior/outside off
    e, f = edge_map(img, max_side=40)
    assert e.shape == (1, 1, 30, 40) and f == 0.5
    with pytest.raises(SpecError, match="image"):
        edge_map(np.zeros((4, 4, 5)))


# --------------------------------------------------------------------------------------------
# Attention mask
# --------------------------------------------------------------------------------------------


def test_attention_mask_rule():
    iou = torch.tensor([[1.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 1.0]])
    want = torch.tensor([[1.0, 0.1, 0.0], [1.0, 1.0, 0.1], [0.0, 1.0, 1.0]])
    torch.testing.assert_close(attention_mask(iou), want)


def test_masked_attention_weights():
    torch.manual_seed(0)
    n, d = 4, 8
    att = MaskedMultiHeadAttention(d, heads=2).eval()
    q, kv = torch.randn(n, d), torch.randn(n, n, d)
    iou = torch.tensor([[1.0, 0.6, 0.1, 0.3], [0.6, 1.0, 0.0, 0.19], [0.1, 0.0, 1.0, 0.5], [0.3, 0.19, 0.5, 1.0]])
    mask = attention_mask(iou)
    out, w = att(q, kv, mask)
    assert out.shape == (n, d) and w.shape == (2, n, n)
    assert (w[:, iou < 0.2] == 0).all()                                     # IoU < 0.2: exactly zero weight
    torch.testing.assert_close(w.sum(-1), torch.ones(2, n))
    logits = att.logits(q, kv)                                               # (H, N, N), unmasked
    for i in range(n):
        keep = iou[i] >= 0.2
        scaled = torch.where(torch.arange(n) > i, 0.1 * logits[:, i], logits[:, i])  # lower-ranked keys x 0.1
        want = torch.softmax(scaled[:, keep], dim=-1)
        torch.testing.assert_close(w[:, i, keep], want)


# --------------------------------------------------------------------------------------------
# Loss and labels
# --------------------------------------------------------------------------------------------


def test_class_weights_and_loss():
    w0, w1 = class_weights([2, 3], [10, 4], c=0.1, start=0)                 # P = 5, B = 8 + 1, T = 14
    assert (w0, w1) == pytest.approx((0.9 * 14 / 9, 0.1 * 14 / 5))
    w0, w1 = class_weights([2, 3], [10, 4], c=0.1)                          # reference code: P, B start at 1
    assert (w0, w1) == pytest.approx((0.9 * 16 / 10, 0.1 * 16 / 6))
    w0, w1 = class_weights([2, 3], [10, 4], c=0.1, max_dets=6, start=0)     # caps: P = 5, B = 4 + 1
    assert (w0, w1) == pytest.approx((0.9 * 10 / 5, 0.1 * 10 / 5))
    with pytest.raises(SpecError):
        class_weights([0], [0], start=0)
    p, y = torch.tensor([0.9, 0.2, 1.0]), torch.tensor([1.0, 0.0, 0.0])
    want = -(2.0 * math.log(0.9) + 3.0 * math.log(0.8) + 3.0 * math.log(0.001))   # clamp to 0.999
    assert weighted_bce(p, y, w0=3.0, w1=2.0).item() == pytest.approx(want, rel=1e-5)


def test_match_labels():
    gt = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 61], [100, 100, 110, 110]], float)
    assert match_labels(boxes, [0.9, 0.95, 0.5, 0.99], gt).tolist() == [0, 1, 1, 0]   # ordered by the given scores
    assert match_labels(boxes, [0.9, 0.8, 0.5, 0.99], np.zeros((0, 4))).tolist() == [0, 0, 0, 0]


# --------------------------------------------------------------------------------------------
# Method, permutation, checkpoint
# --------------------------------------------------------------------------------------------


def scene(rng: np.random.Generator, k: int = 4, dups: int = 2, size: tuple[int, int] = (120, 160)):
    """An image with ``k`` bright person-like rectangles, their GT boxes, and candidates: each GT
    jittered ``dups + 1`` times; the best-scoring copy (the true positive) leads its duplicates by at
    least 0.1, but may score below another person's duplicate."""
    h, w = size
    img = np.full((h, w, 3), 30, np.uint8)
    gt = []
    for q in range(k):
        x0 = 5 + q * (w - 10) // k + rng.integers(0, 6)
        y0 = rng.integers(5, h - 60)
        bw, bh = rng.integers(14, (w - 10) // k - 8), rng.integers(30, 55)
        img[y0:y0 + bh, x0:x0 + bw] = rng.integers(120, 255)
        gt.append([x0, y0, x0 + bw - 1, y0 + bh - 1])
    gt = np.array(gt, float)
    cand = np.concatenate([gt + rng.uniform(-1.5, 1.5, gt.shape) for _ in range(dups + 1)])
    cand[:, 2:] = np.maximum(cand[:, 2:], cand[:, :2] + 2)
    best = rng.uniform(0.6, 1.0, k)                      # one copy per person leads its duplicates by >= 0.1
    scores = np.concatenate([best] + [rng.uniform(0.3, best - 0.1) for _ in range(dups)])
    return img, gt, cand, scores


def test_method_interface_and_permutation(tmp_path):
    rng = np.random.default_rng(1)
    img, _, boxes, scores = scene(rng)
    method = nms.make("seq2seq")
    assert isinstance(method, Seq2SeqNMS) and method.requires_image and "seq2seq" in nms.list_methods()
    with pytest.raises(SpecError, match="image"):
        method(boxes, scores)
    out = method(boxes, scores, img)
    assert out.keep.shape == (len(boxes),) and ((out.scores > 0) & (out.scores < 1)).all()
    assert (np.diff(out.scores[out.keep]) <= 0).all()
    perm = rng.permutation(len(boxes))
    out_p = method(boxes[perm], scores[perm], img)
    np.testing.assert_allclose(out_p.scores, out.scores[perm], rtol=0, atol=1e-6)   # output permutes with input
    assert (perm[out_p.keep] == out.keep).all()
    thr = Seq2SeqNMS(model=method.model, score_threshold=float(np.median(out.scores)))
    out_t = thr(boxes, scores, img)
    assert set(out_t.keep) == set(np.flatnonzero(out.scores >= thr.score_threshold))
    path = save_model(method.model, tmp_path / "s2s.pt")
    loaded = nms.make("seq2seq", checkpoint=path)
    np.testing.assert_allclose(loaded(boxes, scores, img).scores, out.scores, atol=1e-7)
    assert load_model(path).config == method.model.config
    with pytest.raises(SpecError, match="checkpoint"):
        Seq2SeqNMS(checkpoint=tmp_path / "missing.pt")
    empty = method(np.zeros((0, 4)), np.zeros(0), img)
    assert empty.keep.shape == (0,)


# --------------------------------------------------------------------------------------------
# Training: overfit a tiny synthetic set
# --------------------------------------------------------------------------------------------


EPOCHS = 300
LR = 3e-3


@pytest.fixture
def one_thread():
    """Deterministic and faster on a shared 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_overfits_duplicates(one_thread):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Seq2SeqNMSNet(Seq2SeqConfig())
    data = []
    for _ in range(6):
        img, gt, boxes, scores = scene(rng)
        order = np.argsort(-scores, kind="stable")
        boxes, scores = boxes[order], scores[order]
        y = match_labels(boxes, scores, gt)
        edges, _ = edge_map(img, model.config.max_side)
        b = torch.tensor(boxes, dtype=torch.float32)
        wh = torch.tensor([img.shape[1], img.shape[0]], dtype=torch.float32)
        data.append((model.appearance(edges, b, wh), b, torch.tensor(scores, dtype=torch.float32), wh,
                     torch.tensor(y, dtype=torch.float32)))
    model.set_normalisation(torch.cat([d[0] for d in data]))
    w0, w1 = class_weights([int(d[4].sum()) for d in data], [len(d[4]) for d in data], c=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.99), eps=1e-9)

    def epoch_loss(train: bool) -> float:
        total = 0.0
        for app, b, s, wh, y in data:
            loss = weighted_bce(model.rescore(app, b, s, wh)[0], y, w0, w1)
            if train:
                opt.zero_grad()
                loss.backward()
                opt.step()
            total += loss.item()
        return total

    model.eval()
    with torch.no_grad():
        first = epoch_loss(False)
    model.train()
    for _ in range(EPOCHS):
        epoch_loss(True)
    model.eval()
    with torch.no_grad():
        last = epoch_loss(False)
        preds = [model.rescore(app, b, s, wh)[0] for app, b, s, wh, _ in data]
    assert last < 0.25 * first, (first, last)
    for p, (*_, y) in zip(preds, data):
        assert ((p > 0.5) == (y > 0.5)).all(), (p, y)      # duplicates low, the best copy of each person high


# --------------------------------------------------------------------------------------------
# The fast inference path against the former dense computation
# --------------------------------------------------------------------------------------------


def random_candidates(gen: torch.Generator, n: int, w: float = 320.0, h: float = 240.0, people: int = 12):
    """``n`` boxes jittered around ``people`` persons (a crowd: many overlaps), scores sorted descending."""
    centre = torch.rand(people, 2, generator=gen) * torch.tensor([w, h])
    size = torch.rand(people, 2, generator=gen) * torch.tensor([40.0, 90.0]) + torch.tensor([10.0, 25.0])
    who = torch.randint(0, people, (n,), generator=gen)
    c = centre[who] + torch.randn(n, 2, generator=gen) * size[who] * 0.2
    s = size[who] * torch.exp(torch.randn(n, 2, generator=gen) * 0.2)
    boxes = torch.cat([c - s / 2, c + s / 2], dim=1)
    scores = torch.sort(torch.rand(n, generator=gen), descending=True).values
    return boxes, scores


@pytest.mark.parametrize("levels,size,ratio", [(3, 32, 1), (3, 32, 2), (2, 24, 3), (3, 16, -1)])
def test_fmod_fast_equals_dense(levels, size, ratio):
    gen = torch.Generator().manual_seed(levels * size + ratio)
    edges = (torch.rand(1, 1, 90, 120, generator=gen) > 0.75).float()
    boxes, _ = random_candidates(gen, 40, 180, 135)
    scale = torch.tensor([120 / 180, 90 / 135])
    fast = fmod_descriptors(edges, boxes, scale, levels, size, ratio).reshape(len(boxes), -1, 5)
    old = fmod_descriptors(edges, boxes, scale, levels, size, ratio, dense=True).reshape(len(boxes), -1, 5)
    # [mean, std, skewness, excess kurtosis, power] of each signal: the moments within 1e-4; skewness and
    # kurtosis of a (nearly) constant signal are rounding noise divided by a tiny std, so only where std > 1e-2
    torch.testing.assert_close(fast[..., [0, 1, 4]], old[..., [0, 1, 4]], atol=1e-4, rtol=0)
    spread = old[..., 1:2] > 1e-2
    assert spread.float().mean() > 0.5
    torch.testing.assert_close(torch.where(spread, fast[..., 2:4], 0.0), torch.where(spread, old[..., 2:4], 0.0),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("checkpoint,n", [("shipped", 150), (None, 60), ("shipped-nomask", 40)])
def test_rescore_pairs_equals_dense(checkpoint, n):
    """Attention on the unmasked pairs only gives the dense masked attention's ``p`` (within 1e-4)."""
    torch.manual_seed(0)
    model = load_model(nms.seq2seq.resolve_checkpoint(checkpoint)) if checkpoint else Seq2SeqNMSNet().eval()
    gen = torch.Generator().manual_seed(n)
    boxes, scores = random_candidates(gen, n)
    edges = (torch.rand(1, 1, 240, 320, generator=gen) > 0.8).float()
    wh = torch.tensor([320.0, 240.0])
    with torch.no_grad():
        app = model.appearance(edges, boxes, wh)
        want = model.rescore(app, boxes, scores, wh)[0]
        got = model.rescore_pairs(app, boxes, scores, wh)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
        torch.testing.assert_close(model(edges, boxes, scores, wh), want, atol=1e-4, rtol=0)   # eager forward
    if model.config.mask:
        masked = float((geometric_features(boxes, scores, wh)[..., 7] < 5 * model.config.iou_mask).float().mean())
        assert masked > 0.5                                                  # the case the pairs path is for
    p = model(edges, boxes, scores, wh)                                      # with gradients: the dense path
    assert p.requires_grad and torch.allclose(p.detach(), want, atol=1e-4)


def test_rescore_pairs_falls_back_without_pairs():
    """A query with no key above ``iou_mask`` (here ``iou_mask > 1``) is attended uniformly by the dense
    code; the pairs path then runs it, so both agree."""
    torch.manual_seed(1)
    model = Seq2SeqNMSNet(Seq2SeqConfig(iou_mask=1.5)).eval()
    boxes, scores = random_candidates(torch.Generator().manual_seed(2), 20)
    edges = (torch.rand(1, 1, 240, 320) > 0.8).float()
    wh = torch.tensor([320.0, 240.0])
    with torch.no_grad():
        app = model.appearance(edges, boxes, wh)
        torch.testing.assert_close(model.rescore_pairs(app, boxes, scores, wh), model.rescore(app, boxes, scores, wh)[0],
                                   atol=1e-6, rtol=0)


def test_method_fast_equals_old_path():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 255, (240, 320, 3)).astype(np.uint8)
    img[60:180, 100:140] = 255
    boxes, scores = random_candidates(torch.Generator().manual_seed(4), 120)
    boxes, scores = boxes.double().numpy(), rng.uniform(0.05, 1.0, 120)
    fast, old = nms.make("seq2seq"), Seq2SeqNMS(checkpoint="shipped", fast=False)
    assert fast.fast and not old.fast
    a, b = fast(boxes, scores, img), old(boxes, scores, img)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4, rtol=0)
    assert sorted(a.keep) == sorted(b.keep) == list(range(120))           # threshold 0: every candidate


# --------------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_parity(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = Seq2SeqNMSNet().eval()
    path = export_onnx(model, tmp_path / "s2s.onnx", edge_hw=(96, 128), dynamic=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(5)
    for n in (8, 23, 3):
        xy = torch.rand(n, 2, generator=gen) * 100
        boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=gen) * 60], dim=1)
        scores = torch.sort(torch.rand(n, generator=gen), descending=True).values
        edges = (torch.rand(1, 1, 96, 128, generator=gen) > 0.7).float()
        wh = torch.tensor([192.0, 144.0])
        with torch.no_grad():
            want = model(edges, boxes, scores, wh).numpy()
        got = sess.run(None, {"edges": edges.numpy(), "boxes": boxes.numpy(), "scores": scores.numpy(),
                              "image_wh": wh.numpy()})[0]
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
