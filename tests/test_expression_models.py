"""Expression graphs and models: layouts, normalisation, Delaunay edges, ST-BLN / ST-GCN / AGCN, parameters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hcgym.errors import SpecError
from hcgym.perception.expression import graph as G
from hcgym.perception.expression import models as M
from hcgym.perception.expression.toy import CLASSES, template51, toy_sequences

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    x, y, _ = toy_sequences(3, frames=4, seed=0)
    return x, y


@pytest.fixture(scope="module")
def graph(data):
    return G.graph_from_data(data[0])


def _rotate(x: np.ndarray, deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return x @ r.T


# ------------------------------------------------------------------ layout and normalisation

def test_dlib51_flip_is_the_mirror_of_a_symmetric_face():
    flip = np.array(G.DLIB51.flip)
    assert (flip[flip] == np.arange(51)).all()              # an involution
    assert (flip != np.arange(51)).sum() == 42               # 21 pairs, 9 points on the midline
    t = template51()
    mirrored = t * [-1, 1]
    assert np.allclose(mirrored[np.argsort(flip)], t)        # landmark i of the mirror is flip[i] of the face
    assert flip[36 - 17] == 45 - 17 and flip[48 - 17] == 54 - 17 and flip[30 - 17] == 30 - 17


def test_normalise_puts_the_nose_at_the_origin_and_eyes_one_unit_apart(data):
    x = data[0]
    n = G.normalise(x, G.DLIB51.nose, G.DLIB51.eyes)
    assert n.shape == x.shape and n.dtype == np.float32
    assert np.abs(n[:, :, G.DLIB51.nose]).max() < 1e-6
    eyes = [n[:, 0, list(e)].mean(1) for e in G.DLIB51.eyes]
    assert np.allclose(np.linalg.norm(eyes[0] - eyes[1], axis=-1), 1.0, atol=1e-5)
    # invariant to translation and size, equivariant to rotation; torch and numpy agree
    moved = x * 1.7 + np.array([30.0, -12.0], dtype=np.float32)
    assert np.allclose(G.normalise(moved, 13, G.DLIB51.eyes), n, atol=1e-5)
    assert np.allclose(G.normalise(_rotate(x, 20).astype(np.float32), 13, G.DLIB51.eyes), _rotate(n, 20), atol=1e-5)
    assert np.allclose(G.normalise(torch.from_numpy(x), 13, G.DLIB51.eyes).numpy(), n)
    assert np.isfinite(G.normalise(np.zeros((1, 2, 51, 2), np.float32), 13, G.DLIB51.eyes)).all()


def test_layout_checks():
    with pytest.raises(SpecError, match="graph.nose"):
        G.FaceLayout(51, 60, ((0,), (1,))).check()
    with pytest.raises(SpecError, match="graph.flip"):
        G.FaceLayout(4, 0, ((1,), (2,)), flip=(0, 0, 1, 2)).check()
    with pytest.raises(SpecError, match="x"):
        G.reference_shape(np.zeros((2, 4, 50, 2)), G.DLIB51)


# ------------------------------------------------------------------ edges and partitions

def test_delaunay_edges_are_the_deduplicated_triangulation_plus_the_master_star():
    from scipy.spatial import Delaunay

    t = template51()
    edges = G.delaunay_edges(t, master=13)
    assert edges.dtype == np.int64 and edges.shape[1] == 2
    assert [tuple(e) for e in edges[:50]] == [(i, 13) for i in range(51) if i != 13]
    rest = [tuple(e) for e in edges[50:]]
    assert rest == sorted(rest) and all(a < b and 13 not in (a, b) for a, b in rest)
    undirected = {tuple(sorted(e)) for e in edges.tolist()}
    assert len(undirected) == len(edges)                     # no duplicates
    tri = {tuple(sorted((int(s[a]), int(s[b])))) for s in Delaunay(t).simplices for a, b in ((0, 1), (0, 2), (1, 2))}
    assert undirected == tri | {tuple(sorted((i, 13))) for i in range(51) if i != 13}
    assert np.array_equal(G.delaunay_edges(t, 13), edges)   # deterministic
    with pytest.raises(SpecError, match="reference"):
        G.delaunay_edges(np.zeros((5, 2)), 0)


def test_graph_from_data_is_deterministic_and_round_trips(data, graph):
    assert G.graph_from_data(data[0]) == graph
    assert graph.layout == G.DLIB51 and len(graph.reference) == 51
    assert G.FaceGraph.from_dict(graph.to_dict()) == graph
    with pytest.raises(SpecError, match="graph.edges"):
        dataclasses.replace(graph, edges=((0, 0),)).check()
    with pytest.raises(SpecError, match="graph"):
        G.FaceGraph.from_dict({"edges": []})


def test_node_partitions_split_neighbours_by_distance_to_the_nose(graph):
    parts = graph.partitions()
    assert parts.shape == (3, 51, 51) and parts.dtype == np.float32
    assert np.allclose(parts[0], np.eye(51))
    rows = parts.sum(-1)
    assert np.allclose(rows[(rows > 0)], 1.0)
    ref = np.asarray(graph.reference)
    r = np.linalg.norm(ref - ref[13], axis=1)
    nearer, farther = np.argwhere(parts[1] > 0), np.argwhere(parts[2] > 0)
    assert all(r[j] < r[i] for i, j in nearer) and all(r[j] > r[i] for i, j in farther)
    assert (parts[2, 13] > 0).sum() == 50 and (parts[1, 13] == 0).all()   # the nose: every node is farther
    support = (parts[1] > 0) | (parts[2] > 0)
    adj = np.zeros((51, 51), bool)
    for a, b in graph.edges:
        adj[a, b] = adj[b, a] = True
    assert np.array_equal(support, adj)


# ------------------------------------------------------------------ models

def test_kernel_and_strides_follow_the_clip_length():
    assert [M.temporal_kernel(t) for t in (1, 2, 3, 4, 8, 9, 32, 150)] == [1, 1, 3, 3, 7, 9, 9, 9]
    assert M.layer_strides(4, 7, 3) == (1,) * 7
    assert M.layer_strides(32, 7, 9) == (1, 1, 1, 1, 2, 1, 1)
    assert M.layer_strides(150, 10, 9) == (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    assert M.layer_strides(32, 10, 9) == (1, 1, 1, 1, 2, 1, 1, 1, 1, 1)   # 16 frames < 2K at layer 7


@pytest.mark.parametrize("kind", M.MODELS)
@pytest.mark.parametrize("frames", [4, 32])
def test_models_map_landmarks_to_scores_and_keep_the_points(kind, frames, graph):
    cfg = M.ExprModelConfig(graph=graph, model=kind, widths=(6, 8, 8, 8, 8), frames=frames)
    model = M.build_model(cfg).eval()
    x, _, _ = toy_sequences(1, frames=frames, seed=1)
    points = []
    hooks = [layer.register_forward_hook(lambda m, i, o: points.append(o.shape)) for layer in model.layers]
    out = model(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    assert out.shape == (len(CLASSES), len(CLASSES)) and torch.isfinite(out).all()
    p = graph.num_edges if kind == "stbln" else 51
    assert all(s[1] == w and s[3] == p for s, w in zip(points, cfg.widths))   # E (or V) kept by every layer
    frames_out = [s[2] for s in points]
    assert frames_out == ([32] * 4 + [16] if frames == 32 else [4] * 5)
    # position and size of the face do not matter (the model normalises)
    moved = torch.from_numpy(x * 0.6 + np.array([40.0, 5.0], dtype=np.float32))
    assert torch.allclose(model(moved), out, atol=1e-4)
    with pytest.raises(SpecError, match="input"):
        model(torch.zeros(2, frames, 50, 2))


def test_edge_features_are_normalised_landmark_differences(data, graph):
    x = data[0][:2]
    feats = M.FaceFeatures(graph, edges=True)(torch.from_numpy(x)).numpy()
    n = G.normalise(x, 13, G.DLIB51.eyes)
    e = np.asarray(graph.edges)
    assert feats.shape == (2, 2, 4, graph.num_edges)
    assert np.allclose(feats, (n[:, :, e[:, 0]] - n[:, :, e[:, 1]]).transpose(0, 3, 1, 2), atol=1e-6)
    nodes = M.FaceFeatures(graph, edges=False)(torch.from_numpy(x)).numpy()
    assert np.allclose(nodes, n.transpose(0, 3, 1, 2))


def test_parameter_counts_reproduce_the_seed_convention(graph):
    # OpenDR's 51-point edge set has E = 309 (duplicates kept); with K = 9 the seed's ST-BLN has 132.3k
    # parameters besides the seven 3 x E x E graph matrices
    wide = dataclasses.replace(graph, edges=tuple((i % 51, (i + 1 + i // 51) % 51) for i in range(309)))
    counts = M.count_params(M.build_model(M.ExprModelConfig(graph=wide, frames=32)))
    assert counts["graph_params"] == 7 * 3 * 309 * 309
    assert counts["params_no_graph"] == 132_339
    assert counts["params"] == counts["params_no_graph"] + counts["graph_params"]
    gcn = M.count_params(M.build_model(M.ExprModelConfig(graph=graph, model="stgcn", frames=32)))
    agcn = M.count_params(M.build_model(M.ExprModelConfig(graph=graph, model="agcn", frames=32)))
    assert gcn["graph_params"] == agcn["graph_params"] == 7 * 3 * 51 * 51
    assert 120_000 < gcn["params_no_graph"] < agcn["params_no_graph"] < 150_000


def test_config_checks_and_round_trip(graph):
    cfg = M.ExprModelConfig(graph=graph, model="agcn", widths=(5, 10), frames=32, dropout_at="before")
    assert M.ExprModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(SpecError, match="model.model"):
        M.ExprModelConfig(graph=graph, model="dgnn").check()
    with pytest.raises(SpecError, match=r"model.widths\[1\]"):
        M.ExprModelConfig(graph=graph, widths=(8, 0)).check()
    with pytest.raises(SpecError, match="model.colour"):
        M.ExprModelConfig.from_dict({**cfg.to_dict(), "colour": 1})
    assert M.ExprModelConfig(graph=graph, widths=(8, 8, 16)).residuals() == (("none", "conv"), ("identity", "identity"),
                                                                             ("conv", "conv"))
    assert M.ExprModelConfig(graph=graph, widths=(8, 8), residual="conv").residuals() == (("none", "conv"), ("conv", "conv"))


def test_dropout_placement(graph):
    after = M.build_model(M.ExprModelConfig(graph=graph, widths=(5,)))
    before = M.build_model(M.ExprModelConfig(graph=graph, widths=(5,), dropout_at="before"))
    assert [n for n, _ in after.layers[0].named_children()] == ["block", "drop"]
    assert [n for n, _ in before.layers[0].named_children()] == ["drop", "block"]
    assert after.state_dict().keys() == before.state_dict().keys()


def test_build_model_is_seeded_and_leaves_the_global_generator_alone(graph):
    cfg = M.ExprModelConfig(graph=graph, widths=(5, 5))
    state = torch.get_rng_state()
    a, b, c = M.build_model(cfg, 3), M.build_model(cfg, 3), M.build_model(cfg, 4)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["layers.0.block.tcn.weight"], sc["layers.0.block.tcn.weight"])
    assert torch.all(sa["layers.0.block.gcn.U"] == 1e-6)


@pytest.mark.parametrize("kind", M.MODELS)
def test_models_export_to_onnx_with_any_batch_and_length(kind, graph):
    import io
    import warnings

    import onnxruntime as ort

    model = M.build_model(M.ExprModelConfig(graph=graph, model=kind, widths=(6, 8), frames=8)).eval()
    x = torch.from_numpy(toy_sequences(1, frames=8, seed=4)[0])
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x[:1], buf, input_names=["landmarks"], output_names=["scores"], opset_version=17,
                          dynamo=False, dynamic_axes={"landmarks": {0: "n", 1: "t"}, "scores": {0: "n"}})
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for clip in (x, x[:3, :4]):
            out = session.run(None, {"landmarks": clip.numpy()})[0]
            assert np.allclose(out, model(clip).numpy(), atol=1e-4)
