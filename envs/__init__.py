"""Gymnasium environments and the simulator backends they drive (``hcgym.envs.backends``).

Registered ids:

* ``hcgym/ActiveFaceRecognition-v0``: OpenDR D3.2 section 2.2, setup 2 (stay, forward, backward,
  arc-left, arc-right around a person facing a random direction).
* ``hcgym/ActiveFaceRecognitionOneAxis-v0``: setup 1 (stay, forward, backward; person in front).
* ``hcgym/ActiveFaceRecognitionPan-v0``: section 2.4, pan/tilt moves on a sphere around a head (HPID-like).

``import hcgym.envs`` registers them. In worker processes (``SubprocVecEnv``), use the
``"hcgym.envs:hcgym/ActiveFaceRecognition-v0"`` form so each worker imports this module first.
"""

from gymnasium.envs.registration import register, registry

for _id, _entry in (("hcgym/ActiveFaceRecognition-v0", "hcgym.envs.active_fr:ActiveFaceRecognitionEnv"),
                    ("hcgym/ActiveFaceRecognitionOneAxis-v0", "hcgym.envs.active_fr:ActiveFaceRecognitionOneAxisEnv"),
                    ("hcgym/ActiveFaceRecognitionPan-v0", "hcgym.envs.active_fr_pan:ActiveFaceRecognitionPanEnv")):
    if _id not in registry:
        register(id=_id, entry_point=_entry, max_episode_steps=None)
