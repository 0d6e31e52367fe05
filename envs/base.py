"""What every task env shares: headless MuJoCo import, the Gymnasium step loop, rendering.

Importing this module first sets ``MUJOCO_GL=egl`` on a headless Linux machine (it must be set
before ``mujoco`` is imported), so env modules import ``mujoco`` from here.

``MujocoTaskEnv`` is the common step of TwoRoom, Reacher and Push-T: a checked 2-d action held for
``frame_skip`` physics steps; success terminates, ``max_steps`` truncates; reward 1 on success (the
planners never use it). A subclass provides ``model``, ``data``, ``frame_skip``, ``max_steps``,
``steps``, ``render_mode``, ``renderer``, ``state``, ``observation_at(state)`` and ``_info()``.
"""

from __future__ import annotations

import os
import sys

import gymnasium as gym
import numpy as np

if sys.platform.startswith("linux") and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless default; must be set before mujoco is imported

import mujoco  # noqa: E402


def checked_action(action, dim: int = 2) -> np.ndarray:
    """The action as a float64 vector of length ``dim``; ValueError if its shape is wrong or it is not finite."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (dim,):
        raise ValueError(f"action must have shape ({dim},), got {np.shape(action)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action must be finite, got {a.tolist()}")
    return a


class MujocoTaskEnv(gym.Env):
    """Shared Gymnasium plumbing of the task envs (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    _renderer = None

    def step(self, action):
        self.data.ctrl[:] = np.clip(checked_action(action, self.model.nu), -1.0, 1.0)
        for _ in range(self.frame_skip):
            mujoco.mj_step(self.model, self.data)
        self.steps += 1
        info = self._info()
        terminated = info["success"]
        truncated = (not terminated) and self.steps >= self.max_steps
        return self.observation_at(info["state"]), float(terminated), terminated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array":
            return self.renderer.render_state(self.state)
        return None

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
