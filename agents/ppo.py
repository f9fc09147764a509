"""PPO (stable-baselines3) with the paper's network, and an :class:`Agent` wrapper.

The network of OpenDR D3.2 section 2.2: conv 16 filters 8x8 (ReLU), conv 32 filters 4x4 (ReLU),
a fully connected layer of 256 (ReLU), a softmax policy head and a value head with tanh; Adam,
learning rate 3e-4. Strides 4 and 2 (as in the DQN network the description follows).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from hcgym.agents.base import Agent


def _extractor_cls():
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class PaperCnn(BaseFeaturesExtractor):
        """conv 16x8x8/4 -> ReLU -> conv 32x4x4/2 -> ReLU -> flatten -> FC 256 -> ReLU."""

        def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 256) -> None:
            super().__init__(observation_space, features_dim)
            c = observation_space.shape[0]
            self.cnn = nn.Sequential(nn.Conv2d(c, 16, 8, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2),
                                     nn.ReLU(), nn.Flatten())
            with torch.no_grad():
                n = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
            self.linear = nn.Sequential(nn.Linear(n, features_dim), nn.ReLU())

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.linear(self.cnn(obs))

    return PaperCnn


def _policy_cls():
    from stable_baselines3.common.policies import ActorCriticCnnPolicy

    class PaperPolicy(ActorCriticCnnPolicy):
        """Actor-critic on :class:`PaperCnn`: softmax (categorical) policy head, tanh value head."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("features_extractor_class", _extractor_cls())
            kwargs.setdefault("features_extractor_kwargs", {"features_dim": 256})
            kwargs.setdefault("net_arch", [])
            kwargs.setdefault("share_features_extractor", True)  # one trunk, two output layers
            super().__init__(*args, **kwargs)

        def _build(self, lr_schedule) -> None:
            super()._build(lr_schedule)
            self.value_net = nn.Sequential(self.value_net, nn.Tanh())
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    return PaperPolicy


def make_ppo(env, seed: int = 0, learning_rate: float = 3e-4, n_steps: int = 128, batch_size: int = 256,
             n_epochs: int = 4, gamma: float = 0.99, ent_coef: float = 0.01, tensorboard_log: str | None = None,
             **kwargs: Any):
    """A PPO model with the paper's policy (Adam, lr 3e-4)."""
    from stable_baselines3 import PPO

    model = PPO(_policy_cls(), env, learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size,
                n_epochs=n_epochs, gamma=gamma, gae_lambda=0.95, ent_coef=ent_coef, seed=seed,
                tensorboard_log=tensorboard_log, verbose=0, **kwargs)
    if tensorboard_log is None:
        from stable_baselines3.common.logger import Logger

        # SB3's default logger makes an empty folder under the temp dir on every learn(); log to memory only.
        model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def save_slim(model, path: str | Path) -> Path:
    """Save a PPO model for acting: the same zip format, with Adam's moment estimates dropped (about a third
    of the size). ``PPO.load`` reads it as usual; training resumed from it restarts Adam's moments."""
    path = Path(path)
    policy = model.policy
    full = policy.optimizer
    policy.optimizer = type(full)(policy.parameters(), **full.defaults)
    try:
        model.save(path)
    finally:
        policy.optimizer = full
    return path


CHECKPOINTS = Path(__file__).parent / "checkpoints"
#: The shipped pretrained agents (``hcgym train active-fr``; provenance in ``PROVENANCE_<setup>.json`` beside them).
SHIPPED = {"setup1": "active_fr_setup1.zip", "setup2": "active_fr_setup2.zip"}


def shipped_agent(protocol: str) -> Path:
    """Path of the shipped PPO agent of a protocol (``setup1`` or ``setup2``)."""
    from hcgym.errors import DependencyNotInstalled, SpecError

    if protocol not in SHIPPED:
        raise SpecError("protocol", f"unknown protocol {protocol!r} (known: {', '.join(SHIPPED)})")
    path = CHECKPOINTS / SHIPPED[protocol]
    if not path.is_file():
        raise DependencyNotInstalled(f"the shipped PPO agent is missing ({path}); reinstall hcgym or train one with "
                                     "`hcgym train active-fr` and pass --checkpoint OUT/ppo.zip")
    return path


def trusted_checkpoint(path: str | Path, trust: bool = False, field: str = "checkpoint") -> Path:
    """``path`` if it may be loaded: a stable-baselines3 zip is a pickle, and unpickling one can run code.

    The package's own checkpoints (:data:`CHECKPOINTS`) load as they are; any other file only with
    ``trust=True`` (CLI ``--trust-checkpoint``), which logs a warning. Otherwise a :class:`SpecError`
    on ``field`` names the flag; a missing file is one too.
    """
    from hcgym.errors import SpecError

    path = Path(path)
    if not path.is_file():
        raise SpecError(field, f"file not found: {path}")
    if path.resolve().is_relative_to(CHECKPOINTS.resolve()):
        return path
    if not trust:
        raise SpecError(field, f"{path} is a stable-baselines3 checkpoint from outside hcgym's own ({CHECKPOINTS}); "
                               "such files hold pickled Python objects and loading one can run code. Pass "
                               "--trust-checkpoint (Python: trust=True) only for a file you made or trust")
    logging.getLogger(__name__).warning("loading %s as a trusted checkpoint: it holds pickled Python objects, "
                                        "which run code when loaded", path)
    return path


class PPOAgent(Agent):
    """A trained PPO policy behind the :class:`Agent` interface."""

    name = "ppo"

    def __init__(self, model, deterministic: bool = True, seed: int = 0) -> None:
        self.model, self.deterministic, self.seed = model, deterministic, int(seed)
        self._rng = torch.Generator().manual_seed(self.seed)

    def reset(self) -> None:
        """Start of an episode: a sampling policy restarts its random stream (same seed, same episode)."""
        self._rng.manual_seed(self.seed)

    @classmethod
    def load(cls, path: str | Path, deterministic: bool = True, seed: int = 0, trust: bool = False) -> "PPOAgent":
        """The agent saved at ``path``: a shipped checkpoint, or another file with ``trust=True``
        (:func:`trusted_checkpoint`: SB3 zips are pickles)."""
        from stable_baselines3 import PPO

        path = trusted_checkpoint(path, trust)
        return cls(PPO.load(path, device="cpu", custom_objects={"policy_class": _policy_cls()}), deterministic, seed)

    def observation_size(self) -> tuple[int, int]:
        """(width, height) of the observations the policy was trained on."""
        from stable_baselines3.common.preprocessing import is_image_space_channels_first

        space = self.model.observation_space  # SB3 keeps images channel-first: (C, H, W)
        shape = space.shape
        if is_image_space_channels_first(space):
            return int(shape[2]), int(shape[1])
        return int(shape[1]), int(shape[0])

    def _distribution(self, observation: np.ndarray):
        policy = self.model.policy
        # uint8 (H, W, C) -> (1, C, H, W); SB3's preprocessing scales images by 1/255 itself.
        obs = torch.from_numpy(np.ascontiguousarray(observation)).permute(2, 0, 1)[None]
        return policy.get_distribution(obs)

    def action_probabilities(self, observation: np.ndarray) -> np.ndarray:
        """The policy's softmax over actions for one observation."""
        with torch.no_grad():
            return self._distribution(observation).distribution.probs[0].numpy()

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        """One forward pass of the policy (no face detector, no recognizer): the most probable action, or
        (``deterministic=False``) one sampled from the agent's own seeded random stream."""
        with torch.no_grad():
            probs = self._distribution(observation).distribution.probs[0]
        if self.deterministic:
            return int(torch.argmax(probs))
        return int(torch.multinomial(probs, 1, generator=self._rng))
