"""Shared fixtures: one studio backend with 20 random avatars, one backend per shipped world.

Everything here runs on the embedded (PyBullet TinyRenderer) backend on CPU.
"""

from __future__ import annotations

import pytest

#: Seeds of the 20 random avatars used by the face and ground-truth tests.
STUDIO_SEEDS = tuple(range(7000, 7020))


@pytest.fixture(scope="session")
def studio():
    """An embedded backend holding 20 random avatars in a plain studio (show one with ``show_only``)."""
    from hcgym.envs.backends.embedded import EmbeddedBackend
    from hcgym.synthesis import AvatarSpec
    from hcgym.synthesis.studio import studio_world

    sim = EmbeddedBackend()
    sim.load(studio_world([AvatarSpec.random(s) for s in STUDIO_SEEDS]))
    yield sim
    sim.close()


@pytest.fixture(scope="session")
def studio_portraits(studio):
    """Frontal 1 m renders at 400x300 of each studio avatar: list of (index, Frame)."""
    from hcgym.synthesis.studio import portrait_pose, show_only

    frames = []
    for i, h in enumerate(studio.humans):
        show_only(studio, i)
        frames.append((i, studio.render(pose=portrait_pose(h.avatar, 1.0))))
    return frames


@pytest.fixture(scope="session")
def crowd():
    from hcgym.envs.backends.embedded import EmbeddedBackend
    from hcgym.worlds import load_world

    sim = EmbeddedBackend()
    sim.load(load_world("crowd_street"), seed=0)
    yield sim
    sim.close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one torch thread is faster, and far faster on a loaded 2-core machine."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
