"""Face sensors on rendered avatars, the sensor registry, the gallery and the ONNX paths."""

from __future__ import annotations

import numpy as np
import pytest

import hcgym.perception as hp
from hcgym.errors import DependencyNotInstalled, SpecError
from hcgym.geometry import box_iou
from hcgym.perception.face.align import ARCFACE_TEMPLATE, align_face, norm_crop, similarity_transform
from hcgym.perception.face.gallery import Gallery, best_threshold, kfold_verification, threshold_at_far
from hcgym.types import Detections


def _best_iou(gt, boxes):
    return max((box_iou(gt, b) for b in boxes), default=0.0)


@pytest.mark.parametrize("sid", ["face/mediapipe-short", "face/mediapipe-full", "face/dlib-hog"])
def test_detectors_find_rendered_faces(studio_portraits, sid):
    det = hp.make(sid)
    assert det.name == sid
    for i, frame in studio_portraits[:8]:
        out = det(frame)  # a Frame works as input
        assert isinstance(out, Detections) and len(out) >= 1
        assert _best_iou(frame.humans[i].face_box, out.boxes) >= 0.5


@pytest.mark.slow
def test_dlib_mmod_detector(studio_portraits):
    det = hp.make("face/dlib-mmod", upsample=1)
    for i, frame in studio_portraits[:2]:
        out = det(frame.rgb)
        assert _best_iou(frame.humans[i].face_box, out.boxes) >= 0.4


def test_landmarks_land_on_the_face(studio_portraits):
    d68, mesh = hp.make("face/dlib-68"), hp.make("face/mediapipe-mesh")
    for i, frame in studio_portraits[:5]:
        gt = frame.humans[i]
        x0, y0, x1, y1 = gt.face_box
        lm = d68(frame)
        assert lm.points.shape == (1, 68, 2)
        m = mesh(frame)
        assert m.points.shape == (1, 478, 3)
        for pts in (lm.points[0], m.points[0, :, :2]):
            inside = (pts[:, 0] > x0 - 10) & (pts[:, 0] < x1 + 10) & (pts[:, 1] > y0 - 10) & (pts[:, 1] < y1 + 15)
            assert inside.mean() > 0.9
        # Nose tip (dlib 30, mesh 1) within a few pixels of the true nose tip.
        nose = gt.face_landmarks[2, :2]
        assert np.linalg.norm(lm.points[0, 30] - nose) < 6
        assert np.linalg.norm(m.points[0, 1, :2] - nose) < 6


def test_dlib_recognizer_same_identity_is_closer(studio):
    from hcgym.synthesis.studio import portrait_pose, show_only

    rec = hp.make("face/dlib")
    front, side = [], []
    for i, h in enumerate(studio.humans[:6]):
        show_only(studio, i)
        front.append(rec(studio.render(pose=portrait_pose(h.avatar, 1.0))).vectors[0])
        side.append(rec(studio.render(pose=portrait_pose(h.avatar, 1.2, 20.0))).vectors[0])
    d = np.linalg.norm(np.asarray(side)[:, None] - np.asarray(front)[None], axis=-1)
    assert (np.argmin(d, axis=1) == np.arange(6)).all()
    assert np.diag(d).max() < np.min(d + np.eye(6) * 9)


def test_alignment_maps_the_template_onto_itself_and_warps():
    m = similarity_transform(ARCFACE_TEMPLATE * 2 + 10, ARCFACE_TEMPLATE)
    assert np.allclose(m[:, :2], np.eye(2) * 0.5) and np.allclose(m[:, 2], [-5, -5])
    img = np.zeros((224, 224, 3), np.uint8)
    img[100:110, 100:110] = 255
    chip = align_face(img, ARCFACE_TEMPLATE * 2, 112)
    assert chip.shape == (112, 112, 3) and chip[50:55, 50:55].mean() > 200


def test_gallery_identify_confidence_unknown_and_roundtrip(tmp_path):
    g = Gallery(cutoff=0.5, recognizer="face/dlib")
    g.enroll("alice", np.array([[0.0, 0.0], [0.0, 0.2]]))
    g.enroll("bob", np.array([1.0, 0.0]))
    r = g.identify(np.array([0.0, 0.3]))
    assert r.label == "alice" and r.distance == pytest.approx(0.1) and r.confidence == pytest.approx(0.8)
    r = g.identify(np.array([0.5, 0.5]))
    assert r.label is None and r.confidence == 0.0 and r.nearest in ("alice", "bob")
    stem = g.save(tmp_path / "gallery")
    assert (tmp_path / "gallery.npz").is_file() and (tmp_path / "gallery.json").is_file()
    g2 = Gallery.load(stem)
    assert g2.labels == g.labels and g2.cutoff == 0.5
    assert np.allclose(g2.distances([0.9, 0.0]), g.distances([0.9, 0.0]))
    with pytest.raises(SpecError, match="dimension"):
        g.enroll("carol", np.zeros(3))
    with pytest.raises(SpecError, match="not found"):
        Gallery.load(tmp_path / "missing")


def test_threshold_selection_and_ten_fold_cv():
    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 300)
    d = np.where(same, rng.normal(0.3, 0.05, 600), rng.normal(0.6, 0.05, 600))
    t, acc = best_threshold(d, same)
    assert 0.4 < t < 0.5 and acc > 0.99
    cv = kfold_verification(d, same, folds=10)
    assert len(cv.accuracies) == 10 and cv.mean > 99 and 0.4 < cv.threshold < 0.5
    assert threshold_at_far(d[~same], 0.01) == pytest.approx(np.quantile(d[~same], 0.01))


def _tiny_arcface_onnx(path):
    """A small ONNX model in the ArcFace format (N x 3 x 112 x 112 -> N x 512), exported by the test."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(128, 512)).eval()
    torch.onnx.export(net, (torch.zeros(1, 3, 112, 112),), str(path), input_names=["data"], output_names=["fc1"],
                      dynamic_axes={"data": {0: "n"}, "fc1": {0: "n"}}, opset_version=17, dynamo=False)
    return net


def test_arcface_onnx_recognizer_matches_torch(studio_portraits, tmp_path):
    import torch

    net = _tiny_arcface_onnx(tmp_path / "arc.onnx")
    rec = hp.make("face/arcface-onnx", model_path=tmp_path / "arc.onnx")
    i, frame = studio_portraits[0]
    out = rec(frame)
    assert out.vectors.shape == (1, 512)
    from hcgym.perception.face.recognizers import five_points

    _, five = five_points(frame.rgb, None)
    chip = norm_crop(frame.rgb, five[0], 112)  # InsightFace's alignment
    x = torch.from_numpy(((chip.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None].copy())
    assert np.allclose(out.vectors[0], net(x).detach().numpy()[0], atol=1e-4)


def test_missing_model_paths_name_what_to_download(tmp_path):
    with pytest.raises(DependencyNotInstalled, match="w600k_r50.onnx"):
        hp.make("face/arcface-onnx", model_path=tmp_path / "nope.onnx")
    with pytest.raises(DependencyNotInstalled, match="buffalo_l"):
        hp.make("face/insightface", root=tmp_path)
    with pytest.raises(DependencyNotInstalled, match="RetinaFace"):
        hp.make("face/retinaface", model_path=tmp_path / "det.onnx")
    with pytest.raises(SpecError, match="registered"):
        hp.make("face/nothing")


def _fake_scrfd(path, size=160):
    """An ONNX model with SCRFD's 9 outputs that 'detects' one face at a known place."""
    import torch

    n = {8: (size // 8) ** 2 * 2, 16: (size // 16) ** 2 * 2, 32: (size // 32) ** 2 * 2}

    class Fake(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for s, k in n.items():
                score = torch.zeros(k, 1)
                box = torch.ones(k, 4)
                kps = torch.zeros(k, 10)
                if s == 16:
                    j = (5 * (size // 16) + 4) * 2  # row 5, column 4, anchor 0
                    score[j] = 0.9
                    box[j] = torch.tensor([2.0, 3.0, 2.0, 3.0])
                    kps[j] = torch.tensor([-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -1.0, 1.5, 1.0, 1.5])
                self.register_buffer(f"s{s}", score)
                self.register_buffer(f"b{s}", box)
                self.register_buffer(f"k{s}", kps)

        def forward(self, x):
            z = x.mean() * 0
            return tuple(getattr(self, f"{p}{s}") + z for p in "sbk" for s in (8, 16, 32))

    torch.onnx.export(Fake(), (torch.zeros(1, 3, size, size),), str(path), input_names=["input.1"],
                      opset_version=17, dynamo=False)


def test_retinaface_decoding_with_a_project_exported_model(tmp_path):
    _fake_scrfd(tmp_path / "det_fake.onnx")
    det = hp.make("face/retinaface", model_path=tmp_path / "det_fake.onnx", input_size=(160, 160))
    out = det(np.zeros((320, 320, 3), np.uint8))  # scaled by 0.5 into the network
    assert len(out) == 1
    # centre (4*16, 5*16) = (64, 80) in network pixels, distances (2, 3, 2, 3) * 16, then / 0.5.
    assert np.allclose(out.boxes[0], [64, 64, 192, 256])
    assert np.allclose(out.keypoints[0, 0], [(64 - 16) * 2, (80 - 16) * 2])
    assert out.scores[0] == pytest.approx(0.9)


def test_insightface_pack_runs_detection_alignment_and_embedding(tmp_path, studio_portraits):
    pack = tmp_path / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    _fake_scrfd(pack / "det_10g.onnx")
    _tiny_arcface_onnx(pack / "w600k_r50.onnx")
    sensor = hp.make("face/insightface", root=tmp_path, det_size=(160, 160))
    out = sensor(studio_portraits[0][1])
    assert out.vectors.shape == (1, 512) and out.boxes.shape == (1, 4)


def test_sensors_reject_bad_input():
    det = hp.make("face/dlib-hog")
    with pytest.raises(SpecError, match="RGB"):
        det(np.zeros((10, 10)))
    with pytest.raises(SpecError, match="uint8"):
        det(np.zeros((10, 10, 3), np.float32))


def test_one_opencv_distribution_provides_cv2_and_insightface_imports():
    from importlib.metadata import distributions

    providers = sorted({d.metadata["Name"].lower() for d in distributions()
                        if any(f.parts[:1] == ("cv2",) for f in (d.files or []))})
    assert providers == ["opencv-contrib-python"], providers
    import cv2
    from insightface.model_zoo import SCRFD, ArcFaceONNX  # noqa: F401
    from insightface.utils import face_align  # noqa: F401

    assert hasattr(cv2, "face")  # a contrib module: the cv2 mediapipe was built against


@pytest.mark.filterwarnings("ignore:.*`estimate` is deprecated:FutureWarning")
def test_norm_crop_is_insightface_alignment_and_irnet_crop_stays_float64():
    from insightface.utils import face_align

    rng = np.random.default_rng(0)
    img = rng.integers(1, 256, (240, 320, 3), dtype=np.uint8)
    five = ARCFACE_TEMPLATE * 1.5 + [60, 20]
    assert np.array_equal(norm_crop(img, five, 112), face_align.norm_crop(img, five, 112))
    assert norm_crop(img, five, 56).shape == (56, 56, 3)  # not a multiple of 112/128: cropped at 112, resized
    # IRNet's crop: float64 template, replicated border (what the shipped model was trained on).
    m = similarity_transform(five, ARCFACE_TEMPLATE)
    assert np.allclose(m, [[1 / 1.5, 0, -40], [0, 1 / 1.5, -20 / 1.5]], atol=1e-12)
    far = ARCFACE_TEMPLATE * 3 + [250, 150]  # the crop reaches past the image corner
    assert align_face(img, far, 112).min() > 0 and norm_crop(img, far, 112)[-1, -1].max() == 0
    with pytest.raises(SpecError, match="degenerate"):
        similarity_transform(np.ones((5, 2)), ARCFACE_TEMPLATE)
