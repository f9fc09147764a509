"""The classical NMS family: greedy against a plain reference, hand-built cases with known answers, input checks."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception import nms

# --------------------------------------------------------------------------------------------
# Straightforward references (pure Python, no numpy)
# --------------------------------------------------------------------------------------------


def ref_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_greedy(boxes, scores, thr) -> list[int]:
    """Visit boxes by decreasing score (ties: lower index); keep one unless a kept box overlaps it by IoU > thr."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        if all(ref_iou(boxes[k], boxes[i]) <= thr for k in keep):
            keep.append(i)
    return keep


def ref_soft(boxes, scores, kind, nt=0.3, sigma=0.5, thr=0.001) -> tuple[list[int], list[float]]:
    """Soft-NMS as in Bodla et al. 2017: select the current maximum, decay the rest, drop scores below thr."""
    cur = {i: s for i, s in enumerate(scores) if s >= thr}
    rank = {i: r for r, i in enumerate(sorted(range(len(boxes)), key=lambda i: (-scores[i], i)))}
    final = [0.0] * len(boxes)
    keep = []
    while cur:
        m = min(cur, key=lambda i: (-cur[i], rank[i]))
        keep.append(m)
        final[m] = cur.pop(m)
        for i in list(cur):
            o = ref_iou(boxes[m], boxes[i])
            cur[i] *= (1 - o if o > nt else 1.0) if kind == "linear" else math.exp(-o * o / sigma)
            if cur[i] < thr:
                del cur[i]
    return keep, final


def random_case(rng: random.Random, n: int, mode: str):
    """Random candidates: ``grid`` has small integer coordinates (exact IoU ties, duplicates, empty boxes) and
    quantised scores (score ties); ``crowd`` jitters boxes around a few people; ``float`` is uniform."""
    boxes, scores = [], []
    if mode == "grid":
        for _ in range(n):
            x0, y0 = rng.randint(0, 6), rng.randint(0, 6)
            boxes.append([float(x0), float(y0), float(x0 + rng.randint(0, 4)), float(y0 + rng.randint(0, 4))])
            scores.append(rng.randint(0, 5) / 5)
    elif mode == "crowd":
        people = [(rng.uniform(0, 200), rng.uniform(0, 100), rng.uniform(10, 40)) for _ in range(rng.randint(1, 6))]
        for _ in range(n):
            x, y, w = rng.choice(people)
            h = 2.5 * w
            dx, dy, sw, sh = (rng.gauss(0, 0.15) for _ in range(4))
            x0, y0 = x + dx * w, y + dy * h
            boxes.append([x0, y0, x0 + w * math.exp(sw), y0 + h * math.exp(sh)])
            scores.append(rng.random())
    else:
        for _ in range(n):
            x0, y0 = rng.uniform(0, 50), rng.uniform(0, 50)
            boxes.append([x0, y0, x0 + rng.uniform(0, 30), y0 + rng.uniform(0, 30)])
            scores.append(rng.random())
    return boxes, scores


CASES = [(seed, mode) for seed in range(60) for mode in ("grid", "crowd", "float")]


# --------------------------------------------------------------------------------------------
# Greedy, exactly
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,mode", CASES)
def test_greedy_matches_reference_exactly(seed, mode):
    rng = random.Random(seed)
    boxes, scores = random_case(rng, rng.randint(1, 60), mode)
    for name, thr in (("greedy_0.4", 0.4), ("greedy_0.5", 0.5), ("greedy_0.6", 0.6)):
        out = nms.make(name)(np.array(boxes), np.array(scores))
        assert out.keep.tolist() == ref_greedy(boxes, scores, thr), name
        expected = np.zeros(len(boxes))
        expected[out.keep] = np.array(scores)[out.keep]
        assert out.scores.tolist() == expected.tolist()
        assert np.array_equal(out.boxes, np.array(boxes))
    for thr in (0.0, 0.3, 0.75, 1.0):
        out = nms.make("greedy_0.5", iou_threshold=thr)(boxes, scores)
        assert out.keep.tolist() == ref_greedy(boxes, scores, thr), thr


@pytest.mark.parametrize("seed,mode", CASES[::3] + CASES[1::3][:30])
def test_cluster_equals_greedy_and_fast_keeps_a_subset(seed, mode):
    rng = random.Random(1000 + seed)
    boxes, scores = random_case(rng, rng.randint(1, 60), mode)
    for thr in (0.4, 0.5, 0.6):
        greedy = nms.make("greedy_0.5", iou_threshold=thr)(boxes, scores).keep.tolist()
        assert nms.make("cluster", iou_threshold=thr)(boxes, scores).keep.tolist() == greedy
        fast = nms.make("fast", iou_threshold=thr)(boxes, scores).keep.tolist()
        assert set(fast) <= set(greedy)
        assert fast == [i for i in greedy if i in set(fast)]  # same order


@pytest.mark.parametrize("seed,mode", CASES[::2])
def test_soft_nms_matches_reference(seed, mode):
    rng = random.Random(2000 + seed)
    boxes, scores = random_case(rng, rng.randint(1, 40), mode)
    for kind in ("linear", "gaussian"):
        out = nms.make(f"soft_{kind}")(boxes, scores)
        keep, final = ref_soft(boxes, scores, kind)
        assert out.keep.tolist() == keep, kind
        np.testing.assert_allclose(out.scores, final, rtol=1e-12, atol=0)


def test_greedy_ties_and_degenerate_boxes():
    # IoU exactly 0.5: kept at threshold 0.5 (suppression needs IoU > threshold), removed at 0.4.
    boxes = [[0, 0, 4, 4], [0, 0, 4, 2]]
    assert nms.make("greedy_0.5")(boxes, [0.9, 0.8]).keep.tolist() == [0, 1]
    assert nms.make("greedy_0.4")(boxes, [0.9, 0.8]).keep.tolist() == [0]
    # Equal scores, identical boxes: the lower index wins.
    assert nms.make("greedy_0.5")([[0, 0, 4, 4]] * 3, [0.5, 0.5, 0.5]).keep.tolist() == [0]
    # Empty boxes (zero width or height) overlap nothing, not even each other.
    boxes = [[1, 1, 1, 5], [1, 1, 1, 5], [0, 0, 4, 4], [2, 2, 3, 2]]
    out = nms.make("greedy_0.5")(boxes, [0.2, 0.9, 0.5, 0.7])
    assert out.keep.tolist() == [1, 3, 2, 0]


# --------------------------------------------------------------------------------------------
# Hand-built cases with known answers
# --------------------------------------------------------------------------------------------

# Three boxes in a row: A-B and B-C overlap by IoU 50/150 = 1/3, A-C do not touch.
ROW = [[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]]
ROW_SCORES = [0.9, 0.8, 0.7]


def test_soft_nms_linear_by_hand():
    # A = [0,0,10,10] .9; B = [0,5,10,15] .8, IoU(A,B) = 50/150 = 1/3 > N_t = 0.3;
    # C = [0,0,10,2] .6, IoU(A,C) = 20/100 = 0.2 <= 0.3 (unchanged); E = copy of A at .0015, IoU 1.
    boxes = [[0, 0, 10, 10], [0, 5, 10, 15], [0, 0, 10, 2], [0, 0, 10, 10]]
    out = nms.make("soft_linear")(boxes, [0.9, 0.8, 0.6, 0.0015])
    # Select A: B -> .8 (1 - 1/3), C stays .6, E -> .0015 * 0 = 0 < 0.001 (removed).
    # Select C (.6 > .533): IoU(C,B) = 0, B unchanged. Select B.
    assert out.keep.tolist() == [0, 2, 1]
    np.testing.assert_allclose(out.scores, [0.9, 0.8 * 2 / 3, 0.6, 0.0], rtol=1e-12)
    # A chain: B is decayed twice. Select A: B -> .8 * 2/3, C stays .7 (IoU 0). Select C: B -> .8 * 2/3 * 2/3.
    out = nms.make("soft_linear")(ROW, ROW_SCORES)
    assert out.keep.tolist() == [0, 2, 1]
    np.testing.assert_allclose(out.scores, [0.9, 0.8 * (2 / 3) ** 2, 0.7], rtol=1e-12)


def test_soft_nms_gaussian_by_hand():
    boxes = [[0, 0, 10, 10], [0, 5, 10, 15], [0, 0, 10, 2], [0, 0, 10, 10]]
    out = nms.make("soft_gaussian")(boxes, [0.9, 0.8, 0.6, 0.0015])
    # sigma = 0.5. Select A: B -> .8 exp(-(1/3)^2/.5) = .6406, C -> .6 exp(-.2^2/.5) = .5539,
    # E -> .0015 exp(-1/.5) = .0002 < 0.001 (removed). Select B (.6406 > .5539): IoU(B,C) = 0. Select C.
    b, c = 0.8 * math.exp(-(1 / 9) / 0.5), 0.6 * math.exp(-0.04 / 0.5)
    assert b > c
    assert out.keep.tolist() == [0, 1, 2]
    np.testing.assert_allclose(out.scores, [0.9, b, c, 0.0], rtol=1e-12)
    # The chain: select A: B -> .8 g, C stays .7 (g = exp(-(1/3)^2/.5)); select C: B -> .8 g^2.
    g = math.exp(-(1 / 9) / 0.5)
    out = nms.make("soft_gaussian")(ROW, ROW_SCORES)
    assert out.keep.tolist() == [0, 2, 1]
    np.testing.assert_allclose(out.scores, [0.9, 0.8 * g * g, 0.7], rtol=1e-12)


def test_fast_nms_suppresses_more_than_greedy():
    # Threshold 0.3: greedy keeps A, removes B (IoU 1/3 with A), keeps C (B is gone).
    # Fast-NMS lets the removed B still remove C, so only A survives. Cluster-NMS equals greedy.
    assert nms.make("greedy_0.5", iou_threshold=0.3)(ROW, ROW_SCORES).keep.tolist() == [0, 2]
    fast = nms.make("fast", iou_threshold=0.3)(ROW, ROW_SCORES)
    assert fast.keep.tolist() == [0]
    np.testing.assert_array_equal(fast.scores, [0.9, 0.0, 0.0])
    assert nms.make("cluster", iou_threshold=0.3)(ROW, ROW_SCORES).keep.tolist() == [0, 2]
    # At the default 0.5 nothing overlaps enough: all three survive in every hard method.
    for name in ("greedy_0.5", "fast", "cluster"):
        assert nms.make(name)(ROW, ROW_SCORES).keep.tolist() == [0, 1, 2]


def test_cluster_s_by_hand():
    e = math.exp(-(1 / 9) / 0.2)  # score penalty exp(-IoU^2 / sigma) for IoU 1/3, sigma 0.2
    # Threshold 0.5: all three are kept rows of C, so B is decayed by A and C by B.
    out = nms.make("cluster_s")(ROW, ROW_SCORES)
    np.testing.assert_allclose(out.scores, [0.9, 0.8 * e, 0.7 * e], rtol=1e-12)
    assert out.keep.tolist() == [0, 1, 2]
    # Threshold 0.3: B is suppressed, so its row of C is zero and it does not decay C; B itself stays
    # (decayed by A), since the S variant removes nothing by overlap.
    out = nms.make("cluster_s", iou_threshold=0.3)(ROW, ROW_SCORES)
    np.testing.assert_allclose(out.scores, [0.9, 0.8 * e, 0.7], rtol=1e-12)
    assert out.keep.tolist() == [0, 2, 1]
    # A decayed score below score_threshold (0.01) removes the box: a copy of A at .5 -> .5 exp(-1/.2) = .0034.
    out = nms.make("cluster_s")([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.5])
    assert 0.5 * math.exp(-5) < 0.01
    assert out.keep.tolist() == [0] and out.scores.tolist() == [0.9, 0.0]


def test_cluster_d_by_hand():
    # A = [0,0,10,10]; B = [4,0,14,10]: IoU 60/140 = 3/7, centres 4 apart, enclosing box 14 x 10;
    # C = [0,1,10,11]: IoU(A,C) = 90/110 = 9/11, centres 1 apart, enclosing 10 x 11.
    boxes = [[0, 0, 10, 10], [4, 0, 14, 10], [0, 1, 10, 11]]
    diou_ab = 3 / 7 - (16 / (14 ** 2 + 10 ** 2)) ** 0.9
    diou_ac = 9 / 11 - (1 / (10 ** 2 + 11 ** 2)) ** 0.9
    assert diou_ab <= 0.4 < 3 / 7 and diou_ac > 0.4
    # At 0.4, plain Cluster-NMS (= greedy) removes B and C; the DIoU variant keeps B: its centre is far.
    assert nms.make("cluster", iou_threshold=0.4)(boxes, [0.9, 0.8, 0.7]).keep.tolist() == [0]
    out = nms.make("cluster_d", iou_threshold=0.4)(boxes, [0.9, 0.8, 0.7])
    assert out.keep.tolist() == [0, 1]
    np.testing.assert_array_equal(out.scores, [0.9, 0.8, 0.0])


def test_cluster_sd_by_hand():
    # A = [0,0,10,10] .9, B = [4,0,14,10] .8, F = [9,0,19,10] .7; IoU AB = 3/7, AF = 10/190 = 1/19,
    # BF = 50/150 = 1/3, all <= 0.5, so C is the whole upper triangle.
    # Distance terms (rho^2/c^2)^0.6: AB 16/296, AF 81/461, BF 25/325; sigma 0.2.
    boxes = [[0, 0, 10, 10], [4, 0, 14, 10], [9, 0, 19, 10]]
    f_ab = min(math.exp(-(3 / 7) ** 2 / 0.2) + (16 / 296) ** 0.6, 1.0)
    f_af = math.exp(-(1 / 19) ** 2 / 0.2) + (81 / 461) ** 0.6
    f_bf = min(math.exp(-(1 / 3) ** 2 / 0.2) + (25 / 325) ** 0.6, 1.0)
    assert f_ab < 1 and f_af > 1 and f_bf < 1  # A barely touches F, far apart: no decay from A (capped at 1)
    out = nms.make("cluster_sd")(boxes, [0.9, 0.8, 0.7])
    np.testing.assert_allclose(out.scores, [0.9, 0.8 * f_ab, 0.7 * f_bf], rtol=1e-12)
    assert out.keep.tolist() == [0, 1, 2] if 0.8 * f_ab >= 0.7 * f_bf else [0, 2, 1]
    # Without the distance term (S alone) A does decay F.
    s = nms.make("cluster_s")(boxes, [0.9, 0.8, 0.7]).scores
    np.testing.assert_allclose(s[2], 0.7 * math.exp(-(1 / 19) ** 2 / 0.2) * math.exp(-(1 / 3) ** 2 / 0.2), rtol=1e-12)
    np.testing.assert_array_equal(out.boxes, np.array(boxes, float))  # S+D does not move boxes


def test_cluster_sdw_by_hand():
    # A = [0,0,10,10] .9, G = [1,0,11,10] .8 (IoU 90/110 = 9/11 > 0.8), H = [0,2,10,12] .7
    # (IoU(A,H) = 80/120 = 2/3, IoU(G,H) = 72/128). At 0.5 A removes G and H: C has only row A.
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 2, 10, 12]], float)
    s_a = 0.9
    s_g = 0.8 * min(math.exp(-(9 / 11) ** 2 / 0.2) + (1 / (11 ** 2 + 10 ** 2)) ** 0.6, 1.0)
    s_h = 0.7 * min(math.exp(-(2 / 3) ** 2 / 0.2) + (4 / (10 ** 2 + 12 ** 2)) ** 0.6, 1.0)  # G's row is zero
    assert s_g > 0.01 and s_h > 0.01
    out = nms.make("cluster_sdw")(boxes, [0.9, 0.8, 0.7])
    np.testing.assert_allclose(out.scores, [s_a, s_g, s_h], rtol=1e-12)
    assert out.keep.tolist() == ([0, 1, 2] if s_g >= s_h else [0, 2, 1])
    # A is averaged with G (IoU 9/11 > 0.8), weights s_A and s_G * 9/11; H (IoU 2/3 <= 0.8) does not count.
    w_a, w_g = s_a, s_g * 9 / 11
    np.testing.assert_allclose(out.boxes[0], (w_a * boxes[0] + w_g * boxes[1]) / (w_a + w_g), rtol=1e-12)
    np.testing.assert_array_equal(out.boxes[1:], boxes[1:])  # suppressed boxes are not moved
    np.testing.assert_allclose(nms.make("cluster_sd")(boxes, [0.9, 0.8, 0.7]).scores, out.scores, rtol=1e-12)


def test_keep_is_sorted_by_final_score_for_every_method():
    rng = random.Random(7)
    boxes, scores = random_case(rng, 80, "crowd")
    image = np.zeros((480, 640, 3), np.uint8)
    for name in nms.list_methods():
        out = nms.make(name)(boxes, scores, image)
        kept = out.scores[out.keep]
        assert (np.diff(kept) <= 0).all(), name
        assert (kept > 0).all() or name.startswith("greedy")
        removed = np.setdiff1d(np.arange(len(boxes)), out.keep)
        assert (out.scores[removed] == 0).all(), name
        assert out.keep.dtype == np.int64 and out.scores.shape == (len(boxes),) and out.boxes.shape == (len(boxes), 4)


# --------------------------------------------------------------------------------------------
# Interface and input checks
# --------------------------------------------------------------------------------------------


def test_registry():
    assert nms.list_methods() == ["greedy_0.4", "greedy_0.5", "greedy_0.6", "soft_linear", "soft_gaussian", "fast",
                                  "cluster", "cluster_s", "cluster_d", "cluster_sd", "cluster_sdw", "seq2seq",
                                  "seq2seq-onnx"]
    assert nms.make("greedy_0.6").iou_threshold == 0.6
    m = nms.make("soft_gaussian", sigma=0.3)
    assert (m.method, m.sigma, m.iou_threshold, m.score_threshold) == ("gaussian", 0.3, 0.3, 0.001)
    assert nms.make("cluster_sd").distance_beta == 0.6 and nms.make("cluster_d").distance_beta == 0.9
    assert nms.make("cluster_s").score_threshold == 0.01 and nms.make("cluster").score_threshold == 0.0
    with pytest.raises(SpecError, match="unknown NMS method 'greedy'.*greedy_0.5"):
        nms.make("greedy")
    with pytest.raises(SpecError, match="iou_threshold"):
        nms.make("fast", iou_threshold=1.5)
    with pytest.raises(SpecError, match="sigma"):
        nms.make("soft_gaussian", sigma=0)
    with pytest.raises(SpecError, match="weighted"):
        nms.ClusterNMS(weighted=True)
    out = nms.nms(ROW, ROW_SCORES, image=np.zeros((20, 30, 3), np.uint8), method="fast", iou_threshold=0.3)
    assert out.keep.tolist() == [0]


def test_torch_input():
    torch = pytest.importorskip("torch")
    out = nms.make("greedy_0.5", iou_threshold=0.3)(torch.tensor(ROW, dtype=torch.float32), torch.tensor(ROW_SCORES))
    assert out.keep.tolist() == [0, 2]


@pytest.mark.parametrize("name", nms.list_methods())
def test_empty_input(name):
    for boxes, scores in (([], []), (np.zeros((0, 4)), np.zeros(0))):
        out = nms.make(name)(boxes, scores, np.zeros((8, 8, 3), np.uint8))
        assert out.keep.shape == (0,) and out.scores.shape == (0,) and out.boxes.shape == (0, 4)


@pytest.mark.parametrize("boxes,scores,match", [
    (np.zeros((3, 5)), np.zeros(3), r"boxes: expected shape \(N, 4\).*\(3, 5\)"),
    (np.zeros(4), np.zeros(1), r"boxes: expected shape \(N, 4\).*\(4,\)"),
    (np.zeros((3, 4)), np.zeros((3, 1)), r"scores: expected shape \(N,\), got \(3, 1\)"),
    (np.zeros((3, 4)), np.zeros(2), "scores: expected 3 scores"),
    ([[0, 0, 1, 1], [0, 0, float("nan"), 1]], [0.5, 0.5], r"boxes\[1\]: not finite"),
    ([[0, 0, 1, 1]], [float("inf")], r"scores\[0\]: not finite"),
    ([[0, 0, 1, 1]], [float("nan")], r"scores\[0\]: not finite"),
    ([[0, 0, 1, 1], [5, 0, 3, 1]], [0.5, 0.5], r"boxes\[1\]: x1 < x0"),
    ([[0, 4, 1, 1]], [0.5], r"boxes\[0\]: y1 < y0"),
    ([[0, 0, 1, 1]], [-0.1], r"scores\[0\]: negative"),
    ([["a", 0, 1, 1]], [0.5], "boxes: expected an array of numbers"),
])
def test_bad_input(boxes, scores, match):
    for name in ("greedy_0.5", "soft_linear", "cluster_sdw"):
        with pytest.raises(SpecError, match=match):
            nms.make(name)(boxes, scores)
