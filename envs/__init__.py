"""Gymnasium environments and the simulator backends they drive (``hcgym.envs.backends``)."""
