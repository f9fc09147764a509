"""Face perception: detectors, landmarks, recognizers, alignment and galleries.

Registered sensors (``hcgym.perception.make(id, **kwargs)``):

=========================  ==============================================================
``face/mediapipe-short``   MediaPipe face detection, short range (within ~2 m)
``face/mediapipe-full``    MediaPipe face detection, full range (within ~5 m)
``face/dlib-hog``          dlib HOG detector
``face/dlib-mmod``         dlib CNN (MMOD) detector
``face/retinaface``        RetinaFace/SCRFD from an InsightFace pack (``model_path=``)
``face/dlib-68``           dlib 68-point landmarks
``face/mediapipe-mesh``    MediaPipe face mesh, 478 3D points
``face/dlib``              dlib 128-d ResNet recognizer
``face/arcface-onnx``      ArcFace-format ONNX recognizer (``model_path=``)
``face/insightface``       InsightFace pack: detect + align + embed (``root=``)
``face/hcgym-irnet``       hcgym's own IRNet recognizer (shipped checkpoint, or ``checkpoint=``)
=========================  ==============================================================
"""

from __future__ import annotations

_SENSORS = (
    ("face/mediapipe-short", "detectors:MediaPipeFaceDetector", "MediaPipe face detection, short range",
     {"model": "short"}),
    ("face/mediapipe-full", "detectors:MediaPipeFaceDetector", "MediaPipe face detection, full range",
     {"model": "full"}),
    ("face/dlib-hog", "detectors:DlibHogDetector", "dlib HOG face detector", {}),
    ("face/dlib-mmod", "detectors:DlibMmodDetector", "dlib CNN (MMOD) face detector", {}),
    ("face/retinaface", "insightface:RetinaFaceDetector", "RetinaFace/SCRFD ONNX (model_path=)", {}),
    ("face/dlib-68", "landmarks:Dlib68Landmarks", "dlib 68-point landmarks", {}),
    ("face/mediapipe-mesh", "landmarks:MediaPipeFaceMesh", "MediaPipe face mesh (478 3D points)", {}),
    ("face/dlib", "recognizers:DlibResNetRecognizer", "dlib 128-d ResNet recognizer", {}),
    ("face/arcface-onnx", "recognizers:ArcFaceOnnxRecognizer", "ArcFace-format ONNX recognizer (model_path=)", {}),
    ("face/insightface", "insightface:InsightFaceAnalysis", "InsightFace model pack (root=)", {}),
    ("face/hcgym-irnet", "models:hcgym_embedder", "in-house IRNet 512-d recognizer (shipped, or checkpoint=)", {}),
)


def register_all() -> None:
    from hcgym.perception.registry import register, registry

    for sid, entry, desc, kwargs in _SENSORS:
        if sid not in registry:
            module, _, attr = entry.partition(":")
            register(sid, f"hcgym.perception.face.{module}:{attr}", desc, **kwargs)
