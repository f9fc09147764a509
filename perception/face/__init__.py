"""Face perception: detectors, landmarks, recognizers, alignment and galleries.

Registered sensors: the detectors, landmarkers and recognizers in :func:`register_all` (one ``register``
call each), created with ``hcgym.perception.make(id, **kwargs)``; ``hcgym sensors face/`` lists them with
their input, output and ONNX export.
"""

from __future__ import annotations

from hcgym.perception.registry import register

_P = "hcgym.perception.face."
_FRAME, _FRAME_BOXES = "rgb frame", "rgb frame [+ face boxes]"


def register_all() -> None:
    """Register the face sensors (called by the registry on its first look-up)."""
    detector = {"kind": "face detector", "input": _FRAME, "output": "Detections"}
    register("face/mediapipe-short", _P + "detectors:MediaPipeFaceDetector", **detector,
             description="MediaPipe face detection, short range", kwargs={"model": "short"})
    register("face/mediapipe-full", _P + "detectors:MediaPipeFaceDetector", **detector,
             description="MediaPipe face detection, full range", kwargs={"model": "full"})
    register("face/mediapipe-tiled", _P + "detectors:MediaPipeTiledFaceDetector", **detector,
             description="MediaPipe full range on the whole image and on 480 px windows of larger images")
    register("face/dlib-hog", _P + "detectors:DlibHogDetector", **detector, description="dlib HOG face detector")
    register("face/dlib-mmod", _P + "detectors:DlibMmodDetector", **detector,
             description="dlib CNN (MMOD) face detector")
    register("face/retinaface", _P + "insightface:RetinaFaceDetector", **detector,
             description="RetinaFace/SCRFD ONNX (model_path=)")
    register("face/dlib-68", _P + "landmarks:Dlib68Landmarks", kind="face landmarks", input=_FRAME_BOXES,
             output="Landmarks", description="dlib 68-point landmarks")
    register("face/mediapipe-mesh", _P + "landmarks:MediaPipeFaceMesh", kind="face landmarks", input=_FRAME,
             output="Landmarks", description="MediaPipe face mesh (478 3D points)")
    recognizer = {"kind": "face recognizer", "output": "Embeddings"}
    register("face/dlib", _P + "recognizers:DlibResNetRecognizer", **recognizer, input=_FRAME_BOXES,
             description="dlib 128-d ResNet recognizer")
    register("face/arcface-onnx", _P + "recognizers:ArcFaceOnnxRecognizer", **recognizer, input=_FRAME_BOXES,
             description="ArcFace-format ONNX recognizer (model_path=)")
    register("face/insightface", _P + "insightface:InsightFaceAnalysis", **recognizer, input=_FRAME,
             description="InsightFace model pack: detect + align + embed (root=)")
    register("face/hcgym-irnet", _P + "models:hcgym_embedder", **recognizer, input=_FRAME_BOXES,
             onnx=_P + "irnet:HcgymFaceEmbedder",
             description="in-house IRNet 512-d recognizer (shipped, or checkpoint=)")
