"""Plug-in perception sensors, one subpackage per task (faces, detection, NMS, ...)."""
