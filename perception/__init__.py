"""Plug-in perception sensors, one subpackage per task, behind one contract and one registry.

>>> import hcgym.perception as hp
>>> detector = hp.make("face/mediapipe-full")
>>> faces = detector(frame)            # Detections (boxes, scores, keypoints)
>>> greedy = hp.make("nms/greedy_0.5") # NMS methods are registered as post-processors

``hp.list_sensors("face/")`` lists what is registered (``hcgym sensors`` prints the table with each
sensor's input, output and ONNX export); ``hp.spec(id)`` describes one. Perception never imports the
simulator: sensors take a :class:`~hcgym.types.Frame` or an RGB image. This package imports no task
subpackage: the registry loads their registrations on the first look-up.
"""

from hcgym.perception.base import OnnxSensor, Sensor, TorchSensor, as_image
from hcgym.perception.registry import SensorSpec, list_sensors, make, register, registry, spec, specs

__all__ = ["OnnxSensor", "Sensor", "SensorSpec", "TorchSensor", "as_image", "list_sensors", "make", "register",
           "registry", "spec", "specs"]
