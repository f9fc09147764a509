"""Plug-in perception sensors, one subpackage per task, behind one contract.

>>> import hcgym.perception as hp
>>> detector = hp.make("face/mediapipe-full")
>>> faces = detector(frame)            # Detections (boxes, scores, keypoints)

``hp.list_sensors("face/")`` lists what is registered. Perception never imports
the simulator: sensors take a :class:`~hcgym.types.Frame` or an RGB image.
"""

from hcgym.perception.base import OnnxSensor, Sensor, TorchSensor, as_image
from hcgym.perception.registry import list_sensors, make, register, registry

__all__ = ["OnnxSensor", "Sensor", "TorchSensor", "as_image", "list_sensors", "make", "register", "registry"]

from hcgym.perception.face import register_all as _register_face  # noqa: E402

_register_face()
