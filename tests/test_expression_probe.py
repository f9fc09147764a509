"""Linear probes of expression caches: a visible blend is found, an invisible one is not."""

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.perception.expression.probe import clip_features, observability, table


def _cache(visible_blend: bool, n: int = 420, frames: int = 6, points: int = 12, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 7, n)
    blend = (label != 0) & (rng.random(n) < 0.4)
    base = rng.normal(size=(points, 2))
    moves = rng.normal(size=(7, points, 2)) * 0.3
    extra = rng.normal(size=(points, 2)) * 0.4
    ramp = np.linspace(0, 1, frames)[None, :, None, None]
    shift = moves[label][:, None] + (extra[None, None] * blend[:, None, None, None] if visible_blend else 0)
    truth = base[None, None] + ramp * shift + rng.normal(size=(n, frames, points, 2)) * 0.05
    split = np.where(np.arange(n) % 3 == 0, "test", "train")
    return {"truth51": truth.astype(np.float32), "label": label, "label2": np.where(blend, 1, -1),
            "split": split, "labels": np.array(["neutral", "a", "b", "c", "d", "e", "f"])}


def test_clip_features_shape_and_scale_invariance():
    pts = np.random.default_rng(1).normal(size=(3, 10, 5, 2))
    f = clip_features(pts, 4)
    assert f.shape == (3, 4 * 5 * 2 + 5 * 2)
    np.testing.assert_allclose(clip_features(pts * 3.0 + 7.0, 4), f, atol=1e-9)
    with pytest.raises(SpecError, match="frames"):
        clip_features(pts, 1)
    with pytest.raises(SpecError, match="points"):
        clip_features(pts[..., 0], 4)


def test_probe_sees_a_visible_blend_and_not_an_invisible_one():
    seen = observability(_cache(True), sources=["truth"], frames=[6])[0]
    unseen = observability(_cache(False), sources=["truth"], frames=[6])[0]
    assert seen["acc"] > 0.8 and unseen["acc"] > 0.8
    assert seen["blend_detector_auroc"] > 0.9
    assert 0.3 < unseen["blend_detector_auroc"] < 0.7
    assert "| truth | 6 |" in table([seen, unseen])


def test_probe_rejects_unknown_source():
    with pytest.raises(SpecError, match="sources"):
        observability(_cache(True), sources=["kinect"], frames=[6])
